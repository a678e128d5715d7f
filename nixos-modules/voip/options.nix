{ lib, pkgs, ... }:
let
  inherit (lib) mkOption types;
in
{
  options.services.roost.voip = import ../lib/guest-options.nix
    {
      inherit lib;
      name = "voip";
      description = "the VoIP registrar (Kamailio) and roost-voip, its control API";
    } // {
    roostctl = mkOption {
      type = types.package;
      description = "roostctl, which renders kamailio.cfg from the view at each start.";
    };
    kamailio = mkOption {
      type = types.package;
      default = pkgs.kamailio;
      defaultText = lib.literalExpression "pkgs.kamailio";
      description = "The Kamailio package.";
    };
  };
}
