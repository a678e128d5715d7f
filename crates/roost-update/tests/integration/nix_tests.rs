//! The Nix modules write the files the update agent and the host step read
//! (`/etc/roost/update-system.toml` in the update VM, `update-host.toml` on the host): every key
//! they write is one the Rust side takes. (Nothing Nix can be evaluated here; this reads the
//! module files as text.)

use std::path::{Path, PathBuf};

use roost_update::agent::system::SystemSettings;
use roost_update::host::HostSettings;

fn module(path: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(&file).unwrap()
}

/// The keys of the attribute set given to `.generate "NAME" { ... }` in `text`.
fn generated_keys(text: &str, name: &str) -> Vec<String> {
    let start = text
        .find(&format!(".generate \"{name}\" {{"))
        .unwrap_or_else(|| panic!("no generate of {name}"));
    let body = &text[start..];
    let body = &body[body.find('{').unwrap() + 1..];
    let mut depth = 1;
    let end = body
        .char_indices()
        .find(|(_, c)| {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            depth == 0
        })
        .unwrap()
        .0;
    let mut keys = Vec::new();
    for stmt in body[..end].split(';') {
        let stmt = stmt.trim();
        if let Some(rest) = stmt.strip_prefix("inherit") {
            let rest = rest.trim();
            let names = rest.rsplit(')').next().unwrap_or(rest);
            keys.extend(names.split_whitespace().map(str::to_owned));
        } else if let Some((key, _)) = stmt.split_once('=') {
            keys.push(key.trim().to_owned());
        }
    }
    keys.retain(|k| !k.is_empty());
    keys
}

/// A TOML document with a plausible value for each key.
fn document(keys: &[String]) -> String {
    keys.iter()
        .map(|k| {
            let value = match k.as_str() {
                "root" | "spool" | "nix_bin" | "store" | "profile" => "\"/x\"",
                "hostname" => "\"roost\"",
                "restart" => "[\"systemctl\", \"restart\", \"microvm@{vm}.service\"]",
                "checks" => "[]",
                other => panic!("no sample value for {other:?}: add one"),
            };
            format!("{k} = {value}\n")
        })
        .collect()
}

#[test]
fn the_host_module_writes_only_keys_the_host_step_takes() {
    let keys = generated_keys(
        &module("nixos-modules/host/default.nix"),
        "update-host.toml",
    );
    assert!(keys.contains(&"hostname".to_owned()), "{keys:?}");
    HostSettings::from_toml(Path::new("update-host.toml"), &document(&keys))
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_update_guest_module_writes_only_keys_the_agent_takes() {
    let keys = generated_keys(
        &module("nixos-modules/update/default.nix"),
        "update-system.toml",
    );
    assert!(keys.contains(&"spool".to_owned()), "{keys:?}");
    SystemSettings::from_toml(Path::new("update-system.toml"), &document(&keys))
        .unwrap_or_else(|e| panic!("{e}"));
}
