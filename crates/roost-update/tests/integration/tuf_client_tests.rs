//! `roost-update tuf-client` speaks the tuf-conformance client-under-test protocol: init,
//! refresh and download over HTTP on 127.0.0.1, exit 0 on success and 1 on failure.

use std::path::Path;
use std::process::Output;

use crate::support::{Cache, FileServer, TestRepo};

async fn tuf_client(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_roost-update"))
        .arg("tuf-client")
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test]
async fn tuf_client_initialises_refreshes_and_downloads() {
    let repo = TestRepo::new().await;
    let name = repo.publish(&Cache::new("a").manifest(1)).await;
    let server = FileServer::start(repo.dir()).await;
    let tmp = tempfile::tempdir().unwrap();
    let meta = tmp.path().join("metadata");
    let out = tmp.path().join("targets");
    std::fs::create_dir_all(&meta).unwrap();
    let root = tmp.path().join("initial_root.json");
    std::fs::write(&root, &repo.root_v1).unwrap();
    let metadata_url = server.url("metadata/").to_string();
    let targets_url = server.url("targets/").to_string();

    let init = tuf_client(&["--metadata-dir", s(&meta), "init", s(&root)]).await;
    assert_eq!(init.status.code(), Some(0), "{init:?}");
    assert!(meta.join("root.json").exists());

    let refresh = tuf_client(&[
        "--metadata-dir",
        s(&meta),
        "--metadata-url",
        &metadata_url,
        "refresh",
    ])
    .await;
    assert_eq!(refresh.status.code(), Some(0), "{refresh:?}");
    // Trusted metadata under unversioned names.
    for role in ["root", "timestamp", "snapshot", "targets"] {
        assert!(
            meta.join(format!("{role}.json")).exists(),
            "{role}.json missing"
        );
    }

    let download_args = [
        "--metadata-dir",
        s(&meta),
        "--metadata-url",
        &metadata_url,
        "--target-name",
        &name,
        "--target-base-url",
        &targets_url,
        "--target-dir",
        s(&out),
        "download",
    ];
    let download = tuf_client(&download_args).await;
    assert_eq!(download.status.code(), Some(0), "{download:?}");
    let file = out.join("r1%2Fstable%2F1.json");
    roost_update::Manifest::from_json(&std::fs::read(&file).unwrap()).unwrap();

    // A target that is not in the metadata fails with exit code 1.
    let mut missing = download_args;
    missing[5] = "r1/stable/9.json";
    let failed = tuf_client(&missing).await;
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
}

#[tokio::test]
async fn tuf_client_exits_1_when_the_target_is_tampered_with() {
    let repo = TestRepo::new().await;
    let name = repo.publish(&Cache::new("a").manifest(1)).await;
    let dir = repo.dir().join("targets/r1/stable");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&file, bytes).unwrap();

    let server = FileServer::start(repo.dir()).await;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root.json");
    std::fs::write(&root, &repo.root_v1).unwrap();
    let meta = tmp.path().join("m");
    std::fs::create_dir_all(&meta).unwrap();
    assert_eq!(
        tuf_client(&["--metadata-dir", s(&meta), "init", s(&root)])
            .await
            .status
            .code(),
        Some(0)
    );
    let out = tmp.path().join("t");
    let download = tuf_client(&[
        "--metadata-dir",
        s(&meta),
        "--metadata-url",
        server.url("metadata/").as_str(),
        "--target-name",
        &name,
        "--target-base-url",
        server.url("targets/").as_str(),
        "--target-dir",
        s(&out),
        "download",
    ])
    .await;
    assert_eq!(download.status.code(), Some(1), "{download:?}");
    assert!(
        String::from_utf8_lossy(&download.stderr).contains("sha256"),
        "{download:?}"
    );
    assert!(!out.join("r1%2Fstable%2F1.json").exists());
}
