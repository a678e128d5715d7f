//! roost-dns in the lab: clients ask their zone's router address, the firewall DNATs port 53
//! to the dns namespace, roost-dns forwards to the ISP's knot (authoritative for the lab's
//! signed root, `isp.test`, and `bogus.isp.test` whose chain is broken), or recurses from
//! that root. Each negative check has a positive twin.

use std::process::Command;

use roost_config::Service;
use roost_lab::plan::isp;

use crate::TestLab;

/// `dig ARGS` inside namespace `ns` (short name), one quick try.
fn dig_in(t: &TestLab, ns: &str, args: &[&str]) -> String {
    let netns = t.lab.netns(ns).unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", &netns, "dig", "+time=2", "+tries=2"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A directory removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn up_with_blocklist(name: &str) -> (TestLab, Scratch) {
    let dir =
        Scratch(std::env::temp_dir().join(format!("roost-dns-lab-{}-{name}", std::process::id())));
    std::fs::create_dir_all(dir.path()).unwrap();
    let list = dir.path().join("blocked.txt");
    std::fs::write(&list, "# test list\nblocked.isp.test\n").unwrap();
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/roost.toml"),
    )
    .unwrap();
    let anchor = "block_response = \"nxdomain\"\n";
    assert!(
        example.contains(anchor),
        "examples/roost.toml changed its [dns] table"
    );
    let settings = example.replace(
        anchor,
        &format!(
            "{anchor}blocklists = [{{ name = \"test\", path = \"{}\", format = \"domains\" }}]\n",
            list.display()
        ),
    );
    let path = dir.path().join("roost.toml");
    std::fs::write(&path, settings).unwrap();
    (TestLab::up_with(name, &path), dir)
}

#[test]
fn lab_lan_and_iot_clients_resolve_isp_names_through_their_router_address() {
    let (t, _dir) = up_with_blocklist("dr");
    let www = isp::HTTP.to_string();
    let lan = dig_in(
        &t,
        "client-lan",
        &["@192.168.1.1", "+short", "www.isp.test"],
    );
    assert_eq!(lan.trim(), www, "lan client");
    // Validated from the lab's own signed root: the AD bit.
    let full = dig_in(
        &t,
        "client-lan",
        &["@192.168.1.1", "+dnssec", "www.isp.test"],
    );
    assert!(
        full.contains(" ad;") || full.contains(" ad "),
        "no AD bit:\n{full}"
    );
    // A zone whose DS matches none of its keys (the ISP's bogus.isp.test): SERVFAIL, and with
    // CD the data unchecked, without AD.
    let bogus = format!("www.{}", isp::BOGUS_ZONE);
    let refused = dig_in(&t, "client-lan", &["@192.168.1.1", "+dnssec", &bogus]);
    assert!(refused.contains("status: SERVFAIL"), "{refused}");
    let unchecked = dig_in(
        &t,
        "client-lan",
        &["@192.168.1.1", "+cd", "+dnssec", &bogus],
    );
    assert!(unchecked.contains(&www), "{unchecked}");
    assert!(
        !unchecked.contains(" ad;") && !unchecked.contains(" ad "),
        "{unchecked}"
    );
    let iot = dig_in(
        &t,
        "client-iot",
        &["@192.168.20.1", "+short", "www.isp.test"],
    );
    assert_eq!(iot.trim(), www, "iot client");
    // The router's own name answers with the asker's router address.
    let router = t.lab.settings().router.clone();
    let name = format!("{}.{}", router.hostname, router.domain);
    let own = dig_in(&t, "client-iot", &["@192.168.20.1", "+short", &name]);
    assert_eq!(own.trim(), "192.168.20.1");
    // The second LAN query came from the cache.
    dig_in(
        &t,
        "client-lan",
        &["@192.168.1.1", "+short", "www.isp.test"],
    );
    let (code, metrics) = t.lab.control_get(Service::Dns, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("roost_dns_cache_hits_total ")
                && l.split(' ').nth(1).and_then(|v| v.parse::<u64>().ok()) >= Some(2)),
        "{metrics}"
    );
}

#[test]
fn lab_blocked_name_is_blocked_and_the_wan_side_is_refused() {
    let (t, _dir) = up_with_blocklist("db");
    // Blocked: NXDOMAIN, though the ISP knows no such name either; its twin resolves.
    let blocked = dig_in(&t, "client-lan", &["@192.168.1.1", "blocked.isp.test"]);
    assert!(blocked.contains("status: NXDOMAIN"), "{blocked}");
    let (_, metrics) = t.lab.control_get(Service::Dns, "/metrics").unwrap();
    assert!(metrics.contains("roost_dns_blocked_total 1"), "{metrics}");
    let ok = dig_in(
        &t,
        "client-lan",
        &["@192.168.1.1", "+short", "www.isp.test"],
    );
    assert_eq!(ok.trim(), isp::HTTP.to_string());
    // From the Internet, the router's WAN address answers no DNS.
    let wan = t.wan_address().to_string();
    let netns = t.lab.netns("isp").unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", &netns, "dig", "+time=1", "+tries=1"])
        .arg(format!("@{wan}"))
        .args(["+short", "www.isp.test"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains(&isp::HTTP.to_string()),
        "the WAN side got an answer: {text}"
    );
}

#[test]
fn lab_dns_recursion_from_the_labs_own_root_answers_validates_and_denies() {
    let dir =
        Scratch(std::env::temp_dir().join(format!("roost-dns-lab-{}-rec", std::process::id())));
    std::fs::create_dir_all(dir.path()).unwrap();
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/roost.toml"),
    )
    .unwrap();
    let forwarders = "upstreams = [\n  { address = \"198.51.100.53\" },\n";
    assert!(
        example.contains(forwarders),
        "examples/roost.toml changed its [dns] table"
    );
    // No forwarders: recursion from the lab's root (the ISP's knot serves `.` and isp.test).
    let settings = example.replace(
        forwarders,
        &format!(
            "recursion = true\nroot_hints = [\"{}\"]\nupstreams = [\n",
            isp::DNS
        ),
    );
    let path = dir.path().join("roost.toml");
    std::fs::write(&path, settings).unwrap();
    let t = TestLab::up_with("rc", &path);
    let (_, state) = t.lab.control_get(Service::Dns, "/state").unwrap();
    assert!(state.contains("\"recursion\":true"), "{state}");
    // An answer from the roots down, validated from the lab's signed root: the AD bit.
    let full = dig_in(
        &t,
        "client-lan",
        &["@192.168.1.1", "+dnssec", "www.isp.test"],
    );
    assert!(full.contains(&isp::HTTP.to_string()), "{full}");
    assert!(
        full.contains(" ad;") || full.contains(" ad "),
        "no AD bit:\n{full}"
    );
    // A name that does not exist: NXDOMAIN, not SERVFAIL.
    let missing = dig_in(&t, "client-lan", &["@192.168.1.1", "nothing-here.isp.test"]);
    assert!(missing.contains("status: NXDOMAIN"), "{missing}");
    // A TLD the lab's root does not have: NXDOMAIN from the root itself.
    let tld = dig_in(
        &t,
        "client-lan",
        &["@192.168.1.1", "www.example.invalidtld"],
    );
    assert!(tld.contains("status: NXDOMAIN"), "{tld}");
}
