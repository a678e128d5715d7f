# The dhcp VM's guest side: roost-dhcp serves every zone with a pool on that zone's bridge
# (DHCP needs broadcast) and keeps its lease journal on the VM's state volume. It binds port 67
# per interface, and port 547 on ff02::1:2 per IPv6 zone for stateless DHCPv6 (SO_BINDTODEVICE
# needs CAP_NET_RAW), and nothing else privileged. DHCPv6 reads /sys/class/net (index, MAC)
# and /proc/self/net/if_inet6 (link-local ready; /proc/net itself is hidden by ProcSubset=pid).
{ config, lib, ... }:
let
  cfg = config.services.roost.dhcp;
  service = import ../lib/service.nix { inherit lib; };
in
{
  imports = [ ./options.nix ];

  config = lib.mkIf cfg.enable {
    systemd.services.roost-dhcp = service {
      name = "dhcp";
      inherit (cfg) package configFile;
      description = "Roost DHCP: leases for every zone";
      capabilities = [ "CAP_NET_BIND_SERVICE" "CAP_NET_RAW" ];
      needs = [ "roost-net.service" ];
    };
  };
}
