//! Settings text as a user uploads it (the web UI's backup restore, `PUT /api/settings`,
//! `roostctl config check`): parse, report every error with its position, or validate. Nothing
//! may panic, every error must name a key, and valid settings must survive their own rendering.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_config::Settings;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Settings::from_toml("backup", text) {
        Ok(settings) => {
            let again = Settings::from_toml("rendered", &settings.to_toml())
                .expect("rendered settings must parse");
            assert_eq!(again, settings, "rendering must keep the settings");
        }
        Err(errors) => {
            assert!(
                !errors.diagnostics.is_empty(),
                "an error without a diagnostic"
            );
            let _ = errors.to_string();
        }
    }
});
