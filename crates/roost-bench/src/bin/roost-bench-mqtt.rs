//! `roost-bench-mqtt`: an MQTT 3.1.1 load generator for `bench/mqtt`, on rumqttc's async client.
//!
//! `--pairs N` publisher/subscriber pairs: subscriber `i` subscribes to `bench/i` alone and
//! publisher `i` publishes there, so every message has exactly one receiver (no fan-out, no
//! fan-in). Every payload starts with the send time (nanoseconds since this process started,
//! little endian) and a sequence number, padded to `--size` bytes; the subscriber takes the
//! delivery latency from it (one process, one clock).
//!
//! Phases: all subscribers connect and get their SUBACK, all publishers get their CONNACK (the
//! first subscriber alone, so a broker that caches password checks does the slow hash once),
//! then every publisher sends for `--seconds` (as fast as the broker takes them, or at
//! `--rate` messages/s each), then `--drain` seconds for what is still queued, then the
//! process prints one JSON line with the results and exits. Loopback addresses only.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use bytes::{BufMut as _, BytesMut};
use clap::Parser;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Drive an MQTT broker on loopback with publisher/subscriber pairs and print one JSON line.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Broker address (loopback only).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Broker port.
    #[arg(long)]
    port: u16,
    /// User name for every client.
    #[arg(long)]
    user: Option<String>,
    /// Password for every client.
    #[arg(long, env = "ROOST_BENCH_PASSWORD")]
    password: Option<String>,
    /// Publisher/subscriber pairs, each on a topic of its own.
    #[arg(long, default_value_t = 100)]
    pairs: usize,
    /// QoS of publications and subscriptions (0 or 1).
    #[arg(long, default_value_t = 0)]
    qos: u8,
    /// Payload size in bytes (at least 16: timestamp and sequence number).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds after publishing stops in which late deliveries still count (not for msg/s).
    #[arg(long, default_value_t = 3)]
    drain: u64,
    /// Messages per second per publisher; 0 = as fast as the broker accepts them.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// QoS 1 messages a publisher keeps unacknowledged.
    #[arg(long, default_value_t = 32)]
    inflight: u16,
    /// Name printed in the result line.
    #[arg(long, default_value = "broker")]
    label: String,
}

/// Counters and the measurement window, shared by all clients.
struct Shared {
    base: Instant,
    /// Window start and end, in nanoseconds since `base` (`u64::MAX` until known).
    t0: AtomicU64,
    t1: AtomicU64,
    sent: AtomicU64,
    acked: AtomicU64,
    errors: AtomicU64,
}

impl Shared {
    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
    fn error(&self, who: &str, e: &rumqttc::ConnectionError) {
        let n = self.errors.fetch_add(1, Ordering::Relaxed);
        if n < 10 {
            eprintln!("roost-bench-mqtt: {who}: {e}");
        }
    }
}

/// What one subscriber saw.
#[derive(Default)]
struct SubResult {
    /// Latencies of the deliveries inside the window, in microseconds.
    latencies: Vec<u32>,
    in_window: u64,
    total: u64,
}

fn options(args: &Args, id: String) -> MqttOptions {
    let mut o = MqttOptions::new(id, args.host.to_string(), args.port);
    o.set_keep_alive(Duration::from_secs(60))
        .set_clean_session(true)
        .set_inflight(args.inflight)
        .set_max_packet_size(64 * 1024, 64 * 1024);
    if let (Some(u), Some(p)) = (&args.user, &args.password) {
        o.set_credentials(u.clone(), p.clone());
    }
    o
}

fn event_loop(mut el: EventLoop) -> EventLoop {
    let mut net = el.network_options();
    net.set_connection_timeout(60);
    el.set_network_options(net);
    el
}

