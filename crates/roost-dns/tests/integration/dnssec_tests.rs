//! DNSSEC validation against zones knot signs on loopback: a test root `test.` (the trust
//! anchor is its KSK), a signed child `example.test.` with its DS in `test.`, and an unsigned
//! child `insecure.test.` delegated without DS. Keys come from `keymgr` (knot's manual
//! policy signs with them), so the parent's DS can be written before knot starts. A small UDP
//! relay between roost-dns and knot rewrites one address (203.0.113.66 → .99) in every answer,
//! so `forged.example.test` arrives with an RRSIG over other data.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::{RoostDns, dig, free_port, loopback_view, wait_until};

struct SignedKnot {
    child: Option<Child>,
    addr: SocketAddr,
    anchor: String,
    dir: tempfile::TempDir,
}

fn keymgr(conf: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("/usr/sbin/keymgr")
        .arg("-c")
        .arg(conf)
        .args(args)
        .output()
        .expect("keymgr is installed (Debian knot)");
    assert!(out.status.success(), "keymgr {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl SignedKnot {
    fn start() -> Self {
        Self::start_with(false)
    }

    /// With `nsec3`, denials are NSEC3 (RFC 5155) instead of NSEC.
    fn start_with(nsec3: bool) -> Self {
        let nsec3 = if nsec3 { "    nsec3: on\n" } else { "" };
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let port = free_port();
        let conf = d.join("knot.conf");
        std::fs::write(
            &conf,
            format!(
                "server:\n    listen: 127.0.0.1@{port}\n    rundir: {d}\n\n\
                 database:\n    storage: {d}\n\n\
                 log:\n  - target: stderr\n    any: info\n\n\
                 policy:\n  - id: manual\n    manual: on\n{nsec3}\n\
                 template:\n  - id: default\n    storage: {d}\n    dnssec-signing: on\n    dnssec-policy: manual\n\n\
                 zone:\n  - domain: test.\n  - domain: example.test.\n  - domain: insecure.test.\n    dnssec-signing: off\n",
                d = d.display()
            ),
        )
        .unwrap();
        for zone in ["test.", "example.test."] {
            keymgr(
                &conf,
                &[zone, "generate", "algorithm=13", "ksk=yes", "zsk=yes"],
            );
        }
        let ds = keymgr(&conf, &["example.test.", "ds"]);
        let ds = ds.lines().next().unwrap();
        let anchor = keymgr(&conf, &["test.", "dnskey"]);
        let soa = "@ SOA ns hostmaster 1 3600 600 86400 120\n@ NS ns\nns A 127.0.0.1\n";
        std::fs::write(
            d.join("test.zone"),
            format!(
                "$ORIGIN test.\n$TTL 300\n{soa}example NS ns.example\nns.example A 127.0.0.1\n{ds}\n\
                 insecure NS ns.insecure\nns.insecure A 127.0.0.1\n"
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("example.test.zone"),
            format!(
                "$ORIGIN example.test.\n$TTL 300\n{soa}www A 192.0.2.10\nforged A 203.0.113.66\n*.wild A 192.0.2.30\n"
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("insecure.test.zone"),
            format!("$ORIGIN insecure.test.\n$TTL 300\n{soa}www A 192.0.2.20\n"),
        )
        .unwrap();
        let log = std::fs::File::create(d.join("knot.log")).unwrap();
        let child = Command::new("/usr/sbin/knotd")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("knotd is installed (Debian knot)");
        let knot = Self {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            anchor,
            dir,
        };
        wait_until(
            "knot to serve signed zones",
            Duration::from_secs(10),
            || {
                let out = dig(knot.addr, &["+dnssec", "www.example.test"]);
                out.contains("RRSIG").then_some(())
            },
        );
        knot
    }
}

impl Drop for SignedKnot {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A UDP relay to `upstream` that rewrites the bytes of 203.0.113.66 into 203.0.113.99.
struct ForgingRelay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ForgingRelay {
    fn start(upstream: SocketAddr) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 65535];
            while !stopping.load(Ordering::SeqCst) {
                let Ok((n, client)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let back = UdpSocket::bind("127.0.0.1:0").unwrap();
                back.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                back.send_to(&buf[..n], upstream).unwrap();
                let mut answer = [0u8; 65535];
                let Ok(m) = back.recv(&mut answer) else {
                    continue;
                };
                let answer = &mut answer[..m];
                for i in 0..m.saturating_sub(3) {
                    if answer[i..i + 4] == [203, 0, 113, 66] {
                        answer[i + 3] = 99;
                    }
                }
                let _ = sock.send_to(answer, client);
            }
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ForgingRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn validating(knot: &SignedKnot, relay: &ForgingRelay) -> RoostDns {
    let anchor = knot.dir.path().join("anchor.txt");
    std::fs::write(&anchor, &knot.anchor).unwrap();
    RoostDns::start_with(|dir| {
        let mut v = loopback_view(dir, Some(relay.addr));
        v.dns.dnssec = true;
        v.dns.trust_anchor = Some(anchor);
        v
    })
}

fn flags(out: &str) -> String {
    out.lines()
        .find_map(|l| l.split_once(";; flags: "))
        .map(|(_, f)| f.split(';').next().unwrap_or("").to_owned())
        .unwrap_or_else(|| panic!("no flags in {out}"))
}

#[test]
fn signed_answer_gets_the_ad_bit_only_when_the_client_asks() {
    let knot = SignedKnot::start();
    let relay = ForgingRelay::start(knot.addr);
    let dns = validating(&knot, &relay);
    // DO set: validated, AD, and the RRSIG comes along.
    let out = dns.dig(&["+dnssec", "www.example.test"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(flags(&out).contains(" ad"), "{out}");
    assert!(out.contains("RRSIG"), "{out}");
    // Neither DO nor AD: no AD bit, no DNSSEC records.
    let plain = dns.dig(&["+noadflag", "www.example.test"]);
    assert!(!flags(&plain).contains(" ad"), "{plain}");
    assert!(!plain.contains("RRSIG"), "{plain}");
    assert!(plain.contains("192.0.2.10"), "{plain}");
    // AD without DO (RFC 6840 §5.7): AD, still no RRSIG.
    let ad = dns.dig(&["+adflag", "www.example.test"]);
    assert!(flags(&ad).contains(" ad"), "{ad}");
    assert!(!ad.contains("RRSIG"), "{ad}");
    // The status was cached with the answer: asked again, AD again, from the cache.
    let hits = dns.metric("roost_dns_cache_hits_total");
    let again = dns.dig(&["+dnssec", "www.example.test"]);
    assert!(flags(&again).contains(" ad"), "{again}");
    assert_eq!(dns.metric("roost_dns_cache_hits_total"), hits + 1);
    // A signed NXDOMAIN (NSEC proof) is secure too.
    let nx = dns.dig(&["+dnssec", "nothing.example.test"]);
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
    assert!(flags(&nx).contains(" ad"), "{nx}");
    assert_eq!(dns.metric("roost_dns_dnssec_bogus_total"), 0);
}

#[test]
fn forged_answer_is_servfail_and_stays_servfail_from_the_cache() {
    let knot = SignedKnot::start();
    let relay = ForgingRelay::start(knot.addr);
    let dns = validating(&knot, &relay);
    let out = dns.dig(&["+dnssec", "forged.example.test"]);
    assert!(out.contains("status: SERVFAIL"), "{out}");
    assert!(!out.contains("203.0.113"), "{out}");
    assert_eq!(dns.metric("roost_dns_dnssec_bogus_total"), 1);
    let plain = dns.dig(&["forged.example.test"]);
    assert!(plain.contains("status: SERVFAIL"), "{plain}");
    let hits = dns.metric("roost_dns_cache_hits_total");
    let again = dns.dig(&["forged.example.test"]);
    assert!(again.contains("status: SERVFAIL"), "{again}");
    assert_eq!(dns.metric("roost_dns_cache_hits_total"), hits + 1);
    // With CD the client takes the data unchecked (RFC 4035 §3.2.2), without AD.
    let cd = dns.dig(&["+cdflag", "+dnssec", "forged.example.test"]);
    assert!(cd.contains("203.0.113.99"), "{cd}");
    assert!(!flags(&cd).contains(" ad"), "{cd}");
    // The rest of the zone still validates.
    let good = dns.dig(&["+dnssec", "www.example.test"]);
    assert!(flags(&good).contains(" ad"), "{good}");
}

#[test]
fn unsigned_zone_below_an_unsigned_delegation_passes_without_ad() {
    let knot = SignedKnot::start();
    let relay = ForgingRelay::start(knot.addr);
    let dns = validating(&knot, &relay);
    let out = dns.dig(&["+dnssec", "www.insecure.test"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("192.0.2.20"), "{out}");
    assert!(!flags(&out).contains(" ad"), "{out}");
    assert_eq!(dns.metric("roost_dns_dnssec_insecure_total"), 1);
    assert_eq!(dns.metric("roost_dns_dnssec_bogus_total"), 0);
}

#[test]
fn answers_are_bogus_when_the_trust_anchor_does_not_match() {
    let knot = SignedKnot::start();
    let relay = ForgingRelay::start(knot.addr);
    // The anchor is example.test.'s key claimed for test.: nothing chains to it.
    let wrong = knot.dir.path().join("wrong-anchor.txt");
    let conf = knot.dir.path().join("knot.conf");
    let key = crate::dnssec_tests::keymgr(&conf, &["example.test.", "dnskey"]);
    std::fs::write(&wrong, key.replacen("example.test.", "test.", 1)).unwrap();
    let dns = RoostDns::start_with(|dir| {
        let mut v = loopback_view(dir, Some(relay.addr));
        v.dns.dnssec = true;
        v.dns.trust_anchor = Some(wrong);
        v
    });
    let out = dns.dig(&["www.example.test"]);
    assert!(out.contains("status: SERVFAIL"), "{out}");
}

#[test]
fn nsec3_denials_are_secure_with_the_closest_encloser_proof() {
    let knot = SignedKnot::start_with(true);
    // The zone denies with NSEC3 now.
    let raw = dig(knot.addr, &["+dnssec", "nothing.example.test"]);
    assert!(raw.contains("NSEC3"), "{raw}");
    let relay = ForgingRelay::start(knot.addr);
    let dns = validating(&knot, &relay);
    // NXDOMAIN: closest encloser example.test, next closer and wildcard covered: secure.
    let nx = dns.dig(&["+dnssec", "nothing.example.test"]);
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
    assert!(flags(&nx).contains(" ad"), "{nx}");
    // Two labels below the apex too.
    let deep = dns.dig(&["+dnssec", "a.b.example.test"]);
    assert!(
        deep.contains("status: NXDOMAIN") && flags(&deep).contains(" ad"),
        "{deep}"
    );
    // NODATA (the name exists, the type does not): secure from the matching NSEC3.
    let nodata = dns.dig(&["+dnssec", "www.example.test", "MX"]);
    assert!(
        nodata.contains("status: NOERROR") && flags(&nodata).contains(" ad"),
        "{nodata}"
    );
    assert_eq!(dns.metric("roost_dns_dnssec_bogus_total"), 0);
    // The positive answer still validates, and so does a wildcard expansion, with its
    // NSEC3 proof that the exact name does not exist.
    let good = dns.dig(&["+dnssec", "www.example.test"]);
    assert!(flags(&good).contains(" ad"), "{good}");
    let wild = dns.dig(&["+dnssec", "x.wild.example.test"]);
    assert!(
        wild.contains("192.0.2.30") && flags(&wild).contains(" ad"),
        "{wild}"
    );
    assert_eq!(dns.metric("roost_dns_dnssec_bogus_total"), 0);
}

#[test]
fn a_wildcard_answer_with_its_nsec_proof_is_secure() {
    let knot = SignedKnot::start();
    let relay = ForgingRelay::start(knot.addr);
    let dns = validating(&knot, &relay);
    let wild = dns.dig(&["+dnssec", "x.wild.example.test"]);
    assert!(
        wild.contains("192.0.2.30") && flags(&wild).contains(" ad"),
        "{wild}"
    );
    assert_eq!(dns.metric("roost_dns_dnssec_bogus_total"), 0);
}
