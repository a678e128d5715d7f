//! Processes the lab starts inside namespaces: daemons and the ISP's servers.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::LabError;

/// How long a process gets to exit after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(3);

/// Starts `program ARGS` inside namespace `netns`, detached from the caller's terminal and
/// process group, with stdout and stderr appended to `log`. Returns its pid.
pub(crate) fn spawn(
    netns: &str,
    program: &Path,
    args: &[String],
    env: &[(&str, String)],
    log: &Path,
) -> Result<u32, LabError> {
    let io = |source| LabError::Io {
        path: log.to_owned(),
        source,
    };
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io)?;
    let err = out.try_clone().map_err(io)?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", netns])
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own process group: a Ctrl-C at `lab up` must not take the lab down with it.
        .process_group(0);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().map_err(|source| LabError::Spawn {
        program: program.display().to_string(),
        source,
    })?;
    // `ip netns exec` execs the program, so this pid is the program's.
    Ok(child.id())
}

/// Sends SIGTERM to every pid, waits up to the grace period, then SIGKILLs what is left.
pub(crate) fn stop_all(pids: &[u32]) {
    let pids: Vec<Pid> = pids
        .iter()
        .filter_map(|p| i32::try_from(*p).ok())
        .map(Pid::from_raw)
        .collect();
    for pid in &pids {
        let _ = kill(*pid, Signal::SIGTERM);
    }
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline && pids.iter().any(|p| alive(*p)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in pids.iter().filter(|p| alive(**p)) {
        let _ = kill(*pid, Signal::SIGKILL);
    }
}

/// Whether a process runs (a zombie does not count).
fn alive(pid: Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            // The state follows the parenthesised command name.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X")
        })
        .unwrap_or(false)
}
