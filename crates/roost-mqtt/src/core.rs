//! The sans-IO broker core: sessions, subscriptions, retained messages, QoS flows, wills and
//! timers. Every entry point takes `now` and leaves [`Action`]s (packets to send, connections to
//! close) in [`Broker::drain`]; nothing here touches a socket or a clock, so each MQTT rule is a
//! unit test below.
//!
//! The core works with MQTT 5 packet types (a superset of 3.1.1); the codec maps 3.1.1 onto
//! them and back, and the core only asks a connection's [`Version`] where the two differ
//! (properties, reason codes, a server's DISCONNECT, session expiry).
//!
//! Authentication happens before [`Broker::connect`] (argon2 is slow and belongs off this
//! thread); the core gets the client's [`Perms`] and enforces them on every PUBLISH and
//! SUBSCRIBE.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, ConnAckProperties, Connect, ConnectReturnCode, Disconnect, DisconnectReasonCode,
    LastWill, LastWillProperties, Packet, PingResp, PubAck, PubAckReason, PubComp, PubCompReason,
    PubRec, PubRecReason, PubRel, Publish, PublishProperties, RetainForwardRule, SubAck, Subscribe,
    SubscribeReasonCode, UnsubAck, UnsubAckReason, Unsubscribe,
};

use crate::codec::Version;
use crate::store::{Snapshot, StoredInflight, StoredMessage, StoredSession, StoredSub};
use crate::topic;

/// A network connection, numbered by the edge; never reused.
pub type ConnId = u64;

/// What the edge must do.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // short-lived, drained right away; boxing would cost more
pub enum Action {
    /// Write this packet to the connection.
    Send(ConnId, Packet),
    /// Write what is queued, then close the connection.
    Close(ConnId),
}

/// The core's bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest PUBLISH payload accepted.
    pub max_message_bytes: u32,
    /// Largest packet accepted (advertised as Maximum Packet Size).
    pub max_packet_bytes: u32,
    /// Unacknowledged incoming QoS 2 publications per client (advertised as Receive Maximum).
    pub receive_maximum: u16,
    /// Total bytes of retained topics and payloads.
    pub max_retained_bytes: u64,
    /// Messages queued per session (offline, or beyond the client's Receive Maximum).
    pub max_queued: usize,
    /// Longest keepalive; a v5 client asking more (or 0) is told Server Keep Alive.
    pub max_keepalive: u16,
    /// Longest session expiry, seconds (3.1.1 persistent sessions get this).
    pub max_session_expiry: u32,
    /// Topic Alias Maximum advertised to clients.
    pub topic_alias_max: u16,
}

impl Limits {
    /// The limits of a view, with the broker's fixed policy for the rest.
    pub fn from_view(l: &roost_config::settings::MqttLimits) -> Self {
        Self {
            max_message_bytes: l.max_message_bytes,
            // Room for the topic (at most 64 KiB) and properties beside the payload.
            max_packet_bytes: l.max_message_bytes.saturating_add(65_536 + 4096),
            receive_maximum: l.max_inflight.max(1),
            max_retained_bytes: l.max_retained_bytes,
            max_queued: 1000,
            max_keepalive: 600,
            max_session_expiry: 7 * 24 * 3600,
            topic_alias_max: 16,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::from_view(&roost_config::settings::MqttLimits::default())
    }
}

/// What an authenticated client may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Perms {
    /// Topic filters it may publish to (never `roost/`).
    pub publish: Vec<String>,
    /// Topic filters it may subscribe to (plus `roost/#` for everyone).
    pub subscribe: Vec<String>,
}

impl Perms {
    /// Everything but publishing to `roost/` (anonymous clients where a zone allows them).
    pub fn anything() -> Self {
        Self {
            publish: vec!["#".to_owned()],
            subscribe: vec!["#".to_owned()],
        }
    }

    /// Whether the client may publish to `topic`.
    pub fn may_publish(&self, topic: &str) -> bool {
        !topic::is_router_topic(topic) && self.publish.iter().any(|p| topic::matches(topic, p))
    }

    /// Whether the client may subscribe to `filter`.
    pub fn may_subscribe(&self, filter: &str) -> bool {
        topic::covers("roost/#", filter) || self.subscribe.iter().any(|p| topic::covers(p, filter))
    }
}

