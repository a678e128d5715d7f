//! What the pages and the JSON API do, once: each operation turns user input into a settings
//! change for the controller, or reads a daemon's state. Inputs arrive as text (forms) or JSON
//! (strings or numbers), are checked here for shape, and then the whole settings are validated
//! by roost-config before anything is saved.

use std::net::Ipv4Addr;
use std::str::FromStr;

use axum::http::StatusCode;
use roost_config::settings::{MqttUser, PortForward, Protocol, Reservation};
use roost_config::{MacAddr, PhcHash, Service, Settings};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::controller::{Applied, ChangeError, Controller};

/// Longest text accepted in one input field.
const MAX_FIELD: usize = 253;

/// An operation failed; `status` is what the API answers, `message` what the user reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    /// HTTP status for the API.
    pub status: StatusCode,
    /// What went wrong, for a person.
    pub message: String,
}

impl OpError {
    fn bad(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// A daemon needed for a read could not be asked.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_GATEWAY,
            message: message.into(),
        }
    }
}

impl From<ChangeError> for OpError {
    fn from(e: ChangeError) -> Self {
        let status = match &e {
            ChangeError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ChangeError::RolledBack { .. } => StatusCode::BAD_GATEWAY,
            ChangeError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self {
            status,
            message: e.to_string(),
        }
    }
}

/// The outcome of a change, for the API.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChangeDone {
    /// What happened, for a person.
    pub message: String,
    /// The settings version now in force.
    pub version: u32,
    /// The daemons the change was pushed to.
    pub pushed: Vec<String>,
}

fn done(message: String, applied: &Applied) -> ChangeDone {
    ChangeDone {
        message,
        version: applied.version,
        pushed: applied.pushed.iter().map(|s| s.name().to_owned()).collect(),
    }
}

/// Accepts a string, a number or a boolean as text: forms send strings, JSON clients numbers.
fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }
    Ok(Option::<Raw>::deserialize(d)?.map(|r| match r {
        Raw::Text(s) => s,
        Raw::Int(i) => i.to_string(),
        Raw::Float(f) => f.to_string(),
        Raw::Bool(b) => b.to_string(),
    }))
}

/// The trimmed text of an optional field; `None` when absent or empty.
fn field<'a>(value: &'a Option<String>, name: &str) -> Result<Option<&'a str>, OpError> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v.len() > MAX_FIELD => Err(OpError::bad(format!(
            "{name}: longer than {MAX_FIELD} characters"
        ))),
        Some(v) => Ok(Some(v)),
    }
}

fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, OpError> {
    field(value, name)?.ok_or_else(|| OpError::bad(format!("{name}: required")))
}

fn parsed<T: FromStr>(
    value: &Option<String>,
    name: &str,
    what: &str,
) -> Result<Option<T>, OpError> {
    field(value, name)?
        .map(|v| {
            v.parse()
                .map_err(|_| OpError::bad(format!("{name}: `{v}` is not {what}")))
        })
        .transpose()
}

fn boolean(value: &Option<String>, name: &str) -> Result<Option<bool>, OpError> {
    match field(value, name)? {
        None => Ok(None),
        Some("on" | "true" | "1" | "yes") => Ok(Some(true)),
        Some("off" | "false" | "0" | "no") => Ok(Some(false)),
        Some(v) => Err(OpError::bad(format!("{name}: `{v}` is not true or false"))),
    }
}

/// A reserved address as a path parameter (`/reservations/{ip}`).
pub fn parse_ip(ip: &str) -> Result<Ipv4Addr, OpError> {
    ip.parse()
        .map_err(|_| OpError::bad(format!("`{ip}` is not an IPv4 address")))
}

/// An argon2id hash of `password`, made off the async workers (about 20 ms of CPU); a
/// password out of bounds is a 400 naming the field.
async fn hash_password(password: &str) -> Result<PhcHash, OpError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || PhcHash::from_password(&password))
        .await
        .map_err(|e| OpError::bad(e.to_string()))?
        .map_err(|e| OpError::bad(format!("password: {e}")))
}

