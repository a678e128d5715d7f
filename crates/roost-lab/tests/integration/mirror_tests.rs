//! The lab e2e tests and the NixOS VM tests check the same behaviours: every lab behaviour
//! test is mirrored by exactly one vm-test (its `# Mirrors:` header), every mirrored name is a
//! real lab test, and every vm-test file is collected into the flake's checks.
//! (`lab_tests.rs` tests the lab harness itself, which has no VM counterpart.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn lab_behaviours() -> BTreeSet<String> {
    let dir = repo().join("crates/roost-lab/tests/integration");
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|n| n == "lab_tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Test functions only: `fn lab_...` right after a `#[test]` line.
        let mut after_test_attr = false;
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("fn lab_").filter(|_| after_test_attr) {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                names.insert(format!("lab_{name}"));
            }
            if !line.is_empty() {
                after_test_attr = line == "#[test]";
            }
        }
    }
    names
}

/// Mirrored lab test name -> the vm-test files that claim it.
fn vm_mirrors() -> (BTreeMap<String, Vec<String>>, Vec<String>) {
    let dir = repo().join("vm-tests");
    let mut mirrors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut any = false;
        for line in text.lines() {
            if let Some(name) = line.trim().strip_prefix("# Mirrors:") {
                mirrors
                    .entry(name.trim().to_owned())
                    .or_default()
                    .push(file.clone());
                any = true;
            }
        }
        if any {
            files.push(file);
        }
    }
    (mirrors, files)
}

#[test]
fn vm_tests_mirror_the_lab_behaviours_one_to_one() {
    let lab = lab_behaviours();
    assert!(lab.len() >= 6, "found too few lab tests: {lab:?}");
    let (mirrors, files) = vm_mirrors();
    for name in &lab {
        match mirrors.get(name).map(Vec::as_slice) {
            Some([_]) => {}
            Some(many) => panic!("{name} is mirrored by several vm-tests: {many:?}"),
            None => panic!("lab test {name} has no vm-test: add `# Mirrors: {name}` to one"),
        }
    }
    for (name, files) in &mirrors {
        assert!(
            lab.contains(name),
            "{files:?} mirror {name}, which is no lab test"
        );
    }
    let collected = std::fs::read_to_string(repo().join("vm-tests/default.nix")).unwrap();
    for file in files {
        assert!(
            collected.contains(&format!("./{file}")),
            "vm-tests/{file} is not in default.nix"
        );
    }
}
