{ lib, ... }:
let
  inherit (lib) mkOption types;
in
{
  options.services.roost.wifi = {
    enable = lib.mkEnableOption "the Wi-Fi access point (hostapd) of this VM";
    roostctl = mkOption {
      type = types.package;
      description = "roostctl, which renders hostapd.conf from the view at each start.";
    };
    view = mkOption {
      type = types.path;
      description = "The Wi-Fi view (`roostctl config wifi`), rendered on the host.";
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
