//! The update agent against real Nix (Debian's nix-bin in a separate store root) and a real
//! TUF repository served on 127.0.0.1: stand-in generations built from plain derivations whose
//! `switch-to-configuration` records its activation, published with the publisher, installed,
//! switched, health-checked, rolled back, and killed at every step. The agent works through
//! the host step (`roost-update host`, a second process) and the spool they share, as in the
//! update VM and on the host; a test plays a compromised VM against the host step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use roost_config::views::PeerView;
use roost_config::{Generation, Service, Settings, View};
use roost_update::manifest::{HydraBuild, ManifestInput, build_manifest};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{FileServer, TestRepo};

const SANDBOX_PATHS: &str = "/bin/sh=/usr/bin/dash /bin/mkdir=/usr/bin/mkdir \
    /bin/chmod=/usr/bin/chmod /bin/head=/usr/bin/head /lib /lib64 /usr/lib";

/// One stand-in generation: versions of the dns and dhcp packages, and whether it is healthy.
pub(crate) struct GenSpec {
    pub(crate) tag: &'static str,
    pub(crate) dns: &'static str,
    pub(crate) dhcp: &'static str,
    pub(crate) healthy: bool,
}

/// Built generations: toplevel and service VM paths, per tag.
pub(crate) struct Built {
    pub(crate) toplevel: String,
    pub(crate) services: BTreeMap<String, String>,
}

