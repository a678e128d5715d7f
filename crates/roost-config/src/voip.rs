//! The VoIP registrar (ADR 0014): Kamailio in a Linux VM of its own, where the home's SIP
//! phones (one zone's) register with an extension and a password and call each other.
//!
//! Phones reach it at their router address on port 5060 (the firewall forwards it, like DNS);
//! media flows between the phones directly. The host renders the VM's view at build time
//! (`roostctl config voip`); the VM turns it into `kamailio.cfg` at each start (`roostctl voip
//! kamailio`), reading each phone's password from its file then and writing only its digest
//! hash (HA1), so no password is ever in the Nix store. Every value that reaches Kamailio's
//! configuration is checked first (`findings`), so no setting can add to it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use md5::{Digest as _, Md5};
use serde::{Deserialize, Serialize};

/// The VoIP registrar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Voip {
    /// The zone the phones are in. One zone: calls carry their audio between the phones
    /// directly, which needs them on one network.
    #[serde(default = "default_zone")]
    pub zone: String,
    /// The phones, by name: each registers with its extension and password.
    pub phones: BTreeMap<String, Phone>,
}

fn default_zone() -> String {
    "lan".to_owned()
}

/// One phone (or softphone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phone {
    /// Its number at home, 2 to 6 digits, and its SIP user name: it registers as
    /// `sip:<extension>@<router address>` and is called by dialing it.
    pub extension: String,
    /// A file holding only its SIP password (12 to 128 printable ASCII characters), read when
    /// the registrar starts.
    pub password_file: PathBuf,
}

/// Most phones one registrar takes.
pub const MAX_PHONES: usize = 64;
/// Shortest SIP password: digest hashes go over the zone, so they must resist guessing.
pub const PASSWORD_MIN_CHARS: usize = 12;
/// Longest SIP password.
pub const PASSWORD_MAX_CHARS: usize = 128;
/// Where Kamailio answers JSON-RPC (on loopback in the VoIP VM) for roost-voip.
pub const RPC_PORT: u16 = 5071;
/// The SIP port on the service link and on the zone's router address.
pub const SIP_PORT: u16 = 5060;

impl Voip {
    /// What is wrong with these settings, as (key below `voip`, message); `zones` are the
    /// zone names the settings define.
    pub(crate) fn findings(&self, zones: impl Fn(&str) -> bool) -> Vec<(Vec<String>, String)> {
        let mut out = Vec::new();
        let mut error = |keys: &[&str], message: String| {
            out.push((keys.iter().map(|k| (*k).to_owned()).collect(), message));
        };
        if !zones(&self.zone) {
            error(&["zone"], format!("no zone `{}`", self.zone));
        }
        if self.phones.is_empty() {
            error(&["phones"], "add at least one phone".to_owned());
        }
        if self.phones.len() > MAX_PHONES {
            error(&["phones"], format!("at most {MAX_PHONES} phones"));
        }
        let mut extensions: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, p) in &self.phones {
            let at = |key: &'static str| ["phones", name.as_str(), key];
            // The name labels the phone's metrics and appears in messages: keep it plain.
            let plain = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
            if name.is_empty() || name.len() > 32 || !name.chars().all(plain) {
                error(
                    &["phones", name.as_str()],
                    format!(
                        "phone name `{name}` must be 1-32 lowercase letters, digits or hyphens"
                    ),
                );
            }
            if !(2..=6).contains(&p.extension.len())
                || !p.extension.bytes().all(|b| b.is_ascii_digit())
            {
                error(
                    &at("extension"),
                    format!("`{}` is not an extension: 2 to 6 digits", p.extension),
                );
            } else if let Some(other) = extensions.insert(&p.extension, name) {
                error(
                    &at("extension"),
                    format!("extension {} is phone {other}'s too", p.extension),
                );
            }
            if !p.password_file.is_absolute() {
                error(&at("password_file"), "must be an absolute path".to_owned());
            }
        }
        out
    }

    /// The phone whose extension is `extension`.
    pub fn phone_with_extension(&self, extension: &str) -> Option<(&str, &Phone)> {
        self.phones
            .iter()
            .find(|(_, p)| p.extension == extension)
            .map(|(name, p)| (name.as_str(), p))
    }
}

/// The VoIP VM's view (`roostctl config voip`, `roostctl config show --service voip`): its
/// control API and service link, where phones reach it, and the `[voip]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoipView {
    /// Where roost-voip serves its control API.
    pub control: crate::views::ControlView,
    /// The VM's service link (`roostctl net apply`).
    pub network: crate::views::NetworkView,
    /// The phones' zone's router address: what the phones register at, and what the
    /// registrar puts in its headers (the firewall forwards it here).
    pub router: Ipv4Addr,
    /// The router's name in that zone (`<hostname>.<domain>`), which phones may use instead.
    pub fqdn: String,
    /// The digest authentication realm: the router's host name.
    pub realm: String,
    /// The phones.
    pub voip: Voip,
}

