//! The generation manifest: the one TUF target per host, channel and generation.
//!
//! Target name: `<host>/<channel>/<generation>.json` (see [`target_name`]). The manifest names
//! the system toplevel, lists every store path of its closure with NarHash, NarSize, references
//! and the NAR's URL in the binary cache, and per service VM the store paths of that VM's
//! closure, so the agent can tell which VMs changed between two generations.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use roost_config::Generation;
use serde::{Deserialize, Serialize};

use crate::nix::{self, CacheError, Sha256, StorePath};

/// The manifest format this code writes and reads.
pub const FORMAT: u32 = 1;

/// One generation of one host on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: u32,
    /// The router's host name (`nixosConfigurations.<host>`).
    pub host: String,
    /// The release channel.
    pub channel: String,
    /// The generation number, increasing per host and channel.
    pub generation: Generation,
    /// `config.system.build.toplevel` of this generation.
    pub toplevel: StorePath,
    /// Base URL of the binary cache; each path's `url` is relative to it.
    pub cache_url: String,
    /// Per service VM: the store paths of its closure.
    pub services: BTreeMap<String, BTreeSet<StorePath>>,
    /// Every store path of the toplevel's closure.
    pub paths: BTreeMap<StorePath, PathInfo>,
}

/// What the agent needs to fetch and check one store path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathInfo {
    /// sha256 of the uncompressed NAR.
    pub nar_hash: Sha256,
    /// Size of the uncompressed NAR.
    pub nar_size: u64,
    /// Store paths it refers to.
    pub references: BTreeSet<StorePath>,
    /// The NAR file, relative to `cache_url`.
    pub url: String,
    /// Compression of the file at `url` (`none`, `xz`, `zstd`, ...).
    pub compression: String,
    /// sha256 of the file at `url` (for compressed files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_hash: Option<Sha256>,
    /// Size of the file at `url` (for compressed files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
}

/// The TUF target name of a generation: `<host>/<channel>/<generation>.json`.
pub fn target_name(host: &str, channel: &str, generation: Generation) -> String {
    format!("{host}/{channel}/{}.json", generation.0)
}

/// The generation in a target name, if it is one of `host` on `channel`.
pub fn parse_target_name(name: &str, host: &str, channel: &str) -> Option<Generation> {
    let rest = name.strip_prefix(host)?.strip_prefix('/')?;
    let number = rest.strip_prefix(channel)?.strip_prefix('/')?;
    let number = number.strip_suffix(".json")?;
    if number.starts_with('0') || !number.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    number.parse().ok().map(Generation)
}

/// A host or channel name: lowercase letters, digits and dashes, starting with a letter.
pub fn valid_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A manifest is not consistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON of the right shape.
    #[error("manifest does not parse: {0}")]
    Parse(String),
    /// Another format version.
    #[error("manifest format {0} is not supported (this build reads {FORMAT})")]
    Format(u32),
    /// Host, channel or service name not valid.
    #[error("manifest has an invalid {what} name {name:?}")]
    BadLabel {
        /// host, channel or service.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// Generation 0.
    #[error("manifest has generation 0; generations start at 1")]
    ZeroGeneration,
    /// A path is referenced but not described.
    #[error("manifest is not closed: {referrer} refers to {missing}, which it does not list")]
    NotClosed {
        /// Who refers to it (or `toplevel`, or a service).
        referrer: String,
        /// The missing path.
        missing: StorePath,
    },
    /// A NAR URL is not a plain relative file name.
    #[error("manifest gives {path} the URL {url:?}, which is not a file under nar/")]
    BadUrl {
        /// The store path.
        path: StorePath,
        /// Its URL.
        url: String,
    },
    /// The manifest is not the one its TUF target name says.
    #[error("target {target} holds a manifest for {host}/{channel} generation {generation}")]
    WrongTarget {
        /// The target name.
        target: String,
        /// Its host.
        host: String,
        /// Its channel.
        channel: String,
        /// Its generation.
        generation: u64,
    },
}

impl Manifest {
    /// Parses and validates manifest JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        let manifest: Self =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Parse(e.to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// The JSON written as the TUF target.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// This manifest's TUF target name.
    pub fn target_name(&self) -> String {
        target_name(&self.host, &self.channel, self.generation)
    }

