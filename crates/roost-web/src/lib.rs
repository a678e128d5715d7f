//! # roost-web: the web configuration UI, the JSON API and the settings controller
//!
//! Runs in the web VM. Clients of the zones in `web.zones` reach it on their router address:
//! the firewall forwards 443 and 80 there, to this VM's end of its service link; it is never
//! reachable from the WAN, and it checks the client's zone itself too.
//!
//! | port | what |
//! | --- | --- |
//! | `web.https_port` (443) | the UI (HTML pages) and the JSON API under `/api/`, TLS |
//! | `web.http_port` (80) | a redirect to HTTPS, nothing else |
//! | `services.control_port` (9100) | its own control API; `GET /peers/health` answers the update agent's health check for every other daemon |
//!
//! Files, in the state directory (`/var/lib/roost/web`): `settings/NNNNNN.toml`, the numbered
//! settings versions ([`store`]); `tls/{cert,key}.pem`, the self-signed certificate made on
//! first start unless `web.tls` names one ([`tls`]).
//!
//! Layers: [`auth`] (sessions, CSRF tokens, login lockout) and [`store`] are sans-IO or plain
//! files; [`controller`] validates, versions and pushes settings to the daemons through
//! [`peers`] and rolls back on failure; [`ops`] is what the pages ([`pages`]) and the API
//! ([`api`]) do, written once; [`app`] is the axum application with its gate (zone, first run,
//! session, CSRF) and security headers; [`server`] serves it over TLS; [`telemetry`] hands the
//! router's state to the MQTT broker for dashboards.
//!
//! There is no default password: until `web.admin.password_hash` is set the UI shows only the
//! set-up page, and only to the LAN zone.

pub mod api;
pub mod app;
pub mod auth;
pub mod controller;
pub mod ops;
pub mod pages;
pub mod peers;
pub mod server;
pub mod stats;
pub mod store;
pub mod telemetry;
pub mod tls;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use roost_config::Service;
use roost_config::views::WebView;
use roost_control::{ConfigRejected, Daemon};

use crate::app::{AppState, Shared};
use crate::controller::Controller;

/// How long after a push a daemon may take to report healthy before the change is rolled back.
pub const SETTLE: Duration = Duration::from_secs(5);

/// The daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The settings store could not be opened.
    #[error("{0}")]
    Store(#[from] store::StoreError),
    /// The certificate could not be made or read.
    #[error("tls: {0}")]
    Tls(#[from] tls::TlsError),
    /// The control API could not start.
    #[error("{0}")]
    Control(#[from] roost_control::ControlError),
    /// The HTTP client could not be made.
    #[error("{0}")]
    Client(String),
    /// A listener could not be bound or failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The web VM's own control API: healthy while the settings store answers.
struct WebDaemon(Shared);

impl Daemon for WebDaemon {
    async fn health(&self) -> Result<(), String> {
        let versions = self.0.controller.versions().await;
        if versions.is_empty() {
            Err("no settings version".to_owned())
        } else {
            Ok(())
        }
    }

    async fn metrics(&self) -> String {
        let statuses = self.0.controller.peer_status();
        let mut out = String::from(
            "# HELP roost_web_peer_healthy Whether a daemon was healthy and current at the last reconcile.\n\
             # TYPE roost_web_peer_healthy gauge\n",
        );
        for s in statuses {
            out.push_str(&format!(
                "roost_web_peer_healthy{{service=\"{}\"}} {}\n",
                s.service.name(),
                u8::from(s.healthy)
            ));
        }
        out
    }

    async fn state(&self) -> serde_json::Value {
        let versions = self.0.controller.versions().await;
        serde_json::json!({
            "versions": versions.len(),
            "current": self.0.controller.current_version().await,
            "peers": self.0.controller.peer_status(),
        })
    }

    async fn put_config(&self, _toml: String) -> Result<(), ConfigRejected> {
        // The web VM owns the settings; its built-in view only seeds version 1.
        Err(ConfigRejected::NotApplied(
            "the web VM keeps the settings itself: change them through its UI or /api/settings"
                .to_owned(),
        ))
    }
}

/// `GET /peers/health` on the web VM's control API: `200 ok` when every deployed daemon but
/// the update agent (who asks) answers healthy now, else `503` and who is not.
async fn peers_health(
    axum::extract::State(daemon): axum::extract::State<Arc<WebDaemon>>,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match daemon.0.controller.peers_health(&[Service::Update]).await {
        Ok(()) => (axum::http::StatusCode::OK, "ok\n").into_response(),
        Err(why) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("{why}\n"),
        )
            .into_response(),
    }
}

/// Background work: reconcile the daemons, publish telemetry, sample the resolver's counters.
fn spawn_background(app: &Shared) {
    let reconcile = Arc::clone(app);
    // Telemetry starts once the daemons' health is known.
    let first_pass = Arc::new(tokio::sync::Notify::new());
    let done = Arc::clone(&first_pass);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(controller::RECONCILE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            reconcile.controller.reconcile().await;
            reconcile.settings_changed();
            done.notify_one();
        }
    });
    let publisher = Arc::clone(app);
    tokio::spawn(async move {
        first_pass.notified().await;
        let mut tick = tokio::time::interval(telemetry::PUBLISH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            match publish_telemetry(&publisher).await {
                Ok(()) => failing = false,
                // Said once per outage, not every round.
                Err(e) if !failing => {
                    tracing::warn!(error = %e, "telemetry not published");
                    failing = true;
                }
                Err(_) => {}
            }
        }
    });
    let sampler = Arc::clone(app);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(stats::SAMPLE_EVERY);
        loop {
            tick.tick().await;
            let Some(peer) = sampler.controller.peer(Service::Dns) else {
                return;
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            match sampler.controller.client().text(peer, "/metrics").await {
                Ok(text) => {
                    if let Some(sample) = stats::parse_metrics(&text, now) {
                        app::lock_history(&sampler).push(sample);
                    }
                }
                Err(e) => tracing::debug!(error = %e, "no DNS sample this minute"),
            }
        }
    });
}

