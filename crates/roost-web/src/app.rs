//! The HTTP application: routes, the gate every request passes (zone, first run, session,
//! CSRF), security headers and bounds. Built by [`app`] apart from any socket, so tests drive
//! it with `tower::ServiceExt::oneshot`; each request must carry `ConnectInfo<SocketAddr>` (the
//! server inserts it), since who may use the UI depends on the client's zone.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use roost_config::Settings;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::auth::{Flash, LoginGuard, Sessions, csrf_matches};
use crate::controller::Controller;
use crate::stats::History;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "roost_session";
/// The header API clients echo the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The zone whose clients may set the first password.
pub const SETUP_ZONE: &str = "lan";
/// Largest request body (a settings backup is a few KiB).
pub const MAX_BODY: usize = 1024 * 1024;
/// Longest a request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests served at once.
pub const CONCURRENCY: usize = 32;
/// Password checks at once (each costs ~20 ms of a core and 19 MiB): the rest wait.
const VERIFY_AT_ONCE: usize = 2;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Everything the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// The settings controller.
    pub controller: Arc<Controller>,
    sessions: Mutex<Sessions>,
    guard: Mutex<LoginGuard>,
    verify: tokio::sync::Semaphore,
    /// The DNS page's hour of history.
    pub dns_history: Mutex<History>,
    /// When the web VM's daemon started.
    pub started: Instant,
}

/// The DNS history, locked.
pub fn lock_history(app: &AppState) -> MutexGuard<'_, History> {
    lock(&app.dns_history)
}

/// The state handlers get.
pub type Shared = Arc<AppState>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AppState {
    /// State over `controller`, with session expiry from its settings.
    pub fn new(controller: Arc<Controller>) -> Shared {
        let web = controller.current().web.clone();
        Arc::new(Self {
            controller,
            sessions: Mutex::new(Sessions::new(web.session_idle.0, web.session_max.0)),
            guard: Mutex::new(LoginGuard::default()),
            verify: tokio::sync::Semaphore::new(VERIFY_AT_ONCE),
            dns_history: Mutex::new(History::default()),
            started: Instant::now(),
        })
    }

    /// Sets a message for the next page of session `id`.
    pub fn flash(&self, id: &str, error: bool, text: impl Into<String>) {
        if let Some(s) = lock(&self.sessions).touch(id, Instant::now()) {
            s.flash = Some(Flash {
                error,
                text: text.into(),
            });
        }
    }

    /// Takes the message for session `id`, if any.
    pub fn take_flash(&self, id: &str) -> Option<Flash> {
        lock(&self.sessions)
            .touch(id, Instant::now())
            .and_then(|s| s.flash.take())
    }

    /// Ends session `id`.
    pub fn logout(&self, id: &str) {
        lock(&self.sessions).logout(id);
    }

    /// Ends every session (the password changed).
    pub fn logout_all(&self) {
        lock(&self.sessions).logout_all();
    }

    /// Follows a settings change: session expiry times.
    pub fn settings_changed(&self) {
        let web = &self.controller.current().web;
        lock(&self.sessions).set_expiry(web.session_idle.0, web.session_max.0);
    }

    /// Checks a login from `client`: `Ok(session id, csrf)` or what to tell the user.
    pub async fn login(
        &self,
        client: IpAddr,
        user: &str,
        password: &str,
    ) -> Result<(String, String), LoginRefused> {
        if let Err(locked) = lock(&self.guard).check(client, Instant::now()) {
            return Err(LoginRefused::LockedOut(locked.retry_after));
        }
        let settings = self.controller.current();
        let Some(hash) = settings.web.admin.password_hash.clone() else {
            return Err(LoginRefused::NoPassword);
        };
        let right_user = user == settings.web.admin.user;
        let Ok(_permit) = self.verify.acquire().await else {
            return Err(LoginRefused::Wrong);
        };
        // Verified even for a wrong user name, so timing does not tell names apart.
        let password = password.to_owned();
        let right_password = tokio::task::spawn_blocking(move || hash.verify(&password))
            .await
            .unwrap_or(false);
        let now = Instant::now();
        if right_user && right_password {
            lock(&self.guard).succeeded(client);
            let mut sessions = lock(&self.sessions);
            let id = sessions.login(user, now);
            let csrf = sessions
                .touch(&id, now)
                .map(|s| s.csrf.clone())
                .unwrap_or_default();
            tracing::info!(%client, "administrator logged in");
            Ok((id, csrf))
        } else {
            lock(&self.guard).failed(client, now);
            tracing::warn!(%client, "wrong user name or password");
            Err(LoginRefused::Wrong)
        }
    }
}

/// Why a login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefused {
    /// Wrong user name or password.
    Wrong,
    /// Too many wrong passwords from this client; try again after this long.
    LockedOut(Duration),
    /// No password is set yet (first run).
    NoPassword,
}

