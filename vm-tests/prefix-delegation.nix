# Verifies IPv6 from the ISP (docs/adr/0009-ipv6-zones.md): the firewall asks the ISP's Kea by
# DHCPv6 for an address and a /56, gives the LAN the /64 at its index (1), and LAN clients form
# global addresses by SLAAC beside their ULA ones and reach the ISP's v6 web server without NAT;
# the ISP cannot open a connection to them; when the ISP renumbers (Kea restarted on another
# pool with no leases), the router takes the new prefix at its next renewal and clients move to
# it while the old address is deprecated. The ISP routes its pools to the router's link-local
# address, as its edge routes each prefix it delegates (the lab does the same).
# Mirrors: lab_ipv6_lan_client_gets_a_global_address_from_the_delegated_prefix_and_reaches_the_isp
# Mirrors: lab_ipv6_the_isp_cannot_open_a_connection_to_a_lan_client_that_can_open_one_to_the_isp
# Mirrors: lab_ipv6_after_the_isp_renumbers_clients_move_to_the_new_prefix_and_the_old_is_deprecated
# Mirrors: lab_ipv6_lan_client_learns_the_resolver_from_ras_and_dhcpv6_and_resolves_over_ipv6
# Mirrors: lab_ipv6_a_port_forward_with_an_ipv6_host_opens_a_pinhole_to_that_host_and_port_only
# Mirrors: lab_ipv6_the_ula_keeps_local_traffic_and_dns_working_with_the_wan_down
# Mirrors: lab_ipv6_a_lease_name_gets_aaaa_records_for_the_addresses_the_router_sees_its_host_use
# Mirrors: lab_ipv6_malformed_and_rogue_router_advertisements_are_counted_and_change_nothing
# Mirrors: lab_ipv6_the_web_ui_answers_the_lan_at_the_routers_ula_address_and_refuses_guests
# The last: the advertisements name the resolver at the router's ULA address (RDNSS), the
# domain (DNSSL) and set O; the resolver answers there an AAAA the ISP serves.
{ pkgs, roostModule }:
let
  inherit (pkgs) lib;
  nodes = import ./lib.nix { inherit pkgs roostModule; };
  kea = pool: {
    interfaces-config.interfaces = [ "eth1" ];
    lease-database = { type = "memfile"; persist = true; name = "/var/lib/kea/dhcp6.leases"; };
    renew-timer = 10;
    rebind-timer = 20;
    preferred-lifetime = 40;
    valid-lifetime = 60;
    subnet6 = [{
      id = 1;
      subnet = "2001:db8:0:1::/64";
      interface = "eth1";
      pools = [{ pool = "2001:db8:0:1::1000-2001:db8:0:1::1fff"; }];
      pd-pools = [{ prefix = pool; prefix-len = 40; delegated-len = 56; }];
    }];
  };
  renumbered = pkgs.writeText "kea-dhcp6-renumbered.json"
    (builtins.toJSON { Dhcp6 = kea "2001:db8:3400::"; });
