# The dns VM's guest side: roost-dns answers port 53 on its service link (the firewall DNATs
# each zone's router address to it) and asks its upstreams. It binds port 53 and nothing else
# privileged.
{ config, lib, ... }:
let
  cfg = config.services.roost.dns;
  service = import ../lib/service.nix { inherit lib; };
in
{
  imports = [ ./options.nix ];

  config = lib.mkIf cfg.enable {
    systemd.services.roost-dns = service {
      name = "dns";
      inherit (cfg) package configFile;
      description = "Roost DNS: caching resolver";
      capabilities = [ "CAP_NET_BIND_SERVICE" ];
      needs = [ "roost-net.service" ];
    };
  };
}
