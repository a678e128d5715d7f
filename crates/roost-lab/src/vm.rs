//! VM mode (`roostctl lab up --vm`, ADR 0010): the services in [`VM_SERVICES`] run in their own
//! `qemu-system-aarch64 -M virt` VM inside their namespace instead of as a process in it.
//!
//! The namespace becomes the VM's host side: each lab link end in it (the veth `svc`, and the
//! dhcp VM's zone ports) is bridged with a tap device (`tapN` and `vbrN`), and the guest owns
//! the interface names and addresses, applied by the aarch64 `roostctl net apply` in its
//! `/init` from the same view `network` table as a real VM. The wiring and the firewall are
//! exactly the lab's; the namespace holds no address any more.
//!
//! The kernel, the modules, busybox and the binaries come from `scripts/vm-assets` (a cache
//! directory, never the repository). At `up` the lab appends a small cpio archive to the
//! service's base initramfs with `/etc/roost/<service>.toml` and the files the view refers to
//! (its tokens, the peers' tokens, trust anchor, blocklists, TLS files) at their own paths, and
//! keeps a raw ext4 state disk per VM in `<state>/var/<service>.ext4` (kept by `down` unless
//! `--purge`): what a daemon writes (dhcp's lease journal, the broker's retained messages, the
//! web's settings versions and self-signed certificate) lives on it.
//!
//! Everything here but `prepare` (files, mke2fs) is pure and unit-tested.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use roost_config::Service;

use crate::LabError;
use crate::plan::Plan;

/// The services that run in VMs in VM mode: every one. (`up` starts all but the update
/// agent, which a test starts with its repository: `Lab::start_update_agent`.) The Wi-Fi VM
/// (ADR 0013), with `[wifi]`, is a VM in either mode: there is no other way to run hostapd on
/// a radio here.
pub const VM_SERVICES: &[Service] = &[
    Service::Firewall,
    Service::Dns,
    Service::Dhcp,
    Service::Mqtt,
    Service::Web,
    Service::Update,
    Service::Wifi,
    Service::Voip,
];

/// Whether `service`'s VM keeps state on a disk of its own (the Wi-Fi and VoIP VMs keep
/// none: registrations live in Kamailio's memory).
fn has_state_disk(service: Service) -> bool {
    !matches!(service, Service::Wifi | Service::Voip)
}

/// Guest memory per VM, MiB.
pub const MEMORY_MIB: u32 = 128;

/// Guest memory of `service`'s VM, MiB: [`MEMORY_MIB`], but more for the Wi-Fi VM, whose
/// generic kernel and initramfs (hostapd, wpa_supplicant and their libraries) do not unpack
/// in 128, and for the VoIP VM, whose Kamailio takes 32 MiB of shared memory and 8 per
/// process.
pub fn memory_mib(service: Service) -> u32 {
    match service {
        Service::Wifi | Service::Voip => 192,
        _ => MEMORY_MIB,
    }
}

/// Size of a new state disk, MiB (sparse on the host).
const STATE_DISK_MIB: u64 = 64;

/// Where VM mode finds what `scripts/vm-assets` built.
#[derive(Debug, Clone)]
pub struct VmOptions {
    /// The cache directory (`$ROOST_VM_CACHE`, default [`default_cache`]).
    pub cache: PathBuf,
}

/// `$ROOST_VM_CACHE`, else `/var/cache/roost-lab-vm` (what `scripts/vm-assets` uses).
pub fn default_cache() -> PathBuf {
    std::env::var_os("ROOST_VM_CACHE")
        .map_or_else(|| PathBuf::from("/var/cache/roost-lab-vm"), PathBuf::from)
}

impl VmOptions {
    /// The kernel image `service`'s VM boots: Debian's cloud kernel, or its generic one for
    /// the Wi-Fi VM (the cloud kernel has no wireless, hence no mac80211_hwsim).
    pub fn kernel(&self, service: Service) -> PathBuf {
        match service {
            Service::Wifi => self.cache.join("kernel-wifi/Image"),
            _ => self.cache.join("kernel/Image"),
        }
    }

    /// The base initramfs of `service`.
    pub fn initramfs(&self, service: Service) -> PathBuf {
        self.cache
            .join(format!("initramfs/{}.cpio", service.name()))
    }

