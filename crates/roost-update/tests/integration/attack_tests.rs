//! Attacks on the client (TUF threat model plus Nix store paths): each is rejected with a
//! clear error, and the client's trusted state does not move.

use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use jiff::{SignedDuration, Timestamp};
use roost_update::client::{ClientError, NarError};
use roost_update::repo::{self, sign_root};
use roost_update::{Expiry, PemKey, verify_nar};
use tough::editor::signed::SignedRole;
use tough::schema::{KeyHolder, RoleType, Root, Signed, Timestamp as TimestampRole};

use crate::support::{Cache, TestRepo, store_path};

fn trusted_version(state: &Path, role: &str) -> u64 {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join(format!("{role}.json"))).unwrap())
            .unwrap();
    v["signed"]["version"].as_u64().unwrap()
}

fn metadata_error(err: ClientError) -> String {
    assert!(
        matches!(err, ClientError::Metadata(_)),
        "not a metadata rejection: {err}"
    );
    err.to_string()
}

#[tokio::test]
async fn rejects_rollback_to_an_older_timestamp() {
    let repo = TestRepo::new().await;
    repo.publish(&Cache::new("a").manifest(1)).await;
    let old_timestamp = std::fs::read(repo.metadata().join("timestamp.json")).unwrap();
    repo.publish(&Cache::new("b").manifest(2)).await;
    let state = tempfile::tempdir().unwrap();
    repo.client(state.path()).refresh().await.unwrap();
    let seen = trusted_version(state.path(), "timestamp");

    // The mirror serves the timestamp of the earlier state (validly signed, not expired).
    std::fs::write(repo.metadata().join("timestamp.json"), old_timestamp).unwrap();
    let err = metadata_error(repo.client(state.path()).refresh().await.unwrap_err());
    assert!(err.contains("older") || err.contains("version"), "{err}");
    assert_eq!(trusted_version(state.path(), "timestamp"), seen);
}

#[tokio::test]
async fn rejects_an_expired_timestamp() {
    // Freeze: everything was signed two days ago with a one-day timestamp.
    let expiry = Expiry::default();
    let then = Timestamp::now() - SignedDuration::from_hours(48);
    let repo = TestRepo::with_expiry(&expiry, then).await;
    let state = tempfile::tempdir().unwrap();
    let err = metadata_error(repo.client(state.path()).refresh().await.unwrap_err());
    assert!(err.to_lowercase().contains("expired"), "{err}");
    assert!(err.contains("timestamp"), "{err}");
}

#[tokio::test]
async fn rejects_targets_metadata_from_another_state() {
    let repo = TestRepo::new().await;
    repo.publish(&Cache::new("a").manifest(1)).await;
    repo.publish(&Cache::new("b").manifest(2)).await;
    // Mix and match: the current snapshot names targets v3, the mirror serves v2's content.
    let v2 = std::fs::read(repo.metadata().join("2.targets.json")).unwrap();
    std::fs::write(repo.metadata().join("3.targets.json"), v2).unwrap();
    let state = tempfile::tempdir().unwrap();
    let err = metadata_error(repo.client(state.path()).refresh().await.unwrap_err());
    let lower = err.to_lowercase();
    assert!(lower.contains("hash mismatch"), "{err}");
    assert!(
        !state.path().join("targets.json").exists(),
        "mixed targets were trusted"
    );
}

#[tokio::test]
async fn rejects_a_snapshot_from_another_state() {
    let repo = TestRepo::new().await;
    repo.publish(&Cache::new("a").manifest(1)).await;
    repo.publish(&Cache::new("b").manifest(2)).await;
    let v2 = std::fs::read(repo.metadata().join("2.snapshot.json")).unwrap();
    std::fs::write(repo.metadata().join("3.snapshot.json"), v2).unwrap();
    let state = tempfile::tempdir().unwrap();
    metadata_error(repo.client(state.path()).refresh().await.unwrap_err());
    assert!(!state.path().join("snapshot.json").exists());
}

