//! The update agent (`roost-update agent --config /etc/roost/update.toml`), in the router's
//! update VM: the network side of an update. What needs privilege (import into the store, the
//! system profile, activation, VM restarts) it asks of the host step through the spool
//! (`crate::spool`, `crate::host`), which verifies everything again. ADRs 0006, 0012.
//!
//! - [`machine`]: the update as a sans-IO state machine over a durable journal
//!   (`STATE_DIRECTORY/journal.json`, written through temp + fsync + rename before each step).
//! - [`fetch`]: only the missing store paths, resumed downloads, xz, NarSize/NarHash checks,
//!   into the spool.
//! - [`health`]: peers' `/health` and check commands within a deadline.
//! - [`system`]: the platform file (pinned root, spool, check commands).
//!
//! Control API (roost-control) on `UpdateView.control.listen`: `/health`, `/metrics`, `/state`,
//! `PUT /config`, and the agent's own `POST /check`, `POST /apply[?generation=N]`,
//! `POST /pin/{n}`, `POST /unpin`, `POST /rollback[/{n}]` (what `roostctl generations` calls).
//! Decisions: docs/adr/0006-update-agent.md.

pub mod fetch;
pub mod health;
pub mod machine;
pub mod system;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use jiff::Timestamp;
use roost_config::views::UpdateView;
use roost_config::{Generation, View};
use roost_control::{ConfigRejected, Daemon};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{Mutex, Notify, OwnedMutexGuard, RwLock};
use url::Url;

use crate::client::Client;
use crate::durable::{DurableError, write_durable};
use crate::manifest::Manifest;
use crate::nix::StorePath;
use crate::spool::{Answer, HostError, HostLink, RecordingTransport, Request, Spool};

use self::fetch::{FetchError, Fetcher, Progress};
use self::machine::{Gen, Journal, Next, Outcome, Phase};
use self::system::SystemSettings;

/// Test hook: exit like `kill -9` right after performing this step (`fetch-partial`: halfway
/// through the first download), before its outcome is journaled.
pub const CRASH_ENV: &str = "ROOST_UPDATE_CRASH_AFTER";

/// Exit code of the crash hook.
pub const CRASH_EXIT: i32 = 137;

/// The VM the agent itself runs in. Restarting it in the middle of an update would kill the
/// agent and turn every update that changes it into an interruption (and a rollback), so it is
/// restarted only once its generation is committed.
pub const OWN_VM: &str = "update";

