use std::io::Write as _;
use std::net::TcpStream;
use std::time::Duration;

use roost_config::settings::TlsFiles;

use crate::{Broker, Client, run, user, view};

const WAIT: Duration = Duration::from_secs(15);

fn users() -> Vec<roost_config::settings::MqttUser> {
    vec![
        user("admin", "admin-pw", &["#"], &["#"]),
        user("plug", "plug-pw", &["sensors/#"], &["cmd/plug/#"]),
    ]
}

fn start(tls: Option<TlsFiles>, anonymous: bool) -> (tempfile::TempDir, Broker) {
    let dir = tempfile::tempdir().unwrap();
    let v = view(dir.path(), users(), tls, anonymous);
    let b = Broker::start(&v, dir.path());
    (dir, b)
}

fn base(b: &Broker, user: &str, pw: &str, id: &str, version: &str) -> Vec<String> {
    [
        "-h",
        "127.0.0.1",
        "-p",
        &b.plain.port().to_string(),
        "-u",
        user,
        "-P",
        pw,
        "-i",
        id,
        "-V",
        version,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn sub(b: &Broker, user: &str, pw: &str, id: &str, version: &str, extra: &[&str]) -> Client {
    let mut args = base(b, user, pw, id, version);
    args.extend(["-v", "-W", "15"].iter().map(|s| s.to_string()));
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Client::spawn("mosquitto_sub", &args)
}

fn publish(
    b: &Broker,
    user: &str,
    pw: &str,
    version: &str,
    extra: &[&str],
) -> std::process::Output {
    let mut args = base(b, user, pw, &format!("pub-{}", rand_id()), version);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run("mosquitto_pub", &args)
}

fn rand_id() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn mosquitto_clients_publish_and_subscribe_at_qos_0_1_2_in_both_versions() {
    let (_dir, b) = start(None, false);
    for version in ["mqttv311", "mqttv5"] {
        let id = format!("sub-{version}");
        let s = sub(
            &b,
            "admin",
            "admin-pw",
            &id,
            version,
            &["-t", "t/qos", "-q", "2", "-C", "3"],
        );
        b.wait_subscribed(&id, 1);
        for qos in ["0", "1", "2"] {
            let o = publish(
                &b,
                "admin",
                "admin-pw",
                version,
                &["-t", "t/qos", "-q", qos, "-m", &format!("at-{qos}")],
            );
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        let out = s.finish(WAIT);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            stdout(&out),
            "t/qos at-0\nt/qos at-1\nt/qos at-2\n",
            "{version}"
        );
    }
}

#[test]
fn retained_message_reaches_a_later_subscriber() {
    let (_dir, b) = start(None, false);
    let o = publish(
        &b,
        "plug",
        "plug-pw",
        "mqttv311",
        &["-t", "sensors/plug/power", "-r", "-q", "1", "-m", "42"],
    );
    assert!(o.status.success());
    let s = sub(
        &b,
        "admin",
        "admin-pw",
        "late",
        "mqttv5",
        &["-t", "sensors/#", "-C", "1"],
    );
    assert_eq!(stdout(&s.finish(WAIT)), "sensors/plug/power 42\n");
}

#[test]
fn wrong_password_and_anonymous_clients_are_refused() {
    let (_dir, b) = start(None, false);
    for version in ["mqttv311", "mqttv5"] {
        let o = run(
            "mosquitto_sub",
            &base(&b, "plug", "wrong", "x", version)
                .iter()
                .map(String::as_str)
                .chain(["-t", "#", "-C", "1", "-W", "5"])
                .collect::<Vec<_>>(),
        );
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
        assert!(
            err.contains("bad user name or password"),
            "{version}: {err}"
        );
    }
    let port = b.plain.port().to_string();
    let o = run(
        "mosquitto_sub",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "#",
            "-C",
            "1",
            "-W",
            "5",
        ],
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .to_lowercase()
            .contains("not authori"),
        "{o:?}"
    );
    // Its positive twin: the zone that allows anonymous clients lets them in.
    let (_dir2, open) = start(None, true);
    let port = open.plain.port().to_string();
    let s = Client::spawn(
        "mosquitto_sub",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-i",
            "anon",
            "-t",
            "a",
            "-C",
            "1",
            "-W",
            "10",
        ],
    );
    open.wait_subscribed("anon", 1);
    let o = run(
        "mosquitto_pub",
        &["-h", "127.0.0.1", "-p", &port, "-t", "a", "-m", "hi"],
    );
    assert!(o.status.success());
    assert_eq!(stdout(&s.finish(WAIT)), "hi\n");
}