fn subscriber(
    args: &Args,
    i: usize,
    qos: QoS,
    shared: Arc<Shared>,
    ready: mpsc::UnboundedSender<()>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<SubResult> {
    let (client, el) = AsyncClient::new(options(args, format!("bench-sub-{i}")), 16);
    let mut el = event_loop(el);
    tokio::spawn(async move {
        let mut r = SubResult::default();
        if client.subscribe(format!("bench/{i}"), qos).await.is_err() {
            return r;
        }
        loop {
            let ev = tokio::select! {
                ev = el.poll() => ev,
                _ = stop.changed() => break,
            };
            match ev {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ready.send(());
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let now = shared.now();
                    r.total += 1;
                    let sent = p
                        .payload
                        .get(..8)
                        .and_then(|b| <[u8; 8]>::try_from(b).ok())
                        .map_or(now, u64::from_le_bytes);
                    let (t0, t1) = (
                        shared.t0.load(Ordering::Relaxed),
                        shared.t1.load(Ordering::Relaxed),
                    );
                    if now >= t0 && now < t1 {
                        r.in_window += 1;
                        let us = now.saturating_sub(sent) / 1000;
                        r.latencies.push(u32::try_from(us).unwrap_or(u32::MAX));
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    shared.error(&format!("subscriber {i}"), &e);
                    // A clean session lost its subscription: this pair is out of the run.
                    break;
                }
            }
        }
        r
    })
}

fn publisher(
    args: &Args,
    i: usize,
    qos: QoS,
    shared: Arc<Shared>,
    ready: mpsc::UnboundedSender<()>,
    mut go: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) -> [JoinHandle<()>; 2] {
    let (client, el) = AsyncClient::new(options(args, format!("bench-pub-{i}")), 16);
    let mut el = event_loop(el);
    let sh = shared.clone();
    let mut stop2 = stop.clone();
    let events = tokio::spawn(async move {
        loop {
            let ev = tokio::select! {
                ev = el.poll() => ev,
                _ = stop2.changed() => break,
            };
            match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = ready.send(());
                }
                Ok(Event::Outgoing(Outgoing::Publish(_))) => {
                    sh.sent.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    sh.acked.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(e) => {
                    sh.error(&format!("publisher {i}"), &e);
                    break;
                }
            }
        }
    });
    let size = args.size;
    let period = (args.rate > 0).then(|| Duration::from_nanos(1_000_000_000 / args.rate));
    let topic = format!("bench/{i}");
    let sends = tokio::spawn(async move {
        if go.wait_for(|g| *g).await.is_err() {
            return;
        }
        let end = shared.t1.load(Ordering::Relaxed);
        let mut tick = period.map(|p| {
            let mut t = tokio::time::interval(p);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        let mut seq = 0u64;
        loop {
            if let Some(t) = tick.as_mut() {
                t.tick().await;
            }
            let now = shared.now();
            if now >= end {
                break;
            }
            let mut payload = BytesMut::with_capacity(size);
            payload.put_u64_le(now);
            payload.put_u64_le(seq);
            payload.resize(size, 0);
            seq += 1;
            tokio::select! {
                r = client.publish_bytes(topic.clone(), qos, false, payload.freeze()) => {
                    if r.is_err() { break; }
                }
                _ = stop.changed() => break,
            }
        }
    });
    [events, sends]
}

async fn wait_ready(
    rx: &mut mpsc::UnboundedReceiver<()>,
    n: usize,
    what: &str,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    for k in 0..n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(())) => {}
            _ => bail!("only {k} of {n} {what} ready within 120 s"),
        }
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.host.is_loopback(), "--host must be a loopback address");
    ensure!(args.size >= 16, "--size must be at least 16");
    ensure!(args.pairs > 0, "--pairs must be at least 1");
    let qos = match args.qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        q => bail!("--qos {q}: only 0 and 1"),
    };
    let shared = Arc::new(Shared {
        base: Instant::now(),
        t0: AtomicU64::new(u64::MAX),
        t1: AtomicU64::new(u64::MAX),
        sent: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let (stop_tx, stop) = watch::channel(false);
    let (go_tx, go) = watch::channel(false);
    let (ready_tx, mut ready) = mpsc::unbounded_channel();

    let mut subs = Vec::with_capacity(args.pairs);
    subs.push(subscriber(
        &args,
        0,
        qos,
        shared.clone(),
        ready_tx.clone(),
        stop.clone(),
    ));
    wait_ready(&mut ready, 1, "subscribers").await?;
    for i in 1..args.pairs {
        subs.push(subscriber(
            &args,
            i,
            qos,
            shared.clone(),
            ready_tx.clone(),
            stop.clone(),
        ));
    }
    wait_ready(&mut ready, args.pairs - 1, "subscribers").await?;
    let mut pubs = Vec::with_capacity(2 * args.pairs);
    for i in 0..args.pairs {
        let p = publisher(
            &args,
            i,
            qos,
            shared.clone(),
            ready_tx.clone(),
            go.clone(),
            stop.clone(),
        );
        pubs.extend(p);
    }
    wait_ready(&mut ready, args.pairs, "publishers").await?;
    eprintln!(
        "roost-bench-mqtt: {} pairs connected, publishing for {} s",
        args.pairs, args.seconds
    );

    let t0 = shared.now();
    let t1 = t0 + args.seconds * 1_000_000_000;
    shared.t0.store(t0, Ordering::Relaxed);
    shared.t1.store(t1, Ordering::Relaxed);
    go_tx.send(true).context("starting the publishers")?;
    tokio::time::sleep(Duration::from_secs(args.seconds + args.drain)).await;
    let _ = stop_tx.send(true);

    for p in pubs {
        let _ = p.await;
    }
    let mut latencies = Vec::new();
    let (mut in_window, mut total) = (0u64, 0u64);
    for s in subs {
        let r = s.await.context("a subscriber task failed")?;
        latencies.extend(r.latencies);
        in_window += r.in_window;
        total += r.total;
    }
    latencies.sort_unstable();
    let pct = |q: f64| -> u32 {
        if latencies.is_empty() {
            return 0;
        }
        let idx = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[idx]
    };
    let sent = shared.sent.load(Ordering::Relaxed);
    let line = serde_json::json!({
        "label": args.label,
        "qos": args.qos,
        "pairs": args.pairs,
        "size": args.size,
        "seconds": args.seconds,
        "rate_per_publisher": args.rate,
        "sent": sent,
        "acked": shared.acked.load(Ordering::Relaxed),
        "delivered": total,
        "delivered_in_window": in_window,
        "lost": sent.saturating_sub(total),
        "msg_per_s": in_window as f64 / args.seconds as f64,
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
        "p999_us": pct(0.999),
        "max_us": latencies.last().copied().unwrap_or(0),
        "client_errors": shared.errors.load(Ordering::Relaxed),
    });
    println!("{line}");
    Ok(())
}
