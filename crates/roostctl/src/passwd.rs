//! `roostctl passwd`: make an argon2id PHC hash.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use roost_config::PhcHash;
use roost_config::types::PASSWORD_MAX_BYTES as MAX_LEN;

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
    let hash = match PhcHash::from_password(&password) {
        Ok(hash) => hash,
        Err(why) => {
            eprintln!("roostctl: {why}");
            return Ok(ExitCode::from(1));
        }
    };
    writeln!(std::io::stdout(), "{hash}").context("writing the hash")?;
    Ok(ExitCode::SUCCESS)
}