/// An authenticated CONNECT, handed over by the edge.
#[derive(Debug, Clone)]
pub struct Login {
    /// Protocol version.
    pub version: Version,
    /// User name, `None` for an anonymous client.
    pub user: Option<String>,
    /// Its permissions.
    pub perms: Arc<Perms>,
    /// The CONNECT.
    pub connect: Connect,
    /// Its will.
    pub will: Option<LastWill>,
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// PUBLISH packets received.
    pub messages_in: u64,
    /// PUBLISH packets sent.
    pub messages_out: u64,
    /// Deliveries dropped (queue full, too large for the client, slow client).
    pub dropped: u64,
    /// Deliveries dropped because the message expired.
    pub expired: u64,
    /// Publications refused by the ACL.
    pub denied: u64,
    /// Retained messages not stored because the store was full.
    pub retained_refused: u64,
    /// Connections closed for a protocol violation or an exceeded limit.
    pub kicked: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct Message {
    topic: Bytes,
    payload: Bytes,
    qos: QoS,
    retain: bool,
    props: Option<PublishProperties>,
    expires_at: Option<Instant>,
    sub_ids: Vec<usize>,
    origin: Option<Arc<str>>,
}

impl Message {
    fn size(&self) -> u64 {
        (self.topic.len() + self.payload.len()) as u64
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Sub {
    qos: QoS,
    no_local: bool,
    rap: bool,
    handling: RetainForwardRule,
    id: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
struct Inflight {
    pkid: u16,
    released: bool,
    msg: Message,
}

#[derive(Debug, Default)]
struct Session {
    conn: Option<ConnId>,
    expiry: u32,
    disconnected_at: Option<Instant>,
    subs: BTreeMap<String, Sub>,
    next_pkid: u16,
    inflight: VecDeque<Inflight>,
    queue: VecDeque<Message>,
    incoming_qos2: HashSet<u16>,
}

impl Session {
    fn free_pkid(&mut self) -> u16 {
        loop {
            self.next_pkid = self.next_pkid.wrapping_add(1).max(1);
            if !self.inflight.iter().any(|i| i.pkid == self.next_pkid) {
                return self.next_pkid;
            }
        }
    }
}

#[derive(Debug)]
struct Conn {
    client_id: Arc<str>,
    version: Version,
    user: Option<String>,
    perms: Arc<Perms>,
    keepalive: u16,
    last_seen: Instant,
    will: Option<(Message, u32)>,
    receive_max: u16,
    max_packet: Option<u32>,
    aliases: HashMap<u16, Bytes>,
    normal_disconnect: bool,
}

/// A connected client, for `/state`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClientInfo {
    /// Connection number.
    pub conn: ConnId,
    /// Client identifier.
    pub client_id: String,
    /// User, if any.
    pub user: Option<String>,
    /// Protocol version.
    pub version: Version,
    /// Subscriptions.
    pub subscriptions: usize,
    /// Unacknowledged deliveries.
    pub inflight: usize,
    /// Queued deliveries.
    pub queued: usize,
}

/// The broker.
#[derive(Debug)]
pub struct Broker {
    limits: Limits,
    sessions: HashMap<Arc<str>, Session>,
    /// Every session's subscriptions, by filter level: what [`Broker::route`] looks topics up in.
    index: topic::FilterIndex,
    conns: HashMap<ConnId, Conn>,
    retained: BTreeMap<String, Message>,
    retained_bytes: u64,
    wills: Vec<(Instant, Arc<str>, Message)>,
    out: Vec<Action>,
    stats: Stats,
    dirty: bool,
    assigned: u64,
}

fn min_qos(a: QoS, b: QoS) -> QoS {
    if (a as u8) <= (b as u8) { a } else { b }
}

fn qos_of(n: u8) -> QoS {
    match n {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

impl Broker {
    /// An empty broker.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            sessions: HashMap::new(),
            index: topic::FilterIndex::default(),
            conns: HashMap::new(),
            retained: BTreeMap::new(),
            retained_bytes: 0,
            wills: Vec::new(),
            out: Vec::new(),
            stats: Stats::default(),
            dirty: false,
            assigned: 0,
        }
    }

    /// Replaces the limits (connections already open keep what their CONNACK said).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The actions left by the last calls.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Action> {
        self.out.drain(..)
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Counts a delivery the edge had to drop (slow client).
    pub fn count_dropped(&mut self) {
        self.stats.dropped += 1;
    }

    /// Whether durable state changed since the last [`Broker::take_dirty`].
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Connected clients.
    pub fn clients(&self) -> Vec<ClientInfo> {
        let mut v: Vec<ClientInfo> = self
            .conns
            .iter()
            .map(|(id, c)| {
                let s = self.sessions.get(&c.client_id);
                ClientInfo {
                    conn: *id,
                    client_id: c.client_id.to_string(),
                    user: c.user.clone(),
                    version: c.version,
                    subscriptions: s.map_or(0, |s| s.subs.len()),
                    inflight: s.map_or(0, |s| s.inflight.len()),
                    queued: s.map_or(0, |s| s.queue.len()),
                }
            })
            .collect();
        v.sort_by_key(|c| c.conn);
        v
    }

    /// Number of sessions (connected or not) and retained messages.
    pub fn counts(&self) -> (usize, usize, u64) {
        (
            self.sessions.len(),
            self.retained.len(),
            self.retained_bytes,
        )
    }

    /// Ends a session: it and its subscriptions are forgotten.
    fn remove_session(&mut self, client_id: &str) {
        if let Some(s) = self.sessions.remove(client_id) {
            for filter in s.subs.keys() {
                self.index.remove(filter, client_id);
            }
        }
    }

    fn send(&mut self, conn: ConnId, p: Packet) {
        self.out.push(Action::Send(conn, p));
    }

    /// Closes `conn` for a protocol violation or an exceeded limit: a v5 client is told why.
    fn kick(&mut self, conn: ConnId, reason: DisconnectReasonCode, now: Instant) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.version == Version::V5 {
            self.send(conn, Packet::Disconnect(Disconnect::new(reason)));
        }
        self.stats.kicked += 1;
        self.out.push(Action::Close(conn));
        self.closed(conn, now);
    }

    /// A client authenticated: open or resume its session and answer CONNACK.
    pub fn connect(&mut self, conn: ConnId, login: Login, now: Instant) {
        let Login {
            version,
            user,
            perms,
            connect,
            will,
        } = login;
        let props = connect.properties.clone().unwrap_or_default();
        let refuse = |this: &mut Self, code| {
            this.send(conn, crate::codec::refusal(code));
            this.out.push(Action::Close(conn));
        };
        if props.authentication_method.is_some() {
            return refuse(self, ConnectReturnCode::BadAuthenticationMethod);
        }
        let mut assigned = None;
        let client_id: Arc<str> = if connect.client_id.is_empty() {
            if version == Version::V311 && !connect.clean_start {
                return refuse(self, ConnectReturnCode::ClientIdentifierNotValid);
            }
            self.assigned += 1;
            let id = format!("roost-{:x}-{}", rand::random::<u32>(), self.assigned);
            assigned = Some(id.clone());
            id.into()
        } else {
            connect.client_id.as_str().into()
        };
        let will = match will {
            Some(w) => {
                let Ok(t) = std::str::from_utf8(&w.topic) else {
                    return refuse(self, ConnectReturnCode::TopicNameInvalid);
                };
                if !topic::valid_topic(t) {
                    return refuse(self, ConnectReturnCode::TopicNameInvalid);
                }
                if !perms.may_publish(t) {
                    return refuse(self, ConnectReturnCode::NotAuthorized);
                }
                let wp = w.properties.unwrap_or(LastWillProperties {
                    delay_interval: None,
                    payload_format_indicator: None,
                    message_expiry_interval: None,
                    content_type: None,
                    response_topic: None,
                    correlation_data: None,
                    user_properties: Vec::new(),
                });
                let msg = Message {
                    topic: w.topic,
                    payload: w.message,
                    qos: w.qos,
                    retain: w.retain,
                    props: Some(PublishProperties {
                        payload_format_indicator: wp.payload_format_indicator,
                        message_expiry_interval: None,
                        topic_alias: None,
                        response_topic: wp.response_topic,
                        correlation_data: wp.correlation_data,
                        user_properties: wp.user_properties,
                        subscription_identifiers: Vec::new(),
                        content_type: wp.content_type,
                    }),
                    expires_at: wp
                        .message_expiry_interval
                        .map(|s| now + Duration::from_secs(u64::from(s))),
                    sub_ids: Vec::new(),
                    origin: Some(client_id.clone()),
                };
                Some((msg, wp.delay_interval.unwrap_or(0)))
            }
            None => None,
        };

        // Session takeover: the old connection goes, its will as if it were lost.
        if let Some(old) = self.sessions.get(&client_id).and_then(|s| s.conn) {
            if self
                .conns
                .get(&old)
                .is_some_and(|c| c.version == Version::V5)
            {
                self.send(
                    old,
                    Packet::Disconnect(Disconnect::new(DisconnectReasonCode::SessionTakenOver)),
                );
            }
            self.out.push(Action::Close(old));
            self.closed(old, now);
        }

        let requested_expiry = match version {
            Version::V311 if connect.clean_start => 0,
            Version::V311 => u32::MAX,
            Version::V5 => props.session_expiry_interval.unwrap_or(0),
        };
        let expiry = requested_expiry.min(self.limits.max_session_expiry);
        let present = !connect.clean_start && self.sessions.contains_key(&client_id);
        // A pending will of this client: a resumed session cancels it, a new one sends it now.
        let pending: Vec<Message> = {
            let (mine, rest): (Vec<_>, Vec<_>) = self
                .wills
                .drain(..)
                .partition(|(_, id, _)| *id == client_id);
            self.wills = rest;
            mine.into_iter().map(|(_, _, m)| m).collect()
        };
        if !present {
            self.remove_session(&client_id);
            for m in pending {
                self.publish_message(m, now);
            }
        }
        let session = self.sessions.entry(client_id.clone()).or_default();
        session.conn = Some(conn);
        session.expiry = expiry;
        session.disconnected_at = None;

        let (keepalive, server_keepalive) = match version {
            Version::V5
                if connect.keep_alive == 0 || connect.keep_alive > self.limits.max_keepalive =>
            {
                (self.limits.max_keepalive, Some(self.limits.max_keepalive))
            }
            _ => (connect.keep_alive, None),
        };
        self.conns.insert(
            conn,
            Conn {
                client_id: client_id.clone(),
                version,
                user,
                perms,
                keepalive,
                last_seen: now,
                will,
                receive_max: props.receive_maximum.unwrap_or(u16::MAX).max(1),
                max_packet: props.max_packet_size,
                aliases: HashMap::new(),
                normal_disconnect: false,
            },
        );
        let properties = (version == Version::V5).then(|| ConnAckProperties {
            session_expiry_interval: (expiry != requested_expiry).then_some(expiry),
            receive_max: Some(self.limits.receive_maximum),
            max_qos: None,
            retain_available: Some(1),
            max_packet_size: Some(self.limits.max_packet_bytes),
            assigned_client_identifier: assigned,
            topic_alias_max: Some(self.limits.topic_alias_max),
            reason_string: None,
            user_properties: Vec::new(),
            wildcard_subscription_available: Some(1),
            subscription_identifiers_available: Some(1),
            shared_subscription_available: Some(0),
            server_keep_alive: server_keepalive,
            response_information: None,
            server_reference: None,
            authentication_method: None,
            authentication_data: None,
        });
        self.send(
            conn,
            Packet::ConnAck(ConnAck {
                session_present: present,
                code: ConnectReturnCode::Success,
                properties,
            }),
        );
        if expiry > 0 {
            self.dirty = true;
        }
        if present {
            self.resend(&client_id, now);
        }
    }

    /// The connection is gone (network closed, or the core closed it). Publishes or schedules
    /// the will unless the client said DISCONNECT; ends a session without expiry.
    pub fn closed(&mut self, conn: ConnId, now: Instant) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&c.client_id) else {
            return;
        };
        if s.conn == Some(conn) {
            s.conn = None;
            s.disconnected_at = Some(now);
        }
        let expiry = s.expiry;
        let detached = s.conn.is_none();
        if !c.normal_disconnect
            && let Some((msg, delay)) = c.will
        {
            let delay = delay.min(expiry);
            if delay == 0 {
                self.publish_message(msg, now);
            } else {
                let at = now + Duration::from_secs(u64::from(delay));
                self.wills.push((at, c.client_id.clone(), msg));
            }
        }
        if detached && expiry == 0 {
            self.remove_session(&c.client_id);
        } else {
            self.dirty = true;
        }
    }