/// Starting or running the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The journal or a stored manifest is unreadable.
    #[error("{path}: {reason}")]
    State {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A durable write.
    #[error(transparent)]
    Durable(#[from] DurableError),
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Http(String),
    /// The control API.
    #[error(transparent)]
    Control(#[from] roost_control::ControlError),
}

/// Why `POST /apply`, `/rollback` or `/check` did nothing.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// An update is running.
    #[error("an update is already running")]
    Busy,
    /// No repository configured.
    #[error("update.repository is not set")]
    NoRepository,
    /// The repository or its metadata was rejected.
    #[error("{0}")]
    Repository(String),
    /// Nothing to install.
    #[error("{0}")]
    Nothing(String),
    /// The journal refused it.
    #[error(transparent)]
    Refused(#[from] machine::Refused),
    /// Local state.
    #[error(transparent)]
    Agent(#[from] AgentError),
}

impl IntoResponse for ApplyError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::Busy | Self::Refused(_) => StatusCode::CONFLICT,
            Self::Nothing(_) => StatusCode::NOT_FOUND,
            Self::NoRepository | Self::Repository(_) => StatusCode::BAD_GATEWAY,
            Self::Agent(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, format!("{self}\n")).into_response()
    }
}

#[derive(Debug, Clone, Default)]
struct LastCheck {
    at: Option<Timestamp>,
    available: Vec<u64>,
    error: Option<String>,
}

/// The running agent.
#[derive(Debug)]
pub struct Agent {
    view: RwLock<UpdateView>,
    system: SystemSettings,
    state_dir: PathBuf,
    journal: Mutex<Journal>,
    busy: Arc<Mutex<()>>,
    host: HostLink,
    spool: Spool,
    fetcher: Fetcher,
    http: reqwest::Client,
    last_check: RwLock<LastCheck>,
    crash_after: Option<String>,
    wake: Notify,
}

fn state_err(path: &Path, reason: impl ToString) -> AgentError {
    AgentError::State {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

impl Agent {
    /// Loads the journal from `state_dir` and adopts a running system it did not install.
    pub fn new(
        view: UpdateView,
        system: SystemSettings,
        state_dir: PathBuf,
    ) -> Result<Arc<Self>, AgentError> {
        let journal_path = state_dir.join("journal.json");
        let journal: Journal = match std::fs::read(&journal_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| state_err(&journal_path, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Journal::default(),
            Err(e) => return Err(state_err(&journal_path, e)),
        };
        // tough installs the aws-lc-rs provider for rustls on first use; do it now so the
        // NAR client has one too.
        drop(tough::DefaultTransport::new());
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| AgentError::Http(e.to_string()))?;
        let crash_after = std::env::var(CRASH_ENV).ok().filter(|s| !s.is_empty());
        let progress = Arc::new(Progress::default());
        let spool = Spool::new(&system.spool);
        let host = HostLink::new(spool.clone(), system.host_timeout());
        let fetcher = Fetcher {
            http: http.clone(),
            downloads: state_dir.join("downloads"),
            incoming: spool.incoming(),
            progress,
            crash_partial: crash_after.as_deref() == Some("fetch-partial"),
        };
        Ok(Arc::new(Self {
            view: RwLock::new(view),
            system,
            state_dir,
            journal: Mutex::new(journal),
            busy: Arc::new(Mutex::new(())),
            host,
            spool,
            fetcher,
            http,
            last_check: RwLock::new(LastCheck::default()),
            crash_after,
            wake: Notify::new(),
        }))
    }

    fn save(&self, journal: &Journal) -> Result<(), AgentError> {
        let mut bytes = serde_json::to_vec_pretty(journal)
            .map_err(|e| state_err(&self.state_dir.join("journal.json"), e))?;
        bytes.push(b'\n');
        write_durable(&self.state_dir.join("journal.json"), &bytes)?;
        Ok(())
    }

    fn manifest_path(&self, generation: u64) -> PathBuf {
        self.state_dir
            .join("manifests")
            .join(format!("{generation}.json"))
    }

    fn load_manifest(&self, generation: u64) -> Result<Option<Manifest>, AgentError> {
        let path = self.manifest_path(generation);
        match std::fs::read(&path) {
            Ok(bytes) => Manifest::from_json(&bytes)
                .map(Some)
                .map_err(|e| state_err(&path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(state_err(&path, e)),
        }
    }

    async fn client(&self) -> Result<(Client, String, String, Option<u64>), ApplyError> {
        let view = self.view.read().await;
        let repo = view
            .update
            .repository
            .clone()
            .ok_or(ApplyError::NoRepository)?;
        let base = format!("{}/", repo.trim_end_matches('/'));
        let parse = |s: &str| {
            Url::parse(&base)
                .and_then(|b| b.join(s))
                .map_err(|e| ApplyError::Repository(format!("update.repository {repo:?}: {e}")))
        };
        let root = crate::client::read_root(&self.system.root)
            .map_err(|e| ApplyError::Repository(e.to_string()))?;
        let (metadata, targets) = (parse("metadata/")?, parse("targets/")?);
        // What it fetches is kept in the spool, where the host step verifies it again.
        let recorder = RecordingTransport::new(&self.spool.repo(), &metadata, &targets);
        let client = Client::new(root, metadata, targets, self.state_dir.join("tuf"))
            .with_transport(recorder);
        Ok((
            client,
            view.hostname.clone(),
            view.update.channel.clone(),
            view.update.pinned_generation.map(|g| g.0),
        ))
    }

    /// Refreshes the TUF metadata and lists the published generations.
    pub async fn check(&self) -> Result<Vec<u64>, ApplyError> {
        let result = async {
            let (client, host, channel, _) = self.client().await?;
            let verified = client
                .refresh()
                .await
                .map_err(|e| ApplyError::Repository(e.to_string()))?;
            Ok::<_, ApplyError>(
                verified
                    .generations(&host, &channel)
                    .into_iter()
                    .map(|g| g.0)
                    .collect::<Vec<u64>>(),
            )
        }
        .await;
        let mut last = self.last_check.write().await;
        last.at = Some(Timestamp::now());
        match &result {
            Ok(available) => {
                last.available = available.clone();
                last.error = None;
            }
            Err(e) => last.error = Some(e.to_string()),
        }
        result
    }

    fn try_busy(&self) -> Result<OwnedMutexGuard<()>, ApplyError> {
        self.busy
            .clone()
            .try_lock_owned()
            .map_err(|_| ApplyError::Busy)
    }

    /// Starts an update to `wanted` (or the generation the pin and the channel say) and runs
    /// it in the background; returns the generation.
    pub async fn apply(self: &Arc<Self>, wanted: Option<u64>) -> Result<u64, ApplyError> {
        let guard = self.try_busy()?;
        // The refresh below records what the host step verifies; what earlier checks recorded
        // would only pile up.
        if let Err(e) = self.spool.prune_repo() {
            tracing::warn!(error = %e, "cannot prune the spool's recorded repository");
        }
        let (client, host, channel, settings_pin) = self.client().await?;
        let verified = client
            .refresh()
            .await
            .map_err(|e| ApplyError::Repository(e.to_string()))?;
        let available: Vec<u64> = verified
            .generations(&host, &channel)
            .into_iter()
            .map(|g| g.0)
            .collect();
        self.last_check.write().await.available = available.clone();
        let journal = self.journal.lock().await;
        if journal.pending.is_some() {
            return Err(ApplyError::Busy);
        }
        let current = journal.current.as_ref().map(|c| c.generation);
        let target = match wanted {
            Some(g) => g,
            None => machine::choose(
                &available,
                current,
                journal.effective_pin(settings_pin),
                &journal.failed,
            )
            .ok_or_else(|| {
                ApplyError::Nothing(format!(
                    "no generation to install (running {current:?}, published {available:?})"
                ))
            })?,
        };
        if let Some(reason) = journal.failed.get(&target) {
            return Err(machine::Refused::Failed {
                generation: target,
                reason: reason.clone(),
            }
            .into());
        }
        let manifest = verified
            .fetch_manifest(&host, &channel, Some(Generation(target)))
            .await
            .map_err(|e| ApplyError::Repository(e.to_string()))?;
        write_durable(&self.manifest_path(target), &manifest.to_json())
            .map_err(AgentError::from)?;
        drop(verified);
        self.begin(guard, journal, manifest).map(|()| target)
    }

    fn begin(
        self: &Arc<Self>,
        guard: OwnedMutexGuard<()>,
        mut journal: tokio::sync::MutexGuard<'_, Journal>,
        manifest: Manifest,
    ) -> Result<(), ApplyError> {
        let previous = match &journal.current {
            Some(c) => self.load_manifest(c.generation)?,
            None => None,
        };
        let restart = machine::changed_services(previous.as_ref(), &manifest);
        let target = Gen {
            generation: manifest.generation.0,
            toplevel: manifest.toplevel.clone(),
        };
        let next = journal.begin(target, restart, Timestamp::now())?;
        self.save(&journal)?;
        drop(journal);
        let agent = Arc::clone(self);
        tokio::spawn(async move {
            agent.drive(next).await;
            drop(guard);
        });
        Ok(())
    }

    /// Goes back to generation `wanted` (or the newest installed one older than the running
    /// one), pinning it so auto-update stays there until `unpin`.
    pub async fn rollback(self: &Arc<Self>, wanted: Option<u64>) -> Result<u64, ApplyError> {
        let guard = self.try_busy()?;
        let mut journal = self.journal.lock().await;
        if journal.pending.is_some() {
            return Err(ApplyError::Busy);
        }
        let current = journal.current.as_ref().map_or(0, |c| c.generation);
        let target = match wanted {
            Some(g) => g,
            None => journal
                .installed
                .keys()
                .copied()
                .filter(|g| *g < current && !journal.failed.contains_key(g))
                .max()
                .ok_or_else(|| {
                    ApplyError::Nothing("no older installed generation to go back to".into())
                })?,
        };
        let manifest = self.load_manifest(target)?.ok_or_else(|| {
            ApplyError::Nothing(format!("generation {target} was never installed here"))
        })?;
        // Its store paths may have been collected: record its signed manifest for the host
        // step, which verifies what it imports. Offline, a rollback whose paths are all still
        // in the store needs none of it.
        if let Err(e) = self.record_manifest(target).await {
            tracing::warn!(generation = target, error = %e, "cannot record the repository for the rollback");
        }
        journal.failed.remove(&target);
        journal.pinned = Some(target);
        self.begin(guard, journal, manifest).map(|()| target)
    }

    /// Prunes the spool's recorded repository and records a fresh refresh and `generation`'s
    /// manifest in it (the host step verifies from these files).
    async fn record_manifest(&self, generation: u64) -> Result<(), ApplyError> {
        if let Err(e) = self.spool.prune_repo() {
            tracing::warn!(error = %e, "cannot prune the spool's recorded repository");
        }
        let (client, host, channel, _) = self.client().await?;
        let verified = client
            .refresh()
            .await
            .map_err(|e| ApplyError::Repository(e.to_string()))?;
        verified
            .fetch_manifest(&host, &channel, Some(Generation(generation)))
            .await
            .map_err(|e| ApplyError::Repository(e.to_string()))?;
        Ok(())
    }

    /// Sets or clears the local pin.
    pub async fn pin(&self, generation: Option<u64>) -> Result<(), AgentError> {
        let mut journal = self.journal.lock().await;
        journal.pinned = generation;
        self.save(&journal)
    }

    /// Adopts a running system it did not install: the toplevel the host's profile points
    /// at becomes the current generation (0 unless the journal knows it). Asked before the
    /// control API listens, so waits only briefly: a host step that is not up yet leaves it
    /// to the next start.
    pub async fn adopt(&self) -> Result<(), HostError> {
        let mut journal = self.journal.lock().await;
        if journal.current.is_some() || journal.pending.is_some() {
            return Ok(());
        }
        let answer = self
            .host
            .call_within(Request::Running, Duration::from_secs(10))
            .await?;
        let Answer::Running(Some(toplevel)) = answer else {
            return Ok(());
        };
        let generation = journal
            .installed
            .iter()
            .find(|(_, t)| **t == toplevel)
            .map_or(0, |(g, _)| *g);
        tracing::info!(%toplevel, generation, "adopting the running system");
        journal.current = Some(Gen {
            generation,
            toplevel,
        });
        if let Err(e) = self.save(&journal) {
            tracing::warn!(error = %e, "cannot write the journal after adopting");
        }
        Ok(())
    }

    /// Finishes or cleans up an update found in the journal at start.
    pub async fn recover(self: &Arc<Self>) -> Result<(), AgentError> {
        let guard = self.busy.clone().lock_owned().await;
        let next = {
            let mut journal = self.journal.lock().await;
            let next = journal.recover(Timestamp::now());
            self.save(&journal)?;
            next
        };
        if next != Next::Idle {
            tracing::info!(?next, "resuming the update found in the journal");
        }
        self.drive(next).await;
        drop(guard);
        Ok(())
    }

    async fn drive(&self, mut next: Next) {
        while let Next::Do(phase) = next {
            let pending = self.journal.lock().await.pending.clone();
            let Some(pending) = pending else { return };
            tracing::info!(
                phase = phase.name(),
                generation = pending.target.generation,
                "update step"
            );
            let outcome = match self.perform(phase, &pending).await {
                Ok(()) => Outcome::Done,
                Err(StepError::Crash) => crash(phase.name()),
                Err(StepError::Failed(reason)) => {
                    tracing::warn!(phase = phase.name(), %reason, "update step failed");
                    Outcome::Failed(reason)
                }
            };
            if self.crash_after.as_deref() == Some(phase.name()) {
                crash(phase.name());
            }
            let installed = phase == Phase::Health && outcome == Outcome::Done;
            let restart_own_vm = installed && pending.restart.iter().any(|vm| vm == OWN_VM);
            let mut journal = self.journal.lock().await;
            next = journal.advance(outcome, Timestamp::now());
            if let Err(e) = self.save(&journal) {
                tracing::error!(error = %e, "cannot write the journal; stopping the update");
                return;
            }
            if next == Next::Idle
                && let Some(c) = &journal.current
            {
                tracing::info!(generation = c.generation, toplevel = %c.toplevel, "running generation");
            }
            drop(journal);
            if installed {
                self.collect_garbage().await;
            }
            if restart_own_vm {
                // The last act of this update: the reply never comes, the agent goes down with
                // its VM and comes back in the new one.
                tracing::info!("restarting the update vm itself");
                let restart = Request::Restart {
                    vms: vec![OWN_VM.to_owned()],
                };
                if let Err(e) = self
                    .host
                    .call_within(restart, Duration::from_secs(30))
                    .await
                {
                    tracing::warn!(error = %e, "the update vm was not restarted");
                }
            }
        }
    }

    /// After a new generation proved healthy: drops the generations nobody needs any more
    /// (see `Journal::collectable`) from the profile and the store. A failure is logged and
    /// retried after the next update; it never touches the running generation.
    async fn collect_garbage(&self) {
        let settings_pin = self.view.read().await.update.pinned_generation.map(|g| g.0);
        let (drop_gens, toplevels): (Vec<u64>, Vec<crate::nix::StorePath>) = {
            let journal = self.journal.lock().await;
            journal
                .collectable(self.system.keep_generations, settings_pin)
                .into_iter()
                .filter_map(|g| journal.installed.get(&g).map(|t| (g, t.clone())))
                .unzip()
        };
        if drop_gens.is_empty() {
            return;
        }
        match self
            .host
            .call(Request::Collect {
                toplevels: toplevels.clone(),
            })
            .await
        {
            Ok(answer) => {
                let freed = match answer {
                    Answer::Freed(f) => f,
                    _ => String::new(),
                };
                tracing::info!(generations = ?drop_gens, %freed, "old generations collected");
                let mut journal = self.journal.lock().await;
                journal.forget(&drop_gens);
                if let Err(e) = self.save(&journal) {
                    tracing::error!(error = %e, "cannot write the journal after collecting");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "garbage collection failed; kept every generation")
            }
        }
    }

    async fn perform(&self, phase: Phase, p: &machine::Pending) -> Result<(), StepError> {
        match phase {
            Phase::Fetch => self.fetch(p.target.generation).await,
            Phase::Install => {
                self.ask(Request::Profile {
                    toplevel: p.target.toplevel.clone(),
                })
                .await
            }
            Phase::Switch => {
                self.ask(Request::Switch {
                    toplevel: p.target.toplevel.clone(),
                })
                .await
            }
            Phase::Restart => self.restart(&p.restart).await,
            Phase::Health => {
                let view = self.view.read().await;
                let checks = health::Checks {
                    peers: view.peers.clone(),
                    commands: self.system.checks.clone(),
                    timeout: self.system.health_timeout(),
                };
                drop(view);
                health::wait_healthy(&self.http, &checks)
                    .await
                    .map_err(StepError::Failed)
            }
            Phase::Rollback => {
                let Some(previous) = &p.previous else {
                    tracing::warn!("no previous generation to go back to");
                    return Ok(());
                };
                let toplevel = previous.toplevel.clone();
                self.ask(Request::Profile {
                    toplevel: toplevel.clone(),
                })
                .await?;
                self.ask(Request::Switch { toplevel }).await?;
                self.restart(&p.restart).await
            }
        }
    }

    /// Asks the host step for something that answers `Done`.
    async fn ask(&self, request: Request) -> Result<(), StepError> {
        self.host.call(request).await?;
        Ok(())
    }

    /// Restarts the service VMs in `vms` but the agent's own (see [`OWN_VM`]).
    async fn restart(&self, vms: &[String]) -> Result<(), StepError> {
        let vms: Vec<String> = vms.iter().filter(|vm| *vm != OWN_VM).cloned().collect();
        if vms.is_empty() {
            return Ok(());
        }
        tracing::info!(?vms, "restarting service vms");
        self.ask(Request::Restart { vms }).await
    }

    async fn fetch(&self, generation: u64) -> Result<(), StepError> {
        let manifest = self
            .load_manifest(generation)
            .map_err(|e| StepError::Failed(e.to_string()))?
            .ok_or_else(|| StepError::Failed(format!("manifest of {generation} is gone")))?;
        let all: Vec<StorePath> = manifest.paths.keys().cloned().collect();
        let total = all.len();
        let missing = match self.host.call(Request::Missing { paths: all }).await? {
            Answer::Missing(missing) => missing,
            other => return Err(StepError::Failed(format!("host step answered {other:?}"))),
        };
        let bytes = missing
            .iter()
            .map(|p| Fetcher::file_size(&manifest, p))
            .sum();
        self.fetcher.progress.reset(missing.len() as u64, bytes);
        tracing::info!(
            missing = missing.len(),
            of = total,
            bytes,
            "fetching store paths"
        );
        for path in &missing {
            if self.fetcher.kept_nar_is_good(&manifest, path).await {
                // Checked and kept before an interruption (and checked again: the spool is
                // shared, and a host step that refused it may have found it bad).
                self.fetcher.progress.paths.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.fetcher
                .fetch(&manifest, path)
                .await
                .map_err(|e| match e {
                    FetchError::Crash => StepError::Crash,
                    e => StepError::Failed(e.to_string()),
                })?;
        }
        if missing.is_empty() {
            // Nothing enters the store: no verification to ask for (the profile step takes
            // only what the host verified or the profile already has).
            return Ok(());
        }
        let view = self.view.read().await;
        let import = Request::Import {
            host: view.hostname.clone(),
            channel: view.update.channel.clone(),
            generation,
        };
        drop(view);
        self.ask(import).await?;
        // The imported NARs are in the store now.
        let _ = std::fs::remove_dir_all(&self.fetcher.incoming);
        Ok(())
    }

    async fn state_json(&self) -> serde_json::Value {
        let journal = self.journal.lock().await.clone();
        let view = self.view.read().await;
        let last = self.last_check.read().await.clone();
        let progress = &self.fetcher.progress;
        json!({
            "current": journal.current,
            "pending": journal.pending,
            "available": last.available,
            "last_check": { "at": last.at, "error": last.error },
            "pinned": journal.effective_pin(view.update.pinned_generation.map(|g| g.0)),
            "pinned_locally": journal.pinned,
            "installed": journal.installed,
            "failed": journal.failed,
            "history": journal.history,
            "last_failure": journal.last_failure,
            "progress": {
                "bytes": progress.bytes.load(Ordering::Relaxed),
                "bytes_total": progress.bytes_total.load(Ordering::Relaxed),
                "paths": progress.paths.load(Ordering::Relaxed),
                "paths_total": progress.paths_total.load(Ordering::Relaxed),
            },
            "channel": view.update.channel,
            "auto": view.update.auto,
        })
    }

    /// The schedule: a check at a jittered time inside the update window (or every
    /// `check_interval_minutes`), then, with `update.auto`, an update.
    pub async fn schedule(self: Arc<Self>) {
        if let Err(e) = self.check().await {
            tracing::warn!(error = %e, "update check failed");
        }
        loop {
            let (window, auto) = {
                let v = self.view.read().await;
                (
                    v.update
                        .window
                        .as_deref()
                        .and_then(roost_config::parse_window),
                    v.update.auto,
                )
            };
            let now = jiff::Zoned::now();
            let minute = (now.hour() as u16) * 60 + now.minute() as u16;
            let wait = machine::minutes_until_next(
                minute,
                window,
                jitter(),
                self.system.check_interval_minutes,
            );
            tracing::info!(minutes = wait, "next update check");
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(u64::from(wait) * 60)) => {}
                () = self.wake.notified() => continue,
            }
            match self.check().await {
                Err(e) => tracing::warn!(error = %e, "update check failed"),
                Ok(_) if auto => match self.apply(None).await {
                    Ok(g) => tracing::info!(generation = g, "update started"),
                    Err(ApplyError::Nothing(why)) => tracing::info!("{why}"),
                    Err(e) => tracing::warn!(error = %e, "update not started"),
                },
                Ok(_) => {}
            }
        }
    }
}

enum StepError {
    Failed(String),
    Crash,
}

impl From<HostError> for StepError {
    fn from(e: HostError) -> Self {
        Self::Failed(e.to_string())
    }
}

fn crash(step: &str) -> ! {
    tracing::error!(step, "crash hook: exiting as if killed");
    std::process::exit(CRASH_EXIT)
}

fn jitter() -> f64 {
    let mut bytes = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

impl Daemon for Agent {
    async fn health(&self) -> Result<(), String> {
        let journal = self.journal.lock().await;
        match (&journal.pending, &journal.last_failure) {
            (Some(p), Some(f)) if p.phase == Phase::Rollback && f.phase == Phase::Rollback => {
                Err(format!(
                    "rollback of generation {} failed: {}",
                    p.target.generation, f.reason
                ))
            }
            _ => Ok(()),
        }
    }

    async fn metrics(&self) -> String {
        let journal = self.journal.lock().await;
        let p = &self.fetcher.progress;
        format!(
            "# TYPE roost_update_current_generation gauge\nroost_update_current_generation {}\n\
             # TYPE roost_update_pending gauge\nroost_update_pending {}\n\
             # TYPE roost_update_failed_generations gauge\nroost_update_failed_generations {}\n\
             # TYPE roost_update_fetched_bytes_total counter\nroost_update_fetched_bytes_total {}\n",
            journal.current.as_ref().map_or(0, |c| c.generation),
            u8::from(journal.pending.is_some()),
            journal.failed.len(),
            p.bytes_lifetime.load(Ordering::Relaxed),
        )
    }

    async fn state(&self) -> serde_json::Value {
        self.state_json().await
    }

    async fn put_config(&self, toml: String) -> Result<(), ConfigRejected> {
        let view = UpdateView::from_toml("PUT /config", &toml)
            .map_err(|e| ConfigRejected::Invalid(e.to_string()))?;
        if let Some(w) = &view.update.window
            && roost_config::parse_window(w).is_none()
        {
            return Err(ConfigRejected::Invalid(format!(
                "update.window {w:?}: a window looks like 03:00-05:00"
            )));
        }
        if let Some(r) = &view.update.repository
            && Url::parse(r).is_err()
        {
            return Err(ConfigRejected::Invalid(format!(
                "update.repository {r:?} is not a URL"
            )));
        }
        *self.view.write().await = view;
        self.wake.notify_one();
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
struct ApplyQuery {
    generation: Option<u64>,
}

async fn post_check(State(a): State<Arc<Agent>>) -> Response {
    match a.check().await {
        Ok(available) => axum::Json(json!({ "available": available })).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn post_apply(State(a): State<Arc<Agent>>, Query(q): Query<ApplyQuery>) -> Response {
    match a.apply(q.generation).await {
        Ok(g) => (StatusCode::ACCEPTED, axum::Json(json!({ "started": g }))).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn post_rollback(State(a): State<Arc<Agent>>) -> Response {
    rollback_response(a.rollback(None).await)
}

async fn post_rollback_to(State(a): State<Arc<Agent>>, UrlPath(n): UrlPath<u64>) -> Response {
    rollback_response(a.rollback(Some(n)).await)
}

fn rollback_response(r: Result<u64, ApplyError>) -> Response {
    match r {
        Ok(g) => (StatusCode::ACCEPTED, axum::Json(json!({ "started": g }))).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn post_pin(State(a): State<Arc<Agent>>, UrlPath(n): UrlPath<u64>) -> Response {
    if n == 0 {
        return (StatusCode::BAD_REQUEST, "generations start at 1\n").into_response();
    }
    match a.pin(Some(n)).await {
        Ok(()) => axum::Json(json!({ "pinned": n })).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

async fn post_unpin(State(a): State<Arc<Agent>>) -> Response {
    match a.pin(None).await {
        Ok(()) => axum::Json(json!({ "pinned": null })).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// The agent's own routes, added to the common control API with `roost_control::router_with`.
pub fn routes() -> Router<Arc<Agent>> {
    Router::new()
        .route("/check", post(post_check))
        .route("/apply", post(post_apply))
        .route("/rollback", post(post_rollback))
        .route("/rollback/{n}", post(post_rollback_to))
        .route("/pin/{n}", post(post_pin))
        .route("/unpin", post(post_unpin))
}

/// Runs the agent: recovery of an interrupted update, the control API and the schedule, until
/// SIGTERM.
pub async fn run(
    view: UpdateView,
    system: SystemSettings,
    state_dir: PathBuf,
) -> Result<(), AgentError> {
    let token = roost_control::Token::load(&view.control.token_file)?;
    let listen = view.control.listen;
    let agent = Agent::new(view, system, state_dir)?;
    if let Err(e) = agent.adopt().await {
        tracing::warn!(error = %e, "cannot ask the host step which system runs");
    }
    let app = roost_control::router_with(
        Arc::clone(&agent),
        token,
        roost_control::Limits::default(),
        routes(),
    );
    let listener = roost_control::bind(listen.into()).await?;
    let recovering = Arc::clone(&agent);
    tokio::spawn(async move {
        if let Err(e) = recovering.recover().await {
            tracing::error!(error = %e, "recovery failed");
        }
        recovering.schedule().await;
    });
    roost_control::serve(listener, app, roost_control::shutdown_signal()).await?;
    Ok(())
}