impl LoginRefused {
    /// What to tell the user, and the status for it.
    pub fn explain(self) -> (StatusCode, String) {
        match self {
            Self::Wrong => (
                StatusCode::UNAUTHORIZED,
                "Wrong user name or password.".to_owned(),
            ),
            Self::LockedOut(d) => (
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many wrong passwords from this device. Try again in {} minutes.",
                    d.as_secs().div_ceil(60)
                ),
            ),
            Self::NoPassword => (
                StatusCode::CONFLICT,
                "No administrator password is set yet: set one first.".to_owned(),
            ),
        }
    }
}

/// The session cookie that logs a client in.
pub fn session_cookie(id: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Strict"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The cookie that logs a client out.
pub fn cleared_cookie() -> HeaderValue {
    HeaderValue::from_static("roost_session=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict")
}

/// Who is calling, as the gate found out.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The client's address.
    pub addr: IpAddr,
    /// The zone it is in.
    pub zone: String,
}

/// A logged-in request.
#[derive(Debug, Clone)]
pub struct Authed {
    /// The session id.
    pub session: String,
    /// Its CSRF token, for the forms on the page.
    pub csrf: String,
    /// The user.
    pub user: String,
}

/// The zone `ip` is in.
/// Over IPv6, by the zone's ULA /64: the UI is reached at the router's ULA address, for which
/// RFC 6724 hosts pick their ULA source (a global source is in no zone: refused).
pub fn zone_of(settings: &Settings, ip: IpAddr) -> Option<String> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    settings
        .zones
        .iter()
        .find(|(name, z)| match ip {
            IpAddr::V4(v4) => z.subnet.contains(&v4),
            IpAddr::V6(v6) => settings
                .zone_ipv6(name)
                .is_some_and(|z6| z6.subnet.contains(&v6)),
        })
        .map(|(name, _)| name.clone())
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A JSON error answer.
pub fn api_error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error": message.into() })),
    )
        .into_response()
}

fn refuse(is_api: bool, status: StatusCode, message: &str) -> Response {
    if is_api {
        api_error(status, message)
    } else {
        (status, crate::pages::plain_page("Not allowed", message)).into_response()
    }
}

/// Whether `Origin` (when sent) names the host the request went to: a cross-site form post
/// is refused even before its CSRF token is looked at. Under `Referrer-Policy: no-referrer`
/// browsers send `Origin: null` on their own same-origin posts; that is taken only together
/// with `Sec-Fetch-Site: same-origin`, which pages cannot set.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if origin == "null" {
        return headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"same-origin");
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// The CSRF token a state-changing request carries: the header, else the `csrf` query
/// parameter (multipart uploads), else the `csrf` form field. Returns the request rebuilt
/// when its body had to be read.
async fn presented_csrf(request: Request) -> (Option<String>, Request) {
    if let Some(v) = request
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        return (Some(v.to_owned()), request);
    }
    let from_query = request
        .uri()
        .query()
        .and_then(|q| url_pairs(q).find(|(k, _)| k == "csrf").map(|(_, v)| v));
    if from_query.is_some() {
        return (from_query, request);
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return (None, request);
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return (None, Request::from_parts(parts, axum::body::Body::empty()));
    };
    let token = std::str::from_utf8(&bytes)
        .ok()
        .and_then(|b| url_pairs(b).find(|(k, _)| k == "csrf").map(|(_, v)| v));
    (
        token,
        Request::from_parts(parts, axum::body::Body::from(bytes)),
    )
}

fn url_pairs(s: &str) -> impl Iterator<Item = (String, String)> + '_ {
    s.split('&').filter_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        let decode = |t: &str| {
            let t = t.replace('+', " ");
            percent_decode(&t)
        };
        Some((decode(k), decode(v)))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The gate: zone, first run, session, CSRF (module doc).
async fn gate(
    State(app): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let is_api = path.starts_with("/api/");
    let settings = app.controller.current();
    let zone = zone_of(&settings, peer.ip());
    let Some(zone) = zone.filter(|z| settings.web.zones.contains(z)) else {
        tracing::warn!(client = %peer.ip(), %path, "refused: not from a zone allowed to use the UI");
        return refuse(
            is_api,
            StatusCode::FORBIDDEN,
            "The router's settings cannot be opened from this network.",
        );
    };
    request.extensions_mut().insert(Caller {
        addr: peer.ip(),
        zone: zone.clone(),
    });
    if path.starts_with("/assets/") || path == "/api/openapi.json" {
        return next.run(request).await;
    }
    let unsafe_method = !matches!(*request.method(), Method::GET | Method::HEAD);
    if unsafe_method && !same_origin(request.headers()) {
        return refuse(is_api, StatusCode::FORBIDDEN, "Cross-site request refused.");
    }
    let first_run = settings.web.admin.password_hash.is_none();
    let is_setup = path == "/setup" || path == "/api/setup";
    if first_run {
        if !is_setup {
            return if is_api {
                api_error(
                    StatusCode::CONFLICT,
                    "set the administrator password first (POST /api/setup)",
                )
            } else {
                Redirect::to("/setup").into_response()
            };
        }
        if zone != SETUP_ZONE {
            return refuse(
                is_api,
                StatusCode::FORBIDDEN,
                "The first password can only be set from a device in the LAN zone.",
            );
        }
        return next.run(request).await;
    }
    if is_setup {
        return if is_api {
            api_error(
                StatusCode::CONFLICT,
                "the administrator password is already set",
            )
        } else {
            Redirect::to("/login").into_response()
        };
    }
    if path == "/login" || path == "/api/login" {
        return next.run(request).await;
    }
    let now = Instant::now();
    let session = cookie(request.headers(), SESSION_COOKIE).and_then(|id| {
        let mut sessions = lock(&app.sessions);
        sessions.touch(id, now).map(|s| Authed {
            session: id.to_owned(),
            csrf: s.csrf.clone(),
            user: s.user.clone(),
        })
    });
    let Some(authed) = session else {
        return if is_api {
            api_error(StatusCode::UNAUTHORIZED, "log in first (POST /api/login)")
        } else {
            Redirect::to("/login").into_response()
        };
    };
    if unsafe_method {
        let (token, rebuilt) = presented_csrf(request).await;
        request = rebuilt;
        let ok = token.is_some_and(|t| {
            lock(&app.sessions)
                .touch(&authed.session, now)
                .is_some_and(|s| csrf_matches(s, &t))
        });
        if !ok {
            tracing::warn!(client = %peer.ip(), %path, "refused: CSRF token missing or wrong");
            return refuse(
                is_api,
                StatusCode::FORBIDDEN,
                "The form was too old or not from this router (CSRF token missing or wrong). Reload the page and try again.",
            );
        }
    }
    request.extensions_mut().insert(authed);
    next.run(request).await
}

