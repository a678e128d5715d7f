//! `roostctl config ...`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use roost_config::View as _;
use roost_config::{LoadError, Service, Settings};

/// Loads settings; invalid settings are printed (every error) and turn into exit code 1.
fn load(file: &Path) -> anyhow::Result<Result<Settings, ExitCode>> {
    match Settings::load(file) {
        Ok(settings) => Ok(Ok(settings)),
        Err(LoadError::Invalid(errors)) => {
            eprintln!("{errors}");
            let n = errors.diagnostics.len();
            eprintln!(
                "{}: {n} error{}",
                file.display(),
                if n == 1 { "" } else { "s" }
            );
            Ok(Err(ExitCode::from(1)))
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn check(file: &Path) -> anyhow::Result<ExitCode> {
    Ok(match load(file)? {
        Ok(settings) => {
            eprintln!("{}: ok", file.display());
            if settings.router.ula_prefix.is_none() {
                eprintln!("{}", ula_hint(random_global_id()?));
            }
            ExitCode::SUCCESS
        }
        Err(code) => code,
    })
}

/// What `config check` says when `router.ula_prefix` is not set: a prefix made now, to keep.
fn ula_hint(global_id: [u8; 5]) -> String {
    let prefix = roost_config::settings::ula_prefix(global_id);
    format!(
        "note: router.ula_prefix is not set, so no zone has IPv6. To turn it on, add this \
         randomly generated prefix (RFC 4193) to [router] and keep it:\n  \
         ula_prefix = \"{prefix}\""
    )
}

/// Five bytes from the kernel's random source: a ULA Global ID.
fn random_global_id() -> anyhow::Result<[u8; 5]> {
    use std::io::Read as _;
    let mut id = [0u8; 5];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut id))
        .context("reading /dev/urandom")?;
    Ok(id)
}

pub(crate) fn show(file: &Path, service: Service) -> anyhow::Result<ExitCode> {
    // Only a router with Wi-Fi (VoIP) has the Wi-Fi (VoIP) VM.
    match service {
        Service::Wifi => return wifi(file),
        Service::Voip => return voip(file),
        _ => {}
    }
    Ok(match load(file)? {
        Ok(settings) => {
            std::io::stdout()
                .write_all(settings.render_view(service).as_bytes())
                .context("writing the view")?;
            ExitCode::SUCCESS
        }
        Err(code) => code,
    })
}

/// `roostctl config pppd FILE`: the pppd peer file of a PPPoE uplink (exit 1 with a message
/// when the WAN is not PPPoE).
pub(crate) fn pppd(file: &Path) -> anyhow::Result<ExitCode> {
    print_rendered(file, Settings::pppd_peer, "wan.mode is not \"pppoe\"")
}

/// `roostctl config wifi FILE`: the Wi-Fi VM's view (exit 1 with a message without Wi-Fi).
pub(crate) fn wifi(file: &Path) -> anyhow::Result<ExitCode> {
    print_rendered(file, |s| s.wifi_view().map(|v| v.render()), "no [wifi]")
}

/// `roostctl config voip FILE`: the VoIP VM's view (exit 1 with a message without VoIP).
pub(crate) fn voip(file: &Path) -> anyhow::Result<ExitCode> {
    print_rendered(file, |s| s.voip_view().map(|v| v.render()), "no [voip]")
}

/// Prints what `render` makes of the settings in `file`, or says `absent` and exits 1 when
/// the settings have nothing of the kind.
fn print_rendered(
    file: &Path,
    render: impl Fn(&Settings) -> Option<String>,
    absent: &str,
) -> anyhow::Result<ExitCode> {
    Ok(match load(file)? {
        Ok(settings) => match render(&settings) {
            Some(text) => {
                std::io::stdout()
                    .write_all(text.as_bytes())
                    .context("writing to stdout")?;
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("roostctl: {}: {absent}", file.display());
                ExitCode::from(1)
            }
        },
        Err(code) => code,
    })
}

/// `roostctl wifi hostapd VIEW`: hostapd.conf with the passphrases read now; a passphrase that
/// is missing or unusable is exit 1 with the network and file named.
pub(crate) fn hostapd(
    view: &Path,
    interface: &str,
    ctrl_group: &str,
    out: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let view = roost_config::wifi::WifiView::load(view)?;
    let conf = match view
        .wifi
        .hostapd_conf(interface, ctrl_group, |path| std::fs::read_to_string(path))
    {
        Ok(conf) => conf,
        Err(e) => {
            eprintln!("roostctl: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    write_out(out, &conf, "hostapd.conf")
}

/// `roostctl voip kamailio VIEW`: kamailio.cfg with each phone's password hashed now; a
/// password that is missing or unusable is exit 1 with the phone and file named.
pub(crate) fn kamailio(view: &Path, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let view = roost_config::voip::VoipView::load(view)?;
    match view.kamailio_cfg(|path| std::fs::read_to_string(path)) {
        Ok(cfg) => write_out(out, &cfg, "kamailio.cfg"),
        Err(e) => {
            eprintln!("roostctl: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Writes a rendered file holding secrets to `out` (privately) or to stdout.
fn write_out(out: Option<&Path>, text: &str, what: &str) -> anyhow::Result<ExitCode> {
    match out {
        None => std::io::stdout()
            .write_all(text.as_bytes())
            .with_context(|| format!("writing {what}"))?,
        Some(path) => write_private(path, text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `data` to `path` readable by its owner only (it holds secrets), through a
/// temporary file renamed over it, so the daemon never reads half a file.
fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(data)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ula_hint_suggests_a_prefix_that_validates() {
        let hint = ula_hint([0x12, 0x34, 0x56, 0x78, 0x9a]);
        assert!(
            hint.contains("ula_prefix = \"fd12:3456:789a::/48\""),
            "{hint}"
        );
    }
}