/// Builds the generations in their own store root and copies them into a `file://` cache (xz).
pub(crate) fn build_generations(
    dir: &Path,
    lib_bytes: usize,
    specs: &[GenSpec],
) -> BTreeMap<&'static str, Built> {
    let mut attrs = String::new();
    for s in specs {
        attrs.push_str(&format!(
            "  {t} = top \"{t}\" \"{}\" \"{}\" {};\n  {t}-dns = vm \"dns\" \"{}\";\n  {t}-dhcp = vm \"dhcp\" \"{}\";\n",
            s.dns, s.dhcp, s.healthy, s.dns, s.dhcp, t = s.tag,
        ));
    }
    let expr = format!(
        r#"let
  mk = name: script: deps: derivation ({{ inherit name; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/bin"; args = [ "-c" script ]; }} // deps);
  lib = mk "roost-lib" "head -c {lib_bytes} /dev/urandom > $out" {{ }};
  pkg = svc: v: mk "roost-${{svc}}-${{v}}" "echo ${{svc}} ${{v}} > $out; head -c 20000 /dev/urandom >> $out" {{ }};
  vm = svc: v: mk "microvm-${{svc}}-${{v}}" "echo $lib $pkg > $out" {{ inherit lib; pkg = pkg svc v; }};
  top = tag: dns: dhcp: healthy: mk "nixos-system-roost-${{tag}}" ''
    mkdir -p $out/bin
    printf '#!/bin/sh\necho ${{tag}} "$1" >> "$ROOST_TEST_DIR/activations"\n${{if healthy then "rm -f" else "touch"}} "$ROOST_TEST_DIR/unhealthy"\n' > $out/bin/switch-to-configuration
    chmod +x $out/bin/switch-to-configuration
    echo $dns $dhcp > $out/vms
  '' {{ dns = vm "dns" dns; dhcp = vm "dhcp" dhcp; }};
in {{
{attrs}}}
"#
    );
    let file = dir.join("generations.nix");
    std::fs::write(&file, expr).unwrap();
    let build_root = dir.join("build-store");
    let mut cmd = std::process::Command::new("nix-build");
    cmd.arg("--store")
        .arg(&build_root)
        .args(["--option", "sandbox-paths", SANDBOX_PATHS, "--no-out-link"])
        // Debian's nix-bin without nix-setup-systemd has no `nixbld` group: build as root.
        .args(["--option", "build-users-group", ""])
        .arg(&file);
    for s in specs {
        for suffix in ["", "-dns", "-dhcp"] {
            cmd.args(["-A", &format!("{}{suffix}", s.tag)]);
        }
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "nix-build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let paths: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(paths.len(), specs.len() * 3);
    let cache = dir.join("cache");
    let mut copy = std::process::Command::new("nix");
    copy.args(["--extra-experimental-features", "nix-command", "copy"])
        .arg("--store")
        .arg(&build_root)
        .arg("--to")
        .arg(format!("file://{}", cache.display()));
    let mut built = BTreeMap::new();
    for (s, chunk) in specs.iter().zip(paths.chunks(3)) {
        copy.arg(&chunk[0]);
        built.insert(
            s.tag,
            Built {
                toplevel: chunk[0].clone(),
                services: [
                    ("dns".to_owned(), chunk[1].clone()),
                    ("dhcp".to_owned(), chunk[2].clone()),
                ]
                .into(),
            },
        );
    }
    let out = copy.output().unwrap();
    assert!(
        out.status.success(),
        "nix copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    built
}

/// A repository plus cache served over HTTP, and the agent's files.
pub(crate) struct Setup {
    pub(crate) tmp: tempfile::TempDir,
    pub(crate) repo: TestRepo,
    pub(crate) server: FileServer,
    pub(crate) built: BTreeMap<&'static str, Built>,
}

impl Setup {
    pub(crate) async fn new(lib_bytes: usize, specs: &[GenSpec]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let built = build_generations(tmp.path(), lib_bytes, specs);
        let repo = TestRepo::new().await;
        let www = tmp.path().join("www");
        std::fs::create_dir_all(&www).unwrap();
        std::os::unix::fs::symlink(repo.dir(), www.join("tuf")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("cache"), www.join("cache")).unwrap();
        // A peer daemon whose /health answers 200.
        std::fs::write(www.join("health"), "ok\n").unwrap();
        std::fs::write(tmp.path().join("token"), "test-token\n").unwrap();
        let server = FileServer::start(www).await;
        for dir in [
            "agent-state",
            "host-state",
            "spool",
            "target-store",
            "profiles",
            "run",
        ] {
            std::fs::create_dir_all(tmp.path().join(dir)).unwrap();
        }
        Self {
            tmp,
            repo,
            server,
            built,
        }
    }

    pub(crate) fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    /// Publishes generation `number` from the build tagged `tag`.
    pub(crate) async fn publish(&self, tag: &str, number: u64) {
        self.publish_services(tag, number, self.built[tag].services.clone())
            .await;
    }

    /// Publishes generation `number` from the build tagged `tag` with these VMs' closures.
    pub(crate) async fn publish_services(
        &self,
        tag: &str,
        number: u64,
        services: BTreeMap<String, String>,
    ) {
        let b = &self.built[tag];
        let build: HydraBuild = serde_json::from_value(serde_json::json!({
            "job": "nixosConfigurations.roost.config.system.build.toplevel",
            "buildoutputs": { "out": { "path": b.toplevel } },
        }))
        .unwrap();
        let manifest = build_manifest(&ManifestInput {
            build,
            host: Some("roost".to_owned()),
            channel: "stable".to_owned(),
            generation: Generation(number),
            services,
            cache_dir: self.path("cache"),
            cache_url: self.server.url("cache/").to_string(),
        })
        .unwrap();
        self.repo.publish(&manifest).await;
    }

    /// Writes update.toml (from the example settings, pointed at this repository), the
    /// agent's system file and the host step's (separate store root and profile, hooks writing
    /// into the temp dir).
    pub(crate) fn write_config(&self) {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/roost.toml");
        let settings =
            Settings::from_toml(example, &std::fs::read_to_string(example).unwrap()).unwrap();
        let mut view = settings.update_view();
        view.control.listen = "127.0.0.1:0".parse().unwrap();
        view.control.token_file = self.path("token");
        view.peers = vec![PeerView {
            service: Service::Dns,
            url: self.server.url("").to_string(),
            token_file: self.path("token"),
        }];
        view.update.repository = Some(self.server.url("tuf").to_string());
        view.update.auto = false;
        view.update.window = None;
        std::fs::write(self.path("update.toml"), view.render()).unwrap();
        std::fs::write(self.path("root.json"), &self.repo.root_v1).unwrap();
        let run = self.path("run");
        let system = format!(
            r#"root = "{root}"
spool = "{spool}"
host_timeout_secs = 60
health_timeout_secs = 3

[[checks]]
name = "dns"
command = ["sh", "-c", "! test -e {run}/unhealthy"]
"#,
            root = self.path("root.json").display(),
            spool = self.path("spool").display(),
            run = run.display(),
        );
        std::fs::write(self.path("system.toml"), system).unwrap();
        let host = format!(
            r#"root = "{root}"
hostname = "roost"
spool = "{spool}"
store = "{store}"
profile = "{profile}"
restart = ["sh", "-c", "echo \"$0\" >> {run}/restarts", "{{vm}}"]
"#,
            root = self.path("root.json").display(),
            spool = self.path("spool").display(),
            store = self.path("target-store").display(),
            profile = self.path("profiles/system").display(),
            run = run.display(),
        );
        std::fs::write(self.path("host.toml"), host).unwrap();
    }

    pub(crate) fn lines(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.path("run").join(file))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Where the profile points (a logical /nix/store path).
    pub(crate) fn profile_target(&self) -> Option<String> {
        let mut p = self.path("profiles/system");
        loop {
            let next = std::fs::read_link(&p).ok()?;
            let next = if next.is_absolute() {
                next
            } else {
                p.parent().unwrap().join(next)
            };
            if next.starts_with("/nix/store") {
                return Some(next.display().to_string());
            }
            p = next;
        }
    }

    /// Whether a store path is valid (imported) in the agent's store.
    pub(crate) fn valid(&self, path: &str) -> bool {
        let out = std::process::Command::new("nix-store")
            .arg("--store")
            .arg(self.path("target-store"))
            .args(["--check-validity", "--print-invalid", path])
            .output()
            .unwrap();
        out.status.success() && out.stdout.is_empty()
    }

    /// The generation the system runs: the profile's target, which must be the toplevel
    /// activated last, present in the store, with a runnable switch-to-configuration.
    pub(crate) fn running(&self) -> &'static str {
        let target = self.profile_target().expect("a profile");
        let (tag, _) = self
            .built
            .iter()
            .find(|(_, b)| b.toplevel == target)
            .expect("the profile points at a built generation");
        let last = self
            .lines("activations")
            .last()
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            last,
            format!("{tag} switch"),
            "last activation is the profile's"
        );
        assert!(self.valid(&target), "{target} is valid in the store");
        let physical = self
            .path("target-store")
            .join(target.trim_start_matches('/'))
            .join("bin/switch-to-configuration");
        assert!(physical.is_file());
        tag
    }
}

/// The host step (`roost-update host`), as the host runs it: own state, the test dir for the
/// activation hook, its log in `host.log`.
pub(crate) fn start_host(setup: &Setup) -> tokio::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(setup.path("host.log"))
        .unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_roost-update"))
        .arg("host")
        .arg("--settings")
        .arg(setup.path("host.toml"))
        .env("STATE_DIRECTORY", setup.path("host-state"))
        .env("ROOST_TEST_DIR", setup.path("run"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// A running agent process, and the host step beside it.
pub(crate) struct AgentProc {
    pub(crate) child: tokio::process::Child,
    pub(crate) host: tokio::process::Child,
    pub(crate) url: String,
    pub(crate) http: reqwest::Client,
    pub(crate) log: tokio::sync::mpsc::UnboundedReceiver<String>,
    pub(crate) early: Vec<String>,
}

impl AgentProc {
    pub(crate) async fn start(setup: &Setup, crash: Option<&str>) -> Self {
        let host = start_host(setup);
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_roost-update"));
        cmd.arg("agent")
            .arg("--config")
            .arg(setup.path("update.toml"))
            .arg("--system")
            .arg(setup.path("system.toml"))
            .env("STATE_DIRECTORY", setup.path("agent-state"))
            .env("ROOST_TEST_DIR", setup.path("run"))
            .env("RUST_LOG", "info")
            .env_remove(roost_update::agent::CRASH_ENV)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(c) = crash {
            cmd.env(roost_update::agent::CRASH_ENV, c);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send(line);
            }
        });
        let mut early = Vec::new();
        let addr = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let line = rx.recv().await.expect("agent exited before listening");
                early.push(line.clone());
                if let Some(rest) = line.split("listening on ").nth(1) {
                    return rest.split_whitespace().next().unwrap().to_owned();
                }
            }
        })
        .await
        .expect("agent listens");
        Self {
            child,
            host,
            url: format!("http://{addr}"),
            http: {
                // Installs the aws-lc-rs provider reqwest's rustls needs.
                drop(tough::DefaultTransport::new());
                reqwest::Client::new()
            },
            log: rx,
            early,
        }
    }

    pub(crate) async fn post(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth("test-token")
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    pub(crate) async fn state(&self) -> serde_json::Value {
        let body = self
            .http
            .get(format!("{}/state", self.url))
            .bearer_auth("test-token")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        serde_json::from_str(&body).unwrap()
    }

    /// Waits until no update is pending (and at least one check or update has been seen).
    pub(crate) async fn idle(&self) -> serde_json::Value {
        tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let s = self.state().await;
                if s["pending"].is_null() {
                    return s;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("the update finishes")
    }

    /// Applies generation `n` and waits for the outcome.
    pub(crate) async fn apply(&self, n: u64) -> serde_json::Value {
        let (status, body) = self.post(&format!("/apply?generation={n}")).await;
        assert_eq!(status, 202, "{body}");
        self.idle().await
    }

    /// Waits for the process to exit (the crash hook), returning its code.
    pub(crate) async fn exited(mut self) -> (Option<i32>, Vec<String>) {
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("agent exits")
            .unwrap();
        let mut lines = std::mem::take(&mut self.early);
        while let Ok(l) = self.log.try_recv() {
            lines.push(l);
        }
        (status.code(), lines)
    }

    pub(crate) async fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill().await;
        let _ = self.host.kill().await;
        let mut lines = std::mem::take(&mut self.early);
        while let Some(l) = self.log.recv().await {
            lines.push(l);
        }
        lines
    }
}

