{ lib, ... }:
{
  options.services.roost.firewall = import ../lib/guest-options.nix {
    inherit lib;
    name = "firewall";
    description = "roost-firewall, the router between zones: nftables ruleset, NAT, WAN address";
  };
}
