//! Fixtures: test keys in temp dirs, a binary cache made with nix-nar, a repository, and a
//! static HTTP server on 127.0.0.1 port 0.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use roost_config::Generation;
use roost_update::manifest::{HydraBuild, ManifestInput, build_manifest};
use roost_update::nix::{Sha256, StorePath};
use roost_update::{Client, Expiry, KeyDir, Manifest, OnlineKeys, PemKey, RootKeys, repo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

/// A fake store path named `name` (hash derived from the name).
pub(crate) fn store_path(name: &str) -> StorePath {
    let digest = Sha256::of(name.as_bytes());
    let hash = nix_base32::to_nix_base32(&digest.0[..20]);
    format!("/nix/store/{hash}-{name}").parse().unwrap()
}

/// A `file://` binary cache with uncompressed NARs made by nix-nar.
pub(crate) struct Cache {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) toplevel: StorePath,
    pub(crate) services: BTreeMap<String, StorePath>,
}

impl Cache {
    /// toplevel -> vm-dns, vm-dhcp; both -> lib; vm-dhcp also -> dhcp-pkg.
    pub(crate) fn new(tag: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("nar")).unwrap();
        let lib = store_path("roost-lib-1");
        let dhcp_pkg = store_path(&format!("roost-dhcp-{tag}"));
        let dns = store_path("microvm-dns");
        let dhcp = store_path(&format!("microvm-dhcp-{tag}"));
        let toplevel = store_path(&format!("nixos-system-r1-{tag}"));
        let cache = Self {
            dir,
            toplevel: toplevel.clone(),
            services: [
                ("dhcp".to_owned(), dhcp.clone()),
                ("dns".to_owned(), dns.clone()),
            ]
            .into(),
        };
        cache.add(&lib, &[]);
        cache.add(&dhcp_pkg, &[&lib]);
        cache.add(&dns, &[&lib]);
        cache.add(&dhcp, &[&lib, &dhcp_pkg]);
        cache.add(&toplevel, &[&dns, &dhcp]);
        cache
    }

    /// Adds a store path whose content is a directory with one file, as NAR + narinfo.
    pub(crate) fn add(&self, path: &StorePath, refs: &[&StorePath]) {
        let src = tempfile::tempdir().unwrap();
        let root = src.path().join("out");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        let refs_text: Vec<String> = refs.iter().map(|r| r.to_string()).collect();
        std::fs::write(
            root.join("bin/run"),
            format!("#!/bin/sh\n# {path}\n# {}\n", refs_text.join(" ")),
        )
        .unwrap();
        let mut nar = Vec::new();
        nix_nar::Encoder::new(&root)
            .unwrap()
            .read_to_end(&mut nar)
            .unwrap();
        let hash = Sha256::of(&nar);
        let file = format!("nar/{}.nar", nix_base32::to_nix_base32(&hash.0));
        std::fs::write(self.dir.path().join(&file), &nar).unwrap();
        let references: Vec<String> = refs.iter().map(|r| r.base_name()).collect();
        let narinfo = format!(
            "StorePath: {path}\nURL: {file}\nCompression: none\nFileHash: {hash}\nFileSize: {len}\nNarHash: {hash}\nNarSize: {len}\nReferences: {}\n",
            references.join(" "),
            len = nar.len(),
        );
        std::fs::write(
            self.dir
                .path()
                .join(format!("{}.narinfo", path.hash_part())),
            narinfo,
        )
        .unwrap();
    }

    /// The NAR bytes of a store path.
    pub(crate) fn nar(&self, path: &StorePath) -> Vec<u8> {
        let text = std::fs::read_to_string(
            self.dir
                .path()
                .join(format!("{}.narinfo", path.hash_part())),
        )
        .unwrap();
        let url = text.lines().find_map(|l| l.strip_prefix("URL: ")).unwrap();
        std::fs::read(self.dir.path().join(url)).unwrap()
    }

    pub(crate) fn manifest(&self, generation: u64) -> Manifest {
        let build: HydraBuild = serde_json::from_value(serde_json::json!({
            "job": "nixosConfigurations.r1.config.system.build.toplevel",
            "finished": 1,
            "buildstatus": 0,
            "buildoutputs": { "out": { "path": self.toplevel.to_string() } },
        }))
        .unwrap();
        build_manifest(&ManifestInput {
            build,
            host: None,
            channel: "stable".to_owned(),
            generation: Generation(generation),
            services: self
                .services
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
            cache_dir: self.dir.path().to_owned(),
            cache_url: "http://127.0.0.1/cache/".to_owned(),
        })
        .unwrap()
    }
}

