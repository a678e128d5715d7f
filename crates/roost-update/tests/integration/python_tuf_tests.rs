//! An independent client accepts our repository: python-tuf's ngclient (PyPI `tuf`, installed
//! by scripts/test) refreshes the metadata and downloads a manifest, served by Python's own
//! http.server on 127.0.0.1 port 0.

use crate::support::{Cache, TestRepo};

const SCRIPT: &str = r#"
import functools, http.server, os, sys, threading
from tuf.ngclient import Updater

repo, state, out, target = sys.argv[1:5]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=repo)
handler.log_message = lambda *a: None
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = "http://127.0.0.1:%d" % server.server_address[1]
try:
    # python-tuf 7 requires `bootstrap`: the pinned root (None would trust root.json on disk).
    with open(os.path.join(state, "pinned-root.json"), "rb") as f:
        pinned = f.read()
    updater = Updater(metadata_dir=state, metadata_base_url=base + "/metadata/",
                      target_dir=out, target_base_url=base + "/targets/", bootstrap=pinned)
    updater.refresh()
    info = updater.get_targetinfo(target)
    if info is None:
        sys.exit("target %s not found" % target)
    path = updater.download_target(info, filepath=os.path.join(out, "manifest.json"))
    print("downloaded", path, "root version", updater._trusted_set.root.version)
finally:
    server.shutdown()
"#;

#[tokio::test]
async fn python_tuf_refreshes_our_repository_and_downloads_a_manifest() {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let repo = TestRepo::new().await;
    repo.publish(&Cache::new("a").manifest(1)).await;
    // Rotate the root once so python-tuf also walks the root chain.
    let new: Vec<_> = (4..=5)
        .map(|i| roost_update::PemKey::generate(repo.keys.root(i).path).unwrap())
        .collect();
    roost_update::repo::rotate_root(
        &repo.dir(),
        &[repo.keys.root(1), repo.keys.root(2)],
        &new,
        2,
        &Default::default(),
        jiff::Timestamp::now(),
    )
    .await
    .unwrap();
    let name = repo.publish(&Cache::new("b").manifest(2)).await;

    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join("pinned-root.json"), &repo.root_v1).unwrap();
    let out = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(repo.dir())
        .arg(state.path())
        .arg(out.path())
        .arg(&name)
        .kill_on_drop(true)
        .output()
        .await
        .expect("python3 runs (scripts/test installs python-tuf)");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "python-tuf failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("root version 2"), "{stdout}");
    let got = std::fs::read(out.path().join("manifest.json")).unwrap();
    let manifest = roost_update::Manifest::from_json(&got).unwrap();
    assert_eq!(manifest.generation.0, 2);
}