fn spec(tag: &'static str, dns: &'static str, dhcp: &'static str) -> GenSpec {
    GenSpec {
        tag,
        dns,
        dhcp,
        healthy: true,
    }
}

#[tokio::test]
async fn installs_then_updates_fetching_only_missing_paths_and_restarting_only_the_changed_vm_needs_nix()
 {
    let setup = Setup::new(200_000, &[spec("g1", "1", "1"), spec("g2", "1", "2")]).await;
    setup.write_config();
    setup.publish("g1", 1).await;
    let agent = AgentProc::start(&setup, None).await;

    // The first generation: everything fetched, both VMs started.
    let s = agent.apply(1).await;
    assert_eq!(s["current"]["generation"], 1, "{s:#}");
    assert_eq!(setup.running(), "g1");
    assert_eq!(setup.lines("restarts"), ["dhcp", "dns"]);
    let first_bytes = s["progress"]["bytes"].as_u64().unwrap();
    assert_eq!(s["progress"]["paths_total"], 6);

    // g2 changes only the dhcp package: three paths (package, its VM, toplevel) are fetched
    // and only the dhcp VM restarts.
    setup.publish("g2", 2).await;
    let (status, body) = agent.post("/check").await;
    assert_eq!(status, 200);
    assert!(body.contains("[1,2]"), "{body}");
    let (status, body) = agent.post("/apply").await;
    assert_eq!(status, 202, "{body}");
    let s = agent.idle().await;
    assert_eq!(s["current"]["generation"], 2, "{s:#}");
    assert_eq!(setup.running(), "g2");
    assert_eq!(setup.lines("restarts"), ["dhcp", "dns", "dhcp"]);
    assert_eq!(s["progress"]["paths_total"], 3);
    let bytes = s["progress"]["bytes"].as_u64().unwrap();
    assert!(bytes * 4 < first_bytes, "{bytes} of {first_bytes}");
    assert_eq!(s["history"].as_array().unwrap().len(), 2);
    // Nothing newer: nothing to do.
    assert_eq!(agent.post("/apply").await.0, 404);
    agent.stop().await;
}

