//! Stateless DHCPv6 on the wire: the real `dhclient -6 -S` (an INFORMATION-REQUEST) gets the
//! zone's resolver and search domain; a scripted client on the same link checks the reply's
//! source and what is dropped.

use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use dhcproto::v6::{DhcpOption, Message, MessageType, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use roost_config::View as _;
use roost_config::views::DhcpView;

use crate::{ClientNs, Net, wait_until};

const ALL_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

/// The zone's resolver and the domain, as the view gives them.
fn expected(net: &Net, zone: &str) -> (Ipv6Addr, String) {
    let text = std::fs::read_to_string(&net.view).unwrap();
    let view = DhcpView::from_toml("dhcp.toml", &text).unwrap();
    let z = view.zones.iter().find(|z| z.name == zone).unwrap();
    (
        z.ipv6_dns.expect("the example's zones have IPv6"),
        view.domain,
    )
}

/// Starts the daemon and waits until it listens for DHCPv6 on `zone`'s interface and the
/// client's link-local address has passed duplicate address detection.
fn start_v6(net: &mut Net, zone: &str) -> ClientNs {
    net.start();
    let listening = format!("listening on [ff02::1:2%{zone}]:547");
    wait_until(Duration::from_secs(30), "dhcpv6 listening", || {
        net.log().contains(&listening).then_some(())
    });
    let c = net.client(zone);
    wait_until(Duration::from_secs(10), "the client's link-local", || {
        let out = Command::new("ip")
            .args(["-n", &c.netns, "-6", "-o", "addr", "show", "dev", &c.ifname])
            .args(["scope", "link"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (text.contains("fe80") && !text.contains("tentative")).then_some(())
    });
    c
}

#[test]
fn needs_root_dhclient_stateless_gets_the_zones_v6_resolver_and_search_domain() {
    let mut net = Net::new("6", "1h");
    let c = start_v6(&mut net, "lan");
    let (dns, domain) = expected(&net, "lan");
    let out = net.dir.path().join("dhcp6-events");
    let script = net.dir.path().join("capture6.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"reason=$reason dns=$new_dhcp6_name_servers \
             search=$new_dhcp6_domain_search\" >> {}\nexit 0\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = Command::new("timeout")
        .args([
            "40", "ip", "netns", "exec", &c.netns, "dhclient", "-6", "-S", "-1", "-v",
        ])
        .arg("-sf")
        .arg(&script)
        .arg("-lf")
        .arg(net.dir.path().join("dhclient6.leases"))
        .arg("-pf")
        .arg(net.dir.path().join("dhclient6.pid"))
        .arg(&c.ifname)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "dhclient: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // dhclient forks once configured, after its script ran. For a stateless exchange 4.4
    // reports RENEW6 (older versions INFORM6) with the options of the REPLY.
    let events = std::fs::read_to_string(&out).unwrap_or_default();
    let line = events
        .lines()
        .find(|l| l.starts_with("reason=RENEW6") || l.starts_with("reason=INFORM6"))
        .unwrap_or_else(|| {
            panic!(
                "no configuration event in {events:?}; dhclient: {}",
                String::from_utf8_lossy(&o.stderr)
            )
        });
    assert!(line.contains(&format!("dns={dns} ")), "{line}");
    // dhclient prints the search list with a trailing dot.
    let search = line.split("search=").nth(1).unwrap_or("").trim();
    assert_eq!(search.trim_end_matches('.'), domain, "{line}");
    assert_eq!(
        net.metric("roost_dhcp6_requests_total{type=\"information_request\"}"),
        1
    );
    assert_eq!(net.metric("roost_dhcp6_replies_total"), 1);
}

/// A UDP socket in `c`'s namespace on `[::]:546`, bound to its interface.
fn client_socket(c: &ClientNs) -> UdpSocket {
    let path = format!("/run/netns/{}", c.netns);
    let ifname = c.ifname.clone();
    std::thread::spawn(move || {
        let f = std::fs::File::open(&path).unwrap();
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let s = socket2::Socket::new(
            socket2::Domain::IPV6,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .unwrap();
        s.set_only_v6(true).unwrap();
        s.set_reuse_address(true).unwrap();
        s.bind_device(Some(ifname.as_bytes())).unwrap();
        let addr = SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 546, 0, 0);
        s.bind(&std::net::SocketAddr::V6(addr).into()).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        UdpSocket::from(s)
    })
    .join()
    .unwrap()
}

/// The client interface's index (`/sys` in a setns'd thread is still the host's: ask `ip`).
fn ifindex_in(c: &ClientNs) -> u32 {
    let out = Command::new("ip")
        .args(["-n", &c.netns, "-o", "link", "show", "dev", &c.ifname])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split(':').next().unwrap().trim().parse().unwrap()
}

/// Sends `bytes` to ff02::1:2 and returns the first reply with `xid` within a second.
fn exchange(
    sock: &UdpSocket,
    index: u32,
    bytes: &[u8],
    xid: [u8; 3],
) -> Option<(Message, SocketAddrV6)> {
    sock.send_to(bytes, SocketAddrV6::new(ALL_SERVERS, 547, 0, index))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        let Ok((n, std::net::SocketAddr::V6(from))) = sock.recv_from(&mut buf) else {
            continue;
        };
        let Ok(m) = Message::decode(&mut Decoder::new(&buf[..n])) else {
            continue;
        };
        if m.xid() == xid {
            return Some((m, from));
        }
    }
    None
}

fn encode(m: &Message) -> Vec<u8> {
    let mut buf = Vec::new();
    m.encode(&mut Encoder::new(&mut buf)).unwrap();
    buf
}

#[test]
fn needs_root_dhcpv6_replies_from_link_local_547_and_drops_what_it_must() {
    let mut net = Net::new("w", "1h");
    let c = start_v6(&mut net, "iot");
    let (dns, _) = expected(&net, "iot");
    let sock = client_socket(&c);
    let index = ifindex_in(&c);
    let duid = vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 7];
    let mut ir = Message::new_with_id(MessageType::InformationRequest, [1, 2, 3]);
    ir.opts_mut().insert(DhcpOption::ClientId(duid.clone()));
    let (reply, from) = exchange(&sock, index, &encode(&ir), [1, 2, 3]).expect("a reply");
    assert_eq!(reply.msg_type(), MessageType::Reply);
    assert!(from.ip().is_unicast_link_local(), "{from}");
    assert_eq!(from.port(), 547);
    assert_eq!(
        reply.opts().get(OptionCode::DomainNameServers),
        Some(&DhcpOption::DomainNameServers(vec![dns]))
    );
    assert_eq!(
        reply.opts().get(OptionCode::ClientId),
        Some(&DhcpOption::ClientId(duid.clone()))
    );
    let Some(DhcpOption::ServerId(ours)) = reply.opts().get(OptionCode::ServerId).cloned() else {
        panic!("no server id in {reply:?}");
    };
    // Naming our server: answered; naming another: dropped.
    let mut to_us = ir.clone();
    to_us.set_xid([1, 2, 4]);
    to_us.opts_mut().insert(DhcpOption::ServerId(ours));
    assert!(exchange(&sock, index, &encode(&to_us), [1, 2, 4]).is_some());
    let mut other = ir.clone();
    other.set_xid([1, 2, 5]);
    other
        .opts_mut()
        .insert(DhcpOption::ServerId(vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 9]));
    assert!(exchange(&sock, index, &encode(&other), [1, 2, 5]).is_none());
    // A SOLICIT (stateful): counted, not answered. Garbage: counted.
    let mut solicit = ir.clone();
    solicit.set_msg_type(MessageType::Solicit);
    solicit.set_xid([1, 2, 6]);
    assert!(exchange(&sock, index, &encode(&solicit), [1, 2, 6]).is_none());
    assert!(exchange(&sock, index, &[11, 1, 2, 7, 0, 1, 0, 200], [1, 2, 7]).is_none());
    wait_until(Duration::from_secs(5), "the drops in /metrics", || {
        let m = |r: &str| net.metric(&format!("roost_dhcp6_dropped_total{{reason=\"{r}\"}}"));
        (m("other_server") == 1 && m("stateful") == 1 && m("malformed") == 1).then_some(())
    });
    assert_eq!(net.metric("roost_dhcp6_replies_total"), 2);
    // Still serving.
    let mut again = ir;
    again.set_xid([1, 2, 8]);
    assert!(exchange(&sock, index, &encode(&again), [1, 2, 8]).is_some());
}
