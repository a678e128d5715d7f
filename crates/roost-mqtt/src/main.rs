//! `roost-mqtt --config /etc/roost/mqtt.toml`: the mqtt VM's daemon.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use roost_config::View as _;
use roost_config::views::MqttView;

/// Roost's MQTT broker: listeners per zone, users, ACLs, TLS, limits, persistent sessions.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The mqtt view (`roostctl config show --service mqtt roost.toml`).
    #[arg(
        long,
        env = "ROOST_MQTT_CONFIG",
        default_value = "/etc/roost/mqtt.toml"
    )]
    config: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    roost_control::init_tracing();
    let view = MqttView::load(&args.config)
        .with_context(|| format!("loading {}", args.config.display()))?;
    let state_dir = roost_control::state_directory(
        std::env::var("STATE_DIRECTORY").ok().as_deref(),
        roost_config::Service::Mqtt,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime
        .block_on(roost_mqtt::run(view, &state_dir))
        .context("roost-mqtt failed")
}
