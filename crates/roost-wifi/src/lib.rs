//! # roost-wifi: the Wi-Fi VM's agent (ADR 0013)
//!
//! hostapd is the access point (no Rust one exists); this daemon gives the Wi-Fi VM the
//! control API every Roost VM has, on its service link, so the web UI can show the networks
//! and press the WPS button:
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /health` | `200` once hostapd runs every network of the view, else `503` and why |
//! | `GET /metrics` | `roost_wifi_up`, `roost_wifi_stations{network}` |
//! | `GET /state` | the radio's state and channel; per network its SSID, zone, security, interface, stations and, with WPS, the push button's state |
//! | `POST /wps` | presses the WPS push button of the network with `wps = true` (`409` without one, or on a PBC overlap; `502` when hostapd refuses) |
//! | `PUT /config` | `200` for the view it runs; another is `422`: new networks take a restart of the VM (a new generation) |
//!
//! Everything hostapd says is read through its control sockets ([`hostapd`]); the blocking
//! exchanges run on tokio's blocking pool. `roostctl wifi wps` presses the button through
//! [`press_wps`] too.

pub mod hostapd;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use roost_config::View as _;
use roost_config::wifi::{Wifi, WifiNetwork, WifiView};
use roost_control::ConfigRejected;
use serde_json::json;

use crate::hostapd::{CtrlError, PbcStatus, Status};

/// The push button was pressed on this network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pressed {
    /// The network's name in the settings.
    pub network: String,
    /// Its SSID.
    pub ssid: String,
    /// Its interface.
    pub interface: String,
}

/// Why the push button could not be pressed.
#[derive(Debug, thiserror::Error)]
pub enum WpsError {
    /// No network has `wps = true`.
    #[error("no Wi-Fi network has wps = true")]
    NoNetwork,
    /// Two devices pressed their buttons at once: WPS cannot tell which to trust.
    #[error("more than one device is pressing its WPS button; try again with one")]
    Overlap,
    /// hostapd said no.
    #[error("hostapd refused WPS_PBC on {interface}: {reply:?}")]
    Refused {
        /// The network's interface.
        interface: String,
        /// hostapd's reply.
        reply: String,
    },
    /// hostapd could not be asked.
    #[error(transparent)]
    Ctrl(#[from] CtrlError),
}

/// Opens the two-minute push-button window of the network with WPS (blocking).
pub fn press_wps(wifi: &Wifi, ctrl_dir: &Path, radio: &str) -> Result<Pressed, WpsError> {
    let (name, network, interface) = wifi.wps_network(radio).ok_or(WpsError::NoNetwork)?;
    let reply = hostapd::request(&ctrl_dir.join(&interface), "WPS_PBC")?;
    match reply.trim_end() {
        "OK" => Ok(Pressed {
            network: name.to_owned(),
            ssid: network.ssid.clone(),
            interface,
        }),
        "FAIL-PBC-OVERLAP" => Err(WpsError::Overlap),
        other => Err(WpsError::Refused {
            interface,
            reply: other.to_owned(),
        }),
    }
}

/// The agent: its view and where hostapd is.
#[derive(Debug)]
pub struct Agent {
    view: WifiView,
    ctrl_dir: PathBuf,
    radio: String,
}

impl Agent {
    /// An agent for `view`, asking hostapd in `ctrl_dir` about radio `radio`.
    pub fn new(view: WifiView, ctrl_dir: PathBuf, radio: String) -> Self {
        Self {
            view,
            ctrl_dir,
            radio,
        }
    }

    /// Sends `command` to `interface`'s control socket (on tokio's blocking pool).
    async fn ask(&self, interface: String, command: &'static str) -> Result<String, CtrlError> {
        let socket = self.ctrl_dir.join(&interface);
        blocking(socket.clone(), move || hostapd::request(&socket, command)).await
    }

    async fn status(&self) -> Result<Status, CtrlError> {
        Ok(Status::parse(
            &self.ask(self.radio.clone(), "STATUS").await?,
        ))
    }

    fn networks(&self) -> impl Iterator<Item = (&str, &WifiNetwork, String)> {
        self.view.wifi.networks_on(&self.radio)
    }

    async fn wps(&self) -> Result<Pressed, WpsError> {
        let wifi = self.view.wifi.clone();
        let ctrl_dir = self.ctrl_dir.clone();
        let radio = self.radio.clone();
        blocking(self.ctrl_dir.clone(), move || {
            press_wps(&wifi, &ctrl_dir, &radio)
        })
        .await
    }
}

/// Runs a blocking exchange with hostapd (at `socket`) on tokio's blocking pool; a task that
/// could not finish is that exchange's error.
async fn blocking<T, E>(
    socket: PathBuf,
    exchange: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<CtrlError> + Send + 'static,
{
    tokio::task::spawn_blocking(exchange)
        .await
        .unwrap_or_else(|e| {
            Err(CtrlError::Io {
                socket,
                source: std::io::Error::other(e),
            }
            .into())
        })
}

impl roost_control::Daemon for Agent {
    async fn health(&self) -> Result<(), String> {
        let status = self.status().await.map_err(|e| e.to_string())?;
        if status.state != "ENABLED" {
            return Err(format!("hostapd's radio is {}", status.state));
        }
        for (name, _, interface) in self.networks() {
            if status.stations(&interface).is_none() {
                return Err(format!("hostapd does not run network {name} ({interface})"));
            }
        }
        Ok(())
    }

    async fn metrics(&self) -> String {
        let status = self.status().await.ok();
        let up = status.as_ref().is_some_and(|s| s.state == "ENABLED");
        let mut out = format!(
            "# HELP roost_wifi_up Whether hostapd's radio is enabled.\n\
             # TYPE roost_wifi_up gauge\nroost_wifi_up {}\n\
             # HELP roost_wifi_stations Stations associated with each network.\n\
             # TYPE roost_wifi_stations gauge\n",
            u8::from(up)
        );
        for (name, _, interface) in self.networks() {
            if let Some(n) = status.as_ref().and_then(|s| s.stations(&interface)) {
                out.push_str(&format!("roost_wifi_stations{{network=\"{name}\"}} {n}\n"));
            }
        }
        out
    }

    async fn state(&self) -> serde_json::Value {
        let status = self.status().await;
        let mut networks = Vec::new();
        for (name, n, interface) in self.networks() {
            let pbc = if n.wps {
                self.ask(interface.clone(), "WPS_GET_STATUS")
                    .await
                    .ok()
                    .and_then(|r| PbcStatus::parse(&r))
                    .map(PbcStatus::as_str)
            } else {
                None
            };
            networks.push(json!({
                "name": name,
                "ssid": n.ssid,
                "zone": n.zone,
                "security": n.security,
                "interface": interface,
                "stations": status.as_ref().ok().and_then(|s| s.stations(&interface)),
                "wps": n.wps,
                "wps_button": pbc,
            }));
        }
        match status {
            Ok(s) => json!({ "state": s.state, "channel": s.channel, "networks": networks }),
            Err(e) => json!({ "state": "unknown", "error": e.to_string(), "networks": networks }),
        }
    }

    async fn put_config(&self, toml: String) -> Result<(), ConfigRejected> {
        let view = WifiView::from_toml("PUT /config", &toml)
            .map_err(|e| ConfigRejected::Invalid(e.to_string()))?;
        if view == self.view {
            return Ok(());
        }
        Err(ConfigRejected::NotApplied(
            "the Wi-Fi networks change when the Wi-Fi VM restarts with the new generation".into(),
        ))
    }
}

/// The agent's own route, added to the common control API.
pub fn routes() -> Router<Arc<Agent>> {
    Router::new().route("/wps", post(post_wps))
}

async fn post_wps(State(agent): State<Arc<Agent>>) -> Response {
    match agent.wps().await {
        Ok(p) => {
            tracing::info!(network = %p.network, interface = %p.interface, "WPS push button pressed");
            axum::Json(json!({ "network": p.network, "ssid": p.ssid, "seconds": 120 }))
                .into_response()
        }
        Err(e @ (WpsError::NoNetwork | WpsError::Overlap)) => {
            (StatusCode::CONFLICT, format!("{e}\n")).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "WPS push button");
            (StatusCode::BAD_GATEWAY, format!("{e}\n")).into_response()
        }
    }
}

/// Serves the control API until SIGTERM.
pub async fn run(view: WifiView, ctrl_dir: PathBuf, radio: String) -> anyhow::Result<()> {
    let token = roost_control::Token::load(&view.control.token_file)?;
    let listen = view.control.listen;
    let agent = Arc::new(Agent::new(view, ctrl_dir, radio));
    let app = roost_control::router_with(agent, token, roost_control::Limits::default(), routes());
    let listener = roost_control::bind(listen.into()).await?;
    roost_control::serve(listener, app, roost_control::shutdown_signal()).await?;
    Ok(())
}
