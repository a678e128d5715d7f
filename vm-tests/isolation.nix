# Verifies the compartments: IoT reaches the WAN but neither the LAN nor a service's control
# API; guests reach only the WAN; a shell in the dns VM (a compromised service) reaches neither
# the web VM's control API, nor dhcp's, nor the LAN, while the web VM reaches dhcp's.
# Mirrors: lab_iot_reaches_neither_the_lan_nor_the_service_links
# Mirrors: lab_guest_reaches_only_the_wan
# Mirrors: lab_compromised_dns_reaches_neither_the_web_control_api_nor_lan_clients
{ pkgs, roostModule }:
let
  nodes = import ./lib.nix { inherit pkgs roostModule; };
in
pkgs.testers.runNixOSTest {
  name = "vm-isolation";
  nodes = {
    inherit (nodes) isp;
    router = { ... }: {
      imports = [ nodes.router ];
      systemd.tmpfiles.rules = [ "d /tmp/probe-dns 0777 - - -" "d /tmp/probe-dhcp 0777 - - -" ];
      microvm.vms.dns.config.imports = [
        (import ./probe.nix {
          inherit pkgs;
          vm = "dns";
          targets = [
            { label = "firewall-control"; host = "10.254.0.13"; port = 9100; }
            { label = "dhcp-control"; host = "10.254.0.10"; port = 9100; }
            { label = "lan-client"; host = "192.168.1.99"; port = 8080; }
          ];
        })
      ];
      microvm.vms.dhcp.config.imports = [
        (import ./probe.nix {
          inherit pkgs;
          vm = "dhcp";
          targets = [{ label = "dns-control"; host = "10.254.0.6"; port = 9100; }];
        })
      ];
    };
    lan = nodes.client { address = "192.168.1.99"; };
    iot = nodes.client { zone = "iot"; address = "192.168.20.99"; };
    guest = nodes.client { zone = "guest"; address = "192.168.30.99"; };
  };
  testScript = ''
    start_all()
    router.wait_for_unit("microvms.target")
    for m in (lan, iot, guest):
        m.succeed("python3 -m http.server --bind 0.0.0.0 8080 >/dev/null 2>&1 &")
    lan.wait_until_succeeds("curl -sf -m5 http://198.51.100.80/", timeout=120)

    with subtest("IoT reaches the WAN, not the LAN nor a control API"):
        # LAN may reach IoT (reach = ["wan", "iot"]): the listener is there.
        lan.wait_until_succeeds("nc -z -w2 192.168.20.99 8080", timeout=30)
        iot.succeed("curl -sf -m5 http://198.51.100.80/")
        iot.fail("nc -z -w2 192.168.1.99 8080")
        iot.fail("nc -z -w2 10.254.0.6 9100")

    with subtest("guests reach only the WAN"):
        guest.succeed("curl -sf -m5 http://198.51.100.80/")
        guest.fail("nc -z -w2 192.168.1.99 8080")
        guest.fail("nc -z -w2 192.168.20.99 8080")

    with subtest("a compromised dns VM reaches no control API and no LAN client"):
        router.succeed("touch /tmp/probe-dns/go /tmp/probe-dhcp/go")
        # The dhcp VM may call dns's control API (lease push): the probe's positive twin.
        router.wait_until_succeeds("grep -q 'dns-control reached' /tmp/probe-dhcp/result", timeout=300)
        router.wait_until_succeeds("test -s /tmp/probe-dns/result", timeout=300)
        result = router.succeed("cat /tmp/probe-dns/result")
        for label in ("firewall-control", "dhcp-control", "lan-client"):
            assert f"{label} blocked" in result, result
  '';
}
