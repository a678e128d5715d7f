//! roostctl integration tests: the real binary, as a user runs it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod config_tests;
mod leases_tests;
mod net_tests;
mod passwd_tests;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// Runs roostctl with `args` and `stdin`.
pub(crate) fn roostctl(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_roostctl"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("roostctl starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("roostctl finishes")
}

/// The repository's example settings.
pub(crate) fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/roost.toml")
}
