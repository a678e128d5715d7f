//! The daemon under systemd's `Type=notify` and `WatchdogSec=`, as roost-control implements it
//! for every Roost daemon: systemd's side is played by a Unix datagram socket, as sd_notify(3)
//! describes it.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use crate::{Broker, view};

/// The next notification, or None after `timeout`.
fn next(socket: &UnixDatagram, timeout: Duration) -> Option<String> {
    socket.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 4096];
    match socket.recv(&mut buf) {
        Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
        Err(e) => panic!("notify socket: {e}"),
    }
}

/// roost-mqtt started as systemd starts a `Type=notify` unit (`NOTIFY_SOCKET`, plus `env`),
/// and the socket its notifications arrive on.
fn start_notified(env: &[(&str, &str)]) -> (tempfile::TempDir, UnixDatagram, Broker) {
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify");
    let socket = UnixDatagram::bind(&notify).unwrap();
    let mut all = vec![("NOTIFY_SOCKET", notify.as_path())];
    all.extend(env.iter().map(|&(k, v)| (k, Path::new(v))));
    let broker = Broker::start_with_env(&view(dir.path(), vec![], None, true), dir.path(), &all);
    (dir, socket, broker)
}

#[test]
fn it_tells_systemd_when_it_serves_feeds_the_watchdog_and_says_when_it_stops() {
    // 200 ms: pings every 100 ms. (sd_notify skips the watchdog when WATCHDOG_PID names
    // another process; systemd sets it to the main PID, and leaving it out means "this one".)
    let (_dir, socket, broker) = start_notified(&[("WATCHDOG_USEC", "200000")]);

    let ready = next(&socket, Duration::from_secs(10)).expect("no READY=1");
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    let status = format!("STATUS=serving; control API on {}", broker.control);
    assert!(ready.lines().any(|l| l == status), "{ready:?}");
    // Ready means serving: the control API and the MQTT listener take connections.
    assert!(broker.get("/health").starts_with("HTTP/1.1 200"));
    std::net::TcpStream::connect(broker.plain).unwrap();

    for _ in 0..3 {
        let ping = next(&socket, Duration::from_secs(5)).expect("no watchdog ping");
        assert_eq!(ping, "WATCHDOG=1\n");
    }

    broker.stop();
    let mut stopping = false;
    while let Some(message) = next(&socket, Duration::from_millis(500)) {
        if message == "STOPPING=1\n" {
            stopping = true;
        } else {
            assert_eq!(message, "WATCHDOG=1\n", "unexpected notification");
            assert!(!stopping, "watchdog pinged after STOPPING=1");
        }
    }
    assert!(stopping, "no STOPPING=1 on SIGTERM");
}

#[test]
fn without_a_watchdog_for_this_process_it_only_says_ready_and_stopping() {
    // A watchdog meant for another process (PID 1) is not this daemon's to feed.
    let (_dir, socket, broker) =
        start_notified(&[("WATCHDOG_USEC", "100000"), ("WATCHDOG_PID", "1")]);
    let ready = next(&socket, Duration::from_secs(10)).expect("no READY=1");
    assert!(ready.starts_with("READY=1\n"), "{ready:?}");
    assert_eq!(next(&socket, Duration::from_millis(400)), None);
    broker.stop();
    assert_eq!(
        next(&socket, Duration::from_secs(2)).as_deref(),
        Some("STOPPING=1\n")
    );
}
