//! Crate integration tests: the real `roost-dhcp` binary in a network namespace this test
//! makes, served to real DHCP clients (dhclient, udhcpc, dhcpcd) and to a scripted client, in
//! namespaces of their own. Every test's names carry a unique prefix and are removed when the
//! test ends, even on panic. Tests that need root have `needs_root` in their names.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod clients_tests;
mod dhcp6_tests;
mod names_tests;
mod wire_tests;

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use roost_config::{Service, Settings};

/// Waits until `f` returns `Some`, polling, or panics with `what` after `timeout`.
pub(crate) fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip(args: &[&str]) -> String {
    run(Command::new("ip").args(args))
}

pub(crate) fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_roost-dhcp"))
}

/// The server namespace with its zone interfaces, client namespaces on each, and the daemon.
pub(crate) struct Net {
    pub(crate) prefix: String,
    pub(crate) dir: tempfile::TempDir,
    namespaces: Vec<String>,
    pub(crate) view: PathBuf,
    pub(crate) control: SocketAddrV4,
    pub(crate) token: String,
    daemon: Option<Child>,
    helpers: Vec<Child>,
}

/// A client namespace on one zone.
pub(crate) struct ClientNs {
    pub(crate) netns: String,
    pub(crate) ifname: String,
}

impl Net {
    /// Namespaces for the example settings' zones (lan, iot, guest), each with one client
    /// namespace, and the view written with `lease_time` for every zone. Does not start the
    /// daemon.
    pub(crate) fn new(tag: &str, lease_time: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("rd{}{tag}{n}", std::process::id() % 10_000);
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::from_toml(
            "roost.toml",
            include_str!("../../../../examples/roost.toml"),
        )
        .unwrap();
        settings.services.token_dir = dir.path().join("tokens");
        std::fs::create_dir_all(&settings.services.token_dir).unwrap();
        let token = format!("token-{prefix}");
        std::fs::write(settings.services.token_dir.join("dhcp"), &token).unwrap();
        let view = settings.dhcp_view();
        let control = view.control.listen;
        let text = settings
            .render_view(Service::Dhcp)
            .lines()
            .map(|l| {
                if l.starts_with("lease_time = ") {
                    format!("lease_time = \"{lease_time}\"")
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let view_path = dir.path().join("dhcp.toml");
        std::fs::write(&view_path, text).unwrap();
        let mut net = Self {
            prefix: prefix.clone(),
            dir,
            namespaces: Vec::new(),
            view: view_path,
            control,
            token,
            daemon: None,
            helpers: Vec::new(),
        };
        let server = net.server_ns();
        net.add_ns(&server);
        ip(&["-n", &server, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &server,
            "addr",
            "add",
            &format!("{control_ip}/32", control_ip = control.ip()),
            "dev",
            "lo",
        ]);
        for z in &view.zones {
            let client = format!("{prefix}-c-{}", z.name);
            net.add_ns(&client);
            let ifname = net.client_ifname(&z.name);
            ip(&[
                "-n",
                &server,
                "link",
                "add",
                &z.interface,
                "type",
                "veth",
                "peer",
                "name",
                &ifname,
                "netns",
                &client,
            ]);
            ip(&["-n", &server, "link", "set", &z.interface, "up"]);
            ip(&["-n", &client, "link", "set", &ifname, "up"]);
            ip(&["-n", &client, "link", "set", "lo", "up"]);
            let cidr = format!("{}/{}", z.server, z.subnet.prefix_len());
            ip(&["-n", &server, "addr", "add", &cidr, "dev", &z.interface]);
            // A static address below the pool, like the lab's clients, so clients can unicast.
            let stat = Ipv4Addr::from(u32::from(z.pool_start) - 1);
            let cidr = format!("{stat}/{}", z.subnet.prefix_len());
            ip(&["-n", &client, "addr", "add", &cidr, "dev", &ifname]);
        }
        net
    }

    fn add_ns(&mut self, name: &str) {
        ip(&["netns", "add", name]);
        self.namespaces.push(name.to_owned());
    }

    pub(crate) fn server_ns(&self) -> String {
        format!("{}-s", self.prefix)
    }

    pub(crate) fn client_ifname(&self, zone: &str) -> String {
        // Unique across tests, so dhcpcd's per-interface files do not meet.
        let mut name = format!("{}{}", &self.prefix, &zone[..1]);
        name.truncate(15);
        name
    }

    pub(crate) fn client(&self, zone: &str) -> ClientNs {
        ClientNs {
            netns: format!("{}-c-{zone}", self.prefix),
            ifname: self.client_ifname(zone),
        }
    }

    /// Starts the daemon and waits for its control API.
    pub(crate) fn start(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("daemon.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.server_ns()])
            .arg(bin())
            .arg("--config")
            .arg(&self.view)
            .env("STATE_DIRECTORY", self.dir.path().join("state"))
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemon = Some(child);
        wait_until(Duration::from_secs(10), "the control api", || {
            (self.get("/health").0 == 200).then_some(())
        });
    }

    /// kill -9 of the daemon, then waits for it to be gone.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            // `ip netns exec` execs the binary, so the child is the daemon itself.
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// `GET path` on the control API, from inside the server namespace.
    pub(crate) fn get(&self, path: &str) -> (u16, String) {
        self.curl(&["-X", "GET"], path)
    }

    pub(crate) fn put(&self, path: &str, body: &Path) -> (u16, String) {
        let data = format!("@{}", body.display());
        self.curl(&["-X", "PUT", "--data-binary", &data], path)
    }

    fn curl(&self, extra: &[&str], path: &str) -> (u16, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.server_ns(), "curl", "-s", "-m", "3"])
            .args(extra)
            .args(["-w", "\n%{http_code}", "-H"])
            .arg(format!("Authorization: Bearer {}", self.token))
            .arg(format!("http://{}{path}", self.control))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    /// `/state` as JSON.
    pub(crate) fn state(&self) -> serde_json::Value {
        let (code, body) = self.get("/state");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The `/state` lease for `ip`, if any.
    pub(crate) fn lease(&self, ip: Ipv4Addr) -> Option<serde_json::Value> {
        self.state()["leases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["ip"] == ip.to_string())
            .cloned()
    }

    /// One counter from `/metrics`.
    pub(crate) fn metric(&self, name: &str) -> u64 {
        let (_, text) = self.get("/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    }

    /// Spawns a helper process, killed at the end of the test.
    pub(crate) fn spawn(&mut self, cmd: &mut Command) {
        self.helpers.push(cmd.spawn().unwrap());
    }

    /// A UDP socket inside `netns` bound to `0.0.0.0:port` on `ifname`, for scripted clients.
    pub(crate) fn socket_in(netns: &str, ifname: &str, port: u16) -> UdpSocket {
        let path = format!("/run/netns/{netns}");
        let ifname = ifname.to_owned();
        std::thread::spawn(move || {
            let f = std::fs::File::open(&path).unwrap();
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let s = socket2::Socket::new(
                socket2::Domain::IPV4,
                socket2::Type::DGRAM,
                Some(socket2::Protocol::UDP),
            )
            .unwrap();
            s.set_reuse_address(true).unwrap();
            s.bind_device(Some(ifname.as_bytes())).unwrap();
            s.set_broadcast(true).unwrap();
            let addr = std::net::SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
            s.bind(&addr.into()).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            UdpSocket::from(s)
        })
        .join()
        .unwrap()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for mut h in self.helpers.drain(..) {
            let _ = h.kill();
            let _ = h.wait();
        }
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        // Clients a test started in our namespaces (dhclient daemonizes): kill by namespace.
        for ns in &self.namespaces {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    if let Ok(pid) = pid.parse::<i32>() {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
            }
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        if std::thread::panicking() {
            eprintln!("daemon log:\n{}", self.log());
        }
    }
}
