//! The wire: framing and the two protocol versions. rumqttc's codec decodes and encodes the
//! packets; this module picks the version from the CONNECT, maps MQTT 3.1.1 packets onto the
//! MQTT 5 types the core works with (a superset), and back when writing to a 3.1.1 client.

use bytes::BytesMut;
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5;

pub use v5::Packet;

/// The protocol version a client spoke in its CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Version {
    /// MQTT 3.1.1 (protocol level 4).
    V311,
    /// MQTT 5.0 (protocol level 5).
    V5,
}

/// A packet could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// More than the broker's maximum packet size.
    #[error("packet of {0} bytes exceeds the maximum packet size")]
    TooLarge(usize),
    /// Not a valid MQTT packet.
    #[error("malformed packet: {0}")]
    Malformed(String),
    /// The first packet was not a CONNECT of MQTT 3.1.1 or 5.
    #[error("unsupported protocol level {0}")]
    UnsupportedProtocol(u8),
}

/// A packet could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode packet: {0}")]
pub struct EncodeError(String);

/// The version of the CONNECT at the start of `buf`: `Ok(None)` while incomplete.
pub fn connect_version(buf: &[u8]) -> Result<Option<Version>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first != 0x10 {
        return Err(DecodeError::Malformed(
            "the first packet must be CONNECT".to_owned(),
        ));
    }
    // Skip the remaining-length varint (at most 4 bytes).
    let mut i = 1;
    loop {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        if i > 4 {
            return Err(DecodeError::Malformed("bad remaining length".to_owned()));
        }
    }
    let (Some(&hi), Some(&lo)) = (buf.get(i), buf.get(i + 1)) else {
        return Ok(None);
    };
    let name_len = usize::from(u16::from_be_bytes([hi, lo]));
    let Some(name) = buf.get(i + 2..i + 2 + name_len) else {
        return Ok(None);
    };
    let Some(&level) = buf.get(i + 2 + name_len) else {
        return Ok(None);
    };
    match (name, level) {
        (b"MQTT", 4) => Ok(Some(Version::V311)),
        (b"MQTT", 5) => Ok(Some(Version::V5)),
        _ => Err(DecodeError::UnsupportedProtocol(level)),
    }
}

fn map_v4_err(e: rumqttc::mqttbytes::Error) -> Result<Option<Packet>, DecodeError> {
    match e {
        rumqttc::mqttbytes::Error::InsufficientBytes(_) => Ok(None),
        rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(n) => Err(DecodeError::TooLarge(n)),
        e => Err(DecodeError::Malformed(e.to_string())),
    }
}

/// Reads one packet from `buf` (consuming it), `Ok(None)` until a whole packet is there.
pub fn decode(
    version: Version,
    buf: &mut BytesMut,
    max_packet: usize,
) -> Result<Option<Packet>, DecodeError> {
    match version {
        Version::V5 => {
            // rumqttc refuses two forms of DISCONNECT that MQTT 5 allows (§3.14.2): no body
            // (reason 0), and a reason code alone (the property length then is 0).
            if buf.get(..2) == Some(&[0xE0, 0][..]) {
                let _ = buf.split_to(2);
                return Ok(Some(Packet::Disconnect(v5::Disconnect::new(
                    v5::DisconnectReasonCode::NormalDisconnection,
                ))));
            }
            if let Some(&[0xE0, 1, code]) = buf.get(..3) {
                let _ = buf.split_to(3);
                let reason = v5::DisconnectReasonCode::try_from(code).map_err(|_| {
                    DecodeError::Malformed(format!("DISCONNECT reason code {code:#04x}"))
                })?;
                return Ok(Some(Packet::Disconnect(v5::Disconnect::new(reason))));
            }
            match Packet::read(buf, Some(u32::try_from(max_packet).unwrap_or(u32::MAX))) {
                Ok(p) => Ok(Some(p)),
                Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
                Err(rumqttc::v5::mqttbytes::Error::PayloadSizeLimitExceeded {
                    pkt_size, ..
                }) => Err(DecodeError::TooLarge(pkt_size)),
                Err(e) => Err(DecodeError::Malformed(e.to_string())),
            }
        }
        Version::V311 => match v4::Packet::read(buf, max_packet) {
            Ok(p) => from_v4(p).map(Some),
            Err(e) => map_v4_err(e),
        },
    }
}

