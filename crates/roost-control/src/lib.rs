//! # roost-control: the control API every Roost daemon exposes
//!
//! Every daemon (firewall, dns, dhcp, mqtt, update, web) serves the same four routes on its end of
//! its service link (`ControlView.listen`, port `services.control_port`, 9100 by default):
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /health` | `200 ok`, or `503` and the reason |
//! | `GET /metrics` | Prometheus text exposition (version 0.0.4) |
//! | `GET /state` | the daemon's state as JSON |
//! | `PUT /config` | body = the daemon's TOML view; `200` when applied, `400` when it does not parse or validate, `422` when it could not be applied; on any error the old config stays |
//!
//! Once a view has been applied through `PUT /config`, `/health` answers carry its SHA-256 in
//! [`CONFIG_DIGEST_HEADER`]. The web VM's controller compares it with the view it last pushed and
//! pushes again when they differ, e.g. after the daemon restarted from its built-in file.
//!
//! Every route, `/health` included, needs `Authorization: Bearer <token>`, the token being the
//! content of the file named by `ControlView.token_file` (`/run/roost/tokens/<service>`,
//! provisioned by the host). The firewall already lets only the web VM reach the API; the token is
//! defence in depth. Tokens are compared in constant time.
//!
//! Everything is bounded: request bodies ([`Limits::body_bytes`], 1 MiB), request time
//! ([`Limits::timeout`], 10 s) and requests in flight ([`Limits::concurrency`], 16).
//!
//! A daemon implements [`Daemon`], then:
//!
//! ```no_run
//! # async fn run<D: roost_control::Daemon>(daemon: std::sync::Arc<D>, view: &roost_config::views::ControlView) -> Result<(), roost_control::ControlError> {
//! let token = roost_control::Token::load(&view.token_file)?;
//! let app = roost_control::router(daemon, token, roost_control::Limits::default());
//! let listener = roost_control::bind(view.listen.into()).await?;
//! roost_control::serve(listener, app, roost_control::shutdown_signal()).await
//! # }
//! ```
//!
//! [`serve`] logs `listening on ADDR` once bound (the lab and the tests read the port from it),
//! tells systemd the daemon is ready and feeds its watchdog ([`systemd`]), and stops gracefully
//! on SIGTERM or SIGINT.

pub mod peer;
pub mod systemd;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// Header on `/health` answers: the hex SHA-256 of the view last applied by `PUT /config`
/// (absent while the daemon runs the view it was started with).
pub const CONFIG_DIGEST_HEADER: &str = "x-roost-config-sha256";

/// The hex SHA-256 of a view's text, as [`CONFIG_DIGEST_HEADER`] carries it.
pub fn config_digest(view: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(view.as_bytes()))
}

/// Content type of `/metrics`.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a daemon plugs into its control API.
pub trait Daemon: Send + Sync + 'static {
    /// `Ok(())` when healthy, else why not (answered with 503).
    fn health(&self) -> impl Future<Output = Result<(), String>> + Send;

    /// The daemon's metrics in Prometheus text exposition format.
    fn metrics(&self) -> impl Future<Output = String> + Send;

    /// The daemon's state, as JSON.
    fn state(&self) -> impl Future<Output = serde_json::Value> + Send;

    /// Validates and applies a new view (TOML text). On error the old config must stay active.
    fn put_config(&self, toml: String) -> impl Future<Output = Result<(), ConfigRejected>> + Send;
}

/// Why `PUT /config` refused a view; the old config stays active either way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigRejected {
    /// The view does not parse or does not validate (400).
    #[error("invalid config: {0}")]
    Invalid(String),
    /// The view is valid but applying it failed (422).
    #[error("config not applied: {0}")]
    NotApplied(String),
}

impl IntoResponse for ConfigRejected {
    fn into_response(self) -> Response {
        let status = match self {
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::NotApplied(_) => StatusCode::UNPROCESSABLE_ENTITY,
        };
        (status, format!("{self}\n")).into_response()
    }
}

