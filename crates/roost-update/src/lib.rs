//! # roost-update: signed updates, publisher side and verifying client
//!
//! Roost publishes each router generation as a TUF 1.0 target. This crate holds:
//!
//! - [`keys`]: ed25519 signing keys as PKCS#8 PEM files.
//! - [`repo`]: the publisher on the build host next to Hydra — `keys init` creates root
//!   version 1 (offline root keys, threshold configurable, 2-of-3 in production), `keys
//!   rotate-root` writes root N+1 signed by the old and the new threshold, `publish` adds a
//!   generation manifest and re-signs targets, snapshot and timestamp, `refresh` re-signs the
//!   short-lived timestamp (and the snapshot when due) on a timer.
//! - [`manifest`] and [`nix`]: the generation manifest (`<host>/<channel>/<generation>.json`),
//!   built from a Hydra build and a `file://` binary cache whose narinfo and NAR files are
//!   validated, never trusted.
//! - [`client`]: the verifying client the update agent uses: TUF metadata from the pinned root
//!   (via tough), the newest or pinned generation's manifest, and streaming NAR checks.
//! - [`agent`]: the update agent in the router's update VM: the update as a sans-IO state
//!   machine over a durable journal, fetch of the missing store paths, install, switch, health
//!   checks, rollback, and its control API.
//! - [`conformance`]: `roost-update tuf-client`, the tuf-conformance client-under-test CLI.
//!
//! Runs on the build host (`publish`, `refresh`, `keys`) and, as a library, in the router's
//! update VM. The agent serves its control API on `UpdateView.control.listen` (9100); talks HTTP(S) to the repository and the binary cache. Files:
//! the repository directory (`metadata/`, `targets/`), key files (never in the repository's
//! `keys/`, which holds public metadata only), and the client's metadata directory
//! (`/var/lib/roost/update/tuf/` on the router). Design decisions: docs/adr/0003-update-repository.md.

pub mod agent;
pub mod client;
pub mod conformance;
pub mod durable;
pub mod host;
pub mod keys;
pub mod manifest;
pub mod nix;
pub mod repo;
pub mod settings_file;
pub mod spool;

pub use client::{Client, ClientError, NarCheck, NarError, Verified, verify_nar};
pub use keys::{KeyDir, PemKey};
pub use manifest::{Manifest, PathInfo};
pub use repo::{Expiry, OnlineKeys, RootKeys};
