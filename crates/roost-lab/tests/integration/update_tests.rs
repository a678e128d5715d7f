//! Signed updates through the router: the ISP serves a TUF repository and a binary cache over
//! HTTP, the update agent in its own namespace checks, fetches through the firewall (update →
//! WAN tcp 443 is its only way out), installs into a separate store and profile root, switches,
//! restarts only the changed service VMs, reports the new generation in `/state`, and rolls a
//! generation whose health check fails back by itself.
//!
//! Stand-in generations are real store paths built with Debian's nix-bin from plain
//! derivations (as in roost-update's agent tests), published with `roost-update publish`.

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use roost_config::views::UpdateView;
use roost_config::{Service, View};
use roost_lab::plan::isp;

use crate::{ALLOWED, TestLab, bin_dir};

/// The repository's web server: HTTPS on the ISP's web address (the update VM may open 443 on
/// the WAN), with a certificate from a CA the test makes and the agent trusts through
/// `SSL_CERT_FILE`, as a router trusts its system roots. TUF and the NAR hashes are checked
/// anyway; TLS keeps what the router fetches private from the path.
const REPO_PORT: u16 = 443;

/// A CA and a server certificate for `ip` signed by it: (ca.pem, cert.pem, key.pem) in `dir`.
fn test_tls(dir: &Path, ip: std::net::Ipv4Addr) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "roost lab isp test ca");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec![ip.to_string()]).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

/// A static file server for the ISP: the stdlib's, bound without HTTPServer's reverse lookup
/// of its own name (which stalls in a namespace without a resolver for it).
const STATIC_SERVER: &str = r#"
import functools, http.server, socketserver, sys
class Server(http.server.ThreadingHTTPServer):
    server_bind = socketserver.TCPServer.server_bind
class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.client_address[0], fmt % args))
        sys.stderr.flush()
handler = functools.partial(Handler, directory=sys.argv[3])
server = Server((sys.argv[1], int(sys.argv[2])), handler)
if len(sys.argv) > 5:
    import ssl
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(sys.argv[4], sys.argv[5])
    server.socket = tls.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#;

/// A temp directory removed when dropped (also on a failed assertion).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("roost-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A stand-in generation: the dhcp package's version, and whether it passes its health check.
struct Gen {
    tag: &'static str,
    dhcp: &'static str,
    healthy: bool,
}

/// Toplevel and service VM paths of a built generation.
struct Built {
    toplevel: String,
    services: BTreeMap<&'static str, String>,
}

const SANDBOX_PATHS: &str = "/bin/sh=/usr/bin/dash /bin/mkdir=/usr/bin/mkdir \
    /bin/chmod=/usr/bin/chmod /bin/head=/usr/bin/head /lib /lib64 /usr/lib";

