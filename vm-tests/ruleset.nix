# The firewall VM's live nftables ruleset, for a test to read on the router: once a second the
# guest writes `nft list ruleset` into the share, which the router sees at
# /tmp/ruleset-firewall/ruleset (the test makes that directory).
{ pkgs }:
{
  microvm.shares = [{
    proto = "virtiofs";
    tag = "ruleset";
    source = "/tmp/ruleset-firewall";
    mountPoint = "/run/ruleset";
  }];
  systemd.services.roost-ruleset-dump = {
    wantedBy = [ "multi-user.target" ];
    after = [ "roost-firewall.service" ];
    path = [ pkgs.nftables ];
    script = ''
      while true; do
        nft list ruleset > /run/ruleset/ruleset.tmp && mv /run/ruleset/ruleset.tmp /run/ruleset/ruleset
        sleep 1
      done
    '';
  };
}
