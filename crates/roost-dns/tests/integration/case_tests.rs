//! DNS 0x20 against upstreams that keep the question's case (knot) and that lose it (a
//! scripted server that lowercases), and a spoof that gets the ID right but not the case.

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::Duration;

use crate::{Knot, RoostDns, loopback_view};

/// The upstream's row in `/state`.
fn upstream_state(dns: &RoostDns) -> serde_json::Value {
    let (code, body) = dns.http("GET", "/state", "");
    assert_eq!(code, 200);
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    state["upstreams"][0].clone()
}

/// An answer to `query` with one A record `addr`, its question rewritten to lower case when
/// `lowercase` (what some servers and middleboxes do).
fn answer(query: &[u8], addr: [u8; 4], lowercase: bool) -> Vec<u8> {
    // Header and question only (drop the query's OPT record).
    let mut end = 12;
    while query[end] != 0 {
        end += 1 + usize::from(query[end]);
    }
    end += 5;
    let mut out = query[..end].to_vec();
    out[2] |= 0x80; // QR
    out[3] = 0x80; // RA, NOERROR
    out[6..12].copy_from_slice(&[0, 1, 0, 0, 0, 0]);
    if lowercase {
        for b in &mut out[12..end - 4] {
            *b = b.to_ascii_lowercase();
        }
    }
    out.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
    out.extend_from_slice(&addr);
    out
}

/// A scripted upstream: for each query, the list of datagrams to send back, in order.
fn scripted(
    replies: impl Fn(usize, &[u8]) -> Vec<Vec<u8>> + Send + 'static,
) -> (SocketAddr, mpsc::Receiver<Vec<u8>>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut n = 0;
        while let Ok((len, from)) = sock.recv_from(&mut buf) {
            let query = buf[..len].to_vec();
            for reply in replies(n, &query) {
                let _ = sock.send_to(&reply, from);
            }
            let _ = tx.send(query);
            n += 1;
        }
    });
    (addr, rx)
}

#[test]
fn questions_to_an_upstream_that_keeps_case_are_randomized_and_checked() {
    let knot = Knot::start();
    let dns = RoostDns::start(&knot);
    for name in ["www.example.test", "ns.example.test", "mail.example.test"] {
        dns.dig(&["+short", name]);
    }
    assert_eq!(
        dns.dig(&["+short", "www.example.test"]).trim(),
        "192.0.2.10"
    );
    let up = upstream_state(&dns);
    assert_eq!(up["case_randomization"], "on", "{up}");
    assert_eq!(up["case_mismatched"], 0);
}

#[test]
fn an_upstream_that_lowercases_still_answers_and_0x20_turns_off_for_it() {
    let (addr, sent) = scripted(|_, q| vec![answer(q, [192, 0, 2, 77], true)]);
    let dns = RoostDns::start_with(|dir| loopback_view(dir, Some(addr)));
    for i in 0..4 {
        let a = dns.dig(&["+short", &format!("host{i}.example.test")]);
        assert_eq!(a.trim(), "192.0.2.77", "query {i}");
    }
    assert_eq!(upstream_state(&dns)["case_randomization"], "off");
    // Questions were randomized until then: at least one had an upper-case letter.
    let queries: Vec<Vec<u8>> = sent.try_iter().collect();
    assert!(
        queries
            .iter()
            .take(3)
            .any(|q| q[12..].iter().any(u8::is_ascii_uppercase))
    );
    // ...and are plain after.
    let last = dns.dig(&["+short", "later.example.test"]);
    assert_eq!(last.trim(), "192.0.2.77");
    let q = sent.recv_timeout(Duration::from_secs(2)).unwrap();
    assert!(
        !q[12..q.len() - 4].iter().any(u8::is_ascii_uppercase),
        "{q:?}"
    );
}

#[test]
fn a_spoof_with_the_right_id_but_not_the_case_is_ignored() {
    // First query: answered correctly (the server keeps case). Then every answer is preceded
    // by a forgery with the same ID and the question lowercased, pointing elsewhere.
    let (addr, _sent) = scripted(|n, q| {
        if n == 0 {
            vec![answer(q, [192, 0, 2, 10], false)]
        } else {
            vec![
                answer(q, [203, 0, 113, 66], true),
                answer(q, [192, 0, 2, 11], false),
            ]
        }
    });
    let dns = RoostDns::start_with(|dir| loopback_view(dir, Some(addr)));
    assert_eq!(dns.dig(&["+short", "a.example.test"]).trim(), "192.0.2.10");
    assert_eq!(upstream_state(&dns)["case_randomization"], "on");
    let got = dns.dig(&["+short", "b.example.test"]);
    assert_eq!(got.trim(), "192.0.2.11", "the forgery was taken: {got}");
    let up = upstream_state(&dns);
    assert_eq!(up["case_mismatched"], 1, "{up}");
}