#[tokio::test]
async fn unhealthy_generation_rolls_back_by_itself_and_is_never_tried_again_needs_nix() {
    let bad = GenSpec {
        tag: "bad",
        dns: "1",
        dhcp: "2",
        healthy: false,
    };
    let setup = Setup::new(10_000, &[spec("g1", "1", "1"), bad]).await;
    setup.write_config();
    setup.publish("g1", 1).await;
    setup.publish("bad", 2).await;
    let agent = AgentProc::start(&setup, None).await;
    agent.apply(1).await;
    let s = agent.apply(2).await;
    // Back on generation 1, activated again, with the reason recorded.
    assert_eq!(s["current"]["generation"], 1, "{s:#}");
    assert_eq!(setup.running(), "g1");
    assert_eq!(
        setup.lines("activations"),
        ["g1 switch", "bad switch", "g1 switch"]
    );
    let reason = s["failed"]["2"].as_str().unwrap();
    assert!(
        reason.contains("health") && reason.contains("dns"),
        "{reason}"
    );
    assert_eq!(s["last_failure"]["phase"], "health");
    assert_eq!(s["history"][1]["outcome"], "rolled back");
    // The dhcp VM went to the bad generation and back: restarted both times.
    assert_eq!(setup.lines("restarts"), ["dhcp", "dns", "dhcp", "dhcp"]);
    // Never again: not chosen, and refused when asked for.
    assert_eq!(agent.post("/apply").await.0, 404);
    assert_eq!(agent.post("/apply?generation=2").await.0, 409);
    agent.stop().await;
}

