# Verifies NAT and port forwards through the firewall VM: a LAN client reaches the ISP seen as
# the router's WAN address, the ISP cannot open a connection to a LAN client even when it routes
# the private range at us, and a port forward works from the ISP and by hairpin from the LAN.
# Mirrors: lab_lan_client_reaches_the_isp_through_nat_seen_as_the_wan_address
# Mirrors: lab_isp_cannot_open_a_connection_to_a_lan_client
# Mirrors: lab_port_forward_works_from_the_isp_and_from_the_lan_by_hairpin
{ pkgs, roostModule }:
let
  nodes = import ./lib.nix { inherit pkgs roostModule; };
in
pkgs.testers.runNixOSTest {
  name = "vm-nat";
  nodes = {
    inherit (nodes) isp router;
    client = nodes.client { };
    nas = nodes.client { address = "192.168.1.10"; };
  };
  testScript = ''
    start_all()
    router.wait_for_unit("microvms.target")
    client.wait_until_succeeds("ip -4 addr show eth1 | grep -q 'inet 192.168.1.'", timeout=300)
    nas.succeed("python3 -m http.server --bind 192.168.1.10 443 >/dev/null 2>&1 &")

    with subtest("a LAN client reaches the ISP, which sees the router's WAN address"):
        out = client.wait_until_succeeds("curl -sf -m5 http://198.51.100.80/", timeout=120)
        wan = out.split()[1]
        # The source the ISP saw is an address from its own DHCP pool: the router's.
        assert wan.startswith("203.0.113."), out

    with subtest("the ISP cannot open a connection to a LAN client"):
        client_ip = client.succeed("ip -4 -o addr show eth1").split()[3].split("/")[0]
        client.succeed("python3 -m http.server --bind 0.0.0.0 8080 >/dev/null 2>&1 &")
        # The listener answers inside the LAN ...
        nas.wait_until_succeeds(f"nc -z -w2 {client_ip} 8080", timeout=30)
        # ... but not a hostile ISP that routes the private range at us.
        isp.succeed(f"ip route add 192.168.0.0/16 via {wan}")
        isp.fail(f"nc -z -w2 {client_ip} 8080")

    with subtest("a port forward works from the ISP and by hairpin from the LAN"):
        isp.succeed(f"nc -z -w3 {wan} 8443")
        client.succeed(f"nc -z -w3 {wan} 8443")
        # Only the forwarded port.
        isp.fail(f"nc -z -w2 {wan} 22")
  '';
}
