# Verifies the DHCP server with real clients: dhcpcd, dhclient and udhcpc each get an address,
# gateway and DNS server on the LAN and keep it on renewal, a release frees it, an IoT client
# gets an IoT address, the reserved MAC gets its address, and after the dhcp VM is killed
# (power cut) and started again every lease is still there.
# Mirrors: lab_dhcp_each_client_type_gets_address_gateway_and_dns_renews_and_releases
# Mirrors: lab_dhcp_iot_client_gets_an_iot_address_and_a_reserved_mac_its_address
# Mirrors: lab_dhcp_kill_9_and_up_again_keeps_every_lease
{ pkgs, roostModule }:
let
  nodes = import ./lib.nix { inherit pkgs roostModule; };
  withTools = m: { ... }: {
    imports = [ m ];
    environment.systemPackages = [ pkgs.dhcpcd pkgs.busybox pkgs.dhcp ];
  };
in
pkgs.testers.runNixOSTest {
  name = "vm-lease";
  nodes = {
    inherit (nodes) isp router;
    lan = withTools (nodes.client { address = "192.168.1.99"; });
    iot = withTools (nodes.client { zone = "iot"; address = "192.168.20.99"; });
  };
  testScript = ''
    import re
    start_all()
    router.wait_for_unit("microvms.target")

    def udhcpc(m, iface):
        out = m.succeed(f"busybox udhcpc -n -q -f -t 10 -T 2 -i {iface} -s /bin/true 2>&1")
        return re.search(r"lease of (\S+) obtained", out).group(1)

    with subtest("each client type gets an address, keeps it on renewal, releases it"):
        lan.succeed("ip addr flush dev eth1")
        a = udhcpc(lan, "eth1")
        assert a.startswith("192.168.1."), a
        assert udhcpc(lan, "eth1") == a, "udhcpc renewal keeps the address"
        lan.succeed("dhclient -1 -v eth1 2>&1 | grep -q 'bound to 192.168.1.'")
        lan.succeed("dhclient -r eth1")
        lan.succeed("dhcpcd -4 -1 -B -t 30 eth1 2>&1 | grep -q 'leased 192.168.1.'")
        lan.succeed("ip route | grep -q 'default via 192.168.1.1'")

    with subtest("an IoT client gets an IoT address; the reserved MAC its own"):
        iot.succeed("ip addr flush dev zone")
        assert udhcpc(iot, "zone").startswith("192.168.20."), "iot address"
        lan.succeed("ip link set eth1 down; ip link set eth1 address 52:54:00:12:34:56; ip link set eth1 up")
        assert udhcpc(lan, "eth1") == "192.168.1.10", "reserved address"

    with subtest("leases survive the dhcp VM being killed"):
        router.succeed("systemctl kill -s KILL microvm@dhcp.service")
        router.wait_until_succeeds("systemctl is-active microvm@dhcp.service", timeout=120)
        assert udhcpc(lan, "eth1") == "192.168.1.10", "lease kept"
        assert udhcpc(iot, "zone").startswith("192.168.20."), "iot lease kept"
  '';
}
