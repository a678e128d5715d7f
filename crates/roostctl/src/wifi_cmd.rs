//! `roostctl wifi wps`: the WPS push button, pressed through hostapd's control interface in
//! the Wi-Fi VM (ADR 0013; the web UI's button goes through roost-wifi's `POST /wps`).

use std::path::Path;
use std::process::ExitCode;

use roost_config::View as _;
use roost_wifi::WpsError;

/// `roostctl wifi wps VIEW`: opens the WPS network's two-minute push-button window. Exit 1
/// when no network has WPS or hostapd refuses (e.g. two devices pressing at once).
pub(crate) fn wps(view: &Path, interface: &str, ctrl_dir: &Path) -> anyhow::Result<ExitCode> {
    let view = roost_config::wifi::WifiView::load(view)?;
    match roost_wifi::press_wps(&view.wifi, ctrl_dir, interface) {
        Ok(p) => {
            println!(
                "WPS: push button pressed on network {} ({:?}, {}); a device pressing its own \
                 button in the next two minutes joins",
                p.network, p.ssid, p.interface
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ WpsError::Ctrl(_)) => Err(e.into()),
        Err(e) => {
            eprintln!("roostctl: WPS: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
