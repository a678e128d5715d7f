//! The Wi-Fi access point (ADR 0013): hostapd in a Linux VM of its own, with a USB radio
//! passed through, one network (BSS) per entry of `[wifi.networks]`, each bridged into a zone.
//!
//! The host renders the VM's view at build time (`roostctl config wifi`: the `[wifi]` table
//! alone); the VM turns it into `hostapd.conf` at each start (`roostctl wifi hostapd`), reading
//! each network's passphrase from its file then, so no passphrase is ever in the Nix store.
//! Every value that reaches hostapd is checked first (`validate`) and SSIDs are written as hex
//! (`ssid2=`), so nothing in the settings can add a line to hostapd's configuration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The Wi-Fi access point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wifi {
    /// The radio: a USB Wi-Fi adapter as `vendor:product` in hex (what `lsusb` shows), passed
    /// to the Wi-Fi VM. (A Raspberry Pi 4's own radio sits on SDIO, which cannot be passed
    /// to a VM.)
    pub usb_radio: String,
    /// The country the router is used in (ISO 3166-1 alpha-2, e.g. "DE"): it sets the
    /// channels and transmit power the radio may use.
    pub country: String,
    /// The band: "2.4" or "5" (GHz).
    #[serde(default)]
    pub band: WifiBand,
    /// The channel; default 6 on 2.4 GHz, 36 on 5 GHz.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<u8>,
    /// The networks it offers, by name: each its own SSID, bridged into one zone.
    pub networks: BTreeMap<String, WifiNetwork>,
}

/// A frequency band.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum WifiBand {
    /// 2.4 GHz (802.11g/n).
    #[default]
    #[serde(rename = "2.4")]
    Ghz2_4,
    /// 5 GHz (802.11a/n/ac).
    #[serde(rename = "5")]
    Ghz5,
}

/// One network (BSS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WifiNetwork {
    /// Its name as devices show it (1 to 32 bytes).
    pub ssid: String,
    /// The zone its devices join (`lan`, `iot`, `guest`, ...).
    pub zone: String,
    /// "wpa2-wpa3" (default: both, so older devices still join), "wpa3" (SAE only) or "wpa2".
    #[serde(default)]
    pub security: WifiSecurity,
    /// A file holding only the passphrase (8 to 63 printable ASCII characters), read when the
    /// access point starts.
    pub passphrase_file: PathBuf,
    /// WPS push button (the web UI's Wi-Fi page, or `roostctl wifi wps`), to join a device
    /// without typing the passphrase. Not with WPA3 only (WPS cannot hand out SAE
    /// credentials).
    #[serde(default)]
    pub wps: bool,
}

/// How stations authenticate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WifiSecurity {
    /// WPA2-Personal and WPA3-Personal (SAE) on one network; management frames protected
    /// when the device can.
    #[default]
    Wpa2Wpa3,
    /// WPA3-Personal only (SAE, protected management frames required).
    Wpa3,
    /// WPA2-Personal only (for devices that fail with the transition mode).
    Wpa2,
}

/// Channels allowed somewhere on each band (the country narrows them; hostapd enforces that).
fn channel_allowed(band: WifiBand, channel: u8) -> bool {
    match band {
        WifiBand::Ghz2_4 => (1..=13).contains(&channel),
        WifiBand::Ghz5 => {
            matches!(channel, 36 | 40 | 44 | 48 | 52 | 56 | 60 | 64)
                || (100..=144).contains(&channel) && channel.is_multiple_of(4)
                || matches!(channel, 149 | 153 | 157 | 161 | 165)
        }
    }
}

/// The radio's interface in the Wi-Fi VM.
pub const RADIO: &str = "wlan0";
/// hostapd's control directory (`ctrl_interface`): one socket per network interface.
pub const CTRL_DIR: &str = "/run/hostapd";

