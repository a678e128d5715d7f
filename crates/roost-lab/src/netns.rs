//! Network namespaces and links, through iproute2's `ip` (every call names its namespace with
//! `-n`, so nothing happens in the host's own namespace).

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::thread;

use nix::sched::{CloneFlags, setns};

use crate::LabError;

/// Runs `ip ARGS`, failing with its stderr.
pub(crate) fn ip(args: &[&str]) -> Result<String, LabError> {
    run("ip", args)
}

/// Runs a command to completion, failing with its stderr.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<String, LabError> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| LabError::Spawn {
            program: program.to_owned(),
            source,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(LabError::Command {
            command: format!("{program} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

fn netns_path(name: &str) -> String {
    format!("/run/netns/{name}")
}

/// Whether the namespace exists.
pub(crate) fn exists(name: &str) -> bool {
    Path::new(&netns_path(name)).exists()
}

/// Creates the namespace (with loopback up) unless it exists.
pub(crate) fn ensure(name: &str) -> Result<(), LabError> {
    if !exists(name) {
        ip(&["netns", "add", name])?;
    }
    ip(&["-n", name, "link", "set", "lo", "up"])?;
    Ok(())
}

/// Pids of the processes in the namespace.
pub(crate) fn pids(name: &str) -> Vec<u32> {
    ip(&["netns", "pids", name])
        .map(|out| {
            out.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `pid` is a live process inside namespace `name` (a zombie has left it).
pub(crate) fn runs_in(pid: u32, name: &str) -> bool {
    let ns = std::fs::metadata(netns_path(name));
    let proc = std::fs::metadata(format!("/proc/{pid}/ns/net"));
    match (ns, proc) {
        (Ok(ns), Ok(proc)) => ns.ino() == proc.ino() && ns.dev() == proc.dev(),
        _ => false,
    }
}

/// Stops every process in the namespace (TERM, then KILL after a grace period) and removes it.
pub(crate) fn remove(name: &str) -> Result<(), LabError> {
    if !exists(name) {
        return Ok(());
    }
    crate::process::stop_all(&pids(name));
    ip(&["netns", "del", name])?;
    Ok(())
}

/// Whether interface `ifname` exists in namespace `netns`.
pub(crate) fn link_exists(netns: &str, ifname: &str) -> bool {
    ip(&["-n", netns, "link", "show", "dev", ifname]).is_ok()
}

/// The link-local address of `ifname` in `netns` once duplicate address detection is done
/// with it.
pub(crate) fn link_local(
    netns: &str,
    ifname: &str,
) -> Result<Option<std::net::Ipv6Addr>, LabError> {
    let out = ip(&[
        "-j", "-6", "-n", netns, "addr", "show", "dev", ifname, "scope", "link",
    ])?;
    let json: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    Ok(json
        .get(0)
        .and_then(|l| l["addr_info"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter(|a| a.get("tentative").is_none())
        .find_map(|a| a["local"].as_str()?.parse().ok()))
}

/// Runs `f` on a thread that has entered namespace `name`, so sockets it opens live there.
pub(crate) fn within<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, LabError> {
    let path = netns_path(name);
    let file = File::open(&path).map_err(|source| LabError::Io {
        path: path.clone().into(),
        source,
    })?;
    let handle = thread::spawn(move || setns(&file, CloneFlags::CLONE_NEWNET).map(|()| f()));
    match handle.join() {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(errno)) => Err(LabError::Setns {
            netns: name.to_owned(),
            errno,
        }),
        Err(_) => Err(LabError::Setns {
            netns: name.to_owned(),
            errno: nix::errno::Errno::EINVAL,
        }),
    }
}
