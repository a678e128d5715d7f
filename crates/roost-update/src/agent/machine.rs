//! The update as a sans-IO state machine over the durable [`Journal`].
//!
//! `fetch → install → switch → restart → health → commit`, or `rollback` from any step after
//! fetch. The driver journals the state before it performs a step (write-ahead), so after a
//! crash [`Journal::recover`] knows the last step that may have been (partly) done:
//! an interrupted fetch resumes (partial downloads are kept); an interrupted install, switch,
//! restart or health check is cleaned up by a rollback to the generation that was running, and
//! the update is tried again at the next check — except after [`MAX_INTERRUPTIONS`], when the
//! generation is recorded as failed. A generation that failed is never chosen again.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::manifest::Manifest;
use crate::nix::StorePath;

/// How often an update of one generation may be interrupted after install before the
/// generation counts as failed (a generation that kills the agent must not loop).
pub const MAX_INTERRUPTIONS: u32 = 2;

/// History entries kept.
const HISTORY: usize = 50;

/// A generation the system can run: its number and its toplevel. Generation 0 is a system the
/// agent found running but did not install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gen {
    /// The generation number.
    pub generation: u64,
    /// `config.system.build.toplevel`.
    pub toplevel: StorePath,
}

/// A step of an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Download the missing store paths, check them, import them.
    Fetch,
    /// Add the generation to the system profile.
    Install,
    /// Activate it (`switch-to-configuration switch`).
    Switch,
    /// Restart the service VMs whose closure changed.
    Restart,
    /// Health checks within the deadline.
    Health,
    /// Back to the previous generation (profile, activation, the same VMs).
    Rollback,
}

impl Phase {
    /// The lowercase name (also the crash-hook name).
    pub fn name(self) -> &'static str {
        match self {
            Self::Fetch => "fetch",
            Self::Install => "install",
            Self::Switch => "switch",
            Self::Restart => "restart",
            Self::Health => "health",
            Self::Rollback => "rollback",
        }
    }
}

/// The update in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// What is being installed.
    pub target: Gen,
    /// What was running before (rolled back to on failure).
    pub previous: Option<Gen>,
    /// The step to do (or being done).
    pub phase: Phase,
    /// Service VMs to restart (their closure differs from the previous generation's).
    pub restart: Vec<String>,
    /// Why a rollback is under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether the rollback marks the target as failed (false after an interruption).
    #[serde(default)]
    pub fail_target: bool,
    /// When the update started.
    pub started: Timestamp,
}

/// One finished update, successful or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When it ended.
    pub at: Timestamp,
    /// The generation.
    pub generation: u64,
    /// `installed`, `rolled back`, `fetch failed`, `interrupted`.
    pub outcome: String,
    /// Why, for failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The last failure, as `/state` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// When.
    pub at: Timestamp,
    /// Which generation.
    pub generation: u64,
    /// In which step.
    pub phase: Phase,
    /// Why.
    pub reason: String,
}

/// Everything the agent must remember across crashes, in `STATE_DIRECTORY/journal.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    /// The generation running (committed).
    pub current: Option<Gen>,
    /// The update in progress.
    pub pending: Option<Pending>,
    /// Generations that failed, with why; never tried again.
    pub failed: BTreeMap<u64, String>,
    /// Interruptions after install, per generation.
    pub interrupted: BTreeMap<u64, u32>,
    /// Generations installed at some point (for `rollback N`), with their toplevel.
    pub installed: BTreeMap<u64, StorePath>,
    /// Pin set through the control API (`roostctl generations pin N`); wins over the
    /// settings' `update.pinned_generation`.
    pub pinned: Option<u64>,
    /// Finished updates, newest last.
    pub history: Vec<HistoryEntry>,
    /// The last failure.
    pub last_failure: Option<Failure>,
}

/// What the driver does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Perform this step of the pending update.
    Do(Phase),
    /// Nothing to do.
    Idle,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded.
    Done,
    /// It failed, and why.
    Failed(String),
}

