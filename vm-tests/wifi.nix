# Verifies the Wi-Fi access point (ADR 0013): the router's Wi-Fi VM runs hostapd on the
# networks `[wifi]` declares, each bridged into its zone; a station joins the WPA3-only network
# with SAE (a wrong passphrase does not), gets a lan lease from the dhcp VM and reaches the ISP
# through the firewall's NAT, and joins the WPS network through the push button (`roostctl
# wifi wps` in the VM); roost-wifi's control API answers the web VM (its Wi-Fi page). There is no USB radio in a test VM: the Wi-Fi VM gets mac80211_hwsim's two
# simulated radios instead (hostapd takes the first as it would the USB one), and the station
# is the second radio in a network namespace of that VM, since the simulated air is one
# kernel's. The station writes what it saw to a share the test reads on the router.
# Mirrors: lab_wifi_station_joins_with_wpa3_and_wps_and_gets_a_lease
{ pkgs, roostModule }:
let
  common = import ./lib.nix { inherit pkgs roostModule; };
  # Test-only passphrases.
  homePassphrase = "correct horse battery";
  thingsPassphrase = "staple things 2026";
  secrets = "/var/lib/roost/wifi";
  results = "/var/lib/roost-station";
  network = ssid: passphrase: ''
    network={
      ssid="${ssid}"
      key_mgmt=SAE
      sae_password="${passphrase}"
      ieee80211w=2
    }
  '';
  stationConf = body: pkgs.writeText "station.conf" ''
    ctrl_interface=/run/wpa_supplicant
    ${body}
  '';
  # The station, in the Wi-Fi VM: SAE with a wrong passphrase, then the right one, a lease and
  # the ISP's web server; then WPS. Each outcome goes to a file in the results share.
  station = { config, lib, ... }: {
    boot.kernelModules = [ "mac80211_hwsim" ];
    microvm.devices = lib.mkForce [ ];
    microvm.shares = [{ proto = "virtiofs"; tag = "station"; source = results; mountPoint = "/station"; }];
    systemd.services.lab-station = {
      wantedBy = [ "multi-user.target" ];
      after = [ "roost-hostapd.service" "roost-wifi.service" ];
      path = [ pkgs.iproute2 pkgs.iw pkgs.wpa_supplicant pkgs.busybox pkgs.curl config.services.roost.wifi.roostctl ];
      serviceConfig = { Type = "oneshot"; RemainAfterExit = true; };
      script = ''
        set -x
        cli() { wpa_cli -p /run/wpa_supplicant -i wlan1 "$@"; }
        completed() {
          for _ in $(seq "$1"); do
            cli status | grep -q '^wpa_state=COMPLETED' && return 0
            sleep 1
          done
          return 1
        }
        supplicant() {
          pkill wpa_supplicant || true
          sleep 1
          ip netns exec station wpa_supplicant -B -D nl80211 -i wlan1 -c "$1"
        }
        ip netns add station
        iw phy phy1 set netns name station
        ip -n station link set lo up

        supplicant ${stationConf (network "Roost Things" "not the passphrase")}
        if completed 15; then echo joined >/station/wrong; else echo refused >/station/wrong; fi

        supplicant ${stationConf (network "Roost Things" thingsPassphrase)}
        completed 60
        cli status >/station/sae
        ip netns exec station udhcpc -i wlan1 -n -q -t 10 -T 2 \
          -s ${pkgs.busybox}/default.script >>/station/sae 2>&1 || true
        ip netns exec station curl -sf -m 10 http://198.51.100.80/ >/station/internet

        supplicant ${stationConf ""}
        roostctl wifi wps /etc/roost/wifi.toml >/station/button
        cli wps_pbc
        completed 120
        cli status >/station/wps
      '';
    };
  };
in
pkgs.testers.runNixOSTest {
  name = "vm-wifi";
  nodes = {
    inherit (common) isp;
    lan = common.client { address = "192.168.1.99"; };
    router = { ... }: {
      imports = [ common.router ];
      services.roost.settings.wifi = {
        # Validated as on a real router; the test VM passes no USB device (station above).
        usb_radio = "0bda:8812";
        country = "DE";
        networks.home = {
          ssid = "Roost Home";
          zone = "lan";
          passphrase_file = "${secrets}/home";
          wps = true;
        };
        networks.things = {
          ssid = "Roost Things";
          zone = "lan";
          security = "wpa3";
          passphrase_file = "${secrets}/things";
        };
      };
      # microvm.nix's `config` is a deferred module: this adds to the router's Wi-Fi guest.
      microvm.vms.wifi.config = station;
      systemd.tmpfiles.rules = [
        "d ${results} 0700 root root -"
        "f+ ${secrets}/home 0600 root root - ${homePassphrase}"
        "f+ ${secrets}/things 0600 root root - ${thingsPassphrase}"
      ];
    };
  };
  testScript = ''
    import json

    start_all()
    router.wait_for_unit("microvms.target")
    router.wait_until_succeeds("test -s ${results}/wps", timeout=600)

    with subtest("a wrong passphrase does not join"):
        router.succeed("grep -qx refused ${results}/wrong")

    with subtest("SAE joins the WPA3 network; the lease is lan's; the ISP sees the router"):
        router.succeed("grep -q '^ssid=Roost Things' ${results}/sae")
        router.succeed("grep -q '^key_mgmt=SAE' ${results}/sae")
        router.succeed("grep -q 'lease of 192.168.1.' ${results}/sae")
        router.succeed("grep -q '^client 203.0.113.' ${results}/internet")

    with subtest("the web UI's Wi-Fi page reaches roost-wifi: the radio and its networks"):
        lan.wait_until_succeeds("curl -ksf -m5 -o /dev/null https://192.168.1.1/", timeout=300)
        lan.succeed(
            "curl -ksf -m10 -c /tmp/jar -H 'content-type: application/json' "
            "-d '{\"password\": \"wifi-test-password\"}' https://192.168.1.1/api/setup"
        )
        state = json.loads(lan.succeed("curl -ksf -m10 -b /tmp/jar https://192.168.1.1/api/wifi"))
        assert state["state"] == "ENABLED", state
        names = sorted(n["name"] for n in state["networks"])
        assert names == ["home", "things"], state

    with subtest("the WPS button joins the home network"):
        router.succeed("grep -q 'push button pressed on network home' ${results}/button")
        router.succeed("grep -q '^ssid=Roost Home' ${results}/wps")
        router.succeed("grep -q '^wpa_state=COMPLETED' ${results}/wps")
  '';
}
