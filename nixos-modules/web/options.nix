{ lib, ... }:
{
  options.services.roost.web = import ../lib/guest-options.nix {
    inherit lib;
    name = "web";
    description = "roost-web, the web UI and the settings controller of every daemon";
  };
}
