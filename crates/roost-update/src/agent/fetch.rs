//! Downloading the store paths a generation needs: only the missing ones, resumed with HTTP
//! `Range` after an interruption (partial files are kept in `STATE_DIRECTORY/downloads`), the
//! file checked against FileHash/FileSize as downloaded, then decompressed (xz) and checked
//! against NarSize/NarHash before it goes into the local import cache.

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, RANGE};
use tokio::io::AsyncWriteExt;
use url::Url;

use crate::client::{NarCheck, NarError};
use crate::manifest::Manifest;
use crate::nix::StorePath;

/// Progress of the fetch step, shown in `/state` and `/metrics`.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes received over the network in this update.
    pub bytes: AtomicU64,
    /// Bytes to fetch in this update (file sizes of the missing paths).
    pub bytes_total: AtomicU64,
    /// Paths done (checked and ready to import).
    pub paths: AtomicU64,
    /// Paths to fetch.
    pub paths_total: AtomicU64,
    /// Bytes received over the network since the agent started (all updates).
    pub bytes_lifetime: AtomicU64,
}

impl Progress {
    /// Starts counting a new fetch.
    pub fn reset(&self, paths: u64, bytes: u64) {
        self.bytes.store(0, Ordering::Relaxed);
        self.paths.store(0, Ordering::Relaxed);
        self.paths_total.store(paths, Ordering::Relaxed);
        self.bytes_total.store(bytes, Ordering::Relaxed);
    }
}

