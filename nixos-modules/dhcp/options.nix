{ lib, ... }:
{
  options.services.roost.dhcp = import ../lib/guest-options.nix {
    inherit lib;
    name = "dhcp";
    description = "roost-dhcp, the DHCPv4 server of every zone with a pool";
  };
}
