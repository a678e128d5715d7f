//! Lease names pushed to roost-dns: the real binary, a real client sending its host name, and
//! a stand-in for the dns control API (`PUT /local-names`) on the dns peer's address inside
//! the server namespace. The stand-in can be stopped and started again like a restarted dns.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use roost_config::View as _;
use roost_config::views::DhcpView;

use crate::{Net, wait_until};

/// What the stand-in dns received: each accepted body, parsed.
#[derive(Default)]
struct Received {
    bodies: Vec<serde_json::Value>,
    unauthorized: u32,
}

/// A minimal `PUT /local-names` server in a namespace, stopped when dropped.
struct FakeDns {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeDns {
    fn start(netns: &str, addr: SocketAddr, token: &str, received: &Arc<Mutex<Received>>) -> Self {
        let path = format!("/run/netns/{netns}");
        let listener = std::thread::spawn(move || {
            let f = std::fs::File::open(&path).unwrap();
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            TcpListener::bind(addr).unwrap()
        })
        .join()
        .unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, rec, token) = (Arc::clone(&stop), Arc::clone(received), token.to_owned());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                        serve_one(&mut s, &token, &rec);
                    }
                    // Poll the stop flag between connections.
                    Err(_) => std::thread::park_timeout(Duration::from_millis(10)),
                }
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

fn serve_one(s: &mut std::net::TcpStream, token: &str, rec: &Mutex<Received>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head, body) = loop {
        let Ok(n) = s.read(&mut chunk) else { return };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if body.len() >= len {
                break (head.to_owned(), body.to_owned());
            }
        }
    };
    let authorized = head.starts_with("PUT /local-names ")
        && head.contains(&format!("Authorization: Bearer {token}\r\n"));
    let answer = if authorized {
        rec.lock()
            .unwrap()
            .bodies
            .push(serde_json::from_str(&body).unwrap());
        "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\napplied\n"
    } else {
        rec.lock().unwrap().unauthorized += 1;
        "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    };
    let _ = s.write_all(answer.as_bytes());
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn names(body: &serde_json::Value) -> Vec<(String, String)> {
    body["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_owned(),
                n["address"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn last_names(rec: &Mutex<Received>) -> Option<Vec<(String, String)>> {
    rec.lock().unwrap().bodies.last().map(names)
}

/// udhcpc in the LAN client with option 12 `name`.
fn udhcpc_named(net: &Net, name: &str) -> Ipv4Addr {
    let c = net.client("lan");
    let out = Command::new("timeout")
        .args(["30", "ip", "netns", "exec", &c.netns, "busybox", "udhcpc"])
        .args(["-n", "-q", "-f", "-t", "5", "-T", "1", "-i", &c.ifname])
        .args(["-x", &format!("hostname:{name}"), "-s", "/bin/true"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "udhcpc: {text}");
    let ip = text
        .split("lease of ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no lease in udhcpc's output: {text}"));
    ip.parse().unwrap()
}

#[test]
fn needs_root_lease_names_reach_dns_follow_a_rename_and_are_pushed_again_after_dns_comes_back() {
    let mut net = Net::new("nm", "1h");
    let view = DhcpView::load(&net.view).unwrap();
    let peer: SocketAddr = view
        .dns_peer
        .url
        .strip_prefix("http://")
        .unwrap()
        .parse()
        .unwrap();
    let token = format!("dns-token-{}", net.prefix);
    std::fs::write(&view.dns_peer.token_file, &token).unwrap();
    let server = net.server_ns();
    let status = Command::new("ip")
        .args(["-n", &server, "addr", "add"])
        .arg(format!("{}/32", peer.ip()))
        .args(["dev", "lo"])
        .status()
        .unwrap();
    assert!(status.success());
    let received = Arc::new(Mutex::new(Received::default()));
    let dns = FakeDns::start(&server, peer, &token, &received);
    net.start();

    // At start the (empty) set is pushed, so dns forgets names from before.
    wait_until(Duration::from_secs(10), "the first push", || {
        last_names(&received).filter(Vec::is_empty)
    });

    // A client with a host name: its name and address arrive, with the token.
    let ip = udhcpc_named(&net, "laptop");
    let want = vec![("laptop".to_owned(), ip.to_string())];
    wait_until(Duration::from_secs(10), "laptop's name at dns", || {
        last_names(&received).filter(|n| *n == want)
    });
    assert_eq!(net.lease(ip).unwrap()["name"], "laptop");
    assert_eq!(received.lock().unwrap().unauthorized, 0);

    // dns goes down; the client renews under another name meanwhile: the ACK does not wait
    // for dns.
    drop(dns);
    assert_eq!(udhcpc_named(&net, "Desktop_1"), ip);
    wait_until(Duration::from_secs(10), "a failed push", || {
        (net.metric("roost_dhcp_dns_push_failures_total") > 0).then_some(())
    });
    let pushes = net.metric("roost_dhcp_dns_pushes_total");
    assert!(pushes >= 2, "{pushes}");

    // dns is back (empty, like a restarted daemon): the retry brings it the current set.
    received.lock().unwrap().bodies.clear();
    let _dns = FakeDns::start(&server, peer, &token, &received);
    let want = vec![("desktop-1".to_owned(), ip.to_string())];
    wait_until(
        Duration::from_secs(20),
        "the set after dns came back",
        || last_names(&received).filter(|n| *n == want),
    );
    wait_until(
        Duration::from_secs(5),
        "the failing gauge back at 0",
        || (net.metric("roost_dhcp_dns_push_failing") == 0).then_some(()),
    );
    assert!(net.log().contains("dns reachable again"), "{}", net.log());
}
