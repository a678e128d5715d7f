//! A scripted client on the wire: many clients at once, bad input, kill -9, PUT /config.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, Message, MessageType};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

use crate::{Net, wait_until};

const LAN_SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 2);

fn mac(n: u32) -> [u8; 6] {
    let b = n.to_be_bytes();
    [0x02, 0xdd, b[0], b[1], b[2], b[3]]
}

fn send(sock: &UdpSocket, msg: &Message) {
    let mut buf = Vec::new();
    msg.encode(&mut Encoder::new(&mut buf)).unwrap();
    sock.send_to(&buf, SocketAddrV4::new(Ipv4Addr::BROADCAST, 67))
        .unwrap();
}

/// Waits for a reply with `xid` of type `kind`.
fn wait_reply(sock: &UdpSocket, xid: u32, kind: MessageType) -> Option<Message> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let Ok(m) = Message::decode(&mut Decoder::new(&buf[..n])) else {
            continue;
        };
        if m.xid() == xid && m.opts().msg_type() == Some(kind) {
            return Some(m);
        }
    }
    None
}

/// DISCOVER, OFFER, REQUEST, ACK for `mac`; the acknowledged address.
fn lease_for(sock: &UdpSocket, mac: [u8; 6], xid: u32) -> Option<Ipv4Addr> {
    let zero = Ipv4Addr::UNSPECIFIED;
    let mut d = Message::new_with_id(xid, zero, zero, zero, zero, &mac);
    d.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Discover));
    send(sock, &d);
    let offer = wait_reply(sock, xid, MessageType::Offer)?;
    let mut r = Message::new_with_id(xid, zero, zero, zero, zero, &mac);
    r.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Request));
    r.opts_mut()
        .insert(DhcpOption::RequestedIpAddress(offer.yiaddr()));
    r.opts_mut()
        .insert(DhcpOption::ServerIdentifier(LAN_SERVER));
    send(sock, &r);
    let ack = wait_reply(sock, xid, MessageType::Ack)?;
    Some(ack.yiaddr())
}

fn lan_socket(net: &Net) -> UdpSocket {
    let c = net.client("lan");
    Net::socket_in(&c.netns, &c.ifname, 68)
}

#[test]
fn needs_root_every_acked_lease_survives_kill_9_during_a_stream_of_requests() {
    let mut net = Net::new("k", "1h");
    net.start();
    let sock = Arc::new(lan_socket(&net));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = {
        let (sock, stop) = (Arc::clone(&sock), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut acked = BTreeMap::new();
            for n in 0..140u32 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match lease_for(&sock, mac(n), 0x5000 + n) {
                    Some(ip) => {
                        acked.insert(ip, mac(n));
                    }
                    None => break, // the server is gone
                }
            }
            acked
        })
    };
    // Kill it mid-stream, once it has acknowledged a few dozen leases.
    wait_until(Duration::from_secs(30), "40 acks", || {
        (net.metric("roost_dhcp_replies_total{type=\"ack\"}") >= 40).then_some(())
    });
    net.kill9();
    stop.store(true, Ordering::Relaxed);
    let acked = acked.join().unwrap();
    assert!(acked.len() >= 40, "{}", acked.len());
    net.start();
    let state = net.state();
    let leases = state["leases"].as_array().unwrap();
    for (ip, m) in &acked {
        let lease = leases
            .iter()
            .find(|l| l["ip"] == ip.to_string())
            .unwrap_or_else(|| panic!("acknowledged lease {ip} lost"));
        assert_eq!(lease["mac"], roost_config::MacAddr(*m).to_string());
        assert_eq!(lease["state"], "bound");
    }
    // And the restarted server goes on: a known client gets its address back.
    let (ip, m) = acked.iter().next().unwrap();
    assert_eq!(lease_for(&sock, *m, 0x9999), Some(*ip));
}

#[test]
fn needs_root_garbage_is_counted_and_dropped_and_the_server_keeps_serving() {
    let mut net = Net::new("g", "1h");
    net.start();
    let sock = lan_socket(&net);
    let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
    sock.send_to(&[1, 2, 3], to).unwrap();
    sock.send_to(&[0u8; 1400], to).unwrap();
    sock.send_to(&vec![0xffu8; 4000], to).unwrap();
    let zero = Ipv4Addr::UNSPECIFIED;
    let mut reply_op = Message::new_with_id(7, zero, zero, zero, zero, &mac(1));
    reply_op.set_opcode(dhcproto::v4::Opcode::BootReply);
    reply_op
        .opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Offer));
    send(&sock, &reply_op);
    // A flood from one MAC: beyond the rate limit (10/s) it is dropped.
    let mut d = Message::new_with_id(8, zero, zero, zero, zero, &mac(2));
    d.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Discover));
    for _ in 0..50 {
        send(&sock, &d);
    }
    wait_until(Duration::from_secs(5), "drop counters", || {
        let get = |r: &str| net.metric(&format!("roost_dhcp_dropped_total{{reason=\"{r}\"}}"));
        (get("truncated") >= 1
            && get("malformed") >= 1
            && get("oversized") >= 1
            && get("wrong_opcode") >= 1
            && get("rate_limited") >= 30)
            .then_some(())
    });
    assert!(lease_for(&sock, mac(3), 0x42).is_some());
    assert_eq!(net.get("/health").0, 200);
}

#[test]
fn needs_root_put_config_applies_a_new_reservation_and_keeps_leases() {
    let mut net = Net::new("c", "1h");
    net.start();
    let sock = lan_socket(&net);
    let first = lease_for(&sock, mac(1), 1).unwrap();
    // Reserve 192.168.1.20 for mac(2).
    let mut view = std::fs::read_to_string(&net.view).unwrap();
    view.push_str(&format!(
        "\n[[reservations]]\nzone = \"lan\"\nmac = \"{}\"\nip = \"192.168.1.20\"\n",
        roost_config::MacAddr(mac(2))
    ));
    let path = net.dir.path().join("new.toml");
    std::fs::write(&path, view).unwrap();
    let (code, body) = net.put("/config", &path);
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        lease_for(&sock, mac(2), 2),
        Some(Ipv4Addr::new(192, 168, 1, 20))
    );
    assert!(net.lease(first).is_some(), "the old lease is kept");
    // /state lists the reservation in force.
    let reserved = net.state()["reservations"].as_array().unwrap().clone();
    assert!(
        reserved
            .iter()
            .any(|r| r["ip"] == "192.168.1.20"
                && r["mac"] == roost_config::MacAddr(mac(2)).to_string()),
        "{reserved:?}"
    );
    // A broken view is refused and the old one stays.
    std::fs::write(&path, "zones = 5").unwrap();
    assert_eq!(net.put("/config", &path).0, 400);
    assert!(lease_for(&sock, mac(4), 4).is_some());
}
