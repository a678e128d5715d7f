# Verifies IPv6 on the zones (docs/adr/0009-ipv6-zones.md): a LAN client forms an address in
# the LAN's /64 of the ULA prefix by SLAAC from the firewall's router advertisements, takes the
# firewall's link-local address as its default router and pings the router's v6 address; the
# zone policy holds for IPv6: the LAN opens connections to IoT, IoT opens none to the LAN, and
# guests reach neither. Addresses are examples/roost.toml's (ula_prefix fd12:3456:789a::/48;
# LAN index 1, IoT 20 = 0x14, guest 30 = 0x1e).
# Mirrors: lab_ipv6_lan_client_gets_a_slaac_address_and_a_default_route_via_the_router
# Mirrors: lab_ipv6_iot_cannot_open_a_connection_to_the_lan_while_the_lan_reaches_iot
# Mirrors: lab_ipv6_guest_reaches_neither_the_lan_nor_iot
{ pkgs, roostModule }:
let
  nodes = import ./lib.nix { inherit pkgs roostModule; };
  # Clients keep the kernel's defaults (accept_ra=1, autoconf=1), as household devices do.
  v6client = args: { ... }: {
    imports = [ (nodes.client args) ];
    networking.enableIPv6 = true;
    networking.tempAddresses = "disabled";
  };
in
pkgs.testers.runNixOSTest {
  name = "vm-ipv6";
  nodes = {
    inherit (nodes) isp router;
    lan = v6client { address = "192.168.1.99"; };
    lanpeer = v6client { address = "192.168.1.11"; };
    iot = v6client { zone = "iot"; address = "192.168.20.99"; };
    guest = v6client { zone = "guest"; address = "192.168.30.99"; };
  };
  testScript = ''
    def slaac(machine, prefix):
        """The machine's address in the zone /64, once SLAAC has made it."""
        cmd = f"ip -6 -o addr show scope global -tentative | grep -o '{prefix}:[0-9a-f:]*' | head -1"
        machine.wait_until_succeeds(f"test -n \"$({cmd})\"", timeout=120)
        return machine.succeed(cmd).strip()

    start_all()
    router.wait_for_unit("microvms.target")
    for m in (lan, iot, guest):
        m.succeed("python3 -m http.server --bind :: 8080 >/dev/null 2>&1 &")

    with subtest("the LAN client gets a SLAAC address and a default route via the router"):
        lan_addr = slaac(lan, "fd12:3456:789a:1")
        # The default route is learned from the advertisement, via a link-local address.
        lan.wait_until_succeeds("ip -6 route show default | grep -q 'via fe80::.* proto ra'", timeout=60)
        # The router answers on its own address in the zone.
        lan.wait_until_succeeds("ping -6 -c1 -W2 fd12:3456:789a:1::1", timeout=30)

    with subtest("IoT opens no connection to the LAN; the LAN reaches IoT"):
        iot_addr = slaac(iot, "fd12:3456:789a:14")
        # LAN may reach IoT (reach = ["wan", "iot"]): the IoT listener is there.
        lan.wait_until_succeeds(f"nc -6 -z -w2 {iot_addr} 8080", timeout=30)
        # The LAN listener answers inside its own zone ...
        slaac(lanpeer, "fd12:3456:789a:1")
        lanpeer.wait_until_succeeds(f"nc -6 -z -w2 {lan_addr} 8080", timeout=30)
        # ... but not to IoT.
        iot.fail(f"nc -6 -z -w2 {lan_addr} 8080")
        iot.fail(f"ping -6 -c1 -W2 {lan_addr}")

    with subtest("guests reach neither the LAN nor IoT over IPv6"):
        slaac(guest, "fd12:3456:789a:1e")
        # The guest has working IPv6 to its router: the negative checks below can fail.
        guest.wait_until_succeeds("ping -6 -c1 -W2 fd12:3456:789a:1e::1", timeout=30)
        guest.fail(f"nc -6 -z -w2 {lan_addr} 8080")
        guest.fail(f"nc -6 -z -w2 {iot_addr} 8080")
  '';
}
