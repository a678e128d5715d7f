# The mqtt VM's guest side: roost-mqtt listens on its service link at each listener port (the
# firewall DNATs each zone's router address to it) and keeps retained messages and persistent
# sessions on the VM's state volume. Port 1883 needs CAP_NET_BIND_SERVICE; nothing else.
{ config, lib, ... }:
let
  cfg = config.services.roost.mqtt;
  service = import ../lib/service.nix { inherit lib; };
in
{
  imports = [ ./options.nix ];

  config = lib.mkIf cfg.enable {
    systemd.services.roost-mqtt = service {
      name = "mqtt";
      inherit (cfg) package configFile;
      description = "Roost MQTT: the broker for the home's devices";
      capabilities = [ "CAP_NET_BIND_SERVICE" ];
      needs = [ "roost-net.service" ];
    };
  };
}