    /// Checks names, closure completeness and URLs.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.format != FORMAT {
            return Err(ManifestError::Format(self.format));
        }
        for (what, name) in [("host", &self.host), ("channel", &self.channel)] {
            if !valid_label(name) {
                return Err(ManifestError::BadLabel {
                    what,
                    name: name.clone(),
                });
            }
        }
        if self.generation.0 == 0 {
            return Err(ManifestError::ZeroGeneration);
        }
        let listed = |referrer: &str, path: &StorePath| {
            if self.paths.contains_key(path) {
                Ok(())
            } else {
                Err(ManifestError::NotClosed {
                    referrer: referrer.to_owned(),
                    missing: path.clone(),
                })
            }
        };
        listed("toplevel", &self.toplevel)?;
        for (service, closure) in &self.services {
            if !valid_label(service) {
                return Err(ManifestError::BadLabel {
                    what: "service",
                    name: service.clone(),
                });
            }
            for path in closure {
                listed(&format!("service {service}"), path)?;
            }
        }
        for (path, info) in &self.paths {
            for reference in &info.references {
                listed(&path.to_string(), reference)?;
            }
            let url_ok = info.url.starts_with("nar/")
                && info.url.len() > 4
                && !info.url.contains("..")
                && info.url[4..]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !url_ok {
                return Err(ManifestError::BadUrl {
                    path: path.clone(),
                    url: info.url.clone(),
                });
            }
        }
        Ok(())
    }

    /// Checks that this manifest is the one `target` names.
    pub fn check_target(&self, target: &str) -> Result<(), ManifestError> {
        if target == self.target_name() {
            Ok(())
        } else {
            Err(ManifestError::WrongTarget {
                target: target.to_owned(),
                host: self.host.clone(),
                channel: self.channel.clone(),
                generation: self.generation.0,
            })
        }
    }
}

/// The subset of a Hydra build (`GET /build/<id>` JSON) that `publish` reads.
#[derive(Debug, Clone, Deserialize)]
pub struct HydraBuild {
    /// `nixosConfigurations.<host>.config.system.build.toplevel` or similar.
    #[serde(default)]
    pub job: Option<String>,
    /// 1 when the build finished.
    #[serde(default = "one")]
    pub finished: u32,
    /// 0 when it succeeded.
    #[serde(default)]
    pub buildstatus: u32,
    /// Output name to path; `out` is the toplevel.
    pub buildoutputs: BTreeMap<String, HydraOutput>,
}

fn one() -> u32 {
    1
}

/// One output of a Hydra build.
#[derive(Debug, Clone, Deserialize)]
pub struct HydraOutput {
    /// The store path.
    pub path: String,
}

impl HydraBuild {
    /// The host of a `nixosConfigurations.<host>....` job.
    pub fn host(&self) -> Option<&str> {
        self.job
            .as_deref()?
            .strip_prefix("nixosConfigurations.")?
            .split('.')
            .next()
    }
}

/// What `publish` needs to build a manifest.
#[derive(Debug, Clone)]
pub struct ManifestInput {
    /// The Hydra build.
    pub build: HydraBuild,
    /// The host; defaults to the one in the job name.
    pub host: Option<String>,
    /// The channel.
    pub channel: String,
    /// The generation number.
    pub generation: Generation,
    /// Service VM name to its store path (the VM runner), which must be in the closure.
    pub services: BTreeMap<String, String>,
    /// The `file://` binary cache directory (`nix copy --to file://DIR`).
    pub cache_dir: PathBuf,
    /// The URL the agent will fetch that cache from.
    pub cache_url: String,
}

/// Building a manifest failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildManifestError {
    /// The Hydra build did not succeed.
    #[error("the build did not succeed (finished {finished}, buildstatus {status})")]
    BuildFailed {
        /// Hydra's `finished`.
        finished: u32,
        /// Hydra's `buildstatus`.
        status: u32,
    },
    /// No `out` output.
    #[error("the build has no `out` output")]
    NoOut,
    /// No host given and none in the job name.
    #[error("no host given and the job name does not name one")]
    NoHost,
    /// A store path in the input is invalid.
    #[error("{what}: {source}")]
    StorePath {
        /// Which input.
        what: String,
        /// Why.
        source: nix::StorePathError,
    },
    /// A service VM is not part of the system.
    #[error("service {service}: {path} is not in the closure of the toplevel")]
    ServiceOutsideClosure {
        /// The service.
        service: String,
        /// Its path.
        path: StorePath,
    },
    /// Reading or checking the binary cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The result is not a valid manifest.
    #[error(transparent)]
    Invalid(#[from] ManifestError),
}

