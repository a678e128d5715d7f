//! Network namespaces for tests: each has a unique name (`roost-t-<pid>-<n>`) and is deleted on
//! drop, also when the test panics. Nothing here touches the host's own namespace.

use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Fails the test with a clear message unless it runs as root (needed for namespaces).
pub(crate) fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    assert_eq!(
        euid, "0",
        "this test needs root (network namespaces and nft); run it as root or filter out \
         tests named `needs_root` (the nextest `nix` profile does)"
    );
}

pub(crate) struct Netns {
    pub(crate) name: String,
}

impl Netns {
    pub(crate) fn new(role: &str) -> Self {
        require_root();
        let name = format!(
            "roost-t-{}-{}-{role}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Self { name };
        ns.sh("ip link set lo up");
        ns
    }

    /// A command run inside the namespace.
    pub(crate) fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs a shell line inside the namespace; panics when it fails.
    pub(crate) fn sh(&self, line: &str) -> String {
        let out = run(self.cmd("sh").args(["-c", line]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a shell line inside the namespace and returns whether it succeeded.
    pub(crate) fn ok(&self, line: &str) -> bool {
        self.cmd("sh")
            .args(["-c", line])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts `line` in the background inside the namespace; killed on drop of the guard.
    pub(crate) fn spawn(&self, line: &str) -> Bg {
        let child = self
            .cmd("sh")
            .args(["-c", &format!("exec {line}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Bg(child)
    }

    /// A veth pair: `here` in this namespace with `here_addr`, `there` in `peer` with `there_addr`.
    pub(crate) fn veth(
        &self,
        here: &str,
        here_addr: Option<&str>,
        peer: &Netns,
        there: &str,
        there_addr: &str,
    ) {
        self.sh(&format!(
            "ip link add {here} type veth peer name {there} netns {}",
            peer.name
        ));
        if let Some(a) = here_addr {
            self.sh(&format!("ip addr add {a} dev {here}"));
        }
        self.sh(&format!("ip link set {here} up"));
        peer.sh(&format!(
            "ip addr add {there_addr} dev {there} && ip link set {there} up"
        ));
    }

    /// Waits until a TCP listener on `port` is up in this namespace.
    pub(crate) fn wait_listening(&self, port: u16) {
        wait_until(Duration::from_secs(10), || {
            self.sh("ss -ltnH").contains(&format!(":{port} "))
        });
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// A background process, killed when dropped.
pub(crate) struct Bg(pub(crate) Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Polls `cond` until it holds; panics after `timeout`.
pub(crate) fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    let mut pause = Duration::from_millis(10);
    while !cond() {
        assert!(Instant::now() < end, "condition not met within {timeout:?}");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}