/// Why an update was not started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Another update is under way.
    #[error("an update of generation {0} is already under way")]
    Busy(u64),
    /// The generation failed before.
    #[error("generation {generation} failed before ({reason}); it is not tried again")]
    Failed {
        /// The generation.
        generation: u64,
        /// Why it failed.
        reason: String,
    },
    /// Already running it.
    #[error("generation {0} is already running")]
    Current(u64),
}

impl Journal {
    /// The pin in force: the local one, else the settings'.
    pub fn effective_pin(&self, settings_pin: Option<u64>) -> Option<u64> {
        self.pinned.or(settings_pin)
    }

    /// Installed generations the garbage collector may drop: every one but the `keep` newest,
    /// the running one, the one before it (where a rollback goes), the pinned one, and any an
    /// update under way starts from or goes to. Oldest first.
    pub fn collectable(&self, keep: usize, settings_pin: Option<u64>) -> Vec<u64> {
        let current = self.current.as_ref().map(|c| c.generation);
        let before_current =
            current.and_then(|c| self.installed.keys().copied().filter(|g| *g < c).max());
        let pending: Vec<u64> = self
            .pending
            .iter()
            .flat_map(|p| {
                [
                    Some(p.target.generation),
                    p.previous.as_ref().map(|g| g.generation),
                ]
            })
            .flatten()
            .collect();
        let newest: Vec<u64> = self.installed.keys().rev().take(keep).copied().collect();
        self.installed
            .keys()
            .copied()
            .filter(|g| {
                Some(*g) != current
                    && Some(*g) != before_current
                    && Some(*g) != self.effective_pin(settings_pin)
                    && !pending.contains(g)
                    && !newest.contains(g)
            })
            .collect()
    }

    /// Forgets generations the garbage collector dropped.
    pub fn forget(&mut self, generations: &[u64]) {
        for g in generations {
            self.installed.remove(g);
            self.interrupted.remove(g);
        }
    }

    /// Starts an update to `target`.
    pub fn begin(
        &mut self,
        target: Gen,
        restart: Vec<String>,
        now: Timestamp,
    ) -> Result<Next, Refused> {
        if let Some(p) = &self.pending {
            return Err(Refused::Busy(p.target.generation));
        }
        if let Some(reason) = self.failed.get(&target.generation) {
            return Err(Refused::Failed {
                generation: target.generation,
                reason: reason.clone(),
            });
        }
        if self.current.as_ref() == Some(&target) {
            return Err(Refused::Current(target.generation));
        }
        self.pending = Some(Pending {
            target,
            previous: self.current.clone(),
            phase: Phase::Fetch,
            restart,
            reason: None,
            fail_target: false,
            started: now,
        });
        Ok(Next::Do(Phase::Fetch))
    }

    fn finish(&mut self, p: &Pending, outcome: &str, reason: Option<String>, now: Timestamp) {
        self.history.push(HistoryEntry {
            at: now,
            generation: p.target.generation,
            outcome: outcome.to_owned(),
            reason,
        });
        let excess = self.history.len().saturating_sub(HISTORY);
        self.history.drain(..excess);
        self.pending = None;
    }

    fn failure(&mut self, p: &Pending, phase: Phase, reason: &str, now: Timestamp) {
        self.last_failure = Some(Failure {
            at: now,
            generation: p.target.generation,
            phase,
            reason: reason.to_owned(),
        });
    }

