# Verifies recursion: with no forwarders, roost-dns resolves from the root hints down and
# validates. The ISP serves a small signed root zone of its own (knot on 198.51.100.54: `.`
# delegating isp.test, with its DS, to itself); a LAN client gets an ISP name with the AD bit,
# NXDOMAIN for a missing name in isp.test, and NXDOMAIN from the root for a TLD it does not
# have. The zones are signed at build time (`signed` below: keymgr and kzonesign, signatures
# valid ten years) and the router trusts that root's key, as the lab trusts its own.
# Mirrors: lab_dns_recursion_from_the_labs_own_root_answers_validates_and_denies
{ pkgs, roostModule }:
let
  lib = pkgs.lib;
  nodes = import ./lib.nix { inherit pkgs roostModule; };
  soa = "@ 3600 IN SOA ns.isp.test. hostmaster.isp.test. 1 3600 600 86400 300";
  ispZone = pkgs.writeText "isp.test.zone" ''
    ${soa}
    @ 3600 IN NS ns.isp.test.
    ns 3600 IN A 198.51.100.54
    www 3600 IN A 198.51.100.80
  '';
  # The test's own DNSSEC: keys for `.` and isp.test, the root zone with isp.test's DS, both
  # zones signed (NSEC), and the root's DNSKEY as the router's trust anchor.
  signed = pkgs.runCommand "roost-vm-test-signed-zones" { nativeBuildInputs = [ pkgs.knot-dns ]; } ''
    mkdir -p keys signed $out
    # kzonesign names what it writes after the zone file.
    cp ${ispZone} isp.test.zone
    cat > knot.conf <<EOF
    database:
      storage: $PWD/keys
    policy:
      - id: test
        algorithm: ecdsap256sha256
        rrsig-lifetime: 3650d
        rrsig-refresh: 1d
        zsk-lifetime: 0
        ksk-lifetime: 0
    zone:
      - domain: .
        file: $PWD/root.zone
        storage: $PWD/keys
        dnssec-policy: test
      - domain: isp.test
        file: $PWD/isp.test.zone
        storage: $PWD/keys
        dnssec-policy: test
    EOF
    keymgr -c knot.conf isp.test. generate algorithm=13 ksk=yes zsk=yes
    keymgr -c knot.conf . generate algorithm=13 ksk=yes zsk=yes
    {
      echo '${soa}'
      echo '@ 3600 IN NS ns.isp.test.'
      echo 'isp.test. 3600 IN NS ns.isp.test.'
      echo 'ns.isp.test. 3600 IN A 198.51.100.54'
      keymgr -c knot.conf isp.test. ds | head -1
    } > root.zone
    kzonesign -c knot.conf -o signed .
    kzonesign -c knot.conf -o signed isp.test
    cp signed/root.zone signed/isp.test.zone $out/
    keymgr -c knot.conf . dnskey > $out/root.anchor
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
            { domain = "."; file = "${signed}/root.zone"; }
            { domain = "isp.test"; file = "${signed}/isp.test.zone"; }
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
        dnssec = lib.mkForce true;
        trust_anchor = "${signed}/root.anchor";
      };
    };
    lan = nodes.client { address = "192.168.1.99"; };
  };
  testScript = ''
    start_all()
    isp.wait_for_unit("knot.service")
    router.wait_for_unit("microvms.target")

    with subtest("an ISP name resolves from the root down, validated"):
        lan.wait_until_succeeds("dig +short +time=2 @192.168.1.1 www.isp.test | grep .", timeout=300)
        out = lan.succeed("dig +dnssec +time=2 @192.168.1.1 www.isp.test")
        assert "198.51.100.80" in out, out
        assert " ad;" in out or " ad " in out, f"no AD bit: {out}"

    with subtest("missing names are NXDOMAIN, from the zone and from the root"):
        out = lan.succeed("dig +time=2 @192.168.1.1 nothing-here.isp.test")
        assert "status: NXDOMAIN" in out, out
        out = lan.succeed("dig +time=2 @192.168.1.1 www.example.invalidtld")
        assert "status: NXDOMAIN" in out, out
  '';
}