    /// A packet from an authenticated client.
    pub fn packet(&mut self, conn: ConnId, packet: Packet, now: Instant) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.last_seen = now;
        let client_id = c.client_id.clone();
        match packet {
            Packet::Publish(p) => self.on_publish(conn, p, now),
            Packet::PubAck(a) => {
                if let Some(s) = self.sessions.get_mut(&client_id) {
                    s.inflight.retain(|i| {
                        i.pkid != a.pkid || i.released || i.msg.qos != QoS::AtLeastOnce
                    });
                }
                self.pump(&client_id, now);
            }
            Packet::PubRec(r) => {
                let mut release = false;
                if let Some(s) = self.sessions.get_mut(&client_id) {
                    let failed = (pubrec_code(r.reason)) >= 0x80;
                    if let Some(pos) = s.inflight.iter().position(|i| i.pkid == r.pkid) {
                        if failed {
                            s.inflight.remove(pos);
                        } else if let Some(i) = s.inflight.get_mut(pos) {
                            i.released = true;
                            release = true;
                        }
                    }
                }
                if release {
                    self.send(conn, Packet::PubRel(PubRel::new(r.pkid, None)));
                    self.dirty = true;
                } else {
                    self.pump(&client_id, now);
                }
            }
            Packet::PubComp(a) => {
                if let Some(s) = self.sessions.get_mut(&client_id) {
                    s.inflight.retain(|i| i.pkid != a.pkid || !i.released);
                }
                self.pump(&client_id, now);
            }
            Packet::PubRel(r) => {
                let known = self
                    .sessions
                    .get_mut(&client_id)
                    .is_some_and(|s| s.incoming_qos2.remove(&r.pkid));
                let mut comp = PubComp::new(r.pkid, None);
                if !known {
                    comp.reason = PubCompReason::PacketIdentifierNotFound;
                }
                self.send(conn, Packet::PubComp(comp));
            }
            // Both must name at least one topic filter (MQTT 5 §3.8.3, §3.10.3; 3.1.1 alike):
            // an empty one would get an empty acknowledgement, which is malformed in turn.
            Packet::Subscribe(s) if s.filters.is_empty() => {
                self.kick(conn, DisconnectReasonCode::ProtocolError, now);
            }
            Packet::Unsubscribe(u) if u.filters.is_empty() => {
                self.kick(conn, DisconnectReasonCode::ProtocolError, now);
            }
            Packet::Subscribe(s) => self.on_subscribe(conn, s, now),
            Packet::Unsubscribe(u) => self.on_unsubscribe(conn, u),
            Packet::PingReq(_) => self.send(conn, Packet::PingResp(PingResp)),
            Packet::Disconnect(d) => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.normal_disconnect =
                        d.reason_code != DisconnectReasonCode::DisconnectWithWillMessage;
                }
                if let Some(e) = d.properties.and_then(|p| p.session_expiry_interval) {
                    let max = self.limits.max_session_expiry;
                    if let Some(s) = self.sessions.get_mut(&client_id) {
                        s.expiry = e.min(max);
                    }
                }
                self.out.push(Action::Close(conn));
                self.closed(conn, now);
            }
            _ => self.kick(conn, DisconnectReasonCode::ProtocolError, now),
        }
    }

    fn on_publish(&mut self, conn: ConnId, p: Publish, now: Instant) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let v5 = c.version == Version::V5;
        if p.payload.len() > self.limits.max_message_bytes as usize {
            return self.kick(conn, DisconnectReasonCode::PacketTooLarge, now);
        }
        let mut topic = p.topic;
        let mut props = p.properties;
        if let Some(alias) = props.as_mut().and_then(|pr| pr.topic_alias.take()) {
            if alias == 0 || alias > self.limits.topic_alias_max {
                return self.kick(conn, DisconnectReasonCode::TopicAliasInvalid, now);
            }
            if topic.is_empty() {
                match c.aliases.get(&alias) {
                    Some(t) => topic = t.clone(),
                    None => return self.kick(conn, DisconnectReasonCode::ProtocolError, now),
                }
            } else {
                c.aliases.insert(alias, topic.clone());
            }
        }
        let valid = std::str::from_utf8(&topic).is_ok_and(topic::valid_topic);
        if !valid {
            return self.kick(conn, DisconnectReasonCode::TopicNameInvalid, now);
        }
        let topic_str = std::str::from_utf8(&topic).unwrap_or_default();
        let allowed = c.perms.may_publish(topic_str);
        let client_id = c.client_id.clone();
        if p.qos == QoS::ExactlyOnce {
            let Some(s) = self.sessions.get_mut(&client_id) else {
                return;
            };
            if s.incoming_qos2.contains(&p.pkid) {
                // A retransmission: already routed once.
                self.send(conn, Packet::PubRec(PubRec::new(p.pkid, None)));
                return;
            }
            if s.incoming_qos2.len() >= usize::from(self.limits.receive_maximum) {
                return self.kick(conn, DisconnectReasonCode::ReceiveMaximumExceeded, now);
            }
            if allowed || !v5 {
                s.incoming_qos2.insert(p.pkid);
            }
        }
        self.stats.messages_in += 1;
        if allowed {
            let expires_at = props
                .as_mut()
                .and_then(|pr| pr.message_expiry_interval.take())
                .map(|s| now + Duration::from_secs(u64::from(s)));
            if let Some(pr) = props.as_mut() {
                pr.subscription_identifiers.clear();
            }
            let msg = Message {
                topic,
                payload: p.payload,
                qos: p.qos,
                retain: p.retain,
                props,
                expires_at,
                sub_ids: Vec::new(),
                origin: Some(client_id),
            };
            self.publish_message(msg, now);
        } else {
            self.stats.denied += 1;
            tracing::debug!(topic = topic_str, "publish refused by the acl");
        }
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                let mut ack = PubAck::new(p.pkid, None);
                if !allowed {
                    ack.reason = PubAckReason::NotAuthorized;
                }
                self.send(conn, Packet::PubAck(ack));
            }
            QoS::ExactlyOnce => {
                let mut rec = PubRec::new(p.pkid, None);
                if !allowed {
                    rec.reason = PubRecReason::NotAuthorized;
                }
                self.send(conn, Packet::PubRec(rec));
            }
        }
    }

    /// Publishes a message from the router itself (telemetry under `roost/`).
    pub fn publish_internal(&mut self, topic: &str, payload: Bytes, retain: bool, now: Instant) {
        let msg = Message {
            topic: Bytes::copy_from_slice(topic.as_bytes()),
            payload,
            qos: QoS::AtMostOnce,
            retain,
            props: None,
            expires_at: None,
            sub_ids: Vec::new(),
            origin: None,
        };
        self.publish_message(msg, now);
    }

    fn publish_message(&mut self, msg: Message, now: Instant) {
        if msg.retain {
            self.store_retained(&msg);
        }
        self.route(&msg, now);
    }

    fn store_retained(&mut self, msg: &Message) {
        let key = String::from_utf8_lossy(&msg.topic).into_owned();
        self.dirty = true;
        let old = self.retained.remove(&key);
        if let Some(o) = &old {
            self.retained_bytes -= o.size();
        }
        if msg.payload.is_empty() {
            return;
        }
        if self.retained_bytes + msg.size() > self.limits.max_retained_bytes {
            self.stats.retained_refused += 1;
            if let Some(o) = old {
                self.retained_bytes += o.size();
                self.retained.insert(key, o);
            }
            return;
        }
        let mut stored = msg.clone();
        stored.retain = true;
        self.retained_bytes += stored.size();
        self.retained.insert(key, stored);
    }

    fn route(&mut self, msg: &Message, now: Instant) {
        let Ok(topic) = std::str::from_utf8(&msg.topic) else {
            return;
        };
        let Self {
            sessions,
            index,
            conns,
            out,
            stats,
            limits,
            dirty,
            ..
        } = self;
        // The matching (client, filter) pairs, by client and then filter: each client's
        // subscriptions in the order of `Session::subs`.
        let mut hits = Vec::new();
        index.lookup(topic, &mut hits);
        for group in hits.chunk_by(|a, b| a.0 == b.0) {
            let client_id = group[0].0;
            let Some(s) = sessions.get_mut(client_id) else {
                continue;
            };
            let mut best: Option<QoS> = None;
            let mut ids = Vec::new();
            let mut rap = false;
            for &(_, filter) in group {
                let Some(sub) = s.subs.get(filter) else {
                    continue;
                };
                if sub.no_local && msg.origin.as_ref() == Some(client_id) {
                    continue;
                }
                best = Some(best.map_or(sub.qos, |b| {
                    if (sub.qos as u8) > (b as u8) {
                        sub.qos
                    } else {
                        b
                    }
                }));
                ids.extend(sub.id);
                rap |= sub.rap;
            }
            let Some(granted) = best else {
                continue;
            };
            let mut m = msg.clone();
            m.qos = min_qos(msg.qos, granted);
            m.retain = msg.retain && rap;
            m.sub_ids = ids;
            let conn = s.conn.and_then(|id| conns.get(&id).map(|c| (id, c)));
            if conn.is_none() && m.qos != QoS::AtMostOnce {
                *dirty = true;
            }
            deliver(s, conn, m, out, stats, limits, now);
        }
    }

    fn on_subscribe(&mut self, conn: ConnId, sub: Subscribe, now: Instant) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let v5 = c.version == Version::V5;
        let perms = c.perms.clone();
        let client_id = c.client_id.clone();
        let id = sub.properties.as_ref().and_then(|p| p.id);
        let mut codes = Vec::with_capacity(sub.filters.len());
        let mut retained_for = Vec::new();
        let Some(s) = self.sessions.get_mut(&client_id) else {
            return;
        };
        for f in sub.filters {
            let code = if !topic::valid_filter(&f.path) {
                if v5 {
                    SubscribeReasonCode::TopicFilterInvalid
                } else {
                    SubscribeReasonCode::Failure
                }
            } else if f.path.starts_with("$share/") {
                if v5 {
                    SubscribeReasonCode::SharedSubscriptionsNotSupported
                } else {
                    SubscribeReasonCode::Failure
                }
            } else if !perms.may_subscribe(&f.path) {
                tracing::debug!(filter = f.path, "subscription refused by the acl");
                SubscribeReasonCode::Failure
            } else {
                let entry = Sub {
                    qos: f.qos,
                    no_local: f.nolocal,
                    rap: f.preserve_retain,
                    handling: f.retain_forward_rule,
                    id,
                };
                let existed = s.subs.insert(f.path.clone(), entry.clone()).is_some();
                if !existed {
                    self.index.insert(&f.path, &client_id);
                }
                let send_retained = match entry.handling {
                    RetainForwardRule::OnEverySubscribe => true,
                    RetainForwardRule::OnNewSubscribe => !existed,
                    RetainForwardRule::Never => false,
                };
                if send_retained {
                    retained_for.push((f.path, entry));
                }
                SubscribeReasonCode::Success(f.qos)
            };
            codes.push(code);
        }
        if s.expiry > 0 {
            self.dirty = true;
        }
        self.send(
            conn,
            Packet::SubAck(SubAck {
                pkid: sub.pkid,
                return_codes: codes,
                properties: None,
            }),
        );
        let Self {
            sessions,
            conns,
            out,
            stats,
            limits,
            retained,
            ..
        } = self;
        let (Some(s), Some(c)) = (sessions.get_mut(&client_id), conns.get(&conn)) else {
            return;
        };
        for (filter, entry) in retained_for {
            for (t, r) in retained.iter() {
                if !topic::matches(t, &filter) {
                    continue;
                }
                let mut m = r.clone();
                m.qos = min_qos(r.qos, entry.qos);
                m.retain = true;
                m.sub_ids = entry.id.into_iter().collect();
                deliver(s, Some((conn, c)), m, out, stats, limits, now);
            }
        }
    }

    fn on_unsubscribe(&mut self, conn: ConnId, u: Unsubscribe) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let client_id = c.client_id.clone();
        let Some(s) = self.sessions.get_mut(&client_id) else {
            return;
        };
        let reasons = u
            .filters
            .iter()
            .map(|f| {
                if s.subs.remove(f).is_some() {
                    self.index.remove(f, &client_id);
                    UnsubAckReason::Success
                } else {
                    UnsubAckReason::NoSubscriptionExisted
                }
            })
            .collect();
        if s.expiry > 0 {
            self.dirty = true;
        }
        self.send(
            conn,
            Packet::UnsubAck(UnsubAck {
                pkid: u.pkid,
                reasons,
                properties: None,
            }),
        );
    }

    /// On a resumed session: resend unacknowledged deliveries (DUP), then queued ones.
    fn resend(&mut self, client_id: &Arc<str>, now: Instant) {
        let Self {
            sessions,
            conns,
            out,
            stats,
            ..
        } = self;
        let Some(s) = sessions.get_mut(client_id) else {
            return;
        };
        let Some((id, c)) = s.conn.and_then(|id| conns.get(&id).map(|c| (id, c))) else {
            return;
        };
        let mut keep = VecDeque::new();
        for i in s.inflight.drain(..) {
            if i.released {
                out.push(Action::Send(id, Packet::PubRel(PubRel::new(i.pkid, None))));
                keep.push_back(i);
            } else if send_publish(id, c, i.pkid, &i.msg, true, out, stats, now) {
                keep.push_back(i);
            }
        }
        s.inflight = keep;
        self.pump(client_id, now);
    }

    /// Moves queued messages into the client's Receive Maximum window.
    fn pump(&mut self, client_id: &Arc<str>, now: Instant) {
        let Self {
            sessions,
            conns,
            out,
            stats,
            ..
        } = self;
        let Some(s) = sessions.get_mut(client_id) else {
            return;
        };
        let Some((id, c)) = s.conn.and_then(|id| conns.get(&id).map(|c| (id, c))) else {
            return;
        };
        while s.inflight.len() < usize::from(c.receive_max) {
            let Some(m) = s.queue.pop_front() else {
                break;
            };
            let pkid = s.free_pkid();
            if send_publish(id, c, pkid, &m, false, out, stats, now) && m.qos != QoS::AtMostOnce {
                s.inflight.push_back(Inflight {
                    pkid,
                    released: false,
                    msg: m,
                });
            }
        }
    }

    /// Timers: keepalive, delayed wills, session and retained-message expiry.
    pub fn tick(&mut self, now: Instant) {
        let late: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.keepalive > 0
                    && now.saturating_duration_since(c.last_seen)
                        > Duration::from_millis(u64::from(c.keepalive) * 1500)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            self.kick(id, DisconnectReasonCode::KeepAliveTimeout, now);
        }
        let (due, rest): (Vec<_>, Vec<_>) = self.wills.drain(..).partition(|(at, _, _)| *at <= now);
        self.wills = rest;
        for (_, _, m) in due {
            self.publish_message(m, now);
        }
        let before = self.sessions.len();
        let index = &mut self.index;
        self.sessions.retain(|client_id, s| {
            let keep = s.conn.is_some()
                || s.disconnected_at.is_none_or(|t| {
                    now.saturating_duration_since(t) < Duration::from_secs(u64::from(s.expiry))
                });
            if !keep {
                for filter in s.subs.keys() {
                    index.remove(filter, client_id);
                }
            }
            keep
        });
        let mut freed = 0;
        self.retained.retain(|_, m| {
            let keep = m.expires_at.is_none_or(|e| e > now);
            if !keep {
                freed += m.size();
            }
            keep
        });
        self.retained_bytes -= freed;
        if before != self.sessions.len() || freed > 0 {
            self.dirty = true;
        }
    }

    /// The durable state, as of `now`.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        Snapshot {
            retained: self.retained.values().map(|m| store_msg(m, now)).collect(),
            sessions: self
                .sessions
                .iter()
                .filter(|(_, s)| s.expiry > 0)
                .map(|(id, s)| StoredSession {
                    client_id: id.to_string(),
                    expires_in: match s.disconnected_at {
                        Some(t) => s.expiry.saturating_sub(
                            u32::try_from(now.saturating_duration_since(t).as_secs())
                                .unwrap_or(u32::MAX),
                        ),
                        None => s.expiry,
                    },
                    subscriptions: s
                        .subs
                        .iter()
                        .map(|(f, sub)| StoredSub {
                            filter: f.clone(),
                            qos: sub.qos as u8,
                            no_local: sub.no_local,
                            retain_as_published: sub.rap,
                            retain_handling: match sub.handling {
                                RetainForwardRule::OnEverySubscribe => 0,
                                RetainForwardRule::OnNewSubscribe => 1,
                                RetainForwardRule::Never => 2,
                            },
                            id: sub.id,
                        })
                        .collect(),
                    inflight: s
                        .inflight
                        .iter()
                        .map(|i| StoredInflight {
                            pkid: i.pkid,
                            released: i.released,
                            message: store_msg(&i.msg, now),
                        })
                        .collect(),
                    queue: s.queue.iter().map(|m| store_msg(m, now)).collect(),
                    incoming_qos2: s.incoming_qos2.iter().copied().collect(),
                })
                .collect(),
        }
    }

    /// Loads a snapshot into an empty broker: every session starts disconnected at `now`.
    pub fn restore(&mut self, snap: Snapshot, now: Instant) {
        for m in snap.retained {
            if let Some(m) = load_msg(m, now) {
                self.store_retained(&m);
            }
        }
        for s in snap.sessions {
            if s.expires_in == 0 {
                continue;
            }
            let session = Session {
                conn: None,
                expiry: s.expires_in,
                disconnected_at: Some(now),
                subs: s
                    .subscriptions
                    .into_iter()
                    .map(|sub| {
                        (
                            sub.filter,
                            Sub {
                                qos: qos_of(sub.qos),
                                no_local: sub.no_local,
                                rap: sub.retain_as_published,
                                handling: match sub.retain_handling {
                                    0 => RetainForwardRule::OnEverySubscribe,
                                    1 => RetainForwardRule::OnNewSubscribe,
                                    _ => RetainForwardRule::Never,
                                },
                                id: sub.id,
                            },
                        )
                    })
                    .collect(),
                next_pkid: 0,
                inflight: s
                    .inflight
                    .into_iter()
                    .filter_map(|i| {
                        Some(Inflight {
                            pkid: i.pkid,
                            released: i.released,
                            msg: load_msg(i.message, now)?,
                        })
                    })
                    .collect(),
                queue: s
                    .queue
                    .into_iter()
                    .filter_map(|m| load_msg(m, now))
                    .collect(),
                incoming_qos2: s.incoming_qos2.into_iter().collect(),
            };
            let client_id: Arc<str> = s.client_id.into();
            self.remove_session(&client_id);
            for filter in session.subs.keys() {
                self.index.insert(filter, &client_id);
            }
            self.sessions.insert(client_id, session);
        }
        self.dirty = false;
    }
}

