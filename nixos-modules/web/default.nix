# The web VM's guest side: roost-web serves the UI on its service link at the HTTPS port and
# redirects the HTTP port to it (the firewall DNATs the router address of each `web.zones`
# zone to it, and of no other), and calls every other daemon's control API with the tokens the
# host gives this VM alone. Settings versions and its self-signed certificate live on the VM's
# state volume. Ports 80 and 443 need CAP_NET_BIND_SERVICE; nothing else.
{ config, lib, ... }:
let
  cfg = config.services.roost.web;
  service = import ../lib/service.nix { inherit lib; };
in
{
  imports = [ ./options.nix ];

  config = lib.mkIf cfg.enable {
    systemd.services.roost-web = service {
      name = "web";
      inherit (cfg) package configFile;
      description = "Roost web: the administration UI and settings controller";
      capabilities = [ "CAP_NET_BIND_SERVICE" ];
      needs = [ "roost-net.service" ];
    };
  };
}
