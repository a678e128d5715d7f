//! `roostctl config ...`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use roost_config::{LoadError, Service, Settings};

/// Loads settings; invalid settings are printed (every error) and turn into exit code 1.
fn load(file: &Path) -> anyhow::Result<Result<Settings, ExitCode>> {
    match Settings::load(file) {
        Ok(settings) => Ok(Ok(settings)),
        Err(LoadError::Invalid(errors)) => {
            eprintln!("{errors}");
            let n = errors.diagnostics.len();
            eprintln!(
                "{}: {n} error{}",
                file.display(),
                if n == 1 { "" } else { "s" }
            );
            Ok(Err(ExitCode::from(1)))
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn check(file: &Path) -> anyhow::Result<ExitCode> {
    Ok(match load(file)? {
        Ok(_) => {
            eprintln!("{}: ok", file.display());
            ExitCode::SUCCESS
        }
        Err(code) => code,
    })
}

pub(crate) fn show(file: &Path, service: Service) -> anyhow::Result<ExitCode> {
    Ok(match load(file)? {
        Ok(settings) => {
            std::io::stdout()
                .write_all(settings.render_view(service).as_bytes())
                .context("writing the view")?;
            ExitCode::SUCCESS
        }
        Err(code) => code,
    })
}
