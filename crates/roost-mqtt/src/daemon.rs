//! The daemon: the broker's server and the control API with its `/telemetry` route.

use std::path::Path;

use roost_config::views::MqttView;

/// Starting or running the broker failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The view does not make a broker.
    #[error("{0}")]
    Setup(#[from] crate::server::SetupError),
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
    let daemon = crate::server::start(view, state_dir).await?;
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
    axum::extract::State(daemon): axum::extract::State<std::sync::Arc<crate::server::Daemon>>,
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