/// A DHCP reservation as entered.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct ReservationInput {
    /// The zone the device lives in.
    #[serde(default, deserialize_with = "lenient")]
    #[schema(value_type = String, example = "lan")]
    pub zone: Option<String>,
    /// Its MAC address (this or `client_id`).
    #[serde(default, deserialize_with = "lenient")]
    #[schema(value_type = Option<String>, example = "02:00:00:00:00:50")]
    pub mac: Option<String>,
    /// Its DHCP client identifier, hex.
    #[serde(default, deserialize_with = "lenient")]
    #[schema(value_type = Option<String>)]
    pub client_id: Option<String>,
    /// The address it always gets.
    #[serde(default, deserialize_with = "lenient")]
    #[schema(value_type = String, example = "192.168.1.50")]
    pub ip: Option<String>,
    /// Its name in the local domain.
    #[serde(default, deserialize_with = "lenient")]
    #[schema(value_type = Option<String>, example = "printer")]
    pub hostname: Option<String>,
}

impl ReservationInput {
    fn to_reservation(&self) -> Result<Reservation, OpError> {
        let mac = field(&self.mac, "mac")?
            .map(|m| MacAddr::from_str(m).map_err(OpError::bad))
            .transpose()?;
        Ok(Reservation {
            zone: required(&self.zone, "zone")?.to_owned(),
            mac,
            client_id: field(&self.client_id, "client_id")?.map(str::to_owned),
            ip: parsed(&self.ip, "ip", "an IPv4 address")?
                .ok_or_else(|| OpError::bad("ip: required"))?,
            hostname: field(&self.hostname, "hostname")?.map(str::to_owned),
        })
    }
}

/// A port forward as entered.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct PortForwardInput {
    /// A short name.
    #[serde(default, deserialize_with = "lenient")]
    #[schema(value_type = String, example = "ssh")]
    pub name: Option<String>,
    /// `tcp`, `udp` or `both`.
    #[serde(default, deserialize_with = "lenient")]
    #[schema(value_type = String, example = "tcp")]
    pub protocol: Option<String>,
    /// The port on the WAN address.
    #[serde(default, deserialize_with = "lenient")]
    #[schema(value_type = u16, example = 2222)]
    pub port: Option<String>,
    /// The inside host.
    #[serde(default, deserialize_with = "lenient")]
    #[schema(value_type = String, example = "192.168.1.50")]
    pub to: Option<String>,
    /// The port on the inside host (default: `port`).
    #[serde(default, deserialize_with = "lenient")]
    #[schema(value_type = Option<u16>, example = 22)]
    pub to_port: Option<String>,
    /// Open it over IPv6 too, at the host's interface identifier in its zone's delegated /64.
    #[serde(default, deserialize_with = "lenient")]
    #[schema(value_type = Option<String>, example = "::10")]
    pub ipv6_host: Option<String>,
    /// Off without removing it: `false`; default on.
    #[serde(default, deserialize_with = "lenient")]
    #[schema(value_type = Option<bool>)]
    pub enabled: Option<String>,
}

impl PortForwardInput {
    fn to_forward(&self) -> Result<PortForward, OpError> {
        let protocol = match required(&self.protocol, "protocol")? {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "both" => Protocol::Both,
            other => {
                return Err(OpError::bad(format!(
                    "protocol: `{other}` is not tcp, udp or both"
                )));
            }
        };
        Ok(PortForward {
            name: required(&self.name, "name")?.to_owned(),
            protocol,
            port: parsed(&self.port, "port", "a port (1-65535)")?
                .ok_or_else(|| OpError::bad("port: required"))?,
            to: parsed::<Ipv4Addr>(&self.to, "to", "an IPv4 address")?
                .ok_or_else(|| OpError::bad("to: required"))?,
            to_port: parsed(&self.to_port, "to_port", "a port (1-65535)")?,
            ipv6_host: parsed(
                &self.ipv6_host,
                "ipv6_host",
                "an interface identifier such as ::10",
            )?,
            enabled: boolean(&self.enabled, "enabled")?.unwrap_or(true),
        })
    }
}