impl Wifi {
    /// Each network (name, settings) with the interface hostapd makes for it on radio
    /// `interface`, in hostapd's order (name order): the radio's own for the first,
    /// `<radio>_<i>` for the others (the `bss=` lines). Its control socket has the same name.
    pub fn networks_on<'a>(
        &'a self,
        interface: &str,
    ) -> impl Iterator<Item = (&'a str, &'a WifiNetwork, String)> + use<'a> {
        let interface = interface.to_owned();
        self.networks.iter().enumerate().map(move |(i, (name, n))| {
            let bss = if i == 0 {
                interface.clone()
            } else {
                format!("{interface}_{i}")
            };
            (name.as_str(), n, bss)
        })
    }

    /// The network with WPS (at most one, validated) and its interface on radio `interface`.
    pub fn wps_network(&self, interface: &str) -> Option<(&str, &WifiNetwork, String)> {
        self.networks_on(interface).find(|(_, n, _)| n.wps)
    }

    /// The channel used: the one set, or the band's default.
    pub fn channel(&self) -> u8 {
        self.channel.unwrap_or(match self.band {
            WifiBand::Ghz2_4 => 6,
            WifiBand::Ghz5 => 36,
        })
    }

    /// What is wrong with these settings, as (key below `wifi`, message); `zones` are the
    /// zone names the settings define.
    pub(crate) fn findings(&self, zones: impl Fn(&str) -> bool) -> Vec<(Vec<String>, String)> {
        let mut out = Vec::new();
        let mut error = |keys: &[&str], message: String| {
            out.push((keys.iter().map(|k| (*k).to_owned()).collect(), message));
        };
        if !is_usb_id(&self.usb_radio) {
            error(
                &["usb_radio"],
                format!(
                    "`{}` is not a USB id: write vendor:product in hex, e.g. \"0bda:8812\"",
                    self.usb_radio
                ),
            );
        }
        if !(self.country.len() == 2 && self.country.bytes().all(|b| b.is_ascii_uppercase())) {
            error(
                &["country"],
                format!(
                    "`{}` is not a country code: two capital letters (ISO 3166-1), e.g. \"DE\"",
                    self.country
                ),
            );
        }
        if !channel_allowed(self.band, self.channel()) {
            error(
                &["channel"],
                format!("channel {} is not on this band", self.channel()),
            );
        }
        if self.networks.is_empty() {
            error(&["networks"], "add at least one network".to_owned());
        }
        // hostapd names the extra networks' interfaces wlan0_1 .. (15 bytes at most).
        if self.networks.len() > 8 {
            error(&["networks"], "at most 8 networks on one radio".to_owned());
        }
        let mut wps = 0;
        for (name, n) in &self.networks {
            let at = |key: &'static str| ["networks", name.as_str(), key];
            // The name labels the network's metrics and appears in messages: keep it plain.
            let plain = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
            if name.is_empty() || name.len() > 32 || !name.chars().all(plain) {
                error(
                    &["networks", name.as_str()],
                    format!(
                        "network name `{name}` must be 1-32 lowercase letters, digits or hyphens"
                    ),
                );
            }
            if n.ssid.is_empty() || n.ssid.len() > 32 {
                error(&at("ssid"), "must be 1 to 32 bytes long".to_owned());
            }
            if !zones(&n.zone) {
                error(&at("zone"), format!("no zone `{}`", n.zone));
            }
            if !n.passphrase_file.is_absolute() {
                error(
                    &at("passphrase_file"),
                    "must be an absolute path".to_owned(),
                );
            }
            if n.wps {
                wps += 1;
                if n.security == WifiSecurity::Wpa3 {
                    error(
                        &at("wps"),
                        "WPS cannot join devices to a WPA3-only network: use \
                         security = \"wpa2-wpa3\" or turn WPS off"
                            .to_owned(),
                    );
                }
            }
        }
        if wps > 1 {
            error(
                &["networks"],
                "WPS on one network only (the push button joins a device to it)".to_owned(),
            );
        }
        out
    }

    /// hostapd's configuration, with each network's passphrase read by `passphrase` from its
    /// file. The zone `Z` is bridge `br-Z` in the Wi-Fi VM (holding its NIC on that zone).
    /// `ctrl_group` (a group name or id) may use hostapd's control sockets besides root: the
    /// group roost-wifi runs in.
    pub fn hostapd_conf(
        &self,
        interface: &str,
        ctrl_group: &str,
        passphrase: impl Fn(&Path) -> std::io::Result<String>,
    ) -> Result<String, WifiError> {
        let name_char = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
        if ctrl_group.is_empty() || ctrl_group.len() > 32 || !ctrl_group.bytes().all(name_char) {
            return Err(WifiError::Group(ctrl_group.to_owned()));
        }
        let mut lines = vec![
            "# hostapd.conf rendered by `roostctl wifi hostapd` from the Wi-Fi view (ADR 0013)."
                .to_owned(),
            format!("interface={interface}"),
            "driver=nl80211".to_owned(),
            // roost-wifi (the web UI's WPS button) and `roostctl wifi wps` use it.
            format!("ctrl_interface={CTRL_DIR}"),
            format!("ctrl_interface_group={ctrl_group}"),
            format!("country_code={}", self.country),
            "ieee80211d=1".to_owned(),
            format!("channel={}", self.channel()),
            "ieee80211n=1".to_owned(),
            "wmm_enabled=1".to_owned(),
        ];
        match self.band {
            WifiBand::Ghz2_4 => lines.push("hw_mode=g".to_owned()),
            WifiBand::Ghz5 => {
                lines.extend(["hw_mode=a", "ieee80211h=1", "ieee80211ac=1"].map(str::to_owned))
            }
        }
        for (name, n, bss) in self.networks_on(interface) {
            let secret = passphrase(&n.passphrase_file).map_err(|source| WifiError::Read {
                network: name.to_owned(),
                path: n.passphrase_file.clone(),
                source,
            })?;
            let secret = secret.trim_end_matches(['\n', '\r']);
            if !(8..=63).contains(&secret.len())
                || !secret.bytes().all(|b| (0x20..0x7f).contains(&b))
            {
                return Err(WifiError::Passphrase {
                    network: name.to_owned(),
                    path: n.passphrase_file.clone(),
                });
            }
            lines.push(String::new());
            if bss != interface {
                lines.push(format!("bss={bss}"));
            }
            lines.push(format!("# network {name}"));
            lines.push(format!("ssid2={}", hex::encode(n.ssid.as_bytes())));
            lines.push("utf8_ssid=1".to_owned());
            lines.push(format!("bridge=br-{}", n.zone));
            lines.push("auth_algs=1".to_owned());
            lines.push("wpa=2".to_owned());
            lines.push("rsn_pairwise=CCMP".to_owned());
            let (key_mgmt, mfp) = match n.security {
                WifiSecurity::Wpa2Wpa3 => ("WPA-PSK SAE", 1),
                WifiSecurity::Wpa3 => ("SAE", 2),
                WifiSecurity::Wpa2 => ("WPA-PSK", 1),
            };
            lines.push(format!("wpa_key_mgmt={key_mgmt}"));
            lines.push(format!("ieee80211w={mfp}"));
            match n.security {
                WifiSecurity::Wpa2 => lines.push(format!("wpa_passphrase={secret}")),
                WifiSecurity::Wpa3 => lines.push(format!("sae_password={secret}")),
                WifiSecurity::Wpa2Wpa3 => {
                    lines.push(format!("wpa_passphrase={secret}"));
                    lines.push(format!("sae_password={secret}"));
                }
            }
            if n.security != WifiSecurity::Wpa2 {
                // SAE with hash-to-element and hunting-and-pecking; stations that use SAE
                // must protect management frames.
                lines.push("sae_pwe=2".to_owned());
                lines.push("sae_require_mfp=1".to_owned());
            }
            if n.wps {
                lines.extend(
                    [
                        "wps_state=2",
                        "eap_server=1",
                        "config_methods=push_button",
                        "wps_independent=1",
                    ]
                    .map(str::to_owned),
                );
            }
        }
        let mut out = lines.join("\n");
        out.push('\n');
        Ok(out)
    }
}

