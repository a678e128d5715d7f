//! The control API: roost-control's shared routes plus `PUT /local-names` (the DHCP server's
//! lease push) and `PUT /neighbours` (the firewall's IPv4-to-IPv6 host pairs, for AAAA
//! records of lease names), behind the same token.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use roost_config::View;
use roost_config::views::DnsView;
use roost_control::{ConfigRejected, Daemon, Limits, Token};

use crate::local::{LocalNames, Neighbours};
use crate::resolver::Resolver;

/// The daemon behind the control API.
pub struct Control {
    /// The resolver.
    pub resolver: Arc<Resolver>,
}

impl Daemon for Control {
    async fn health(&self) -> Result<(), String> {
        Ok(())
    }

    async fn metrics(&self) -> String {
        self.resolver.metrics_text()
    }

    async fn state(&self) -> serde_json::Value {
        self.resolver.state_json()
    }

    async fn put_config(&self, toml: String) -> Result<(), ConfigRejected> {
        let view = DnsView::from_toml("PUT /config", &toml)
            .map_err(|e| ConfigRejected::Invalid(e.to_string()))?;
        let resolver = Arc::clone(&self.resolver);
        // Block lists are read from disk: off the async workers.
        tokio::task::spawn_blocking(move || resolver.apply(view))
            .await
            .map_err(|e| ConfigRejected::NotApplied(e.to_string()))?
            .map_err(|e| ConfigRejected::NotApplied(e.to_string()))?;
        tracing::info!("new config applied");
        Ok(())
    }
}

/// The whole control API: the common routes plus `PUT /local-names`, all behind the token
/// and roost-control's limits (1 MiB bodies).
pub fn app(resolver: Arc<Resolver>, token: Token) -> Router {
    let control = Arc::new(Control { resolver });
    let extra = Router::new()
        .route("/local-names", put(put_local_names))
        .route("/neighbours", put(put_neighbours));
    roost_control::router_with(control, token, Limits::default(), extra)
}

async fn put_local_names(State(control): State<Arc<Control>>, body: Bytes) -> Response {
    let names: LocalNames = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("invalid body: {e}\n")).into_response(),
    };
    match control.resolver.set_local_names(&names) {
        Ok(()) => {
            tracing::info!(names = names.names.len(), "local names replaced");
            (StatusCode::OK, "applied\n").into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

async fn put_neighbours(State(control): State<Arc<Control>>, body: Bytes) -> Response {
    let n: Neighbours = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("invalid body: {e}\n")).into_response(),
    };
    control.resolver.set_neighbours(&n);
    tracing::debug!(hosts = n.hosts.len(), "neighbours replaced");
    (StatusCode::OK, "applied\n").into_response()
}