/// A repository in a temp dir with test keys: root 2-of-3.
pub(crate) struct TestRepo {
    pub(crate) tmp: tempfile::TempDir,
    pub(crate) keys: KeyDir,
    pub(crate) root_v1: Vec<u8>,
}

impl TestRepo {
    pub(crate) async fn new() -> Self {
        Self::with_expiry(&Expiry::default(), Timestamp::now()).await
    }

    pub(crate) async fn with_expiry(expiry: &Expiry, now: Timestamp) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let key_dir = tmp.path().join("test-keys");
        std::fs::create_dir_all(&key_dir).unwrap();
        let keys = KeyDir::new(&key_dir);
        let root_keys = RootKeys {
            root: (1..=3)
                .map(|i| PemKey::generate(keys.root(i).path).unwrap())
                .collect(),
            root_threshold: 2,
            targets: PemKey::generate(keys.targets().path).unwrap(),
            snapshot: PemKey::generate(keys.snapshot().path).unwrap(),
            timestamp: PemKey::generate(keys.timestamp().path).unwrap(),
        };
        let root_v1 = repo::init(&tmp.path().join("repo"), &root_keys, expiry, now)
            .await
            .unwrap();
        Self { tmp, keys, root_v1 }
    }

    pub(crate) fn dir(&self) -> PathBuf {
        self.tmp.path().join("repo")
    }

    pub(crate) fn online(&self) -> OnlineKeys {
        OnlineKeys {
            targets: self.keys.targets(),
            snapshot: self.keys.snapshot(),
            timestamp: self.keys.timestamp(),
        }
    }

    pub(crate) async fn publish(&self, manifest: &Manifest) -> String {
        repo::publish(
            &self.dir(),
            manifest,
            &self.online(),
            &Expiry::default(),
            Timestamp::now(),
        )
        .await
        .unwrap()
    }

    pub(crate) fn metadata(&self) -> PathBuf {
        self.dir().join("metadata")
    }

    /// A client over file:// with its own metadata dir (kept across calls).
    pub(crate) fn client(&self, state: &Path) -> Client {
        Client::new(
            self.root_v1.clone(),
            Url::from_directory_path(self.metadata()).unwrap(),
            Url::from_directory_path(self.dir().join("targets")).unwrap(),
            state.to_owned(),
        )
    }
}

/// Serves a directory over HTTP/1.0 on 127.0.0.1 (GET only); stops when dropped.
pub(crate) struct FileServer {
    pub(crate) addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl FileServer {
    pub(crate) async fn start(root: PathBuf) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let root = root.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0; 8192];
                    let mut len = 0;
                    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < buf.len() {
                        match stream.read(&mut buf[len..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => len += n,
                        }
                    }
                    let head = String::from_utf8_lossy(&buf[..len]).to_string();
                    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                    let rel = percent_decode(path.trim_start_matches('/'));
                    let file = (!rel.split('/').any(|s| s == ".."))
                        .then(|| std::fs::read(root.join(&rel)).ok())
                        .flatten();
                    // `Range: bytes=N-` (what the agent sends to resume) gets a 206.
                    let range = head
                        .lines()
                        .find_map(|l| {
                            let l = l.trim_end();
                            l.to_ascii_lowercase()
                                .starts_with("range: bytes=")
                                .then(|| l["range: bytes=".len()..].to_owned())
                        })
                        .and_then(|r| {
                            r.strip_suffix('-')
                                .and_then(|n| n.trim().parse::<usize>().ok())
                        });
                    let response = match (file, range) {
                        (Some(body), Some(from)) if from < body.len() => {
                            let mut r = format!("HTTP/1.0 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {from}-{}/{}\r\nConnection: close\r\n\r\n", body.len() - from, body.len() - 1, body.len()).into_bytes();
                            r.extend(&body[from..]);
                            r
                        }
                        (Some(body), _) => {
                            let mut r = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes();
                            r.extend(body);
                            r
                        }
                        (None, _) => b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
                    };
                    let _ = stream.write_all(&response).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self { addr, task }
    }

    pub(crate) fn url(&self, path: &str) -> Url {
        Url::parse(&format!("http://{}/{path}", self.addr)).unwrap()
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
