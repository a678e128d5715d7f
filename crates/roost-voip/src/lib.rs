//! # roost-voip: the VoIP VM's agent (ADR 0014)
//!
//! Kamailio is the registrar (no Rust one exists that we would trust more); this daemon gives
//! the VoIP VM the control API every Roost VM has, on its service link, so the web UI can show
//! which phones are registered:
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /health` | `200` once Kamailio answers its JSON-RPC, else `503` and why |
//! | `GET /metrics` | `roost_voip_up`, `roost_voip_registered{phone}` |
//! | `GET /state` | per phone its name, extension, whether it is registered, and each registration's address, user agent and seconds to expiry |
//! | `PUT /config` | `200` for the view it runs; another is `422`: new phones take a restart of the VM (a new generation) |
//!
//! Kamailio is asked through its JSON-RPC on loopback ([`kamailio`]).

pub mod kamailio;

use std::sync::Arc;

use roost_config::View as _;
use roost_config::voip::VoipView;
use roost_control::ConfigRejected;
use serde_json::json;

use crate::kamailio::{Contact, Rpc, RpcError};

/// The agent: its view and a client of Kamailio's JSON-RPC.
#[derive(Debug)]
pub struct Agent {
    view: VoipView,
    rpc: Rpc,
}

impl Agent {
    /// An agent for `view`, asking the Kamailio whose JSON-RPC is on `127.0.0.1:rpc_port`.
    pub fn new(view: VoipView, rpc_port: u16) -> Result<Self, String> {
        Ok(Self {
            view,
            rpc: Rpc::new(rpc_port)?,
        })
    }

    async fn contacts(&self) -> Result<Vec<Contact>, RpcError> {
        Ok(kamailio::contacts(&self.rpc.call("ul.dump").await?))
    }
}

impl roost_control::Daemon for Agent {
    async fn health(&self) -> Result<(), String> {
        self.rpc
            .call("core.uptime")
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    async fn metrics(&self) -> String {
        let contacts = self.contacts().await;
        let mut out = format!(
            "# HELP roost_voip_up Whether Kamailio answers.\n\
             # TYPE roost_voip_up gauge\nroost_voip_up {}\n\
             # HELP roost_voip_registered Whether each phone is registered.\n\
             # TYPE roost_voip_registered gauge\n",
            u8::from(contacts.is_ok())
        );
        if let Ok(contacts) = &contacts {
            for (name, phone) in &self.view.voip.phones {
                let registered = contacts.iter().any(|c| c.extension == phone.extension);
                out.push_str(&format!(
                    "roost_voip_registered{{phone=\"{name}\"}} {}\n",
                    u8::from(registered)
                ));
            }
        }
        out
    }

    async fn state(&self) -> serde_json::Value {
        let contacts = self.contacts().await;
        let phones: Vec<_> = self
            .view
            .voip
            .phones
            .iter()
            .map(|(name, phone)| {
                let registrations: Vec<_> = contacts
                    .iter()
                    .flatten()
                    .filter(|c| c.extension == phone.extension)
                    .map(|c| {
                        json!({
                            "address": c.received.as_ref().unwrap_or(&c.contact),
                            "user_agent": c.user_agent,
                            "expires": c.expires,
                        })
                    })
                    .collect();
                json!({
                    "name": name,
                    "extension": phone.extension,
                    "registered": !registrations.is_empty(),
                    "registrations": registrations,
                })
            })
            .collect();
        let mut state = json!({
            "zone": self.view.voip.zone,
            "registrar": format!("{}:{}", self.view.router, roost_config::voip::SIP_PORT),
            "phones": phones,
        });
        if let Err(e) = contacts {
            state["error"] = json!(e.to_string());
        }
        state
    }

    async fn put_config(&self, toml: String) -> Result<(), ConfigRejected> {
        let view = VoipView::from_toml("PUT /config", &toml)
            .map_err(|e| ConfigRejected::Invalid(e.to_string()))?;
        if view == self.view {
            return Ok(());
        }
        Err(ConfigRejected::NotApplied(
            "the phones change when the VoIP VM restarts with the new generation".into(),
        ))
    }
}

/// Serves the control API until SIGTERM.
pub async fn run(view: VoipView) -> anyhow::Result<()> {
    let token = roost_control::Token::load(&view.control.token_file)?;
    let listen = view.control.listen;
    let agent = Agent::new(view, roost_config::voip::RPC_PORT).map_err(anyhow::Error::msg)?;
    let app = roost_control::router(Arc::new(agent), token, roost_control::Limits::default());
    let listener = roost_control::bind(listen.into()).await?;
    roost_control::serve(listener, app, roost_control::shutdown_signal()).await?;
    Ok(())
}
