# The settings, rendered once: roost.toml from `services.roost.settings`, checked by roostctl at
# build time (a bad setting fails the build with every error and its line), and each service's
# view rendered by `roostctl config show`. Rust is the one source of truth for what a view holds.
{ pkgs, roostctl, settings, services }:
let
  inherit (pkgs) lib;
  # TOML has no null: typed options left unset (a zone's `vlan`, `dhcp`) are null here and
  # mean "absent" in roost.toml, so they are dropped, in lists too, before rendering.
  withoutNulls = v:
    if builtins.isAttrs v then lib.mapAttrs (_: withoutNulls) (lib.filterAttrs (_: x: x != null) v)
    else if builtins.isList v then map withoutNulls (builtins.filter (x: x != null) v)
    else v;
  settingsFile = (pkgs.formats.toml { }).generate "roost.toml" (withoutNulls settings);
in
pkgs.runCommand "roost-views"
{
  nativeBuildInputs = [ roostctl ];
  inherit services;
}
  ''
    roostctl config check ${settingsFile}
    mkdir -p $out
    cp ${settingsFile} $out/roost.toml
    for service in $services; do
      roostctl config show --service "$service" ${settingsFile} > "$out/$service.toml"
    done
    # The Wi-Fi VM's view (ADR 0013), when the settings have [wifi].
    if roostctl config wifi ${settingsFile} > wifi.toml 2>/dev/null; then
      cp wifi.toml $out/wifi.toml
    fi
    # The VoIP VM's view (ADR 0014), when the settings have [voip].
    if roostctl config voip ${settingsFile} > voip.toml 2>/dev/null; then
      cp voip.toml $out/voip.toml
    fi
    # A PPPoE uplink's pppd peer file (ADR 0011); none for other WAN modes.
    if [ "$(roostctl config show --service firewall ${settingsFile} | grep -c '^mode = "pppoe"')" -gt 0 ]; then
      roostctl config pppd ${settingsFile} > $out/pppd-peer
    fi
  ''