    /// Fails with what to run when an asset is missing.
    pub fn check(&self, services: &[Service]) -> Result<(), LabError> {
        let mut missing: Vec<PathBuf> = services
            .iter()
            .flat_map(|s| [self.initramfs(*s), self.kernel(*s)])
            .collect();
        missing.retain(|p| !p.is_file());
        match missing.first() {
            None => Ok(()),
            Some(path) => Err(LabError::VmAssets { path: path.clone() }),
        }
    }
}

/// What the lab adds to a VM's base initramfs.
#[derive(Debug, Clone, Default)]
pub struct GuestFiles {
    /// TOML files (the view, the update agent's platform file) at their guest paths; every
    /// file one names is copied too, at its own path.
    pub toml: Vec<(PathBuf, String)>,
    /// Other files: (guest path, host file), e.g. the CA bundle a VM trusts.
    pub other: Vec<(PathBuf, PathBuf)>,
}

impl GuestFiles {
    /// The view of `service` at `/etc/roost/<service>.toml` and the files it names.
    pub fn view(service: Service, text: String) -> Self {
        Self {
            toml: vec![(
                PathBuf::from(format!("/etc/roost/{}.toml", service.name())),
                text,
            )],
            other: Vec::new(),
        }
    }
}

/// A host directory shared into a VM over virtiofs (the update VM's spool, ADR 0012).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// The virtiofs tag.
    pub tag: String,
    /// virtiofsd's vhost-user socket.
    pub socket: PathBuf,
    /// Where the guest mounts it: the host directory's own path, so one settings file names
    /// it in both modes.
    pub path: PathBuf,
}

/// One guest network interface and its host side in the service's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    /// The lab link end in the namespace (a veth), which keeps its plan name.
    pub veth: String,
    /// The interface's name inside the guest: the view's, the same as the veth's.
    pub guest: String,
    /// The tap qemu attaches to.
    pub tap: String,
    /// The bridge joining veth and tap.
    pub bridge: String,
    /// The guest interface's MAC (locally administered, fixed per service and interface).
    pub mac: String,
}

/// The NICs of `service`'s VM: one per lab link end in its namespace, in plan order.
pub fn nics(plan: &Plan, service: Service) -> Vec<Nic> {
    let netns = crate::plan::service_netns(&plan.prefix, service);
    let vm_no = Service::ALL.iter().position(|s| *s == service).unwrap_or(0);
    plan.veths
        .iter()
        .flat_map(|v| [&v.a, &v.b])
        .filter(|end| end.netns == netns)
        .enumerate()
        .map(|(i, end)| Nic {
            veth: end.ifname.clone(),
            guest: end.ifname.clone(),
            tap: format!("tap{i}"),
            bridge: format!("vbr{i}"),
            mac: format!("52:54:00:7e:{vm_no:02x}:{i:02x}"),
        })
        .collect()
}

/// The IPv6 link-local address a guest's kernel gives the NIC with `mac` (modified EUI-64,
/// RFC 4291 appendix A: the kernel's default address generation).
pub fn link_local(mac: &str) -> std::net::Ipv6Addr {
    let mut b = [0u8; 6];
    for (byte, part) in b.iter_mut().zip(mac.split(':')) {
        *byte = u8::from_str_radix(part, 16).unwrap_or(0);
    }
    std::net::Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([b[0] ^ 0x02, b[1]]),
        u16::from_be_bytes([b[2], 0xff]),
        u16::from_be_bytes([0xfe, b[3]]),
        u16::from_be_bytes([b[4], b[5]]),
    )
}

/// The kernel command line: console, no reboot loop, and what `/init` reads.
pub fn kernel_cmdline(service: Service, nics: &[Nic], shares: &[Share], log: &str) -> String {
    let mut line = format!(
        "console=ttyAMA0 panic=-1 quiet loglevel=3 roost.service={} roost.log={log}",
        service.name()
    );
    for nic in nics {
        line.push_str(&format!(" roost.if={},{}", nic.guest, nic.mac));
    }
    for share in shares {
        line.push_str(&format!(
            " roost.share={},{}",
            share.tag,
            share.path.display()
        ));
    }
    line
}

/// What one VM's qemu is started with.
#[derive(Debug, Clone, Copy)]
pub struct Qemu<'a> {
    /// The kernel image.
    pub kernel: &'a Path,
    /// The initramfs (base and the lab's additions).
    pub initrd: &'a Path,
    /// The state disk, if the VM has one.
    pub disk: Option<&'a Path>,
    /// The probe's unix socket.
    pub probe: &'a Path,
    /// The kernel command line.
    pub cmdline: &'a str,
    /// Its NICs.
    pub nics: &'a [Nic],
    /// Its shared directories.
    pub shares: &'a [Share],
    /// Guest memory, MiB.
    pub memory_mib: u32,
}

