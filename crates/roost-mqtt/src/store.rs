//! Durable state: retained messages and persistent sessions, as one snapshot file
//! `$STATE_DIRECTORY/broker.json`, replaced atomically (write a temporary file, fsync it, rename
//! it over the old one, fsync the directory), so a crash leaves the old or the new snapshot, never
//! a torn one. The broker writes a snapshot at most once a second when something durable
//! changed, and once more at shutdown.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The snapshot's file name in the state directory.
pub const FILE: &str = "broker.json";

/// Everything that survives a restart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Retained messages.
    pub retained: Vec<StoredMessage>,
    /// Sessions that outlive their connection.
    pub sessions: Vec<StoredSession>,
}

/// A message as stored (payloads and correlation data in hex).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// Topic name.
    pub topic: String,
    /// Payload, hex.
    pub payload: String,
    /// QoS 0-2.
    pub qos: u8,
    /// Retain flag.
    pub retain: bool,
    /// Seconds left until the message expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u32>,
    /// Payload format indicator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_format: Option<u8>,
    /// Content type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Response topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_topic: Option<String>,
    /// Correlation data, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
    /// User properties.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_properties: Vec<(String, String)>,
    /// Subscription identifiers (queued deliveries).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sub_ids: Vec<usize>,
    /// Client id of the publisher.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// One subscription of a stored session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSub {
    /// Topic filter.
    pub filter: String,
    /// Granted QoS.
    pub qos: u8,
    /// No Local.
    pub no_local: bool,
    /// Retain As Published.
    pub retain_as_published: bool,
    /// Retain Handling 0-2.
    pub retain_handling: u8,
    /// Subscription identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<usize>,
}

/// A QoS 1/2 delivery waiting for its acknowledgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredInflight {
    /// Packet identifier.
    pub pkid: u16,
    /// `true` once PUBREC came and PUBREL was sent.
    pub released: bool,
    /// The message.
    pub message: StoredMessage,
}

/// A persistent session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSession {
    /// Client identifier.
    pub client_id: String,
    /// Seconds the session has left once disconnected.
    pub expires_in: u32,
    /// Subscriptions.
    pub subscriptions: Vec<StoredSub>,
    /// Unacknowledged deliveries.
    pub inflight: Vec<StoredInflight>,
    /// Messages waiting for the client.
    pub queue: Vec<StoredMessage>,
    /// QoS 2 packet ids received and not yet released by the client.
    pub incoming_qos2: Vec<u16>,
}

/// The state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a snapshot.
    #[error("{path} is damaged: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Reads the snapshot in `dir`; an absent file is an empty snapshot.
pub fn load(dir: &Path) -> Result<Snapshot, StoreError> {
    let path = dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|source| StoreError::Parse { path, source })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Snapshot::default()),
        Err(source) => Err(StoreError::Read { path, source }),
    }
}

/// Writes `bytes` (a serialized snapshot) as the snapshot in `dir`, durably.
pub fn save(dir: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let path = dir.join(FILE);
    let tmp = dir.join(format!("{FILE}.tmp"));
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|source| StoreError::Write {
        path: path.clone(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_snapshot_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), Snapshot::default());
    }

    #[test]
    fn saved_snapshot_loads_back_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let snap = Snapshot {
            retained: vec![StoredMessage {
                topic: "a".into(),
                payload: hex::encode(b"x"),
                qos: 1,
                retain: true,
                expires_in: None,
                payload_format: None,
                content_type: None,
                response_topic: None,
                correlation: None,
                user_properties: vec![],
                sub_ids: vec![],
                origin: None,
            }],
            sessions: vec![],
        };
        save(dir.path(), &serde_json::to_vec(&snap).unwrap()).unwrap();
        assert_eq!(load(dir.path()).unwrap(), snap);
        assert!(!dir.path().join(format!("{FILE}.tmp")).exists());
    }

    #[test]
    fn damaged_snapshot_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        assert!(matches!(load(dir.path()), Err(StoreError::Parse { .. })));
    }
}
