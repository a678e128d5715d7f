# Verifies the web UI through the router: a LAN client gets the first-run page over HTTPS on
# its router address and a redirect to HTTPS on port 80, while neither the guest zone nor the
# WAN side can connect; after the administrator password is set and the admin logs in, a DHCP
# reservation made through the API is what dhcp then hands the reserved MAC, and a port forward
# made through the API appears in the firewall VM's live nftables ruleset. The password here is
# test-only.
# Mirrors: lab_web_answers_the_lan_and_refuses_guest_and_wan
# Mirrors: lab_web_reservation_is_applied_by_dhcp
# Mirrors: lab_web_port_forward_reaches_the_firewall_ruleset
{ pkgs, roostModule }:
let
  nodes = import ./lib.nix { inherit pkgs roostModule; };
in
pkgs.testers.runNixOSTest {
  name = "vm-web";
  nodes = {
    inherit (nodes) isp;
    router = { ... }: {
      imports = [ nodes.router ];
      systemd.tmpfiles.rules = [ "d /tmp/ruleset-firewall 0777 - - -" ];
      microvm.vms.firewall.config.imports = [ (import ./ruleset.nix { inherit pkgs; }) ];
    };
    lan = nodes.client { address = "192.168.1.99"; };
    guest = nodes.client { zone = "guest"; address = "192.168.30.99"; };
    printer = { ... }: {
      imports = [ (nodes.client { address = "192.168.1.98"; }) ];
      environment.systemPackages = [ pkgs.busybox ];
    };
  };
  testScript = ''
    import json
    import shlex

    PASSWORD = "web-test-password"

    def api(path, body, csrf=None):
        """POST JSON to the UI's API from the LAN client, keeping the session in a cookie jar."""
        headers = "-H 'content-type: application/json'"
        if csrf is not None:
            headers += f" -H 'x-csrf-token: {csrf}'"
        return lan.succeed(
            f"curl -ksf -m10 -b /tmp/jar -c /tmp/jar -X POST https://192.168.1.1{path} {headers}"
            f" -d {shlex.quote(json.dumps(body))}"
        )

    start_all()
    router.wait_for_unit("microvms.target")
    lan.wait_until_succeeds("curl -ksf -m5 -o /dev/null https://192.168.1.1/", timeout=300)

    with subtest("the UI answers the LAN and refuses the guest zone and the WAN"):
        page = lan.succeed("curl -ksfL -m5 https://192.168.1.1/")
        # No password is set yet: the LAN gets the first-run page.
        assert "Set the administrator password" in page, page
        out = lan.succeed("curl -s -m5 -o /dev/null -w '%{http_code} %{redirect_url}' http://192.168.1.1/")
        # Port 80 only redirects, and to HTTPS.
        assert out.split(" ")[0] in ("301", "302", "307", "308") and " https://192.168.1.1" in out, out
        # The guest zone is connected (it reaches the WAN) ...
        guest.wait_until_succeeds("curl -sf -m5 http://198.51.100.80/", timeout=120)
        # ... but reaches the UI neither on its own router address nor on the LAN's.
        for address in ("192.168.30.1", "192.168.1.1"):
            for port in (443, 80):
                guest.fail(f"nc -z -w2 {address} {port}")
        wan = lan.wait_until_succeeds("curl -sf -m5 http://198.51.100.80/", timeout=120).split()[1]
        # The WAN address publishes no UI port.
        for port in (443, 80):
            isp.fail(f"nc -z -w2 {wan} {port}")
        # Nor does a hostile ISP that routes the private ranges at us reach the LAN router
        # address or the web VM's own link address.
        isp.succeed(f"ip route add 192.168.0.0/16 via {wan}")
        isp.succeed(f"ip route add 10.254.0.0/24 via {wan}")
        isp.fail("nc -z -w2 192.168.1.1 443")
        isp.fail("nc -z -w2 10.254.0.14 443")

    with subtest("a reservation made in the UI is applied by dhcp"):
        api("/api/setup", {"password": PASSWORD})
        login = json.loads(api("/api/login", {"user": "admin", "password": PASSWORD}))
        csrf = login["csrf"]
        reservation = {"zone": "lan", "mac": "02:00:00:00:00:50", "ip": "192.168.1.50", "hostname": "printer"}
        # A change without the session's CSRF token is refused ...
        lan.fail(
            "curl -ksf -m10 -b /tmp/jar -X POST https://192.168.1.1/api/reservations"
            f" -H 'content-type: application/json' -d {shlex.quote(json.dumps(reservation))}"
        )
        # ... and accepted with it.
        api("/api/reservations", reservation, csrf)
        printer.succeed(
            "ip addr flush dev eth1; ip link set eth1 down;"
            " ip link set eth1 address 02:00:00:00:00:50; ip link set eth1 up"
        )
        # dhcp now hands the reserved MAC its address, so the reservation is in its state.
        printer.wait_until_succeeds(
            "busybox udhcpc -n -q -f -t 5 -T 2 -i eth1 -s /bin/true 2>&1 | grep -q 'lease of 192.168.1.50 obtained'",
            timeout=120,
        )

    with subtest("a port forward made in the UI reaches the firewall's ruleset"):
        router.wait_until_succeeds("test -s /tmp/ruleset-firewall/ruleset", timeout=120)
        # Not in the live ruleset before the change ...
        router.fail("grep -q 'dport 2222' /tmp/ruleset-firewall/ruleset")
        api(
            "/api/port-forwards",
            {"name": "ssh", "protocol": "tcp", "port": 2222, "to": "192.168.1.50", "to_port": 22},
            csrf,
        )
        # ... and DNATed to the printer after it.
        router.wait_until_succeeds(
            "grep -E 'dport 2222 .*to 192.168.1.50:22' /tmp/ruleset-firewall/ruleset", timeout=60
        )
  '';
}