    /// Records how the current step ended and says what comes next.
    pub fn advance(&mut self, outcome: Outcome, now: Timestamp) -> Next {
        let Some(mut p) = self.pending.clone() else {
            return Next::Idle;
        };
        let phase = p.phase;
        match (phase, outcome) {
            (Phase::Fetch, Outcome::Failed(reason)) => {
                // Not the generation's fault necessarily (network, mirror): try again later.
                self.failure(&p, phase, &reason, now);
                self.finish(&p, "fetch failed", Some(reason), now);
                Next::Idle
            }
            (Phase::Rollback, Outcome::Failed(reason)) => {
                // Stay in rollback; the next run (or check) tries again.
                self.failure(&p, phase, &reason, now);
                Next::Idle
            }
            (_, Outcome::Failed(reason)) => {
                self.failure(&p, phase, &reason, now);
                p.reason = Some(format!("{}: {reason}", phase.name()));
                p.fail_target = true;
                p.phase = Phase::Rollback;
                self.pending = Some(p);
                Next::Do(Phase::Rollback)
            }
            (Phase::Health, Outcome::Done) => {
                self.installed
                    .insert(p.target.generation, p.target.toplevel.clone());
                self.current = Some(p.target.clone());
                self.interrupted.remove(&p.target.generation);
                self.finish(&p, "installed", None, now);
                Next::Idle
            }
            (Phase::Rollback, Outcome::Done) => {
                let reason = p.reason.clone().unwrap_or_default();
                if p.fail_target {
                    self.failed.insert(p.target.generation, reason.clone());
                    self.finish(&p, "rolled back", Some(reason), now);
                } else {
                    self.finish(&p, "interrupted", Some(reason), now);
                }
                self.current = p.previous.clone();
                Next::Idle
            }
            (step, Outcome::Done) => {
                p.phase = match step {
                    Phase::Fetch => Phase::Install,
                    Phase::Install => Phase::Switch,
                    Phase::Switch => Phase::Restart,
                    _ => Phase::Health,
                };
                let next = p.phase;
                self.pending = Some(p);
                Next::Do(next)
            }
        }
    }

    /// After a restart of the agent: what to do with an update it found under way.
    pub fn recover(&mut self, now: Timestamp) -> Next {
        let Some(mut p) = self.pending.clone() else {
            return Next::Idle;
        };
        match p.phase {
            Phase::Fetch => Next::Do(Phase::Fetch),
            Phase::Rollback => Next::Do(Phase::Rollback),
            phase => {
                let count = self.interrupted.entry(p.target.generation).or_default();
                *count += 1;
                let count = *count;
                let reason = format!("agent interrupted during {}", phase.name());
                self.failure(&p, phase, &reason, now);
                p.fail_target = count >= MAX_INTERRUPTIONS;
                p.reason = Some(if p.fail_target {
                    format!("{reason} ({count} times)")
                } else {
                    reason
                });
                p.phase = Phase::Rollback;
                self.pending = Some(p);
                Next::Do(Phase::Rollback)
            }
        }
    }
}

/// The generation to install, if any: the pinned one when a pin is set (never passed), else
/// the newest published one newer than what runs and not failed.
pub fn choose(
    available: &[u64],
    current: Option<u64>,
    pinned: Option<u64>,
    failed: &BTreeMap<u64, String>,
) -> Option<u64> {
    if let Some(pin) = pinned {
        return (available.contains(&pin) && current != Some(pin) && !failed.contains_key(&pin))
            .then_some(pin);
    }
    available
        .iter()
        .copied()
        .filter(|g| current.is_none_or(|c| *g > c) && !failed.contains_key(g))
        .max()
}

