//! The settings controller: every change goes validate → save as a new version → push to each
//! daemon whose view changed → wait until each is healthy. If one refuses or turns unhealthy,
//! every daemon that was pushed gets its previous view back and the version is marked failed
//! with the reason, which the UI shows.
//!
//! Changes are serialized (one lock across the whole sequence). A reconcile pass, run at start
//! and every [`RECONCILE_EVERY`], compares the digest each daemon reports on `/health` with the
//! view of the current version and pushes again where they differ: a daemon restarted from the
//! file it was built with (no digest: it runs the built settings' view) gets the settings made
//! in the UI back, and a version left `pending` by a power cut mid-push is finished (or marked
//! failed and rolled back). A daemon whose built view is the current one is left alone.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use roost_config::views::PeerView;
use roost_config::{ConfigErrors, Service, Settings};
use roost_control::config_digest;
use tokio::sync::Mutex;

use crate::peers::{Health, Peers};
use crate::store::{Status, Store, StoreError};

/// How often the reconcile pass runs.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(10);

/// A change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The change was refused before anything was saved or pushed (bad input or invalid
    /// settings); one line per problem.
    #[error("{0}")]
    Invalid(String),
    /// A daemon refused the change or turned unhealthy: every daemon is back on the previous
    /// version.
    #[error("{failure}{}", rollback_note(.rollback_errors))]
    RolledBack {
        /// The version that was tried, now marked failed.
        version: u32,
        /// What failed.
        failure: String,
        /// Daemons that could not be put back (empty when every one was).
        rollback_errors: Vec<String>,
    },
    /// The settings store could not be written; nothing was pushed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

fn rollback_note(errors: &[String]) -> String {
    if errors.is_empty() {
        "; every daemon is back on the previous settings".to_owned()
    } else {
        format!(
            "; putting the previous settings back failed too: {}",
            errors.join("; ")
        )
    }
}

/// A change that every affected daemon took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The new version.
    pub version: u32,
    /// The daemons it was pushed to.
    pub pushed: Vec<Service>,
}

/// What the last reconcile pass saw of one daemon.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PeerStatus {
    /// The daemon.
    #[schema(value_type = String)]
    pub service: Service,
    /// Healthy and running the current settings.
    pub healthy: bool,
    /// Why not, if not.
    pub problem: Option<String>,
}

