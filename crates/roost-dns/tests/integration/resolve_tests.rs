//! Forwarding, caching, local names, blocking and robustness, seen from real clients.

use std::net::UdpSocket;
use std::time::Duration;

use roost_config::settings::{BlockResponse, Blocklist, BlocklistFormat};

use crate::{Knot, RoostDns, kdig, loopback_view, wait_until};

const UPSTREAM: &str = "roost_dns_upstream_queries_total";

#[test]
fn second_query_is_answered_from_the_cache() {
    let knot = Knot::start();
    let dns = RoostDns::start(&knot);
    assert_eq!(
        dns.dig(&["+short", "www.example.test"]).trim(),
        "192.0.2.10"
    );
    assert_eq!(dns.metric(UPSTREAM), 1);
    // Asked in another case: the same entry, and the client's case comes back.
    let out = dns.dig(&["WwW.ExAmPlE.tEsT"]);
    assert!(out.contains("WwW.ExAmPlE.tEsT."), "{out}");
    assert!(out.contains("192.0.2.10"), "{out}");
    assert_eq!(dns.metric(UPSTREAM), 1, "the second query went upstream");
    assert_eq!(dns.metric("roost_dns_cache_hits_total"), 1);
    // The cached answer keeps the EDNS and flags a client expects.
    assert!(out.contains("flags: qr rd ra;"), "{out}");
    assert!(out.contains("EDNS: version: 0"), "{out}");
}

#[test]
fn negative_answers_are_cached_with_the_soa() {
    let knot = Knot::start();
    let dns = RoostDns::start(&knot);
    let first = dns.dig(&["nothing.example.test"]);
    assert!(first.contains("status: NXDOMAIN"), "{first}");
    let second = dns.dig(&["nothing.example.test"]);
    assert!(second.contains("status: NXDOMAIN"), "{second}");
    assert!(
        second.contains("SOA"),
        "negative answer without SOA: {second}"
    );
    // NODATA: the name exists, the type does not.
    let nodata = dns.dig(&["mail.example.test", "AAAA"]);
    assert!(
        nodata.contains("status: NOERROR") && nodata.contains("ANSWER: 0"),
        "{nodata}"
    );
    dns.dig(&["mail.example.test", "AAAA"]);
    assert_eq!(dns.metric(UPSTREAM), 2);
    assert_eq!(dns.metric("roost_dns_cache_hits_total"), 2);
}

#[test]
fn large_answer_is_truncated_over_udp_and_whole_over_tcp() {
    let knot = Knot::start();
    let dns = RoostDns::start(&knot);
    // dig retries over TCP by itself when it sees TC.
    let out = dns.dig(&["+short", "big.example.test"]);
    assert_eq!(out.lines().count(), 100, "{out}");
    assert_eq!(dns.metric("roost_dns_upstream_tcp_fallbacks_total"), 1);
    let udp_only = dns.dig(&["+ignore", "+notcp", "big.example.test"]);
    assert!(udp_only.contains(" tc "), "no TC over UDP: {udp_only}");
    let tcp = kdig(dns.dns, &["+tcp", "+short", "big.example.test"]);
    assert_eq!(tcp.lines().count(), 100, "{tcp}");
    assert_eq!(dns.metric(UPSTREAM), 1, "the big answer was cached whole");
}

#[test]
fn stale_answer_is_served_when_the_upstream_is_down() {
    let mut knot = Knot::start();
    let dns = RoostDns::start(&knot);
    assert_eq!(
        dns.dig(&["+short", "short.example.test"]).trim(),
        "192.0.2.11"
    );
    knot.stop();
    // The record's TTL is 1 s: once it has expired, the answer comes stale, with TTL 30.
    let out = wait_until("a stale answer", Duration::from_secs(15), || {
        let out = dns.dig(&["+noall", "+answer", "short.example.test"]);
        (dns.metric("roost_dns_stale_answers_total") >= 1).then_some(out)
    });
    assert!(out.contains("192.0.2.11"), "{out}");
    let again = dns.dig(&["+noall", "+answer", "short.example.test"]);
    assert!(again.contains("\t30\tIN\tA\t192.0.2.11"), "{again}");
    // A name never seen gets SERVFAIL, not a hang.
    let unknown = dns.dig(&["never.example.test"]);
    assert!(unknown.contains("status: SERVFAIL"), "{unknown}");
}