async fn security_headers(request: Request, next: Next) -> Response {
    let is_asset = request.uri().path().starts_with("/assets/");
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !is_asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The whole application: pages, the JSON API and the assets, behind the gate and bounds.
pub fn app(state: Shared) -> Router {
    crate::pages::routes()
        .merge(crate::api::routes())
        .route("/assets/{name}", axum::routing::get(crate::pages::asset))
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
        .layer(middleware::from_fn(security_headers))
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(GlobalConcurrencyLimitLayer::new(CONCURRENCY))
}

/// The port-80 application: every request is sent to the same path over HTTPS.
pub fn redirect_app(https_port: u16) -> Router {
    Router::new().fallback(move |headers: HeaderMap, uri: axum::http::Uri| async move {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .and_then(host_without_port)
            .unwrap_or("router");
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let port = if https_port == 443 {
            String::new()
        } else {
            format!(":{https_port}")
        };
        Redirect::permanent(&format!("https://{host}{port}{path}"))
    })
}

/// The host part of a `Host` header, if it looks like a host name or address (so a hostile
/// header cannot make the redirect point at something else, e.g. `evil.test/x@`).
fn host_without_port(host: &str) -> Option<&str> {
    let name = if let Some(rest) = host.strip_prefix('[') {
        let end = rest.find(']')?;
        rest[..end].parse::<std::net::Ipv6Addr>().ok()?;
        return Some(&host[..end + 2]);
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    ok.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_host_is_taken_only_when_it_is_a_plain_host() {
        assert_eq!(host_without_port("192.168.1.1"), Some("192.168.1.1"));
        assert_eq!(host_without_port("router.home:80"), Some("router.home"));
        assert_eq!(host_without_port("[fd00::1]:80"), Some("[fd00::1]"));
        assert_eq!(host_without_port("[evil.test/x]:80"), None);
        assert_eq!(host_without_port("evil.test/x@"), None);
        assert_eq!(host_without_port(""), None);
    }

    #[test]
    fn the_zone_of_an_ipv6_client_is_the_one_whose_ula_64_holds_it() {
        let settings =
            Settings::from_toml("roost.toml", include_str!("../../../examples/roost.toml"))
                .unwrap();
        let zone = |a: &str| zone_of(&settings, a.parse().unwrap());
        assert_eq!(zone("fd12:3456:789a:1::99").as_deref(), Some("lan"));
        assert_eq!(zone("fd12:3456:789a:1e::5").as_deref(), Some("guest"));
        assert_eq!(zone("::ffff:192.168.1.99").as_deref(), Some("lan"));
        assert_eq!(zone("192.168.20.7").as_deref(), Some("iot"));
        assert_eq!(
            zone("2001:db8:1200:1::99"),
            None,
            "a global source is in no zone"
        );
        assert_eq!(
            zone("fd12:3456:789a:ffff::e"),
            None,
            "a service link is no zone"
        );
    }

    #[test]
    fn form_fields_are_percent_decoded() {
        let pairs: Vec<_> = url_pairs("csrf=a%2Bb&x=1+2").collect();
        assert_eq!(pairs[0], ("csrf".to_owned(), "a+b".to_owned()));
        assert_eq!(pairs[1], ("x".to_owned(), "1 2".to_owned()));
    }

    #[test]
    fn same_origin_needs_origin_to_match_host_when_sent() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h));
        h.insert(header::HOST, HeaderValue::from_static("192.168.1.1"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://192.168.1.1"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.test"),
        );
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h), "an opaque origin from anywhere");
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h));
        // What Chromium sends for its own form post under Referrer-Policy: no-referrer.
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&h));
    }
}
