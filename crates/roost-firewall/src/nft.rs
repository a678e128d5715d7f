//! The edge to nftables: apply a compiled ruleset in one `nft -f` transaction, check one with
//! `nft -c`, and read the named counters. The script goes in on stdin, so nothing is left on disk.

use std::process::Stdio;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::compile::{Ruleset, TABLE};

/// Running `nft` failed.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// `nft` could not be started or talked to.
    #[error("cannot run nft: {0}")]
    Run(#[source] std::io::Error),
    /// `nft` refused the ruleset; the previous one is still active.
    #[error("nft refused the ruleset (previous ruleset kept): {0}")]
    Refused(String),
    /// `nft -j` printed something that is not the expected JSON.
    #[error("cannot read nft's json output: {0}")]
    Json(#[source] serde_json::Error),
}

async fn nft(args: &[&str], stdin: &str) -> Result<String, NftError> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(NftError::Run)?;
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.as_bytes())
            .await
            .map_err(NftError::Run)?;
        // Dropping `input` closes nft's stdin.
    }
    let out = child.wait_with_output().await.map_err(NftError::Run)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        Err(NftError::Refused(if err.is_empty() {
            format!("nft exited with {}", out.status)
        } else {
            err
        }))
    }
}

/// Applies `ruleset` atomically: either all of it replaces `table inet roost`, or nothing changes.
pub async fn apply(ruleset: &Ruleset) -> Result<(), NftError> {
    nft(&["-f", "-"], ruleset.text()).await.map(drop)
}

/// Checks `ruleset` with the kernel without applying it (`nft -c`).
pub async fn check(ruleset: &Ruleset) -> Result<(), NftError> {
    nft(&["-c", "-f", "-"], ruleset.text()).await.map(drop)
}

/// One named counter.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Counter {
    /// Its name, e.g. `zone_lan_in`.
    pub name: String,
    /// Packets counted.
    pub packets: u64,
    /// Bytes counted.
    pub bytes: u64,
}

#[derive(Deserialize)]
struct Listing {
    nftables: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    counter: Option<CounterItem>,
}

#[derive(Deserialize)]
struct CounterItem {
    name: String,
    table: String,
    packets: u64,
    bytes: u64,
}

/// Parses `nft -j list counters` output, keeping Roost's table only.
pub fn parse_counters(json: &str) -> Result<Vec<Counter>, NftError> {
    let listing: Listing = serde_json::from_str(json).map_err(NftError::Json)?;
    Ok(listing
        .nftables
        .into_iter()
        .filter_map(|i| i.counter)
        .filter(|c| c.table == TABLE)
        .map(|c| Counter {
            name: c.name,
            packets: c.packets,
            bytes: c.bytes,
        })
        .collect())
}

/// Reads the named counters of `table inet roost`.
pub async fn counters() -> Result<Vec<Counter>, NftError> {
    let json = nft(&["-j", "list", "counters", "table", "inet", TABLE], "").await?;
    parse_counters(&json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counters_of_our_table_only() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
            {"counter": {"family": "inet", "name": "zone_lan_in", "table": "roost", "handle": 15, "packets": 3, "bytes": 180}},
            {"counter": {"family": "inet", "name": "other", "table": "filter", "handle": 2, "packets": 1, "bytes": 1}}]}"#;
        assert_eq!(
            parse_counters(json).unwrap(),
            vec![Counter {
                name: "zone_lan_in".to_owned(),
                packets: 3,
                bytes: 180
            }]
        );
    }

    #[test]
    fn garbage_is_an_error_not_zero_counters() {
        assert!(matches!(parse_counters("nope"), Err(NftError::Json(_))));
    }
}