/// Setting up or running the control API failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The token file could not be read.
    #[error("cannot read token file {path}: {source}")]
    TokenRead {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The token file holds no token.
    #[error("token file {path} is empty")]
    TokenEmpty {
        /// The file.
        path: PathBuf,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("control api server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// The bearer token callers must present.
#[derive(Clone)]
pub struct Token(Arc<[u8]>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// A token from its text; surrounding whitespace (a trailing newline) is not part of it.
    /// `None` when nothing is left.
    pub fn new(text: &str) -> Option<Self> {
        let t = text.trim();
        (!t.is_empty()).then(|| Self(Arc::from(t.as_bytes())))
    }

    /// Reads the token from `path` (`ControlView.token_file`).
    pub fn load(path: &Path) -> Result<Self, ControlError> {
        let text = std::fs::read_to_string(path).map_err(|source| ControlError::TokenRead {
            path: path.to_owned(),
            source,
        })?;
        Self::new(&text).ok_or_else(|| ControlError::TokenEmpty {
            path: path.to_owned(),
        })
    }

    /// Whether `presented` is this token, in time independent of where they differ.
    pub fn matches(&self, presented: &[u8]) -> bool {
        bool::from(self.0.ct_eq(presented))
    }
}

/// Bounds on the control API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body accepted (413 beyond).
    pub body_bytes: usize,
    /// Longest a request may take (408 beyond).
    pub timeout: Duration,
    /// Requests served at once; more wait.
    pub concurrency: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_bytes: 1024 * 1024,
            timeout: Duration::from_secs(10),
            concurrency: 16,
        }
    }
}

/// The control API of `daemon`: the four routes behind the token and the limits.
pub fn router<D: Daemon>(daemon: Arc<D>, token: Token, limits: Limits) -> Router {
    router_with(daemon, token, limits, Router::new())
}

/// [`router`] plus a daemon's own routes (e.g. the update agent's `POST /check`), served behind
/// the same token and limits. `extra` must not define the four common routes.
pub fn router_with<D: Daemon>(
    daemon: Arc<D>,
    token: Token,
    limits: Limits,
    extra: Router<Arc<D>>,
) -> Router {
    extra
        .route("/health", get(health::<D>))
        .route("/metrics", get(metrics::<D>))
        .route("/state", get(state::<D>))
        .route("/config", axum::routing::put(put_config::<D>))
        .with_state(daemon)
        .layer(middleware::from_fn_with_state(
            AppliedDigest::default(),
            track_digest,
        ))
        .layer(middleware::from_fn_with_state(token, require_token))
        .layer(RequestBodyLimitLayer::new(limits.body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.timeout,
        ))
        .layer(GlobalConcurrencyLimitLayer::new(limits.concurrency))
}

async fn require_token(State(token): State<Token>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    match presented {
        Some(p) if token.matches(p) => next.run(request).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "missing or wrong bearer token\n",
        )
            .into_response(),
    }
}

/// The digest of the view last applied through `PUT /config`.
#[derive(Clone, Default)]
struct AppliedDigest(Arc<std::sync::Mutex<Option<String>>>);

/// Remembers the digest of every view `PUT /config` applied and reports it on `/health`.
async fn track_digest(
    State(applied): State<AppliedDigest>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if path == "/config" && request.method() == axum::http::Method::PUT {
        let (parts, body) = request.into_parts();
        // The body limit layer sits outside this one and bounds the read: failing to read is
        // that limit (a client that went away gets no answer anyway).
        let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
            return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n").into_response();
        };
        let digest = std::str::from_utf8(&bytes).ok().map(config_digest);
        let response = next
            .run(Request::from_parts(parts, axum::body::Body::from(bytes)))
            .await;
        if response.status() == StatusCode::OK
            && let Ok(mut slot) = applied.0.lock()
        {
            *slot = digest;
        }
        return response;
    }
    let mut response = next.run(request).await;
    if path == "/health" {
        let digest = applied.0.lock().ok().and_then(|d| d.clone());
        if let Some(value) = digest.and_then(|d| header::HeaderValue::from_str(&d).ok()) {
            response.headers_mut().insert(CONFIG_DIGEST_HEADER, value);
        }
    }
    response
}

