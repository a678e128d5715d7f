# What every Roost service VM has besides its daemon: interfaces renamed to the names its
# settings view uses, the network step (`roostctl net apply`) that addresses them from the view
# before the daemon starts, the control-API tokens the host provisions (read-only, group
# roost-tokens), a persistent state volume, and nothing to log in with.
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.services.roost.guest;
in
{
  options.services.roost.guest = {
    service = mkOption {
      type = types.str;
      description = "The Roost service this VM runs (firewall, dns, dhcp, ...).";
    };
    roostctl = mkOption {
      type = types.package;
      description = "roostctl, for the network step.";
    };
    view = mkOption {
      type = types.path;
      description = "This VM's settings view, rendered on the host.";
    };
    interfaces = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = { svc = "02:12:34:56:78:9a"; };
      description = "Interface name (as the view names it) to the MAC the host gave its tap.";
    };
    addressesFromView = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Address the interfaces from the view's `network` table before the daemon starts.
        Off for the firewall, which addresses its own.
      '';
    };
  };

  config = {
    system.stateVersion = "26.05";
    networking.hostName = "roost-${cfg.service}";
    networking.useDHCP = false;
    networking.firewall.enable = lib.mkDefault false;
    documentation.enable = false;
    services.openssh.enable = false;
    users.mutableUsers = false;
    users.allowNoPasswordLogin = true;
    users.groups.roost-tokens.gid = 900;

    environment.etc."roost/${cfg.service}.toml".source = cfg.view;

    # Stable names, matched by MAC: the view says `svc`, `lan`, `wan`, ...
    systemd.network.links = lib.mapAttrs'
      (name: mac: lib.nameValuePair "10-roost-${name}" {
        matchConfig.PermanentMACAddress = mac;
        linkConfig.Name = name;
      })
      cfg.interfaces;

    systemd.services.roost-net = lib.mkIf cfg.addressesFromView {
      description = "Address this VM's interfaces from its Roost settings view";
      wantedBy = [ "multi-user.target" ];
      before = [ "roost-${cfg.service}.service" "network-online.target" ];
      wants = [ "network-pre.target" ];
      after = [ "network-pre.target" "systemd-udev-settle.service" ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = "${lib.getExe cfg.roostctl} net apply /etc/roost/${cfg.service}.toml";
        AmbientCapabilities = [ "CAP_NET_ADMIN" ];
        CapabilityBoundingSet = [ "CAP_NET_ADMIN" ];
        DynamicUser = true;
        ProtectSystem = "strict";
        RestrictAddressFamilies = [ "AF_NETLINK" "AF_UNIX" ];
      };
      path = [ config.systemd.package ];
    };
  };
}