/// An MQTT user as entered.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct MqttUserInput {
    /// Login name.
    #[serde(default, deserialize_with = "lenient")]
    #[schema(value_type = String, example = "sensor1")]
    pub name: Option<String>,
    /// Password (8 to 1024 characters); stored only as an argon2id hash.
    #[serde(default, deserialize_with = "lenient")]
    #[schema(value_type = String)]
    pub password: Option<String>,
    /// Topic patterns it may publish to, separated by commas or new lines.
    #[serde(default, deserialize_with = "lenient")]
    #[schema(value_type = Option<String>, example = "sensors/#")]
    pub publish: Option<String>,
    /// Topic patterns it may subscribe to, separated by commas or new lines.
    #[serde(default, deserialize_with = "lenient")]
    #[schema(value_type = Option<String>)]
    pub subscribe: Option<String>,
}

fn patterns(value: &Option<String>) -> Vec<String> {
    value
        .as_deref()
        .unwrap_or("")
        .split([',', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A password as entered (first run, password change).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct PasswordInput {
    /// The current password (for a change; not on first run).
    #[serde(default, deserialize_with = "lenient")]
    #[schema(value_type = Option<String>)]
    pub current: Option<String>,
    /// The new password, 8 to 1024 characters.
    #[serde(default, deserialize_with = "lenient")]
    #[schema(value_type = String)]
    pub password: Option<String>,
}

/// An on/off switch as entered.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct SwitchInput {
    /// On or off.
    #[serde(default, deserialize_with = "lenient")]
    #[schema(value_type = bool)]
    pub enabled: Option<String>,
}

/// Adds a reservation.
pub async fn add_reservation(
    c: &Controller,
    input: &ReservationInput,
) -> Result<ChangeDone, OpError> {
    let r = input.to_reservation()?;
    let ip = r.ip;
    let applied = c
        .change(&format!("add DHCP reservation {ip}"), |s| {
            if s.dhcp.reservations.iter().any(|x| x.ip == ip) {
                return Err(format!("{ip} is already reserved"));
            }
            s.dhcp.reservations.push(r);
            Ok(())
        })
        .await?;
    Ok(done(format!("Reserved {ip}."), &applied))
}

/// Replaces the reservation of `ip`.
pub async fn update_reservation(
    c: &Controller,
    ip: Ipv4Addr,
    input: &ReservationInput,
) -> Result<ChangeDone, OpError> {
    let r = input.to_reservation()?;
    if !c.current().dhcp.reservations.iter().any(|x| x.ip == ip) {
        return Err(OpError::not_found(format!("no reservation for {ip}")));
    }
    let applied = c
        .change(&format!("change DHCP reservation {ip}"), |s| {
            let slot = s
                .dhcp
                .reservations
                .iter_mut()
                .find(|x| x.ip == ip)
                .ok_or_else(|| format!("no reservation for {ip}"))?;
            *slot = r;
            Ok(())
        })
        .await?;
    Ok(done(format!("Changed the reservation of {ip}."), &applied))
}

/// Removes the reservation of `ip`.
pub async fn delete_reservation(c: &Controller, ip: Ipv4Addr) -> Result<ChangeDone, OpError> {
    if !c.current().dhcp.reservations.iter().any(|x| x.ip == ip) {
        return Err(OpError::not_found(format!("no reservation for {ip}")));
    }
    let applied = c
        .change(&format!("remove DHCP reservation {ip}"), |s| {
            s.dhcp.reservations.retain(|x| x.ip != ip);
            Ok(())
        })
        .await?;
    Ok(done(format!("Removed the reservation of {ip}."), &applied))
}

/// Adds a port forward.
pub async fn add_port_forward(
    c: &Controller,
    input: &PortForwardInput,
) -> Result<ChangeDone, OpError> {
    let f = input.to_forward()?;
    let name = f.name.clone();
    let applied = c
        .change(&format!("add port forward {name}"), |s| {
            if s.firewall.port_forwards.iter().any(|x| x.name == f.name) {
                return Err(format!("a port forward named {} exists", f.name));
            }
            s.firewall.port_forwards.push(f);
            Ok(())
        })
        .await?;
    Ok(done(format!("Added the port forward {name}."), &applied))
}

/// Replaces the port forward `name`.
pub async fn update_port_forward(
    c: &Controller,
    name: &str,
    input: &PortForwardInput,
) -> Result<ChangeDone, OpError> {
    let f = input.to_forward()?;
    if !c
        .current()
        .firewall
        .port_forwards
        .iter()
        .any(|x| x.name == name)
    {
        return Err(OpError::not_found(format!("no port forward named {name}")));
    }
    let applied = c
        .change(&format!("change port forward {name}"), |s| {
            let slot = s
                .firewall
                .port_forwards
                .iter_mut()
                .find(|x| x.name == name)
                .ok_or_else(|| format!("no port forward named {name}"))?;
            *slot = f;
            Ok(())
        })
        .await?;
    Ok(done(format!("Changed the port forward {name}."), &applied))
}

/// Removes the port forward `name`.
pub async fn delete_port_forward(c: &Controller, name: &str) -> Result<ChangeDone, OpError> {
    if !c
        .current()
        .firewall
        .port_forwards
        .iter()
        .any(|x| x.name == name)
    {
        return Err(OpError::not_found(format!("no port forward named {name}")));
    }
    let applied = c
        .change(&format!("remove port forward {name}"), |s| {
            s.firewall.port_forwards.retain(|x| x.name != name);
            Ok(())
        })
        .await?;
    Ok(done(format!("Removed the port forward {name}."), &applied))
}

/// Adds an MQTT user.
pub async fn add_mqtt_user(c: &Controller, input: &MqttUserInput) -> Result<ChangeDone, OpError> {
    let name = required(&input.name, "name")?.to_owned();
    let hash = hash_password(input.password.as_deref().unwrap_or("")).await?;
    let user = MqttUser {
        name: name.clone(),
        password_hash: hash,
        publish: patterns(&input.publish),
        subscribe: patterns(&input.subscribe),
    };
    let applied = c
        .change(&format!("add MQTT user {name}"), |s| {
            if s.mqtt.users.iter().any(|u| u.name == user.name) {
                return Err(format!("an MQTT user named {} exists", user.name));
            }
            s.mqtt.users.push(user);
            Ok(())
        })
        .await?;
    Ok(done(format!("Added the MQTT user {name}."), &applied))
}

/// Removes the MQTT user `name`.
pub async fn delete_mqtt_user(c: &Controller, name: &str) -> Result<ChangeDone, OpError> {
    if !c.current().mqtt.users.iter().any(|u| u.name == name) {
        return Err(OpError::not_found(format!("no MQTT user named {name}")));
    }
    let applied = c
        .change(&format!("remove MQTT user {name}"), |s| {
            s.mqtt.users.retain(|u| u.name != name);
            Ok(())
        })
        .await?;
    Ok(done(format!("Removed the MQTT user {name}."), &applied))
}

/// Switches the block list `name` on or off.
pub async fn set_blocklist(
    c: &Controller,
    name: &str,
    input: &SwitchInput,
) -> Result<ChangeDone, OpError> {
    if !c.current().dns.blocklists.iter().any(|b| b.name == name) {
        return Err(OpError::not_found(format!("no block list named {name}")));
    }
    let on =
        boolean(&input.enabled, "enabled")?.ok_or_else(|| OpError::bad("enabled: required"))?;
    let applied = c
        .change(
            &format!("block list {name} {}", if on { "on" } else { "off" }),
            |s| {
                for b in s.dns.blocklists.iter_mut().filter(|b| b.name == name) {
                    b.enabled = on;
                }
                Ok(())
            },
        )
        .await?;
    let state = if on { "on" } else { "off" };
    Ok(done(format!("Block list {name} is {state}."), &applied))
}

/// Sets the administrator password. On first run (`current` not needed) or as a change, which
/// needs the current password.
pub async fn set_admin_password(
    c: &Controller,
    input: &PasswordInput,
    first_run: bool,
) -> Result<ChangeDone, OpError> {
    let settings = c.current();
    match (&settings.web.admin.password_hash, first_run) {
        (Some(_), true) => {
            return Err(OpError {
                status: StatusCode::CONFLICT,
                message: "the administrator password is already set".to_owned(),
            });
        }
        (Some(hash), false) => {
            let current = input.current.clone().unwrap_or_default();
            let hash = hash.clone();
            let ok = tokio::task::spawn_blocking(move || hash.verify(&current))
                .await
                .unwrap_or(false);
            if !ok {
                return Err(OpError {
                    status: StatusCode::FORBIDDEN,
                    message: "the current password is wrong".to_owned(),
                });
            }
        }
        (None, _) => {}
    }
    let hash = hash_password(input.password.as_deref().unwrap_or("")).await?;
    let applied = c
        .change("set the administrator password", |s| {
            s.web.admin.password_hash = Some(hash);
            Ok(())
        })
        .await?;
    Ok(done(
        "The administrator password is set.".to_owned(),
        &applied,
    ))
}

/// Replaces the settings by an uploaded backup: parsed and validated first, with errors by line.
pub async fn restore_backup(c: &Controller, text: &str) -> Result<ChangeDone, OpError> {
    let settings = Settings::from_toml("backup", text).map_err(|e| OpError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        message: format!(
            "the backup is not valid, nothing was changed:\n{}",
            crate::controller::describe(&e, true)
        ),
    })?;
    let applied = c.replace("restored a backup", settings).await?;
    Ok(done("The backup is restored.".to_owned(), &applied))
}

/// Makes version `n` current again.
pub async fn restore_version(c: &Controller, n: u32) -> Result<ChangeDone, OpError> {
    let applied = c.restore(n).await.map_err(|e| match e {
        ChangeError::Store(crate::store::StoreError::NoSuchVersion(_)) => {
            OpError::not_found(e.to_string())
        }
        e => e.into(),
    })?;
    Ok(done(format!("Version {n} is restored."), &applied))
}

/// A daemon's `/state`, or why it could not be read.
pub async fn peer_state(c: &Controller, service: Service) -> Result<serde_json::Value, OpError> {
    let peer = c
        .peer(service)
        .ok_or_else(|| OpError::unavailable(format!("no link to {}", service.name())))?;
    c.client()
        .json(peer, "/state")
        .await
        .map_err(OpError::unavailable)
}

/// The update agent's actions the UI offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpdateAction {
    /// Look for a new generation now.
    Check,
    /// Install the newest generation now.
    Apply,
    /// Go back to the previous generation.
    Rollback,
    /// Stop following the channel.
    Unpin,
}

