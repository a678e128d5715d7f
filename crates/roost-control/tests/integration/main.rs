//! Integration tests of the control API: through `oneshot` and over a real socket.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod api_tests;
mod server_tests;

use std::sync::Mutex;

use roost_control::{ConfigRejected, Daemon};

/// A daemon whose config is one string; `bad` is invalid and `unappliable` fails to apply.
#[derive(Default)]
pub(crate) struct Fake {
    pub(crate) config: Mutex<String>,
    pub(crate) unhealthy: Mutex<Option<String>>,
}

impl Daemon for Fake {
    async fn health(&self) -> Result<(), String> {
        match self.unhealthy.lock().unwrap().clone() {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    async fn metrics(&self) -> String {
        "# TYPE fake_up gauge\nfake_up 1\n".to_owned()
    }

    async fn state(&self) -> serde_json::Value {
        serde_json::json!({ "config": *self.config.lock().unwrap() })
    }

    async fn put_config(&self, toml: String) -> Result<(), ConfigRejected> {
        match toml.trim() {
            "bad" => Err(ConfigRejected::Invalid("`bad` at line 1".to_owned())),
            "unappliable" => Err(ConfigRejected::NotApplied("device busy".to_owned())),
            t => {
                *self.config.lock().unwrap() = t.to_owned();
                Ok(())
            }
        }
    }
}

pub(crate) const TOKEN: &str = "test-token-0123456789";
