//! Lab e2e tests: the whole router in namespaces, checked with real traffic. Every test makes
//! its own lab instance (a unique namespace prefix) and removes it when done, even on failure.
//! Negative checks use a short connect timeout and have a positive twin, so they can fail.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod dhcp_tests;
mod dns_tests;
mod ipv6_tests;
mod lab_tests;
mod mirror_tests;
mod mqtt_tests;
mod policy_tests;
mod update_tests;
mod vm_tests;
mod voip_tests;
mod web_tests;
mod wifi_tests;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use roost_lab::{Lab, LabOptions};

/// Short: a dropped SYN is a refused connection for these tests.
pub(crate) const DENIED: Duration = Duration::from_millis(800);
/// Generous: an allowed connection must open.
pub(crate) const ALLOWED: Duration = Duration::from_secs(3);

/// Whether the tests run the lab in VM mode (`ROOST_LAB_VM=1`, ADR 0010): dns and dhcp in
/// their own aarch64 VMs. Missing VM assets then fail the test; they are never skipped.
pub(crate) fn vm_mode() -> bool {
    std::env::var("ROOST_LAB_VM").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A lab instance that is removed when dropped.
pub(crate) struct TestLab {
    pub(crate) lab: Lab,
    helpers: Vec<u32>,
}

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where cargo put the workspace's binaries (this test runs from `target/<profile>/deps`).
pub(crate) fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("ROOST_BIN_DIR") {
        return dir.into();
    }
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(|d| d.parent()).unwrap().to_owned()
}

impl TestLab {
    /// Brings up a lab from the example settings.
    pub(crate) fn up(name: &str) -> Self {
        Self::up_with(name, &repo().join("examples/roost.toml"))
    }

    pub(crate) fn up_with(name: &str, settings: &std::path::Path) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let prefix = format!(
            "rt{}{}{n}",
            std::process::id() % 10_000,
            &name[..name.len().min(2)]
        );
        let state_dir = std::env::temp_dir().join(format!("roost-lab-{prefix}"));
        let bin_dir = bin_dir();
        assert!(
            bin_dir.join("roost-firewall").is_file(),
            "roost-firewall is not built in {}: run cargo build --workspace first",
            bin_dir.display()
        );
        let mut lab = Lab::new(LabOptions {
            prefix,
            state_dir,
            bin_dir,
            settings: settings.to_owned(),
        })
        .unwrap();
        if vm_mode() {
            lab = lab.with_vms(roost_lab::VmOptions {
                cache: roost_lab::vm::default_cache(),
            });
        }
        let test_lab = Self {
            lab,
            helpers: Vec::new(),
        };
        // On failure the guard still tears down what was made.
        test_lab.lab.up().unwrap();
        test_lab
    }

    /// Starts an HTTP server in namespace `ns` on `addr` and waits until it accepts.
    pub(crate) fn listen(&mut self, ns: &str, addr: SocketAddrV4) {
        if let Some(service) = self.vm_service(ns) {
            // In VM mode the namespace holds no address: the daemon in the guest is the
            // listener on its own control address, seen from the other end of its link.
            assert_eq!(
                addr,
                self.lab.settings().control_addr(service),
                "VM mode: only the daemon's own control address listens in {ns}"
            );
            self.wait_connects("fw", addr);
            return;
        }
        let pid = self.lab.serve_http(ns, addr).unwrap();
        self.helpers.push(pid);
        self.wait_connects(ns, addr);
    }

    /// The service whose VM namespace `ns` (short or full) is, in VM mode.
    fn vm_service(&self, ns: &str) -> Option<roost_config::Service> {
        let full = self.lab.netns(ns).ok()?;
        roost_lab::VM_SERVICES.iter().copied().find(|s| {
            self.lab.runs_in_vm(*s) && roost_lab::service_netns(&self.lab.plan().prefix, *s) == full
        })
    }

    fn wait_connects(&self, ns: &str, addr: SocketAddrV4) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.lab.can_connect(ns, addr, ALLOWED).unwrap() {
            assert!(
                Instant::now() < deadline,
                "listener on {addr} in {ns} never came up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The firewall's WAN address, waiting for its DHCP lease.
    pub(crate) fn wan_address(&self) -> Ipv4Addr {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(addr) = self.lab.wan_address() {
                return addr;
            }
            assert!(Instant::now() < deadline, "the firewall got no WAN address");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn connects(&self, from: &str, to: SocketAddrV4, timeout: Duration) -> bool {
        self.lab.can_connect(from, to, timeout).unwrap()
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        self.lab.stop(&self.helpers);
        if let Err(e) = self.lab.down(true) {
            eprintln!("lab teardown failed: {e}");
        }
    }
}

pub(crate) fn sock(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}
