//! The other daemons' control APIs, as the web VM calls them: each request carries the per-link
//! bearer token (read from its file on every call, so a rotated token needs no restart), is
//! bounded in time, and every failure comes back as text for the UI, never swallowed.

use std::time::Duration;

use roost_config::views::PeerView;
use roost_control::CONFIG_DIGEST_HEADER;

/// Longest one control API call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read from a daemon.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// What `/health` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// `Ok` when healthy, else the daemon's reason or why it could not be asked.
    pub result: Result<(), String>,
    /// The digest of the view last pushed to it, if any since it started.
    pub digest: Option<String>,
}

/// A client of the daemons' control APIs.
#[derive(Debug, Clone)]
pub struct Peers {
    http: reqwest::Client,
}

impl Peers {
    /// A client with [`CALL_TIMEOUT`].
    pub fn new() -> Result<Self, String> {
        // reqwest is built without a default TLS provider; the process uses aws-lc-rs.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(Duration::from_secs(3))
            .no_proxy()
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(Self { http })
    }

    async fn call(
        &self,
        peer: &PeerView,
        method: reqwest::Method,
        path: &str,
        body: Option<(&'static str, String)>,
    ) -> Result<(reqwest::StatusCode, reqwest::header::HeaderMap, String), String> {
        let name = peer.service.name();
        let token = std::fs::read_to_string(&peer.token_file).map_err(|e| {
            format!(
                "{name}: cannot read token {}: {e}",
                peer.token_file.display()
            )
        })?;
        let url = format!("{}{path}", peer.url.trim_end_matches('/'));
        let mut request = self.http.request(method, &url).bearer_auth(token.trim());
        if let Some((content_type, body)) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{name} unreachable: {}", short_reason(&e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        if response
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
        {
            return Err(format!(
                "{name}: answer larger than {MAX_ANSWER_BYTES} bytes"
            ));
        }
        let text = response
            .text()
            .await
            .map_err(|e| format!("{name}: reading the answer: {}", error_chain(&e)))?;
        Ok((status, headers, text))
    }

    /// `PUT /config` with `view`; `Err` with the daemon's own words when it refuses.
    pub async fn put_config(&self, peer: &PeerView, view: &str) -> Result<(), String> {
        let (status, _, text) = self
            .call(
                peer,
                reqwest::Method::PUT,
                "/config",
                Some(("application/toml", view.to_owned())),
            )
            .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!(
                "{} refused the change ({status}): {}",
                peer.service.name(),
                text.trim()
            ))
        }
    }

    /// `GET /health`.
    pub async fn health(&self, peer: &PeerView) -> Health {
        match self.call(peer, reqwest::Method::GET, "/health", None).await {
            Ok((status, headers, text)) => Health {
                result: if status.is_success() {
                    Ok(())
                } else {
                    Err(format!(
                        "{} unhealthy: {}",
                        peer.service.name(),
                        text.trim()
                    ))
                },
                digest: headers
                    .get(CONFIG_DIGEST_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            },
            Err(e) => Health {
                result: Err(e),
                digest: None,
            },
        }
    }

    /// `GET path` answered with JSON.
    pub async fn json(&self, peer: &PeerView, path: &str) -> Result<serde_json::Value, String> {
        let text = self.text(peer, path).await?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{}: {path} is not JSON: {e}", peer.service.name()))
    }

    /// `GET path` answered with text (e.g. `/metrics`).
    pub async fn text(&self, peer: &PeerView, path: &str) -> Result<String, String> {
        self.expect_ok(peer, reqwest::Method::GET, path, None).await
    }

    /// `POST path` (e.g. the update agent's `/check`); the answer's text.
    pub async fn post(&self, peer: &PeerView, path: &str) -> Result<String, String> {
        let empty = Some(("text/plain", String::new()));
        self.expect_ok(peer, reqwest::Method::POST, path, empty)
            .await
    }

    /// `PUT path` with a JSON body (e.g. the broker's `/telemetry`).
    pub async fn put_json(
        &self,
        peer: &PeerView,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(), String> {
        let body = Some(("application/json", body.to_string()));
        self.expect_ok(peer, reqwest::Method::PUT, path, body)
            .await
            .map(drop)
    }

    /// A call whose answer must be a success: its text, or `service path: status: text`.
    async fn expect_ok(
        &self,
        peer: &PeerView,
        method: reqwest::Method,
        path: &str,
        body: Option<(&'static str, String)>,
    ) -> Result<String, String> {
        let (status, _, text) = self.call(peer, method, path, body).await?;
        if status.is_success() {
            Ok(text)
        } else {
            Err(format!(
                "{} {path}: {status}: {}",
                peer.service.name(),
                text.trim()
            ))
        }
    }
}

/// Why a request failed, in the words of its innermost cause ("Connection refused (os error
/// 111)"), which is what a person can act on; reqwest's own layers only repeat the URL.
fn short_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", CALL_TIMEOUT.as_secs());
    }
    let mut innermost: &dyn std::error::Error = e;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    innermost.to_string()
}

/// An error with its causes, which is where reqwest says what actually went wrong.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
