# Options every Roost service guest module has: `services.roost.<name>.{enable,package,configFile}`.
{ lib, name, description }:
let
  inherit (lib) mkOption mkEnableOption types;
in
{
  enable = mkEnableOption description;
  package = mkOption {
    type = types.package;
    description = "The roost-${name} package.";
  };
  configFile = mkOption {
    type = types.path;
    description = ''
      This VM's settings view (`/etc/roost/${name}.toml`), rendered from roost.toml on the host
      by `roostctl config show --service ${name}`. Never written by hand.
    '';
  };
}
