//! # roost-lab: the whole router on one Linux machine
//!
//! Each microVM of the production router becomes a network namespace (`<prefix>-fw`,
//! `<prefix>-dns`, ...), each host bridge a Linux bridge inside a switch namespace
//! (`<prefix>-sw`), the Internet an ISP namespace (`<prefix>-isp`: DHCP for the WAN, an
//! authoritative DNS server for `isp.test`, a web server, all on documentation addresses), and
//! the household a client namespace per zone (`<prefix>-client-lan`, ...). Each daemon runs in
//! its namespace with its own settings view, exactly as in its VM. The host's own namespace is
//! never changed.
//!
//! Used by `roostctl lab up|status|exec|down` and by the e2e tests (`tests/`), which give each
//! test its own prefix so labs do not meet. Needs root and iproute2, dnsmasq, knot, python3.
//!
//! Files: `<state>/lab.json` (what this instance made), `<state>/etc/<service>.toml` (views),
//! `<state>/tokens/<service>` (control-API tokens), `<state>/var/<service>/` (daemon state,
//! kept across `up`/`down`), `<state>/logs/*.log`.
//!
//! [`plan`] derives the topology without side effects; this module applies it. In VM mode
//! ([`Lab::with_vms`], `roostctl lab up --vm`, ADR 0010) the services of [`VM_SERVICES`] boot
//! in their own aarch64 qemu VM inside their namespace instead ([`vm`]).

mod isp;
mod netns;
pub mod plan;
mod process;
pub mod vm;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use roost_config::{Service, Settings};
use serde::{Deserialize, Serialize};

pub use isp::IspServer;
pub use plan::{Plan, client_netns, isp_netns, service_netns};
pub use vm::{VM_SERVICES, VmOptions};

/// What went wrong in the lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The lab needs root (namespaces, links, nftables).
    #[error("the lab needs root: run it with sudo")]
    NotRoot,
    /// A command failed.
    #[error("`{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A program could not be started.
    #[error("cannot start {program}: {source} (is it installed?)")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Entering a namespace failed.
    #[error("cannot enter namespace {netns}: {errno}")]
    Setns {
        /// The namespace.
        netns: String,
        /// Why.
        errno: nix::errno::Errno,
    },
    /// The settings are invalid.
    #[error("{0}")]
    Settings(#[from] roost_config::LoadError),
    /// Daemons the settings need are not built (a router without its VoIP registrar, say,
    /// must not come up as if it had none).
    #[error("not built in {bin_dir}: {missing} (run cargo build --workspace)")]
    NotBuilt {
        /// Where they were looked for.
        bin_dir: PathBuf,
        /// The binaries missing.
        missing: String,
    },
    /// Kamailio's configuration could not be rendered (a phone's password file).
    #[error("VoIP: {0}")]
    Voip(#[from] roost_config::voip::VoipError),
    /// Something the lab waits for did not happen.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// A daemon did not become healthy.
    #[error(
        "{service} did not become healthy within {seconds} s ({why}); its log, {log}, ends:\n{tail}"
    )]
    Unhealthy {
        /// Which daemon.
        service: Service,
        /// How long we waited.
        seconds: u64,
        /// The last health-check failure.
        why: String,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
    /// A process the lab started exited at once.
    #[error("{name} exited right after starting; its log, {log}, ends:\n{tail}")]
    Exited {
        /// Which process.
        name: String,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
    /// No such namespace in this lab.
    #[error("no namespace `{0}` in this lab (see `roostctl lab status`)")]
    UnknownNamespace(String),
    /// VM mode needs what `scripts/vm-assets` builds.
    #[error("{path} is missing: run scripts/vm-assets first (VM mode, ADR 0010)")]
    VmAssets {
        /// The first missing asset.
        path: PathBuf,
    },
    /// The instance is up in the other mode.
    #[error("lab {prefix} is up {running}; run `roostctl lab down` before bringing it up {asked}")]
    ModeMismatch {
        /// The instance.
        prefix: String,
        /// How it runs now.
        running: &'static str,
        /// How it was asked to run.
        asked: &'static str,
    },
}

/// Where a lab instance lives and what it runs.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Namespace name prefix; `roost` gives `roost-fw`, `roost-isp`, ...
    pub prefix: String,
    /// State directory of this instance.
    pub state_dir: PathBuf,
    /// Directory holding the daemon binaries (`roost-firewall`, ...).
    pub bin_dir: PathBuf,
    /// The settings file.
    pub settings: PathBuf,
}

/// The daemons that run as lab daemons so far (`roost-<name> --config FILE`, control API on
/// their link); the others' namespaces exist and wait for them.
pub const LAB_DAEMONS: &[Service] = &[
    Service::Firewall,
    Service::Dns,
    Service::Dhcp,
    Service::Mqtt,
    Service::Wifi,
    Service::Voip,
    Service::Web,
];

/// How long `up` waits for each daemon's `/health`.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `up` waits for a VM's daemon: boot under TCG on a busy machine included.
const VM_HEALTH_TIMEOUT: Duration = Duration::from_secs(120);
/// How long one health request into a VM may take.
const HEALTH_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What an instance made, written before anything is made so `down` can clean up after a
/// crash or a half-made `up`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Record {
    prefix: String,
    settings: PathBuf,
    namespaces: Vec<String>,
    processes: Vec<ProcessRecord>,
    /// Whether the services of [`VM_SERVICES`] run in VMs.
    #[serde(default)]
    vm: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProcessRecord {
    name: String,
    netns: String,
    pid: u32,
    log: PathBuf,
    /// Set when the process is a service's VM (qemu).
    #[serde(default)]
    vm: Option<VmRecord>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct VmRecord {
    memory_mib: u32,
    /// From starting qemu to the daemon's first healthy answer.
    boot_ms: Option<u64>,
}

/// The update agent's files, for [`Lab::start_update_agent`].
#[derive(Debug, Clone)]
pub struct UpdateAgent {
    /// Its settings view (`--config`).
    pub view: PathBuf,
    /// Its platform file (`--system`: pinned root, spool, health checks).
    pub system: PathBuf,
    /// The CA certificates it trusts (its VM's system roots).
    pub ca_bundle: PathBuf,
    /// The spool it shares with the host step; the platform file names it.
    pub spool: PathBuf,
}

/// A lab instance.
pub struct Lab {
    opts: LabOptions,
    settings: Settings,
    plan: Plan,
    vm: Option<VmOptions>,
}

/// One daemon's or server's status.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessStatus {
    /// `firewall`, `isp-dhcp`, ...
    pub name: String,
    /// Its namespace.
    pub netns: String,
    /// Its pid, when it runs.
    pub pid: Option<u32>,
    /// For daemons: whether `/health` answered 200.
    pub healthy: Option<bool>,
    /// Its log file.
    pub log: PathBuf,
    /// For a service's VM: its boot time and memory.
    pub vm: Option<VmStatus>,
}

