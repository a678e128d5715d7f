//! What IoT devices send, with arbitrary bytes: up to four connections' byte streams (split at
//! each `0xFE 0xED`), read by the broker's codec (the protocol version from the CONNECT, then
//! packets in that version) and fed to the sans-IO core in turn, one packet per connection,
//! with the clock moving on. One connection may do anything, one only what a sensor's ACL
//! allows. Nothing may panic; every packet the core sends must encode in its client's version
//! and read back as one whole packet; the durable state must survive its JSON form.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use roost_mqtt::codec::{self, Packet, Version};
use roost_mqtt::core::{Action, Broker, ConnId, Limits, Login, Perms};
use roost_mqtt::store::Snapshot;

const MAX_PACKET: usize = 8 * 1024;

struct Conn {
    buf: BytesMut,
    /// Its version once the CONNECT was read; None before.
    version: Option<Version>,
    open: bool,
    perms: Arc<Perms>,
}

fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while parts.len() < 3 {
        match rest.windows(2).position(|w| w == [0xFE, 0xED]) {
            Some(i) => {
                parts.push(&rest[..i]);
                rest = &rest[i + 2..];
            }
            None => break,
        }
    }
    parts.push(rest);
    parts
}

/// The packet the client reads: encoded as the broker writes it, read back whole.
fn check_sent(version: Version, packet: &Packet) {
    let mut out = BytesMut::new();
    if codec::encode(version, packet, &mut out).is_err() || out.is_empty() {
        // Packets with no 3.1.1 form are skipped by design; a v5 packet must always encode.
        assert!(version == Version::V311, "cannot encode {packet:?}");
        return;
    }
    let whole = out.len();
    let wire = format!("{:02x?}", &out[..]);
    let read = match version {
        Version::V5 => rumqttc::v5::mqttbytes::v5::Packet::read(&mut out, None)
            .err()
            .map(|e| format!("{e:?}")),
        Version::V311 => rumqttc::mqttbytes::v4::Packet::read(&mut out, usize::MAX)
            .err()
            .map(|e| format!("{e:?}")),
    };
    if let Some(e) = read {
        panic!("sent a {version:?} packet its client cannot read ({e}): {packet:?} as {wire}");
    }
    assert!(out.is_empty(), "{} of {whole} bytes left over", out.len());
}

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::now();
    let mut broker = Broker::new(Limits {
        max_packet_bytes: MAX_PACKET as u32,
        max_message_bytes: 4096,
        max_queued: 16,
        max_retained_bytes: 64 * 1024,
        ..Limits::default()
    });
    let sensor = Arc::new(Perms {
        publish: vec!["home/+/temperature".into(), "home/sensor/#".into()],
        subscribe: vec!["home/+/set".into()],
    });
    let mut conns: Vec<Conn> = split(data)
        .into_iter()
        .enumerate()
        .map(|(i, bytes)| Conn {
            buf: BytesMut::from(bytes),
            version: None,
            open: true,
            perms: if i % 2 == 0 {
                Arc::new(Perms::anything())
            } else {
                Arc::clone(&sensor)
            },
        })
        .collect();

    let mut steps = 0u32;
    loop {
        let mut progressed = false;
        for (i, c) in conns.iter_mut().enumerate() {
            let id = i as ConnId;
            if !c.open {
                continue;
            }
            match c.version {
                None => {
                    let connect = match codec::connect_version(&c.buf) {
                        Ok(Some(v)) => codec::decode(v, &mut c.buf, MAX_PACKET).map(|p| (v, p)),
                        Ok(None) => Ok((Version::V5, None)),
                        Err(e) => Err(e),
                    };
                    match connect {
                        Ok((version, Some(Packet::Connect(connect, will, _login)))) => {
                            c.version = Some(version);
                            let login = Login {
                                version,
                                user: Some(format!("user{i}")),
                                perms: Arc::clone(&c.perms),
                                connect,
                                will,
                            };
                            broker.connect(id, login, now);
                            progressed = true;
                        }
                        // Incomplete, malformed, or not a CONNECT: the edge drops it unseen.
                        _ => c.open = false,
                    }
                }
                Some(version) => match codec::decode(version, &mut c.buf, MAX_PACKET) {
                    Ok(Some(p)) => {
                        broker.packet(id, p, now);
                        progressed = true;
                    }
                    Ok(None) | Err(_) => {
                        c.open = false;
                        broker.closed(id, now);
                    }
                },
            }
        }
        steps += 1;
        if steps % 4 == 0 {
            now += Duration::from_secs(7);
            broker.tick(now);
        }
        let actions: Vec<Action> = broker.drain().collect();
        for action in actions {
            match action {
                Action::Send(id, packet) => {
                    let c = &conns[usize::try_from(id).unwrap()];
                    check_sent(c.version.unwrap_or(Version::V5), &packet);
                }
                Action::Close(id) => {
                    let c = &mut conns[usize::try_from(id).unwrap()];
                    if c.open {
                        c.open = false;
                        broker.closed(id, now);
                    }
                }
            }
        }
        if !progressed {
            break;
        }
    }
    let _ = broker.stats();
    let _ = broker.clients();

    let snapshot = broker.snapshot(now);
    let json = serde_json::to_string(&snapshot).unwrap();
    let back: Snapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(
        back, snapshot,
        "the snapshot does not survive its file form"
    );
    let mut restarted = Broker::new(Limits::default());
    restarted.restore(back, now + Duration::from_secs(1));
    let _ = restarted.snapshot(now + Duration::from_secs(2));
});