/// Lines `key.path: message` for settings changed in the UI (line numbers of a generated file
/// mean nothing to the user); `line:col: key.path: message` for a file the user uploaded.
pub fn describe(errors: &ConfigErrors, with_positions: bool) -> String {
    errors
        .diagnostics
        .iter()
        .map(|d| {
            if with_positions {
                d.to_string()
            } else {
                format!("{}: {}", d.path, d.message)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The controller of the web VM.
#[derive(Debug)]
pub struct Controller {
    store: Mutex<Store>,
    current: RwLock<Arc<Settings>>,
    built: Settings,
    peers: Vec<PeerView>,
    client: Peers,
    settle: Duration,
    status: RwLock<Vec<PeerStatus>>,
}

impl Controller {
    /// A controller over `store`, pushing to `peers`, whose daemons were started with views of
    /// `built` (the settings the router was built with); after a push it waits up to `settle`
    /// for each daemon to report healthy.
    pub fn new(
        store: Store,
        built: Settings,
        peers: Vec<PeerView>,
        client: Peers,
        settle: Duration,
    ) -> Result<Self, StoreError> {
        let number = store.current().map_or(1, |v| v.number);
        let settings = store.load(number)?;
        Ok(Self {
            store: Mutex::new(store),
            current: RwLock::new(Arc::new(settings)),
            built,
            peers,
            client,
            settle,
            status: RwLock::new(Vec::new()),
        })
    }

    /// The settings in force.
    pub fn current(&self) -> Arc<Settings> {
        match self.current.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The daemon `service`'s control API, if the web VM has a link to it.
    pub fn peer(&self, service: Service) -> Option<&PeerView> {
        self.peers.iter().find(|p| p.service == service)
    }

    /// The daemons this router runs: the host provisions a link token only for the VMs it
    /// declares, so a peer without one (e.g. no update VM) is not deployed, and neither pushed
    /// to nor reported as down.
    fn deployed(&self) -> impl Iterator<Item = &PeerView> {
        self.peers.iter().filter(|p| p.token_file.exists())
    }

    /// The client the controller calls daemons with.
    pub fn client(&self) -> &Peers {
        &self.client
    }

    /// What the last reconcile pass saw.
    pub fn peer_status(&self) -> Vec<PeerStatus> {
        self.status.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// Every version, oldest first.
    pub async fn versions(&self) -> Vec<crate::store::VersionInfo> {
        self.store.lock().await.versions().to_vec()
    }

    /// The number of the version in force (the newest not failed).
    pub async fn current_version(&self) -> Option<u32> {
        self.store.lock().await.current().map(|v| v.number)
    }

    /// The settings of version `number`.
    pub async fn version(&self, number: u32) -> Result<Settings, StoreError> {
        self.store.lock().await.load(number)
    }

    /// Applies `edit` to a copy of the current settings and, if the result validates, saves
    /// and pushes it.
    pub async fn change(
        &self,
        summary: &str,
        edit: impl FnOnce(&mut Settings) -> Result<(), String>,
    ) -> Result<Applied, ChangeError> {
        let mut store = self.store.lock().await;
        let mut next = (*self.current()).clone();
        edit(&mut next).map_err(ChangeError::Invalid)?;
        // Validation sees exactly what will be saved: the rendered text, read back.
        let next = Settings::from_toml("settings", &next.to_toml())
            .map_err(|e| ChangeError::Invalid(describe(&e, false)))?;
        self.commit(&mut store, next, summary).await
    }

    /// Replaces the settings by `next` (a restored backup), already validated by the caller.
    /// The administrator account is kept: a restore never changes who may log in (an old
    /// backup could predate the password, which would open the first-run page to the LAN).
    pub async fn replace(&self, summary: &str, mut next: Settings) -> Result<Applied, ChangeError> {
        let mut store = self.store.lock().await;
        next.web.admin = self.current().web.admin.clone();
        self.commit(&mut store, next, summary).await
    }

    /// Saves version `n`'s settings again as the newest version and pushes them, keeping the
    /// administrator account (see [`Self::replace`]).
    pub async fn restore(&self, n: u32) -> Result<Applied, ChangeError> {
        let mut store = self.store.lock().await;
        let mut next = store.load(n)?;
        next.web.admin = self.current().web.admin.clone();
        self.commit(&mut store, next, &format!("restored version {n}"))
            .await
    }

    async fn commit(
        &self,
        store: &mut Store,
        next: Settings,
        summary: &str,
    ) -> Result<Applied, ChangeError> {
        let previous = self.current();
        if next == *previous {
            // Nothing changes: no version, no push.
            return Ok(Applied {
                version: store.current().map_or(1, |v| v.number),
                pushed: Vec::new(),
            });
        }
        let affected: Vec<PeerView> = self
            .deployed()
            .filter(|p| previous.render_view(p.service) != next.render_view(p.service))
            .cloned()
            .collect();
        let version = store.save(&next, summary)?;
        match self.push_all(&affected, &next).await {
            Ok(()) => {
                store.mark(version, Status::Applied)?;
                self.set_current(next);
                tracing::info!(version, summary, "settings applied");
                Ok(Applied {
                    version,
                    pushed: affected.iter().map(|p| p.service).collect(),
                })
            }
            Err((failure, pushed)) => {
                tracing::warn!(version, %failure, "settings change failed, rolling back");
                let rollback_errors = self.push_back(&pushed, &previous).await;
                store.mark(version, Status::Failed(failure.clone()))?;
                Err(ChangeError::RolledBack {
                    version,
                    failure,
                    rollback_errors,
                })
            }
        }
    }

    fn set_current(&self, next: Settings) {
        match self.current.write() {
            Ok(mut c) => *c = Arc::new(next),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(next),
        }
    }

    /// Pushes `settings` to each of `peers`, then waits for each to be healthy. On failure, the
    /// reason and the daemons that may hold the new view (every one pushed to, the failing one
    /// included: a timeout may have applied it).
    async fn push_all(
        &self,
        peers: &[PeerView],
        settings: &Settings,
    ) -> Result<(), (String, Vec<PeerView>)> {
        for (i, peer) in peers.iter().enumerate() {
            if let Err(e) = self
                .client
                .put_config(peer, &settings.render_view(peer.service))
                .await
            {
                return Err((e, peers[..=i].to_vec()));
            }
        }
        for peer in peers {
            if let Err(e) = self.wait_healthy(peer).await {
                return Err((e, peers.to_vec()));
            }
        }
        Ok(())
    }

    async fn wait_healthy(&self, peer: &PeerView) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + self.settle;
        loop {
            let health = self.client.health(peer).await;
            match health.result {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(format!("after the change, {e}"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Puts `settings` back on `peers`; what could not be put back.
    async fn push_back(&self, peers: &[PeerView], settings: &Settings) -> Vec<String> {
        let mut errors = Vec::new();
        for peer in peers {
            if let Err(e) = self
                .client
                .put_config(peer, &settings.render_view(peer.service))
                .await
            {
                tracing::error!(service = peer.service.name(), error = %e, "rollback failed");
                errors.push(e);
            }
        }
        errors
    }

    /// Asks every deployed daemon but `except` for its `/health` now; the failures, if any, as
    /// `service: why`. This is what the update agent's health check after a switch gets (the
    /// update VM reaches no other daemon).
    pub async fn peers_health(&self, except: &[Service]) -> Result<(), String> {
        let asked = self
            .deployed()
            .filter(|p| !except.contains(&p.service))
            .map(|p| self.client.health(p));
        let failures: Vec<String> = futures::future::join_all(asked)
            .await
            .into_iter()
            .filter_map(|h| h.result.err())
            .collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }

    /// One reconcile pass (see the module doc); returns what it saw of each daemon.
    pub async fn reconcile(&self) -> Vec<PeerStatus> {
        let mut store = self.store.lock().await;
        let current = self.current();
        let pending = store
            .current()
            .filter(|v| v.status == Status::Pending)
            .map(|v| v.number);
        let mut statuses = Vec::with_capacity(self.peers.len());
        let mut refused = None;
        // Asked all at once: an unreachable daemon costs one timeout, not one each, while the
        // store is locked against changes.
        let peers: Vec<&PeerView> = self.deployed().collect();
        let healths = futures::future::join_all(peers.iter().map(|p| self.client.health(p))).await;
        for (peer, health) in peers.into_iter().zip(healths) {
            let view = current.render_view(peer.service);
            let Health { result, digest } = health;
            let problem = match result {
                Err(e) => Some(e),
                Ok(()) if digest.as_deref() == Some(config_digest(&view).as_str()) => None,
                // Never pushed since it started: it runs its built view.
                Ok(()) if digest.is_none() && self.built.render_view(peer.service) == view => None,
                Ok(()) => match self.client.put_config(peer, &view).await {
                    Ok(()) => {
                        tracing::info!(service = peer.service.name(), "pushed current settings");
                        None
                    }
                    Err(e) => {
                        refused.get_or_insert_with(|| e.clone());
                        Some(e)
                    }
                },
            };
            statuses.push(PeerStatus {
                service: peer.service,
                healthy: problem.is_none(),
                problem,
            });
        }
        if let Some(number) = pending {
            let outcome = match refused {
                None if statuses.iter().all(|s| s.healthy) => Some(Status::Applied),
                None => None,
                Some(failure) => Some(Status::Failed(failure)),
            };
            if let Some(status) = outcome {
                let failed = matches!(status, Status::Failed(_));
                if let Err(e) = store.mark(number, status) {
                    tracing::error!(error = %e, "cannot record the outcome of version {number}");
                } else if failed {
                    // The previous version becomes current; the next pass pushes it.
                    if let Some(previous) = store.current().map(|v| v.number)
                        && let Ok(settings) = store.load(previous)
                    {
                        self.set_current(settings);
                    }
                }
            }
        }
        if let Ok(mut s) = self.status.write() {
            s.clone_from(&statuses);
        }
        statuses
    }
}