/// Builds the manifest of a generation from a Hydra build and a binary cache directory, checking
/// every narinfo and every NAR file's hash and size on the way.
pub fn build_manifest(input: &ManifestInput) -> Result<Manifest, BuildManifestError> {
    let build = &input.build;
    if build.finished != 1 || build.buildstatus != 0 {
        return Err(BuildManifestError::BuildFailed {
            finished: build.finished,
            status: build.buildstatus,
        });
    }
    let out = build
        .buildoutputs
        .get("out")
        .ok_or(BuildManifestError::NoOut)?;
    let toplevel: StorePath = out
        .path
        .parse()
        .map_err(|source| BuildManifestError::StorePath {
            what: "buildoutputs.out.path".to_owned(),
            source,
        })?;
    let host = input
        .host
        .clone()
        .or_else(|| build.host().map(str::to_owned))
        .ok_or(BuildManifestError::NoHost)?;
    let entries = nix::read_closure(&input.cache_dir, [toplevel.clone()])?;
    for entry in entries.values() {
        nix::check_cache_file(&input.cache_dir, entry)?;
    }
    let mut services = BTreeMap::new();
    for (service, path) in &input.services {
        let path: StorePath = path
            .parse()
            .map_err(|source| BuildManifestError::StorePath {
                what: format!("service {service}"),
                source,
            })?;
        if !entries.contains_key(&path) {
            return Err(BuildManifestError::ServiceOutsideClosure {
                service: service.clone(),
                path,
            });
        }
        services.insert(service.clone(), nix::closure_of(&entries, &path));
    }
    let paths = entries
        .into_iter()
        .map(|(path, e)| {
            let info = PathInfo {
                nar_hash: e.nar_hash,
                nar_size: e.nar_size,
                references: e.references,
                url: e.url,
                compression: e.compression,
                file_hash: e.file_hash,
                file_size: e.file_size,
            };
            (path, info)
        })
        .collect();
    let manifest = Manifest {
        format: FORMAT,
        host,
        channel: input.channel.clone(),
        generation: input.generation,
        toplevel,
        cache_url: input.cache_url.clone(),
        services,
        paths,
    };
    manifest.validate()?;
    Ok(manifest)
}

/// Reads a Hydra build JSON file.
pub fn read_hydra_build(path: &Path) -> Result<HydraBuild, std::io::Error> {
    let text = std::fs::read(path)?;
    serde_json::from_slice(&text).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_target_names_of_the_host_and_channel() {
        assert_eq!(
            parse_target_name("r1/stable/42.json", "r1", "stable"),
            Some(Generation(42))
        );
        assert_eq!(
            parse_target_name("r1/testing/42.json", "r1", "stable"),
            None
        );
        assert_eq!(
            parse_target_name("r10/stable/42.json", "r1", "stable"),
            None
        );
        assert_eq!(
            parse_target_name("r1/stable/042.json", "r1", "stable"),
            None
        );
        assert_eq!(parse_target_name("r1/stable/x.json", "r1", "stable"), None);
        assert_eq!(
            target_name("r1", "stable", Generation(7)),
            "r1/stable/7.json"
        );
    }

    #[test]
    fn rejects_manifest_that_is_not_closed() {
        let a: StorePath = "/nix/store/0c4nfmfq1jlv1jl3f8zpkv7v2nhrr3x7-a"
            .parse()
            .unwrap();
        let b: StorePath = "/nix/store/1c4nfmfq1jlv1jl3f8zpkv7v2nhrr3x7-b"
            .parse()
            .unwrap();
        let info = PathInfo {
            nar_hash: Sha256::of(b""),
            nar_size: 1,
            references: [b.clone()].into(),
            url: "nar/a.nar".to_owned(),
            compression: "none".to_owned(),
            file_hash: None,
            file_size: None,
        };
        let m = Manifest {
            format: FORMAT,
            host: "r1".to_owned(),
            channel: "stable".to_owned(),
            generation: Generation(1),
            toplevel: a.clone(),
            cache_url: "http://127.0.0.1/".to_owned(),
            services: BTreeMap::new(),
            paths: [(a, info)].into(),
        };
        let err = m.validate().unwrap_err();
        assert!(matches!(err, ManifestError::NotClosed { missing, .. } if missing == b));
    }
}
