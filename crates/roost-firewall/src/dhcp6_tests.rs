use super::*;
use dhcproto::v6::{IAAddr, StatusCode};

const MAC: [u8; 6] = [0x52, 0x54, 0, 0xaa, 0xbb, 0xcc];
const SERVER: &[u8] = &[0, 3, 0, 1, 2, 2, 2, 2, 2, 2];

fn client(now: Instant) -> Client {
    Client::new(MAC, 56, now, 7)
}

fn decode(bytes: &[u8]) -> Message {
    Message::decode(&mut Decoder::new(bytes)).unwrap()
}

fn sent(actions: &[Action]) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(b) => Some(decode(b)),
            _ => None,
        })
        .collect()
}

/// Polls until the client sends, returning the message and when it went.
fn next_sent(c: &mut Client, mut now: Instant) -> (Message, Instant) {
    for _ in 0..10_000 {
        now = now.max(c.deadline());
        if let Some(m) = sent(&c.poll(now)).pop() {
            return (m, now);
        }
    }
    panic!("nothing sent");
}

struct Offer {
    address: Option<(&'static str, u32, u32)>,
    prefixes: Vec<(&'static str, u32, u32)>,
    t1: u32,
    t2: u32,
}

fn offer() -> Offer {
    Offer {
        address: Some(("2001:db8:0:1::1000", 3000, 4000)),
        prefixes: vec![("2001:db8:1200::/56", 3000, 4000)],
        t1: 1000,
        t2: 1600,
    }
}

fn answer(to: &Message, ty: MessageType, o: &Offer) -> Vec<u8> {
    let mut m = Message::new_with_id(ty, to.xid());
    let opts = m.opts_mut();
    opts.insert(to.opts().get(OptionCode::ClientId).unwrap().clone());
    opts.insert(DhcpOption::ServerId(SERVER.to_vec()));
    if let Some((addr, preferred, valid)) = o.address {
        let mut na = DhcpOptions::new();
        na.insert(DhcpOption::IAAddr(IAAddr {
            addr: addr.parse().unwrap(),
            preferred_life: preferred,
            valid_life: valid,
            opts: DhcpOptions::new(),
        }));
        opts.insert(DhcpOption::IANA(IANA {
            id: IA_NA_ID,
            t1: o.t1,
            t2: o.t2,
            opts: na,
        }));
    }
    let mut pd = DhcpOptions::new();
    for (net, preferred, valid) in &o.prefixes {
        let net: Ipv6Net = net.parse().unwrap();
        pd.insert(DhcpOption::IAPrefix(IAPrefix {
            preferred_lifetime: *preferred,
            valid_lifetime: *valid,
            prefix_len: net.prefix_len(),
            prefix_ip: net.addr(),
            opts: DhcpOptions::new(),
        }));
    }
    opts.insert(DhcpOption::IAPD(IAPD {
        id: IA_PD_ID,
        t1: o.t1,
        t2: o.t2,
        opts: pd,
    }));
    opts.insert(DhcpOption::DomainNameServers(vec![
        "2001:db8::53".parse().unwrap(),
    ]));
    let mut buf = Vec::new();
    m.encode(&mut Encoder::new(&mut buf)).unwrap();
    buf
}

/// Runs SOLICIT → ADVERTISE → REQUEST → REPLY; returns the lease and when it arrived.
fn bind(c: &mut Client, now: Instant, o: &Offer) -> (Lease, Instant) {
    let (solicit, now) = next_sent(c, now);
    assert_eq!(solicit.msg_type(), MessageType::Solicit);
    let actions = c
        .handle(now, &answer(&solicit, MessageType::Advertise, o))
        .unwrap();
    let request = sent(&actions).pop().expect("a request");
    assert_eq!(request.msg_type(), MessageType::Request);
    let actions = c
        .handle(now, &answer(&request, MessageType::Reply, o))
        .unwrap();
    match &actions[..] {
        [Action::Configure(l)] => (l.clone(), now),
        other => panic!("{other:?}"),
    }
}

#[test]
fn solicit_asks_for_an_address_and_a_prefix_of_the_hinted_length_with_a_stable_duid() {
    let now = Instant::now();
    let mut c = client(now);
    assert!(
        c.deadline() <= now + Duration::from_secs(1),
        "SOL_MAX_DELAY"
    );
    let (m, _) = next_sent(&mut c, now);
    assert_eq!(m.msg_type(), MessageType::Solicit);
    let Some(DhcpOption::ClientId(duid)) = m.opts().get(OptionCode::ClientId) else {
        panic!("no client id")
    };
    assert_eq!(duid, &[0, 3, 0, 1, 0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]);
    assert!(m.opts().get(OptionCode::ServerId).is_none());
    assert!(
        matches!(m.opts().get(OptionCode::IANA), Some(DhcpOption::IANA(ia)) if ia.id == IA_NA_ID)
    );
    let Some(DhcpOption::IAPD(pd)) = m.opts().get(OptionCode::IAPD) else {
        panic!("no ia_pd")
    };
    let Some(DhcpOption::IAPrefix(hint)) = pd.opts.get(OptionCode::IAPrefix) else {
        panic!("no hint")
    };
    assert_eq!(
        (hint.prefix_ip, hint.prefix_len),
        (Ipv6Addr::UNSPECIFIED, 56)
    );
    // Another client for the same MAC (a restart) has the same DUID.
    let (again, _) = next_sent(&mut client(now), now);
    assert_eq!(
        again.opts().get(OptionCode::ClientId),
        m.opts().get(OptionCode::ClientId)
    );
}

#[test]
fn advertise_request_reply_binds_the_address_the_prefix_and_the_timers() {
    let now = Instant::now();
    let mut c = client(now);
    let (lease, at) = bind(&mut c, now, &offer());
    assert_eq!(c.phase(), Phase::Bound);
    assert_eq!(
        lease.address.map(|a| a.value),
        Some("2001:db8:0:1::1000".parse().unwrap())
    );
    let p = lease.prefix().unwrap();
    assert_eq!(p.value.to_string(), "2001:db8:1200::/56");
    assert_eq!(
        (p.preferred, p.valid),
        (Duration::from_secs(3000), Duration::from_secs(4000))
    );
    assert_eq!(lease.t1, Some(Duration::from_secs(1000)));
    assert_eq!(lease.t2, Some(Duration::from_secs(1600)));
    assert_eq!(lease.dns, vec!["2001:db8::53".parse::<Ipv6Addr>().unwrap()]);
    assert_eq!(lease.server, SERVER);
    // Nothing is sent until T1.
    assert_eq!(c.deadline(), at + Duration::from_secs(1000));
    assert!(c.poll(at + Duration::from_secs(999)).is_empty());
}

#[test]
fn the_request_names_the_server_and_what_it_advertised() {
    let now = Instant::now();
    let mut c = client(now);
    let (solicit, now) = next_sent(&mut c, now);
    let actions = c
        .handle(now, &answer(&solicit, MessageType::Advertise, &offer()))
        .unwrap();
    let request = sent(&actions).pop().unwrap();
    assert_ne!(request.xid(), solicit.xid(), "a new transaction");
    assert_eq!(
        request.opts().get(OptionCode::ServerId),
        Some(&DhcpOption::ServerId(SERVER.to_vec()))
    );
    let Some(DhcpOption::IAPD(pd)) = request.opts().get(OptionCode::IAPD) else {
        panic!()
    };
    let Some(DhcpOption::IAPrefix(p)) = pd.opts.get(OptionCode::IAPrefix) else {
        panic!()
    };
    assert_eq!(p.prefix_ip.to_string(), "2001:db8:1200::");
}

#[test]
fn renews_at_t1_with_the_server_rebinds_at_t2_without_and_drops_everything_at_expiry() {
    let now = Instant::now();
    let mut c = client(now);
    let (_, at) = bind(&mut c, now, &offer());
    let (renew, t) = next_sent(&mut c, at);
    assert_eq!(renew.msg_type(), MessageType::Renew);
    assert_eq!(t, at + Duration::from_secs(1000));
    assert!(renew.opts().get(OptionCode::ServerId).is_some());
    assert_eq!(c.phase(), Phase::Renewing);
    // Unanswered: retransmitted, then REBIND at T2.
    let mut rebind = None;
    let mut t = t;
    while rebind.is_none() {
        let (m, when) = next_sent(&mut c, t);
        t = when;
        if m.msg_type() == MessageType::Rebind {
            rebind = Some((m, when));
        } else {
            assert_eq!(m.msg_type(), MessageType::Renew);
        }
    }
    let (rebind, when) = rebind.unwrap();
    assert_eq!(when, at + Duration::from_secs(1600));
    assert!(rebind.opts().get(OptionCode::ServerId).is_none());
    // Unanswered until the last valid lifetime ends: everything goes, SOLICIT again.
    let mut t = when;
    loop {
        t = t.max(c.deadline());
        let actions = c.poll(t);
        if actions.contains(&Action::Deconfigure) {
            break;
        }
        assert!(t <= at + Duration::from_secs(4000));
    }
    assert_eq!(t, at + Duration::from_secs(4000));
    assert_eq!(c.phase(), Phase::Soliciting);
    assert!(c.lease().is_none());
}

#[test]
fn a_withdrawn_prefix_leaves_the_lease_and_the_new_one_is_in_use() {
    let now = Instant::now();
    let mut c = client(now);
    let (_, at) = bind(&mut c, now, &offer());
    let (renew, t) = next_sent(&mut c, at);
    let changed = Offer {
        prefixes: vec![
            ("2001:db8:1200::/56", 0, 0),
            ("2001:db8:3400::/56", 3000, 4000),
        ],
        ..offer()
    };
    let actions = c
        .handle(t, &answer(&renew, MessageType::Reply, &changed))
        .unwrap();
    let [Action::Configure(lease)] = &actions[..] else {
        panic!("{actions:?}")
    };
    assert_eq!(lease.prefixes.len(), 1);
    assert_eq!(
        lease.prefix().unwrap().value.to_string(),
        "2001:db8:3400::/56"
    );
    assert_eq!(c.phase(), Phase::Bound);
}

#[test]
fn zero_timers_default_to_half_and_four_fifths_of_the_shortest_preferred_lifetime() {
    let now = Instant::now();
    let mut c = client(now);
    let o = Offer {
        t1: 0,
        t2: 0,
        ..offer()
    };
    let (lease, _) = bind(&mut c, now, &o);
    assert_eq!(lease.t1, Some(Duration::from_secs(1500)));
    assert_eq!(lease.t2, Some(Duration::from_secs(2400)));
    let o = Offer {
        t1: u32::MAX,
        t2: u32::MAX,
        ..offer()
    };
    let (lease, _) = bind(&mut client(now), now, &o);
    assert_eq!((lease.t1, lease.t2), (None, None), "infinity: never renew");
}

#[test]
fn answers_to_nothing_outstanding_or_for_another_client_are_dropped() {
    let now = Instant::now();
    let mut c = client(now);
    let (solicit, now) = next_sent(&mut c, now);
    // A REPLY to a SOLICIT (no rapid commit asked for).
    assert_eq!(
        c.handle(now, &answer(&solicit, MessageType::Reply, &offer())),
        Err(Dropped::Unexpected)
    );
    // Another transaction.
    let mut other = decode(&answer(&solicit, MessageType::Advertise, &offer()));
    other.set_xid([1, 2, 3]);
    let mut b = Vec::new();
    other.encode(&mut Encoder::new(&mut b)).unwrap();
    assert_eq!(c.handle(now, &b), Err(Dropped::Unexpected));
    // Another client's DUID.
    let mut other = decode(&answer(&solicit, MessageType::Advertise, &offer()));
    other.opts_mut().remove(OptionCode::ClientId);
    other
        .opts_mut()
        .insert(DhcpOption::ClientId(vec![0, 3, 0, 1, 9, 9, 9, 9, 9, 9]));
    let mut b = Vec::new();
    other.encode(&mut Encoder::new(&mut b)).unwrap();
    assert_eq!(c.handle(now, &b), Err(Dropped::Unexpected));
    // No server id.
    let mut other = decode(&answer(&solicit, MessageType::Advertise, &offer()));
    other.opts_mut().remove(OptionCode::ServerId);
    let mut b = Vec::new();
    other.encode(&mut Encoder::new(&mut b)).unwrap();
    assert_eq!(c.handle(now, &b), Err(Dropped::Unusable));
    // A failure status.
    let mut other = decode(&answer(&solicit, MessageType::Advertise, &offer()));
    other.opts_mut().insert(DhcpOption::StatusCode(StatusCode {
        status: Status::UnspecFail,
        msg: "no".into(),
    }));
    let mut b = Vec::new();
    other.encode(&mut Encoder::new(&mut b)).unwrap();
    assert_eq!(c.handle(now, &b), Err(Dropped::Unusable));
    assert_eq!(c.phase(), Phase::Soliciting, "still soliciting");
}

#[test]
fn prefixes_that_are_not_global_or_have_broken_lifetimes_are_refused() {
    let now = Instant::now();
    let mut c = client(now);
    let (solicit, now) = next_sent(&mut c, now);
    let bad = Offer {
        address: Some(("fe80::1", 3000, 4000)),
        prefixes: vec![
            ("fd00:1::/56", 3000, 4000),
            ("2001:db8:5600::/40", 3000, 4000),
            ("2001:db8:7800::/56", 5000, 4000),
            ("ff02::/56", 3000, 4000),
        ],
        t1: 0,
        t2: 0,
    };
    assert_eq!(
        c.handle(now, &answer(&solicit, MessageType::Advertise, &bad)),
        Err(Dropped::Unusable)
    );
    assert_eq!(c.phase(), Phase::Soliciting);
}

#[test]
fn garbage_and_oversized_messages_are_dropped_without_panicking() {
    let now = Instant::now();
    let mut c = client(now);
    let _ = next_sent(&mut c, now);
    assert_eq!(c.handle(now, &[0u8; 2000]), Err(Dropped::Oversized));
    let mut seed = 0x1234_5678_u64;
    for len in 0..400 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        assert!(c.handle(now, &bytes).is_err());
    }
    assert_eq!(c.phase(), Phase::Soliciting);
}

#[test]
fn solicit_backs_off_to_about_two_minutes_and_request_gives_up_after_ten_tries() {
    let now = Instant::now();
    let mut c = client(now);
    let (_, mut t) = next_sent(&mut c, now);
    let mut gaps = Vec::new();
    for _ in 0..12 {
        let (_, when) = next_sent(&mut c, t);
        gaps.push(when - t);
        t = when;
    }
    assert!(gaps[0] >= Duration::from_millis(1000) && gaps[0] <= Duration::from_millis(1100));
    assert!(
        gaps.iter().all(|g| *g <= Duration::from_secs(132)),
        "{gaps:?}"
    );
    assert!(
        *gaps.last().unwrap() >= Duration::from_secs(108),
        "{gaps:?}"
    );

    let mut c = client(now);
    let (solicit, t) = next_sent(&mut c, now);
    c.handle(t, &answer(&solicit, MessageType::Advertise, &offer()))
        .unwrap();
    let mut t = t;
    let mut requests = 1;
    loop {
        let (m, when) = next_sent(&mut c, t);
        t = when;
        if m.msg_type() == MessageType::Solicit {
            break;
        }
        requests += 1;
    }
    assert_eq!(requests, 10);
}

#[test]
fn elapsed_time_grows_across_retransmissions() {
    let now = Instant::now();
    let mut c = client(now);
    let (first, t) = next_sent(&mut c, now);
    let (second, _) = next_sent(&mut c, t);
    let elapsed = |m: &Message| match m.opts().get(OptionCode::ElapsedTime) {
        Some(DhcpOption::ElapsedTime(e)) => *e,
        _ => panic!("no elapsed time"),
    };
    assert!(elapsed(&second) > elapsed(&first));
    assert_eq!(
        first.xid(),
        second.xid(),
        "a retransmission keeps its transaction id"
    );
}

#[test]
fn options_too_short_for_their_fields_are_refused_before_dhcproto_sees_them() {
    let now = Instant::now();
    let mut c = client(now);
    let (solicit, now) = next_sent(&mut c, now);
    let good = answer(&solicit, MessageType::Advertise, &offer());
    // A one-byte status code (dhcproto would subtract past zero), a top-level one and one
    // nested in the IA_PD, and a DNS option that is not a whole number of addresses.
    let mut bad_status = good.clone();
    bad_status.extend_from_slice(&[0, 13, 0, 1, 0]);
    assert_eq!(c.handle(now, &bad_status), Err(Dropped::Malformed));
    let mut bad_dns = good.clone();
    bad_dns.extend_from_slice(&[0, 23, 0, 3, 1, 2, 3]);
    assert_eq!(c.handle(now, &bad_dns), Err(Dropped::Malformed));
    let mut truncated = good.clone();
    truncated.extend_from_slice(&[0, 25, 0, 40, 0, 0]);
    assert_eq!(c.handle(now, &truncated), Err(Dropped::Malformed));
    // Options the client does not read are left out, not refused.
    let mut extra = good.clone();
    extra.extend_from_slice(&[0, 16, 0, 1, 9]);
    assert!(c.handle(now, &extra).is_ok());
    assert_eq!(c.phase(), Phase::Requesting);
}

#[test]
fn sanitize_keeps_every_option_the_client_reads() {
    let now = Instant::now();
    let mut c = client(now);
    let (solicit, _) = next_sent(&mut c, now);
    let good = answer(&solicit, MessageType::Reply, &offer());
    assert_eq!(sanitize(&good).unwrap(), good);
}
