//! # roost-mqtt: the MQTT broker for the home's IoT devices
//!
//! Runs in the **mqtt VM**, on its service link to the firewall VM (`svc`, ADR 0001). Clients in
//! each zone reach it on their router address (1883, 8883 with TLS): the firewall DNATs that
//! address to this VM and keeps the source, so the broker tells a client's zone from its source
//! address and applies that zone's listener (TLS or not, anonymous access or not).
//!
//! - **Ports**: each listener's port (`listeners[].port`, default 1883, 8883 with `tls`) on the
//!   service-link address (`control.listen`'s IP); the control API on `control.listen` (TCP
//!   9100: `/health`, `/metrics`, `/state`, `PUT /config`, and `PUT /telemetry`, which the web
//!   VM uses to publish the router's telemetry retained under `roost/`; bearer token; see
//!   `roost-control`).
//! - **Files**: the view `/etc/roost/mqtt.toml` (`--config`); TLS certificate and key named in
//!   it; `$STATE_DIRECTORY/broker.json` (default `/var/lib/roost/mqtt`), the retained messages
//!   and persistent sessions, replaced atomically (see [`store`]).
//!
//! MQTT 3.1.1 and 5.0, QoS 0-2, retained messages, persistent sessions (clean start false,
//! session expiry, offline queueing, message expiry), wills with delay, topic aliases from the
//! client, subscription options (No Local, Retain As Published, Retain Handling), subscription
//! identifiers, Receive Maximum both ways, Maximum Packet Size both ways, Server Keep Alive.
//! Users log in with argon2id-hashed passwords; each may publish and subscribe only where its
//! filters allow; `roost/#` is the router's telemetry: readable by every user, writable by none.
//! Shared subscriptions and enhanced authentication (AUTH) are not offered (CONNACK says so).
//! docs/adr/0007-mqtt-broker.md says why this is our own core and not rumqttd.
//!
//! Layers, from the wire in:
//! - [`server`]: sockets, TLS (rustls on aws-lc-rs), one task per connection, the broker task,
//!   the snapshot thread, the control API. All the IO lives here.
//! - [`codec`]: rumqttc's MQTT 3.1.1 and 5 codecs, with 3.1.1 mapped onto the MQTT 5 types.
//! - [`auth`]: argon2id checks with a cache of successful verifications, permissions.
//! - [`core`]: the sans-IO broker, `(state, event, now) -> actions`.
//! - [`topic`]: topic names and filters, matching, ACL coverage.
//! - [`store`]: the durable snapshot.
//!
//! Without the default `server` feature only the sans-IO layers build (codec, core, topic,
//! store): what the fuzz target needs, without the TLS and HTTP stack.

#[cfg(feature = "server")]
pub mod auth;
pub mod codec;
pub mod core;
#[cfg(feature = "server")]
mod daemon;
#[cfg(feature = "server")]
pub mod server;
pub mod store;
pub mod topic;
#[cfg(feature = "server")]
pub mod ws;

#[cfg(feature = "server")]
pub use daemon::{RunError, Telemetry, run};