#[allow(clippy::too_many_arguments)]
fn send_publish(
    conn: ConnId,
    c: &Conn,
    pkid: u16,
    m: &Message,
    dup: bool,
    out: &mut Vec<Action>,
    stats: &mut Stats,
    now: Instant,
) -> bool {
    let mut props = None;
    if c.version == Version::V5 {
        let mut p = m.props.clone().unwrap_or_default();
        if let Some(at) = m.expires_at {
            let Some(left) = at.checked_duration_since(now).filter(|d| !d.is_zero()) else {
                stats.expired += 1;
                return false;
            };
            p.message_expiry_interval =
                Some(u32::try_from(left.as_secs_f64().ceil() as u64).unwrap_or(u32::MAX));
        }
        p.subscription_identifiers = m.sub_ids.clone();
        p.topic_alias = None;
        if p != PublishProperties::default() {
            props = Some(p);
        }
    } else if m.expires_at.is_some_and(|at| at <= now) {
        stats.expired += 1;
        return false;
    }
    let publish = Publish {
        dup,
        qos: m.qos,
        retain: m.retain,
        topic: m.topic.clone(),
        pkid: if m.qos == QoS::AtMostOnce { 0 } else { pkid },
        payload: m.payload.clone(),
        properties: props,
    };
    let packet = Packet::Publish(publish);
    if let Some(max) = c.max_packet {
        // MQTT 5 §3.1.2.11.4: a packet over the client's maximum is discarded, as if delivered.
        if packet.size() > max as usize {
            stats.dropped += 1;
            return false;
        }
    }
    stats.messages_out += 1;
    out.push(Action::Send(conn, packet));
    true
}

