//! `roost-firewall --config /etc/roost/firewall.toml`: the firewall VM's daemon.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use roost_config::View as _;
use roost_config::views::FirewallView;

/// Roost's routing core: zones, NAT, port forwards, WAN address, control API.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The firewall view (`roostctl config show --service firewall roost.toml`).
    #[arg(
        long,
        env = "ROOST_FIREWALL_CONFIG",
        default_value = "/etc/roost/firewall.toml"
    )]
    config: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    roost_control::init_tracing();
    let view = FirewallView::load(&args.config)
        .with_context(|| format!("loading {}", args.config.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime
        .block_on(roost_firewall::run(view))
        .context("roost-firewall failed")
}