#[test]
fn forbidden_topics_are_refused() {
    let (_dir, b) = start(None, false);
    // Subscribing outside the user's filters: denied (SUBACK 0x80).
    let o = run(
        "mosquitto_sub",
        &base(&b, "plug", "plug-pw", "denied", "mqttv311")
            .iter()
            .map(String::as_str)
            .chain(["-t", "secret/#", "-C", "1", "-W", "5"])
            .collect::<Vec<_>>(),
    );
    // mosquitto_sub says so and exits without a message (its exit code varies by version).
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("denied"),
        "{o:?}"
    );
    assert!(o.stdout.is_empty());
    // Publishing outside them (and to roost/) is not delivered; inside, it is.
    let s = sub(
        &b,
        "admin",
        "admin-pw",
        "watch",
        "mqttv5",
        &["-R", "-t", "#", "-t", "roost/test", "-C", "1"],
    );
    b.wait_subscribed("watch", 2);
    for topic in ["secret/x", "roost/test"] {
        publish(
            &b,
            "plug",
            "plug-pw",
            "mqttv311",
            &["-t", topic, "-q", "1", "-m", "no"],
        );
    }
    publish(
        &b,
        "plug",
        "plug-pw",
        "mqttv311",
        &["-t", "sensors/ok", "-m", "yes"],
    );
    assert_eq!(stdout(&s.finish(WAIT)), "sensors/ok yes\n");
    assert!(b.get("/metrics").contains("roost_mqtt_denied_total 2"));
}

#[test]
fn oversize_message_is_rejected() {
    let (_dir, b) = start(None, false);
    let s = sub(
        &b,
        "admin",
        "admin-pw",
        "big-watch",
        "mqttv5",
        &["-t", "sensors/#", "-C", "1"],
    );
    b.wait_subscribed("big-watch", 1);
    let big = "x".repeat(5000);
    publish(
        &b,
        "plug",
        "plug-pw",
        "mqttv5",
        &["-t", "sensors/big", "-m", &big],
    );
    publish(
        &b,
        "plug",
        "plug-pw",
        "mqttv5",
        &["-t", "sensors/small", "-m", "ok"],
    );
    assert_eq!(stdout(&s.finish(WAIT)), "sensors/small ok\n");
    assert!(b.get("/metrics").contains("roost_mqtt_kicked_total 1"));
}

#[test]
fn broker_stays_up_after_garbage_bytes() {
    let (_dir, b) = start(None, false);
    let mut junk = Vec::new();
    for i in 0..65_536u32 {
        junk.push((i.wrapping_mul(2_654_435_761) >> 13) as u8);
    }
    for payload in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &junk,
        &[0x10, 0xff, 0xff, 0xff, 0xff, 0x7f][..],
        &[0x10, 0x05, 0, 4, b'M'][..],
    ] {
        let mut s = TcpStream::connect(b.plain).unwrap();
        let _ = s.write_all(payload);
    }
    let s = sub(
        &b,
        "admin",
        "admin-pw",
        "after",
        "mqttv311",
        &["-t", "t", "-C", "1"],
    );
    b.wait_subscribed("after", 1);
    publish(
        &b,
        "admin",
        "admin-pw",
        "mqttv311",
        &["-t", "t", "-m", "alive"],
    );
    assert_eq!(stdout(&s.finish(WAIT)), "t alive\n");
    assert!(b.get("/health").starts_with("HTTP/1.1 200"));
}

