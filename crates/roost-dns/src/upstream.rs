//! Forwarding to upstream servers over UDP, with TCP when an answer is truncated, or over
//! DNS-over-TLS ([`crate::tls`]) for a server with a `tls_name`.
//!
//! Each query gets a fresh UDP socket on a kernel-chosen random port and a random ID, and is
//! connected to the server, so only that server's packets reach it; an answer must match ID
//! and question or it is ignored (and counted). Servers are tried in order; one that fails
//! [`FAILURES_BEFORE_DOWN`] times in a row is skipped for [`DOWN_FOR`] unless every server is
//! down. Before caching, the answer is decoded once by hickory-proto as a full check.
//!
//! Not hickory's resolver: its forwarder loses queries under load and its TCP path is slow
//! (hickory-dns issues #2613, #3435), and its cache cannot serve pre-encoded answers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use roost_config::settings::Upstream;
use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::tls::DotClient;
use crate::wire;

/// How long one UDP try waits for an answer.
pub const UDP_TIMEOUT: Duration = Duration::from_millis(1200);
/// How long one TCP exchange may take.
pub const TCP_TIMEOUT: Duration = Duration::from_secs(3);
/// Consecutive failures after which a server is skipped.
pub const FAILURES_BEFORE_DOWN: u32 = 3;
/// How long a failing server is skipped.
pub const DOWN_FOR: Duration = Duration::from_secs(10);

/// Why no upstream answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// No upstream is configured.
    #[error("no upstream servers configured")]
    NoServers,
    /// Every server failed; the last reason.
    #[error("every upstream failed; last: {0}")]
    AllFailed(String),
}

#[derive(Debug, Default)]
struct Health {
    consecutive_failures: u32,
    down_until: Option<Instant>,
}

/// Counters per server.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Queries sent.
    pub queries: AtomicU64,
    /// Exchanges that failed (timeout, network error, SERVFAIL/REFUSED, malformed).
    pub failures: AtomicU64,
    /// Answers ignored for a wrong ID or question.
    pub mismatched: AtomicU64,
    /// Retries over TCP after a truncated UDP answer.
    pub tcp_fallbacks: AtomicU64,
    /// Sum of answer latencies, microseconds.
    pub latency_us_sum: AtomicU64,
    /// Answers received.
    pub answers: AtomicU64,
    /// UDP answers whose question lost our 0x20 case from a server known to keep it: spoofs.
    pub case_mismatched: AtomicU64,
}

/// What a server does with the case of the question (0x20).
const CASE_UNKNOWN: u8 = 0;
const CASE_KEPT: u8 = 1;
const CASE_LOST: u8 = 2;
/// Answers in a row with the case lost before a server is taken for one that lowercases.
const CASE_LOST_AFTER: u32 = 3;

/// One upstream server.
#[derive(Debug)]
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// DNS-over-TLS name, when configured.
    pub tls_name: Option<String>,
    /// The DoT connection, for a server with a `tls_name`.
    dot: Option<DotClient>,
    health: Mutex<Health>,
    /// Counters.
    pub stats: ServerStats,
    /// `CASE_*`: whether it keeps the question's case, so 0x20 is used and checked.
    case: AtomicU8,
    /// Answers in a row with the case lost while still `CASE_UNKNOWN`.
    case_lost_run: AtomicU32,
}

impl Server {
    fn is_up(&self, now: Instant) -> bool {
        let h = self.health.lock().unwrap_or_else(|e| e.into_inner());
        h.down_until.is_none_or(|t| now >= t)
    }

    fn record(&self, ok: bool, now: Instant) {
        let mut h = self.health.lock().unwrap_or_else(|e| e.into_inner());
        if ok {
            h.consecutive_failures = 0;
            h.down_until = None;
        } else {
            h.consecutive_failures += 1;
            if h.consecutive_failures >= FAILURES_BEFORE_DOWN {
                h.down_until = Some(now + DOWN_FOR);
            }
        }
    }

    /// Whether the server is currently considered healthy, for `/state`.
    pub fn healthy(&self) -> bool {
        self.is_up(Instant::now())
    }