/// Fetching a store path failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The NAR did not match the manifest.
    #[error(transparent)]
    Nar(#[from] NarError),
    /// HTTP failed.
    #[error("{url}: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A compression the agent cannot read.
    #[error("{path}: compression {compression} is not supported (none and xz are)")]
    Compression {
        /// The store path.
        path: StorePath,
        /// The compression.
        compression: String,
    },
    /// Local files.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The crash hook fired (tests).
    #[error("crash hook")]
    Crash,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where downloads and the import cache live.
#[derive(Debug, Clone)]
pub struct Fetcher {
    /// HTTP client.
    pub http: reqwest::Client,
    /// `STATE_DIRECTORY/downloads`: partial and complete downloaded files.
    pub downloads: PathBuf,
    /// `STATE_DIRECTORY/incoming`: the local binary cache imported from.
    pub incoming: PathBuf,
    /// Counters.
    pub progress: Arc<Progress>,
    /// Test hook: stop (as if killed) halfway through the first download.
    pub crash_partial: bool,
}

fn file_url(manifest: &Manifest, url: &str) -> Result<Url, FetchError> {
    let mut base = manifest.cache_url.clone();
    if !base.ends_with('/') {
        base.push('/');
    }
    Url::parse(&base)
        .and_then(|b| b.join(url))
        .map_err(|e| FetchError::Http {
            url: format!("{base}{url}"),
            reason: e.to_string(),
        })
}

impl Fetcher {
    /// The file size the cache serves for `path` (FileSize, or NarSize uncompressed).
    pub fn file_size(manifest: &Manifest, path: &StorePath) -> u64 {
        manifest
            .paths
            .get(path)
            .map_or(0, |i| i.file_size.unwrap_or(i.nar_size))
    }

    /// The checked, uncompressed NAR of `path` in the import cache.
    pub fn nar_file(&self, path: &StorePath) -> PathBuf {
        self.incoming
            .join("nar")
            .join(format!("{}.nar", path.hash_part()))
    }

    /// Whether a NAR of `path` kept from an earlier run is there and still matches the
    /// manifest; one that does not is removed.
    pub async fn kept_nar_is_good(&self, manifest: &Manifest, path: &StorePath) -> bool {
        let file = self.nar_file(path);
        let Ok(reader) = std::fs::File::open(&file) else {
            return false;
        };
        let (manifest, key) = (manifest.clone(), path.to_string());
        let good = tokio::task::spawn_blocking(move || {
            crate::client::verify_nar(&manifest, &key, BufReader::new(reader)).is_ok()
        })
        .await
        .unwrap_or(false);
        if !good {
            tracing::warn!(%path, "a kept NAR does not match the manifest; fetching it again");
            let _ = std::fs::remove_file(&file);
        }
        good
    }

    /// Fetches and checks `path`; afterwards its NAR is in the import cache.
    pub async fn fetch(&self, manifest: &Manifest, path: &StorePath) -> Result<(), FetchError> {
        let key = path.to_string();
        let info = manifest
            .paths
            .get(path)
            .ok_or_else(|| NarError::NotInManifest {
                path: key.clone(),
                host: manifest.host.clone(),
                generation: manifest.generation.0,
            })?;
        if !matches!(info.compression.as_str(), "none" | "xz") {
            return Err(FetchError::Compression {
                path: path.clone(),
                compression: info.compression.clone(),
            });
        }
        let size = Self::file_size(manifest, path);
        std::fs::create_dir_all(&self.downloads).map_err(io(&self.downloads))?;
        let part = self.downloads.join(format!("{}.part", path.hash_part()));
        // A complete but bad file (or a server that ignored Range badly) gets one fresh try.
        for attempt in 0..2 {
            self.download(manifest, path, &info.url, &part, size)
                .await?;
            match self.check_file(manifest, &key, &part).await {
                Ok(()) => break,
                Err(e) if attempt == 0 => {
                    tracing::warn!(path = %path, error = %e, "downloaded file does not match; fetching it again");
                    std::fs::remove_file(&part).map_err(io(&part))?;
                }
                Err(e) => return Err(e),
            }
        }
        self.unpack(manifest, path, &part, info.compression == "xz")
            .await?;
        std::fs::remove_file(&part).map_err(io(&part))?;
        self.progress.paths.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn download(
        &self,
        manifest: &Manifest,
        path: &StorePath,
        rel: &str,
        part: &Path,
        size: u64,
    ) -> Result<(), FetchError> {
        let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        if have >= size {
            return Ok(());
        }
        let url = file_url(manifest, rel)?;
        let http = |reason: String| FetchError::Http {
            url: url.to_string(),
            reason,
        };
        let mut request = self.http.get(url.clone());
        if have > 0 {
            request = request.header(RANGE, format!("bytes={have}-"));
        }
        let response = request.send().await.map_err(|e| http(e.to_string()))?;
        let status = response.status();
        let resumed = status == StatusCode::PARTIAL_CONTENT
            && response
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with(&format!("bytes {have}-")));
        if !(status == StatusCode::OK || resumed) {
            return Err(http(format!("HTTP {status}")));
        }
        if have > 0 {
            tracing::info!(%path, have, resumed, "continuing a download");
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(resumed)
            .write(true)
            .truncate(!resumed)
            .open(part)
            .await
            .map_err(io(part))?;
        let mut written = if resumed { have } else { 0 };
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| http(e.to_string()))?;
            if written + chunk.len() as u64 > size {
                return Err(NarError::TooLong {
                    path: path.clone(),
                    what: "file size",
                    expected: size,
                }
                .into());
            }
            if self.crash_partial {
                let half = &chunk[..chunk.len() / 2];
                file.write_all(half).await.map_err(io(part))?;
                file.sync_all().await.map_err(io(part))?;
                return Err(FetchError::Crash);
            }
            file.write_all(&chunk).await.map_err(io(part))?;
            written += chunk.len() as u64;
            self.progress
                .bytes
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            self.progress
                .bytes_lifetime
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        file.sync_all().await.map_err(io(part))?;
        Ok(())
    }

    async fn check_file(
        &self,
        manifest: &Manifest,
        key: &str,
        part: &Path,
    ) -> Result<(), FetchError> {
        let mut check = NarCheck::file(manifest, key)?;
        let part = part.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::open(&part).map_err(io(&part))?;
            let mut buf = vec![0; 64 * 1024];
            loop {
                let n = std::io::Read::read(&mut file, &mut buf).map_err(io(&part))?;
                if n == 0 {
                    return check.finish().map_err(FetchError::from);
                }
                check.update(&buf[..n])?;
            }
        })
        .await
        .map_err(|e| FetchError::Io {
            path: PathBuf::from(key),
            source: std::io::Error::other(e),
        })?
    }

    async fn unpack(
        &self,
        manifest: &Manifest,
        path: &StorePath,
        part: &Path,
        xz: bool,
    ) -> Result<(), FetchError> {
        let check = NarCheck::nar(manifest, &path.to_string())?;
        let out = self.nar_file(path);
        let dir = self.incoming.join("nar");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let part = part.to_owned();
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            let tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io(&dir))?;
            let mut sink = CheckingWriter {
                check,
                file: std::io::BufWriter::new(tmp.as_file().try_clone().map_err(io(&dir))?),
                error: None,
            };
            let mut input = BufReader::new(std::fs::File::open(&part).map_err(io(&part))?);
            let result = if xz {
                lzma_rs::xz_decompress(&mut input, &mut sink).map_err(|e| e.to_string())
            } else {
                std::io::copy(&mut input, &mut sink)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            };
            if let Some(e) = sink.error.take() {
                return Err(FetchError::Nar(e));
            }
            if let Err(reason) = result {
                return Err(FetchError::Io {
                    path: part.clone(),
                    source: std::io::Error::other(format!("{path}: cannot decompress: {reason}")),
                });
            }
            sink.file.flush().map_err(io(&out))?;
            let CheckingWriter { check, file, .. } = sink;
            drop(file);
            check.finish()?;
            tmp.as_file().sync_all().map_err(io(&out))?;
            tmp.persist(&out).map_err(|e| FetchError::Io {
                path: out.clone(),
                source: e.error,
            })?;
            Ok(())
        })
        .await
        .map_err(|e| FetchError::Io {
            path: PathBuf::from("unpack"),
            source: std::io::Error::other(e),
        })?
    }
}

/// Writes the NAR out while checking it; the first mismatch stops the decompressor.
struct CheckingWriter<W: Write> {
    check: NarCheck,
    file: W,
    error: Option<NarError>,
}

impl<W: Write> Write for CheckingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Err(e) = self.check.update(buf) {
            self.error = Some(e);
            return Err(std::io::Error::other("NAR does not match the manifest"));
        }
        self.file.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}