/// The Wi-Fi VM's view (`roostctl config wifi`, `roostctl config show --service wifi`): its
/// control API and service link, and the `[wifi]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WifiView {
    /// Where roost-wifi serves its control API.
    pub control: crate::views::ControlView,
    /// The VM's service link (`roostctl net apply`).
    pub network: crate::views::NetworkView,
    /// The access point.
    pub wifi: Wifi,
}

impl crate::views::View for WifiView {
    const SERVICE: crate::Service = crate::Service::Wifi;
}

/// What stops hostapd's configuration from being rendered.
#[derive(Debug, thiserror::Error)]
pub enum WifiError {
    /// The control group is not a group name or id.
    #[error("{0:?} is not a group name or id")]
    Group(String),
    /// A passphrase file could not be read.
    #[error("network {network}: cannot read its passphrase file {path}: {source}")]
    Read {
        /// The network.
        network: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A passphrase is not 8 to 63 printable ASCII characters.
    #[error(
        "network {network}: the passphrase in {path} must be 8 to 63 printable ASCII characters"
    )]
    Passphrase {
        /// The network.
        network: String,
        /// The file.
        path: PathBuf,
    },
}

fn is_usb_id(id: &str) -> bool {
    let mut parts = id.split(':');
    let hex4 = |p: Option<&str>| {
        p.is_some_and(|p| p.len() == 4 && p.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    hex4(parts.next()) && hex4(parts.next()) && parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Settings;
    use crate::views::View as _;

    fn example_with(wifi: &str) -> Result<Settings, crate::ConfigErrors> {
        let text = format!("{}\n{wifi}", include_str!("../../../examples/roost.toml"));
        Settings::from_toml("roost.toml", &text)
    }

    const HOME: &str = r#"
[wifi]
usb_radio = "0bda:8812"
country = "DE"

[wifi.networks.home]
ssid = "Roost Home"
zone = "lan"
passphrase_file = "/var/lib/roost/wifi/home"
wps = true

[wifi.networks.things]
ssid = "Roost Things"
zone = "iot"
security = "wpa2"
passphrase_file = "/var/lib/roost/wifi/things"

[wifi.networks.visitors]
ssid = "Roost Guest"
zone = "guest"
security = "wpa3"
passphrase_file = "/var/lib/roost/wifi/visitors"
"#;

    fn secrets(path: &Path) -> std::io::Result<String> {
        Ok(format!(
            "secret-of-{}\n",
            path.file_name().unwrap().to_string_lossy()
        ))
    }

    #[test]
    fn renders_one_bss_per_network_bridged_into_its_zone_with_its_security() {
        let settings = example_with(HOME).unwrap();
        let wifi = settings.wifi.as_ref().unwrap();
        let conf = wifi.hostapd_conf("wlan0", "0", secrets).unwrap();
        let lines: Vec<&str> = conf.lines().collect();
        for line in [
            "interface=wlan0",
            "country_code=DE",
            "ctrl_interface_group=0",
            "hw_mode=g",
            "channel=6",
        ] {
            assert!(lines.contains(&line), "{line}: {conf}");
        }
        // Networks in name order: home is the radio's own interface, then one bss each.
        let sections: Vec<&str> = conf.split("\n\n").skip(1).collect();
        assert_eq!(sections.len(), 3, "{conf}");
        let home = sections[0];
        assert!(!home.contains("bss="));
        assert!(home.contains(&format!("ssid2={}", hex::encode(b"Roost Home"))));
        assert!(home.contains("bridge=br-lan"));
        assert!(home.contains("wpa_key_mgmt=WPA-PSK SAE\nieee80211w=1"));
        assert!(home.contains("wpa_passphrase=secret-of-home\nsae_password=secret-of-home"));
        assert!(home.contains("wps_state=2") && home.contains("config_methods=push_button"));
        let things = sections[1];
        assert!(things.starts_with("bss=wlan0_1\n"));
        assert!(things.contains("bridge=br-iot"));
        assert!(things.contains("wpa_key_mgmt=WPA-PSK\n"));
        assert!(!things.contains("sae_") && !things.contains("wps_state"));
        let visitors = sections[2];
        assert!(visitors.starts_with("bss=wlan0_2\n"));
        assert!(visitors.contains("wpa_key_mgmt=SAE\nieee80211w=2"));
        assert!(visitors.contains("sae_password=secret-of-visitors"));
        assert!(!visitors.contains("wpa_passphrase"));
    }

    #[test]
    fn the_wps_button_goes_to_the_wps_networks_interface() {
        let wifi = example_with(HOME).unwrap().wifi.unwrap();
        let (name, network, interface) = wifi.wps_network("wlan0").unwrap();
        assert_eq!((name, network.ssid.as_str()), ("home", "Roost Home"));
        assert_eq!(interface, "wlan0");
        // Moved to the second network in name order: its `bss=` interface.
        let moved = HOME
            .replace("wps = true\n", "")
            .replace("security = \"wpa2\"\n", "security = \"wpa2\"\nwps = true\n");
        let wifi = example_with(&moved).unwrap().wifi.unwrap();
        let (name, _, interface) = wifi.wps_network("wlx0").unwrap();
        assert_eq!((name, interface.as_str()), ("things", "wlx0_1"));
        let conf = wifi.hostapd_conf("wlx0", "0", secrets).unwrap();
        assert!(conf.contains("bss=wlx0_1\n"), "{conf}");
        let none = HOME.replace("wps = true\n", "");
        assert!(
            example_with(&none)
                .unwrap()
                .wifi
                .unwrap()
                .wps_network("wlan0")
                .is_none()
        );
    }

    #[test]
    fn five_gigahertz_defaults_to_channel_36_with_802_11ac_and_dfs() {
        let settings =
            example_with(&HOME.replace("country = \"DE\"", "country = \"DE\"\nband = \"5\""))
                .unwrap();
        let conf = settings
            .wifi
            .unwrap()
            .hostapd_conf("wlan0", "0", secrets)
            .unwrap();
        for line in ["hw_mode=a", "channel=36", "ieee80211ac=1", "ieee80211h=1"] {
            assert!(conf.lines().any(|l| l == line), "{line}: {conf}");
        }
    }

    #[test]
    fn an_ssid_cannot_add_a_line_to_hostapds_configuration() {
        let settings =
            example_with(&HOME.replace("ssid = \"Roost Home\"", "ssid = \"x\\nwpa=0\"")).unwrap();
        let conf = settings
            .wifi
            .unwrap()
            .hostapd_conf("wlan0", "0", secrets)
            .unwrap();
        assert!(!conf.lines().any(|l| l == "wpa=0"), "{conf}");
        assert!(conf.contains(&format!("ssid2={}", hex::encode(b"x\nwpa=0"))));
    }

    #[test]
    fn a_passphrase_too_short_too_long_or_with_a_line_break_is_refused() {
        let wifi = example_with(HOME).unwrap().wifi.unwrap();
        for bad in ["short", &"x".repeat(64), "two\nlines here", "tab\there!!"] {
            let err = wifi
                .hostapd_conf("wlan0", "0", |_| Ok(bad.to_owned()))
                .unwrap_err();
            assert!(
                matches!(err, WifiError::Passphrase { .. }),
                "{bad:?}: {err}"
            );
        }
        let missing = wifi
            .hostapd_conf("wlan0", "0", |_| Err(std::io::ErrorKind::NotFound.into()))
            .unwrap_err();
        assert!(
            missing.to_string().contains("/var/lib/roost/wifi/home"),
            "{missing}"
        );
        assert!(
            wifi.hostapd_conf("wlan0", "0", |_| Ok("exactly8".to_owned()))
                .is_ok()
        );
        // The control group is a name or id, never a way to add a line.
        let group = wifi.hostapd_conf("wlan0", "roost-wifi", secrets).unwrap();
        assert!(group.contains("\nctrl_interface_group=roost-wifi\n"));
        for bad in ["", "wheel\nctrl_interface=/tmp", "a b", &"g".repeat(33)] {
            let err = wifi.hostapd_conf("wlan0", bad, secrets).unwrap_err();
            assert!(matches!(err, WifiError::Group(_)), "{bad:?}: {err}");
        }
    }

    #[test]
    fn validation_names_each_bad_key() {
        let bad = HOME
            .replace("0bda:8812", "realtek")
            .replace("\"DE\"", "\"germany\"")
            .replace("zone = \"iot\"", "zone = \"attic\"")
            .replace("ssid = \"Roost Guest\"", "ssid = \"\"")
            .replace(
                "passphrase_file = \"/var/lib/roost/wifi/things\"",
                "passphrase_file = \"things\"",
            )
            .replace("security = \"wpa3\"", "security = \"wpa3\"\nwps = true")
            + "channel = 14\n";
        // `channel` lands in the last network table: put it under [wifi] instead.
        let bad = bad
            .replace("channel = 14\n", "")
            .replace("country = ", "channel = 14\ncountry = ");
        let errors = example_with(&bad).unwrap_err().to_string();
        for key in [
            "wifi.usb_radio",
            "wifi.country",
            "wifi.channel",
            "wifi.networks.things.zone",
            "wifi.networks.things.passphrase_file",
            "wifi.networks.visitors.ssid",
            "wifi.networks.visitors.wps",
            "wifi.networks",
        ] {
            assert!(errors.contains(key), "{key}: {errors}");
        }
        assert!(errors.contains("WPS on one network only"), "{errors}");
        // A network's name labels its metrics: nothing that could break out of a label.
        let quoted = HOME.replace("[wifi.networks.home]", "[wifi.networks.\"ho\\\"me\"]");
        let errors = example_with(&quoted).unwrap_err().to_string();
        assert!(errors.contains("network name"), "{errors}");
    }

    #[test]
    fn the_view_round_trips_and_settings_without_wifi_have_none() {
        let settings = example_with(HOME).unwrap();
        let text = settings.wifi_view().unwrap().render();
        let view: WifiView = toml::from_str(&text).unwrap();
        assert_eq!(Some(view.wifi), settings.wifi);
        assert_eq!(
            view.control.listen,
            settings.control_addr(crate::Service::Wifi)
        );
        assert_eq!(view.network.interfaces[0].name, "svc");
        assert_eq!(settings.render_view(crate::Service::Wifi), text);
        assert!(settings.services().contains(&crate::Service::Wifi));
        assert!(
            !example_with("")
                .unwrap()
                .services()
                .contains(&crate::Service::Wifi)
        );
        assert!(example_with("").unwrap().wifi_view().is_none());
    }
}
