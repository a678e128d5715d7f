# Verifies the resolver: LAN and IoT clients resolve an ISP name through their zone's router
# address (DNAT to the dns VM, forwarded upstream), the router's own name answers with the
# asker's router address, a blocked name is NXDOMAIN while its twin resolves, and the WAN side
# gets no DNS answer. A LAN client that takes a lease under a host name is resolvable (A and
# PTR) by another client as <name>.home.arpa until it releases the lease.
# Mirrors: lab_lan_and_iot_clients_resolve_isp_names_through_their_router_address
# Mirrors: lab_blocked_name_is_blocked_and_the_wan_side_is_refused
# Mirrors: lab_lan_client_host_name_resolves_for_other_clients_until_released
{ pkgs, roostModule }:
let
  nodes = import ./lib.nix { inherit pkgs roostModule; };
  blocklist = pkgs.writeText "blocked.txt" "blocked.isp.test\n";
  dhclientConf = pkgs.writeText "dhclient.conf" ''
    send host-name "laptop";
  '';
in
pkgs.testers.runNixOSTest {
  name = "vm-resolve";
  nodes = {
    inherit (nodes) isp;
    router = { ... }: {
      imports = [ nodes.router ];
      services.roost.settings.dns.blocklists = [
        { name = "test"; path = "${blocklist}"; format = "domains"; }
      ];
    };
    lan = { ... }: {
      imports = [ (nodes.client { address = "192.168.1.99"; }) ];
      environment.systemPackages = [ pkgs.dhcp ];
    };
    iot = nodes.client { zone = "iot"; address = "192.168.20.99"; };
  };
  testScript = ''
    import re
    start_all()
    router.wait_for_unit("microvms.target")

    with subtest("LAN and IoT clients resolve through their router address"):
        out = lan.wait_until_succeeds("dig +short +time=2 @192.168.1.1 www.isp.test | grep .", timeout=300)
        assert out.strip() == "198.51.100.80", out
        out = iot.succeed("dig +short +time=2 @192.168.20.1 www.isp.test")
        assert out.strip() == "198.51.100.80", out
        # The router's own name: the asker's router address.
        out = iot.succeed("dig +short +time=2 @192.168.20.1 roost.home.arpa")
        assert out.strip() == "192.168.20.1", out

    with subtest("a blocked name is blocked, its twin resolves, the WAN gets no answer"):
        out = lan.succeed("dig +time=2 @192.168.1.1 blocked.isp.test")
        assert "status: NXDOMAIN" in out, out
        lan.succeed("dig +short +time=2 @192.168.1.1 www.isp.test | grep -q 198.51.100.80")
        wan = lan.succeed("curl -sf -m5 http://198.51.100.80/").split()[1]
        isp.fail(f"dig +short +time=1 +tries=1 @{wan} www.isp.test | grep -q .")

    with subtest("a LAN client's host name resolves for other clients until it is released"):
        out = lan.succeed("dhclient -1 -v -cf ${dhclientConf} eth1 2>&1")
        addr = re.search(r"bound to (\S+)", out).group(1)
        assert addr.startswith("192.168.1."), out
        # Another client resolves the name and the address back to it.
        iot.wait_until_succeeds(f"dig +short +time=2 @192.168.20.1 laptop.home.arpa | grep -qx {addr}", timeout=30)
        out = iot.succeed(f"dig +short +time=2 @192.168.20.1 -x {addr}")
        assert out.strip() == "laptop.home.arpa.", out
        # Released: the name is gone.
        lan.succeed("dhclient -r -cf ${dhclientConf} eth1")
        iot.wait_until_succeeds("dig +time=2 @192.168.20.1 laptop.home.arpa | grep -q 'status: NXDOMAIN'", timeout=30)
        iot.fail(f"dig +short +time=2 @192.168.20.1 -x {addr} | grep -q .")
  '';
}
