# The Roost host: a minimal NixOS that runs one microVM per network service and nothing else.
# Zones are bridges (the untagged zone and VLANs on `lanInterface`); every service VM has its
# own point-to-point link to the firewall VM (a two-port bridge `ln-<service>`, ADR 0001); the
# WAN NIC goes to the firewall VM alone (macvtap passthru). The host has no address on any of
# them. Addresses and policy come from the views roostctl renders (views.nix); this module only
# wires names.
{ config, lib, pkgs, ... }:
let
  cfg = config.services.roost;
  wifi = cfg.settings.wifi or null;
  voip = cfg.settings.voip or null;
  zones = cfg.settings.zones;
  zoneNames = lib.attrNames zones;
  dhcpZones = lib.attrNames (lib.filterAttrs (_: z: z.dhcp != null) zones);
  services = lib.attrNames (lib.filterAttrs (_: vm: vm.enable) cfg.vms);
  # The Linux VMs the settings declare: the Wi-Fi VM (ADR 0013), the VoIP VM (ADR 0014).
  linuxVms = lib.optional (wifi != null) "wifi" ++ lib.optional (voip != null) "voip";
  # Every VM with a link to the firewall: the services' and the Linux VMs.
  linked = lib.filter (s: s != "firewall") services ++ linuxVms;
  # Every VM with a control API, hence a token.
  controlled = services ++ linuxVms;

  views = import ./views.nix {
    inherit pkgs services;
    inherit (cfg) settings;
    roostctl = cfg.packages.roostctl;
  };

  # A locally administered MAC per VM interface, stable across rebuilds.
  mac = id:
    let
      h = builtins.hashString "sha256" id;
      byte = i: builtins.substring (2 * i) 2 h;
    in
    "02:${byte 0}:${byte 1}:${byte 2}:${byte 3}:${byte 4}";

  # Each VM's interfaces: the name its view uses -> its tap (host side, at most 15
  # characters) and the host bridge the tap joins.
  ports = svc:
    if svc == "firewall" then
      lib.genAttrs zoneNames (z: { tap = "fw-${z}"; bridge = "br-${z}"; })
      // lib.listToAttrs (map (s: lib.nameValuePair "svc-${s}" { tap = "lf-${s}"; bridge = "ln-${s}"; }) linked)
    else
      { svc = { tap = "ls-${svc}"; bridge = "ln-${svc}"; }; }
      // lib.optionalAttrs (svc == "dhcp") (lib.genAttrs dhcpZones (z: { tap = "dh-${z}"; bridge = "br-${z}"; }));

  # Whose control-API tokens each VM holds: its own, and those of the daemons it calls
  # (the firewall view's `flows`: the web VM calls every daemon, dhcp pushes leases to dns,
  # the update agent asks web's /peers/health after a switch, the firewall pushes its
  # neighbours to dns for AAAA records of lease names).
  tokensOf = svc:
    lib.unique ([ svc ]
      ++ lib.optionals (svc == "web") controlled
      ++ lib.optional (svc == "dhcp" && lib.elem "dns" services) "dns"
      ++ lib.optional (svc == "firewall" && lib.elem "dns" services) "dns"
      ++ lib.optional (svc == "update" && lib.elem "web" services) "web");

  guest = svc: vm: {
    imports = [ ../guest (../. + "/${svc}") ];
    services.roost.guest = {
      service = svc;
      inherit (cfg.packages) roostctl;
      view = "${views}/${svc}.toml";
      interfaces = lib.mapAttrs (name: _: mac "${svc}-${name}") (ports svc)
        // lib.optionalAttrs (svc == "firewall") { wan = mac "firewall-wan"; };
      addressesFromView = svc != "firewall";
    };
    services.roost.${svc} = {
      enable = true;
      package = cfg.packages."roost-${svc}";
      configFile = "${views}/${svc}.toml";
    } // lib.optionalAttrs (svc == "update") {
      inherit (cfg.update) rootFile checks;
    } // lib.optionalAttrs (svc == "firewall") {
      wanIpv6 = cfg.settings.wan ? ipv6;
    } // lib.optionalAttrs (svc == "firewall" && (cfg.settings.wan.mode or "dhcp") == "pppoe") {
      pppoe = {
        peerFile = "${views}/pppd-peer";
        inherit (cfg.settings.wan.pppoe) username;
        passwordFile = cfg.settings.wan.pppoe.password_file;
      };
    };
    microvm = {
      inherit (cfg) hypervisor;
      inherit (vm) mem vcpu;
      interfaces = lib.mapAttrsToList (name: p: { type = "tap"; id = p.tap; mac = mac "${svc}-${name}"; }) (ports svc)
        ++ lib.optional (svc == "firewall") {
        type = "macvtap";
        id = "fw-wan";
        mac = mac "firewall-wan";
        macvtap = { link = cfg.settings.wan.interface; mode = "passthru"; };
      };
      shares = [
        { proto = "virtiofs"; tag = "ro-store"; source = "/nix/store"; mountPoint = "/nix/.ro-store"; }
        { proto = "virtiofs"; tag = "tokens"; source = "/var/lib/roost/tokens/${svc}"; mountPoint = "/run/roost/tokens"; }
      ] ++ lib.optional (svc == "update") {
        proto = "virtiofs";
        tag = "spool";
        source = spool;
        mountPoint = "/var/lib/roost/spool";
      };
      volumes = [{ image = "state.img"; mountPoint = "/var/lib"; size = cfg.stateVolumeSize; }];
    };
  };

  # The update host step's settings (ADR 0012): what it verifies against and where it installs.
  updating = lib.elem "update" services;
  spool = "/var/lib/roost/update-spool";
  updateHostSettings = (pkgs.formats.toml { }).generate "update-host.toml" {
    root = "${cfg.update.rootFile}";
    hostname = cfg.settings.router.hostname;
    inherit spool;
    nix_bin = "${config.nix.package}/bin";
    restart = [ "${config.systemd.package}/bin/systemctl" "restart" "microvm@{vm}.service" ];
  };

  # The Wi-Fi VM (ADR 0013): hostapd and roost-wifi, a NIC on each zone its networks join and
  # its link to the firewall, the USB radio passed through, and the passphrase files shared
  # from the host.
  wifiZones = lib.optionals (wifi != null) (lib.unique (lib.mapAttrsToList (_: n: n.zone) wifi.networks));
  wifiPorts = lib.optionals (wifi != null) (map (z: { tap = "wf-${z}"; bridge = "br-${z}"; }) wifiZones
    ++ [{ tap = "ls-wifi"; bridge = "ln-wifi"; }]);
  # The radio's USB id, "vendor:product" in hex (validated by roostctl); lower case, as udev
  # compares sysfs's idVendor and idProduct.
  radioId = lib.splitString ":" (lib.toLower wifi.usb_radio);
  wifiSecrets = "/var/lib/roost/wifi";
  wifiGuest = {
    imports = [ ../guest ../wifi ];
    services.roost.guest = {
      service = "wifi";
      inherit (cfg.packages) roostctl;
      view = "${views}/wifi.toml";
      # Its zone NICs are bridge ports (no address); `svc` is addressed from the view.
      interfaces = lib.genAttrs wifiZones (z: mac "wifi-${z}") // { svc = mac "wifi-svc"; };
    };
    services.roost.wifi = {
      enable = true;
      package = cfg.packages.roost-wifi;
      inherit (cfg.packages) roostctl;
      configFile = "${views}/wifi.toml";
      zones = wifiZones;
    };
    microvm = {
      inherit (cfg) hypervisor;
      mem = 160;
      vcpu = 1;
      interfaces = map (z: { type = "tap"; id = "wf-${z}"; mac = mac "wifi-${z}"; }) wifiZones
        ++ [{ type = "tap"; id = "ls-wifi"; mac = mac "wifi-svc"; }];
      # qemu's usb-host: a USB device needs no IOMMU (the Pi 4's PCIe has none for vfio).
      devices = [{
        bus = "usb";
        path = "vendorid=0x${lib.head radioId},productid=0x${lib.last radioId}";
      }];
      shares = [
        { proto = "virtiofs"; tag = "ro-store"; source = "/nix/store"; mountPoint = "/nix/.ro-store"; }
        { proto = "virtiofs"; tag = "wifi-secrets"; source = wifiSecrets; mountPoint = wifiSecrets; }
        { proto = "virtiofs"; tag = "tokens"; source = "/var/lib/roost/tokens/wifi"; mountPoint = "/run/roost/tokens"; }
      ];
    };
  };

  # The VoIP VM (ADR 0014): Kamailio and roost-voip on its link to the firewall alone (the
  # firewall forwards SIP from the phones' zone), the phones' password files shared from
  # the host.
  voipSecrets = "/var/lib/roost/voip";
  voipGuest = {
    imports = [ ../guest ../voip ];
    services.roost.guest = {
      service = "voip";
      inherit (cfg.packages) roostctl;
      view = "${views}/voip.toml";
      interfaces.svc = mac "voip-svc";
    };
    services.roost.voip = {
      enable = true;
      package = cfg.packages.roost-voip;
      inherit (cfg.packages) roostctl;
      configFile = "${views}/voip.toml";
    };
    microvm = {
      inherit (cfg) hypervisor;
      mem = 160;
      vcpu = 1;
      interfaces = [{ type = "tap"; id = "ls-voip"; mac = mac "voip-svc"; }];
      shares = [
        { proto = "virtiofs"; tag = "ro-store"; source = "/nix/store"; mountPoint = "/nix/.ro-store"; }
        { proto = "virtiofs"; tag = "voip-secrets"; source = voipSecrets; mountPoint = voipSecrets; }
        { proto = "virtiofs"; tag = "tokens"; source = "/var/lib/roost/tokens/voip"; mountPoint = "/run/roost/tokens"; }
      ];
    };
  };

  bridges = map (z: "br-${z}") zoneNames ++ map (s: "ln-${s}") linked;
  taps = lib.concatMap (svc: lib.attrValues (ports svc)) services ++ wifiPorts
    ++ lib.optional (voip != null) { tap = "ls-voip"; bridge = "ln-voip"; };
  taggedZones = lib.filterAttrs (_: z: z.vlan != null) zones;
  untaggedZone = lib.findFirst (z: zones.${z}.vlan == null) null zoneNames;
