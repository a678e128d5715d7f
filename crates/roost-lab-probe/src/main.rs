//! `roost-lab-probe DEVICE`: the lab's command channel into a VM (ADR 0010), for tests only.
//!
//! In the lab's VM mode a service's namespace holds qemu, not the service: a connection made
//! there says nothing about what the service could reach. The lab's initramfs (and nothing
//! else: never a Roost image) starts this beside the daemon on the VM's virtio console, which
//! qemu joins to a unix socket only the lab's root can open. It answers one request per line,
//! `connect ADDR TIMEOUT_MS`, with `ok` or `no REASON`: a TCP connection attempted from inside
//! the VM, over the VM's own links, the way a compromised daemon would try.
//! Std only, so it cross-builds small and static.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

/// Longest request line taken.
const MAX_LINE: u64 = 256;
/// Longest connection attempt.
const MAX_TIMEOUT: Duration = Duration::from_secs(30);

fn answer(line: &str) -> String {
    let mut words = line.split_whitespace();
    let (Some("connect"), Some(addr), Some(ms), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return "no bad request".to_owned();
    };
    let (Ok(addr), Ok(ms)) = (addr.parse::<SocketAddr>(), ms.parse::<u64>()) else {
        return "no bad request".to_owned();
    };
    let timeout = Duration::from_millis(ms.max(1)).min(MAX_TIMEOUT);
    match TcpStream::connect_timeout(&addr, timeout) {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("no {:?}", e.kind()),
    }
}

fn main() -> ExitCode {
    let Some(device) = std::env::args().nth(1) else {
        eprintln!("usage: roost-lab-probe DEVICE");
        return ExitCode::from(2);
    };
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&device)
    };
    let (Ok(input), Ok(mut output)) = (open(), open()) else {
        eprintln!("roost-lab-probe: cannot open {device}");
        return ExitCode::FAILURE;
    };
    let mut input = BufReader::new(input);
    let mut line = String::new();
    loop {
        line.clear();
        match Read::by_ref(&mut input).take(MAX_LINE).read_line(&mut line) {
            Ok(0) => std::thread::sleep(Duration::from_millis(100)),
            Ok(_) if !line.ends_with('\n') => {
                // Longer than a request may be: drop the rest of it.
                let _ = input.skip_until(b'\n');
                let _ = writeln!(output, "no bad request");
            }
            Ok(_) => {
                let _ = writeln!(output, "{}", answer(line.trim()));
                let _ = output.flush();
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_connects_and_refuses_anything_else() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(answer(&format!("connect {addr} 1000")), "ok");
        drop(listener);
        assert!(answer(&format!("connect {addr} 1000")).starts_with("no "));
        assert_eq!(answer("rm -rf /"), "no bad request");
        assert_eq!(answer("connect 127.0.0.1:1 x"), "no bad request");
        assert_eq!(answer("connect 127.0.0.1:1 10 extra"), "no bad request");
    }
}
