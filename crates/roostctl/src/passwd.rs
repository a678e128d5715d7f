//! `roostctl passwd`: make an argon2id PHC hash.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use argon2::Argon2;
use argon2::password_hash::PasswordHasher;

/// Shorter passwords are refused (NIST SP 800-63B's minimum).
const MIN_LEN: usize = 8;
/// Longer input is refused rather than hashed: a bound on work per hash.
const MAX_LEN: usize = 1024;

pub(crate) fn run() -> anyhow::Result<ExitCode> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("password: ").context("reading the password")?;
        let again = rpassword::prompt_password("again: ").context("reading the password")?;
        if first != again {
            eprintln!("roostctl: the two passwords differ");
            return Ok(ExitCode::from(1));
        }
        first
    } else {
        let mut line = String::new();
        std::io::BufReader::new(std::io::stdin().lock().take(MAX_LEN as u64 + 2))
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    let chars = password.chars().count();
    if chars < MIN_LEN || password.len() > MAX_LEN {
        eprintln!("roostctl: a password needs {MIN_LEN} to {MAX_LEN} characters");
        return Ok(ExitCode::from(1));
    }
    let hash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?;
    writeln!(std::io::stdout(), "{hash}").context("writing the hash")?;
    Ok(ExitCode::SUCCESS)
}
