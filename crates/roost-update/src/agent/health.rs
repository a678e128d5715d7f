//! Health checks after a switch: the peers' health (with the link's token: the web VM's
//! `/peers/health`, which asks every other daemon, or a peer's own `/health`) and the
//! configured commands (a DNS answer, a DHCP answer, WAN reachable), all passing together before
//! the deadline, or the agent rolls back.

use std::time::Duration;

use roost_config::views::PeerView;
use tokio::process::Command;
use tokio::time::Instant;

use super::system::CheckCommand;

/// What the health step checks.
#[derive(Debug, Clone)]
pub struct Checks {
    /// Daemons whose `/health` must answer 200.
    pub peers: Vec<PeerView>,
    /// Commands that must exit 0.
    pub commands: Vec<CheckCommand>,
    /// Deadline for all of them together.
    pub timeout: Duration,
}

/// Runs one round of every check; the failures, as `name: why`.
async fn round(http: &reqwest::Client, checks: &Checks, per_try: Duration) -> Vec<String> {
    let mut failures = Vec::new();
    for peer in &checks.peers {
        let name = peer.service.name();
        let token = match std::fs::read_to_string(&peer.token_file) {
            Ok(t) => t.trim().to_owned(),
            Err(e) => {
                failures.push(format!("{name}: token {}: {e}", peer.token_file.display()));
                continue;
            }
        };
        // The web VM answers for every daemon the update VM cannot reach itself.
        let path = if peer.service == roost_config::Service::Web {
            "/peers/health"
        } else {
            "/health"
        };
        let url = format!("{}{path}", peer.url.trim_end_matches('/'));
        match http
            .get(&url)
            .bearer_auth(token)
            .timeout(per_try)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                failures.push(format!("{name}: {path} {status} {}", body.trim()));
            }
            Err(e) => failures.push(format!("{name}: {path}: {e}")),
        }
    }
    for check in &checks.commands {
        let Some((program, args)) = check.command.split_first() else {
            continue;
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        match tokio::time::timeout(per_try, cmd.output()).await {
            Ok(Ok(out)) if out.status.success() => {}
            Ok(Ok(out)) => failures.push(format!(
                "{}: {} {}",
                check.name,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Ok(Err(e)) => failures.push(format!("{}: {e}", check.name)),
            Err(_) => failures.push(format!("{}: no answer within {per_try:?}", check.name)),
        }
    }
    failures
}

/// Repeats the checks until one round passes entirely or the deadline passes; `Err` holds the
/// last round's failures.
pub async fn wait_healthy(http: &reqwest::Client, checks: &Checks) -> Result<(), String> {
    let deadline = Instant::now() + checks.timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let per_try = left.clamp(Duration::from_millis(100), Duration::from_secs(5));
        let failures = round(http, checks, per_try).await;
        if failures.is_empty() {
            return Ok(());
        }
        if Instant::now() + Duration::from_millis(250) >= deadline {
            return Err(format!(
                "not healthy within {:?}: {}",
                checks.timeout,
                failures.join("; ")
            ));
        }
        tracing::debug!(?failures, "not healthy yet");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
