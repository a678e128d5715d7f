# The firewall VM's guest side: roost-firewall owns routing, NAT and the zone policy. It needs
# CAP_NET_ADMIN (nftables, addresses, routes), CAP_NET_RAW and CAP_NET_BIND_SERVICE (its DHCP
# and DHCPv6 clients on the WAN, router advertisements and solicitations), and nothing else.
{ config, lib, pkgs, ... }:
let
  cfg = config.services.roost.firewall;
  service = import ../lib/service.nix { inherit lib; };
in
{
  imports = [ ./options.nix ];

  config = lib.mkMerge [
    (lib.mkIf cfg.enable {
      # Forwarding is set here, so the unit can keep ProtectKernelTunables.
      boot.kernel.sysctl = {
        "net.ipv4.ip_forward" = 1;
        "net.ipv4.conf.all.rp_filter" = 1;
        # IPv6 on the zones (docs/adr/0009-ipv6-zones.md): the firewall routes and sends the
        # router advertisements itself, so it takes none (the daemon checks these and writes
        # only what differs).
        "net.ipv6.conf.all.forwarding" = 1;
        "net.ipv6.conf.all.accept_ra" = 0;
        "net.ipv6.conf.default.accept_ra" = 0;
      };
      # The ruleset is roost-firewall's alone: no NixOS firewall beside it.
      networking.firewall.enable = false;
      networking.nftables.enable = false;
      systemd.services.roost-firewall = service {
        name = "firewall";
        inherit (cfg) package configFile;
        description = "Roost firewall: zones, NAT and port forwards";
        capabilities = [ "CAP_NET_ADMIN" "CAP_NET_RAW" "CAP_NET_BIND_SERVICE" ];
        addressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" "AF_NETLINK" "AF_PACKET" ];
        path = [ pkgs.nftables pkgs.iproute2 ];
      };
    })
    (lib.mkIf (cfg.enable && cfg.wanIpv6) {
      # The ISP's advertisements give the WAN's IPv6 default route; a forwarding interface
      # takes them only with accept_ra = 2. The NIC exists only once the VM has booted, so
      # this is set just before the daemon starts (which then finds it in place).
      systemd.services.roost-firewall.serviceConfig.ExecStartPre = [
        "+${pkgs.procps}/bin/sysctl -q -w net.ipv6.conf.wan.accept_ra=2"
      ];
    })
    (lib.mkIf (cfg.enable && cfg.pppoe != null) {
      # The PPPoE uplink (ADR 0011): pppd makes ppp0 on the WAN NIC; roost-firewall follows its
      # address. pppd needs the kernel's PPPoE support and root; the password is read from the
      # state volume at each start into pppd's secrets files, never into the Nix store.
      boot.kernelModules = [ "ppp_generic" "pppoe" ];
      environment.etc."ppp/peers/roost".source = cfg.pppoe.peerFile;
      systemd.services.roost-pppoe = {
        description = "Roost PPPoE uplink (pppd)";
        wantedBy = [ "multi-user.target" ];
        after = [ "roost-net.service" ];
        before = [ "roost-firewall.service" ];
        preStart = ''
          umask 077
          password=$(cat ${lib.escapeShellArg cfg.pppoe.passwordFile})
          for f in pap-secrets chap-secrets; do
            printf '"%s" * "%s" *\n' ${lib.escapeShellArg cfg.pppoe.username} "$password" > /etc/ppp/$f
          done
        '';
        serviceConfig = {
          ExecStart = "${pkgs.ppp}/bin/pppd call roost nodetach";
          Restart = "always";
          RestartSec = 5;
          CapabilityBoundingSet = [ "CAP_NET_ADMIN" "CAP_NET_RAW" ];
          DeviceAllow = [ "/dev/ppp rw" ];
          ProtectHome = true;
          PrivateTmp = true;
          NoNewPrivileges = true;
        };
      };
    })
  ];
}