#[test]
fn tls_listener_serves_clients_that_trust_the_test_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sh = |args: &[&str]| {
        let o = std::process::Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    sh(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Roost test CA",
    ]);
    sh(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    sh(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    let tls = TlsFiles {
        cert: d.join("server.pem"),
        key: d.join("server.key"),
    };
    let v = view(d, users(), Some(tls), false);
    let b = Broker::start(&v, d);
    let port = b.tls.unwrap().port().to_string();
    let ca = d.join("ca.pem").display().to_string();
    let common = [
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "--cafile",
        &ca,
        "-u",
        "admin",
        "-P",
        "admin-pw",
    ];
    let s = Client::spawn(
        "mosquitto_sub",
        &[
            &common[..],
            &[
                "-i", "tls-sub", "-t", "t", "-C", "1", "-W", "15", "-V", "mqttv5",
            ],
        ]
        .concat(),
    );
    b.wait_subscribed("tls-sub", 1);
    let o = run(
        "mosquitto_pub",
        &[&common[..], &["-t", "t", "-m", "over-tls"]].concat(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(stdout(&s.finish(WAIT)), "over-tls\n");
    // A client that does not trust the CA does not get in.
    let other = d.join("server.pem").display().to_string();
    let o = run(
        "mosquitto_pub",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "--cafile",
            &other,
            "-u",
            "admin",
            "-P",
            "admin-pw",
            "-t",
            "t",
            "-m",
            "x",
        ],
    );
    assert!(!o.status.success());
}

#[test]
fn retained_messages_and_persistent_sessions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let v = view(dir.path(), users(), None, false);
    let b = Broker::start(&v, dir.path());
    // A persistent subscriber (clean session off), then gone.
    let s = sub(
        &b,
        "admin",
        "admin-pw",
        "durable",
        "mqttv311",
        &["-c", "-q", "1", "-t", "cmd/#", "-C", "1"],
    );
    b.wait_subscribed("durable", 1);
    publish(
        &b,
        "admin",
        "admin-pw",
        "mqttv311",
        &["-t", "cmd/first", "-q", "1", "-m", "1"],
    );
    assert_eq!(stdout(&s.finish(WAIT)), "cmd/first 1\n");
    publish(
        &b,
        "admin",
        "admin-pw",
        "mqttv311",
        &["-t", "cmd/while-away", "-q", "1", "-m", "queued"],
    );
    publish(
        &b,
        "admin",
        "admin-pw",
        "mqttv5",
        &["-t", "state/lamp", "-r", "-m", "on"],
    );
    b.stop();
    let b = Broker::start(&v, dir.path());
    let s = sub(
        &b,
        "admin",
        "admin-pw",
        "durable",
        "mqttv311",
        &["-c", "-q", "1", "-t", "cmd/#", "-C", "1"],
    );
    assert_eq!(stdout(&s.finish(WAIT)), "cmd/while-away queued\n");
    let s = sub(
        &b,
        "admin",
        "admin-pw",
        "reader",
        "mqttv5",
        &["-t", "state/#", "-C", "1"],
    );
    assert_eq!(stdout(&s.finish(WAIT)), "state/lamp on\n");
}

#[test]
fn control_api_reports_clients_metrics_and_takes_config() {
    let (dir, b) = start(None, false);
    let s = sub(
        &b,
        "admin",
        "admin-pw",
        "watched",
        "mqttv5",
        &["-t", "a/#", "-C", "1"],
    );
    b.wait_subscribed("watched", 1);
    let metrics = b.get("/metrics");
    assert!(metrics.contains("roost_mqtt_connections 1"), "{metrics}");
    assert!(metrics.contains("roost_mqtt_messages_in_total"));
    // PUT /config: a new user logs in without a restart.
    let mut v = view(dir.path(), users(), None, false);
    v.users
        .push(crate::user("newcomer", "new-pw", &["a/#"], &[]));
    // Port 0 again: the listener stays the one the broker bound.
    v.listeners[0].port = Some(0);
    let body = roost_config::View::render(&v);
    let mut t = TcpStream::connect(b.control).unwrap();
    write!(t, "PUT /config HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", crate::TOKEN, body.len()).unwrap();
    let mut resp = String::new();
    std::io::Read::read_to_string(&mut t, &mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let o = publish(
        &b,
        "newcomer",
        "new-pw",
        "mqttv311",
        &["-t", "a/b", "-m", "hello"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(stdout(&s.finish(WAIT)), "a/b hello\n");
}

#[test]
fn telemetry_from_the_web_vm_is_retained_under_roost_and_bad_topics_are_refused() {
    let (_dir, b) = start(None, false);
    let good = r#"{"topics":{"roost/wan/address":"203.0.113.10/24","roost/dns/queries_per_second":"12.5"}}"#;
    let answer = b.put("/telemetry", good);
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    // Retained: a user who subscribes afterwards gets both at once.
    let o = run(
        "mosquitto_sub",
        &base(&b, "plug", "plug-pw", "dash", "mqttv311")
            .iter()
            .map(String::as_str)
            .chain([
                "-t",
                "roost/wan/#",
                "-t",
                "roost/dns/#",
                "-v",
                "-C",
                "2",
                "-W",
                "5",
            ])
            .collect::<Vec<_>>(),
    );
    let out = stdout(&o);
    assert!(out.contains("roost/wan/address 203.0.113.10/24"), "{out}");
    assert!(out.contains("roost/dns/queries_per_second 12.5"), "{out}");
    for bad in [
        r#"{"topics":{"sensors/x":"1"}}"#,
        r#"{"topics":{"roost/+/x":"1"}}"#,
        r#"{"topics":{"roost//x":"1"}}"#,
        r#"{"topics":"nope"}"#,
    ] {
        let answer = b.put("/telemetry", bad);
        assert!(answer.starts_with("HTTP/1.1 400"), "{bad}: {answer}");
    }
    let huge = format!(r#"{{"topics":{{"roost/x":"{}"}}}}"#, "x".repeat(5000));
    assert!(b.put("/telemetry", &huge).starts_with("HTTP/1.1 400"));
}

#[test]
fn put_config_moves_a_listener_to_a_new_port_and_keeps_the_old_one_when_it_cannot() {
    let (dir, b) = start(None, false);
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let put = |v: &roost_config::views::MqttView| b.put("/config", &roost_config::View::render(v));
    let publishes = |port: u16| {
        run(
            "mosquitto_pub",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-u",
                "admin",
                "-P",
                "admin-pw",
                "-t",
                "a",
                "-m",
                "x",
            ],
        )
        .status
        .success()
    };
    let old = b.plain.port();
    assert!(publishes(old));
    // To a new port: it answers at once, the old one is closed.
    let new = free_port();
    let mut v = view(dir.path(), users(), None, false);
    v.listeners[0].port = Some(new);
    let answer = put(&v);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(publishes(new), "the new port answers");
    assert!(!publishes(old), "the old port is closed");
    // To a port another program holds: refused, and the new port keeps serving.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut w = v.clone();
    w.listeners[0].port = Some(taken.local_addr().unwrap().port());
    let answer = put(&w);
    assert!(answer.starts_with("HTTP/1.1 422"), "{answer}");
    assert!(answer.contains("listen"), "{answer}");
    assert!(publishes(new), "the config in force still serves");
    // Disabled: no listener at all, the control API stays.
    let mut off = v.clone();
    off.enabled = false;
    assert!(put(&off).starts_with("HTTP/1.1 200"));
    assert!(!publishes(new));
    assert!(b.get("/health").starts_with("HTTP/1.1 200"));
}

#[test]
fn paho_python_clients_talk_over_tcp_and_websocket_at_every_qos() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = view(dir.path(), users(), None, false);
    v.listeners.push(roost_config::settings::MqttListener {
        zone: "lan".into(),
        port: Some(0),
        tls: false,
        websocket: true,
        allow_anonymous: false,
    });
    let b = Broker::start(&v, dir.path());
    let ws = b.ws.expect("a websocket listener");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/paho_client.py");
    let o = std::process::Command::new("python3")
        .args([
            script,
            "127.0.0.1",
            &b.plain.port().to_string(),
            &ws.port().to_string(),
        ])
        .args(["admin", "admin-pw"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for line in [
        "ok tcp v311",
        "ok websockets v311",
        "ok tcp v5",
        "ok websockets v5",
    ] {
        assert!(out.lines().any(|l| l == line), "{line} missing: {out}");
    }
    // A WebSocket client that does not ask for the mqtt subprotocol is refused.
    let mut s = TcpStream::connect(ws).unwrap();
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut s, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // The plain listener still serves.
    assert!(
        publish(&b, "admin", "admin-pw", "mqttv311", &["-t", "a", "-m", "x"])
            .status
            .success()
    );
}

#[test]
fn packets_sent_right_behind_the_connect_are_served_without_waiting_for_more_bytes() {
    let (_dir, b) = start(None, false);
    // MQTT 3.1.1 §3.1.4: a client need not wait for the CONNACK. CONNECT (user admin) and a
    // SUBSCRIBE to a/# at QoS 1, in one write.
    let mut connect = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 4, 0xC2, 0x00, 0x3C];
    for field in [&b"raw"[..], b"admin", b"admin-pw"] {
        connect.extend_from_slice(&(field.len() as u16).to_be_bytes());
        connect.extend_from_slice(field);
    }
    let mut bytes = vec![0x10, connect.len() as u8];
    bytes.extend_from_slice(&connect);
    bytes.extend_from_slice(&[0x82, 8, 0x00, 0x01, 0x00, 0x03, b'a', b'/', b'#', 0x01]);
    let mut s = TcpStream::connect(b.plain).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(&bytes).unwrap();
    let mut got = [0u8; 9];
    std::io::Read::read_exact(&mut s, &mut got).expect("CONNACK and SUBACK within 3 s");
    assert_eq!(got, [0x20, 0x02, 0x00, 0x00, 0x90, 0x03, 0x00, 0x01, 0x01]);
}
