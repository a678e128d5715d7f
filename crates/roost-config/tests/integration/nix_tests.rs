//! The Nix layer and the settings model agree: every settings key the modules read or type
//! exists in roost-config's schema, every key the host module types is one it reads, and the
//! flake exports every module directory.
//! (Nothing Nix can be evaluated here; this reads the module files as text.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use roost_config::Settings;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn nix_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            nix_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "nix") {
            out.push(path);
        }
    }
}

/// Settings keys the Nix files read, as dotted paths with `*` for a zone name.
fn keys_read() -> BTreeSet<String> {
    let mut files = Vec::new();
    for dir in ["nixos-modules", "hosts", "vm-tests"] {
        nix_files(&repo().join(dir), &mut files);
    }
    let mut keys = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, _) in text.match_indices("settings.") {
            // NixOS's own `nix.settings.*` is not ours.
            if text[..i].ends_with("nix.") {
                continue;
            }
            let path: String = text[i + "settings.".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                .collect();
            let path = path.trim_end_matches('.');
            if !path.is_empty() {
                keys.insert(path.to_owned());
            }
        }
        // Zone attributes read through a zone binding: `zone.vlan`, `z.dhcp`, `zones.${z}.vlan`.
        for key in ["vlan", "dhcp"] {
            for binding in ["zone.", "z.", "}."] {
                if text.contains(&format!("{binding}{key}")) {
                    keys.insert(format!("zones.*.{key}"));
                }
            }
        }
    }
    keys
}

/// Settings keys the host module's options type: `wan.interface`, `zones.*.<key>`.
fn keys_typed() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo().join("nixos-modules/host/options.nix")).unwrap();
    let block = |start: &str| -> String {
        let from = text
            .find(start)
            .unwrap_or_else(|| panic!("{start} not in options.nix"));
        let rest = &text[from + start.len()..];
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find(|(_, c)| {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map_or(rest.len(), |(i, _)| i);
        rest[..end].to_owned()
    };
    let options_in = |body: &str| -> Vec<String> {
        body.lines()
            .filter_map(|l| {
                let (lhs, rhs) = l.split_once('=')?;
                rhs.trim()
                    .starts_with("mkOption")
                    .then(|| lhs.trim().trim_start_matches("options.").to_owned())
            })
            .collect()
    };
    let mut keys = BTreeSet::new();
    for key in options_in(&block("zoneType = types.submodule {")) {
        keys.insert(format!("zones.*.{key}"));
    }
    let wan = block("wan = mkOption {");
    for key in options_in(&wan[wan.find("options").unwrap_or(0)..]) {
        keys.insert(format!("wan.{key}"));
    }
    keys
}

/// Whether `path` names a key of the settings schema (a zone name stands for `*`).
fn in_schema(path: &str) -> bool {
    let example = std::fs::read_to_string(repo().join("examples/roost.toml")).unwrap();
    let mut doc: toml::Table = toml::from_str(&example).unwrap();
    let parts: Vec<&str> = path
        .split('.')
        .map(|p| if p == "*" { "lan" } else { p })
        .collect();
    let mut table = &mut doc;
    for part in &parts[..parts.len() - 1] {
        table = table
            .entry((*part).to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .unwrap();
    }
    // Any value: a wrong type is a different error from an unknown key.
    table.insert(
        parts[parts.len() - 1].to_owned(),
        toml::Value::Boolean(true),
    );
    match Settings::from_toml("probe.toml", &toml::to_string(&doc).unwrap()) {
        Ok(_) => true,
        Err(e) => !e
            .diagnostics
            .iter()
            .any(|d| d.message.contains("unknown key") && d.path.to_string() == parts.join(".")),
    }
}

#[test]
fn every_settings_key_the_nix_modules_read_exists_in_the_schema() {
    let read = keys_read();
    assert!(
        read.contains("wan.interface") && read.contains("zones.*.vlan"),
        "{read:?}"
    );
    for key in &read {
        assert!(
            in_schema(key),
            "the Nix layer reads settings.{key}, which roost.toml does not have"
        );
    }
    assert!(
        !in_schema("zones.*.colour"),
        "the schema probe must be able to fail"
    );
}

#[test]
fn every_key_the_host_module_types_is_in_the_schema_and_read() {
    let typed = keys_typed();
    assert_eq!(
        typed,
        ["wan.interface", "zones.*.dhcp", "zones.*.vlan"]
            .map(String::from)
            .into(),
        "options.nix types other keys: update this test and the modules together"
    );
    let read = keys_read();
    for key in &typed {
        assert!(
            in_schema(key),
            "options.nix types settings.{key}, which roost.toml does not have"
        );
        assert!(
            read.contains(key),
            "options.nix types settings.{key} but no module reads it"
        );
    }
}

#[test]
fn the_flake_exports_every_module_directory_under_its_own_name() {
    let flake = std::fs::read_to_string(repo().join("flake.nix")).unwrap();
    let mut exported = BTreeSet::new();
    for line in flake.lines() {
        let Some((name, value)) = line.trim().split_once(" = ./nixos-modules/") else {
            continue;
        };
        let dir = value.trim_end_matches(';');
        assert_eq!(name, dir, "flake.nix exports nixos-modules/{dir} as {name}");
        exported.insert(dir.to_string());
    }
    let dirs: BTreeSet<String> = std::fs::read_dir(repo().join("nixos-modules"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        // lib/ holds helpers the modules import, not a module of its own.
        .filter(|name| name != "lib")
        .collect();
    assert!(dirs.contains("host") && dirs.contains("dns"), "{dirs:?}");
    assert_eq!(
        exported, dirs,
        "nixosModules in flake.nix and the directories of nixos-modules/ differ"
    );
}