/// Runs an update agent action.
pub async fn update_action(c: &Controller, action: UpdateAction) -> Result<String, OpError> {
    let path = match action {
        UpdateAction::Check => "/check",
        UpdateAction::Apply => "/apply",
        UpdateAction::Rollback => "/rollback",
        UpdateAction::Unpin => "/unpin",
    };
    update_post(c, path).await
}

/// Pins generation `n` (the agent switches to it and stays).
pub async fn pin_generation(c: &Controller, n: u64) -> Result<String, OpError> {
    update_post(c, &format!("/pin/{n}")).await
}

/// A router without `[wifi]` has no Wi-Fi VM to ask: not found, rather than a peer down.
const NO_WIFI: &str = "this router has no Wi-Fi";

/// The Wi-Fi access point's `/state` (roost-wifi, ADR 0013).
pub async fn wifi_state(c: &Controller) -> Result<serde_json::Value, OpError> {
    if c.peer(Service::Wifi).is_none() {
        return Err(OpError::not_found(NO_WIFI));
    }
    peer_state(c, Service::Wifi).await
}

/// The VoIP registrar's `/state` (roost-voip, ADR 0014): each phone and its registrations;
/// not found on a router without `[voip]`.
pub async fn voip_state(c: &Controller) -> Result<serde_json::Value, OpError> {
    if c.peer(Service::Voip).is_none() {
        return Err(OpError::not_found("this router has no VoIP"));
    }
    peer_state(c, Service::Voip).await
}

