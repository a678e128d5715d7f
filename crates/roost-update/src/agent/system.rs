//! The agent's platform settings (`/etc/roost/update-system.toml`, written by the update VM's
//! Nix module): the pinned root, the spool shared with the host step, which extra health
//! checks run and when. Apart from the settings view because none of it comes from
//! `roost.toml`. The store, the profile and VM restarts are the host step's
//! (`crate::host::HostSettings`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::settings_file::{self, SettingsFileError};

/// One health check command: healthy when it exits 0 within the deadline.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckCommand {
    /// Name in `/state` and in the rollback reason (`dns`, `dhcp`, `wan`).
    pub name: String,
    /// Program and arguments.
    pub command: Vec<String>,
}

/// Platform settings of the agent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SystemSettings {
    /// The pinned TUF root shipped with the system.
    pub root: PathBuf,
    /// The directory shared with the host step (`crate::spool`).
    pub spool: PathBuf,
    /// Longest wait for the host step's answer to one request (an import of a large closure
    /// on a slow SD card takes minutes).
    pub host_timeout_secs: u64,
    /// Extra health checks (a DNS answer, a DHCP answer, WAN reachable).
    pub checks: Vec<CheckCommand>,
    /// Every check must pass within this many seconds after the switch.
    pub health_timeout_secs: u64,
    /// Without an update window: check this often (minutes, jittered by ±10 %).
    pub check_interval_minutes: u32,
    /// Installed generations kept after an update, newest first (at least 2); older ones are
    /// garbage-collected, except the running one, the one before it and a pinned one.
    pub keep_generations: usize,
}

impl Default for SystemSettings {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/etc/roost/update-root.json"),
            spool: PathBuf::from("/var/lib/roost/spool"),
            host_timeout_secs: 1800,
            checks: Vec::new(),
            health_timeout_secs: 120,
            check_interval_minutes: 360,
            keep_generations: 3,
        }
    }
}

impl SystemSettings {
    /// Parses the file's text; `origin` names it in errors.
    pub fn from_toml(origin: &Path, text: &str) -> Result<Self, SettingsFileError> {
        let s: Self = settings_file::parse(origin, text)?;
        if s.keep_generations < 2 {
            return Err(SettingsFileError::invalid(
                origin,
                "keep_generations: at least 2 (the running one and the one to roll back to)",
            ));
        }
        if let Some(c) = s.checks.iter().find(|c| c.command.is_empty()) {
            return Err(SettingsFileError::invalid(
                origin,
                format!("checks: {} has an empty command", c.name),
            ));
        }
        Ok(s)
    }

    /// Reads the file; a missing file means the defaults.
    pub fn load(path: &Path) -> Result<Self, SettingsFileError> {
        match settings_file::read(path)? {
            Some(text) => Self::from_toml(path, &text),
            None => Ok(Self::default()),
        }
    }

    /// The wait for one answer of the host step.
    pub fn host_timeout(&self) -> Duration {
        Duration::from_secs(self.host_timeout_secs)
    }

    /// The health deadline.
    pub fn health_timeout(&self) -> Duration {
        Duration::from_secs(self.health_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_file_defaults_to_the_real_system_and_rejects_unknown_keys() {
        let s = SystemSettings::from_toml(Path::new("s.toml"), "").unwrap();
        assert_eq!(s.spool, PathBuf::from("/var/lib/roost/spool"));
        // The store and the profile are the host step's, not the VM's.
        let err = SystemSettings::from_toml(Path::new("s.toml"), "profile = \"/x\"\n").unwrap_err();
        assert!(err.to_string().contains("profile"), "{err}");
        let s = SystemSettings::from_toml(
            Path::new("s.toml"),
            "spool = \"/tmp/r\"\n[[checks]]\nname = \"dns\"\ncommand = [\"true\"]\n",
        )
        .unwrap();
        assert_eq!(s.checks[0].name, "dns");
    }
}
