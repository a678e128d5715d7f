//! `roost-wifi --config /etc/roost/wifi.toml`: the Wi-Fi VM's agent, beside hostapd.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use roost_config::View as _;
use roost_config::wifi::WifiView;

/// Roost's Wi-Fi VM agent: the control API over hostapd (health, stations, WPS button).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The Wi-Fi view (`roostctl config wifi roost.toml`).
    #[arg(
        long,
        env = "ROOST_WIFI_CONFIG",
        default_value = "/etc/roost/wifi.toml"
    )]
    config: PathBuf,
    /// hostapd's control directory (its `ctrl_interface`).
    #[arg(long, default_value = roost_config::wifi::CTRL_DIR)]
    ctrl_dir: PathBuf,
    /// The radio's interface.
    #[arg(long, default_value = roost_config::wifi::RADIO)]
    radio: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    roost_control::init_tracing();
    let view = WifiView::load(&args.config)
        .with_context(|| format!("loading {}", args.config.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime
        .block_on(roost_wifi::run(view, args.ctrl_dir, args.radio))
        .context("roost-wifi failed")
}
