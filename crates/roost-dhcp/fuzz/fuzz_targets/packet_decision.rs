//! Packet → decision: any bytes on any zone interface, at any time, must give a decision
//! (never a panic), every reply must encode, and every lease change must be in a served zone.
#![no_main]

use dhcproto::{Encodable, Encoder};
use libfuzzer_sys::fuzz_target;
use roost_dhcp::core::{Config, Core, ReservationConfig, ZoneConfig};

fn config() -> Config {
    let zone = |name: &str, third: u8| ZoneConfig {
        name: name.to_owned(),
        interface: name.to_owned(),
        subnet: format!("192.168.{third}.0/24")
            .parse()
            .unwrap_or_else(|_| unreachable!()),
        router: [192, 168, third, 1].into(),
        server: [192, 168, third, 2].into(),
        dns_server: [192, 168, third, 1].into(),
        pool_start: [192, 168, third, 100].into(),
        pool_end: [192, 168, third, 110].into(),
        lease_secs: 60,
    };
    Config {
        zones: vec![zone("lan", 1), zone("iot", 20)],
        reservations: vec![ReservationConfig {
            zone: "lan".into(),
            mac: Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            client_id: None,
            ip: [192, 168, 1, 10].into(),
            hostname: Some("nas".into()),
        }],
        max_leases_per_client: 2,
        rate_limit_per_mac: 1000,
        quarantine_secs: 30,
        domain: "home.arpa".into(),
    }
}

fuzz_target!(|data: &[u8]| {
    // A session: the input is split into packets at 0xFE 0xFE; the byte before each picks
    // the interface and how far time moves, so sequences (DISCOVER then REQUEST ...) are
    // explored too.
    let mut core = Core::new(config());
    let mut now = 1_700_000_000u64;
    for chunk in data.split(|b| *b == 0xfe) {
        let Some((&ctl, packet)) = chunk.split_first() else {
            continue;
        };
        let iface = if ctl & 1 == 0 { "lan" } else { "iot" };
        now += u64::from(ctl >> 1);
        let d = core.handle(iface, packet, now);
        if let Some(reply) = &d.reply {
            let mut buf = Vec::new();
            assert!(reply.message.encode(&mut Encoder::new(&mut buf)).is_ok());
        }
        for lease in &d.changes {
            assert!(lease.zone == "lan" || lease.zone == "iot");
        }
    }
});