async fn health<D: Daemon>(State(d): State<Arc<D>>) -> Response {
    match d.health().await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn metrics<D: Daemon>(State(d): State<Arc<D>>) -> Response {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        d.metrics().await,
    )
        .into_response()
}

async fn state<D: Daemon>(State(d): State<Arc<D>>) -> Response {
    axum::Json(d.state().await).into_response()
}

async fn put_config<D: Daemon>(State(d): State<Arc<D>>, body: Bytes) -> Response {
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        return ConfigRejected::Invalid("body is not UTF-8".to_owned()).into_response();
    };
    match d.put_config(text).await {
        Ok(()) => (StatusCode::OK, "applied\n").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "config rejected, old config stays");
            e.into_response()
        }
    }
}

/// Binds the control API's listener.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ControlError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ControlError::Bind { addr, source })
}

/// Serves `app` on `listener` until `shutdown` completes, then finishes the requests in flight.
/// Logs `listening on ADDR` once and tells systemd the daemon is ready: call it last, once the
/// daemon's other sockets are bound.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ControlError> {
    let addr = listener.local_addr().map_err(ControlError::Serve)?;
    tracing::info!(%addr, "listening on {addr}");
    systemd::ready(addr);
    let watchdog = systemd::spawn_watchdog();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            shutdown.await;
            systemd::stopping();
        })
        .await;
    if let Some(w) = watchdog {
        w.abort();
    }
    served.map_err(ControlError::Serve)?;
    tracing::info!("control api stopped");
    Ok(())
}

/// Completes on SIGTERM or SIGINT (ctrl-c).
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops the daemon");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = term => tracing::info!("SIGTERM: shutting down"),
        r = tokio::signal::ctrl_c() => match r {
            Ok(()) => tracing::info!("SIGINT: shutting down"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGINT");
                std::future::pending::<()>().await;
            }
        },
    }
}

/// A daemon's state directory: systemd's `STATE_DIRECTORY` (`env`; it may list several,
/// colon-separated, and the first is the daemon's), else `/var/lib/roost/<service>`.
pub fn state_directory(env: Option<&str>, service: roost_config::Service) -> PathBuf {
    env.and_then(|v| v.split(':').next())
        .filter(|s| !s.is_empty())
        .map_or_else(
            || Path::new("/var/lib/roost").join(service.name()),
            PathBuf::from,
        )
}

/// Sets up logging to stderr: `info` by default, `RUST_LOG` overrides. Calling it twice is harmless.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ignores_surrounding_whitespace() {
        let t = Token::new("  s3cret\n").unwrap();
        assert!(t.matches(b"s3cret"));
        assert!(!t.matches(b"s3cret\n"));
        assert!(!t.matches(b"s3cre"));
        assert!(!t.matches(b""));
    }

    #[test]
    fn state_directory_takes_systemds_first_entry_else_the_default() {
        use roost_config::Service;
        assert_eq!(
            state_directory(Some("/var/lib/roost/web:/var/lib/other"), Service::Web),
            PathBuf::from("/var/lib/roost/web")
        );
        assert_eq!(
            state_directory(None, Service::Mqtt),
            PathBuf::from("/var/lib/roost/mqtt")
        );
        assert_eq!(
            state_directory(Some(""), Service::Dhcp),
            PathBuf::from("/var/lib/roost/dhcp")
        );
    }

    #[test]
    fn empty_token_is_refused() {
        assert!(Token::new(" \n").is_none());
    }

    #[test]
    fn token_debug_does_not_leak_it() {
        let t = Token::new("s3cret").unwrap();
        assert!(!format!("{t:?}").contains("s3cret"));
    }
}