fn deliver(
    s: &mut Session,
    conn: Option<(ConnId, &Conn)>,
    m: Message,
    out: &mut Vec<Action>,
    stats: &mut Stats,
    limits: &Limits,
    now: Instant,
) {
    if m.qos == QoS::AtMostOnce {
        // QoS 0 is not queued for a disconnected client.
        if let Some((id, c)) = conn {
            send_publish(id, c, 0, &m, false, out, stats, now);
        }
        return;
    }
    if let Some((id, c)) = conn
        && s.queue.is_empty()
        && s.inflight.len() < usize::from(c.receive_max)
    {
        let pkid = s.free_pkid();
        if send_publish(id, c, pkid, &m, false, out, stats, now) {
            s.inflight.push_back(Inflight {
                pkid,
                released: false,
                msg: m,
            });
        }
        return;
    }
    if s.queue.len() < limits.max_queued {
        s.queue.push_back(m);
    } else {
        stats.dropped += 1;
    }
}

fn pubrec_code(r: PubRecReason) -> u8 {
    match r {
        PubRecReason::Success => 0,
        PubRecReason::NoMatchingSubscribers => 0x10,
        _ => 0x80,
    }
}

fn store_msg(m: &Message, now: Instant) -> StoredMessage {
    let p = m.props.clone().unwrap_or_default();
    StoredMessage {
        topic: String::from_utf8_lossy(&m.topic).into_owned(),
        payload: hex::encode(&m.payload),
        qos: m.qos as u8,
        retain: m.retain,
        expires_in: m.expires_at.map(|at| {
            u32::try_from(at.saturating_duration_since(now).as_secs()).unwrap_or(u32::MAX)
        }),
        payload_format: p.payload_format_indicator,
        content_type: p.content_type,
        response_topic: p.response_topic,
        correlation: p.correlation_data.map(hex::encode),
        user_properties: p.user_properties,
        sub_ids: m.sub_ids.clone(),
        origin: m.origin.as_ref().map(|o| o.to_string()),
    }
}

fn load_msg(m: StoredMessage, now: Instant) -> Option<Message> {
    if m.expires_in == Some(0) {
        return None;
    }
    let props = PublishProperties {
        payload_format_indicator: m.payload_format,
        message_expiry_interval: None,
        topic_alias: None,
        response_topic: m.response_topic,
        correlation_data: match m.correlation {
            Some(c) => Some(hex::decode(c).ok()?.into()),
            None => None,
        },
        user_properties: m.user_properties,
        subscription_identifiers: Vec::new(),
        content_type: m.content_type,
    };
    Some(Message {
        topic: m.topic.into_bytes().into(),
        payload: hex::decode(m.payload).ok()?.into(),
        qos: qos_of(m.qos),
        retain: m.retain,
        props: (props != PublishProperties::default()).then_some(props),
        expires_at: m
            .expires_in
            .map(|s| now + Duration::from_secs(u64::from(s))),
        sub_ids: m.sub_ids,
        origin: m.origin.map(Into::into),
    })
}

#[cfg(test)]
mod tests {
    //! One test per conformance point (issue 9's list of what stock rumqttd gets wrong), plus
    //! the ACL, retained store and persistence rules. Time is driven explicitly.

    use super::*;
    use rumqttc::v5::mqttbytes::v5::{ConnectProperties, Filter, SubscribeProperties};

    fn t0() -> Instant {
        Instant::now()
    }

    fn connect_packet(
        id: &str,
        clean: bool,
        keep_alive: u16,
        props: Option<ConnectProperties>,
    ) -> Connect {
        Connect {
            keep_alive,
            client_id: id.to_owned(),
            clean_start: clean,
            properties: props,
        }
    }

    fn props() -> ConnectProperties {
        ConnectProperties::new()
    }

    fn login(version: Version, connect: Connect) -> Login {
        Login {
            version,
            user: Some("u".into()),
            perms: Arc::new(Perms::anything()),
            connect,
            will: None,
        }
    }

    fn sends(b: &mut Broker) -> Vec<Action> {
        b.assert_index_matches_sessions();
        b.drain().collect()
    }

    impl Broker {
        /// The filter index holds exactly the sessions' subscriptions.
        fn assert_index_matches_sessions(&self) {
            let mut want: Vec<(String, String)> = self
                .sessions
                .iter()
                .flat_map(|(c, s)| s.subs.keys().map(|f| (c.to_string(), f.clone())))
                .collect();
            want.sort();
            assert_eq!(
                self.index.pairs(),
                want,
                "filter index out of step with the sessions"
            );
        }
    }