/// qemu's arguments for one VM: aarch64 `virt` under TCG (the host's /dev/kvm is a nested PVM
/// device that stock kernels do not boot under), userspace virtio-net on the taps (no
/// vhost-net here), the state disk (if it has one), an entropy source, the serial console on stdout (the log),
/// and a virtio console on the unix socket `probe` (server; the lab's probe answers there).
pub fn qemu_args(vm: &Qemu<'_>) -> Vec<String> {
    let Qemu {
        kernel,
        initrd,
        disk,
        probe,
        cmdline,
        nics,
        shares,
        memory_mib,
    } = *vm;
    let mut args: Vec<String> = [
        "-M",
        "virt",
        "-cpu",
        "cortex-a72",
        "-accel",
        "tcg",
        "-smp",
        "1",
        "-nodefaults",
        "-no-user-config",
        "-no-reboot",
        "-display",
        "none",
        "-serial",
        "stdio",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    args.extend(["-m".to_owned(), memory_mib.to_string()]);
    args.extend(["-kernel".to_owned(), kernel.display().to_string()]);
    args.extend(["-initrd".to_owned(), initrd.display().to_string()]);
    args.extend(["-append".to_owned(), cmdline.to_owned()]);
    if let Some(disk) = disk {
        args.extend([
            "-drive".to_owned(),
            format!(
                "file={},format=raw,if=none,id=state,cache=writeback",
                disk.display()
            ),
            "-device".to_owned(),
            "virtio-blk-device,drive=state".to_owned(),
        ]);
    }
    args.extend([
        "-device".to_owned(),
        "virtio-rng-device".to_owned(),
        "-device".to_owned(),
        "virtio-serial-device".to_owned(),
        "-chardev".to_owned(),
        format!(
            "socket,id=probe,path={},server=on,wait=off",
            probe.display()
        ),
        "-device".to_owned(),
        "virtconsole,chardev=probe".to_owned(),
    ]);
    if !shares.is_empty() {
        // vhost-user (virtiofsd) maps the guest's memory: it must be shared memory.
        args.extend([
            "-object".to_owned(),
            format!("memory-backend-memfd,id=mem,size={memory_mib}M,share=on"),
            "-machine".to_owned(),
            "memory-backend=mem".to_owned(),
        ]);
    }
    for (i, share) in shares.iter().enumerate() {
        args.extend([
            "-chardev".to_owned(),
            format!("socket,id=fs{i},path={}", share.socket.display()),
            "-device".to_owned(),
            format!("vhost-user-fs-device,chardev=fs{i},tag={}", share.tag),
        ]);
    }
    for (i, nic) in nics.iter().enumerate() {
        args.extend([
            "-netdev".to_owned(),
            format!("tap,id=n{i},ifname={},script=no,downscript=no", nic.tap),
            "-device".to_owned(),
            format!("virtio-net-device,netdev=n{i},mac={}", nic.mac),
        ]);
    }
    args
}

/// A file in a cpio archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Absolute path inside the guest.
    pub path: PathBuf,
    /// Permission bits.
    pub mode: u32,
    /// Contents.
    pub data: Vec<u8>,
}

/// A cpio archive in the kernel's initramfs format (`newc`), with every parent directory, so
/// it can be appended to a base initramfs.
pub fn newc_archive(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut ino = 1u32;
    for entry in entries {
        let rel = entry.path.strip_prefix("/").unwrap_or(&entry.path);
        let mut parents: Vec<&Path> = rel.ancestors().skip(1).collect();
        parents.pop(); // the empty path
        for dir in parents.into_iter().rev() {
            if !dirs.iter().any(|d| d == dir) {
                dirs.push(dir.to_owned());
                newc_record(&mut out, ino, 0o040_755, &dir.display().to_string(), &[]);
                ino += 1;
            }
        }
        let mode = 0o100_000 | (entry.mode & 0o7777);
        newc_record(&mut out, ino, mode, &rel.display().to_string(), &entry.data);
        ino += 1;
    }
    newc_record(&mut out, 0, 0, "TRAILER!!!", &[]);
    out
}

