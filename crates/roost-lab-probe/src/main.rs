//! `roost-lab-probe DEVICE`: the lab's command channel into a VM (ADR 0010), for tests only.
//!
//! In the lab's VM mode a service's namespace holds qemu, not the service: a connection made
//! there says nothing about what the service could reach, and the namespace has no address to
//! reach the service from. The lab's initramfs (and nothing else: never a Roost image) starts
//! this beside the daemon on the VM's virtio console, which qemu joins to a unix socket only
//! the lab's root can open. It answers one request per line, each starting with an id the
//! answer repeats (so a late answer to an abandoned request is never taken for another's):
//!
//! - `ID connect ADDR TIMEOUT_MS`: a TCP connection attempted from inside the VM, over the
//!   VM's own links, the way a compromised daemon would try: `ID ok` or `ID no REASON`.
//! - `ID http ADDR HEX`: the lab's management path: sends the hex-encoded bytes to `ADDR`
//!   (the VM's own control API, a local delivery) and answers `ID ok HEX` with everything
//!   read back until the server closed, or `ID no REASON`.
//! - `ID run HEX`: runs one of [`PROGRAMS`] (`ip`, `nft`; in the Wi-Fi VM `hostapd_cli`,
//!   `wpa_cli` and `roostctl`; nothing else) with the hex-encoded, NUL-separated arguments, so
//!   tests can read a VM's addresses and the firewall's ruleset, and drive the Wi-Fi VM's
//!   station and WPS button: `ID ok HEX` with its output, or `ID no REASON` (with its exit
//!   status and error output). The list keeps a test from running anything by accident; it is
//!   no boundary (`ip netns exec` runs any program), nor needs to be: only the lab's root can
//!   open the console.
//!
//! Anything else is `ID no bad request` (`- no bad request` without an id).
//! Std and `hex` only, so it cross-builds small and static.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, ExitCode};
use std::time::Duration;

/// Longest request line taken (a control request with its token is well below).
const MAX_LINE: u64 = 16 << 10;
/// Longest connection attempt.
const MAX_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an HTTP exchange may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Most bytes an HTTP answer or a command's output is relayed with.
const MAX_ANSWER: u64 = 4 << 20;
/// The only programs `run` starts (each where the VM has it).
const PROGRAMS: [&str; 5] = ["ip", "nft", "hostapd_cli", "wpa_cli", "roostctl"];

fn answer(line: &str) -> String {
    let Some((id, rest)) = line.split_once(' ') else {
        return "- no bad request".to_owned();
    };
    if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return "- no bad request".to_owned();
    }
    let outcome = match rest.split_whitespace().collect::<Vec<_>>()[..] {
        ["connect", addr, ms] => connect(addr, ms),
        ["http", addr, payload] => http(addr, payload),
        ["run", payload] => run(payload),
        _ => Err("bad request".to_owned()),
    };
    match outcome {
        Ok(payload) if payload.is_empty() => format!("{id} ok"),
        Ok(payload) => format!("{id} ok {payload}"),
        Err(reason) => format!("{id} no {reason}"),
    }
}

fn connect(addr: &str, ms: &str) -> Result<String, String> {
    let (Ok(addr), Ok(ms)) = (addr.parse::<SocketAddr>(), ms.parse::<u64>()) else {
        return Err("bad request".to_owned());
    };
    let timeout = Duration::from_millis(ms.max(1)).min(MAX_TIMEOUT);
    TcpStream::connect_timeout(&addr, timeout)
        .map(|_| String::new())
        .map_err(|e| format!("{:?}", e.kind()))
}