/// Presses the Wi-Fi access point's WPS push button (roost-wifi's `POST /wps`, ADR 0013).
pub async fn wifi_wps(c: &Controller) -> Result<String, OpError> {
    let peer = c
        .peer(Service::Wifi)
        .ok_or_else(|| OpError::not_found(NO_WIFI))?;
    let reply = c
        .client()
        .post(peer, "/wps")
        .await
        .map_err(OpError::unavailable)?;
    let pressed: serde_json::Value = serde_json::from_str(&reply).unwrap_or_default();
    let ssid = pressed["ssid"].as_str().unwrap_or("the Wi-Fi network");
    Ok(format!(
        "WPS is on for two minutes on \"{ssid}\": press the WPS button on the device now."
    ))
}

async fn update_post(c: &Controller, path: &str) -> Result<String, OpError> {
    let peer = c
        .peer(Service::Update)
        .ok_or_else(|| OpError::unavailable("no link to the update agent"))?;
    c.client()
        .post(peer, path)
        .await
        .map(|t| t.trim().to_owned())
        .map_err(OpError::unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_input_checks_each_field_with_its_name() {
        let mut input = ReservationInput {
            zone: Some("lan".into()),
            mac: Some("02:00:00:00:00:50".into()),
            ip: Some("192.168.1.50".into()),
            hostname: Some(" printer ".into()),
            client_id: Some(String::new()),
        };
        let r = input.to_reservation().unwrap();
        assert_eq!(r.hostname.as_deref(), Some("printer"));
        assert_eq!(r.client_id, None, "an empty field is no value");
        input.ip = Some("192.168.1.500".into());
        assert_eq!(
            input.to_reservation().unwrap_err().message,
            "ip: `192.168.1.500` is not an IPv4 address"
        );
        input.ip = None;
        assert_eq!(input.to_reservation().unwrap_err().message, "ip: required");
        input.ip = Some("192.168.1.50".into());
        input.mac = Some("zz".into());
        assert!(input.to_reservation().unwrap_err().message.contains("MAC"));
    }

    #[test]
    fn port_forward_input_takes_json_numbers_and_form_checkboxes() {
        let json: PortForwardInput = serde_json::from_str(
            r#"{"name":"ssh","protocol":"tcp","port":2222,"to":"192.168.1.50","to_port":22}"#,
        )
        .unwrap();
        let f = json.to_forward().unwrap();
        assert_eq!((f.port, f.to_port, f.enabled), (2222, Some(22), true));
        let off: PortForwardInput = serde_json::from_str(
            r#"{"name":"ssh","protocol":"udp","port":"53","to":"192.168.1.50","enabled":false}"#,
        )
        .unwrap();
        assert!(!off.to_forward().unwrap().enabled);
        let form = PortForwardInput {
            name: Some("web".into()),
            protocol: Some("both".into()),
            port: Some("8080".into()),
            to: Some("192.168.1.9".into()),
            to_port: Some(String::new()),
            ipv6_host: Some("::10".into()),
            enabled: Some("on".into()),
        };
        assert!(form.to_forward().unwrap().enabled);
        assert_eq!(
            form.to_forward().unwrap().ipv6_host,
            Some("::10".parse().unwrap())
        );
        let not_v6 = PortForwardInput {
            ipv6_host: Some("192.168.1.9".into()),
            ..form.clone()
        };
        assert!(
            not_v6
                .to_forward()
                .unwrap_err()
                .message
                .contains("ipv6_host"),
        );
        let bad = PortForwardInput {
            enabled: Some("maybe".into()),
            ..form.clone()
        };
        assert!(
            bad.to_forward()
                .unwrap_err()
                .message
                .starts_with("enabled:")
        );
        let bad = PortForwardInput {
            port: Some("70000".into()),
            ..form.clone()
        };
        assert!(bad.to_forward().unwrap_err().message.starts_with("port:"));
        let bad = PortForwardInput {
            protocol: Some("icmp".into()),
            ..form
        };
        assert!(bad.to_forward().unwrap_err().message.contains("icmp"));
    }

    #[test]
    fn patterns_split_on_commas_and_lines() {
        assert_eq!(
            patterns(&Some("sensors/#, lights/+/set\nhome/status,".into())),
            vec!["sensors/#", "lights/+/set", "home/status"]
        );
        assert!(patterns(&None).is_empty());
    }

    #[test]
    fn overlong_fields_are_refused() {
        let input = ReservationInput {
            zone: Some("x".repeat(MAX_FIELD + 1)),
            ..ReservationInput::default()
        };
        assert!(
            input
                .to_reservation()
                .unwrap_err()
                .message
                .contains("longer")
        );
    }
}
