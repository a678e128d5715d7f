//! Integration tests of roost-web: the application through `oneshot`, the controller against
//! real control-API servers on port 0, and the TLS server on a real socket.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod controller_tests;
mod router_tests;
mod server_tests;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use roost_config::views::PeerView;
use roost_config::{Service, Settings};
use roost_control::{ConfigRejected, Daemon, Limits, Token};
use roost_web::app::{AppState, Shared};
use roost_web::controller::Controller;
use roost_web::peers::Peers;
use roost_web::store::Store;
use tower::ServiceExt as _;

pub(crate) const TOKEN: &str = "test-link-token";
pub(crate) const PASSWORD: &str = "correct horse battery";
pub(crate) const LAN_CLIENT: &str = "192.168.1.20:50000";
pub(crate) const GUEST_CLIENT: &str = "192.168.30.20:50000";

/// A daemon behind a real control API: records every view pushed to it; can be told to refuse
/// views containing some text, or to turn unhealthy once it has taken one.
#[derive(Default)]
pub(crate) struct FakeDaemon {
    pub(crate) pushed: Mutex<Vec<String>>,
    pub(crate) refuse_containing: Mutex<Option<String>>,
    pub(crate) sicken_on_push: AtomicBool,
    pub(crate) sick: AtomicBool,
}

impl FakeDaemon {
    pub(crate) fn last(&self) -> Option<String> {
        self.pushed.lock().unwrap().last().cloned()
    }
}

impl Daemon for FakeDaemon {
    async fn health(&self) -> Result<(), String> {
        if self.sick.load(Ordering::SeqCst) {
            Err("lost its interface".to_owned())
        } else {
            Ok(())
        }
    }

    async fn metrics(&self) -> String {
        "roost_dns_udp_queries_total 10\nroost_dns_tcp_queries_total 0\nroost_dns_cache_hits_total 4\n"
            .to_owned()
    }

    async fn state(&self) -> serde_json::Value {
        serde_json::json!({
            "leases": [{ "ip": "192.168.1.100", "zone": "lan", "mac": "02:00:00:00:01:00",
                         "hostname": "laptop", "active": true, "expires": 1_900_000_000u64 }],
            "wan": { "address": "203.0.113.10/24", "gateway": "203.0.113.1", "interface": "wan0", "mode": "dhcp" },
            "ipv6": { "address": "2001:db8:0:1::1000", "prefix": "2001:db8:3400::/56",
                      "deprecated": ["2001:db8:1200::/56"], "dhcp6": "bound" },
            "pushed": self.pushed.lock().unwrap().len(),
            "top_names": [{ "name": "example.test", "queries": 96 }],
            "zone": "lan",
            "registrar": "192.168.1.1:5060",
            "phones": [{ "name": "kitchen", "extension": "101", "registered": true,
                         "registrations": [{ "address": "sip:192.168.1.50:5060",
                                             "user_agent": "<b>Desk phone</b>", "expires": 300 }] }],
        })
    }