in
pkgs.testers.runNixOSTest {
  name = "vm-prefix-delegation";
  nodes = {
    isp = { ... }: {
      imports = [ nodes.isp ];
      boot.kernel.sysctl."net.ipv6.conf.all.forwarding" = 1;
      networking.interfaces.eth1.ipv6.addresses = [
        { address = "2001:db8:0:1::1"; prefixLength = 64; }
        { address = "2001:db8:ffff::80"; prefixLength = 128; }
      ];
      services.dnsmasq.settings = {
        host-record = lib.mkForce [
          "www.isp.test,198.51.100.80,2001:db8:ffff::80"
          "ns.isp.test,198.51.100.53"
        ];
      };
      services.nginx.virtualHosts.isp6 = {
        listen = [{ addr = "[2001:db8:ffff::80]"; port = 80; }];
        locations."/".return = ''200 "client $remote_addr\n"'';
      };
      environment.systemPackages = [ pkgs.python3 ];
      services.kea.dhcp6 = { enable = true; settings = kea "2001:db8:1200::"; };
      services.radvd = {
        enable = true;
        config = ''
          interface eth1 {
            AdvSendAdvert on;
            AdvManagedFlag on;
            AdvOtherConfigFlag on;
            MinRtrAdvInterval 3;
            MaxRtrAdvInterval 10;
            prefix 2001:db8:0:1::/64 { AdvOnLink on; AdvAutonomous off; };
          };
        '';
      };
    };
    inherit (nodes) router;
    lan = { ... }: {
      imports = [ (nodes.client { address = "192.168.1.99"; }) ];
      networking.enableIPv6 = true;
      networking.tempAddresses = "disabled";
      environment.systemPackages = [ pkgs.ndisc6 pkgs.dnsutils pkgs.busybox pkgs.python3 ];
    };
  };
  testScript = ''
    def address(machine, prefix):
        cmd = f"ip -6 -o addr show scope global -tentative | grep -o '{prefix}:[0-9a-f:]*' | head -1"
        machine.wait_until_succeeds(f"test -n \"$({cmd})\"", timeout=120)
        return machine.succeed(cmd).strip()

    def route_pools():
        # The router's WAN is a router (forwarding), so the ISP's neighbour entry says so.
        isp.wait_until_succeeds("ip -6 neigh show dev eth1 | grep -q 'fe80.* router'", timeout=120)
        ll = isp.succeed("ip -6 neigh show dev eth1 | awk '/fe80.* router/ {print $1; exit}'").strip()
        for pool in ("2001:db8:1200::/40", "2001:db8:3400::/40"):
            isp.succeed(f"ip -6 route replace {pool} via {ll} dev eth1")

    start_all()
    isp.wait_for_unit("kea-dhcp6-server.service")
    router.wait_for_unit("microvms.target")
    lan.succeed("python3 -m http.server --bind :: 8080 >/dev/null 2>&1 &")

    with subtest("the LAN client gets a global address from the delegated prefix and reaches the ISP"):
        isp.wait_until_succeeds("grep -q '2001:db8:1200::' /var/lib/kea/dhcp6.leases", timeout=120)
        route_pools()
        client = address(lan, "2001:db8:1200:1")
        lan.wait_until_succeeds(f"curl -sf -m 3 'http://[2001:db8:ffff::80]/' | grep -qx 'client {client}'", timeout=60)
        # The ULA stays for local traffic.
        address(lan, "fd12:3456:789a:1")

    with subtest("the ISP cannot open a connection to a LAN client that can open one to the ISP"):
        lan.succeed("curl -sf -m 3 'http://[2001:db8:ffff::80]/'")
        isp.fail(f"nc -6 -z -w2 {client} 8080")

    with subtest("the LAN client learns the resolver from RAs and resolves over IPv6"):
        ra = lan.wait_until_succeeds("rdisc6 -1 eth1 | grep -A20 'Recursive DNS server'", timeout=60)
        assert "fd12:3456:789a:1::1" in ra, ra
        assert "home.arpa" in ra, ra
        lan.succeed("rdisc6 -1 eth1 | grep -q 'Stateful other conf.*Yes'")
        aaaa = lan.wait_until_succeeds("dig +short @fd12:3456:789a:1::1 www.isp.test AAAA | grep .", timeout=60)
        assert aaaa.strip() == "2001:db8:ffff::80", aaaa

    with subtest("a port forward with ipv6_host opens a pinhole to that host and port only"):
        # The example forwards 8443 to 192.168.1.10:443 with ipv6_host ::10.
        lan.succeed("ip addr add 192.168.1.10/24 dev eth1 && ip addr add 2001:db8:1200:1::10/64 dev eth1 nodad")
        lan.succeed("python3 -m http.server --bind 2001:db8:1200:1::10 443 >/dev/null 2>&1 &")
        lan.succeed("python3 -m http.server --bind 2001:db8:1200:1::10 8443 >/dev/null 2>&1 &")
        isp.wait_until_succeeds("nc -6 -z -w2 2001:db8:1200:1::10 443", timeout=60)
        isp.fail("nc -6 -z -w2 2001:db8:1200:1::10 8443")

    with subtest("a lease name gets AAAA records for the addresses the router sees its host use"):
        # A lease named laptop (udhcpc's script only records it), used through the router.
        lan.succeed("printf '#!/bin/sh\\n[ \"$1\" = bound ] && echo $ip > /tmp/leased\\n' > /tmp/record && chmod +x /tmp/record")
        lan.succeed("busybox udhcpc -i eth1 -n -q -x hostname:laptop -s /tmp/record")
        leased = lan.succeed("cat /tmp/leased").strip()
        lan.succeed(f"ip addr add {leased}/24 dev eth1 && ping -c1 -W2 -I {leased} 192.168.1.1")
        ula = address(lan, "fd12:3456:789a:1")
        lan.succeed(f"ping -6 -c1 -W2 -I {ula} fd12:3456:789a:1::1")
        lan.wait_until_succeeds(f"dig +short @192.168.1.1 laptop.home.arpa AAAA | grep -qx {ula}", timeout=60)

    with subtest("the web UI answers the LAN at the router's ULA address"):
        lan.wait_until_succeeds("curl -sk -m 5 -o /dev/null -w '%{http_code}' 'https://[fd12:3456:789a:1::1]/setup' | grep -qx 200", timeout=60)

    with subtest("malformed and rogue router advertisements change nothing"):
        send = (
            "python3 -c \"import socket; s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 58); "
            "i = socket.if_nametoindex('eth1'); s.setsockopt(41, 18, 255); s.setsockopt(41, 17, i); "
            "[s.sendto(bytes.fromhex('{}'), ('ff02::1', 0, 0, i)) for _ in range(3)]\""
        )
        isp.succeed(send.format("86000000400007080000000000000000030000000000000000000000"))
        lan.succeed(send.format("86000000400007080000000000000000030440c000015180000038400000000020010db800ba00000000000000000000"))
        lan.wait_until_succeeds("curl -sf -m 3 'http://[2001:db8:ffff::80]/'", timeout=30)

    with subtest("after the ISP renumbers, clients move to the new prefix and the old is deprecated"):
        old = client
        isp.succeed("systemctl stop kea-dhcp6-server.service && rm -f /var/lib/kea/dhcp6.leases*")
        isp.succeed("systemd-run --unit kea-renumbered ${pkgs.kea}/bin/kea-dhcp6 -c ${renumbered}")
        new = address(lan, "2001:db8:3400:1")
        lan.succeed(f"ip -6 addr show | grep -A1 '{old}' | grep -q 'preferred_lft 0sec'")
        lan.wait_until_succeeds(f"curl -sf -m 3 'http://[2001:db8:ffff::80]/' | grep -qx 'client {new}'", timeout=60)

    with subtest("the ULA keeps local traffic and DNS working with the WAN down"):
        isp.succeed("ip link set eth1 down")
        lan.wait_until_fails("curl -sf -m 2 'http://[2001:db8:ffff::80]/'", timeout=30)
        lan.succeed("ping -6 -c1 -W2 fd12:3456:789a:1::1")
        lan.succeed("dig +short @fd12:3456:789a:1::1 roost.home.arpa A | grep -qx 192.168.1.1")
  '';
}