fn newc_record(out: &mut Vec<u8>, ino: u32, mode: u32, name: &str, data: &[u8]) {
    let nlink = if mode & 0o040_000 != 0 { 2 } else { 1 };
    let fields = [
        ino,
        mode,
        0,
        0,
        nlink,
        0,
        u32::try_from(data.len()).unwrap_or(u32::MAX),
        0,
        0,
        0,
        0,
        u32::try_from(name.len() + 1).unwrap_or(u32::MAX),
        0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// Absolute paths of files a view refers to (any string value that is an absolute path),
/// in order of appearance, without duplicates.
pub fn referenced_paths(view: &toml::Value) -> Vec<PathBuf> {
    fn walk(v: &toml::Value, out: &mut Vec<PathBuf>) {
        match v {
            toml::Value::String(s) if s.starts_with('/') => {
                let p = PathBuf::from(s);
                if !out.contains(&p) {
                    out.push(p);
                }
            }
            toml::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            toml::Value::Table(t) => t.values().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(view, &mut out);
    out
}

/// Largest referenced file copied into a guest.
const MAX_FILE: u64 = 16 << 20;

/// The unix socket of `service`'s VM probe (`roost-lab-probe` on its virtio console).
pub(crate) fn probe_socket(state_dir: &Path, service: Service) -> PathBuf {
    state_dir
        .join("vm")
        .join(format!("{}.probe", service.name()))
}

/// Asks `service`'s VM to open a TCP connection to `to` from inside: whether it connected.
pub(crate) fn probe_connect(
    state_dir: &Path,
    service: Service,
    to: std::net::SocketAddr,
    timeout: Duration,
) -> Result<bool, LabError> {
    let request = format!("connect {to} {}", timeout.as_millis());
    Ok(probe(state_dir, service, &request, timeout + PROBE_TIMEOUT)?.is_ok())
}

/// The lab's management path into `service`'s VM: one HTTP exchange with `addr` (its control
/// API) made inside the VM by its probe; returns everything the server sent.
/// `timeout` bounds the whole exchange ([`PROBE_TIMEOUT`] for one that may be slow; health
/// checks ask with a short one and ask again).
pub(crate) fn probe_http(
    state_dir: &Path,
    service: Service,
    addr: std::net::SocketAddr,
    request: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, LabError> {
    let answer = probe(
        state_dir,
        service,
        &format!("http {addr} {}", hex::encode(request)),
        timeout,
    )?;
    answer
        .map_err(|reason| probe_failed(state_dir, service, format!("http {addr}: {reason}")))
        .and_then(|payload| {
            hex::decode(&payload).map_err(|_| probe_failed(state_dir, service, payload))
        })
}

/// Runs `ip` or `nft` with `args` inside `service`'s VM; returns its output.
pub(crate) fn probe_run(
    state_dir: &Path,
    service: Service,
    program: &str,
    args: &[&str],
) -> Result<String, LabError> {
    let argv: Vec<&str> = std::iter::once(program)
        .chain(args.iter().copied())
        .collect();
    let request = format!("run {}", hex::encode(argv.join("\0").as_bytes()));
    let output = probe(state_dir, service, &request, PROBE_TIMEOUT)?
        .map_err(|reason| LabError::Command {
            command: format!("{} (in the {} VM)", argv.join(" "), service.name()),
            stderr: reason,
        })
        .and_then(|payload| {
            hex::decode(&payload).map_err(|_| probe_failed(state_dir, service, payload))
        })?;
    Ok(String::from_utf8_lossy(&output).into_owned())
}

/// How long a probe request may take beyond its own timeout: longer than the probe's own
/// HTTP timeout, so a slow exchange is answered `no TimedOut` by the probe first. Under TCG on
/// a loaded machine a busy daemon (the update agent verifying a generation) can take seconds
/// to answer.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(40);

/// One request to `service`'s probe: `Ok(payload)` for `ok`, `Err(reason)` for `no`. Requests
/// to one VM are serialised (qemu serves one client at a time), and each carries a fresh id:
/// answers to requests abandoned earlier, or the console's echo, are skipped.
fn probe(
    state_dir: &Path,
    service: Service,
    request: &str,
    timeout: Duration,
) -> Result<Result<String, String>, LabError> {
    use std::io::{BufRead, Write};
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let path = probe_socket(state_dir, service);
    let io = |source| LabError::Io {
        path: path.clone(),
        source,
    };
    let lock_path = path.with_extension("probe.lock");
    let lock = fs::File::create(&lock_path).map_err(io)?;
    lock.lock().map_err(io)?;
    let mut stream = std::os::unix::net::UnixStream::connect(&path).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    let id = format!(
        "{}n{}",
        std::process::id(),
        NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    writeln!(stream, "{id} {request}").map_err(io)?;
    let mut reader = std::io::BufReader::new(&stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(io)? == 0 {
            return Err(io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        let mut words = line.trim().splitn(3, ' ');
        if words.next() != Some(id.as_str()) {
            continue;
        }
        match (words.next(), words.next()) {
            (Some("ok"), payload) => return Ok(Ok(payload.unwrap_or_default().to_owned())),
            (Some("no"), Some("bad request")) => {
                return Err(probe_failed(
                    state_dir,
                    service,
                    format!("{request:.80}: bad request"),
                ));
            }
            (Some("no"), reason) => return Ok(Err(reason.unwrap_or_default().to_owned())),
            // The echo of the request, should the console still echo.
            _ => {}
        }
    }
}

fn probe_failed(state_dir: &Path, service: Service, what: String) -> LabError {
    LabError::Io {
        path: probe_socket(state_dir, service),
        source: std::io::Error::other(format!(
            "the probe in the {} VM answered: {what}",
            service.name()
        )),
    }
}

/// Writes `<state>/vm/<name>.initrd` (the base initramfs plus the view and its files) and
/// makes the state disk when it has one and it does not exist; returns (initrd, disk).
pub(crate) fn prepare(
    opts: &VmOptions,
    service: Service,
    files: &GuestFiles,
    state_dir: &Path,
) -> Result<(PathBuf, Option<PathBuf>), LabError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| LabError::Io { path, source }
    };
    let mut entries = Vec::new();
    for (guest_path, text) in &files.toml {
        let value: toml::Value = toml::from_str(text).map_err(|e| LabError::Io {
            path: guest_path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        entries.push(Entry {
            path: guest_path.clone(),
            mode: 0o644,
            data: text.as_bytes().to_vec(),
        });
        for path in referenced_paths(&value) {
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() || meta.len() > MAX_FILE {
                continue;
            }
            let data = fs::read(&path).map_err(io(&path))?;
            let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
            entries.push(Entry { path, mode, data });
        }
    }
    for (guest_path, host) in &files.other {
        let data = fs::read(host).map_err(io(host))?;
        entries.push(Entry {
            path: guest_path.clone(),
            mode: 0o644,
            data,
        });
    }
    let base_path = opts.initramfs(service);
    let mut initrd = fs::read(&base_path).map_err(io(&base_path))?;
    pad4(&mut initrd);
    initrd.extend_from_slice(&newc_archive(&entries));
    let dir = state_dir.join("vm");
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    let initrd_path = dir.join(format!("{}.initrd", service.name()));
    fs::write(&initrd_path, initrd).map_err(io(&initrd_path))?;

    if !has_state_disk(service) {
        return Ok((initrd_path, None));
    }
    let disk = state_dir.join(format!("var/{}.ext4", service.name()));
    if !disk.is_file() {
        let tmp = disk.with_extension("ext4.tmp");
        let file = fs::File::create(&tmp).map_err(io(&tmp))?;
        file.set_len(STATE_DISK_MIB << 20).map_err(io(&tmp))?;
        drop(file);
        let mke2fs = crate::find_program(Path::new("mke2fs"));
        let label = format!("roost-{}", service.name());
        let tmp_str = tmp.display().to_string();
        crate::netns::run(
            &mke2fs.display().to_string(),
            &["-q", "-F", "-t", "ext4", "-L", &label, &tmp_str],
        )?;
        fs::rename(&tmp, &disk).map_err(io(&disk))?;
    }
    Ok((initrd_path, Some(disk)))
}

/// A process's resident memory, KiB (from /proc).
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_config::Settings;

    fn example() -> Settings {
        Settings::from_toml("roost.toml", include_str!("../../../examples/roost.toml")).unwrap()
    }

    #[test]
    fn dns_vm_has_one_nic_on_its_service_link() {
        let plan = crate::plan::plan("roost", &example());
        let nics = nics(&plan, Service::Dns);
        assert_eq!(nics.len(), 1, "{nics:?}");
        assert_eq!(nics[0].guest, "svc");
        assert_eq!(nics[0].tap, "tap0");
    }

    #[test]
    fn dhcp_vm_has_a_nic_per_zone_with_a_pool_and_its_link_each_with_its_own_mac() {
        let s = example();
        let plan = crate::plan::plan("roost", &s);
        let nics = nics(&plan, Service::Dhcp);
        let names: Vec<&str> = nics.iter().map(|n| n.guest.as_str()).collect();
        for zone in s.dhcp_view().zones {
            assert!(names.contains(&zone.interface.as_str()), "{names:?}");
        }
        assert!(names.contains(&"svc"), "{names:?}");
        let mut macs: Vec<&str> = nics.iter().map(|n| n.mac.as_str()).collect();
        macs.sort_unstable();
        macs.dedup();
        assert_eq!(macs.len(), nics.len());
        for nic in &nics {
            assert!(nic.tap.len() <= 15 && nic.bridge.len() <= 15);
        }
    }

    #[test]
    fn qemu_gets_a_tap_and_virtio_nic_per_interface_and_the_names_on_the_command_line() {
        let plan = crate::plan::plan("roost", &example());
        let nics = nics(&plan, Service::Dhcp);
        let cmdline = kernel_cmdline(Service::Dhcp, &nics, &[], "info");
        assert!(cmdline.contains("roost.service=dhcp"));
        assert!(cmdline.contains(&format!("roost.if=svc,{}", nics.last().unwrap().mac)));
        assert!(!cmdline.contains("roost.share"));
        let args = qemu_args(&Qemu {
            kernel: Path::new("/k"),
            initrd: Path::new("/i"),
            disk: Some(Path::new("/d")),
            probe: Path::new("/p.sock"),
            cmdline: &cmdline,
            nics: &nics,
            shares: &[],
            memory_mib: MEMORY_MIB,
        });
        let joined = args.join(" ");
        assert!(joined.contains("-accel tcg"));
        assert_eq!(
            args.iter().filter(|a| a.starts_with("tap,id=")).count(),
            nics.len()
        );
        assert!(joined.contains("file=/d,format=raw"));
        assert!(joined.contains("socket,id=probe,path=/p.sock,server=on"));
        // No share, no shared memory.
        assert!(!joined.contains("memory-backend"));
    }

    #[test]
    fn a_shared_directory_gets_shared_memory_a_vhost_user_fs_device_and_its_mount() {
        let plan = crate::plan::plan("roost", &example());
        let nics = nics(&plan, Service::Update);
        let share = Share {
            tag: "spool".to_owned(),
            socket: PathBuf::from("/s/update.virtiofs"),
            path: PathBuf::from("/var/lib/roost/spool"),
        };
        let shares = [share];
        let cmdline = kernel_cmdline(Service::Update, &nics, &shares, "info");
        assert!(
            cmdline.ends_with(" roost.share=spool,/var/lib/roost/spool"),
            "{cmdline}"
        );
        let args = qemu_args(&Qemu {
            kernel: Path::new("/k"),
            initrd: Path::new("/i"),
            disk: Some(Path::new("/d")),
            probe: Path::new("/p.sock"),
            cmdline: &cmdline,
            nics: &nics,
            shares: &shares,
            memory_mib: MEMORY_MIB,
        });
        let joined = args.join(" ");
        assert!(
            joined.contains(&format!(
                "memory-backend-memfd,id=mem,size={MEMORY_MIB}M,share=on -machine memory-backend=mem"
            )),
            "{joined}"
        );
        assert!(joined.contains("socket,id=fs0,path=/s/update.virtiofs"));
        assert!(joined.contains("vhost-user-fs-device,chardev=fs0,tag=spool"));
    }

    #[test]
    fn the_wifi_vm_has_a_nic_per_wifi_zone_its_own_kernel_and_no_disk() {
        let text = format!(
            "{}\n{}",
            include_str!("../../../examples/roost.toml"),
            r#"
[wifi]
usb_radio = "0bda:8812"
country = "DE"
[wifi.networks.home]
ssid = "Roost Home"
zone = "lan"
passphrase_file = "/var/lib/roost/wifi/home"
[wifi.networks.guests]
ssid = "Roost Guest"
zone = "guest"
passphrase_file = "/var/lib/roost/wifi/guests"
[wifi.networks.home2]
ssid = "Roost Home 2"
zone = "lan"
passphrase_file = "/var/lib/roost/wifi/home"
"#
        );
        let s = Settings::from_toml("roost.toml", &text).unwrap();
        let plan = crate::plan::plan("roost", &s);
        let nics = nics(&plan, Service::Wifi);
        let names: Vec<&str> = nics.iter().map(|n| n.guest.as_str()).collect();
        assert_eq!(names, ["guest", "lan", "svc"]);
        assert!(nics[0].mac.starts_with("52:54:00:7e:05:"), "{nics:?}");
        // Without Wi-Fi there is no Wi-Fi VM, nor links for one.
        assert!(nics_of_example_wifi_is_empty());
        let opts = VmOptions {
            cache: PathBuf::from("/c"),
        };
        assert_eq!(
            opts.kernel(Service::Wifi),
            Path::new("/c/kernel-wifi/Image")
        );
        assert_eq!(opts.kernel(Service::Dns), Path::new("/c/kernel/Image"));
        let cmdline = kernel_cmdline(Service::Wifi, &nics, &[], "info");
        assert!(cmdline.contains("roost.service=wifi roost.log=info roost.if=guest,"));
        let args = qemu_args(&Qemu {
            kernel: Path::new("/k"),
            initrd: Path::new("/i"),
            disk: None,
            probe: Path::new("/p.sock"),
            cmdline: &cmdline,
            nics: &nics,
            shares: &[],
            memory_mib: MEMORY_MIB,
        });
        assert!(!args.join(" ").contains("-drive"), "{args:?}");
    }

    fn nics_of_example_wifi_is_empty() -> bool {
        nics(&crate::plan::plan("roost", &example()), Service::Wifi).is_empty()
    }

    #[test]
    fn link_local_is_the_modified_eui64_of_the_mac() {
        assert_eq!(
            link_local("52:54:00:7e:00:01"),
            "fe80::5054:ff:fe7e:1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
        );
        assert_eq!(
            link_local("00:1b:21:aa:bb:cc"),
            "fe80::21b:21ff:feaa:bbcc"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
        );
    }

    #[test]
    fn newc_archive_has_parents_before_files_aligned_records_and_a_trailer() {
        let archive = newc_archive(&[Entry {
            path: PathBuf::from("/tmp/lab/tokens/dns"),
            mode: 0o600,
            data: b"secret".to_vec(),
        }]);
        assert_eq!(archive.len() % 4, 0);
        let text = String::from_utf8_lossy(&archive);
        let names: Vec<&str> = [
            "tmp\0",
            "tmp/lab\0",
            "tmp/lab/tokens\0",
            "tmp/lab/tokens/dns\0",
        ]
        .into_iter()
        .collect();
        let mut at = 0;
        for name in names {
            let pos = text[at..].find(name).expect(name) + at;
            at = pos + name.len();
        }
        assert!(text.contains("secret"));
        assert!(text.ends_with("TRAILER!!!\0\0\0\0") || text.contains("TRAILER!!!\0"));
        // The file's header: regular file with mode 0600, six bytes.
        assert!(text.contains(&format!("{:08x}", 0o100_600)));
        assert!(text.contains(&format!("{:08x}", 6)));
    }

    #[test]
    fn web_vm_gets_its_own_token_and_every_peer_token_it_pushes_with() {
        let mut s = example();
        s.services.token_dir = PathBuf::from("/lab/tokens");
        let view: toml::Value = toml::from_str(&s.render_view(Service::Web)).unwrap();
        let paths = referenced_paths(&view);
        assert!(
            paths.contains(&PathBuf::from("/lab/tokens/web")),
            "{paths:?}"
        );
        for peer in s.web_view().peers {
            assert!(
                paths.contains(&peer.token_file),
                "{:?}: {paths:?}",
                peer.service
            );
        }
    }

    #[test]
    fn referenced_paths_finds_absolute_strings_anywhere_in_the_view() {
        let view: toml::Value = toml::from_str(
            "[control]\ntoken_file = \"/s/tokens/dns\"\nlisten = \"10.0.0.2:9100\"\n\
             [[lists]]\npath = \"/s/block.txt\"\nname = \"ads\"\n",
        )
        .unwrap();
        assert_eq!(
            referenced_paths(&view),
            [
                PathBuf::from("/s/tokens/dns"),
                PathBuf::from("/s/block.txt")
            ]
        );
    }
}
