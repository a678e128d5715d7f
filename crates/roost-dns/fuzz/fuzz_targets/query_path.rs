//! The query path with arbitrary bytes: parse, decide (refuse, local, blocked, cache), and the
//! wire helpers a cached answer goes through. Nothing may panic; every reply must parse as a
//! DNS message echoing the query's ID.
#![no_main]

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use roost_config::settings::{Dns, HostRecord};
use roost_config::views::{ControlView, ZoneNet};
use roost_dns::resolver::{Step, Transport};
use roost_dns::{Resolver, wire};

fn resolver() -> &'static Arc<Resolver> {
    static R: OnceLock<Arc<Resolver>> = OnceLock::new();
    R.get_or_init(|| {
        let mut dns = Dns::default();
        dns.hosts.push(HostRecord {
            name: "printer".into(),
            address: "192.168.1.20".parse().unwrap(),
        });
        let example = include_str!("../../../../examples/roost.toml");
        let mut view = roost_config::Settings::from_toml("roost.toml", example)
            .unwrap()
            .dns_view();
        view.control = ControlView {
            listen: "127.0.0.1:0".parse().unwrap(),
            token_file: "/dev/null".into(),
        };
        view.hostname = "router".into();
        view.domain = "home.arpa".into();
        view.clients = vec!["192.168.1.0/24".parse().unwrap()];
        view.zones = vec![ZoneNet {
            name: "lan".into(),
            subnet: "192.168.1.0/24".parse().unwrap(),
            router: "192.168.1.1".parse().unwrap(),
            subnet6: None,
        }];
        view.dns = dns;
        Arc::new(Resolver::new(view).unwrap())
    })
}

fn check_reply(query: &[u8], out: &[u8]) {
    assert!(out.len() >= 12);
    assert_eq!(&out[..2], &query[..2]);
}

fuzz_target!(|data: &[u8]| {
    let r = resolver();
    let inside: IpAddr = "192.168.1.50".parse().unwrap();
    let outside: IpAddr = "203.0.113.9".parse().unwrap();
    for (src, transport) in [
        (inside, Transport::Udp),
        (inside, Transport::Tcp),
        (outside, Transport::Udp),
    ] {
        match r.decide(data, src, transport, Instant::now()) {
            Step::Reply(out) | Step::ReplyAndPrefetch(out, _) => check_reply(data, &out),
            Step::Drop | Step::Resolve(_) => {}
        }
    }
    // The same bytes as an upstream answer: prepare, then serve to a parsed query.
    if let Ok(p) = wire::prepare(data) {
        if let Ok(q) = wire::parse_query(data) {
            let out = wire::render(&p, &q, data, wire::Ttls::Age(7), q.udp_limit());
            check_reply(data, &out);
        }
    }
});