fn manifest_file(repo: &TestRepo) -> std::path::PathBuf {
    let dir = repo.dir().join("targets/r1/stable");
    std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

#[tokio::test]
async fn rejects_a_manifest_target_whose_hash_or_length_differs() {
    let repo = TestRepo::new().await;
    repo.publish(&Cache::new("a").manifest(1)).await;
    let file = manifest_file(&repo);
    let original = std::fs::read(&file).unwrap();
    let state = tempfile::tempdir().unwrap();

    // Same length, other content (a different store path hash).
    let tampered = String::from_utf8(original.clone())
        .unwrap()
        .replacen("/nix/store/", "/nix/store/X", 1)
        .replacen("\"format\": 1", "\"format\":1", 1);
    assert_eq!(tampered.len(), original.len());
    std::fs::write(&file, &tampered).unwrap();
    let verified = repo.client(state.path()).refresh().await.unwrap();
    let err = verified
        .fetch_manifest("r1", "stable", None)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Hash { .. }), "{err}");

    // Longer than signed (an endless-data or arbitrary-target attack).
    let mut longer = original.clone();
    longer.extend_from_slice(b"    ");
    std::fs::write(&file, &longer).unwrap();
    let err = verified
        .fetch_manifest("r1", "stable", None)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::TooLong { .. }), "{err}");

    std::fs::write(&file, &original).unwrap();
    verified.fetch_manifest("r1", "stable", None).await.unwrap();
}

#[tokio::test]
async fn rejects_a_nar_whose_hash_or_size_differs_from_the_manifest() {
    let cache = Cache::new("a");
    let manifest = cache.manifest(1);
    let lib = store_path("roost-lib-1");
    let nar = cache.nar(&lib);
    let path = lib.to_string();

    let mut flipped = nar.clone();
    flipped[nar.len() / 2] ^= 0x20;
    let err = verify_nar(&manifest, &path, &flipped[..]).unwrap_err();
    assert!(
        matches!(
            err,
            NarError::Hash {
                what: "NarHash",
                ..
            }
        ),
        "{err}"
    );

    let err = verify_nar(&manifest, &path, &nar[..nar.len() - 8]).unwrap_err();
    assert!(matches!(err, NarError::Size { .. }), "{err}");

    let mut longer = nar.clone();
    longer.extend_from_slice(&[0; 8]);
    let err = verify_nar(&manifest, &path, &longer[..]).unwrap_err();
    assert!(matches!(err, NarError::TooLong { .. }), "{err}");

    verify_nar(&manifest, &path, &nar[..]).unwrap();
}

#[tokio::test]
async fn rejects_a_store_path_outside_the_manifest() {
    let cache = Cache::new("a");
    let manifest = cache.manifest(1);
    let other = Cache::new("b");
    let stranger = &other.services["dhcp"];
    let err = verify_nar(&manifest, &stranger.to_string(), &other.nar(stranger)[..]).unwrap_err();
    assert!(matches!(err, NarError::NotInManifest { .. }), "{err}");
    let err = verify_nar(&manifest, "/nix/store/../../etc/shadow", &b""[..]).unwrap_err();
    assert!(matches!(err, NarError::NotInManifest { .. }), "{err}");
}

fn read_root(repo: &TestRepo) -> Signed<Root> {
    serde_json::from_slice(&std::fs::read(repo.metadata().join("root.json")).unwrap()).unwrap()
}

#[tokio::test]
async fn rejects_a_timestamp_signed_by_a_key_not_in_root() {
    let repo = TestRepo::new().await;
    repo.publish(&Cache::new("a").manifest(1)).await;
    let state = tempfile::tempdir().unwrap();
    repo.client(state.path()).refresh().await.unwrap();
    let seen = trusted_version(state.path(), "timestamp");

    // The attacker signs a newer timestamp with its own key, claiming to be the timestamp role.
    let foreign = PemKey::generate(repo.tmp.path().join("test-foreign.pem")).unwrap();
    let mut fake_root = read_root(&repo).signed;
    let id = foreign.public().unwrap().key_id().unwrap();
    fake_root.keys.insert(id.clone(), foreign.public().unwrap());
    fake_root
        .roles
        .get_mut(&RoleType::Timestamp)
        .unwrap()
        .keyids = vec![id];
    let current: Signed<TimestampRole> =
        serde_json::from_slice(&std::fs::read(repo.metadata().join("timestamp.json")).unwrap())
            .unwrap();
    let mut ts = current.signed;
    ts.version = ts.version.checked_add(1).unwrap();
    let signed = SignedRole::new(
        ts,
        &KeyHolder::Root(fake_root),
        &[foreign.source()],
        &SystemRandom::new(),
    )
    .await
    .unwrap();
    std::fs::write(repo.metadata().join("timestamp.json"), signed.buffer()).unwrap();

    let err = metadata_error(repo.client(state.path()).refresh().await.unwrap_err());
    assert!(
        err.contains("threshold") || err.contains("signature"),
        "{err}"
    );
    assert_eq!(trusted_version(state.path(), "timestamp"), seen);
}