    /// 0x20 with this server, for `/state`: `on` (it keeps case, answers are checked),
    /// `probing`, or `off` (it lowercases, so the case cannot be checked). DoT: `tls`.
    pub fn case_randomization(&self) -> &'static str {
        if self.dot.is_some() {
            return "tls";
        }
        match self.case.load(Ordering::Relaxed) {
            CASE_KEPT => "on",
            CASE_LOST => "off",
            _ => "probing",
        }
    }

    /// Whether a UDP answer (already the same question, any case) is to be taken, given the
    /// name as it was sent: learns whether the server keeps the case.
    fn accept_case(&self, answer: &[u8], sent: &[u8]) -> bool {
        // Only a name with an upper-case letter tells whether the case was kept.
        if !sent.iter().any(u8::is_ascii_uppercase) {
            return true;
        }
        if wire::question_spelled(answer, sent) {
            self.case.store(CASE_KEPT, Ordering::Relaxed);
            self.case_lost_run.store(0, Ordering::Relaxed);
            return true;
        }
        match self.case.load(Ordering::Relaxed) {
            CASE_KEPT => {
                self.stats.case_mismatched.fetch_add(1, Ordering::Relaxed);
                false
            }
            CASE_LOST => true,
            _ => {
                if self.case_lost_run.fetch_add(1, Ordering::Relaxed) + 1 >= CASE_LOST_AFTER {
                    tracing::info!(server = %self.addr, "upstream does not keep the case of questions: 0x20 off");
                    self.case.store(CASE_LOST, Ordering::Relaxed);
                }
                true
            }
        }
    }
}

/// The upstream servers, in order.
#[derive(Debug)]
pub struct Upstreams {
    servers: Vec<Server>,
    /// Recursion from the roots instead of the servers (`dns.recursion`).
    recursive: Option<crate::recursive::Recursive>,
}

/// A question to forward (lowercased wire name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Name.
    pub name: Vec<u8>,
    /// Type.
    pub qtype: u16,
    /// Class.
    pub qclass: u16,
    /// Ask for DNSSEC records (DO bit).
    pub dnssec_ok: bool,
    /// Ask the upstream not to validate (CD bit).
    pub checking_disabled: bool,
}

impl Upstreams {
    /// From the settings; `tls` is the client config for servers with a `tls_name` (such a
    /// server is left out, with an error logged, when it is `None` or the name is invalid).
    pub fn new(upstreams: &[Upstream], tls: Option<&Arc<ClientConfig>>) -> Self {
        let servers = upstreams
            .iter()
            .filter_map(|u| {
                let addr = SocketAddr::new(u.address, u.effective_port());
                let dot = match (&u.tls_name, tls) {
                    (None, _) => None,
                    (Some(name), Some(config)) => {
                        match DotClient::new(addr, name, Arc::clone(config)) {
                            Ok(c) => Some(c),
                            Err(e) => {
                                tracing::error!(server = %addr, error = %e, "upstream left out");
                                return None;
                            }
                        }
                    }
                    (Some(_), None) => {
                        tracing::error!(server = %addr, "no tls settings: upstream left out");
                        return None;
                    }
                };
                Some(Server {
                    addr,
                    tls_name: u.tls_name.clone(),
                    dot,
                    health: Mutex::new(Health::default()),
                    stats: ServerStats::default(),
                    case: AtomicU8::new(CASE_UNKNOWN),
                    case_lost_run: AtomicU32::new(0),
                })
            })
            .collect();
        Self {
            servers,
            recursive: None,
        }
    }

    /// Recursion from `roots` (the IANA root servers when empty) instead of forwarders.
    pub fn recursive(roots: &[IpAddr]) -> Result<Self, String> {
        Ok(Self {
            servers: Vec::new(),
            recursive: Some(crate::recursive::Recursive::new(roots)?),
        })
    }

    /// Whether answers come from recursion rather than forwarders.
    pub fn is_recursive(&self) -> bool {
        self.recursive.is_some()
    }

    /// The servers, for metrics and state.
    pub fn servers(&self) -> &[Server] {
        &self.servers
    }