/// A service VM's figures.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct VmStatus {
    /// Guest memory, MiB.
    pub memory_mib: u32,
    /// From starting qemu to the daemon's first healthy answer, ms.
    pub boot_ms: Option<u64>,
    /// qemu's resident memory on the host, KiB.
    pub rss_kib: Option<u64>,
}

/// One namespace with its interfaces.
#[derive(Debug, Clone, Serialize)]
pub struct NamespaceStatus {
    /// Name.
    pub name: String,
    /// Whether it exists.
    pub exists: bool,
    /// `ip -j addr` output, parsed.
    pub interfaces: serde_json::Value,
}

/// What `lab status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Prefix.
    pub prefix: String,
    /// State directory.
    pub state_dir: PathBuf,
    /// Namespaces.
    pub namespaces: Vec<NamespaceStatus>,
    /// Daemons and ISP servers.
    pub processes: Vec<ProcessStatus>,
    /// The ISP's test names.
    pub isp_names: Vec<(String, String)>,
    /// The ISP's servers.
    pub isp_servers: Vec<String>,
}

impl Lab {
    /// Loads the settings and plans the instance; nothing is changed yet.
    pub fn new(opts: LabOptions) -> Result<Self, LabError> {
        let mut settings = Settings::load(&opts.settings)?;
        let opts = LabOptions {
            state_dir: std::path::absolute(&opts.state_dir).unwrap_or(opts.state_dir),
            ..opts
        };
        // The lab's tokens live in its state directory, not in the router's /run; its
        // resolver trusts the lab's own root (isp.rs), not the real one.
        settings.services.token_dir = opts.state_dir.join("tokens");
        settings.dns.trust_anchor = Some(isp::trust_anchor(&opts.state_dir.join("isp")));
        let plan = plan::plan(&opts.prefix, &settings);
        Ok(Self {
            opts,
            settings,
            plan,
            vm: None,
        })
    }

    /// VM mode for the next [`Lab::up`]: the services of [`VM_SERVICES`] boot in their own
    /// aarch64 VM in their namespace (ADR 0010). `status`, `down` and the control calls read
    /// the mode from the instance's record and need not be told.
    pub fn with_vms(mut self, vm: VmOptions) -> Self {
        self.vm = Some(vm);
        self
    }

    /// Whether `service` runs in a VM in this instance (as asked, or as it was brought up).
    pub fn runs_in_vm(&self, service: Service) -> bool {
        if service == Service::Wifi {
            // Always a VM (there is no radio for hostapd otherwise), when there is Wi-Fi.
            return self.settings.wifi.is_some();
        }
        VM_SERVICES.contains(&service) && (self.vm.is_some() || self.read_record().vm)
    }

    /// The settings in force (with the lab's token directory).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The topology.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Resolves a short name (`fw`, `client-lan`, `isp`, `host-nas`) or a full namespace name.
    pub fn netns(&self, name: &str) -> Result<String, LabError> {
        let full = format!("{}-{name}", self.opts.prefix);
        let added = self.read_record().namespaces;
        [name.to_owned(), full]
            .into_iter()
            .find(|n| self.plan.namespaces.contains(n) || added.contains(n))
            .ok_or_else(|| LabError::UnknownNamespace(name.to_owned()))
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.opts.state_dir.join(rel)
    }

    fn record_path(&self) -> PathBuf {
        self.path("lab.json")
    }

