//! # roost-mqtt: the MQTT broker for the home's IoT devices
//!
//! Runs in the **mqtt VM**, on its service link to the firewall VM (`svc`, ADR 0001). Clients in
//! each zone reach it on their router address (1883, 8883 with TLS): the firewall DNATs that
//! address to this VM and keeps the source, so the broker tells a client's zone from its source
//! address and applies that zone's listener (TLS or not, anonymous access or not).
//!
//! - **Ports**: each listener's port (`listeners[].port`, default 1883, 8883 with `tls`) on the
//!   service-link address (`control.listen`'s IP); the control API on `control.listen` (TCP
//!   9100: `/health`, `/metrics`, `/state`, `PUT /config`, and `PUT /telemetry`, which the web
//!   VM uses to publish the router's telemetry retained under `roost/`; bearer token; see
//!   `roost-control`).
//! - **Files**: the view `/etc/roost/mqtt.toml` (`--config`); TLS certificate and key named in
//!   it; `$STATE_DIRECTORY/broker.json` (default `/var/lib/roost/mqtt`), the retained messages
//!   and persistent sessions, replaced atomically (see [`store`]).
//!
//! MQTT 3.1.1 and 5.0, QoS 0-2, retained messages, persistent sessions (clean start false,
//! session expiry, offline queueing, message expiry), wills with delay, topic aliases from the
//! client, subscription options (No Local, Retain As Published, Retain Handling), subscription
//! identifiers, Receive Maximum both ways, Maximum Packet Size both ways, Server Keep Alive.
//! Users log in with argon2id-hashed passwords; each may publish and subscribe only where its
//! filters allow; `roost/#` is the router's telemetry: readable by every user, writable by none.
//! Shared subscriptions and enhanced authentication (AUTH) are not offered (CONNACK says so).
//! docs/adr/0007-mqtt-broker.md says why this is our own core and not rumqttd.
//!
//! Layers, from the wire in:
//! - [`server`]: sockets, TLS (rustls on aws-lc-rs), one task per connection, the broker task,
//!   the snapshot thread, the control API. All the IO lives here.
//! - [`codec`]: rumqttc's MQTT 3.1.1 and 5 codecs, with 3.1.1 mapped onto the MQTT 5 types.
//! - [`auth`]: argon2id checks with a cache of successful verifications, permissions.
//! - [`core`]: the sans-IO broker, `(state, event, now) -> actions`.
//! - [`topic`]: topic names and filters, matching, ACL coverage.
//! - [`store`]: the durable snapshot.

pub mod auth;
pub mod codec;
pub mod core;
pub mod server;
pub mod store;
pub mod topic;
pub mod ws;

use std::path::Path;

use roost_config::views::MqttView;

/// Starting or running the broker failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The view does not make a broker.
    #[error("{0}")]
    Setup(#[from] server::SetupError),
    /// A thread could not be started.
    #[error("cannot start the snapshot thread: {0}")]
    Thread(std::io::Error),
    /// The control API failed.
    #[error("{0}")]
    Control(#[from] roost_control::ControlError),
}

/// Runs the broker until SIGTERM or SIGINT, then writes its state.
pub async fn run(view: MqttView, state_dir: &Path) -> Result<(), RunError> {
    let token = roost_control::Token::load(&view.control.token_file)?;
    let control = view.control.listen;
    let daemon = server::start(view, state_dir).await?;
    let extra = axum::Router::new().route("/telemetry", axum::routing::put(put_telemetry));
    let app = roost_control::router_with(
        daemon.clone(),
        token,
        roost_control::Limits::default(),
        extra,
    );
    let listener = roost_control::bind(control.into()).await?;
    roost_control::serve(listener, app, roost_control::shutdown_signal()).await?;
    daemon.shutdown().await;
    tracing::info!("state saved; stopped");
    Ok(())
}

/// A telemetry update: topic (under `roost/`) → value, each published retained.
#[derive(Debug, serde::Deserialize)]
pub struct Telemetry {
    /// The topics and their values.
    pub topics: std::collections::BTreeMap<String, String>,
}

/// `PUT /telemetry` (web VM only, behind the link token): `204`, or `400` and why.
async fn put_telemetry(
    axum::extract::State(daemon): axum::extract::State<std::sync::Arc<server::Daemon>>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse as _;
    let telemetry: Telemetry = match serde_json::from_slice(&body) {
        Ok(t) => t,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("invalid body: {e}\n")).into_response(),
    };
    match daemon.publish_telemetry(telemetry.topics) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(why) => (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response(),
    }
}
