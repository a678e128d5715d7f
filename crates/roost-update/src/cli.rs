//! Command line of `roost-update`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use roost_config::Generation;
use roost_update::manifest::{self, ManifestInput};
use roost_update::{Expiry, KeyDir, OnlineKeys, PemKey, RootKeys, conformance, repo};
use url::Url;

/// Roost's signed updates: TUF repository publisher and verifying client.
#[derive(Debug, Parser)]
#[command(version)]
pub(crate) struct Cli {
    /// Run the agent with this view (same as `agent --config`; the daemon contract of the lab).
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// The update agent (router): check, fetch, install, switch, health-check, roll back.
    Agent {
        /// The settings view, /etc/roost/update.toml.
        #[arg(long)]
        config: PathBuf,
        /// Platform file: store, profile, restart command, health check commands.
        #[arg(long, default_value = "/etc/roost/update-system.toml")]
        system: PathBuf,
    },
    /// The host step (NixOS host, root, no network): verifies again and carries out what the
    /// update VM's agent asks through the spool (import, profile, switch, restart, collect).
    Host {
        /// Its settings: pinned root, host name, spool, store, profile, restart command.
        #[arg(long, default_value = "/etc/roost/update-host.toml")]
        settings: PathBuf,
    },
    /// Create or rotate keys and root metadata.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Publish a generation: manifest from a Hydra build and a binary cache, then re-sign.
    Publish {
        /// Repository directory (holds metadata/ and targets/).
        #[arg(long)]
        repo: PathBuf,
        /// Directory with targets.pem, snapshot.pem and timestamp.pem.
        #[arg(long)]
        key_dir: PathBuf,
        /// Hydra build JSON (`GET /build/<id>`); `buildoutputs.out.path` is the toplevel.
        #[arg(long)]
        build: PathBuf,
        /// Binary cache directory, as `nix copy --to file://DIR` writes it.
        #[arg(long)]
        cache: PathBuf,
        /// URL the routers fetch that cache from.
        #[arg(long)]
        cache_url: String,
        /// Release channel.
        #[arg(long)]
        channel: String,
        /// Host name (default: from the job `nixosConfigurations.<host>...`).
        #[arg(long)]
        host: Option<String>,
        /// Generation number (default: the newest published plus one).
        #[arg(long)]
        generation: Option<u64>,
        /// A service VM and its store path, `NAME=/nix/store/...` (repeatable).
        #[arg(long = "service", value_name = "NAME=PATH")]
        services: Vec<String>,
    },
    /// Re-sign the timestamp (and the snapshot when due) with the online keys.
    Refresh {
        /// Repository directory.
        #[arg(long)]
        repo: PathBuf,
        /// Directory with snapshot.pem and timestamp.pem.
        #[arg(long)]
        key_dir: PathBuf,
    },
    /// The tuf-conformance client-under-test CLI.
    TufClient(TufClient),
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Generate keys and root version 1, and an empty signed repository.
    Init {
        /// Repository directory to create.
        #[arg(long)]
        repo: PathBuf,
        /// Directory for the private keys (move root-*.pem offline afterwards).
        #[arg(long)]
        key_dir: PathBuf,
        /// Number of root keys.
        #[arg(long, default_value_t = 3)]
        root_keys: usize,
        /// Root signatures required.
        #[arg(long, default_value_t = 2)]
        root_threshold: u64,
        /// Also write the root metadata here (the file clients pin, e.g. keys/root.json).
        #[arg(long)]
        pin: Option<PathBuf>,
    },
    /// Write root version N+1 with new root keys, signed by the old threshold and the new.
    RotateRoot {
        /// Repository directory.
        #[arg(long)]
        repo: PathBuf,
        /// Current root keys to sign with (at least the current threshold; repeatable).
        #[arg(long = "old-key", required = true)]
        old_keys: Vec<PathBuf>,
        /// Root keys of the new root; generated when the file does not exist (repeatable).
        #[arg(long = "new-root-key", required = true)]
        new_keys: Vec<PathBuf>,
        /// Root signatures the new root requires.
        #[arg(long)]
        threshold: u64,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct TufClient {
    /// Trusted metadata directory.
    #[arg(long)]
    metadata_dir: PathBuf,
    /// Repository metadata URL.
    #[arg(long)]
    metadata_url: Option<Url>,
    /// Target path to download.
    #[arg(long)]
    target_name: Option<String>,
    /// Repository targets URL.
    #[arg(long)]
    target_base_url: Option<Url>,
    /// Where downloaded targets go.
    #[arg(long)]
    target_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: TufClientCommand,
}

#[derive(Debug, Subcommand)]
enum TufClientCommand {
    /// Trust this root.
    Init {
        /// Initial root.json.
        root: PathBuf,
    },
    /// Update the trusted metadata.
    Refresh,
    /// Refresh, then download and verify one target.
    Download,
}

fn online_keys(dir: &Path) -> OnlineKeys {
    let keys = KeyDir::new(dir);
    OnlineKeys {
        targets: keys.targets(),
        snapshot: keys.snapshot(),
        timestamp: keys.timestamp(),
    }
}

async fn agent(config: &Path, system: &Path) -> anyhow::Result<()> {
    use roost_config::View;
    let view = roost_config::views::UpdateView::load(config)?;
    let system = roost_update::agent::system::SystemSettings::load(system)?;
    let state = std::env::var_os("STATE_DIRECTORY")
        .map_or_else(|| PathBuf::from("/var/lib/roost/update"), PathBuf::from);
    roost_update::agent::run(view, system, state).await?;
    Ok(())
}

pub(crate) async fn run(cli: Cli) -> anyhow::Result<()> {
    let now = jiff::Timestamp::now();
    let expiry = Expiry::default();
    let command = match (cli.command, cli.config) {
        (None, Some(config)) => {
            return agent(&config, Path::new("/etc/roost/update-system.toml")).await;
        }
        (Some(command), None) => command,
        (_, _) => bail!("give a subcommand, or --config FILE to run the agent"),
    };
    match command {
        Command::Keys(KeysCommand::Init {
            repo,
            key_dir,
            root_keys,
            root_threshold,
            pin,
        }) => {
            std::fs::create_dir_all(&key_dir)
                .with_context(|| format!("creating {}", key_dir.display()))?;
            let dir = KeyDir::new(&key_dir);
            let root = (1..=root_keys)
                .map(|i| PemKey::generate(dir.root(i).path))
                .collect::<Result<Vec<_>, _>>()?;
            let keys = RootKeys {
                root,
                root_threshold,
                targets: PemKey::generate(dir.targets().path)?,
                snapshot: PemKey::generate(dir.snapshot().path)?,
                timestamp: PemKey::generate(dir.timestamp().path)?,
            };
            let root = repo::init(&repo, &keys, &expiry, now).await?;
            if let Some(pin) = pin {
                std::fs::write(&pin, root).with_context(|| format!("writing {}", pin.display()))?;
            }
            tracing::info!(repo = %repo.display(), keys = %key_dir.display(), "repository created");
        }
        Command::Keys(KeysCommand::RotateRoot {
            repo,
            old_keys,
            new_keys,
            threshold,
        }) => {
            let old: Vec<PemKey> = old_keys.into_iter().map(PemKey::new).collect();
            let new = new_keys
                .into_iter()
                .map(|p| {
                    if p.exists() {
                        Ok(PemKey::new(p))
                    } else {
                        PemKey::generate(p)
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            repo::rotate_root(&repo, &old, &new, threshold, &expiry, now).await?;
            tracing::info!(repo = %repo.display(), "root rotated");
        }
        Command::Publish {
            repo,
            key_dir,
            build,
            cache,
            cache_url,
            channel,
            host,
            generation,
            services,
        } => {
            let build = manifest::read_hydra_build(&build)
                .with_context(|| format!("reading build {}", build.display()))?;
            let mut service_map = BTreeMap::new();
            for s in services {
                let Some((name, path)) = s.split_once('=') else {
                    bail!("--service {s:?}: expected NAME=/nix/store/...");
                };
                service_map.insert(name.to_owned(), path.to_owned());
            }
            let host = host
                .or_else(|| build.host().map(str::to_owned))
                .context("no --host and the build's job names no nixosConfigurations.<host>")?;
            let generation = match generation {
                Some(g) => Generation(g),
                None => repo::next_generation(&repo, &host, &channel).await?,
            };
            let input = ManifestInput {
                build,
                host: Some(host),
                channel,
                generation,
                services: service_map,
                cache_dir: cache,
                cache_url,
            };
            let manifest = manifest::build_manifest(&input)?;
            let name =
                repo::publish(&repo, &manifest, &online_keys(&key_dir), &expiry, now).await?;
            tracing::info!(target_name = %name, paths = manifest.paths.len(), "published");
        }
        Command::Refresh { repo, key_dir } => {
            let keys = online_keys(&key_dir);
            let done = repo::refresh(&repo, &keys.snapshot, &keys.timestamp, &expiry, now).await?;
            tracing::info!(timestamp = done.timestamp_version, snapshot = ?done.snapshot_version, "refreshed");
        }
        Command::TufClient(args) => tuf_client(args).await?,
        Command::Agent { config, system } => agent(&config, &system).await?,
        Command::Host { settings } => {
            let settings = roost_update::host::HostSettings::load(&settings)?;
            let state = std::env::var_os("STATE_DIRECTORY").map_or_else(
                || PathBuf::from("/var/lib/roost/update-host"),
                PathBuf::from,
            );
            roost_update::host::HostStep::new(settings, state)
                .serve(roost_control::shutdown_signal())
                .await;
        }
    }
    Ok(())
}

async fn tuf_client(args: TufClient) -> anyhow::Result<()> {
    let dir = &args.metadata_dir;
    match args.command {
        TufClientCommand::Init { root } => conformance::init(dir, &root)?,
        TufClientCommand::Refresh => {
            let url = args.metadata_url.context("refresh needs --metadata-url")?;
            conformance::refresh(dir, url).await?;
        }
        TufClientCommand::Download => {
            let (Some(url), Some(name), Some(base), Some(out)) = (
                args.metadata_url,
                args.target_name,
                args.target_base_url,
                args.target_dir,
            ) else {
                bail!(
                    "download needs --metadata-url, --target-name, --target-base-url and --target-dir"
                );
            };
            conformance::download(dir, url, &name, base, &out).await?;
        }
    }
    Ok(())
}