#[test]
fn garbage_datagrams_are_survived_and_counted() {
    let knot = Knot::start();
    let dns = RoostDns::start(&knot);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    // Runts and responses get nothing back.
    sock.send_to(&[0xde, 0xad, 0xbe], dns.dns).unwrap();
    sock.send_to(
        &[0x12, 0x34, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2],
        dns.dns,
    )
    .unwrap();
    // A query header whose question runs off the end gets FORMERR.
    let bad = [0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 63, b'x'];
    sock.send_to(&bad, dns.dns).unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..2], &[0xab, 0xcd]);
    assert_eq!(buf[3] & 0x0f, 1, "FORMERR");
    assert_eq!(n, 12);
    for i in 0..200u32 {
        let junk: Vec<u8> = (0..(i % 60)).map(|j| (i * 31 + j * 7) as u8).collect();
        sock.send_to(&junk, dns.dns).unwrap();
    }
    assert_eq!(
        dns.dig(&["+short", "www.example.test"]).trim(),
        "192.0.2.10"
    );
    assert!(dns.metric("roost_dns_malformed_total") >= 3);
}

#[test]
fn queries_from_outside_the_client_networks_are_refused() {
    let knot = Knot::start();
    let dns = RoostDns::start_with(|dir| {
        let mut v = loopback_view(dir, Some(knot.addr));
        v.clients = vec!["127.0.0.2/32".parse().unwrap()];
        v
    });
    let refused = dns.dig(&["-b", "127.0.0.1", "www.example.test"]);
    assert!(refused.contains("status: REFUSED"), "{refused}");
    let allowed = dns.dig(&["-b", "127.0.0.2", "+short", "www.example.test"]);
    assert_eq!(allowed.trim(), "192.0.2.10");
    assert_eq!(dns.metric(UPSTREAM), 1);
}