#[tokio::test]
async fn agent_killed_at_each_step_keeps_the_running_generation_usable_needs_nix() {
    let setup = Setup::new(
        300_000,
        &[
            spec("g1", "1", "1"),
            spec("g2", "1", "2"),
            spec("g3", "1", "3"),
            spec("g4", "1", "4"),
            spec("g5", "1", "5"),
            spec("g6", "2", "6"),
            spec("g7", "2", "7"),
        ],
    )
    .await;
    setup.write_config();
    for (i, tag) in ["g1", "g2", "g3", "g4", "g5", "g6", "g7"]
        .iter()
        .enumerate()
    {
        setup.publish(tag, i as u64 + 1).await;
    }
    let agent = AgentProc::start(&setup, None).await;
    agent.apply(1).await;
    agent.stop().await;

    // Killed after install, switch, restart or health: the next start rolls back to g1 (an
    // interruption, not a failure).
    for (n, step) in [(2, "install"), (3, "switch"), (4, "restart"), (5, "health")] {
        let agent = AgentProc::start(&setup, Some(step)).await;
        assert_eq!(agent.post(&format!("/apply?generation={n}")).await.0, 202);
        let (code, _) = agent.exited().await;
        assert_eq!(code, Some(roost_update::agent::CRASH_EXIT), "{step}");
        // Whatever the profile says now is a complete generation in the store.
        let target = setup.profile_target().unwrap();
        assert!(setup.valid(&target), "{step}: {target}");
        let agent = AgentProc::start(&setup, None).await;
        let s = agent.idle().await;
        assert_eq!(s["current"]["generation"], 1, "{step}: {s:#}");
        assert_eq!(setup.running(), "g1", "{step}");
        assert!(s["failed"].as_object().unwrap().is_empty(), "{step}: {s:#}");
        assert_eq!(
            s["history"].as_array().unwrap().last().unwrap()["outcome"],
            "interrupted"
        );
        agent.stop().await;
    }

    // Killed halfway through a download: the next start resumes it with a Range request and
    // finishes the update.
    let agent = AgentProc::start(&setup, Some("fetch-partial")).await;
    assert_eq!(agent.post("/apply?generation=6").await.0, 202);
    let (code, _) = agent.exited().await;
    assert_eq!(code, Some(roost_update::agent::CRASH_EXIT));
    assert_eq!(setup.running(), "g1");
    let agent = AgentProc::start(&setup, None).await;
    let s = agent.idle().await;
    assert_eq!(s["current"]["generation"], 6, "{s:#}");
    assert_eq!(setup.running(), "g6");
    let log = agent.stop().await;
    assert!(
        log.iter()
            .any(|l| l.contains("continuing a download") && l.contains("resumed=true")),
        "{log:#?}"
    );

    // Killed after the fetch, before it was journaled: the fetch is redone (nothing left to
    // download) and the update completes.
    let agent = AgentProc::start(&setup, Some("fetch")).await;
    assert_eq!(agent.post("/apply?generation=7").await.0, 202);
    assert_eq!(
        agent.exited().await.0,
        Some(roost_update::agent::CRASH_EXIT)
    );
    assert_eq!(setup.running(), "g6");
    let agent = AgentProc::start(&setup, None).await;
    let s = agent.idle().await;
    assert_eq!(s["current"]["generation"], 7, "{s:#}");
    assert_eq!(s["progress"]["paths_total"], 0);
    assert_eq!(setup.running(), "g7");

    // Manual rollback to an older installed generation pins it.
    let (status, body) = agent.post("/rollback").await;
    assert_eq!(status, 202, "{body}");
    let s = agent.idle().await;
    assert_eq!(s["current"]["generation"], 6, "{s:#}");
    assert_eq!(s["pinned"], 6);
    assert_eq!(setup.running(), "g6");
    assert_eq!(agent.post("/apply").await.0, 404, "pinned: nothing to do");
    agent.stop().await;
}

