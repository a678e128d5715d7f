{ lib, pkgs, ... }:
let
  inherit (lib) mkOption mkEnableOption types literalExpression;
  toml = pkgs.formats.toml { };

  zoneType = types.submodule {
    freeformType = toml.type;
    options = {
      vlan = mkOption {
        type = types.nullOr types.ints.u16;
        default = null;
        description = "802.1Q VLAN id on `services.roost.lanInterface`; null for the one untagged zone.";
      };
      dhcp = mkOption {
        type = types.nullOr toml.type;
        default = null;
        description = "The zone's DHCP pool (`pool_start`, `pool_end`, `lease_time`); null for none.";
      };
    };
  };

  vmType = types.submodule {
    options = {
      enable = mkEnableOption "this service's microVM" // { default = true; };
      mem = mkOption {
        type = types.ints.positive;
        description = "Guest memory in MiB.";
      };
      vcpu = mkOption {
        type = types.ints.positive;
        default = 1;
        description = "Virtual CPUs.";
      };
    };
  };
in
{
  options.services.roost = {
    enable = mkEnableOption "the Roost router host: one microVM per network service";

    settings = mkOption {
      description = ''
        The router's settings, exactly the keys of `roost.toml` (see examples/roost.toml).
        Rendered to TOML and checked by `roostctl config check` at build time; each VM gets
        only its part, rendered by `roostctl config show --service NAME`.
      '';
      example = literalExpression ''builtins.fromTOML (builtins.readFile ./roost.toml)'';
      type = types.submodule {
        freeformType = toml.type;
        options = {
          wan = mkOption {
            description = "The uplink (`[wan]`).";
            type = types.submodule {
              freeformType = toml.type;
              options.interface = mkOption {
                type = types.str;
                default = "eth0";
                description = "The host NIC handed to the firewall VM (macvtap passthru).";
              };
            };
          };
          zones = mkOption {
            type = types.attrsOf zoneType;
            description = "The household zones (`[zones.<name>]`).";
          };
        };
      };
    };

    packages = mkOption {
      type = types.attrsOf types.package;
      description = "roostctl and the roost-<service> daemons, from this flake.";
    };

    lanInterface = mkOption {
      type = types.str;
      example = "end0";
      description = "The host NIC carrying the household zones: the untagged zone and the VLANs.";
    };

    hypervisor = mkOption {
      # Every VM shares the store over virtiofs, the firewall VM takes the WAN NIC as macvtap
      # and the Wi-Fi VM a USB radio: of microvm.nix's runners only qemu does all three
      # (firecracker has no virtiofs or macvtap, cloud-hypervisor and crosvm no USB), and the
      # Pi 4's GICv2 defeats cloud-hypervisor and firecracker anyway (microvm.nix #69,
      # cloud-hypervisor #6524).
      type = types.enum [ "qemu" ];
      default = "qemu";
      description = "The microVM hypervisor: qemu, the one that runs every Roost VM on both boards.";
    };

    vms = mkOption {
      type = types.attrsOf vmType;
      default = { };
      description = "Per-service VM sizing and switches, by service name.";
    };

    update = {
      rootFile = mkOption {
        type = types.nullOr types.path;
        default = null;
        example = literalExpression "./keys/root.json";
        description = ''
          The pinned TUF root (root.json) of the update repository (see keys/README.md). With
          it, the update VM runs the agent and the host runs the host step beside it
          (ADR 0012); without it, the router does not update itself.
        '';
      };
      checks = mkOption {
        type = types.listOf toml.type;
        default = [ ];
        description = "Extra health checks (`{ name, command }`) the agent runs after a switch.";
      };
    };

    stateVolumeSize = mkOption {
      type = types.ints.positive;
      default = 256;
      description = "Size in MiB of each VM's persistent state volume (leases, caches).";
    };
  };
}