/// Writes `2.root.json` replacing the root keys with `new_keys` (threshold 2), signed by
/// `old_signers` under root v1 and by `new_signers` under itself.
async fn write_rotation(
    repo: &TestRepo,
    version: u64,
    old_signers: &[PemKey],
    new_keys: &[PemKey],
    new_signers: &[PemKey],
) {
    let old = read_root(repo).signed;
    let mut new = old.clone();
    new.version = std::num::NonZeroU64::new(version).unwrap();
    let mut ids = Vec::new();
    for key in new_keys {
        let public = key.public().unwrap();
        let id = public.key_id().unwrap();
        new.keys.insert(id.clone(), public);
        ids.push(id);
    }
    let role = new.roles.get_mut(&RoleType::Root).unwrap();
    role.keyids = ids;
    role.threshold = std::num::NonZeroU64::new(2).unwrap();
    let by_new = sign_root(new.clone(), &new, new_signers).await.unwrap();
    let by_old = sign_root(new.clone(), &old, old_signers).await.unwrap();
    let signed = by_new
        .add_old_signatures(by_old.signed().signatures.clone())
        .unwrap();
    std::fs::write(repo.metadata().join("2.root.json"), signed.buffer()).unwrap();
}

async fn assert_rotation_rejected(repo: &TestRepo, expect: &[&str]) {
    let state = tempfile::tempdir().unwrap();
    let err = metadata_error(repo.client(state.path()).refresh().await.unwrap_err());
    assert!(expect.iter().any(|e| err.contains(e)), "{err}");
    // The client still trusts root v1 (or has not stored a newer one).
    if state.path().join("root.json").exists() {
        assert_eq!(trusted_version(state.path(), "root"), 1);
    }
}

fn new_root_keys(repo: &TestRepo) -> Vec<PemKey> {
    (4..=5)
        .map(|i| PemKey::generate(repo.keys.root(i).path).unwrap())
        .collect()
}

#[tokio::test]
async fn rejects_a_root_rotation_below_the_old_threshold() {
    let repo = TestRepo::new().await;
    let new = new_root_keys(&repo);
    // Only one of the 2-of-3 old root keys signed.
    write_rotation(&repo, 2, &[repo.keys.root(1)], &new, &new).await;
    assert_rotation_rejected(&repo, &["threshold", "signature"]).await;
}

#[tokio::test]
async fn rejects_a_root_rotation_not_signed_by_the_new_keys() {
    let repo = TestRepo::new().await;
    let new = new_root_keys(&repo);
    write_rotation(
        &repo,
        2,
        &[repo.keys.root(1), repo.keys.root(2)],
        &new,
        &new[..1],
    )
    .await;
    assert_rotation_rejected(&repo, &["threshold", "signature"]).await;
}

#[tokio::test]
async fn rejects_a_root_rotation_that_skips_a_version() {
    let repo = TestRepo::new().await;
    let new = new_root_keys(&repo);
    write_rotation(
        &repo,
        3,
        &[repo.keys.root(1), repo.keys.root(2)],
        &new,
        &new,
    )
    .await;
    assert_rotation_rejected(&repo, &["version", "older"]).await;
}

#[tokio::test]
async fn publisher_rotation_check_matches_the_client() {
    // rotate_root's own verification accepts exactly what the client accepts.
    let repo = TestRepo::new().await;
    let new = new_root_keys(&repo);
    repo::rotate_root(
        &repo.dir(),
        &[repo.keys.root(2), repo.keys.root(3)],
        &new,
        2,
        &Expiry::default(),
        Timestamp::now(),
    )
    .await
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let verified = repo.client(state.path()).refresh().await.unwrap();
    assert_eq!(verified.repository().root().signed.version.get(), 2);
    assert_eq!(trusted_version(state.path(), "root"), 2);
}
