//! `roost-web --config /etc/roost/web.toml`: the web VM's daemon.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use roost_config::View as _;
use roost_config::views::WebView;

/// Roost's web UI, JSON API and settings controller.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The web view (`roostctl config show --service web roost.toml`).
    #[arg(long, env = "ROOST_WEB_CONFIG", default_value = "/etc/roost/web.toml")]
    config: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    roost_control::init_tracing();
    let view = WebView::load(&args.config)
        .with_context(|| format!("loading {}", args.config.display()))?;
    let state_dir = roost_control::state_directory(
        std::env::var("STATE_DIRECTORY").ok().as_deref(),
        roost_config::Service::Web,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime
        .block_on(roost_web::run(view, &state_dir))
        .context("roost-web failed")
}
