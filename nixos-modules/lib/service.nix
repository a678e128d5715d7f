# The systemd unit every Roost daemon runs as inside its VM: least privilege by default, with
# each daemon naming only the capabilities and address families it needs.
{ lib }:
{ name
, package
, configFile
, description
, capabilities ? [ ]
, addressFamilies ? [ "AF_INET" "AF_INET6" "AF_UNIX" ]
, path ? [ ]
  # Units that must run first, e.g. the VM's network step.
, needs ? [ ]
}:
{
  inherit description path;
  wantedBy = [ "multi-user.target" ];
  after = [ "network-online.target" ] ++ needs;
  wants = [ "network-online.target" ];
  requires = needs;
  environment.RUST_LOG = lib.mkDefault "info";
  serviceConfig = {
    ExecStart = "${lib.getExe package} --config ${configFile}";
    # The daemon says READY=1 once its sockets are bound and its view applied, so units
    # ordered after it (and `systemctl is-active`) mean "serving"; it pings the watchdog at
    # half this interval, and a daemon whose runtime stalls is restarted (roost-control's
    # systemd module).
    Type = "notify";
    WatchdogSec = "30s";
    Restart = "on-failure";
    RestartSec = "2s";
    DynamicUser = true;
    # The control-API tokens under /run/roost/tokens are root:roost-tokens 0640 (virtiofs
    # checks modes in the guest), so the dynamic user needs that group to read them.
    SupplementaryGroups = [ "roost-tokens" ];
    # $STATE_DIRECTORY=/var/lib/roost/<name>, on the VM's persistent volume.
    StateDirectory = "roost/${name}";
    StateDirectoryMode = "0700";
  } // import ./hardening.nix { inherit capabilities addressFamilies; };
}