    fn packets_to(actions: &[Action], conn: ConnId) -> Vec<Packet> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(c, p) if *c == conn => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    fn publishes_to(actions: &[Action], conn: ConnId) -> Vec<Publish> {
        packets_to(actions, conn)
            .into_iter()
            .filter_map(|p| match p {
                Packet::Publish(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    fn connack(actions: &[Action], conn: ConnId) -> ConnAck {
        packets_to(actions, conn)
            .into_iter()
            .find_map(|p| match p {
                Packet::ConnAck(a) => Some(a),
                _ => None,
            })
            .expect("a CONNACK")
    }

    fn disconnect_reason(actions: &[Action], conn: ConnId) -> Option<DisconnectReasonCode> {
        packets_to(actions, conn).into_iter().find_map(|p| match p {
            Packet::Disconnect(d) => Some(d.reason_code),
            _ => None,
        })
    }

    fn closed(actions: &[Action], conn: ConnId) -> bool {
        actions.contains(&Action::Close(conn))
    }

    fn join(b: &mut Broker, conn: ConnId, version: Version, id: &str, now: Instant) -> ConnAck {
        b.connect(
            conn,
            login(version, connect_packet(id, true, 60, None)),
            now,
        );
        connack(&sends(b), conn)
    }

    fn subscribe(
        b: &mut Broker,
        conn: ConnId,
        filters: Vec<Filter>,
        id: Option<usize>,
        now: Instant,
    ) -> Vec<Action> {
        let properties = id.map(|id| SubscribeProperties {
            id: Some(id),
            user_properties: vec![],
        });
        b.packet(
            conn,
            Packet::Subscribe(Subscribe {
                pkid: 1,
                filters,
                properties,
            }),
            now,
        );
        sends(b)
    }

    fn filter(path: &str, qos: QoS) -> Filter {
        Filter::new(path, qos)
    }

    fn publish(topic: &str, qos: QoS, pkid: u16, payload: &'static [u8]) -> Publish {
        Publish {
            dup: false,
            qos,
            retain: false,
            topic: Bytes::copy_from_slice(topic.as_bytes()),
            pkid,
            payload: Bytes::from_static(payload),
            properties: None,
        }
    }

    fn suback_codes(actions: &[Action], conn: ConnId) -> Vec<SubscribeReasonCode> {
        packets_to(actions, conn)
            .into_iter()
            .find_map(|p| match p {
                Packet::SubAck(s) => Some(s.return_codes),
                _ => None,
            })
            .expect("a SUBACK")
    }

    #[test]
    fn a_subscribe_or_unsubscribe_without_filters_is_a_protocol_error() {
        let now = t0();
        let mut b = Broker::new(Limits::default());
        join(&mut b, 1, Version::V5, "a", now);
        join(&mut b, 2, Version::V5, "b", now);
        let mut a = subscribe(&mut b, 1, vec![], None, now);
        b.packet(
            2,
            Packet::Unsubscribe(Unsubscribe {
                pkid: 4,
                filters: vec![],
                properties: None,
            }),
            now,
        );
        a.extend(sends(&mut b));
        for conn in [1, 2] {
            assert_eq!(
                disconnect_reason(&a, conn),
                Some(DisconnectReasonCode::ProtocolError)
            );
            assert!(closed(&a, conn));
            assert!(
                !packets_to(&a, conn)
                    .iter()
                    .any(|p| matches!(p, Packet::SubAck(_) | Packet::UnsubAck(_))),
                "acknowledged an empty request"
            );
        }
    }

    #[test]
    fn keepalive_zero_gets_a_connack_and_no_timeout() {
        let now = t0();
        let mut b = Broker::new(Limits::default());
        b.connect(
            1,
            login(Version::V311, connect_packet("a", true, 0, None)),
            now,
        );
        let a = sends(&mut b);
        assert_eq!(connack(&a, 1).code, ConnectReturnCode::Success);
        b.tick(now + Duration::from_secs(100_000));
        assert!(
            !closed(&sends(&mut b), 1),
            "keepalive 0 means no timeout in 3.1.1"
        );
    }

    #[test]
    fn server_keep_alive_answers_zero_or_too_long_keepalive() {
        let now = t0();
        let mut b = Broker::new(Limits::default());
        b.connect(
            1,
            login(Version::V5, connect_packet("a", true, 0, Some(props()))),
            now,
        );
        let ack = connack(&sends(&mut b), 1);
        assert_eq!(ack.code, ConnectReturnCode::Success);
        assert_eq!(ack.properties.unwrap().server_keep_alive, Some(600));
        b.connect(
            2,
            login(Version::V5, connect_packet("b", true, 30, None)),
            now,
        );
        assert_eq!(
            connack(&sends(&mut b), 2)
                .properties
                .unwrap()
                .server_keep_alive,
            None
        );
        // The server's keepalive is enforced: 1.5 × 600 s.
        b.tick(now + Duration::from_secs(901));
        let a = sends(&mut b);
        assert_eq!(
            disconnect_reason(&a, 1),
            Some(DisconnectReasonCode::KeepAliveTimeout)
        );
        assert!(closed(&a, 1) && closed(&a, 2));
    }

    #[test]
    fn delivers_at_the_lower_of_publish_and_subscription_qos() {
        let now = t0();
        let mut b = Broker::new(Limits::default());
        join(&mut b, 1, Version::V5, "sub", now);
        join(&mut b, 2, Version::V5, "pub", now);
        subscribe(&mut b, 1, vec![filter("a/q1", QoS::AtLeastOnce)], None, now);
        b.packet(
            2,
            Packet::Publish(publish("a/q1", QoS::ExactlyOnce, 5, b"x")),
            now,
        );
        let got = publishes_to(&sends(&mut b), 1);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].qos, QoS::AtLeastOnce, "min(2, 1)");
        b.packet(
            2,
            Packet::Publish(publish("a/q1", QoS::AtMostOnce, 0, b"y")),
            now,
        );
        assert_eq!(
            publishes_to(&sends(&mut b), 1)[0].qos,
            QoS::AtMostOnce,
            "min(0, 1)"
        );
    }

    #[test]
    fn respects_the_clients_maximum_packet_size() {
        let now = t0();
        let mut b = Broker::new(Limits::default());
        let mut p = props();
        p.max_packet_size = Some(64);
        b.connect(
            1,
            login(Version::V5, connect_packet("small", true, 60, Some(p))),
            now,
        );
        sends(&mut b);
        join(&mut b, 2, Version::V5, "pub", now);
        subscribe(&mut b, 1, vec![filter("t", QoS::AtLeastOnce)], None, now);
        b.packet(
            2,
            Packet::Publish(publish("t", QoS::AtLeastOnce, 1, &[b'x'; 100])),
            now,
        );
        b.packet(
            2,
            Packet::Publish(publish("t", QoS::AtLeastOnce, 2, b"fits")),
            now,
        );
        let got = publishes_to(&sends(&mut b), 1);
        assert_eq!(got.len(), 1);
        assert_eq!(&got[0].payload[..], b"fits");
        assert_eq!(b.stats().dropped, 1);
    }

    #[test]
    fn persistent_session_survives_reconnect_and_queues_offline_messages() {
        let now = t0();
        let mut b = Broker::new(Limits::default());
        let mut p = props();
        p.session_expiry_interval = Some(3600);
        b.connect(
            1,
            login(
                Version::V5,
                connect_packet("dev", true, 60, Some(p.clone())),
            ),
            now,
        );
        sends(&mut b);
        subscribe(
            &mut b,
            1,
            vec![filter("cmd/#", QoS::AtLeastOnce)],
            None,
            now,
        );
        b.closed(1, now);
        join(&mut b, 2, Version::V5, "app", now);
        b.packet(
            2,
            Packet::Publish(publish("cmd/on", QoS::AtLeastOnce, 1, b"1")),
            now,
        );
        b.packet(
            2,
            Packet::Publish(publish("cmd/q0", QoS::AtMostOnce, 0, b"0")),
            now,
        );
        sends(&mut b);
        let later = now + Duration::from_secs(60);
        b.tick(later);
        b.connect(
            3,
            login(Version::V5, connect_packet("dev", false, 60, Some(p))),
            later,
        );
        let a = sends(&mut b);
        assert!(connack(&a, 3).session_present);
        let got = publishes_to(&a, 3);
        assert_eq!(got.len(), 1, "QoS 1 queued, QoS 0 not");
        assert_eq!(&got[0].topic[..], b"cmd/on");
        // 3.1.1: clean session false keeps the session too.
        b.connect(
            4,
            login(Version::V311, connect_packet("old", false, 60, None)),
            now,
        );
        sends(&mut b);
        b.closed(4, now);
        b.connect(
            5,
            login(Version::V311, connect_packet("old", false, 60, None)),
            now,
        );
        assert!(connack(&sends(&mut b), 5).session_present);
    }

    #[test]
    fn session_ends_after_its_expiry() {
        let now = t0();
        let mut b = Broker::new(Limits::default());
        let mut p = props();
        p.session_expiry_interval = Some(10);
        b.connect(
            1,
            login(
                Version::V5,
                connect_packet("dev", true, 60, Some(p.clone())),
            ),
            now,
        );
        sends(&mut b);
        b.closed(1, now);
        b.tick(now + Duration::from_secs(11));
        b.connect(
            2,
            login(Version::V5, connect_packet("dev", false, 60, Some(p))),
            now + Duration::from_secs(11),
        );
        assert!(!connack(&sends(&mut b), 2).session_present);
    }

    #[test]
    fn message_expiry_drops_stale_queued_messages_and_counts_down() {
        let now = t0();
        let mut b = Broker::new(Limits::default());
        let mut p = props();
        p.session_expiry_interval = Some(3600);
        b.connect(
            1,
            login(
                Version::V5,
                connect_packet("dev", true, 60, Some(p.clone())),
            ),
            now,
        );
        sends(&mut b);
        subscribe(&mut b, 1, vec![filter("t/#", QoS::AtLeastOnce)], None, now);
        b.closed(1, now);
        join(&mut b, 2, Version::V5, "app", now);
        for (topic, expiry) in [("t/short", 5), ("t/long", 100)] {
            let mut m = publish(topic, QoS::AtLeastOnce, 1, b"x");
            m.properties = Some(PublishProperties {
                message_expiry_interval: Some(expiry),
                ..Default::default()
            });
            b.packet(2, Packet::Publish(m), now);
        }
        sends(&mut b);
        let later = now + Duration::from_secs(30);
        b.connect(
            3,
            login(Version::V5, connect_packet("dev", false, 60, Some(p))),
            later,
        );
        let got = publishes_to(&sends(&mut b), 3);
        assert_eq!(got.len(), 1);
        assert_eq!(&got[0].topic[..], b"t/long");
        assert_eq!(
            got[0].properties.as_ref().unwrap().message_expiry_interval,
            Some(70)
        );
        assert_eq!(b.stats().expired, 1);
    }

    #[test]
    fn resolves_a_clients_topic_alias() {
        let now = t0();
        let mut b = Broker::new(Limits::default());
        join(&mut b, 1, Version::V5, "sub", now);
        join(&mut b, 2, Version::V5, "pub", now);
        subscribe(
            &mut b,
            1,
            vec![filter("long/topic/name", QoS::AtMostOnce)],
            None,
            now,
        );
        let mut first = publish("long/topic/name", QoS::AtMostOnce, 0, b"1");
        first.properties = Some(PublishProperties {
            topic_alias: Some(3),
            ..Default::default()
        });
        let mut second = publish("", QoS::AtMostOnce, 0, b"2");
        second.properties = first.properties.clone();
        b.packet(2, Packet::Publish(first), now);
        b.packet(2, Packet::Publish(second), now);
        let got = publishes_to(&sends(&mut b), 1);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|p| &p.topic[..] == b"long/topic/name"));
        assert!(got.iter().all(|p| {
            p.properties
                .as_ref()
                .is_none_or(|pr| pr.topic_alias.is_none())
        }));
        // An alias above Topic Alias Maximum closes with 0x94.
        let mut bad = publish("x", QoS::AtMostOnce, 0, b"3");
        bad.properties = Some(PublishProperties {
            topic_alias: Some(1000),
            ..Default::default()
        });
        b.packet(2, Packet::Publish(bad), now);
        let a = sends(&mut b);
        assert_eq!(
            disconnect_reason(&a, 2),
            Some(DisconnectReasonCode::TopicAliasInvalid)
        );
    }

