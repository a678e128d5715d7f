{ config, lib, ... }:
let
  cfg = config.services.roost;
  untagged = lib.attrNames (lib.filterAttrs (_: z: z.vlan == null) cfg.settings.zones);
in
{
  config.assertions = lib.mkIf cfg.enable [
    {
      assertion = lib.length untagged <= 1;
      message = "roost: at most one zone may be untagged on ${cfg.lanInterface}; give the others a `vlan` (untagged now: ${lib.concatStringsSep ", " untagged})";
    }
    {
      assertion = cfg.vms ? firewall && cfg.vms.firewall.enable;
      message = "roost: the firewall VM is the router itself and cannot be switched off";
    }
    {
      assertion = !(cfg.vms ? update && cfg.vms.update.enable) || cfg.update.rootFile != null;
      message = "roost: the update VM needs services.roost.update.rootFile, the pinned TUF root it verifies against";
    }
    {
      assertion = lib.all (svc: cfg.packages ? "roost-${svc}") (lib.attrNames (lib.filterAttrs (_: v: v.enable) cfg.vms));
      message = "roost: a VM is enabled whose roost-<service> package this flake does not build";
    }
  ];
}
