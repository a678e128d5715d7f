{ lib, ... }:
{
  options.services.roost.mqtt = import ../lib/guest-options.nix {
    inherit lib;
    name = "mqtt";
    description = "roost-mqtt, the MQTT broker for the home's IoT devices";
  };
}
