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
      # The Wi-Fi VM sees only this host directory (shared at the same path).
      assertion = lib.all (n: lib.hasPrefix "/var/lib/roost/wifi/" n.passphrase_file)
        (lib.attrValues ((cfg.settings.wifi or { networks = { }; }).networks));
      message = "roost: keep the Wi-Fi passphrase files in /var/lib/roost/wifi/ (wifi.networks.*.passphrase_file), the one host directory the Wi-Fi VM sees";
    }
    {
      # The VoIP VM sees only this host directory (shared at the same path).
      assertion = lib.all (p: lib.hasPrefix "/var/lib/roost/voip/" p.password_file)
        (lib.attrValues ((cfg.settings.voip or { phones = { }; }).phones));
      message = "roost: keep the phones' SIP password files in /var/lib/roost/voip/ (voip.phones.*.password_file), the one host directory the VoIP VM sees";
    }
    {
      assertion = lib.all (svc: cfg.packages ? "roost-${svc}") (lib.attrNames (lib.filterAttrs (_: v: v.enable) cfg.vms));
      message = "roost: a VM is enabled whose roost-<service> package this flake does not build";
    }
  ];
}