    async fn put_config(&self, toml: String) -> Result<(), ConfigRejected> {
        let refused = self.refuse_containing.lock().unwrap().clone();
        if refused.is_some_and(|text| toml.contains(&text)) {
            return Err(ConfigRejected::NotApplied(
                "nft: Could not process rule".to_owned(),
            ));
        }
        self.pushed.lock().unwrap().push(toml);
        if self.sicken_on_push.load(Ordering::SeqCst) {
            self.sick.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// The web VM's world: settings, fake daemons on real sockets, the application.
pub(crate) struct World {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) app: Shared,
    pub(crate) daemons: Vec<(Service, Arc<FakeDaemon>)>,
    /// Each daemon's control API, swapped for a fresh one to stand for a restart.
    apis: Vec<Arc<std::sync::RwLock<axum::Router>>>,
}

fn control_api(fake: &Arc<FakeDaemon>) -> axum::Router {
    roost_control::router(fake.clone(), Token::new(TOKEN).unwrap(), Limits::default())
}

pub(crate) fn example() -> Settings {
    Settings::from_toml("example", include_str!("../../../../examples/roost.toml")).unwrap()
}

pub(crate) fn with_password(mut s: Settings) -> Settings {
    s.web.admin.password_hash = Some(roost_config::PhcHash::from_password(PASSWORD).unwrap());
    s
}

impl World {
    /// Every daemon but web as a fake on port 0; `settings` as version 1.
    pub(crate) async fn new(settings: Settings) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        let mut peers = Vec::new();
        let mut daemons = Vec::new();
        let mut apis = Vec::new();
        for service in settings
            .services()
            .into_iter()
            .filter(|s| *s != Service::Web)
        {
            let fake = Arc::new(FakeDaemon::default());
            let api = Arc::new(std::sync::RwLock::new(control_api(&fake)));
            let slot = api.clone();
            let app = axum::Router::new().fallback(move |request: Request<Body>| {
                let inner = slot.read().unwrap().clone();
                async move { inner.oneshot(request).await }
            });
            apis.push(api);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await });
            peers.push(PeerView {
                service,
                url: format!("http://{addr}"),
                token_file: token_file.clone(),
            });
            daemons.push((service, fake));
        }
        let store = Store::open(&dir.path().join("settings"), &settings).unwrap();
        let controller = Controller::new(
            store,
            settings.clone(),
            peers,
            Peers::new().unwrap(),
            Duration::from_millis(600),
        )
        .unwrap();
        let app = AppState::new(Arc::new(controller));
        Self {
            _dir: dir,
            app,
            daemons,
            apis,
        }
    }

    /// Every daemon restarts: it forgets the views pushed to it (runs its built file again).
    pub(crate) fn restart_daemons(&self) {
        for ((_, fake), api) in self.daemons.iter().zip(&self.apis) {
            *api.write().unwrap() = control_api(fake);
        }
    }

    pub(crate) fn daemon(&self, service: Service) -> &FakeDaemon {
        &self.daemons.iter().find(|(s, _)| *s == service).unwrap().1
    }

    /// Sends `request` from `client` through the whole application.
    pub(crate) async fn send(&self, client: &str, mut request: Request<Body>) -> Answer {
        let addr: SocketAddr = client.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(addr));
        let response = roost_web::app::app(self.app.clone())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// Logs in through the API; the session cookie and CSRF token.
    pub(crate) async fn login(&self) -> Session {
        let a = self
            .send(
                LAN_CLIENT,
                json(
                    Method::POST,
                    "/api/login",
                    None,
                    serde_json::json!({"user": "admin", "password": PASSWORD}),
                ),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        let cookie = a.set_cookie().unwrap();
        let csrf = serde_json::from_str::<serde_json::Value>(&a.body).unwrap()["csrf"]
            .as_str()
            .unwrap()
            .to_owned();
        Session { cookie, csrf }
    }
}

/// A logged-in client.
#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) cookie: String,
    pub(crate) csrf: String,
}

/// What came back.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: axum::http::HeaderMap,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn location(&self) -> Option<&str> {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
    }

    /// `name=value` of the session cookie set, if any.
    pub(crate) fn set_cookie(&self) -> Option<String> {
        let v = self.headers.get(header::SET_COOKIE)?.to_str().ok()?;
        Some(v.split(';').next()?.to_owned())
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

pub(crate) fn get(path: &str, session: Option<&Session>) -> Request<Body> {
    let mut b = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(header::HOST, "192.168.1.1");
    if let Some(s) = session {
        b = b.header(header::COOKIE, &s.cookie);
    }
    b.body(Body::empty()).unwrap()
}

/// A JSON request; with a session, its cookie and CSRF header.
pub(crate) fn json(
    method: Method,
    path: &str,
    session: Option<&Session>,
    body: serde_json::Value,
) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "192.168.1.1")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(s) = session {
        b = b
            .header(header::COOKIE, &s.cookie)
            .header("x-csrf-token", &s.csrf);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

/// A form post; `fields` should include `csrf` where the test wants one.
pub(crate) fn form(
    path: &str,
    session: Option<&Session>,
    fields: &[(&str, &str)],
) -> Request<Body> {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.replace('%', "%25")
                    .replace('&', "%26")
                    .replace('+', "%2B")
                    .replace(' ', "+")
            )
        })
        .collect();
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::HOST, "192.168.1.1")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(s) = session {
        b = b.header(header::COOKIE, &s.cookie);
    }
    b.body(Body::from(body.join("&"))).unwrap()
}
