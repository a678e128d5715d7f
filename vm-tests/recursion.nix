# Verifies recursion: with no forwarders, roost-dns resolves from the root hints down. The ISP
# serves a small root zone of its own (knot on 198.51.100.54: `.` delegating isp.test to
# itself); a LAN client gets an ISP name, NXDOMAIN for a missing name in isp.test, and NXDOMAIN
# from the root for a TLD it does not have. Unsigned here (vm-tests run without DNSSEC); the
# lab's test also checks the AD bit from its signed root.
# Mirrors: lab_dns_recursion_from_the_labs_own_root_answers_validates_and_denies
{ pkgs, roostModule }:
let
  lib = pkgs.lib;
  nodes = import ./lib.nix { inherit pkgs roostModule; };
  soa = "@ 3600 IN SOA ns.isp.test. hostmaster.isp.test. 1 3600 600 86400 300";
  rootZone = pkgs.writeText "root.zone" ''
    ${soa}
    @ 3600 IN NS ns.isp.test.
    isp.test. 3600 IN NS ns.isp.test.
    ns.isp.test. 3600 IN A 198.51.100.54
  '';
  ispZone = pkgs.writeText "isp.test.zone" ''
    ${soa}
    @ 3600 IN NS ns.isp.test.
    ns 3600 IN A 198.51.100.54
    www 3600 IN A 198.51.100.80
  '';
in
pkgs.testers.runNixOSTest {
  name = "vm-recursion";
  nodes = {
    isp = { ... }: {
      imports = [ nodes.isp ];
      networking.interfaces.eth1.ipv4.addresses = [{ address = "198.51.100.54"; prefixLength = 32; }];
      services.knot = {
        enable = true;
        settings = {
          server.listen = [ "198.51.100.54@53" ];
          zone = [
            { domain = "."; file = "${rootZone}"; }
            { domain = "isp.test"; file = "${ispZone}"; }
          ];
        };
      };
    };
    router = { ... }: {
      imports = [ nodes.router ];
      services.roost.settings.dns = {
        upstreams = lib.mkForce [ ];
        recursion = true;
        root_hints = [ "198.51.100.54" ];
      };
    };
    lan = nodes.client { address = "192.168.1.99"; };
  };
  testScript = ''
    start_all()
    isp.wait_for_unit("knot.service")
    router.wait_for_unit("microvms.target")

    with subtest("an ISP name resolves from the root down"):
        out = lan.wait_until_succeeds("dig +short +time=2 @192.168.1.1 www.isp.test | grep .", timeout=300)
        assert out.strip() == "198.51.100.80", out

    with subtest("missing names are NXDOMAIN, from the zone and from the root"):
        out = lan.succeed("dig +time=2 @192.168.1.1 nothing-here.isp.test")
        assert "status: NXDOMAIN" in out, out
        out = lan.succeed("dig +time=2 @192.168.1.1 www.example.invalidtld")
        assert "status: NXDOMAIN" in out, out
  '';
}