    /// Asks the servers in order until one answers (or recurses); returns the raw answer.
    pub async fn resolve(&self, q: &Question) -> Result<Vec<u8>, UpstreamError> {
        if let Some(r) = &self.recursive {
            return r.resolve(q).await.map_err(UpstreamError::AllFailed);
        }
        let usable: Vec<&Server> = self.servers.iter().collect();
        if usable.is_empty() {
            return Err(UpstreamError::NoServers);
        }
        let now = Instant::now();
        let mut order: Vec<&Server> = usable.iter().copied().filter(|s| s.is_up(now)).collect();
        if order.is_empty() {
            order = usable;
        }
        let mut last = String::new();
        for server in order {
            server.stats.queries.fetch_add(1, Ordering::Relaxed);
            let start = Instant::now();
            match exchange(server, q).await {
                Ok(answer) => {
                    let us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                    server.stats.latency_us_sum.fetch_add(us, Ordering::Relaxed);
                    server.stats.answers.fetch_add(1, Ordering::Relaxed);
                    server.record(true, Instant::now());
                    return Ok(answer);
                }
                Err(e) => {
                    tracing::debug!(server = %server.addr, error = %e, "upstream failed");
                    server.stats.failures.fetch_add(1, Ordering::Relaxed);
                    server.record(false, Instant::now());
                    last = format!("{}: {e}", server.addr);
                }
            }
        }
        Err(UpstreamError::AllFailed(last))
    }
}

async fn exchange(server: &Server, q: &Question) -> Result<Vec<u8>, String> {
    let id: u16 = rand::random();
    // 0x20 over plain UDP/TCP, unless the server is known to lowercase; DoT needs none.
    let name = if server.dot.is_none() && server.case.load(Ordering::Relaxed) != CASE_LOST {
        wire::randomize_case(&q.name)
    } else {
        q.name.clone()
    };
    let mut query = wire::build_query_do(id, &name, q.qtype, q.qclass, q.dnssec_ok);
    if q.checking_disabled {
        query[3] |= 0x10;
    }
    if let Some(dot) = &server.dot {
        let (answer, id) = dot.exchange(&query, TCP_TIMEOUT).await?;
        if !wire::matches_query(&answer, id, &q.name, q.qtype, q.qclass) {
            server.stats.mismatched.fetch_add(1, Ordering::Relaxed);
            return Err("dot answer does not match the query".into());
        }
        check_answer(&answer)?;
        return Ok(answer);
    }
    let answer = udp_exchange(server, &query, id, q, &name).await?;
    let answer = if wire::is_truncated(&answer) {
        server.stats.tcp_fallbacks.fetch_add(1, Ordering::Relaxed);
        tcp_exchange(server.addr, &query, id, q).await?
    } else {
        answer
    };
    check_answer(&answer)?;
    Ok(answer)
}

/// SERVFAIL and REFUSED mean "ask someone else"; a message hickory cannot decode is not cached.
fn check_answer(answer: &[u8]) -> Result<(), String> {
    match wire::rcode_of(answer) {
        Some(wire::rcode::SERVFAIL) => return Err("SERVFAIL".into()),
        Some(wire::rcode::REFUSED) => return Err("REFUSED".into()),
        Some(wire::rcode::FORMERR) => return Err("FORMERR".into()),
        _ => {}
    }
    hickory_proto::op::Message::from_vec(answer)
        .map(|_| ())
        .map_err(|e| format!("malformed answer: {e}"))
}

async fn udp_exchange(
    server: &Server,
    query: &[u8],
    id: u16,
    q: &Question,
    sent_name: &[u8],
) -> Result<Vec<u8>, String> {
    let local = match server.addr.ip() {
        IpAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        IpAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    };
    let sock = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
    sock.connect(server.addr).await.map_err(|e| e.to_string())?;
    sock.send(query).await.map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + UDP_TIMEOUT;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let answer = &buf[..n];
        if wire::matches_query(answer, id, &q.name, q.qtype, q.qclass) {
            if server.accept_case(answer, sent_name) {
                return Ok(answer.to_vec());
            }
            // Right ID and name but not our case: a spoof; keep waiting for the real one.
            continue;
        }
        server.stats.mismatched.fetch_add(1, Ordering::Relaxed);
    }
}

async fn tcp_exchange(
    addr: SocketAddr,
    query: &[u8],
    id: u16,
    q: &Question,
) -> Result<Vec<u8>, String> {
    let work = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let len = u16::try_from(query.len()).map_err(|_| "query too long".to_owned())?;
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(query);
        stream.write_all(&framed).await.map_err(|e| e.to_string())?;
        let len = stream.read_u16().await.map_err(|e| e.to_string())?;
        let mut answer = vec![0u8; usize::from(len)];
        stream
            .read_exact(&mut answer)
            .await
            .map_err(|e| e.to_string())?;
        if !wire::matches_query(&answer, id, &q.name, q.qtype, q.qclass) {
            return Err("tcp answer does not match the query".to_owned());
        }
        Ok(answer)
    };
    tokio::time::timeout(TCP_TIMEOUT, work)
        .await
        .map_err(|_| "tcp timed out".to_owned())?
}