    #[test]
    fn no_local_subscription_skips_the_clients_own_messages() {
        let now = t0();
        let mut b = Broker::new(Limits::default());
        join(&mut b, 1, Version::V5, "both", now);
        join(&mut b, 2, Version::V5, "other", now);
        let mut f = filter("chat", QoS::AtMostOnce);
        f.nolocal = true;
        subscribe(&mut b, 1, vec![f], None, now);
        b.packet(
            1,
            Packet::Publish(publish("chat", QoS::AtMostOnce, 0, b"mine")),
            now,
        );
        assert!(publishes_to(&sends(&mut b), 1).is_empty());
        b.packet(
            2,
            Packet::Publish(publish("chat", QoS::AtMostOnce, 0, b"theirs")),
            now,
        );
        assert_eq!(publishes_to(&sends(&mut b), 1).len(), 1);
    }

    #[test]
    fn refused_subscription_is_answered_0x80() {
        let now = t0();
        let mut b = Broker::new(Limits::default());
        for (conn, version) in [(1, Version::V311), (2, Version::V5)] {
            let mut l = login(version, connect_packet(&format!("c{conn}"), true, 60, None));
            l.perms = Arc::new(Perms {
                publish: vec![],
                subscribe: vec!["allowed/#".into()],
            });
            b.connect(conn, l, now);
            sends(&mut b);
            let a = subscribe(
                &mut b,
                conn,
                vec![
                    filter("allowed/x", QoS::AtLeastOnce),
                    filter("secret/#", QoS::AtLeastOnce),
                    filter("roost/#", QoS::AtMostOnce),
                ],
                None,
                now,
            );
            let codes = suback_codes(&a, conn);
            assert_eq!(codes[0], SubscribeReasonCode::Success(QoS::AtLeastOnce));
            assert_eq!(codes[1], SubscribeReasonCode::Failure);
            assert_eq!(
                codes[2],
                SubscribeReasonCode::Success(QoS::AtMostOnce),
                "roost/# is readable by all"
            );
            // And the wire byte is 0x80 in both versions.
            let mut buf = bytes::BytesMut::new();
            crate::codec::encode(version, &packets_to(&a, conn)[0], &mut buf).unwrap();
            assert!(buf.ends_with(&[0x01, 0x80, 0x00]), "{buf:?}");
        }
    }

    #[test]
    fn overlapping_subscriptions_deliver_once_with_every_identifier() {
        let now = t0();
        let mut b = Broker::new(Limits::default());
        join(&mut b, 1, Version::V5, "sub", now);
        join(&mut b, 2, Version::V5, "pub", now);
        subscribe(
            &mut b,
            1,
            vec![filter("home/+/temp", QoS::AtMostOnce)],
            Some(1),
            now,
        );
        subscribe(
            &mut b,
            1,
            vec![filter("home/#", QoS::AtLeastOnce)],
            Some(2),
            now,
        );
        b.packet(
            2,
            Packet::Publish(publish("home/kitchen/temp", QoS::AtLeastOnce, 9, b"21")),
            now,
        );
        let got = publishes_to(&sends(&mut b), 1);
        assert_eq!(got.len(), 1, "once, not once per subscription");
        assert_eq!(got[0].qos, QoS::AtLeastOnce, "the highest matching QoS");
        let mut ids = got[0]
            .properties
            .as_ref()
            .unwrap()
            .subscription_identifiers
            .clone();
        ids.sort_unstable();
        assert_eq!(ids, vec![1, 2]);
    }

    fn with_will(b: &mut Broker, conn: ConnId, id: &str, delay: u32, expiry: u32, now: Instant) {
        let mut p = props();
        p.session_expiry_interval = Some(expiry);
        let mut l = login(Version::V5, connect_packet(id, true, 60, Some(p)));
        l.will = Some(LastWill {
            topic: Bytes::from_static(b"status/dev"),
            message: Bytes::from_static(b"offline"),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Some(LastWillProperties {
                delay_interval: Some(delay),
                payload_format_indicator: None,
                message_expiry_interval: None,
                content_type: None,
                response_topic: None,
                correlation_data: None,
                user_properties: vec![],
            }),
        });
        b.connect(conn, l, now);
        sends(b);
    }

    #[test]
    fn will_delay_is_honoured_and_a_reconnect_cancels_it() {
        let now = t0();
        let mut b = Broker::new(Limits::default());
        join(&mut b, 1, Version::V5, "watcher", now);
        subscribe(
            &mut b,
            1,
            vec![filter("status/#", QoS::AtMostOnce)],
            None,
            now,
        );
        with_will(&mut b, 2, "dev", 10, 3600, now);
        b.closed(2, now);
        b.tick(now + Duration::from_secs(5));
        assert!(
            publishes_to(&sends(&mut b), 1).is_empty(),
            "not before the delay"
        );
        b.tick(now + Duration::from_secs(10));
        assert_eq!(publishes_to(&sends(&mut b), 1).len(), 1, "at the delay");
        // Reconnecting within the delay cancels the will.
        with_will(&mut b, 3, "dev2", 10, 3600, now);
        b.closed(3, now);
        let mut p = props();
        p.session_expiry_interval = Some(3600);
        b.connect(
            4,
            login(Version::V5, connect_packet("dev2", false, 60, Some(p))),
            now + Duration::from_secs(2),
        );
        sends(&mut b);
        b.tick(now + Duration::from_secs(20));
        assert!(publishes_to(&sends(&mut b), 1).is_empty());
        // A normal DISCONNECT sends no will at all; a lost connection without delay sends it now.
        with_will(&mut b, 5, "dev3", 0, 0, now);
        b.closed(5, now);
        assert_eq!(publishes_to(&sends(&mut b), 1).len(), 1);
        with_will(&mut b, 6, "dev4", 0, 0, now);
        b.packet(
            6,
            Packet::Disconnect(Disconnect::new(DisconnectReasonCode::NormalDisconnection)),
            now,
        );
        assert!(publishes_to(&sends(&mut b), 1).is_empty());
    }

    #[test]
    fn exceeding_receive_maximum_disconnects_with_0x93() {
        let now = t0();
        let limits = Limits {
            receive_maximum: 2,
            ..Limits::default()
        };
        let mut b = Broker::new(limits);
        let ack = join(&mut b, 1, Version::V5, "flood", now);
        assert_eq!(ack.properties.unwrap().receive_max, Some(2));
        b.packet(
            1,
            Packet::Publish(publish("t", QoS::ExactlyOnce, 1, b"1")),
            now,
        );
        b.packet(
            1,
            Packet::Publish(publish("t", QoS::ExactlyOnce, 2, b"2")),
            now,
        );
        assert!(!closed(&sends(&mut b), 1));
        b.packet(
            1,
            Packet::Publish(publish("t", QoS::ExactlyOnce, 3, b"3")),
            now,
        );
        let a = sends(&mut b);
        assert_eq!(
            disconnect_reason(&a, 1),
            Some(DisconnectReasonCode::ReceiveMaximumExceeded)
        );
        assert!(closed(&a, 1));
    }

    #[test]
    fn never_exceeds_the_clients_receive_maximum() {
        let now = t0();
        let mut b = Broker::new(Limits::default());
        let mut p = props();
        p.receive_maximum = Some(2);
        b.connect(
            1,
            login(Version::V5, connect_packet("slow", true, 60, Some(p))),
            now,
        );
        sends(&mut b);
        join(&mut b, 2, Version::V5, "pub", now);
        subscribe(&mut b, 1, vec![filter("t", QoS::AtLeastOnce)], None, now);
        for pkid in 1..=5 {
            b.packet(
                2,
                Packet::Publish(publish("t", QoS::AtLeastOnce, pkid, b"x")),
                now,
            );
        }
        let got = publishes_to(&sends(&mut b), 1);
        assert_eq!(got.len(), 2);
        b.packet(1, Packet::PubAck(PubAck::new(got[0].pkid, None)), now);
        assert_eq!(
            publishes_to(&sends(&mut b), 1).len(),
            1,
            "one ack, one more"
        );
    }

    #[test]
    fn qos2_retransmission_is_routed_once() {
        let now = t0();
        let mut b = Broker::new(Limits::default());
        join(&mut b, 1, Version::V311, "sub", now);
        join(&mut b, 2, Version::V311, "pub", now);
        subscribe(&mut b, 1, vec![filter("t", QoS::ExactlyOnce)], None, now);
        b.packet(
            2,
            Packet::Publish(publish("t", QoS::ExactlyOnce, 7, b"x")),
            now,
        );
        let mut dup = publish("t", QoS::ExactlyOnce, 7, b"x");
        dup.dup = true;
        b.packet(2, Packet::Publish(dup), now);
        let a = sends(&mut b);
        assert_eq!(publishes_to(&a, 1).len(), 1);
        b.packet(2, Packet::PubRel(PubRel::new(7, None)), now);
        let a = sends(&mut b);
        assert!(matches!(&packets_to(&a, 2)[..], [Packet::PubComp(c)] if c.pkid == 7));
    }

