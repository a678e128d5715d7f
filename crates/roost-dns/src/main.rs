//! `roost-dns --config /etc/roost/dns.toml`: the caching resolver (see the library docs).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use roost_config::View as _;
use roost_config::views::DnsView;

/// Roost's caching DNS resolver.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The dns settings view.
    #[arg(long, default_value = "/etc/roost/dns.toml")]
    config: PathBuf,
    /// Listen for DNS here instead of the service-link address, port 53 (tests use port 0).
    #[arg(long)]
    dns_listen: Option<SocketAddr>,
    /// State directory.
    #[arg(long, env = "STATE_DIRECTORY", default_value = "/var/lib/roost/dns")]
    state_dir: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    roost_control::init_tracing();
    let view = DnsView::load(&args.config)
        .with_context(|| format!("loading {}", args.config.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime
        .block_on(roost_dns::run(
            view,
            roost_dns::RunOptions {
                dns_listen: args.dns_listen,
                state_dir: args.state_dir,
            },
        ))
        .context("roost-dns failed")
}
