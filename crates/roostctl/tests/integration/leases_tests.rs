//! `roostctl leases` against a real roost-dhcp in a namespace this test makes, with leases
//! put in its journal before it starts.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use roost_config::{MacAddr, Service, Settings};
use roost_dhcp::core::{ClientId, Lease, LeaseState};

use crate::example;

/// The namespace and the daemon in it, removed on drop even when the test fails.
struct Daemon {
    netns: String,
    child: Option<Child>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// roost-dhcp, built next to roostctl by `cargo build --workspace`.
fn dhcp_bin() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_roostctl")).with_file_name("roost-dhcp");
    assert!(
        bin.is_file(),
        "{} is not built: run cargo build --workspace first",
        bin.display()
    );
    bin
}

fn lease(ip: [u8; 4], zone: &str, mac: u8, hostname: Option<&str>, now: u64) -> Lease {
    let mac = [2, 0, 0, 0, 0, mac];
    let mut id = vec![1];
    id.extend_from_slice(&mac);
    Lease {
        ip: Ipv4Addr::from(ip),
        zone: zone.to_owned(),
        client_id: ClientId(id),
        mac: MacAddr(mac),
        hostname: hostname.map(str::to_owned),
        fqdn: None,
        state: LeaseState::Bound,
        starts: now,
        expires: now + 3600,
    }
}

fn roostctl_in(netns: &str, args: &[&str]) -> Output {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            netns,
            env!("CARGO_BIN_EXE_roostctl"),
            "leases",
        ])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn leases_prints_the_dhcp_daemons_leases_as_a_table_needs_root() {
    let dir = tempfile::tempdir().unwrap();
    let netns = format!("roost-t-leases-{}", std::process::id());
    ip(&["netns", "add", &netns]);
    let mut daemon = Daemon {
        netns: netns.clone(),
        child: None,
    };
    ip(&["-n", &netns, "link", "set", "lo", "up"]);
    // veth pairs stand in for the zone interfaces (this kernel has no dummy interfaces).
    for iface in ["lan", "iot", "guest"] {
        let peer = format!("{iface}-peer");
        ip(&[
            "-n", &netns, "link", "add", iface, "type", "veth", "peer", "name", &peer,
        ]);
        ip(&["-n", &netns, "link", "set", iface, "up"]);
        ip(&["-n", &netns, "link", "set", &peer, "up"]);
    }
    let mut settings = Settings::load(&example()).unwrap();
    settings.services.token_dir = dir.path().join("tokens");
    std::fs::create_dir_all(&settings.services.token_dir).unwrap();
    std::fs::write(
        settings.services.token_dir.join("dhcp"),
        "leases-test-token\n",
    )
    .unwrap();
    let control = settings.control_addr(Service::Dhcp);
    ip(&[
        "-n",
        &netns,
        "addr",
        "add",
        &format!("{}/32", control.ip()),
        "dev",
        "lo",
    ]);
    let settings_file = dir.path().join("roost.toml");
    std::fs::write(&settings_file, settings.to_toml()).unwrap();
    let view = dir.path().join("dhcp.toml");
    std::fs::write(&view, settings.render_view(Service::Dhcp)).unwrap();

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let state = dir.path().join("state");
    let (mut store, _) = roost_dhcp::store::Store::open(&state).unwrap();
    store
        .append(&[
            lease([192, 168, 1, 120], "lan", 1, Some("Laptop"), now),
            lease([192, 168, 20, 130], "iot", 2, None, now),
        ])
        .unwrap();
    drop(store);
    daemon.child = Some(
        Command::new("ip")
            .args(["netns", "exec", &netns])
            .arg(dhcp_bin())
            .arg("--config")
            .arg(&view)
            .env("STATE_DIRECTORY", &state)
            .stderr(std::fs::File::create(dir.path().join("dhcp.log")).unwrap())
            .spawn()
            .unwrap(),
    );

    // The defaults come from the settings file: control address and token_dir/dhcp.
    let settings_arg = settings_file.to_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let out = loop {
        let out = roostctl_in(&netns, &["--settings", settings_arg]);
        if out.status.success() {
            break out;
        }
        assert!(
            Instant::now() < deadline,
            "roostctl leases never worked: {}\ndaemon log: {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.path().join("dhcp.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    for column in ["MAC", "IP", "HOSTNAME", "ZONE", "STATE", "EXPIRES"] {
        assert!(lines[0].contains(column), "{table}");
    }
    // iot sorts before lan; the LAN lease shows the name it is published under.
    assert!(
        lines[1].starts_with("02:00:00:00:00:02  192.168.20.130"),
        "{table}"
    );
    assert!(
        lines[1].contains(" iot ") && lines[1].contains(" bound "),
        "{table}"
    );
    let lan: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        &lan[..5],
        [
            "02:00:00:00:00:01",
            "192.168.1.120",
            "laptop",
            "lan",
            "bound"
        ],
        "{table}"
    );
    assert!(
        lines[2].contains(" in 59m") || lines[2].ends_with(" in 1h"),
        "{table}"
    );

    // Explicit flags, and --json: the daemon's /state as it is.
    let url = format!("http://{control}");
    let token = settings.services.token_dir.join("dhcp");
    let out = roostctl_in(
        &netns,
        &[
            "--url",
            &url,
            "--token-file",
            token.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(state["leases"].as_array().unwrap().len(), 2, "{state}");
    assert_eq!(state["local_names"][0]["name"], "laptop");

    // A wrong token is an error with the daemon's answer, exit 2.
    let bad = dir.path().join("bad-token");
    std::fs::write(&bad, "wrong").unwrap();
    let out = roostctl_in(
        &netns,
        &["--url", &url, "--token-file", bad.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HTTP 401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
