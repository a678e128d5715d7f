# Verifies the MQTT broker through the router: an IoT sensor publishes to its router address,
# a LAN dashboard subscribed at its own router address receives it, and a guest cannot even
# connect (no listener in the guest zone). Users are made the way a user would, with argon2id
# hashes; the passwords here are test-only. The router's own telemetry (published by the web VM
# through the broker's control API) is readable under roost/ and no device can overwrite it.
# Mirrors: lab_iot_sensor_publishes_and_lan_dashboard_receives_while_guests_cannot_connect
# Mirrors: lab_mqtt_dashboard_reads_the_router_telemetry_that_no_device_can_write
# Mirrors: lab_mqtt_over_ipv6_at_each_zones_router_ula_address_while_guests_cannot_connect
# (The last: the same over IPv6, at each zone's router ULA address, SLAAC from the firewall.)
{ pkgs, roostModule }:
let
  nodes = import ./lib.nix { inherit pkgs roostModule; };
  # argon2id of "sensor-password" and "dashboard-password", made with `roostctl passwd`.
  hashes = pkgs.runCommand "mqtt-test-hashes" { nativeBuildInputs = [ pkgs.libargon2 ]; } ''
    mkdir $out
    printf sensor-password | argon2 sensorsalt0123 -id -e > $out/sensor
    printf dashboard-password | argon2 dashboardsalt01 -id -e > $out/dashboard
  '';
  withMqtt = m: { ... }: {
    imports = [ m ];
    environment.systemPackages = [ pkgs.mosquitto ];
  };
in
pkgs.testers.runNixOSTest {
  name = "vm-mqtt";
  nodes = {
    inherit (nodes) isp;
    router = { ... }: {
      imports = [ nodes.router ];
      services.roost.settings.mqtt.users = [
        { name = "sensor"; password_hash = builtins.readFile "${hashes}/sensor"; publish = [ "sensors/#" ]; }
        { name = "dashboard"; password_hash = builtins.readFile "${hashes}/dashboard"; subscribe = [ "sensors/#" ]; }
      ];
    };
    lan = withMqtt (nodes.client { address = "192.168.1.99"; });
    iot = withMqtt (nodes.client { zone = "iot"; address = "192.168.20.99"; });
    guest = withMqtt (nodes.client { zone = "guest"; address = "192.168.30.99"; });
  };
  testScript = ''
    start_all()
    router.wait_for_unit("microvms.target")
    lan.wait_until_succeeds("nc -z -w2 192.168.1.1 1883", timeout=300)

    with subtest("an IoT sensor publishes, a LAN dashboard receives"):
        lan.succeed(
            "(mosquitto_sub -h 192.168.1.1 -u dashboard -P dashboard-password -t 'sensors/#' -C 1 -W 90 > /tmp/got) >/dev/null 2>&1 &"
        )
        # Publish until the subscriber, which may still be connecting, has it.
        for _ in range(30):
            iot.succeed("mosquitto_pub -h 192.168.20.1 -u sensor -P sensor-password -t sensors/temp -m 21.5 -q 1")
            if lan.execute("grep -q 21.5 /tmp/got")[0] == 0:
                break
            lan.sleep(1)
        else:
            raise Exception("the dashboard never received the sensor's message")

    with subtest("a guest cannot connect"):
        guest.fail("nc -z -w2 192.168.30.1 1883")

    with subtest("the same over IPv6 at each zone's router ULA address; guests cannot connect"):
        for m, prefix in ((lan, "fd12:3456:789a:1:"), (iot, "fd12:3456:789a:14:"), (guest, "fd12:3456:789a:1e:")):
            m.wait_until_succeeds(f"ip -6 -o addr show -tentative | grep -q '{prefix}'", timeout=120)
        lan.succeed(
            "(mosquitto_sub -h fd12:3456:789a:1::1 -u dashboard -P dashboard-password -t 'sensors/#' -C 1 -W 90 > /tmp/got6) >/dev/null 2>&1 &"
        )
        for _ in range(30):
            iot.succeed("mosquitto_pub -h fd12:3456:789a:14::1 -u sensor -P sensor-password -t sensors/hum -m 61 -q 1")
            if lan.execute("grep -q 61 /tmp/got6")[0] == 0:
                break
            lan.sleep(1)
        else:
            raise Exception("the dashboard never received the sensor's message over IPv6")
        guest.fail("nc -6 -z -w2 fd12:3456:789a:1e::1 1883")

    with subtest("the router's telemetry is readable under roost/ and not writable by devices"):
        read = "mosquitto_sub -h 192.168.1.1 -u dashboard -P dashboard-password -t roost/wan/address -C 1 -W 5"
        # The web VM publishes every 15 s, retained; the WAN address once the firewall has a lease.
        lan.wait_until_succeeds(read + " | grep -q '^203\\.0\\.113\\.'", timeout=120)
        # A sensor's retained publish to roost/ is not taken.
        iot.succeed("mosquitto_pub -h 192.168.20.1 -u sensor -P sensor-password -t roost/wan/address -r -m 198.51.100.66/24")
        lan.succeed(read + " | grep -q '^203\\.0\\.113\\.'")
  '';
}