fn http(addr: &str, payload: &str) -> Result<String, String> {
    let (Ok(addr), Ok(request)) = (addr.parse::<SocketAddr>(), hex::decode(payload)) else {
        return Err("bad request".to_owned());
    };
    let failed = |e: std::io::Error| format!("{:?}", e.kind());
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT).map_err(failed)?;
    stream
        .set_read_timeout(Some(HTTP_TIMEOUT))
        .map_err(failed)?;
    stream
        .set_write_timeout(Some(HTTP_TIMEOUT))
        .map_err(failed)?;
    stream.write_all(&request).map_err(failed)?;
    let mut response = Vec::new();
    stream
        .take(MAX_ANSWER)
        .read_to_end(&mut response)
        .map_err(failed)?;
    Ok(hex::encode(&response))
}

fn run(payload: &str) -> Result<String, String> {
    let argv = hex::decode(payload)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| "bad request".to_owned())?;
    let mut argv = argv.split('\0');
    let program = argv.next().unwrap_or_default();
    if !PROGRAMS.contains(&program) {
        return Err("bad request".to_owned());
    }
    let out = Command::new(program)
        .args(argv)
        .output()
        .map_err(|e| format!("{:?}", e.kind()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{} {:?}", out.status, stderr.trim()));
    }
    let len = usize::try_from(MAX_ANSWER).unwrap_or(usize::MAX);
    Ok(hex::encode(&out.stdout[..out.stdout.len().min(len)]))
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
                let _ = writeln!(output, "- no bad request");
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
        assert_eq!(answer(&format!("a1 connect {addr} 1000")), "a1 ok");
        drop(listener);
        assert!(answer(&format!("a2 connect {addr} 1000")).starts_with("a2 no "));
        assert_eq!(answer("rm -rf /"), "rm no bad request");
        assert_eq!(answer("x connect 127.0.0.1:1 x"), "x no bad request");
        assert_eq!(answer("x connect 127.0.0.1:1 10 extra"), "x no bad request");
        assert_eq!(answer("connect"), "- no bad request");
        assert_eq!(answer("a;b connect 127.0.0.1:1 10"), "- no bad request");
    }

    #[test]
    fn relays_an_http_exchange_both_ways_in_hex() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = [0u8; 18];
            conn.read_exact(&mut request).unwrap();
            conn.write_all(b"HTTP/1.1 200 OK\r\n\r\nhi\n").unwrap();
            request
        });
        let answer = answer(&format!(
            "r7 http {addr} {}",
            hex::encode(b"GET / HTTP/1.1\r\n\r\n")
        ));
        assert_eq!(&server.join().unwrap(), b"GET / HTTP/1.1\r\n\r\n");
        let payload = answer.strip_prefix("r7 ok ").unwrap();
        assert_eq!(
            hex::decode(payload).unwrap(),
            b"HTTP/1.1 200 OK\r\n\r\nhi\n"
        );
        assert_eq!(
            super::answer(&format!("r8 http {addr} 0g")),
            "r8 no bad request"
        );
    }

    #[test]
    fn runs_only_the_listed_programs() {
        let argv = |words: &[&str]| hex::encode(words.join("\0").as_bytes());
        assert_eq!(
            answer(&format!("q run {}", argv(&["sh", "-c", "true"]))),
            "q no bad request"
        );
        assert_eq!(
            answer(&format!("q run {}", argv(&["/sbin/ip"]))),
            "q no bad request"
        );
        assert_eq!(answer("q run zz"), "q no bad request");
        // `ip` exists on the build machine: its version is output, a bad option an error.
        let version = answer(&format!("v run {}", argv(&["ip", "-V"])));
        let out = hex::decode(version.strip_prefix("v ok ").unwrap()).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("ip"), "{version}");
        assert!(answer(&format!("w run {}", argv(&["ip", "--bogus"]))).starts_with("w no exit"));
    }

    #[test]
    fn odd_or_foreign_hex_is_a_bad_request() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        for bad in ["abc", "+1", "zz"] {
            assert_eq!(answer(&format!("h http {addr} {bad}")), "h no bad request");
            assert_eq!(answer(&format!("h run {bad}")), "h no bad request");
        }
    }
}