/// Service VMs to restart: those whose closure differs from the previous manifest's (all of
/// them without one). Services that disappeared are stopped by the activation, not here.
pub fn changed_services(previous: Option<&Manifest>, next: &Manifest) -> Vec<String> {
    let empty = BTreeSet::new();
    next.services
        .iter()
        .filter(|(name, paths)| {
            previous.is_none_or(|p| p.services.get(*name).unwrap_or(&empty) != *paths)
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// Minutes from `now` (minutes since local midnight) until the next check: a point of the
/// window `(start, end)` (minutes, may wrap midnight) offset by `jitter` (0..1) of its length.
/// Without a window, `interval` minutes scaled by 0.9 to 1.1 with the jitter.
pub fn minutes_until_next(now: u16, window: Option<(u16, u16)>, jitter: f64, interval: u32) -> u32 {
    let jitter = jitter.clamp(0.0, 1.0);
    let Some((start, end)) = window else {
        return ((f64::from(interval) * (0.9 + 0.2 * jitter)).round() as u32).max(1);
    };
    let day = 24 * 60;
    let len = (u32::from(end) + day - u32::from(start)) % day;
    let at = (u32::from(start) + (f64::from(len) * jitter) as u32) % day;
    let wait = (at + day - u32::from(now)) % day;
    if wait == 0 { day } else { wait }
}

/// Whether `now` (minutes since local midnight) lies in the window.
pub fn in_window(now: u16, window: (u16, u16)) -> bool {
    let (start, end) = window;
    if start < end {
        (start..end).contains(&now)
    } else {
        now >= start || now < end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(name: &str) -> StorePath {
        format!("/nix/store/{}-{name}", "0".repeat(32))
            .parse()
            .unwrap()
    }

    fn g(n: u64) -> Gen {
        Gen {
            generation: n,
            toplevel: sp(&format!("toplevel-{n}")),
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn run(j: &mut Journal, steps: &[Outcome]) -> Next {
        let mut next = Next::Idle;
        for o in steps {
            next = j.advance(o.clone(), at(1));
        }
        next
    }

    #[test]
    fn successful_update_walks_every_step_then_commits() {
        let mut j = Journal {
            current: Some(g(1)),
            ..Journal::default()
        };
        assert_eq!(
            j.begin(g(2), vec!["dhcp".into()], at(0)),
            Ok(Next::Do(Phase::Fetch))
        );
        let mut phases = vec![];
        let mut next = Next::Do(Phase::Fetch);
        while let Next::Do(p) = next {
            phases.push(p);
            next = j.advance(Outcome::Done, at(1));
        }
        use Phase::*;
        assert_eq!(phases, [Fetch, Install, Switch, Restart, Health]);
        assert_eq!(j.current, Some(g(2)));
        assert!(j.pending.is_none());
        assert_eq!(j.installed.get(&2), Some(&g(2).toplevel));
        assert_eq!(j.history.last().unwrap().outcome, "installed");
    }

    #[test]
    fn failed_health_check_rolls_back_and_is_never_tried_again() {
        let mut j = Journal {
            current: Some(g(1)),
            ..Journal::default()
        };
        j.begin(g(2), vec![], at(0)).unwrap();
        let next = run(
            &mut j,
            &[
                Outcome::Done,
                Outcome::Done,
                Outcome::Done,
                Outcome::Done,
                Outcome::Failed("dns: no answer".into()),
            ],
        );
        assert_eq!(next, Next::Do(Phase::Rollback));
        assert_eq!(j.advance(Outcome::Done, at(2)), Next::Idle);
        assert_eq!(j.current, Some(g(1)));
        assert_eq!(j.failed.get(&2).unwrap(), "health: dns: no answer");
        assert!(matches!(
            j.begin(g(2), vec![], at(3)),
            Err(Refused::Failed { generation: 2, .. })
        ));
        assert_eq!(choose(&[1, 2], Some(1), None, &j.failed), None);
        assert_eq!(j.last_failure.as_ref().unwrap().phase, Phase::Health);
    }

    #[test]
    fn failed_fetch_leaves_the_generation_eligible() {
        let mut j = Journal::default();
        j.begin(g(1), vec![], at(0)).unwrap();
        assert_eq!(
            j.advance(Outcome::Failed("connection refused".into()), at(1)),
            Next::Idle
        );
        assert!(j.failed.is_empty() && j.pending.is_none());
        assert!(j.begin(g(1), vec![], at(2)).is_ok());
    }

    #[test]
    fn interrupted_fetch_resumes_and_interrupted_switch_rolls_back() {
        let mut j = Journal {
            current: Some(g(1)),
            ..Journal::default()
        };
        j.begin(g(2), vec![], at(0)).unwrap();
        assert_eq!(j.recover(at(1)), Next::Do(Phase::Fetch));
        run(&mut j, &[Outcome::Done, Outcome::Done]);
        assert_eq!(j.pending.as_ref().unwrap().phase, Phase::Switch);
        assert_eq!(j.recover(at(2)), Next::Do(Phase::Rollback));
        // An interrupted rollback is resumed.
        assert_eq!(j.recover(at(3)), Next::Do(Phase::Rollback));
        j.advance(Outcome::Done, at(4));
        assert_eq!(j.current, Some(g(1)));
        assert!(j.failed.is_empty(), "one interruption is not a failure");
        assert_eq!(j.history.last().unwrap().outcome, "interrupted");
    }

    #[test]
    fn second_interruption_after_install_marks_the_generation_failed() {
        let mut j = Journal {
            current: Some(g(1)),
            ..Journal::default()
        };
        for _ in 0..MAX_INTERRUPTIONS {
            j.begin(g(2), vec![], at(0)).unwrap();
            run(&mut j, &[Outcome::Done, Outcome::Done, Outcome::Done]);
            assert_eq!(j.recover(at(1)), Next::Do(Phase::Rollback));
            j.advance(Outcome::Done, at(2));
        }
        assert!(j.failed.contains_key(&2));
    }

    #[test]
    fn failed_rollback_stays_pending() {
        let mut j = Journal {
            current: Some(g(1)),
            ..Journal::default()
        };
        j.begin(g(2), vec![], at(0)).unwrap();
        run(&mut j, &[Outcome::Done, Outcome::Failed("nix-env".into())]);
        assert_eq!(
            j.advance(Outcome::Failed("disk full".into()), at(3)),
            Next::Idle
        );
        assert_eq!(j.pending.as_ref().unwrap().phase, Phase::Rollback);
        assert!(matches!(
            j.begin(g(3), vec![], at(4)),
            Err(Refused::Busy(2))
        ));
    }

    #[test]
    fn garbage_collection_keeps_the_newest_the_running_its_predecessor_and_the_pinned() {
        let mut j = Journal::default();
        for n in 1..=6 {
            j.installed.insert(n, g(n).toplevel);
        }
        // Running 4 (rolled back from 5 and 6, say), 2 pinned in the settings.
        j.current = Some(g(4));
        assert_eq!(j.collectable(2, Some(2)), vec![1]);
        // Without the pin, 2 goes too; 3 stays as 4's predecessor, 5 and 6 as the newest.
        assert_eq!(j.collectable(2, None), vec![1, 2]);
        // A local pin wins over the settings'.
        j.pinned = Some(1);
        assert_eq!(j.collectable(2, Some(2)), vec![2]);
        // An update under way keeps where it goes and where it comes from.
        j.pinned = None;
        j.begin(g(7), vec![], at(0)).unwrap();
        j.installed.insert(7, g(7).toplevel);
        assert_eq!(j.collectable(1, None), vec![1, 2, 5, 6]);
        j.forget(&[1, 2]);
        assert_eq!(
            j.installed.keys().copied().collect::<Vec<_>>(),
            vec![3, 4, 5, 6, 7]
        );
    }

    #[test]
    fn pinned_generation_is_never_passed() {
        let none = BTreeMap::new();
        assert_eq!(choose(&[1, 2, 3, 4], Some(2), Some(3), &none), Some(3));
        assert_eq!(choose(&[1, 2, 3, 4], Some(3), Some(3), &none), None);
        assert_eq!(choose(&[1, 2, 3, 4], Some(4), Some(3), &none), Some(3));
        assert_eq!(choose(&[1, 2, 4], Some(2), Some(3), &none), None);
        assert_eq!(choose(&[1, 2, 3, 4], Some(2), None, &none), Some(4));
        assert_eq!(choose(&[1, 2], Some(2), None, &none), None);
        let failed = [(4, "x".to_owned())].into();
        assert_eq!(choose(&[1, 2, 3, 4], Some(2), None, &failed), Some(3));
    }

    #[test]
    fn next_check_falls_inside_the_window() {
        // 03:00-05:00, now 12:00: between 15 and 17 hours from now.
        for jitter in [0.0, 0.3, 0.99] {
            let wait = minutes_until_next(720, Some((180, 300)), jitter, 360);
            let at = (720 + wait) % 1440;
            assert!(in_window(at as u16, (180, 300)), "{jitter}: {at}");
        }
        // A window across midnight.
        let wait = minutes_until_next(1380, Some((1410, 30)), 0.9, 360);
        assert!(in_window(((1380 + wait) % 1440) as u16, (1410, 30)));
        assert!(in_window(10, (1410, 30)) && !in_window(40, (1410, 30)));
        // No window: the interval, jittered by up to 10 %.
        let w = minutes_until_next(0, None, 0.5, 360);
        assert_eq!(w, 360);
        assert!((324..=396).contains(&minutes_until_next(0, None, 1.0, 360)));
    }
}
