# A probe inside one microVM, standing in for an attacker's shell there: once the test writes
# `go` into the share (its listeners are up), it tries each target with a short connect timeout
# and writes `<label> reached|blocked` lines the test reads on the router at
# /tmp/probe-<vm>/result.
{ pkgs, vm, targets }:
{
  microvm.shares = [{
    proto = "virtiofs";
    tag = "probe";
    source = "/tmp/probe-${vm}";
    mountPoint = "/run/probe";
  }];
  systemd.services.roost-probe = {
    wantedBy = [ "multi-user.target" ];
    after = [ "roost-${vm}.service" ];
    path = [ pkgs.netcat-openbsd ];
    serviceConfig.Type = "oneshot";
    script = ''
      while [ ! -e /run/probe/go ]; do sleep 1; done
      : > /run/probe/result.tmp
      ${pkgs.lib.concatMapStrings (t: ''
        if nc -z -w2 ${t.host} ${toString t.port}; then r=reached; else r=blocked; fi
        echo "${t.label} $r" >> /run/probe/result.tmp
      '') targets}
      mv /run/probe/result.tmp /run/probe/result
    '';
  };
}