impl crate::views::View for VoipView {
    const SERVICE: crate::Service = crate::Service::Voip;
}

/// What stops Kamailio's configuration from being rendered.
#[derive(Debug, thiserror::Error)]
pub enum VoipError {
    /// The view has no service link address to listen on.
    #[error("the view has no service link address")]
    NoLink,
    /// A password file could not be read.
    #[error("phone {phone}: cannot read its password file {path}: {source}")]
    Read {
        /// The phone.
        phone: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A password is not 12 to 128 printable ASCII characters.
    #[error(
        "phone {phone}: the password in {path} must be {PASSWORD_MIN_CHARS} to \
         {PASSWORD_MAX_CHARS} printable ASCII characters"
    )]
    Password {
        /// The phone.
        phone: String,
        /// The file.
        path: PathBuf,
    },
}

impl VoipView {
    /// Kamailio's configuration, with each phone's password read by `password` from its file
    /// and written only as its HA1 (MD5 of `extension:realm:password`, RFC 2617's A1 hash,
    /// what phones answer the digest challenge with).
    pub fn kamailio_cfg(
        &self,
        password: impl Fn(&Path) -> std::io::Result<String>,
    ) -> Result<String, VoipError> {
        let listen = self
            .network
            .interfaces
            .first()
            .map(|i| i.address.addr())
            .ok_or(VoipError::NoLink)?;
        let mut phones = String::new();
        for (name, p) in &self.voip.phones {
            let text = password(&p.password_file).map_err(|source| VoipError::Read {
                phone: name.clone(),
                path: p.password_file.clone(),
                source,
            })?;
            // A trailing newline is the file's, not the password's.
            let secret = text.strip_suffix('\n').unwrap_or(&text);
            let printable = secret.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
            if !(PASSWORD_MIN_CHARS..=PASSWORD_MAX_CHARS).contains(&secret.len()) || !printable {
                return Err(VoipError::Password {
                    phone: name.clone(),
                    path: p.password_file.clone(),
                });
            }
            let ha1 = ha1(&p.extension, &self.realm, secret);
            // Extensions are digits, the hash hex: nothing here can end the string.
            let _ = writeln!(phones, "\t$sht(ha1=>{}) = \"{ha1}\";", p.extension);
        }
        let aliases = format!(
            "alias=\"{}\"\nalias=\"{}\"",
            self.router,
            self.fqdn.trim_end_matches('.')
        );
        Ok(include_str!("voip/kamailio.cfg")
            .replace("@LISTEN@", &listen.to_string())
            .replace("@ADVERTISE@", &self.router.to_string())
            .replace("@ALIASES@", &aliases)
            .replace("@REALM@", &self.realm)
            .replace("@RPC_PORT@", &RPC_PORT.to_string())
            .replace("@PHONES@", phones.trim_end()))
    }
}

