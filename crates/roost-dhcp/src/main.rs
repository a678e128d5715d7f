//! `roost-dhcp --config /etc/roost/dhcp.toml`: the dhcp VM's daemon.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use roost_config::View as _;
use roost_config::views::DhcpView;

/// Roost's DHCPv4 server (pools per zone, reservations, crash-safe leases), stateless DHCPv6
/// (resolver and search domain for SLAAC hosts), control API.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The dhcp view (`roostctl config show --service dhcp roost.toml`).
    #[arg(
        long,
        env = "ROOST_DHCP_CONFIG",
        default_value = "/etc/roost/dhcp.toml"
    )]
    config: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    roost_control::init_tracing();
    let view = DhcpView::load(&args.config)
        .with_context(|| format!("loading {}", args.config.display()))?;
    let state_dir = roost_control::state_directory(
        std::env::var("STATE_DIRECTORY").ok().as_deref(),
        roost_config::Service::Dhcp,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime
        .block_on(roost_dhcp::run(view, state_dir))
        .context("roost-dhcp failed")
}