#[test]
fn local_names_are_answered_here_and_never_go_upstream() {
    let knot = Knot::start();
    let dns = RoostDns::start(&knot);
    assert_eq!(dns.dig(&["+short", "router.home.arpa"]).trim(), "127.0.0.1");
    assert_eq!(
        dns.dig(&["+short", "printer.home.arpa"]).trim(),
        "127.0.0.20"
    );
    assert_eq!(
        dns.dig(&["+short", "-x", "127.0.0.20"]).trim(),
        "printer.home.arpa."
    );
    let missing = dns.dig(&["laptop.home.arpa"]);
    assert!(
        missing.contains("status: NXDOMAIN") && missing.contains("flags: qr aa"),
        "{missing}"
    );
    // The DHCP server pushes its leases.
    let body = r#"{"names":[{"name":"laptop","address":"127.0.0.50"}]}"#;
    assert_eq!(dns.http("PUT", "/local-names", body).0, 200);
    assert_eq!(
        dns.dig(&["+short", "laptop.home.arpa"]).trim(),
        "127.0.0.50"
    );
    assert_eq!(
        dns.dig(&["+short", "-x", "127.0.0.50"]).trim(),
        "laptop.home.arpa."
    );
    // A lease may not claim a name outside the local domain.
    let hijack = r#"{"names":[{"name":"www.example.test","address":"127.0.0.66"}]}"#;
    assert_eq!(dns.http("PUT", "/local-names", hijack).0, 400);
    let (code, state) = dns.http("GET", "/state", "");
    assert_eq!(code, 200);
    assert!(state.contains("laptop"), "{state}");
    // Single-label names stay home too.
    assert!(dns.dig(&["wpad"]).contains("status: NXDOMAIN"));
    assert_eq!(dns.metric(UPSTREAM), 0, "a local name went upstream");
    // Without the token, nothing.
    let mut anon = std::net::TcpStream::connect(dns.control).unwrap();
    use std::io::{Read, Write};
    anon.write_all(
        b"PUT /local-names HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
    .unwrap();
    let mut resp = String::new();
    anon.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
}

#[test]
fn blocked_names_are_answered_as_configured() {
    let knot = Knot::start();
    let dns = RoostDns::start_with(|dir| {
        let list = dir.join("ads.txt");
        std::fs::write(&list, "# ads\n0.0.0.0 ads.example.test\n").unwrap();
        let domains = dir.join("domains.txt");
        std::fs::write(&domains, "tracker.example.test\n").unwrap();
        let mut v = loopback_view(dir, Some(knot.addr));
        v.dns.blocklists = vec![
            Blocklist {
                name: "ads".into(),
                path: list,
                format: BlocklistFormat::Hosts,
                enabled: true,
            },
            Blocklist {
                name: "trackers".into(),
                path: domains,
                format: BlocklistFormat::Domains,
                enabled: true,
            },
        ];
        v.dns.block_response = BlockResponse::Null;
        v
    });
    assert_eq!(dns.dig(&["+short", "ads.example.test"]).trim(), "0.0.0.0");
    assert_eq!(
        dns.dig(&["+short", "x.tracker.example.test"]).trim(),
        "0.0.0.0"
    );
    assert_eq!(
        dns.dig(&["+short", "www.example.test"]).trim(),
        "192.0.2.10"
    );
    assert_eq!(dns.metric("roost_dns_blocked_total"), 2);
    assert_eq!(dns.metric(UPSTREAM), 1);
}

#[test]
fn pipelined_tcp_queries_are_all_answered() {
    let knot = Knot::start();
    let dns = RoostDns::start(&knot);
    // kdig sends all questions on one TCP connection.
    let mut args = vec!["+tcp", "+keepopen", "+short"];
    let names: Vec<String> = (0..20).map(|i| format!("many{i}.example.test")).collect();
    args.extend(names.iter().map(String::as_str));
    let out = kdig(dns.dns, &args);
    assert_eq!(out.lines().count(), 20, "{out}");
    assert_eq!(dns.metric("roost_dns_tcp_queries_total"), 20);
}

#[test]
fn concurrent_identical_queries_reach_upstream_once() {
    let knot = Knot::start();
    let dns = RoostDns::start(&knot);
    let addr = dns.dns;
    let handles: Vec<_> = (0..16)
        .map(|_| std::thread::spawn(move || crate::dig(addr, &["+short", "mail.example.test"])))
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().trim(), "192.0.2.12");
    }
    assert_eq!(dns.metric(UPSTREAM), 1);
}

#[test]
fn new_config_is_applied_and_a_bad_one_refused() {
    let knot = Knot::start();
    let dns = RoostDns::start(&knot);
    assert_eq!(
        dns.dig(&["+short", "printer.home.arpa"]).trim(),
        "127.0.0.20"
    );
    let mut v = loopback_view(dns.dir.path(), Some(knot.addr));
    v.dns.hosts[0].address = "127.0.0.21".parse().unwrap();
    use roost_config::View as _;
    assert_eq!(dns.http("PUT", "/config", &v.render()).0, 200);
    assert_eq!(
        dns.dig(&["+short", "printer.home.arpa"]).trim(),
        "127.0.0.21"
    );
    assert_eq!(dns.http("PUT", "/config", "clients = 3").0, 400);
    assert_eq!(
        dns.dig(&["+short", "printer.home.arpa"]).trim(),
        "127.0.0.21"
    );
}

#[test]
fn state_lists_the_most_asked_for_names_first() {
    let knot = Knot::start();
    let dns = RoostDns::start(&knot);
    // 64 queries for one name, 16 for another: one in eight is sampled, so both are seen.
    for i in 0..80 {
        let name = if i % 5 == 0 {
            "ns.example.test"
        } else {
            "www.example.test"
        };
        dns.dig(&["+short", name]);
    }
    let (code, state) = dns.http("GET", "/state", "");
    assert_eq!(code, 200);
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    let top = state["top_names"].as_array().unwrap();
    assert_eq!(top[0]["name"], "www.example.test", "{top:?}");
    assert!(top[0]["queries"].as_u64().unwrap() > top[1]["queries"].as_u64().unwrap());
}