/// RFC 2617's HA1 of `user` in `realm`, as lowercase hex.
pub fn ha1(user: &str, realm: &str, password: &str) -> String {
    hex::encode(Md5::digest(format!("{user}:{realm}:{password}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Settings;
    use crate::views::View as _;

    fn example_with(voip: &str) -> Result<Settings, crate::ConfigErrors> {
        let text = format!("{}\n{voip}", include_str!("../../../examples/roost.toml"));
        Settings::from_toml("roost.toml", &text)
    }

    const PHONES: &str = r#"
[voip.phones.kitchen]
extension = "101"
password_file = "/var/lib/roost/voip/kitchen"

[voip.phones.office]
extension = "102"
password_file = "/var/lib/roost/voip/office"
"#;

    fn passwords(path: &Path) -> std::io::Result<String> {
        Ok(format!(
            "password-of-{}\n",
            path.file_name().unwrap_or_default().to_string_lossy()
        ))
    }

    #[test]
    fn ha1_is_rfc_2617s_a1_hash() {
        // RFC 2617 section 3.5's example: Mufasa in testrealm@host.com with "Circle Of Life".
        assert_eq!(
            ha1("Mufasa", "testrealm@host.com", "Circle Of Life"),
            "939e7578ed9e3c518a452acee763bce9"
        );
    }

    #[test]
    fn renders_each_phones_hash_and_listens_on_the_link_advertising_the_router() {
        let settings = example_with(PHONES).unwrap();
        let view = settings.voip_view().unwrap();
        assert_eq!(view.voip.zone, "lan");
        assert_eq!(view.router, settings.zones["lan"].router);
        let cfg = view.kamailio_cfg(passwords).unwrap();
        let link = settings.service_link(crate::Service::Voip).unwrap().service;
        let router = view.router;
        for line in [
            format!("listen=udp:{link}:5060 advertise {router}:5060"),
            format!("listen=tcp:{link}:5060 advertise {router}:5060"),
            format!("listen=tcp:127.0.0.1:{RPC_PORT}"),
            format!("alias=\"{router}\""),
            format!("alias=\"{}\"", view.fqdn),
            format!(
                "\t$sht(ha1=>101) = \"{}\";",
                ha1("101", &view.realm, "password-of-kitchen")
            ),
            format!(
                "\t$sht(ha1=>102) = \"{}\";",
                ha1("102", &view.realm, "password-of-office")
            ),
            format!("\t$var(realm) = \"{}\";", settings.router.hostname),
        ] {
            assert!(cfg.lines().any(|l| l == line), "no `{line}` in\n{cfg}");
        }
        assert!(!cfg.contains("password-of"), "a password in the config");
        for placeholder in [
            "@LISTEN@",
            "@ADVERTISE@",
            "@ALIASES@",
            "@REALM@",
            "@RPC_PORT@",
            "@PHONES@",
        ] {
            assert!(!cfg.contains(placeholder), "{placeholder} left in");
        }
    }

    #[test]
    fn refuses_short_unreadable_or_control_character_passwords() {
        let view = example_with(PHONES).unwrap().voip_view().unwrap();
        let short = view.kamailio_cfg(|_| Ok("short\n".to_owned())).unwrap_err();
        assert!(
            short.to_string().contains("phone kitchen") && short.to_string().contains("12 to 128"),
            "{short}"
        );
        let newline = view
            .kamailio_cfg(|_| Ok("long enough\npassword".to_owned()))
            .unwrap_err();
        assert!(matches!(newline, VoipError::Password { .. }), "{newline}");
        let missing = view
            .kamailio_cfg(|_| Err(std::io::Error::from(std::io::ErrorKind::NotFound)))
            .unwrap_err();
        assert!(
            missing.to_string().contains("/var/lib/roost/voip/kitchen"),
            "{missing}"
        );
    }

    #[test]
    fn validation_names_each_bad_key() {
        let bad = r#"
[voip]
zone = "attic"

[voip.phones.Kitchen]
extension = "1a"
password_file = "relative"

[voip.phones.office]
extension = "102"
password_file = "/p"

[voip.phones.den]
extension = "102"
password_file = "/q"
"#;
        let err = example_with(bad).unwrap_err().to_string();
        for expected in [
            "voip.zone",
            "no zone `attic`",
            "voip.phones.Kitchen",
            "is not an extension",
            "must be an absolute path",
            "extension 102 is phone den's too",
        ] {
            assert!(err.contains(expected), "no `{expected}` in\n{err}");
        }
        let none = example_with("[voip]\nphones = {}\n")
            .unwrap_err()
            .to_string();
        assert!(none.contains("add at least one phone"), "{none}");
    }

    #[test]
    fn the_voip_vm_is_a_service_only_with_voip_and_its_view_round_trips() {
        let without = example_with("").unwrap();
        assert!(!without.services().contains(&crate::Service::Voip));
        assert!(without.voip_view().is_none());
        assert_eq!(without.render_view(crate::Service::Voip), "");

        let settings = example_with(PHONES).unwrap();
        assert!(settings.services().contains(&crate::Service::Voip));
        let view = settings.voip_view().unwrap();
        let text = settings.render_view(crate::Service::Voip);
        assert_eq!(VoipView::from_toml("voip.toml", &text).unwrap(), view);
        assert_eq!(
            view.control.listen,
            settings.control_addr(crate::Service::Voip)
        );
        // SIP on the zone's router address leads to the VoIP VM, from that zone only.
        let fw = settings.firewall_view();
        let sip = fw
            .published
            .iter()
            .find(|p| p.service == crate::Service::Voip)
            .unwrap();
        assert_eq!(sip.port, SIP_PORT);
        assert_eq!(sip.zones, vec!["lan".to_owned()]);
        assert_eq!(
            *sip.to.ip(),
            settings.service_link(crate::Service::Voip).unwrap().service
        );
        assert!(
            without
                .firewall_view()
                .published
                .iter()
                .all(|p| p.service != crate::Service::Voip)
        );
        // The web UI reaches its control API; the VoIP VM opens nothing.
        assert!(fw.flows.iter().any(|f| f.from == crate::Service::Web
            && f.to == crate::views::FlowTarget::Service(crate::Service::Voip)));
        assert!(fw.flows.iter().all(|f| f.from != crate::Service::Voip));
    }
}