fn qos_from_v4(q: rumqttc::mqttbytes::QoS) -> QoS {
    match q {
        rumqttc::mqttbytes::QoS::AtMostOnce => QoS::AtMostOnce,
        rumqttc::mqttbytes::QoS::AtLeastOnce => QoS::AtLeastOnce,
        rumqttc::mqttbytes::QoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}

fn qos_to_v4(q: QoS) -> rumqttc::mqttbytes::QoS {
    match q {
        QoS::AtMostOnce => rumqttc::mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::mqttbytes::QoS::ExactlyOnce,
    }
}

fn from_v4(p: v4::Packet) -> Result<Packet, DecodeError> {
    Ok(match p {
        v4::Packet::Connect(c) => {
            let will = c.last_will.map(|w| v5::LastWill {
                topic: w.topic.into(),
                message: w.message,
                qos: qos_from_v4(w.qos),
                retain: w.retain,
                properties: None,
            });
            let login = c.login.map(|l| v5::Login {
                username: l.username,
                password: l.password,
            });
            Packet::Connect(
                v5::Connect {
                    keep_alive: c.keep_alive,
                    client_id: c.client_id,
                    clean_start: c.clean_session,
                    properties: None,
                },
                will,
                login,
            )
        }
        v4::Packet::Publish(p) => Packet::Publish(v5::Publish {
            dup: p.dup,
            qos: qos_from_v4(p.qos),
            retain: p.retain,
            topic: p.topic.into(),
            pkid: p.pkid,
            payload: p.payload,
            properties: None,
        }),
        v4::Packet::PubAck(a) => Packet::PubAck(v5::PubAck::new(a.pkid, None)),
        v4::Packet::PubRec(a) => Packet::PubRec(v5::PubRec::new(a.pkid, None)),
        v4::Packet::PubRel(a) => Packet::PubRel(v5::PubRel::new(a.pkid, None)),
        v4::Packet::PubComp(a) => Packet::PubComp(v5::PubComp::new(a.pkid, None)),
        v4::Packet::Subscribe(s) => Packet::Subscribe(v5::Subscribe {
            pkid: s.pkid,
            filters: s
                .filters
                .into_iter()
                .map(|f| v5::Filter {
                    path: f.path,
                    qos: qos_from_v4(f.qos),
                    nolocal: false,
                    preserve_retain: false,
                    retain_forward_rule: v5::RetainForwardRule::OnEverySubscribe,
                })
                .collect(),
            properties: None,
        }),
        v4::Packet::Unsubscribe(u) => Packet::Unsubscribe(v5::Unsubscribe {
            pkid: u.pkid,
            filters: u.topics,
            properties: None,
        }),
        v4::Packet::PingReq => Packet::PingReq(v5::PingReq),
        v4::Packet::Disconnect => Packet::Disconnect(v5::Disconnect::new(
            v5::DisconnectReasonCode::NormalDisconnection,
        )),
        other => {
            return Err(DecodeError::Malformed(format!(
                "a client may not send {other:?}"
            )));
        }
    })
}

/// Appends `packet` to `out` in the client's version. Packets 3.1.1 has no form for (a
/// server's DISCONNECT, AUTH) are skipped: for a 3.1.1 client the connection just closes.
pub fn encode(version: Version, packet: &Packet, out: &mut BytesMut) -> Result<(), EncodeError> {
    match version {
        // rumqttc writes a DISCONNECT with a reason code and no properties one byte longer
        // than its Remaining Length says: written here, the property length 0 spelt out.
        Version::V5 => match packet {
            Packet::Disconnect(d)
                if d.reason_code != v5::DisconnectReasonCode::NormalDisconnection
                    && d.properties.is_none() =>
            {
                out.extend_from_slice(&[0xE0, 2, d.reason_code as u8, 0]);
                Ok(())
            }
            _ => packet
                .write(out, None)
                .map(|_| ())
                .map_err(|e| EncodeError(e.to_string())),
        },
        Version::V311 => {
            let Some(p) = to_v4(packet) else {
                return Ok(());
            };
            p.write(out, usize::MAX)
                .map(|_| ())
                .map_err(|e| EncodeError(e.to_string()))
        }
    }
}

fn to_v4(p: &Packet) -> Option<v4::Packet> {
    Some(match p {
        Packet::ConnAck(a) => v4::Packet::ConnAck(v4::ConnAck {
            session_present: a.session_present,
            code: connack_code_v4(a.code),
        }),
        Packet::Publish(p) => v4::Packet::Publish(v4::Publish {
            dup: p.dup,
            qos: qos_to_v4(p.qos),
            retain: p.retain,
            topic: String::from_utf8_lossy(&p.topic).into_owned(),
            pkid: p.pkid,
            payload: p.payload.clone(),
        }),
        Packet::PubAck(a) => v4::Packet::PubAck(v4::PubAck { pkid: a.pkid }),
        Packet::PubRec(a) => v4::Packet::PubRec(v4::PubRec { pkid: a.pkid }),
        Packet::PubRel(a) => v4::Packet::PubRel(v4::PubRel { pkid: a.pkid }),
        Packet::PubComp(a) => v4::Packet::PubComp(v4::PubComp { pkid: a.pkid }),
        Packet::SubAck(s) => v4::Packet::SubAck(v4::SubAck {
            pkid: s.pkid,
            return_codes: s
                .return_codes
                .iter()
                .map(|c| match c {
                    v5::SubscribeReasonCode::Success(q) => {
                        v4::SubscribeReasonCode::Success(qos_to_v4(*q))
                    }
                    _ => v4::SubscribeReasonCode::Failure,
                })
                .collect(),
        }),
        Packet::UnsubAck(u) => v4::Packet::UnsubAck(v4::UnsubAck { pkid: u.pkid }),
        Packet::PingResp(_) => v4::Packet::PingResp,
        _ => return None,
    })
}

fn connack_code_v4(code: v5::ConnectReturnCode) -> v4::ConnectReturnCode {
    use v5::ConnectReturnCode as C;
    match code {
        C::Success => v4::ConnectReturnCode::Success,
        C::UnsupportedProtocolVersion | C::RefusedProtocolVersion => {
            v4::ConnectReturnCode::RefusedProtocolVersion
        }
        C::ClientIdentifierNotValid | C::BadClientId => v4::ConnectReturnCode::BadClientId,
        C::BadUserNamePassword => v4::ConnectReturnCode::BadUserNamePassword,
        C::NotAuthorized | C::Banned | C::BadAuthenticationMethod => {
            v4::ConnectReturnCode::NotAuthorized
        }
        _ => v4::ConnectReturnCode::ServiceUnavailable,
    }
}

/// A CONNACK refusing the connection with `code`.
pub fn refusal(code: v5::ConnectReturnCode) -> Packet {
    Packet::ConnAck(v5::ConnAck {
        session_present: false,
        code,
        properties: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn tells_the_version_from_the_connect() {
        // mosquitto_pub -V mqttv311 CONNECT, and the same at level 5.
        let v311 = [0x10, 0x0c, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 0];
        assert_eq!(connect_version(&v311).unwrap(), Some(Version::V311));
        let mut v5 = v311;
        v5[8] = 5;
        assert_eq!(connect_version(&v5).unwrap(), Some(Version::V5));
        assert_eq!(connect_version(&v311[..5]).unwrap(), None);
        assert!(connect_version(b"GET / HTTP/1.1\r\n").is_err());
        let mut v3 = v311;
        v3[8] = 3;
        assert!(matches!(
            connect_version(&v3),
            Err(DecodeError::UnsupportedProtocol(3))
        ));
    }

    #[test]
    fn a_v5_disconnect_with_a_reason_is_framed_as_its_length_says_and_reads_back() {
        let d = Packet::Disconnect(v5::Disconnect::new(
            v5::DisconnectReasonCode::TopicNameInvalid,
        ));
        let mut out = BytesMut::new();
        encode(Version::V5, &d, &mut out).unwrap();
        assert_eq!(&out[..], [0xE0, 2, 0x90, 0]);
        let read = Packet::read(&mut out, None).unwrap();
        assert_eq!(read, d);
        assert!(out.is_empty());
    }

    #[test]
    fn reads_a_v5_disconnect_with_only_a_reason_code() {
        let mut buf = BytesMut::from(&[0xE0u8, 1, 0x04, 0xC0, 0][..]);
        let p = decode(Version::V5, &mut buf, 1024).unwrap().unwrap();
        assert_eq!(
            p,
            Packet::Disconnect(v5::Disconnect::new(
                v5::DisconnectReasonCode::DisconnectWithWillMessage
            ))
        );
        assert_eq!(&buf[..], [0xC0, 0], "the next packet stays");
        let mut normal = BytesMut::from(&[0xE0u8, 1, 0][..]);
        let p = decode(Version::V5, &mut normal, 1024).unwrap().unwrap();
        assert_eq!(
            p,
            Packet::Disconnect(v5::Disconnect::new(
                v5::DisconnectReasonCode::NormalDisconnection
            ))
        );
        let mut bad = BytesMut::from(&[0xE0u8, 1, 0x01][..]);
        assert!(decode(Version::V5, &mut bad, 1024).is_err());
    }

    #[test]
    fn reads_an_empty_v5_disconnect() {
        let mut buf = BytesMut::from(&[0xE0u8, 0x00][..]);
        let p = decode(Version::V5, &mut buf, 1024).unwrap().unwrap();
        assert!(matches!(p, Packet::Disconnect(_)));
        assert!(buf.is_empty());
    }

    #[test]
    fn refuses_packets_over_the_maximum() {
        let p = Packet::Publish(v5::Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: Bytes::from_static(b"t"),
            pkid: 0,
            payload: Bytes::from(vec![0u8; 2000]),
            properties: None,
        });
        for version in [Version::V311, Version::V5] {
            let mut buf = BytesMut::new();
            encode(version, &p, &mut buf).unwrap();
            assert!(matches!(
                decode(version, &mut buf, 1000),
                Err(DecodeError::TooLarge(_))
            ));
        }
    }

    #[test]
    fn a_v311_publish_round_trips_through_v5_types() {
        let p = Packet::Publish(v5::Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: true,
            topic: Bytes::from_static(b"a/b"),
            pkid: 7,
            payload: Bytes::from_static(b"hi"),
            properties: None,
        });
        let mut buf = BytesMut::new();
        encode(Version::V311, &p, &mut buf).unwrap();
        assert_eq!(decode(Version::V311, &mut buf, 1024).unwrap().unwrap(), p);
    }
}
