//! roost-dns integration tests: the real binary on loopback, asked by real `dig`/`kdig`,
//! forwarding to a knot authoritative server the test starts on loopback with a zone it
//! writes (knot does not recurse, so nothing leaves the machine). Every process is killed
//! when its guard drops, also when a test fails.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod case_tests;
mod dnssec_tests;
mod dot_tests;
mod resolve_tests;

use std::io::{Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use roost_config::View as _;
use roost_config::settings::{Dns, Upstream};
use roost_config::views::{ControlView, DnsView, ZoneNet};

/// Polls `f` every 20 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub(crate) fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 (for knot, which wants a number).
pub(crate) fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A knot authoritative server for `example.test` on 127.0.0.1.
pub(crate) struct Knot {
    child: Option<Child>,
    pub(crate) addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// The test zone: names with their TTLs, an NXDOMAIN-able apex, a big RRset.
pub(crate) fn test_zone() -> String {
    let mut z = String::from(
        "$ORIGIN example.test.\n$TTL 300\n\
         @ SOA ns hostmaster 1 3600 600 86400 120\n@ NS ns\nns A 127.0.0.1\n\
         www A 192.0.2.10\nwww AAAA 2001:db8::10\n\
         short 1 A 192.0.2.11\nmail A 192.0.2.12\nads A 192.0.2.66\n",
    );
    for i in 1..=100 {
        z.push_str(&format!("big A 198.51.100.{i}\n"));
    }
    for i in 0..20 {
        z.push_str(&format!("many{i} A 192.0.2.{}\n", 100 + i));
    }
    z
}

impl Knot {
    pub(crate) fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        std::fs::write(dir.path().join("example.test.zone"), test_zone()).unwrap();
        let conf = format!(
            "server:\n    listen: 127.0.0.1@{port}\n    rundir: {d}\n\n\
             database:\n    storage: {d}\n\n\
             log:\n  - target: stderr\n    any: info\n\n\
             template:\n  - id: default\n    storage: {d}\n\n\
             zone:\n  - domain: example.test\n    file: example.test.zone\n",
            d = dir.path().display()
        );
        let conf_path = dir.path().join("knot.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let log = std::fs::File::create(dir.path().join("knot.log")).unwrap();
        let child = Command::new("/usr/sbin/knotd")
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("knotd is installed (Debian knot)");
        let knot = Self {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _dir: dir,
        };
        wait_until("knot to answer", Duration::from_secs(10), || {
            let out = dig(knot.addr, &["+short", "www.example.test"]);
            (out.trim() == "192.0.2.10").then_some(())
        });
        knot
    }

    /// Stops the server (for serve-stale).
    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `dig @addr -p port ARGS` (short timeouts, one try) and returns its output.
pub(crate) fn dig(server: SocketAddr, args: &[&str]) -> String {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .args(["+time=2", "+tries=1"])
        .args(args)
        .output()
        .expect("dig is installed (Debian bind9-dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `kdig @addr -p port ARGS` and returns its output.
pub(crate) fn kdig(server: SocketAddr, args: &[&str]) -> String {
    let out = Command::new("kdig")
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .args(["+time=2", "+retry=0"])
        .args(args)
        .output()
        .expect("kdig is installed (Debian knot-dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running roost-dns.
pub(crate) struct RoostDns {
    child: Child,
    pub(crate) dns: SocketAddr,
    pub(crate) control: SocketAddr,
    token: String,
    log: PathBuf,
    pub(crate) dir: tempfile::TempDir,
}

/// A view for loopback tests: clients 127.0.0.0/8 (or `clients`), upstream `upstream`.
pub(crate) fn loopback_view(dir: &Path, upstream: Option<SocketAddr>) -> DnsView {
    let mut dns = Dns {
        upstreams: upstream
            .map(|u| Upstream {
                address: u.ip(),
                port: Some(u.port()),
                tls_name: None,
            })
            .into_iter()
            .collect(),
        dnssec: false,
        client_rate_limit: 0,
        ..Dns::default()
    };
    dns.hosts.push(roost_config::settings::HostRecord {
        name: "printer".into(),
        address: "127.0.0.20".parse().unwrap(),
    });
    // Derived from the example settings rather than built field by field, so the test
    // follows the view as it grows.
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/roost.toml"
    ))
    .unwrap();
    let mut view = roost_config::Settings::from_toml("roost.toml", &example)
        .unwrap()
        .dns_view();
    view.control = ControlView {
        listen: SocketAddrV4::new([127, 0, 0, 1].into(), 0),
        token_file: dir.join("token"),
    };
    view.hostname = "router".into();
    view.domain = "home.arpa".into();
    view.clients = vec!["127.0.0.0/8".parse().unwrap()];
    view.zones = vec![ZoneNet {
        name: "lan".into(),
        subnet: "127.0.0.0/8".parse().unwrap(),
        router: "127.0.0.1".parse().unwrap(),
        subnet6: None,
    }];
    view.dns = dns;
    view
}

impl RoostDns {
    pub(crate) fn start(upstream: &Knot) -> Self {
        Self::start_with(|dir| loopback_view(dir, Some(upstream.addr)))
    }

    pub(crate) fn start_with(view: impl FnOnce(&Path) -> DnsView) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let view = view(dir.path());
        let token = "test-token-0123456789".to_owned();
        std::fs::write(&view.control.token_file, format!("{token}\n")).unwrap();
        let config = dir.path().join("dns.toml");
        std::fs::write(&config, view.render()).unwrap();
        let log = dir.path().join("roost-dns.log");
        let child = Command::new(env!("CARGO_BIN_EXE_roost-dns"))
            .arg("--config")
            .arg(&config)
            .args(["--dns-listen", "127.0.0.1:0"])
            .env("STATE_DIRECTORY", dir.path())
            .env("RUST_LOG", "info,roost_dns=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut me = Self {
            child,
            dns: SocketAddr::from(([0, 0, 0, 0], 0)),
            control: SocketAddr::from(([0, 0, 0, 0], 0)),
            token,
            log,
            dir,
        };
        let (dns, control) = wait_until("roost-dns to listen", Duration::from_secs(20), || {
            if let Ok(Some(status)) = me.child.try_wait() {
                panic!("roost-dns exited: {status}\n{}", me.log_text());
            }
            let text = me.log_text();
            let addr_after = |marker: &str| -> Option<SocketAddr> {
                text.lines().filter(|l| l.contains(marker)).find_map(|l| {
                    l.split(marker)
                        .nth(1)?
                        .split_whitespace()
                        .next()?
                        .parse()
                        .ok()
                })
            };
            let dns = addr_after("dns listening on ")?;
            let control = text
                .lines()
                .filter(|l| l.contains("listening on ") && !l.contains("dns listening on "))
                .find_map(|l| {
                    l.split("listening on ")
                        .nth(1)?
                        .split_whitespace()
                        .next()?
                        .parse()
                        .ok()
                })?;
            Some((dns, control))
        });
        me.dns = dns;
        me.control = control;
        me
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One HTTP request to the control API; returns status and body.
    pub(crate) fn http(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut s = TcpStream::connect_timeout(&self.control, Duration::from_secs(2)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.control,
            self.token,
            body.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let code = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = resp
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_owned();
        (code, body)
    }

    /// The value of metric line `name` (with labels, if any, as written).
    pub(crate) fn metric(&self, name: &str) -> u64 {
        let (code, text) = self.http("GET", "/metrics", "");
        assert_eq!(code, 200);
        text.lines()
            .find_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                (k == name || k.starts_with(&format!("{name}{{"))).then(|| v.parse().ok())?
            })
            .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
    }

    pub(crate) fn dig(&self, args: &[&str]) -> String {
        dig(self.dns, args)
    }
}

impl Drop for RoostDns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("roost-dns log:\n{}", self.log_text());
        }
    }
}
