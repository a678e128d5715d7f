{ lib, ... }:
let
  inherit (lib) mkOption types;
in
{
  options.services.roost.update = import ../lib/guest-options.nix
    {
      inherit lib;
      name = "update";
      description = "roost-update's agent, the network side of signed updates";
    } // {
    rootFile = mkOption {
      type = types.path;
      description = "The pinned TUF root (root.json) the agent verifies the repository from.";
    };
    checks = mkOption {
      type = types.listOf (types.submodule {
        options = {
          name = mkOption {
            type = types.str;
            description = "Name in /state and in a rollback's reason (dns, dhcp, wan).";
          };
          command = mkOption {
            type = types.listOf types.str;
            description = "Program and arguments; healthy when it exits 0.";
          };
        };
      });
      default = [ ];
      description = ''
        Health checks run in the update VM after a switch, besides every daemon's /health
        (asked through the web VM's /peers/health); all must pass within the deadline or the
        agent rolls back.
      '';
    };
  };
}