    #[test]
    fn retained_messages_follow_retain_handling() {
        let now = t0();
        let mut b = Broker::new(Limits::default());
        join(&mut b, 1, Version::V5, "pub", now);
        let mut r = publish("state/light", QoS::AtLeastOnce, 1, b"on");
        r.retain = true;
        b.packet(1, Packet::Publish(r), now);
        join(&mut b, 2, Version::V5, "sub", now);
        sends(&mut b);
        let a = subscribe(
            &mut b,
            2,
            vec![filter("state/#", QoS::AtMostOnce)],
            None,
            now,
        );
        let got = publishes_to(&a, 2);
        assert_eq!(got.len(), 1);
        assert!(got[0].retain);
        assert_eq!(got[0].qos, QoS::AtMostOnce);
        let mut once = filter("state/#", QoS::AtMostOnce);
        once.retain_forward_rule = RetainForwardRule::OnNewSubscribe;
        assert!(
            publishes_to(&subscribe(&mut b, 2, vec![once], None, now), 2).is_empty(),
            "existing subscription"
        );
        let mut never = filter("state/+", QoS::AtMostOnce);
        never.retain_forward_rule = RetainForwardRule::Never;
        assert!(publishes_to(&subscribe(&mut b, 2, vec![never], None, now), 2).is_empty());
        // An empty retained payload deletes it.
        let mut del = publish("state/light", QoS::AtMostOnce, 0, b"");
        del.retain = true;
        b.packet(1, Packet::Publish(del), now);
        assert_eq!(b.counts().1, 0);
    }

    #[test]
    fn retain_as_published_keeps_the_flag_on_live_deliveries() {
        let now = t0();
        let mut b = Broker::new(Limits::default());
        join(&mut b, 1, Version::V5, "pub", now);
        join(&mut b, 2, Version::V5, "plain", now);
        join(&mut b, 3, Version::V5, "rap", now);
        subscribe(&mut b, 2, vec![filter("x", QoS::AtMostOnce)], None, now);
        let mut f = filter("x", QoS::AtMostOnce);
        f.preserve_retain = true;
        subscribe(&mut b, 3, vec![f], None, now);
        let mut r = publish("x", QoS::AtMostOnce, 0, b"v");
        r.retain = true;
        b.packet(1, Packet::Publish(r), now);
        let a = sends(&mut b);
        assert!(!publishes_to(&a, 2)[0].retain);
        assert!(publishes_to(&a, 3)[0].retain);
    }

    #[test]
    fn retained_store_is_bounded() {
        let now = t0();
        let limits = Limits {
            max_retained_bytes: 10,
            ..Limits::default()
        };
        let mut b = Broker::new(limits);
        join(&mut b, 1, Version::V311, "pub", now);
        let mut r = publish("a", QoS::AtMostOnce, 0, b"12345");
        r.retain = true;
        b.packet(1, Packet::Publish(r.clone()), now);
        r.topic = Bytes::from_static(b"b");
        r.payload = Bytes::from_static(b"123456789");
        b.packet(1, Packet::Publish(r), now);
        assert_eq!(b.counts().1, 1);
        assert_eq!(b.stats().retained_refused, 1);
    }

    #[test]
    fn acl_refuses_publishing_outside_the_users_filters_and_to_roost() {
        let now = t0();
        let mut b = Broker::new(Limits::default());
        join(&mut b, 1, Version::V5, "sub", now);
        subscribe(
            &mut b,
            1,
            vec![
                filter("#", QoS::AtMostOnce),
                filter("roost/#", QoS::AtMostOnce),
            ],
            None,
            now,
        );
        let mut l = login(Version::V5, connect_packet("plug", true, 60, None));
        l.perms = Arc::new(Perms {
            publish: vec!["#".into()],
            subscribe: vec![],
        });
        b.connect(2, l, now);
        sends(&mut b);
        b.packet(
            2,
            Packet::Publish(publish("roost/dns/qps", QoS::AtLeastOnce, 1, b"0")),
            now,
        );
        let a = sends(&mut b);
        assert!(publishes_to(&a, 1).is_empty());
        assert!(
            matches!(&packets_to(&a, 2)[..], [Packet::PubAck(p)] if p.reason == PubAckReason::NotAuthorized)
        );
        b.publish_internal("roost/dns/qps", Bytes::from_static(b"12"), false, now);
        assert_eq!(
            publishes_to(&sends(&mut b), 1).len(),
            1,
            "the router itself may"
        );
        assert_eq!(b.stats().denied, 1);
    }

    #[test]
    fn oversize_message_closes_the_connection() {
        let now = t0();
        let limits = Limits {
            max_message_bytes: 8,
            ..Limits::default()
        };
        let mut b = Broker::new(limits);
        join(&mut b, 1, Version::V5, "big", now);
        b.packet(
            1,
            Packet::Publish(publish("t", QoS::AtMostOnce, 0, b"123456789")),
            now,
        );
        let a = sends(&mut b);
        assert_eq!(
            disconnect_reason(&a, 1),
            Some(DisconnectReasonCode::PacketTooLarge)
        );
        assert!(closed(&a, 1));
    }

    #[test]
    fn takeover_closes_the_old_connection() {
        let now = t0();
        let mut b = Broker::new(Limits::default());
        join(&mut b, 1, Version::V5, "dup", now);
        b.connect(
            2,
            login(Version::V5, connect_packet("dup", true, 60, None)),
            now,
        );
        let a = sends(&mut b);
        assert_eq!(
            disconnect_reason(&a, 1),
            Some(DisconnectReasonCode::SessionTakenOver)
        );
        assert!(closed(&a, 1));
        assert_eq!(connack(&a, 2).code, ConnectReturnCode::Success);
        assert_eq!(b.clients().len(), 1);
    }

    #[test]
    fn empty_client_id_is_assigned_one_or_refused() {
        let now = t0();
        let mut b = Broker::new(Limits::default());
        b.connect(
            1,
            login(Version::V5, connect_packet("", true, 60, None)),
            now,
        );
        let ack = connack(&sends(&mut b), 1);
        assert!(ack.properties.unwrap().assigned_client_identifier.is_some());
        b.connect(
            2,
            login(Version::V311, connect_packet("", false, 60, None)),
            now,
        );
        let a = sends(&mut b);
        assert_eq!(
            connack(&a, 2).code,
            ConnectReturnCode::ClientIdentifierNotValid
        );
        assert!(closed(&a, 2));
    }

    #[test]
    fn unacknowledged_deliveries_are_resent_with_dup_after_reconnect() {
        let now = t0();
        let mut b = Broker::new(Limits::default());
        b.connect(
            1,
            login(Version::V311, connect_packet("dev", false, 60, None)),
            now,
        );
        sends(&mut b);
        subscribe(&mut b, 1, vec![filter("t", QoS::AtLeastOnce)], None, now);
        join(&mut b, 2, Version::V311, "pub", now);
        b.packet(
            2,
            Packet::Publish(publish("t", QoS::AtLeastOnce, 1, b"x")),
            now,
        );
        let first = publishes_to(&sends(&mut b), 1);
        assert_eq!(first.len(), 1);
        b.closed(1, now);
        b.connect(
            3,
            login(Version::V311, connect_packet("dev", false, 60, None)),
            now,
        );
        let again = publishes_to(&sends(&mut b), 3);
        assert_eq!(again.len(), 1);
        assert!(again[0].dup);
        assert_eq!(again[0].pkid, first[0].pkid);
    }

    #[test]
    fn snapshot_restores_retained_messages_and_persistent_sessions() {
        let now = t0();
        let mut b = Broker::new(Limits::default());
        b.connect(
            1,
            login(Version::V311, connect_packet("dev", false, 60, None)),
            now,
        );
        sends(&mut b);
        subscribe(&mut b, 1, vec![filter("t/#", QoS::AtLeastOnce)], None, now);
        b.closed(1, now);
        join(&mut b, 2, Version::V311, "pub", now);
        let mut r = publish("t/r", QoS::AtLeastOnce, 1, b"kept");
        r.retain = true;
        b.packet(2, Packet::Publish(r), now);
        sends(&mut b);
        assert!(b.take_dirty());
        let json = serde_json::to_vec(&b.snapshot(now)).unwrap();
        let mut c = Broker::new(Limits::default());
        c.restore(serde_json::from_slice(&json).unwrap(), now);
        assert_eq!(c.counts().1, 1);
        c.connect(
            9,
            login(Version::V311, connect_packet("dev", false, 60, None)),
            now,
        );
        let a = sends(&mut c);
        assert!(connack(&a, 9).session_present);
        let got = publishes_to(&a, 9);
        assert_eq!(got.len(), 1, "the queued message came back");
        assert_eq!(&got[0].payload[..], b"kept");
    }
}