/// One round of telemetry to the broker (see [`telemetry`]); why not, if it failed.
async fn publish_telemetry(app: &Shared) -> Result<(), String> {
    let c = &app.controller;
    let Some(mqtt) = c.peer(Service::Mqtt).filter(|p| p.token_file.exists()) else {
        return Ok(());
    };
    if !c.current().mqtt.enabled {
        return Ok(());
    }
    let firewall = ops::peer_state(c, Service::Firewall).await.ok();
    let dhcp = ops::peer_state(c, Service::Dhcp).await.ok();
    let dns = app::lock_history(app).points().last().copied();
    let services = c.peer_status();
    let version = c.current_version().await;
    let topics = telemetry::topics(&telemetry::Inputs {
        firewall: firewall.as_ref(),
        dhcp: dhcp.as_ref(),
        dns,
        services: &services,
        version,
    });
    c.client()
        .put_json(mqtt, "/telemetry", &serde_json::json!({ "topics": topics }))
        .await
}

/// Runs the web VM's daemon until SIGTERM.
pub async fn run(view: WebView, state_dir: &Path) -> Result<(), RunError> {
    let store = store::Store::open(&state_dir.join("settings"), &view.settings)?;
    let client = peers::Peers::new().map_err(RunError::Client)?;
    let controller = Arc::new(Controller::new(
        store,
        view.settings.clone(),
        view.peers.clone(),
        client,
        SETTLE,
    )?);
    let settings = controller.current();
    let (cert, key) = tls::certificate_files(&settings, state_dir)?;
    let acceptor = tls::acceptor(&cert, &key)?;
    let state = AppState::new(Arc::clone(&controller));
    let ip = IpAddr::V4(*view.control.listen.ip());
    let bind = |ip: IpAddr, port: u16| async move {
        let addr = SocketAddr::new(ip, port);
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| RunError::Listen { addr, source })
    };
    let https = bind(ip, settings.web.https_port).await?;
    let http = bind(ip, settings.web.http_port).await?;
    // Over IPv6 too, on the link's v6 address (the firewall forwards the zones' router ULA
    // addresses there).
    let v6 = match view.network.link_address6() {
        Some(a) => Some((
            bind(IpAddr::V6(a), settings.web.https_port).await?,
            bind(IpAddr::V6(a), settings.web.http_port).await?,
        )),
        None => None,
    };
    let token = roost_control::Token::load(&view.control.token_file)?;
    let control_app = roost_control::router_with(
        Arc::new(WebDaemon(Arc::clone(&state))),
        token,
        roost_control::Limits::default(),
        axum::Router::new().route("/peers/health", axum::routing::get(peers_health)),
    );
    let control = roost_control::bind(view.control.listen.into()).await?;
    spawn_background(&state);

    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let https_addr = https.local_addr().ok();
    let https_task = tokio::spawn(server::serve(
        https,
        Some(acceptor.clone()),
        app::app(Arc::clone(&state)),
        stop.clone(),
    ));
    let redirect_port = https_addr.map_or(settings.web.https_port, |a| a.port());
    let mut tasks = vec![https_task];
    if let Some((https6, http6)) = v6 {
        tasks.push(tokio::spawn(server::serve(
            https6,
            Some(acceptor.clone()),
            app::app(Arc::clone(&state)),
            stop.clone(),
        )));
        tasks.push(tokio::spawn(server::serve(
            http6,
            None,
            app::redirect_app(redirect_port),
            stop.clone(),
        )));
    }
    tasks.push(tokio::spawn(server::serve(
        http,
        None,
        app::redirect_app(redirect_port),
        stop,
    )));
    roost_control::serve(control, control_app, roost_control::shutdown_signal()).await?;
    let _ = stop_tx.send(true);
    for task in tasks {
        if let Ok(Err(e)) = task.await {
            tracing::warn!(error = %e, "listener failed");
        }
    }
    Ok(())
}
