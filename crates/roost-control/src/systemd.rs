//! The daemon side of systemd's `Type=notify` and `WatchdogSec=` (sd_notify(3)): `READY=1` once
//! the control API accepts connections (every daemon binds its service sockets and applies its
//! view before that), `WATCHDOG=1` at half the watchdog interval while the runtime runs, and
//! `STOPPING=1` on shutdown. Without `$NOTIFY_SOCKET` (the lab, tests, a shell) all do nothing.

use std::net::SocketAddr;
use std::time::Duration;

use sd_notify::NotifyState;

/// Tells the service manager the daemon serves, with its control address as the unit's status.
pub fn ready(control: SocketAddr) {
    let status = format!("serving; control API on {control}");
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// Tells the service manager the daemon is stopping.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// When the unit has a watchdog (`$WATCHDOG_USEC`, for this process), pings it at half its
/// interval from a task of this runtime, so a runtime that stops scheduling gets the daemon
/// restarted. The caller aborts the task when it stops serving.
pub fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let interval = sd_notify::watchdog_enabled()?;
    let period = (interval / 2).max(Duration::from_millis(10));
    tracing::info!(?interval, "systemd watchdog: pinging every {period:?}");
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            send(&[NotifyState::Watchdog]);
        }
    }))
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}
