# The Wi-Fi VM's guest side (ADR 0013): hostapd on the USB radio the host passes through, one
# network per `[wifi.networks]` entry, each bridged into its zone through this VM's NIC on
# that zone's host bridge (no address there: the firewall VM still routes and filters
# everything the stations send), and roost-wifi, the control API on the service link that
# the web UI's Wi-Fi page and WPS button use. hostapd.conf is rendered at each start by
# roostctl from the view, reading the passphrase files then, so no passphrase is in the Nix
# store.
{ config, lib, pkgs, ... }:
let
  cfg = config.services.roost.wifi;
  service = import ../lib/service.nix { inherit lib; };
in
{
  imports = [ ./options.nix ];

  config = lib.mkIf cfg.enable {
    # The radio's firmware (most USB adapters need a blob) and the regulatory database.
    hardware.enableRedistributableFirmware = true;
    hardware.wirelessRegulatoryDatabase = true;
    # roost-wifi's group: hostapd's control sockets are root's and this group's.
    users.groups.roost-wifi = { };

    # A bridge per zone, holding the VM's NIC on it; hostapd adds its network's interface.
    systemd.network = {
      enable = true;
      netdevs = lib.listToAttrs (map
        (z: lib.nameValuePair "20-br-${z}" { netdevConfig = { Kind = "bridge"; Name = "br-${z}"; }; })
        cfg.zones);
      networks = lib.listToAttrs
        (map
          (z: lib.nameValuePair "30-${z}" {
            matchConfig.Name = z;
            networkConfig = { Bridge = "br-${z}"; LinkLocalAddressing = "no"; };
          })
          cfg.zones)
      // lib.listToAttrs (map
        (z: lib.nameValuePair "40-br-${z}" {
          matchConfig.Name = "br-${z}";
          networkConfig = { LinkLocalAddressing = "no"; ConfigureWithoutCarrier = true; };
        })
        cfg.zones);
    };

    systemd.services.roost-hostapd = {
      description = "Roost Wi-Fi access point (hostapd)";
      wantedBy = [ "multi-user.target" ];
      after = [ "systemd-networkd.service" "sys-subsystem-net-devices-wlan0.device" ];
      bindsTo = [ "sys-subsystem-net-devices-wlan0.device" ];
      path = [ pkgs.hostapd ];
      serviceConfig = {
        RuntimeDirectory = "hostapd";
        # hostapd gives the directory and its sockets to ctrl_interface_group (roost-wifi);
        # hostapd.conf in it stays 0600, root's.
        RuntimeDirectoryMode = "0750";
        ExecStartPre = "${lib.getExe cfg.roostctl} wifi hostapd ${cfg.configFile} --ctrl-group roost-wifi --out /run/hostapd/hostapd.conf";
        ExecStart = "${pkgs.hostapd}/bin/hostapd /run/hostapd/hostapd.conf";
        Restart = "always";
        RestartSec = "5s";
        # hostapd drives the radio and the bridges (nl80211, raw frames): root with only
        # the network capabilities, nothing else of the system writable.
        CapabilityBoundingSet = [ "CAP_NET_ADMIN" "CAP_NET_RAW" ];
        RestrictAddressFamilies = [ "AF_UNIX" "AF_NETLINK" "AF_PACKET" "AF_INET" "AF_INET6" ];
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        NoNewPrivileges = true;
        LockPersonality = true;
        RestrictRealtime = true;
        SystemCallArchitectures = "native";
      };
    };

    # The control API: hostapd's state and the WPS button, through its control sockets.
    systemd.services.roost-wifi = lib.mkMerge [
      (service {
        name = "wifi";
        inherit (cfg) package configFile;
        description = "Roost Wi-Fi: the control API over hostapd";
        needs = [ "roost-net.service" "roost-hostapd.service" ];
      })
      { serviceConfig.SupplementaryGroups = [ "roost-wifi" ]; }
    ];
  };
}
