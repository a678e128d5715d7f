//! roost-mqtt integration tests: the real binary on loopback (listeners on port 0, bound ports
//! read from its log), driven by Debian's mosquitto clients and raw sockets.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod broker_tests;
mod notify_tests;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use argon2::password_hash::PasswordHasher;
use roost_config::View as _;
use roost_config::settings::{MqttLimits, MqttListener, MqttUser, TlsFiles};
use roost_config::views::{ControlView, MqttView, NetworkView, ZoneNet};

pub(crate) const TOKEN: &str = "test-token";

/// A cheap argon2id hash (tests only; production hashes come from `roostctl passwd`).
pub(crate) fn hash(password: &str) -> String {
    let params = argon2::Params::new(1024, 1, 1, None).unwrap();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes())
        .unwrap()
        .to_string()
}

pub(crate) fn user(name: &str, password: &str, publish: &[&str], subscribe: &[&str]) -> MqttUser {
    MqttUser {
        name: name.to_owned(),
        password_hash: hash(password).parse().unwrap(),
        publish: publish.iter().map(|s| s.to_string()).collect(),
        subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
    }
}

/// The test view: loopback is the `lan` zone, one plain listener (and a TLS one with `tls`).
pub(crate) fn view(
    dir: &Path,
    users: Vec<MqttUser>,
    tls: Option<TlsFiles>,
    anonymous: bool,
) -> MqttView {
    let token_file = dir.join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let mut listeners = vec![MqttListener {
        zone: "lan".into(),
        port: Some(0),
        tls: false,
        websocket: false,
        allow_anonymous: anonymous,
    }];
    if tls.is_some() {
        listeners.push(MqttListener {
            zone: "lan".into(),
            port: Some(0),
            tls: true,
            websocket: false,
            allow_anonymous: false,
        });
    }
    MqttView {
        control: ControlView {
            listen: "127.0.0.1:0".parse().unwrap(),
            token_file,
        },
        network: NetworkView {
            interfaces: vec![],
            gateway: "127.0.0.1".parse().unwrap(),
            gateway6: None,
        },
        enabled: true,
        zones: vec![ZoneNet {
            name: "lan".into(),
            subnet: "127.0.0.0/8".parse().unwrap(),
            router: "127.0.0.1".parse().unwrap(),
            subnet6: None,
        }],
        listeners,
        tls,
        users,
        limits: MqttLimits {
            max_message_bytes: 4096,
            ..MqttLimits::default()
        },
    }
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_roost-mqtt"))
}

/// A running roost-mqtt, killed when dropped.
pub(crate) struct Broker {
    child: Child,
    pub(crate) plain: SocketAddr,
    pub(crate) tls: Option<SocketAddr>,
    /// The WebSocket listener, when the view has one.
    pub(crate) ws: Option<SocketAddr>,
    pub(crate) control: SocketAddr,
}

impl Broker {
    pub(crate) fn start(view: &MqttView, dir: &Path) -> Self {
        Self::start_with_env(view, dir, &[])
    }

    /// [`Broker::start`] with more environment, e.g. what systemd gives a `Type=notify` unit.
    pub(crate) fn start_with_env(view: &MqttView, dir: &Path, env: &[(&str, &Path)]) -> Self {
        let config = dir.join("mqtt.toml");
        std::fs::write(&config, view.render()).unwrap();
        let state = dir.join("state");
        let mut child = Command::new(bin())
            .arg("--config")
            .arg(&config)
            .envs(env.iter().copied())
            .env("STATE_DIRECTORY", &state)
            .env("RUST_LOG", "info,roost_mqtt=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("roost-mqtt: {line}");
                let _ = tx.send(line);
            }
        });
        let want_tls = view.listeners.iter().any(|l| l.tls);
        let want_ws = view.listeners.iter().any(|l| l.websocket);
        let (mut plain, mut tls, mut ws, mut control) = (None, None, None, None);
        let deadline = Instant::now() + Duration::from_secs(20);
        while plain.is_none()
            || control.is_none()
            || (want_tls && tls.is_none())
            || (want_ws && ws.is_none())
        {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("roost-mqtt did not start listening");
            let addr = |marker: &str| -> Option<SocketAddr> {
                let rest = &line[line.find(marker)? + marker.len()..];
                rest.split_whitespace().next()?.parse().ok()
            };
            if let Some(a) = addr("mqtt listening on ") {
                if line.contains("websocket=true") {
                    ws = Some(a);
                } else if line.contains("tls=true") {
                    tls = Some(a);
                } else {
                    plain = Some(a);
                }
            } else if let Some(a) = addr("listening on ") {
                control = Some(a);
            }
        }
        Self {
            child,
            plain: plain.unwrap(),
            tls,
            ws,
            control: control.unwrap(),
        }
    }

    /// SIGTERM, and wait for the exit (the final snapshot is written by then).
    pub(crate) fn stop(mut self) {
        let pid = self.child.id();
        Command::new("kill").arg(pid.to_string()).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "roost-mqtt exited with {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "roost-mqtt did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// GET a control API path.
    pub(crate) fn get(&self, path: &str) -> String {
        let mut s = TcpStream::connect(self.control).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// PUT `body` to a control API path; the whole answer.
    pub(crate) fn put(&self, path: &str, body: &str) -> String {
        let mut s = TcpStream::connect(self.control).unwrap();
        write!(
            s,
            "PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// Waits until a client with this id is connected with `subs` subscriptions.
    pub(crate) fn wait_subscribed(&self, client_id: &str, subs: usize) {
        wait_until(Duration::from_secs(15), || {
            let state = self.get("/state");
            let body = state.split("\r\n\r\n").nth(1).unwrap_or("");
            // Chunked or not, the JSON object is in there.
            let start = body.find('{').unwrap_or(0);
            let end = body.rfind('}').map_or(body.len(), |e| e + 1);
            let v: serde_json::Value = serde_json::from_str(&body[start..end]).unwrap_or_default();
            v["clients"].as_array().is_some_and(|cs| {
                cs.iter().any(|c| {
                    c["client_id"] == client_id && c["subscriptions"].as_u64() == Some(subs as u64)
                })
            })
        });
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A mosquitto client process, killed when dropped.
pub(crate) struct Client(Option<Child>);

impl Client {
    pub(crate) fn spawn(cmd: &str, args: &[&str]) -> Self {
        Self(Some(
            Command::new(cmd)
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        ))
    }

    /// Waits for the exit (at most `timeout`, then kills it) and returns the output.
    pub(crate) fn finish(mut self, timeout: Duration) -> Output {
        let mut child = self.0.take().unwrap();
        let deadline = Instant::now() + timeout;
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait_with_output().unwrap()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs a mosquitto tool to completion (10 s at most).
pub(crate) fn run(cmd: &str, args: &[&str]) -> Output {
    Client::spawn(cmd, args).finish(Duration::from_secs(10))
}
