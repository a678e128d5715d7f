{ lib, ... }:
let
  inherit (lib) mkOption types;
in
{
  options.services.roost.wifi = import ../lib/guest-options.nix
    {
      inherit lib;
      name = "wifi";
      description = "the Wi-Fi access point (hostapd) and roost-wifi, its control API";
    } // {
    roostctl = mkOption {
      type = types.package;
      description = "roostctl, which renders hostapd.conf from the view at each start.";
    };
    zones = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "lan" "guest" ];
      description = ''
        The zones its networks join: for each, the VM's NIC of that name (on the host's zone
        bridge) is enslaved to a bridge `br-<zone>`, which hostapd adds that network to.
      '';
    };
  };
}