    fn read_record(&self) -> Record {
        fs::read(self.record_path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn write_record(&self, record: &Record) -> Result<(), LabError> {
        let path = self.record_path();
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(record).unwrap_or_default();
        fs::write(&tmp, json)
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|source| LabError::Io { path, source })
    }

    /// Makes (or repairs) the whole lab and starts everything that is not running; returns
    /// once every daemon answers `/health`. Running it again is harmless and restarts only
    /// what died.
    pub fn up(&self) -> Result<Status, LabError> {
        require_root()?;
        for dir in ["etc", "tokens", "var", "logs", "isp"] {
            let path = self.path(dir);
            fs::create_dir_all(&path).map_err(|source| LabError::Io { path, source })?;
        }
        let mut record = self.read_record();
        let vm_mode = self.vm.is_some();
        let made = record.namespaces.iter().any(|ns| netns::exists(ns));
        if made && record.vm != vm_mode {
            let mode = |vm| if vm { "with VMs" } else { "in namespaces only" };
            return Err(LabError::ModeMismatch {
                prefix: self.opts.prefix.clone(),
                running: mode(record.vm),
                asked: mode(vm_mode),
            });
        }
        let missing: Vec<String> = self
            .daemons()
            .into_iter()
            .filter(|s| !self.runs_in_vm(*s) && !self.binary(*s).is_file())
            .map(|s| format!("roost-{s}"))
            .collect();
        if !missing.is_empty() {
            return Err(LabError::NotBuilt {
                bin_dir: self.opts.bin_dir.clone(),
                missing: missing.join(", "),
            });
        }
        for service in self.daemons() {
            if let Some(vm) = self.vm_options(service) {
                vm.check(&[service])?;
            }
        }
        record.vm = vm_mode;
        record.prefix.clone_from(&self.opts.prefix);
        record.settings.clone_from(&self.opts.settings);
        for ns in &self.plan.namespaces {
            if !record.namespaces.contains(ns) {
                record.namespaces.push(ns.clone());
            }
        }
        self.write_record(&record)?;

        self.make_network()?;
        self.write_resolv_confs()?;
        self.write_service_files()?;

        // The ISP first (the firewall asks its DHCP server for the WAN address), then the
        // daemons in start order.
        let servers = isp::servers(&self.path("isp"))?;
        isp::sign_zones(&self.path("isp"))?;
        for server in servers {
            let name = format!("isp-{}", server.name);
            let program = find_program(&server.program);
            self.ensure_process(
                &mut record,
                &name,
                &plan::isp_netns(&self.opts.prefix),
                &program,
                &server.args,
                &server.env,
            )?;
        }
        // VMs take longest: start them all first, so they boot while the rest starts.
        let mut booting = Vec::new();
        for service in self.daemons() {
            if self.runs_in_vm(service) && self.ensure_vm(&mut record, service)? {
                booting.push((service, Instant::now()));
            }
        }
        for service in self.daemons() {
            if self.runs_in_vm(service) {
                self.wait_healthy(service, VM_HEALTH_TIMEOUT)?;
                if let Some((_, started)) = booting.iter().find(|(s, _)| *s == service) {
                    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                    if let Some(p) = record
                        .processes
                        .iter_mut()
                        .find(|p| p.name == service.name())
                        && let Some(vm) = p.vm.as_mut()
                    {
                        vm.boot_ms = Some(ms);
                    }
                    self.write_record(&record)?;
                }
                continue;
            }
            let name = service.name().to_owned();
            let state = self.path(&format!("var/{name}"));
            fs::create_dir_all(&state).map_err(|source| LabError::Io {
                path: state.clone(),
                source,
            })?;
            let args = vec![
                "--config".to_owned(),
                self.path(&format!("etc/{name}.toml")).display().to_string(),
            ];
            let env = [
                ("STATE_DIRECTORY", state.display().to_string()),
                (
                    "RUST_LOG",
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
                ),
            ];
            let netns = plan::service_netns(&self.opts.prefix, service);
            if service == Service::Voip {
                self.ensure_kamailio(&mut record, &state)?;
            }
            self.ensure_process(
                &mut record,
                &name,
                &netns,
                &self.binary(service),
                &args,
                &env,
            )?;
            self.wait_healthy(service, HEALTH_TIMEOUT)?;
        }
        self.status()
    }

    /// Starts Kamailio in the VoIP namespace (as the VoIP VM's unit does: its configuration
    /// rendered with the phones' password hashes first), unless it runs.
    fn ensure_kamailio(&self, record: &mut Record, state: &Path) -> Result<(), LabError> {
        let Some(view) = self.settings.voip_view() else {
            return Ok(());
        };
        let cfg = view.kamailio_cfg(|path| fs::read_to_string(path))?;
        let path = self.path("etc/kamailio.cfg");
        write_secret(&path, &cfg)?;
        let run = state.join("run");
        fs::create_dir_all(&run).map_err(|source| LabError::Io {
            path: run.clone(),
            source,
        })?;
        let args = [
            "-DD", // in the foreground, its children forked
            "-E",  // logs to stderr
            "-m",
            "32",
            "-M",
            "8",
            "-Y",
            &run.display().to_string(),
            "-f",
            &path.display().to_string(),
        ]
        .map(str::to_owned);
        let netns = plan::service_netns(&self.opts.prefix, Service::Voip);
        let kamailio = find_program(Path::new("kamailio"));
        self.ensure_process(record, "kamailio", &netns, &kamailio, &args, &[])
    }

    /// Where `service`'s VM assets are, if it runs in a VM: in VM mode every service's; the
    /// Wi-Fi VM's in either mode.
    fn vm_options(&self, service: Service) -> Option<VmOptions> {
        if !self.runs_in_vm(service) {
            return None;
        }
        Some(self.vm.clone().unwrap_or_else(|| VmOptions {
            cache: vm::default_cache(),
        }))
    }

    /// Starts `service`'s VM (with its view) unless it runs; returns whether it started one.
    fn ensure_vm(&self, record: &mut Record, service: Service) -> Result<bool, LabError> {
        let files = vm::GuestFiles::view(service, self.settings.render_view(service));
        self.ensure_vm_with(record, service, &files, &[])
    }

    /// Starts `service`'s VM with `files` added to its initramfs and `shares` mounted, unless
    /// it runs; returns whether it started one.
    fn ensure_vm_with(
        &self,
        record: &mut Record,
        service: Service,
        files: &vm::GuestFiles,
        shares: &[vm::Share],
    ) -> Result<bool, LabError> {
        let Some(vm) = self.vm_options(service) else {
            return Ok(false);
        };
        let name = service.name();
        let netns = plan::service_netns(&self.opts.prefix, service);
        if record
            .processes
            .iter()
            .any(|p| p.name == name && netns::runs_in(p.pid, &netns))
        {
            return Ok(false);
        }
        let (initrd, disk) = vm::prepare(&vm, service, files, &self.opts.state_dir)?;
        let nics = vm::nics(&self.plan, service);
        let log = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
        let cmdline = vm::kernel_cmdline(service, &nics, shares, &log);
        let probe = vm::probe_socket(&self.opts.state_dir, service);
        let _ = fs::remove_file(&probe);
        let kernel = vm.kernel(service);
        let args = vm::qemu_args(&vm::Qemu {
            kernel: &kernel,
            initrd: &initrd,
            disk: disk.as_deref(),
            probe: &probe,
            cmdline: &cmdline,
            nics: &nics,
            shares,
            memory_mib: vm::memory_mib(service),
        });
        let qemu = find_program(Path::new("qemu-system-aarch64"));
        self.ensure_process(record, name, &netns, &qemu, &args, &[])?;
        if let Some(p) = record.processes.iter_mut().find(|p| p.name == name) {
            p.vm = Some(VmRecord {
                memory_mib: vm::memory_mib(service),
                boot_ms: None,
            });
        }
        self.write_record(record)?;
        Ok(true)
    }

    /// Starts the update agent (ADR 0012) unless it runs, and waits until it is healthy. `up`
    /// leaves it out: a test gives it its repository, its checks and the spool it shares
    /// with the host step (which the test runs, as the host does). In VM mode it boots in the
    /// update VM with `agent.ca_bundle` as its system roots and the spool mounted over
    /// virtiofs at the same path, served by a virtiofsd in its namespace.
    pub fn start_update_agent(&self, agent: &UpdateAgent) -> Result<(), LabError> {
        let mut record = self.read_record();
        let netns = plan::service_netns(&self.opts.prefix, Service::Update);
        let read = |path: &Path| {
            fs::read_to_string(path).map_err(|source| LabError::Io {
                path: path.to_owned(),
                source,
            })
        };
        if !self.runs_in_vm(Service::Update) {
            let state = self.path("var/update");
            fs::create_dir_all(&state).map_err(|source| LabError::Io {
                path: state.clone(),
                source,
            })?;
            let args = [
                "agent".to_owned(),
                "--config".to_owned(),
                agent.view.display().to_string(),
                "--system".to_owned(),
                agent.system.display().to_string(),
            ];
            let env = [
                ("STATE_DIRECTORY", state.display().to_string()),
                ("SSL_CERT_FILE", agent.ca_bundle.display().to_string()),
                (
                    "RUST_LOG",
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
                ),
            ];
            let program = self.binary(Service::Update);
            self.ensure_process(&mut record, "update", &netns, &program, &args, &env)?;
            return self.wait_healthy(Service::Update, HEALTH_TIMEOUT);
        }
        let share = vm::Share {
            tag: "spool".to_owned(),
            socket: self.path("vm/update.virtiofs"),
            path: agent.spool.clone(),
        };
        let virtiofsd = [
            "--shared-dir".to_owned(),
            agent.spool.display().to_string(),
            "--socket-path".to_owned(),
            share.socket.display().to_string(),
            // Both sides poll the spool: what one writes, the other must see at once.
            "--cache".to_owned(),
            "never".to_owned(),
            "--sandbox".to_owned(),
            "chroot".to_owned(),
        ];
        let started = !record
            .processes
            .iter()
            .any(|p| p.name == "update" && netns::runs_in(p.pid, &netns));
        if started {
            let _ = fs::remove_file(&share.socket);
            self.ensure_process(
                &mut record,
                "update-virtiofsd",
                &netns,
                &find_program(Path::new("virtiofsd")),
                &virtiofsd,
                &[],
            )?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while !share.socket.exists() {
                if Instant::now() > deadline {
                    return Err(LabError::Timeout("virtiofsd's socket".to_owned()));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let files = vm::GuestFiles {
            toml: vec![
                (PathBuf::from("/etc/roost/update.toml"), read(&agent.view)?),
                (
                    PathBuf::from("/etc/roost/update-system.toml"),
                    read(&agent.system)?,
                ),
            ],
            other: vec![(
                PathBuf::from("/etc/ssl/certs/ca-certificates.crt"),
                agent.ca_bundle.clone(),
            )],
        };
        let booted = Instant::now();
        self.ensure_vm_with(&mut record, Service::Update, &files, &[share])?;
        self.wait_healthy(Service::Update, VM_HEALTH_TIMEOUT)?;
        if started {
            let ms = u64::try_from(booted.elapsed().as_millis()).unwrap_or(u64::MAX);
            let mut record = self.read_record();
            if let Some(vm) = record
                .processes
                .iter_mut()
                .find(|p| p.name == "update")
                .and_then(|p| p.vm.as_mut())
            {
                vm.boot_ms = Some(ms);
            }
            self.write_record(&record)?;
        }
        Ok(())
    }

    /// The daemons the lab runs for these settings, in start order.
    pub fn daemons(&self) -> Vec<Service> {
        let ours = self.settings.services();
        LAB_DAEMONS
            .iter()
            .copied()
            .filter(|s| ours.contains(s))
            .collect()
    }

    fn binary(&self, service: Service) -> PathBuf {
        self.opts.bin_dir.join(format!("roost-{}", service.name()))
    }

    fn make_network(&self) -> Result<(), LabError> {
        for ns in &self.plan.namespaces {
            netns::ensure(ns)?;
        }
        // A service VM takes no router advertisements (the dhcp VM sits on the zone bridges):
        // its addresses and routes are its view's, as `roostctl net apply` makes them.
        let sysctl = find_program(Path::new("sysctl")).display().to_string();
        for service in self
            .settings
            .services()
            .iter()
            .filter(|s| **s != Service::Firewall)
        {
            let ns = plan::service_netns(&self.opts.prefix, *service);
            netns::ip(&[
                "netns",
                "exec",
                &ns,
                &sysctl,
                "-q",
                "-w",
                "net.ipv6.conf.all.accept_ra=0",
                "net.ipv6.conf.default.accept_ra=0",
                "net.ipv6.conf.all.autoconf=0",
                "net.ipv6.conf.default.autoconf=0",
            ])?;
        }
        let sw = &self.plan.switch;
        for bridge in &self.plan.bridges {
            if !netns::link_exists(sw, bridge) {
                netns::ip(&["-n", sw, "link", "add", bridge, "type", "bridge"])?;
            }
            netns::ip(&["-n", sw, "link", "set", bridge, "up"])?;
        }
        for v in &self.plan.veths {
            if !netns::link_exists(&v.a.netns, &v.a.ifname) {
                // A half-made pair from a crash: remove the orphan end first.
                if netns::link_exists(&v.b.netns, &v.b.ifname) {
                    netns::ip(&["-n", &v.b.netns, "link", "del", &v.b.ifname])?;
                }
                netns::ip(&[
                    "-n",
                    &v.a.netns,
                    "link",
                    "add",
                    &v.a.ifname,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &v.b.ifname,
                    "netns",
                    &v.b.netns,
                ])?;
            }
            if let Some(bridge) = &v.bridge {
                netns::ip(&[
                    "-n",
                    &v.b.netns,
                    "link",
                    "set",
                    &v.b.ifname,
                    "master",
                    bridge,
                ])?;
            }
            netns::ip(&["-n", &v.b.netns, "link", "set", &v.b.ifname, "up"])?;
            // The firewall brings up and addresses its own interfaces; the rest the lab does.
            netns::ip(&["-n", &v.a.netns, "link", "set", &v.a.ifname, "up"])?;
        }
        // In VM mode a VM's namespace is only its host side: the guest owns the addresses.
        let vm_netns: Vec<String> = VM_SERVICES
            .iter()
            .filter(|s| self.runs_in_vm(**s))
            .map(|s| plan::service_netns(&self.opts.prefix, *s))
            .collect();
        for service in self.settings.services() {
            if self.runs_in_vm(service) {
                self.make_vm_host_side(service)?;
            }
        }
        for a in self
            .plan
            .addresses
            .iter()
            .filter(|a| !vm_netns.contains(&a.netns))
        {
            let cidr = a.cidr.to_string();
            let mut args = vec!["-n", &a.netns, "addr", "replace", &cidr, "dev", &a.ifname];
            if matches!(a.cidr, ipnet::IpNet::V6(_)) {
                // As `roostctl net apply` does: the link's /126 is unique by construction.
                args.push("nodad");
            }
            netns::ip(&args)?;
        }
        for r in self
            .plan
            .routes
            .iter()
            .filter(|r| !vm_netns.contains(&r.netns))
        {
            let via = r.via.to_string();
            netns::ip(&["-n", &r.netns, "route", "replace", "default", "via", &via])?;
        }
        self.make_isp_ipv6()
    }

    /// The ISP's IPv6: its router address on the WAN link and its web server's, forwarding
    /// (radvd advertises only as a router), and the delegation pools routed to the router's
    /// link-local address on the WAN, as an ISP's edge routes each prefix it delegates.
    fn make_isp_ipv6(&self) -> Result<(), LabError> {
        let isp_ns = plan::isp_netns(&self.opts.prefix);
        let sysctl = find_program(Path::new("sysctl")).display().to_string();
        netns::ip(&[
            "netns",
            "exec",
            &isp_ns,
            &sysctl,
            "-q",
            "-w",
            "net.ipv6.conf.all.forwarding=1",
        ])?;
        let gateway = format!("{}/64", plan::isp::GATEWAY6);
        let http = format!("{}/128", plan::isp::HTTP6);
        netns::ip(&[
            "-n",
            &isp_ns,
            "addr",
            "replace",
            &gateway,
            "dev",
            plan::ISP_WAN_IFNAME,
            "nodad",
        ])?;
        netns::ip(&["-n", &isp_ns, "addr", "replace", &http, "dev", "lo"])?;
        let fw = plan::service_netns(&self.opts.prefix, Service::Firewall);
        let wan = self.settings.firewall_view().wan.interface;
        // The firewall VM (not booted yet) takes its WAN's from its fixed MAC.
        let vm_wan = self
            .runs_in_vm(Service::Firewall)
            .then(|| vm::nics(&self.plan, Service::Firewall))
            .and_then(|nics| nics.into_iter().find(|n| n.guest == wan))
            .map(|nic| vm::link_local(&nic.mac));
        // Kea and radvd need the link-local addresses; the firewall's is the route's next hop.
        let deadline = Instant::now() + Duration::from_secs(10);
        let router = loop {
            let isp_ready = netns::link_local(&isp_ns, plan::ISP_WAN_IFNAME)?.is_some();
            let router = match vm_wan {
                Some(ll) => Some(ll),
                None => netns::link_local(&fw, &wan)?,
            };
            if let (true, Some(ll)) = (isp_ready, router) {
                break ll;
            }
            if Instant::now() > deadline {
                return Err(LabError::Timeout(format!(
                    "link-local addresses on {} and the firewall's {wan}",
                    plan::ISP_WAN_IFNAME
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        for (prefix, len) in plan::isp::PD_POOLS {
            netns::ip(&[
                "-n",
                &isp_ns,
                "-6",
                "route",
                "replace",
                &format!("{prefix}/{len}"),
                "via",
                &router.to_string(),
                "dev",
                plan::ISP_WAN_IFNAME,
            ])?;
        }
        Ok(())
    }

    /// The ISP renumbers the router: its DHCPv6 server restarts delegating from the second
    /// pool with no memory of the first, so the router's next renewal gets a new prefix and
    /// the old one back with lifetime 0.
    pub fn isp_renumber(&self) -> Result<(), LabError> {
        let dir = self.path("isp");
        let [.., description, _, _] = isp::descriptions();
        let server = isp::kea6_server(&dir, 1, true, description)?;
        let mut record = self.read_record();
        let name = format!("isp-{}", server.name);
        let pids: Vec<u32> = record
            .processes
            .iter()
            .filter(|p| p.name == name)
            .map(|p| p.pid)
            .collect();
        process::stop_all(&pids);
        self.ensure_process(
            &mut record,
            &name,
            &plan::isp_netns(&self.opts.prefix),
            &find_program(&server.program),
            &server.args,
            &server.env,
        )
    }

    /// Bridges each lab link end in `service`'s namespace with a tap for its VM. The
    /// namespace's own IPv6 stays off, so it sends nothing on the links itself.
    fn make_vm_host_side(&self, service: Service) -> Result<(), LabError> {
        let ns = plan::service_netns(&self.opts.prefix, service);
        let sysctl = find_program(Path::new("sysctl")).display().to_string();
        netns::ip(&[
            "netns",
            "exec",
            &ns,
            &sysctl,
            "-q",
            "-w",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ])?;
        for nic in vm::nics(&self.plan, service) {
            if !netns::link_exists(&ns, &nic.bridge) {
                netns::ip(&["-n", &ns, "link", "add", &nic.bridge, "type", "bridge"])?;
            }
            if !netns::link_exists(&ns, &nic.tap) {
                netns::ip(&["-n", &ns, "tuntap", "add", "dev", &nic.tap, "mode", "tap"])?;
            }
            for port in [&nic.veth, &nic.tap] {
                netns::ip(&["-n", &ns, "link", "set", port, "master", &nic.bridge, "up"])?;
            }
            netns::ip(&["-n", &ns, "link", "set", &nic.bridge, "up"])?;
        }
        Ok(())
    }

    /// Gives every namespace a resolv.conf of its own (iproute2 bind-mounts
    /// `/etc/netns/<ns>/resolv.conf` for `ip netns exec`): clients ask their router, all others
    /// the ISP's server. No lab process ever asks the host's real resolver.
    fn write_resolv_confs(&self) -> Result<(), LabError> {
        for ns in &self.plan.namespaces {
            let server = self
                .plan
                .clients
                .iter()
                .find(|c| &c.netns == ns)
                .and_then(|c| self.settings.zones.get(&c.zone))
                .map_or(plan::isp::DNS, |z| z.router);
            let dir = PathBuf::from("/etc/netns").join(ns);
            let io = |source| LabError::Io {
                path: dir.clone(),
                source,
            };
            fs::create_dir_all(&dir).map_err(io)?;
            let text = format!(
                "# written by roost-lab for namespace {ns}\nnameserver {server}\nsearch {}\n",
                self.settings.router.domain
            );
            fs::write(dir.join("resolv.conf"), text).map_err(io)?;
        }
        Ok(())
    }

    fn write_service_files(&self) -> Result<(), LabError> {
        for service in self.settings.services() {
            let token_path = self.settings.services.token_dir.join(service.name());
            if !token_path.exists() {
                write_secret(&token_path, &random_token()?)?;
            }
            let view = self.path(&format!("etc/{}.toml", service.name()));
            fs::write(&view, self.settings.render_view(service))
                .map_err(|source| LabError::Io { path: view, source })?;
        }
        Ok(())
    }

    fn ensure_process(
        &self,
        record: &mut Record,
        name: &str,
        netns: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, String)],
    ) -> Result<(), LabError> {
        let running = record
            .processes
            .iter()
            .any(|p| p.name == name && netns::runs_in(p.pid, netns));
        if running {
            return Ok(());
        }
        let log = self.path(&format!("logs/{name}.log"));
        let pid = process::spawn(netns, program, args, env, &log)?;
        record.processes.retain(|p| p.name != name);
        record.processes.push(ProcessRecord {
            name: name.to_owned(),
            netns: netns.to_owned(),
            pid,
            log: log.clone(),
            vm: None,
        });
        self.write_record(record)?;
        // Catch a program that dies at once (bad flags, port taken) with its own words.
        std::thread::sleep(Duration::from_millis(150));
        if !netns::runs_in(pid, netns) {
            return Err(LabError::Exited {
                name: name.to_owned(),
                tail: tail(&log),
                log,
            });
        }
        Ok(())
    }

    /// Calls `GET path` on `service`'s control API from inside its own namespace (from inside
    /// its VM, by its probe, in VM mode).
    pub fn control_get(&self, service: Service, path: &str) -> Result<(u16, String), LabError> {
        self.control_request(service, "GET", path, vm::PROBE_TIMEOUT)
    }

    /// Calls `POST path` (empty body) on `service`'s control API as [`Lab::control_get`] does,
    /// e.g. the update agent's `/check` and `/apply`.
    pub fn control_post(&self, service: Service, path: &str) -> Result<(u16, String), LabError> {
        self.control_request(service, "POST", path, vm::PROBE_TIMEOUT)
    }

    /// `GET /health` on `service`: into a VM with a short timeout, since what reaches a VM
    /// before its probe runs may be lost; waiters ask again rather than wait long.
    fn answers_health(&self, service: Service) -> Result<(u16, String), LabError> {
        self.control_request(service, "GET", "/health", HEALTH_PROBE_TIMEOUT)
    }

    fn control_request(
        &self,
        service: Service,
        method: &str,
        path: &str,
        vm_timeout: Duration,
    ) -> Result<(u16, String), LabError> {
        let addr = self.settings.control_addr(service);
        let token = self.token(service)?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let io = |source| LabError::Io {
            path: PathBuf::from(format!("http://{addr}{path}")),
            source,
        };
        // A VM's namespace holds no address: the lab's management path is the VM's probe,
        // which makes the exchange inside the VM (no lab link carries it).
        if self.runs_in_vm(service) {
            let response = vm::probe_http(
                &self.opts.state_dir,
                service,
                addr.into(),
                request.as_bytes(),
                vm_timeout,
            )?;
            return parse_http_response(&response).map_err(io);
        }
        let netns = plan::service_netns(&self.opts.prefix, service);
        netns::within(&netns, move || http_exchange(addr, &request))?.map_err(io)
    }

    /// The output of `program ARGS` (`ip` or `nft`) run in namespace `name` (short or full),
    /// or inside the VM in a VM's namespace (by its probe): what tests read addresses, routes
    /// and the firewall's ruleset with, the same way in both modes.
    pub fn run_in(&self, name: &str, program: &str, args: &[&str]) -> Result<String, LabError> {
        let netns = self.netns(name)?;
        if let Some(service) = self.vm_service_of(&netns) {
            return vm::probe_run(&self.opts.state_dir, service, program, args);
        }
        let mut argv = vec!["netns", "exec", &netns, program];
        argv.extend_from_slice(args);
        netns::ip(&argv)
    }

    /// Whether a TCP connection from namespace `from` (short or full name) to `to` opens
    /// within `timeout`. Negative checks in tests use a short timeout.
    pub fn can_connect(
        &self,
        from: &str,
        to: impl Into<SocketAddr>,
        timeout: Duration,
    ) -> Result<bool, LabError> {
        let netns = self.netns(from)?;
        let to = to.into();
        // From a VM's namespace the connection is made inside the VM, by its probe.
        if let Some(service) = self.vm_service_of(&netns) {
            return vm::probe_connect(&self.opts.state_dir, service, to, timeout);
        }
        netns::within(&netns, move || {
            TcpStream::connect_timeout(&to, timeout).is_ok()
        })
    }

    /// The service whose VM runs in namespace `netns`.
    fn vm_service_of(&self, netns: &str) -> Option<Service> {
        VM_SERVICES
            .iter()
            .copied()
            .find(|s| self.runs_in_vm(*s) && plan::service_netns(&self.opts.prefix, *s) == netns)
    }

    /// `GET path` over HTTP/1.1 from namespace `from` to `to`; returns status and body.
    pub fn http_get(
        &self,
        from: &str,
        to: impl Into<SocketAddr>,
        path: &str,
    ) -> Result<(u16, String), LabError> {
        let to = to.into();
        let netns = self.netns(from)?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n");
        let io = |source| LabError::Io {
            path: PathBuf::from(format!("http://{to}{path}")),
            source,
        };
        // From a VM's namespace the exchange is made inside the VM, by its probe.
        if let Some(service) = self.vm_service_of(&netns) {
            let response = vm::probe_http(
                &self.opts.state_dir,
                service,
                to,
                request.as_bytes(),
                vm::PROBE_TIMEOUT,
            )?;
            return parse_http_response(&response).map_err(io);
        }
        netns::within(&netns, move || http_exchange(to, &request))?.map_err(io)
    }

    /// Starts `program ARGS` in namespace `name` (short or full), logging to
    /// `logs/<label>.log`; the caller stops it (or `down` does).
    pub fn spawn_in(
        &self,
        name: &str,
        label: &str,
        program: &Path,
        args: &[String],
    ) -> Result<u32, LabError> {
        let netns = self.netns(name)?;
        let log = self.path(&format!("logs/{label}.log"));
        process::spawn(&netns, &find_program(program), args, &[], &log)
    }

    /// Starts a web server in namespace `name` on `addr` that answers `client <address>` (the
    /// address it sees the client at); returns its pid. `down` stops it.
    pub fn serve_http(&self, name: &str, addr: SocketAddrV4) -> Result<u32, LabError> {
        let script = isp::http_server_script(&self.path("isp"))?;
        let args = vec![
            "-u".to_owned(),
            script.display().to_string(),
            addr.ip().to_string(),
            addr.port().to_string(),
        ];
        let label = format!("http-{name}-{}", addr.port());
        self.spawn_in(name, &label, Path::new("python3"), &args)
    }

    /// Adds a host namespace `<prefix>-host-<name>` on `zone`'s bridge with address `address`
    /// and the zone's router as gateway (e.g. a NAS for port-forward tests). `down` removes it.
    pub fn add_host(
        &self,
        name: &str,
        zone: &str,
        address: std::net::Ipv4Addr,
    ) -> Result<String, LabError> {
        let z = self
            .settings
            .zones
            .get(zone)
            .ok_or_else(|| LabError::UnknownNamespace(format!("zone {zone}")))?;
        let netns = format!("{}-host-{name}", self.opts.prefix);
        let mut record = self.read_record();
        if !record.namespaces.contains(&netns) {
            record.namespaces.push(netns.clone());
            self.write_record(&record)?;
        }
        netns::ensure(&netns)?;
        let port = format!("h-{name}");
        let sw = &self.plan.switch;
        if !netns::link_exists(&netns, plan::CLIENT_IFNAME) {
            netns::ip(&[
                "-n",
                &netns,
                "link",
                "add",
                plan::CLIENT_IFNAME,
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                sw,
            ])?;
        }
        netns::ip(&[
            "-n",
            sw,
            "link",
            "set",
            &port,
            "master",
            &format!("br-{zone}"),
            "up",
        ])?;
        netns::ip(&["-n", &netns, "link", "set", plan::CLIENT_IFNAME, "up"])?;
        let cidr = format!("{address}/{}", z.subnet.prefix_len());
        netns::ip(&[
            "-n",
            &netns,
            "addr",
            "replace",
            &cidr,
            "dev",
            plan::CLIENT_IFNAME,
        ])?;
        netns::ip(&[
            "-n",
            &netns,
            "route",
            "replace",
            "default",
            "via",
            &z.router.to_string(),
        ])?;
        Ok(netns)
    }

    /// The firewall's current WAN address, if it has one.
    pub fn wan_address(&self) -> Option<std::net::Ipv4Addr> {
        let wan = self.settings.firewall_view().wan.interface;
        let out = self
            .run_in("fw", "ip", &["-j", "-4", "addr", "show", "dev", &wan])
            .ok()?;
        let json: serde_json::Value = serde_json::from_str(&out).ok()?;
        json.get(0)?["addr_info"]
            .as_array()?
            .iter()
            .find_map(|a| a["local"].as_str()?.parse().ok())
    }

    /// The log file of a process started as `label` (a daemon's name, or the label given to
    /// [`Lab::spawn_in`]).
    pub fn log_path(&self, label: &str) -> PathBuf {
        self.path(&format!("logs/{label}.log"))
    }

    /// Stops processes the caller started with [`Lab::spawn_in`].
    pub fn stop(&self, pids: &[u32]) {
        process::stop_all(pids);
    }

    /// The control-API token of `service`.
    pub fn token(&self, service: Service) -> Result<String, LabError> {
        let path = self.settings.services.token_dir.join(service.name());
        fs::read_to_string(&path).map_err(|source| LabError::Io { path, source })
    }

    fn wait_healthy(&self, service: Service, timeout: Duration) -> Result<(), LabError> {
        let name = service.name();
        let deadline = Instant::now() + timeout;
        let mut why;
        loop {
            match self.answers_health(service) {
                Ok((200, _)) => return Ok(()),
                Ok((code, body)) => why = format!("HTTP {code}: {}", body.trim()),
                Err(e) => why = e.to_string(),
            }
            // A daemon that exited (or a VM that powered off) will not answer: say so now.
            let gone = self
                .read_record()
                .processes
                .iter()
                .find(|p| p.name == name)
                .is_some_and(|p| !netns::runs_in(p.pid, &p.netns));
            if gone {
                let log = self.path(&format!("logs/{name}.log"));
                return Err(LabError::Exited {
                    name: name.to_owned(),
                    tail: tail(&log),
                    log,
                });
            }
            if Instant::now() >= deadline {
                let log = self.path(&format!("logs/{name}.log"));
                return Err(LabError::Unhealthy {
                    service,
                    seconds: timeout.as_secs(),
                    why,
                    tail: tail(&log),
                    log,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every namespace with its addresses, every process with its pid and health.
    pub fn status(&self) -> Result<Status, LabError> {
        let record = self.read_record();
        let namespaces = self
            .plan
            .namespaces
            .iter()
            .map(|ns| {
                let exists = netns::exists(ns);
                let interfaces = if exists {
                    netns::ip(&["-j", "-n", ns, "addr", "show"])
                        .ok()
                        .and_then(|out| serde_json::from_str(&out).ok())
                        .unwrap_or(serde_json::Value::Null)
                } else {
                    serde_json::Value::Null
                };
                NamespaceStatus {
                    name: ns.clone(),
                    exists,
                    interfaces,
                }
            })
            .collect();
        let processes = record
            .processes
            .iter()
            .map(|p| {
                let running = netns::runs_in(p.pid, &p.netns);
                let healthy =
                    p.name.parse::<Service>().ok().map(|service| {
                        running && matches!(self.answers_health(service), Ok((200, _)))
                    });
                ProcessStatus {
                    name: p.name.clone(),
                    netns: p.netns.clone(),
                    pid: running.then_some(p.pid),
                    healthy,
                    log: p.log.clone(),
                    vm: p.vm.map(|vm| VmStatus {
                        memory_mib: vm.memory_mib,
                        boot_ms: vm.boot_ms,
                        rss_kib: running.then(|| vm::rss_kib(p.pid)).flatten(),
                    }),
                }
            })
            .collect();
        Ok(Status {
            prefix: self.opts.prefix.clone(),
            state_dir: self.opts.state_dir.clone(),
            namespaces,
            processes,
            isp_names: plan::isp::NAMES
                .iter()
                .map(|(n, a)| ((*n).to_owned(), a.to_string()))
                .collect(),
            isp_servers: isp::descriptions().into(),
        })
    }

    /// Runs a command inside one of the lab's namespaces, with the caller's stdio.
    pub fn exec(&self, name: &str, command: &[String]) -> Result<ExitStatus, LabError> {
        require_root()?;
        let netns = self.netns(name)?;
        Command::new("ip")
            .args(["netns", "exec", &netns])
            .args(command)
            .status()
            .map_err(|source| LabError::Spawn {
                program: command.first().cloned().unwrap_or_default(),
                source,
            })
    }

    /// Stops every process and removes every namespace this instance made (or would make),
    /// also after a crash or a half-made `up`. Daemon state under `var/` is kept unless
    /// `purge`.
    pub fn down(&self, purge: bool) -> Result<(), LabError> {
        require_root()?;
        let record = self.read_record();
        let mut names = self.plan.namespaces.clone();
        names.extend(record.namespaces.iter().cloned());
        names.sort();
        names.dedup();
        // Only names of this prefix: a record edited by hand cannot make us remove others.
        let ours = format!("{}-", self.opts.prefix);
        for ns in names.iter().filter(|n| n.starts_with(&ours)) {
            netns::remove(ns)?;
            let _ = fs::remove_dir_all(PathBuf::from("/etc/netns").join(ns));
        }
        let _ = fs::remove_file(self.record_path());
        if purge {
            let _ = fs::remove_dir_all(&self.opts.state_dir);
        }
        Ok(())
    }
}

/// The settings file the instance in `state_dir` was brought up with, if any.
pub fn recorded_settings(state_dir: &Path) -> Option<PathBuf> {
    let bytes = fs::read(state_dir.join("lab.json")).ok()?;
    let record: Record = serde_json::from_slice(&bytes).ok()?;
    Some(record.settings)
}

fn require_root() -> Result<(), LabError> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(LabError::NotRoot)
    }
}

/// Finds a program on PATH or in the sbin directories (which a non-login PATH may lack).
fn find_program(name: &Path) -> PathBuf {
    if name.is_absolute() {
        return name.to_owned();
    }
    // Debian's python3, not a user's pyenv shim: the ISP's servers need only the stdlib.
    let path = std::env::var("PATH").unwrap_or_default();
    ["/usr/bin", "/usr/sbin", "/sbin", "/bin"]
        .into_iter()
        .map(PathBuf::from)
        .chain(path.split(':').map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| name.to_owned())
}

fn random_token() -> Result<String, LabError> {
    let mut bytes = [0u8; 32];
    let path = PathBuf::from("/dev/urandom");
    fs::File::open(&path)
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|source| LabError::Io { path, source })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn write_secret(path: &Path, secret: &str) -> Result<(), LabError> {
    let io = |source| LabError::Io {
        path: path.to_owned(),
        source,
    };
    // Created 0600, never readable by others in between; a file left by an earlier run is
    // narrowed first, then truncated.
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(io)?;
    file.set_len(0).map_err(io)?;
    file.write_all(secret.as_bytes()).map_err(io)
}

/// The last lines of a log file.
fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// One HTTP/1.1 exchange on a fresh connection; returns the status code and body. Bounded in
/// time and size.
fn http_exchange(addr: impl Into<SocketAddr>, request: &str) -> std::io::Result<(u16, String)> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr.into(), timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.take(1 << 20).read_to_end(&mut response)?;
    parse_http_response(&response)
}

/// The status code and body of an HTTP/1.1 response read to its end.
fn parse_http_response(response: &[u8]) -> std::io::Result<(u16, String)> {
    let text = String::from_utf8_lossy(response);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP response"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((code, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_written_0600_over_a_longer_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        fs::write(&path, "an older, longer token").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_secret(&path, "new").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        write_secret(&dir.path().join("fresh"), "x").unwrap();
        let mode = fs::metadata(dir.path().join("fresh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
