# The update VM's guest side: roost-update's agent checks the TUF repository on its schedule,
# fetches only the missing store paths over the WAN (the firewall lets it reach wan:443 and the
# web VM's control API, nothing else), checks them, and asks the host step for the rest through
# the spool, a virtiofs share at /var/lib/roost/spool (ADR 0012). It holds no store, no
# profile and no privilege: no capabilities at all.
{ config, lib, pkgs, ... }:
let
  cfg = config.services.roost.update;
  service = import ../lib/service.nix { inherit lib; };
  system = (pkgs.formats.toml { }).generate "update-system.toml" {
    root = "${cfg.rootFile}";
    spool = "/var/lib/roost/spool";
    inherit (cfg) checks;
  };
in
{
  imports = [ ./options.nix ];

  config = lib.mkIf cfg.enable {
    # The spool is root:roost-spool 2770 on the host; the same gid here.
    users.groups.roost-spool.gid = 901;
    environment.etc."roost/update-system.toml".source = system;
    systemd.services.roost-update = lib.recursiveUpdate
      (service {
        name = "update";
        inherit (cfg) package configFile;
        description = "Roost update agent: signed generations, fetched for the host step";
        needs = [ "roost-net.service" ];
      })
      {
        restartTriggers = [ system ];
        serviceConfig = {
          SupplementaryGroups = [ "roost-tokens" "roost-spool" ];
          ReadWritePaths = [ "/var/lib/roost/spool" ];
        };
      };
  };
}
