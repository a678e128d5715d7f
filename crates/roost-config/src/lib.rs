//! # roost-config: the router's settings model
//!
//! One `roost.toml` describes the whole router: zones, WAN, DNS, DHCP, firewall, MQTT, web UI
//! and updates. This crate parses it, validates it with errors a user can act on (each names
//! its key path and its line and column, and all of them are reported in one go), and renders
//! the **per-service views**: the one TOML file each daemon's VM receives
//! (`/etc/roost/<service>.toml`), holding only what that daemon needs.
//!
//! Used by every daemon (to read its view), by `roostctl config check|show`, by the web UI's
//! settings controller, and by the Nix host module, which renders the views at build time
//! through `roostctl config show` so there is one source of truth.
//!
//! Layers: [`source`] reads TOML with positions; [`settings`] is the typed model; `validate`
//! checks meaning; [`views`] derives addresses and the per-service files.

pub mod settings;
pub mod source;
pub mod types;
mod validate;
pub mod views;
pub mod voip;
pub mod wifi;

use std::path::{Path, PathBuf};

pub use settings::Settings;
pub use source::{ConfigErrors, Diagnostic, KeyPath};
pub use types::{Generation, HumanDuration, MacAddr, PhcHash};
pub use validate::parse_window;
pub use views::{Service, View};

/// Reading a settings or view file failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file was read but is not valid.
    #[error(transparent)]
    Invalid(#[from] ConfigErrors),
}

impl Settings {
    /// Parses and validates settings text; `origin` names the file in errors.
    pub fn from_toml(origin: &str, text: &str) -> Result<Self, ConfigErrors> {
        let source = source::Source::parse(origin, text)?;
        let settings: Self = source.deserialize()?;
        let findings = validate::validate(&settings);
        if findings.is_empty() {
            return Ok(settings);
        }
        let diagnostics = findings
            .into_iter()
            .map(|(path, message)| source.diagnostic(path, |_| message))
            .collect();
        Err(source.errors(diagnostics))
    }

    /// Reads and validates a settings file.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self::from_toml(&path.display().to_string(), &text)?)
    }

    /// The pppd peer file (`/etc/ppp/peers/roost`) for a PPPoE uplink, or `None` when the WAN
    /// is not PPPoE. The password stays in `wan.pppoe.password_file`: the firewall VM turns it
    /// into pppd's secrets files at start, so it is never in the Nix store (ADR 0011).
    pub fn pppd_peer(&self) -> Option<String> {
        let p = self
            .wan
            .pppoe
            .as_ref()
            .filter(|_| self.wan.mode == settings::WanMode::Pppoe)?;
        // RFC 2516: 1500 minus the 8 bytes of PPPoE and PPP headers.
        let mtu = self.wan.mtu.unwrap_or(1492).min(1492);
        let mut lines = vec![
            "# pppd peer for the WAN, rendered by `roostctl config pppd` from roost.toml."
                .to_owned(),
            "plugin pppoe.so".to_owned(),
            format!("nic-{}", self.wan.interface),
            format!("ifname {}", views::PPPOE_INTERFACE),
            format!("user \"{}\"", p.username),
        ];
        if let Some(service) = &p.service_name {
            lines.push(format!("rp_pppoe_service \"{service}\""));
        }
        lines.extend(
            [
                "# The ISP authenticates us, not the other way round.",
                "noauth",
                "hide-password",
                "defaultroute",
                "replacedefaultroute",
                "noipdefault",
                "# Keep the link: redial forever, find a dead peer within a minute.",
                "persist",
                "maxfail 0",
                "holdoff 5",
                "lcp-echo-interval 20",
                "lcp-echo-failure 3",
            ]
            .map(str::to_owned),
        );
        lines.push(format!("mtu {mtu}"));
        lines.push(format!("mru {mtu}"));
        let mut out = lines.join("\n");
        out.push('\n');
        Some(out)
    }

    /// The settings as TOML (what the web UI saves as a new settings version).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# unrenderable: {e}\n"))
    }
}