#[tokio::test]
async fn old_generations_are_garbage_collected_keeping_the_newest_and_the_rollback_target_needs_nix()
 {
    let tags = ["g1", "g2", "g3", "g4"];
    let specs: Vec<GenSpec> = [("g1", "1"), ("g2", "2"), ("g3", "3"), ("g4", "4")]
        .into_iter()
        .map(|(tag, dhcp)| spec(tag, "1", dhcp))
        .collect();
    let setup = Setup::new(100_000, &specs).await;
    setup.write_config();
    // A top-level key, so before the file's first table.
    let system = std::fs::read_to_string(setup.path("system.toml")).unwrap();
    std::fs::write(
        setup.path("system.toml"),
        format!("keep_generations = 2\n{system}"),
    )
    .unwrap();
    for (i, tag) in tags.iter().enumerate() {
        setup.publish(tag, i as u64 + 1).await;
    }
    let agent = AgentProc::start(&setup, None).await;
    // After each install the agent collects while still busy: a request then answers 409.
    let when_free = async |path: String| {
        tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let (status, body) = agent.post(&path).await;
                if status != 409 {
                    return (status, body);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("the agent becomes free")
    };
    for n in 1..=4 {
        let (status, body) = when_free(format!("/apply?generation={n}")).await;
        assert_eq!(status, 202, "{body}");
        let s = agent.idle().await;
        assert_eq!(s["current"]["generation"], n, "{s:#}");
    }
    // The collection after g4 finishes in the background.
    let s = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let s = agent.state().await;
            if s["installed"].as_object().unwrap().len() == 2 {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("old generations are collected");
    let installed: Vec<&String> = s["installed"].as_object().unwrap().keys().collect();
    assert_eq!(installed, ["3", "4"], "{s:#}");
    // g1 and g2 are gone from the store, their own dhcp packages with them; the dns package
    // g3 and g4 share stays, and so does all of g3 (where a rollback goes).
    for tag in ["g1", "g2"] {
        let b = &setup.built[tag];
        assert!(!setup.valid(&b.toplevel), "{tag} was collected");
        assert!(
            !setup.valid(&b.services["dhcp"]),
            "{tag}'s dhcp was collected"
        );
    }
    for tag in ["g3", "g4"] {
        let b = &setup.built[tag];
        assert!(setup.valid(&b.toplevel), "{tag} stays");
        assert!(setup.valid(&b.services["dns"]), "{tag}'s dns stays");
    }
    assert_eq!(setup.running(), "g4");
    // The profile keeps only the generations still installed.
    let links = std::fs::read_dir(setup.path("profiles"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with("system-") && name.ends_with("-link")
        })
        .count();
    assert_eq!(links, 2);
    // Rolling back still works: to g3, whose paths were kept.
    let (status, body) = when_free("/rollback".to_owned()).await;
    assert_eq!(status, 202, "{body}");
    let s = agent.idle().await;
    assert_eq!(s["current"]["generation"], 3, "{s:#}");
    assert_eq!(setup.running(), "g3");
    // And to g1, whose paths were collected: fetched again, verified again by the host step.
    assert!(!setup.valid(&setup.built["g1"].toplevel));
    let (status, body) = when_free("/rollback/1".to_owned()).await;
    assert_eq!(status, 202, "{body}");
    let s = agent.idle().await;
    assert_eq!(s["current"]["generation"], 1, "{s:#}");
    assert_eq!(setup.running(), "g1");
    assert!(s["progress"]["paths_total"].as_u64().unwrap() > 0, "{s:#}");
    agent.stop().await;
}

#[tokio::test]
async fn a_compromised_update_vm_cannot_make_the_host_install_what_the_repository_did_not_sign_needs_nix()
 {
    use roost_update::spool::{Answer, HostLink, Request, Spool};
    let setup = Setup::new(10_000, &[spec("g1", "1", "1"), spec("g2", "1", "2")]).await;
    setup.write_config();
    setup.publish("g1", 1).await;
    let agent = AgentProc::start(&setup, None).await;
    agent.apply(1).await;
    setup.publish("g2", 2).await;
    // From here on the test is the update VM: it writes the spool and talks to the host step.
    let spool = Spool::new(setup.path("spool"));
    let vm = HostLink::new(spool.clone(), Duration::from_secs(60));
    let g2 = &setup.built["g2"];
    let g2_dhcp: roost_update::nix::StorePath = g2.services["dhcp"].parse().unwrap();
    let refused = |r: Result<Answer, roost_update::spool::HostError>| match r {
        Err(roost_update::spool::HostError::Refused(why)) => why,
        other => panic!("not refused: {other:?}"),
    };

    // The repository as published, but every NAR the host lacks replaced by other bytes.
    let copy = |from: &Path, to: &Path| {
        let out = std::process::Command::new("cp")
            .arg("-rT")
            .arg(from)
            .arg(to)
            .output()
            .unwrap();
        assert!(out.status.success());
    };
    copy(&setup.repo.dir(), &spool.repo());
    let Answer::Missing(missing) = vm
        .call(Request::Missing {
            paths: vec![g2.toplevel.parse().unwrap(), g2_dhcp.clone()],
        })
        .await
        .unwrap()
    else {
        panic!("missing answers Missing")
    };
    assert_eq!(missing.len(), 2, "{missing:?}");
    let nar_dir = spool.incoming().join("nar");
    std::fs::create_dir_all(&nar_dir).unwrap();
    for path in &missing {
        std::fs::write(
            nar_dir.join(format!("{}.nar", path.hash_part())),
            b"not the signed bytes",
        )
        .unwrap();
    }
    let import = || Request::Import {
        host: "roost".into(),
        channel: "stable".into(),
        generation: 2,
    };
    let why = refused(vm.call(import()).await);
    assert!(why.contains("NarSize") || why.contains("NarHash"), "{why}");
    assert!(!setup.valid(&g2.toplevel));
    assert!(!setup.valid(&g2_dhcp.to_string()));

    // A manifest changed after signing (its hash no longer matches the targets metadata).
    let targets = spool.repo().join("targets");
    let manifests: Vec<PathBuf> = walk(&targets)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with("2.json"))
        .collect();
    assert!(!manifests.is_empty(), "generation 2's manifest");
    for manifest in manifests {
        let mut bytes = std::fs::read(&manifest).unwrap();
        bytes.extend_from_slice(b" ");
        std::fs::write(&manifest, bytes).unwrap();
    }
    let why = refused(vm.call(import()).await);
    assert!(why.contains("sha256") || why.contains("bytes"), "{why}");

    // A toplevel the host never verified, a switch to what the profile does not point at, a
    // collection of the running generation, another host's generation: all refused.
    let why = refused(
        vm.call(Request::Profile {
            toplevel: g2.toplevel.parse().unwrap(),
        })
        .await,
    );
    assert!(why.contains("neither verified"), "{why}");
    let why = refused(
        vm.call(Request::Switch {
            toplevel: g2.toplevel.parse().unwrap(),
        })
        .await,
    );
    assert!(why.contains("points at"), "{why}");
    let why = refused(
        vm.call(Request::Collect {
            toplevels: vec![setup.built["g1"].toplevel.parse().unwrap()],
        })
        .await,
    );
    assert!(why.contains("running generation"), "{why}");
    let why = refused(
        vm.call(Request::Import {
            host: "nas".into(),
            channel: "stable".into(),
            generation: 2,
        })
        .await,
    );
    assert!(why.contains("this is"), "{why}");
    assert_eq!(setup.running(), "g1");

    // The honest agent, through the same host step, still installs g2.
    let s = agent.apply(2).await;
    assert_eq!(s["current"]["generation"], 2, "{s:#}");
    assert_eq!(setup.running(), "g2");
    agent.stop().await;
    let log = std::fs::read_to_string(setup.path("host.log")).unwrap();
    assert!(log.contains("request not done"), "{log}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn the_update_vm_itself_restarts_only_after_its_generation_is_committed_needs_nix() {
    let setup = Setup::new(10_000, &[spec("g1", "1", "1"), spec("g2", "1", "2")]).await;
    setup.write_config();
    // Each restart records whether the agent's journal had the update committed by then.
    let host = std::fs::read_to_string(setup.path("host.toml")).unwrap();
    let journal = setup.path("agent-state/journal.json");
    let hook = format!(
        r#"restart = ["sh", "-c", "echo \"$0 $(grep -c '\"pending\": null' {})\" >> {}/restarts", "{{vm}}"]"#,
        journal.display(),
        setup.path("run").display()
    );
    let host: String = host
        .lines()
        .map(|l| {
            if l.starts_with("restart =") {
                hook.clone()
            } else {
                l.to_owned()
            }
        })
        .map(|l| l + "\n")
        .collect();
    std::fs::write(setup.path("host.toml"), host).unwrap();
    // Here the update VM's closure is the dhcp VM's: it changes from g1 to g2.
    for (tag, n) in [("g1", 1), ("g2", 2)] {
        let mut services = setup.built[tag].services.clone();
        services.insert("update".into(), services["dhcp"].clone());
        setup.publish_services(tag, n, services).await;
    }
    let agent = AgentProc::start(&setup, None).await;
    let restarts = async |n: usize| {
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let lines = setup.lines("restarts");
                if lines.len() >= n {
                    return lines;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("the restarts happen")
    };
    let s = agent.apply(1).await;
    assert_eq!(s["current"]["generation"], 1, "{s:#}");
    // The other VMs in the restart step; the agent's own last, once generation 1 is committed
    // (restarting it earlier would kill the agent mid-update and roll the update back).
    assert_eq!(restarts(3).await, ["dhcp 0", "dns 0", "update 1"]);
    // The agent is busy until the host step answers that restart.
    let (status, body) = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let (status, body) = agent.post("/apply?generation=2").await;
            if status != 409 {
                return (status, body);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the agent becomes free");
    assert_eq!(status, 202, "{body}");
    let s = agent.idle().await;
    assert_eq!(s["current"]["generation"], 2, "{s:#}");
    assert_eq!(s["history"][1]["outcome"], "installed", "{s:#}");
    assert_eq!(
        restarts(5).await,
        ["dhcp 0", "dns 0", "update 1", "dhcp 0", "update 1"]
    );
    agent.stop().await;
}
