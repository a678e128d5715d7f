//! `roost-voip --config /etc/roost/voip.toml`: the VoIP VM's agent, beside Kamailio.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use roost_config::View as _;
use roost_config::voip::VoipView;

/// Roost's VoIP VM agent: the control API over Kamailio (health, the phones registered).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The VoIP view (`roostctl config voip roost.toml`).
    #[arg(
        long,
        env = "ROOST_VOIP_CONFIG",
        default_value = "/etc/roost/voip.toml"
    )]
    config: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    roost_control::init_tracing();
    let view = VoipView::load(&args.config)
        .with_context(|| format!("loading {}", args.config.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime
        .block_on(roost_voip::run(view))
        .context("roost-voip failed")
}
