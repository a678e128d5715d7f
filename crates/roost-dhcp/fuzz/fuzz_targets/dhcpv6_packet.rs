//! DHCPv6 message → reply: any bytes on any interface, from any source, at any time, must
//! give a reply or a counted drop (never a panic); every reply must decode again as a REPLY
//! with the request's transaction id, go to port 546 of the sender, and follow only an
//! INFORMATION-REQUEST.
#![no_main]

use std::net::SocketAddrV6;

use dhcproto::v6::{Message, MessageType};
use dhcproto::{Decodable, Decoder};
use libfuzzer_sys::fuzz_target;
use roost_dhcp::core6::{Config6, Core6, Link6, Zone6, domain_name, duid_ll};

fn config() -> Config6 {
    let zone = |name: &str, dns: &str| Zone6 {
        name: name.to_owned(),
        interface: name.to_owned(),
        dns: dns.parse().unwrap_or_else(|_| unreachable!()),
    };
    Config6 {
        zones: vec![
            zone("lan", "fd12:3456:789a:1::1"),
            zone("iot", "fd12:3456:789a:14::1"),
        ],
        domain: domain_name("home.arpa"),
    }
}

fuzz_target!(|data: &[u8]| {
    // The input is split into messages at 0xFE; the byte before each picks the interface
    // (lan, iot, or guest without IPv6), the source (link-local or not) and how far time
    // moves, so the rate limit is explored too.
    let mut core = Core6::new(config());
    let mut now = 1_700_000_000u64;
    for chunk in data.split(|b| *b == 0xfe) {
        let Some((&ctl, packet)) = chunk.split_first() else {
            continue;
        };
        let interface = ["lan", "iot", "guest", "lan"][usize::from(ctl & 3)];
        let link = Link6 {
            interface: interface.to_owned(),
            duid: duid_ll([0x52, 0x54, 0, 0, 0, ctl & 4]),
        };
        let source = if ctl & 8 == 0 {
            "fe80::5054:ff:fe00:9"
        } else {
            "fd12:3456:789a:1::9"
        };
        let from = SocketAddrV6::new(source.parse().unwrap_or_else(|_| unreachable!()), 546, 0, 3);
        now += u64::from(ctl >> 4);
        let before = core.stats().replies;
        if let Some(reply) = core.handle(&link, from, packet, now) {
            assert_eq!(packet[0], 11, "only INFORMATION-REQUEST is answered");
            let msg = Message::decode(&mut Decoder::new(&reply.bytes));
            let msg = msg.unwrap_or_else(|e| panic!("reply does not decode: {e}"));
            assert_eq!(msg.msg_type(), MessageType::Reply);
            assert_eq!(msg.xid(), [packet[1], packet[2], packet[3]]);
            assert_eq!(reply.to.port(), 546);
            assert_eq!(reply.to.ip(), from.ip());
            assert_eq!(core.stats().replies, before + 1);
        }
    }
});
