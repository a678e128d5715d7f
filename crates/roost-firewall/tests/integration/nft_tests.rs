use roost_firewall::{WanState, compile};

use crate::compile_tests::{example_view, example_wan, pppoe_settings};
use crate::netns::Netns;

fn nft_check(ns: &Netns, text: &str) -> std::process::Output {
    use std::io::Write as _;
    let mut child = ns
        .cmd("nft")
        .args(["-c", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn needs_root_nft_accepts_the_example_ruleset() {
    let ns = Netns::new("nftc");
    for wan in [example_wan(), WanState::default()] {
        let r = compile(&example_view(), &wan).unwrap();
        let out = nft_check(&ns, r.text());
        assert!(
            out.status.success(),
            "nft -c refused the ruleset: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn needs_root_nft_accepts_the_pppoe_ruleset_with_its_mss_clamp() {
    let ns = Netns::new("nftp");
    let r = compile(&pppoe_settings().firewall_view(), &example_wan()).unwrap();
    let out = nft_check(&ns, r.text());
    assert!(
        out.status.success(),
        "nft -c refused the ruleset: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn needs_root_nft_check_can_fail() {
    // The check above means something only if nft -c refuses a broken script.
    let ns = Netns::new("nftbad");
    let r = compile(&example_view(), &example_wan()).unwrap();
    let broken = r.text().replace("masquerade", "masquerad");
    assert!(!nft_check(&ns, &broken).status.success());
}

#[test]
fn needs_root_applying_twice_replaces_the_table_atomically() {
    let ns = Netns::new("nftapply");
    let r = compile(&example_view(), &example_wan()).unwrap();
    for _ in 0..2 {
        let out = ns.sh(&format!(
            "nft -f - <<'EOF'\n{}EOF\nnft list table inet roost | grep -c '^[[:space:]]*chain '",
            r.text()
        ));
        assert_eq!(out.trim(), "14", "chains after apply");
    }
}
