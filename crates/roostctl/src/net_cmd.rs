//! `roostctl net apply VIEW`: a service VM's network step. Reads the `network` table of the
//! VM's settings view and addresses its interfaces and default route with iproute2, so VMs and
//! the lab (which uses the same `Settings::vm_network`) are addressed the same way. Runs once
//! at boot, before the daemon, with CAP_NET_ADMIN; the daemon itself never needs it.

use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use roost_config::views::NetworkView;
use serde::Deserialize;

/// Any view: only its `network` table matters here (the daemon checks the rest).
#[derive(Deserialize)]
struct AnyView {
    network: NetworkView,
}

pub(crate) fn apply(file: &Path) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let view: AnyView = toml::from_str(&text)
        .with_context(|| format!("{}: no usable [network] table", file.display()))?;
    for iface in &view.network.interfaces {
        // Addresses and routes are the view's alone: no router advertisements taken (the dhcp
        // VM sits on the zone bridges, where the firewall advertises), and no duplicate address
        // detection (the link's /126 is ours alone, and the daemon binds to it at once; set
        // as a sysctl before any address exists, so it holds for each one the link gets).
        // Without IPv6 in the guest the files are missing, which is fine.
        for key in ["accept_ra", "autoconf", "accept_dad"] {
            let path = format!("/proc/sys/net/ipv6/conf/{}/{key}", iface.name);
            if std::path::Path::new(&path).exists() {
                std::fs::write(&path, "0\n").with_context(|| format!("setting {path}"))?;
            }
        }
        ip(&["link", "set", &iface.name, "up"])?;
        ip(&[
            "addr",
            "replace",
            &iface.address.to_string(),
            "dev",
            &iface.name,
        ])?;
        if let Some(v6) = iface.address6 {
            ip(&["addr", "replace", &v6.to_string(), "dev", &iface.name])?;
        }
    }
    ip(&[
        "route",
        "replace",
        "default",
        "via",
        &view.network.gateway.to_string(),
    ])?;
    if let Some(gw6) = view.network.gateway6 {
        ip(&["-6", "route", "replace", "default", "via", &gw6.to_string()])?;
    }
    Ok(ExitCode::SUCCESS)
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
