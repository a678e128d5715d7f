//! Publishing generations and reading them back through the verifying client.

use jiff::Timestamp;
use roost_config::Generation;
use roost_update::client::ClientError;
use roost_update::manifest::BuildManifestError;
use roost_update::nix::CacheError;
use roost_update::repo::{self, RepoError};
use roost_update::{Expiry, verify_nar};

use crate::support::{Cache, TestRepo, store_path};

#[tokio::test]
async fn client_picks_newest_generation_and_verifies_its_manifest() {
    let repo = TestRepo::new().await;
    let a = Cache::new("a");
    let b = Cache::new("b");
    assert_eq!(repo.publish(&a.manifest(1)).await, "r1/stable/1.json");
    repo.publish(&b.manifest(2)).await;

    let state = tempfile::tempdir().unwrap();
    let verified = repo.client(state.path()).refresh().await.unwrap();
    assert_eq!(
        verified.generations("r1", "stable"),
        vec![Generation(1), Generation(2)]
    );
    let newest = verified.fetch_manifest("r1", "stable", None).await.unwrap();
    assert_eq!(newest, b.manifest(2));
    let pinned = verified
        .fetch_manifest("r1", "stable", Some(Generation(1)))
        .await
        .unwrap();
    assert_eq!(pinned.toplevel, a.toplevel);
    // A NAR from the cache passes the manifest's NarHash and NarSize.
    let dns = &b.services["dns"];
    verify_nar(&newest, &dns.to_string(), &b.nar(dns)[..]).unwrap();
}

#[tokio::test]
async fn pinned_generation_that_is_not_published_is_an_error() {
    let repo = TestRepo::new().await;
    repo.publish(&Cache::new("a").manifest(1)).await;
    let state = tempfile::tempdir().unwrap();
    let verified = repo.client(state.path()).refresh().await.unwrap();
    let err = verified
        .fetch_manifest("r1", "stable", Some(Generation(9)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::PinnedMissing { generation: 9, .. }),
        "{err}"
    );
    let err = verified
        .fetch_manifest("r1", "testing", None)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::NoGeneration { .. }), "{err}");
}

#[tokio::test]
async fn manifest_lists_each_service_closure() {
    let cache = Cache::new("a");
    let manifest = cache.manifest(1);
    let dns = &manifest.services["dns"];
    assert_eq!(dns.len(), 2, "microvm-dns and roost-lib-1");
    assert!(dns.contains(&store_path("roost-lib-1")));
    assert_eq!(manifest.services["dhcp"].len(), 3);
    assert_eq!(manifest.paths.len(), 5);
    let info = &manifest.paths[&cache.toplevel];
    assert_eq!(info.references.len(), 2);
    assert!(info.nar_size > 0 && info.url.starts_with("nar/"));
}

#[tokio::test]
async fn refuses_to_publish_a_generation_that_is_not_newer() {
    let repo = TestRepo::new().await;
    let cache = Cache::new("a");
    repo.publish(&cache.manifest(2)).await;
    let err = repo::publish(
        &repo.dir(),
        &cache.manifest(2),
        &repo.online(),
        &Expiry::default(),
        Timestamp::now(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, RepoError::NotNewer { newest: 2, .. }),
        "{err}"
    );
    assert_eq!(
        repo::next_generation(&repo.dir(), "r1", "stable")
            .await
            .unwrap(),
        Generation(3)
    );
}

#[tokio::test]
async fn publisher_rejects_a_cache_whose_nar_does_not_match_its_narinfo() {
    let cache = Cache::new("a");
    let lib = store_path("roost-lib-1");
    let text = std::fs::read_to_string(
        cache
            .dir
            .path()
            .join(format!("{}.narinfo", lib.hash_part())),
    )
    .unwrap();
    let url = text.lines().find_map(|l| l.strip_prefix("URL: ")).unwrap();
    let mut nar = cache.nar(&lib);
    let last = nar.len() - 20;
    nar[last] ^= 1;
    std::fs::write(cache.dir.path().join(url), nar).unwrap();
    let input = roost_update::manifest::ManifestInput {
        build: serde_json::from_value(serde_json::json!({
            "job": "nixosConfigurations.r1.config.system.build.toplevel",
            "buildoutputs": { "out": { "path": cache.toplevel.to_string() } },
        }))
        .unwrap(),
        host: None,
        channel: "stable".to_owned(),
        generation: Generation(1),
        services: Default::default(),
        cache_dir: cache.dir.path().to_owned(),
        cache_url: "http://127.0.0.1/".to_owned(),
    };
    let err = roost_update::manifest::build_manifest(&input).unwrap_err();
    assert!(
        matches!(
            err,
            BuildManifestError::Cache(CacheError::Mismatch {
                what: "NarHash",
                ..
            })
        ),
        "{err}"
    );
}

