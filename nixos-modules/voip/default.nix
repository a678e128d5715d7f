# The VoIP VM's guest side (ADR 0014): Kamailio, the registrar the home's SIP phones (one
# zone's) register with and call each other through, on the service link (the firewall
# forwards SIP from the phones' zone to it), and roost-voip, the control API the web UI uses.
# kamailio.cfg is rendered at each start by roostctl from the view, reading the phones'
# password files then and writing only their digest hashes, so no password is in the Nix
# store. Kamailio opens nothing itself: it answers, and reaches a phone over the flow the
# phone's REGISTER opened.
{ config, lib, pkgs, ... }:
let
  cfg = config.services.roost.voip;
  service = import ../lib/service.nix { inherit lib; };
  runDir = "/run/roost-kamailio";
in
{
  imports = [ ./options.nix ];

  config = lib.mkIf cfg.enable {
    users.users.roost-kamailio = { isSystemUser = true; group = "roost-kamailio"; };
    users.groups.roost-kamailio = { };

    systemd.services.roost-kamailio = {
      description = "Roost VoIP registrar (Kamailio)";
      wantedBy = [ "multi-user.target" ];
      after = [ "roost-net.service" ];
      requires = [ "roost-net.service" ];
      serviceConfig = {
        User = "roost-kamailio";
        Group = "roost-kamailio";
        RuntimeDirectory = "roost-kamailio";
        RuntimeDirectoryMode = "0700";
        # Rendered as root (the password files are root's), then given to Kamailio's user:
        # 0600, holding the phones' hashes.
        ExecStartPre = [
          "+${lib.getExe cfg.roostctl} voip kamailio ${cfg.configFile} --out ${runDir}/kamailio.cfg"
          "+${pkgs.coreutils}/bin/chown roost-kamailio:roost-kamailio ${runDir}/kamailio.cfg"
        ];
        # In the foreground (its children forked), logging to the journal; small shared and
        # private memory pools for a home's phones.
        ExecStart = "${cfg.kamailio}/bin/kamailio -DD -E -m 32 -M 8 -Y ${runDir} -f ${runDir}/kamailio.cfg";
        Restart = "always";
        RestartSec = "2s";
      } // import ../lib/hardening.nix {
        # SIP on 5060 needs no capability. Not `~@resources` as for the Roost daemons:
        # Kamailio may set its own limits.
        systemCallFilter = [ "@system-service" "~@privileged" ];
      };
    };

    # The control API: which phones are registered, through Kamailio's JSON-RPC on loopback.
    systemd.services.roost-voip = service {
      name = "voip";
      inherit (cfg) package configFile;
      description = "Roost VoIP: the control API over Kamailio";
      needs = [ "roost-net.service" "roost-kamailio.service" ];
    };
  };
}