in
{
  imports = [ ./options.nix ./asserts.nix ];

  config = lib.mkIf cfg.enable {
    # Sized so the default set fits a 2 GB Raspberry Pi 4 with room for the host.
    services.roost.vms = {
      firewall.mem = lib.mkDefault 256;
      dns.mem = lib.mkDefault 256;
      dhcp.mem = lib.mkDefault 160;
      mqtt.mem = lib.mkDefault 192;
      web.mem = lib.mkDefault 192;
      update = lib.mkIf (cfg.update.rootFile != null) { mem = lib.mkDefault 160; };
    };

    microvm.vms = lib.mapAttrs (svc: vm: { config = guest svc vm; }) (lib.filterAttrs (_: vm: vm.enable) cfg.vms)
      // lib.optionalAttrs (wifi != null) { wifi.config = wifiGuest; }
      // lib.optionalAttrs (voip != null) { voip.config = voipGuest; };
    # microvm.nix starts each declared VM at boot (`microvm.vms.<name>.autostart`, on by
    # default), each after its virtiofsd (`microvm-virtiofsd@`).
    #
    # qemu (user microvm, group kvm) opens the Wi-Fi radio's USB device node: microvm.nix sets
    # up permissions for PCI devices only.
    services.udev.extraRules = lib.optionalString (wifi != null) ''
      SUBSYSTEM=="usb", ATTR{idVendor}=="${lib.head radioId}", ATTR{idProduct}=="${lib.last radioId}", GROUP="kvm", MODE="0660"
    '';

    # The host only switches frames; it holds no address on any zone or link.
    networking.useNetworkd = true;
    networking.useDHCP = false;
    networking.firewall.enable = false;
    systemd.network = {
      enable = true;
      netdevs = lib.listToAttrs (map (b: lib.nameValuePair "20-${b}" { netdevConfig = { Kind = "bridge"; Name = b; }; }) bridges)
        // lib.mapAttrs'
        (z: zone: lib.nameValuePair "30-vlan-${z}" {
          netdevConfig = { Kind = "vlan"; Name = "vl-${z}"; };
          vlanConfig.Id = zone.vlan;
        })
        taggedZones;
      networks = {
        "10-lan-trunk" = {
          matchConfig.Name = cfg.lanInterface;
          networkConfig = {
            VLAN = map (z: "vl-${z}") (lib.attrNames taggedZones);
            LinkLocalAddressing = "no";
          } // lib.optionalAttrs (untaggedZone != null) { Bridge = "br-${untaggedZone}"; };
        };
      }
      // lib.mapAttrs'
        (z: _: lib.nameValuePair "30-vlan-${z}" {
          matchConfig.Name = "vl-${z}";
          networkConfig = { Bridge = "br-${z}"; LinkLocalAddressing = "no"; };
        })
        taggedZones
      // lib.listToAttrs (map
        (p: lib.nameValuePair "40-${p.tap}" {
          matchConfig.Name = p.tap;
          networkConfig = { Bridge = p.bridge; LinkLocalAddressing = "no"; };
        })
        taps)
      // lib.listToAttrs (map
        (b: lib.nameValuePair "50-${b}" {
          matchConfig.Name = b;
          networkConfig = { LinkLocalAddressing = "no"; ConfigureWithoutCarrier = true; };
        })
        bridges);
    };

    # The update host step (ADR 0012): the only part of an update with privilege, and with no
    # network at all. It takes requests from the update VM through the spool only, verifies
    # the TUF chain and every NAR again, imports, sets the system profile, switches and
    # restarts service VMs. It runs switch-to-configuration, so it is root and cannot have a
    # read-only system; what it must not have is a way in or out but the spool.
    systemd.tmpfiles.rules = lib.optionals (wifi != null) [
      # The Wi-Fi passphrase files (`wifi.networks.*.passphrase_file`), root's alone.
      "d ${wifiSecrets} 0700 root root -"
    ] ++ lib.optionals (voip != null) [
      # The phones' SIP password files (`voip.phones.*.password_file`), root's alone.
      "d ${voipSecrets} 0700 root root -"
    ] ++ lib.optionals updating [
      "d ${spool} 2770 root 901 -"
      "d ${spool}/requests 2770 root 901 -"
      "d ${spool}/replies 2770 root 901 -"
    ];
    systemd.services.roost-update-host = lib.mkIf updating {
      description = "Roost update host step: verifies and installs what the update VM fetched";
      wantedBy = [ "multi-user.target" ];
      before = [ "microvm@update.service" ];
      # It runs switch-to-configuration itself: a switch must not stop it halfway (a new
      # version of it takes over at the next boot).
      restartIfChanged = false;
      environment.RUST_LOG = lib.mkDefault "info";
      serviceConfig = {
        ExecStart = "${lib.getExe cfg.packages.roost-update} host --settings ${updateHostSettings}";
        Restart = "on-failure";
        RestartSec = "2s";
        StateDirectory = "roost/update-host";
        StateDirectoryMode = "0700";
        PrivateNetwork = true;
        IPAddressDeny = "any";
        # Nix's daemon socket and systemd's bus are all it talks to.
        RestrictAddressFamilies = [ "AF_UNIX" ];
        ProtectHome = true;
        PrivateTmp = true;
        LockPersonality = true;
        RestrictRealtime = true;
        SystemCallArchitectures = "native";
      };
    };

    # One random token per control-API link, made once and kept; each VM sees only the
    # tokens it needs (tokensOf), group roost-tokens (gid 900 in every guest).
    systemd.services.roost-tokens = {
      description = "Provision the Roost control-API tokens";
      # Before each VM's virtiofsd too, which shares the token directory it makes.
      wantedBy = [ "microvms.target" ];
      before = lib.concatMap (s: [ "microvm@${s}.service" "microvm-virtiofsd@${s}.service" ]) controlled;
      requiredBy = lib.concatMap (s: [ "microvm@${s}.service" "microvm-virtiofsd@${s}.service" ]) controlled;
      serviceConfig = { Type = "oneshot"; RemainAfterExit = true; UMask = "0077"; };
      script = ''
        set -eu
        store=/var/lib/roost/tokens
        install -d -m 0700 "$store/all"
        for svc in ${lib.concatStringsSep " " controlled}; do
          if [ ! -s "$store/all/$svc" ]; then
            head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$store/all/$svc"
          fi
        done
        ${lib.concatMapStrings (svc: ''
          install -d -m 0750 -g 900 "$store/${svc}"
          for peer in ${lib.concatStringsSep " " (tokensOf svc)}; do
            install -m 0640 -g 900 "$store/all/$peer" "$store/${svc}/$peer"
          done
        '') controlled}
      '';
    };
  };
}