#[tokio::test]
async fn refresh_re_signs_the_timestamp_and_clients_follow() {
    let repo = TestRepo::new().await;
    repo.publish(&Cache::new("a").manifest(1)).await;
    let state = tempfile::tempdir().unwrap();
    let before = repo.client(state.path()).refresh().await.unwrap();
    let old_version = before.repository().timestamp().signed.version.get();
    // Run later than half the snapshot lifetime: the snapshot is re-signed too.
    let later = Timestamp::now() + jiff::SignedDuration::from_hours(24 * 4);
    let done = repo::refresh(
        &repo.dir(),
        &repo.keys.snapshot(),
        &repo.keys.timestamp(),
        &Expiry::default(),
        later,
    )
    .await
    .unwrap();
    assert_eq!(done.timestamp_version, old_version + 1);
    assert!(done.snapshot_version.is_some());
    let after = repo.client(state.path()).refresh().await.unwrap();
    assert_eq!(
        after.repository().timestamp().signed.version.get(),
        old_version + 1
    );
    assert_eq!(after.generations("r1", "stable"), vec![Generation(1)]);
    // A refresh right now only re-signs the timestamp.
    let done = repo::refresh(
        &repo.dir(),
        &repo.keys.snapshot(),
        &repo.keys.timestamp(),
        &Expiry::default(),
        Timestamp::now(),
    )
    .await
    .unwrap();
    assert_eq!(done.snapshot_version, None);
    repo.client(state.path()).refresh().await.unwrap();
}

#[tokio::test]
async fn root_rotation_signed_by_old_and_new_threshold_is_accepted() {
    let repo = TestRepo::new().await;
    repo.publish(&Cache::new("a").manifest(1)).await;
    let state = tempfile::tempdir().unwrap();
    repo.client(state.path()).refresh().await.unwrap();

    let new_keys: Vec<_> = (4..=6)
        .map(|i| roost_update::PemKey::generate(repo.keys.root(i).path).unwrap())
        .collect();
    repo::rotate_root(
        &repo.dir(),
        &[repo.keys.root(1), repo.keys.root(3)],
        &new_keys,
        2,
        &Expiry::default(),
        Timestamp::now(),
    )
    .await
    .unwrap();
    repo.publish(&Cache::new("b").manifest(2)).await;

    // A client that only knows root v1 walks to v2.
    let fresh = tempfile::tempdir().unwrap();
    let verified = repo.client(fresh.path()).refresh().await.unwrap();
    assert_eq!(verified.repository().root().signed.version.get(), 2);
    assert_eq!(verified.generations("r1", "stable").len(), 2);
    // So does one that has state from before the rotation.
    let verified = repo.client(state.path()).refresh().await.unwrap();
    assert_eq!(verified.repository().root().signed.version.get(), 2);
}

#[tokio::test]
async fn rotate_root_refuses_to_write_a_root_below_the_old_threshold() {
    let repo = TestRepo::new().await;
    let new_keys: Vec<_> = (4..=5)
        .map(|i| roost_update::PemKey::generate(repo.keys.root(i).path).unwrap())
        .collect();
    let err = repo::rotate_root(
        &repo.dir(),
        &[repo.keys.root(1)],
        &new_keys,
        2,
        &Expiry::default(),
        Timestamp::now(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            RepoError::RotationUnsigned {
                which: "the old root's threshold",
                ..
            }
        ),
        "{err}"
    );
    assert!(!repo.metadata().join("2.root.json").exists());
}
