//! `roostctl wifi wps`: the WPS push button, pressed through hostapd's control interface in
//! the Wi-Fi VM (ADR 0013).
//!
//! hostapd answers on one unix datagram socket per network interface in its `ctrl_interface`
//! directory: a client binds a socket of its own (hostapd replies to its address), sends one
//! command and reads one reply.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

/// How long hostapd may take to answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// hostapd's replies are short; a longer one is cut (and then not `OK`).
const MAX_REPLY: usize = 4096;

/// `roostctl wifi wps VIEW`: opens the WPS network's two-minute push-button window. Exit 1
/// when no network has WPS or hostapd refuses (e.g. two stations pressed at once: overlap).
pub(crate) fn wps(view: &Path, interface: &str, ctrl_dir: &Path) -> anyhow::Result<ExitCode> {
    let view = roost_config::wifi::WifiView::load(view)?;
    let Some((name, network, bss)) = view.wifi.wps_network(interface) else {
        eprintln!("roostctl: no Wi-Fi network has wps = true");
        return Ok(ExitCode::from(1));
    };
    let reply = request(&ctrl_dir.join(&bss), "WPS_PBC")
        .with_context(|| format!("asking hostapd on {bss} (network {name})"))?;
    match reply.trim_end() {
        "OK" => {
            println!(
                "WPS: push button pressed on network {name} ({:?}, {bss}); a device pressing its \
                 own button in the next two minutes joins",
                network.ssid
            );
            Ok(ExitCode::SUCCESS)
        }
        "FAIL-PBC-OVERLAP" => {
            eprintln!(
                "roostctl: WPS refused: more than one device is pressing its button; try again \
                 with one"
            );
            Ok(ExitCode::from(1))
        }
        other => {
            eprintln!("roostctl: hostapd refused WPS_PBC on {bss}: {other:?}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Sends `command` to the hostapd control socket `socket`; returns its reply.
fn request(socket: &Path, command: &str) -> anyhow::Result<String> {
    let local = ClientSocket::bind()?;
    local
        .socket
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .context("setting the reply timeout")?;
    local
        .socket
        .connect(socket)
        .with_context(|| format!("connecting to {}", socket.display()))?;
    local.socket.send(command.as_bytes()).context("sending")?;
    let mut buf = vec![0; MAX_REPLY];
    let n = local
        .socket
        .recv(&mut buf)
        .context("waiting for the reply")?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// The client's own socket (hostapd replies to it), removed when dropped.
struct ClientSocket {
    socket: UnixDatagram,
    path: PathBuf,
}

impl ClientSocket {
    fn bind() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("roostctl-hostapd-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let socket =
            UnixDatagram::bind(&path).with_context(|| format!("binding {}", path.display()))?;
        Ok(Self { socket, path })
    }
}

impl Drop for ClientSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