/// Builds the generations in a store root of their own and copies them into `dir/cache`
/// (`file://`, xz). Each toplevel's `switch-to-configuration` records its activation in
/// `$ROOST_TEST_DIR/activations` and sets or clears the `unhealthy` marker the agent's check
/// looks at.
fn build(dir: &Path, gens: &[Gen]) -> BTreeMap<&'static str, Built> {
    let mut attrs = String::new();
    for g in gens {
        attrs.push_str(&format!(
            "  {t} = top \"{t}\" \"{d}\" {h};\n  {t}-dns = vm \"dns\" \"1\";\n  {t}-dhcp = vm \"dhcp\" \"{d}\";\n",
            t = g.tag,
            d = g.dhcp,
            h = g.healthy,
        ));
    }
    let expr = format!(
        r#"let
  mk = name: script: deps: derivation ({{ inherit name; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/bin"; args = [ "-c" script ]; }} // deps);
  lib = mk "roost-lib" "head -c 300000 /dev/urandom > $out" {{ }};
  pkg = svc: v: mk "roost-${{svc}}-${{v}}" "echo ${{svc}} ${{v}} > $out; head -c 20000 /dev/urandom >> $out" {{ }};
  vm = svc: v: mk "microvm-${{svc}}-${{v}}" "echo $lib $pkg > $out" {{ inherit lib; pkg = pkg svc v; }};
  top = tag: dhcp: healthy: mk "nixos-system-roost-${{tag}}" ''
    mkdir -p $out/bin
    printf '#!/bin/sh\necho ${{tag}} "$1" >> "$ROOST_TEST_DIR/activations"\n${{if healthy then "rm -f" else "touch"}} "$ROOST_TEST_DIR/unhealthy"\n' > $out/bin/switch-to-configuration
    chmod +x $out/bin/switch-to-configuration
    echo $dns $dhcp > $out/vms
  '' {{ dns = vm "dns" "1"; dhcp = vm "dhcp" dhcp; }};
in {{
{attrs}}}
"#
    );
    let file = dir.join("generations.nix");
    std::fs::write(&file, expr).unwrap();
    let mut cmd = Command::new("nix-build");
    cmd.arg("--store")
        .arg(dir.join("build-store"))
        .args(["--option", "sandbox-paths", SANDBOX_PATHS])
        .args(["--option", "substituters", ""])
        // Debian's nix-bin without nix-setup-systemd has no `nixbld` group: build as root.
        .args(["--option", "build-users-group", ""])
        .arg("--no-out-link")
        .arg(&file);
    for g in gens {
        for suffix in ["", "-dns", "-dhcp"] {
            cmd.args(["-A", &format!("{}{suffix}", g.tag)]);
        }
    }
    let paths = run(&mut cmd);
    let paths: Vec<&str> = paths.lines().collect();
    assert_eq!(paths.len(), gens.len() * 3);
    let mut copy = Command::new("nix");
    copy.args(["--extra-experimental-features", "nix-command", "copy"])
        .arg("--store")
        .arg(dir.join("build-store"))
        .arg("--to")
        .arg(format!("file://{}", dir.join("www/cache").display()));
    let mut built = BTreeMap::new();
    for (g, chunk) in gens.iter().zip(paths.chunks(3)) {
        copy.arg(chunk[0]);
        built.insert(
            g.tag,
            Built {
                toplevel: chunk[0].to_owned(),
                services: [("dns", chunk[1].to_owned()), ("dhcp", chunk[2].to_owned())].into(),
            },
        );
    }
    run(&mut copy);
    built
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn roost_update() -> Command {
    Command::new(bin_dir().join("roost-update"))
}

/// Publishes `built` as generation `n` for host `host` with the publisher's CLI.
fn publish(dir: &Path, host: &str, built: &Built, n: u64, cache_url: &str) {
    let build = dir.join(format!("build-{n}.json"));
    let json = serde_json::json!({
        "job": format!("nixosConfigurations.{host}.config.system.build.toplevel"),
        "buildoutputs": { "out": { "path": built.toplevel } },
    });
    std::fs::write(&build, json.to_string()).unwrap();
    let mut cmd = roost_update();
    cmd.arg("publish")
        .arg("--repo")
        .arg(dir.join("www/tuf"))
        .arg("--key-dir")
        .arg(dir.join("test-keys"))
        .arg("--build")
        .arg(&build)
        .arg("--cache")
        .arg(dir.join("www/cache"))
        .args([
            "--cache-url",
            cache_url,
            "--channel",
            "stable",
            "--host",
            host,
        ])
        .args(["--generation", &n.to_string()]);
    for (name, path) in &built.services {
        cmd.args(["--service", &format!("{name}={path}")]);
    }
    run(&mut cmd);
}

/// The agent's `/state`, once no update is pending.
fn idle_state(lab: &TestLab) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok((200, body)) = lab.lab.control_get(Service::Update, "/state") {
            let state: serde_json::Value = serde_json::from_str(&body).unwrap();
            if state["pending"].is_null() {
                return state;
            }
        }
        assert!(Instant::now() < deadline, "the update never finished");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn post(lab: &TestLab, path: &str) -> (u16, String) {
    lab.lab.control_post(Service::Update, path).unwrap()
}

fn lines(dir: &TempDir, file: &str) -> Vec<String> {
    std::fs::read_to_string(dir.path(file))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn lab_update_agent_installs_a_generation_from_the_isp_and_rolls_back_an_unhealthy_one() {
    let tmp = TempDir::new("lab-update");
    // The stand-in generations' activations and health marker live in the spool (`run`), so
    // the agent's health check reads the marker in both modes: in VM mode the spool is the
    // one directory the update VM shares with the host.
    for d in ["www", "host-state", "spool/run", "target-store", "profiles"] {
        std::fs::create_dir_all(tmp.path(d)).unwrap();
    }
    let built = build(
        &tmp.0,
        &[
            Gen {
                tag: "g1",
                dhcp: "1",
                healthy: true,
            },
            Gen {
                tag: "g2",
                dhcp: "2",
                healthy: true,
            },
            Gen {
                tag: "bad",
                dhcp: "3",
                healthy: false,
            },
        ],
    );
    let mut lab = TestLab::up("update");

    // The ISP's update server: a TUF repository (test keys) and the binary cache.
    let server = SocketAddrV4::new(isp::HTTP, REPO_PORT);
    let base = format!("https://{server}");
    let (ca, cert, key) = test_tls(&tmp.0, isp::HTTP);
    let root = tmp.path("root.json");
    run(roost_update()
        .args(["keys", "init", "--repo"])
        .arg(tmp.path("www/tuf"))
        .arg("--key-dir")
        .arg(tmp.path("test-keys"))
        .arg("--pin")
        .arg(&root));
    let script = tmp.path("static-server.py");
    std::fs::write(&script, STATIC_SERVER).unwrap();
    let pid = lab
        .lab
        .spawn_in(
            "isp",
            "isp-updates",
            Path::new("python3"),
            &[
                "-u".to_owned(),
                script.display().to_string(),
                server.ip().to_string(),
                REPO_PORT.to_string(),
                tmp.path("www").display().to_string(),
                cert.display().to_string(),
                key.display().to_string(),
            ],
        )
        .unwrap();
    lab.helpers.push(pid);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab.connects("isp", server, ALLOWED) {
        assert!(Instant::now() < deadline, "the update server never came up");
        std::thread::sleep(Duration::from_millis(50));
    }
    // TLS for real: the repository is trusted with the test CA and not without it (asked
    // from a LAN client: in VM mode the update namespace is only the VM's wire).
    let fetch = |extra: &[&str]| {
        let netns = lab.lab.netns("client-lan").unwrap();
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &netns,
                "curl",
                "-sf",
                "-m",
                "5",
                "-o",
                "/dev/null",
            ])
            .args(extra)
            .arg(format!("{base}/"))
            .status()
            .unwrap()
            .success()
    };
    assert!(
        fetch(&["--cacert", ca.to_str().unwrap()]),
        "trusted with the test CA"
    );
    assert!(!fetch(&[]), "a certificate from an unknown CA is refused");

    // The agent's view, as the lab renders it, pointed at the ISP's repository; applied on
    // request (no window). Its health checks: the web VM's /peers/health (update → web 9100
    // is the one control API the update VM may reach; web asks every other daemon), a DNS
    // answer from roost-dns (update → dns 53; busybox's nslookup, which the update VM has)
    // and the generation's own health marker.
    let settings = lab.lab.settings();
    let host = settings.router.hostname.clone();
    let mut view: UpdateView = settings.update_view();
    view.update.repository = Some(format!("{base}/tuf"));
    view.update.auto = false;
    view.update.window = None;
    assert_eq!(view.peers.len(), 1, "the web VM answers for the daemons");
    std::fs::write(tmp.path("update.toml"), view.render()).unwrap();
    let run_dir = tmp.path("spool/run");
    let system = format!(
        r#"root = "{root}"
spool = "{spool}"
host_timeout_secs = 60
health_timeout_secs = 5

[[checks]]
name = "dns"
command = ["busybox", "nslookup", "www.{zone}", "{dns}"]

[[checks]]
name = "generation"
command = ["sh", "-c", "! test -e {run}/unhealthy"]
"#,
        root = root.display(),
        spool = tmp.path("spool").display(),
        run = run_dir.display(),
        dns = view.dns_server,
        zone = isp::ZONE,
    );
    std::fs::write(tmp.path("system.toml"), system).unwrap();
    // The host step: the store, the profile and VM restarts, with no network at all (its own
    // empty network namespace, as `PrivateNetwork=yes` gives it on the host).
    let host_settings = format!(
        r#"root = "{root}"
hostname = "{host}"
spool = "{spool}"
store = "{store}"
profile = "{profile}"
restart = ["sh", "-c", "echo \"$0\" >> {run}/restarts", "{{vm}}"]
"#,
        root = root.display(),
        spool = tmp.path("spool").display(),
        store = tmp.path("target-store").display(),
        profile = tmp.path("profiles/system").display(),
        run = run_dir.display(),
    );
    std::fs::write(tmp.path("host.toml"), host_settings).unwrap();
    let host_log = std::fs::File::create(tmp.path("host.log")).unwrap();
    let mut host_step = Command::new("unshare")
        .args(["--net", "--", "env"])
        .arg(format!(
            "STATE_DIRECTORY={}",
            tmp.path("host-state").display()
        ))
        .arg(format!("ROOST_TEST_DIR={}", run_dir.display()))
        .arg("RUST_LOG=info")
        .arg(bin_dir().join("roost-update"))
        .arg("host")
        .arg("--settings")
        .arg(tmp.path("host.toml"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(host_log.try_clone().unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    lab.helpers.push(host_step.id());
    // The lab stops it with its helpers; this reaps it then.
    std::thread::spawn(move || host_step.wait());
    let cache_url = format!("{base}/cache/");
    publish(&tmp.0, &host, &built["g1"], 1, &cache_url);

    // The agent, in the update VM (or its namespace).
    lab.lab
        .start_update_agent(&roost_lab::UpdateAgent {
            view: tmp.path("update.toml"),
            system: tmp.path("system.toml"),
            ca_bundle: ca.clone(),
            spool: tmp.path("spool"),
        })
        .unwrap();
    if crate::vm_mode() {
        // The agent runs in its aarch64 VM, the spool shared in by virtiofsd.
        let status = lab.lab.status().unwrap();
        let agent = status
            .processes
            .iter()
            .find(|p| p.name == "update")
            .unwrap();
        assert!(
            agent.vm.is_some() && agent.healthy == Some(true),
            "{agent:?}"
        );
        assert!(
            status
                .processes
                .iter()
                .any(|p| p.name == "update-virtiofsd")
        );
    }

    // The first generation: found by a check, fetched through the firewall, installed.
    let (status, body) = post(&lab, "/check");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("[1]"), "{body}");
    let (status, body) = post(&lab, "/apply");
    assert_eq!(status, 202, "{body}");
    let state = idle_state(&lab);
    assert_eq!(state["current"]["generation"], 1, "{state:#}");
    assert_eq!(lines(&tmp, "spool/run/activations"), ["g1 switch"]);
    assert_eq!(lines(&tmp, "spool/run/restarts"), ["dhcp", "dns"]);
    let first_bytes = state["progress"]["bytes"].as_u64().unwrap();

    // The ISP saw the downloads from the router's WAN address (NAT), not the update VM's.
    let wan = lab.wan_address().to_string();
    let log = std::fs::read_to_string(lab.lab.log_path("isp-updates")).unwrap();
    assert!(log.lines().any(|l| l.contains("/cache/nar/")), "{log}");
    assert!(log.lines().all(|l| l.starts_with(&wan)), "{log}");

    // Generation 2 changes only the dhcp package: only its paths are fetched, only its VM
    // restarts, and /state reports the new generation.
    publish(&tmp.0, &host, &built["g2"], 2, &cache_url);
    let (status, body) = post(&lab, "/check");
    assert_eq!(status, 200, "{body}");
    assert_eq!(post(&lab, "/apply").0, 202);
    let state = idle_state(&lab);
    assert_eq!(state["current"]["generation"], 2, "{state:#}");
    assert_eq!(state["progress"]["paths_total"], 3, "{state:#}");
    let bytes = state["progress"]["bytes"].as_u64().unwrap();
    assert!(bytes * 4 < first_bytes, "{bytes} of {first_bytes}");
    assert_eq!(lines(&tmp, "spool/run/restarts"), ["dhcp", "dns", "dhcp"]);

    // The web UI shows it from the LAN: generation 2 running, both installed.
    let admin = crate::web_tests::Admin::first_run(&lab);
    let (code, body) = admin.get("/api/updates");
    assert_eq!(code, 200, "{body}");
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["current"]["generation"], 2, "{seen:#}");
    let (code, page) = admin.get("/updates");
    assert_eq!(code, 200);
    assert!(page.contains("Generation 2</p>"), "{page}");
    assert!(
        page.contains("/updates/pin/1"),
        "generation 1 can be pinned: {page}"
    );

    // Generation 3 fails its health check: the agent switches back to 2 by itself, records
    // why, and never tries it again.
    publish(&tmp.0, &host, &built["bad"], 3, &cache_url);
    assert_eq!(post(&lab, "/check").0, 200);
    assert_eq!(post(&lab, "/apply").0, 202);
    let state = idle_state(&lab);
    assert_eq!(state["current"]["generation"], 2, "{state:#}");
    let reason = state["failed"]["3"].as_str().unwrap();
    assert!(reason.contains("generation"), "{reason}");
    assert!(!reason.contains("dns"), "roost-dns answered: {reason}");
    assert_eq!(
        lines(&tmp, "spool/run/activations"),
        ["g1 switch", "g2 switch", "bad switch", "g2 switch"]
    );
    assert_eq!(post(&lab, "/apply").0, 404);
    // Every generation went into the store through the host step, which verified it again
    // from the spool without a network of its own.
    let host_log = std::fs::read_to_string(tmp.path("host.log")).unwrap();
    let imported = host_log
        .lines()
        .filter(|l| l.contains("generation verified and imported"))
        .count();
    assert_eq!(imported, 3, "{host_log}");
}
