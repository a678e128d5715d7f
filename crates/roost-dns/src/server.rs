//! The IO edge: the UDP loop (cache hits answered inline, misses spawned), the TCP listener
//! (bounded connections, idle timeout, pipelined queries answered as they complete).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Semaphore, mpsc};

use crate::resolver::{Resolver, Step, Transport};

/// TCP connections served at once; more are closed at accept.
pub const MAX_TCP_CONNECTIONS: usize = 256;
/// Queries of one TCP connection answered at once (pipelining); more wait.
pub const MAX_TCP_PIPELINE: usize = 32;
/// A TCP connection with no query for this long is closed (RFC 7766 §6.2.3 suggests seconds).
pub const TCP_IDLE: Duration = Duration::from_secs(10);
/// Largest UDP datagram read; longer ones are cut and then fail to parse.
const UDP_BUFFER: usize = 4096;

/// Serves DNS over UDP on `sock` forever.
pub async fn serve_udp(resolver: Arc<Resolver>, sock: Arc<UdpSocket>) {
    let mut buf = vec![0u8; UDP_BUFFER];
    loop {
        let (n, src) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors from earlier sends surface here on some systems; keep serving.
                tracing::debug!(error = %e, "udp receive failed");
                continue;
            }
        };
        let packet = &buf[..n];
        match resolver.decide(packet, src.ip(), Transport::Udp, Instant::now()) {
            Step::Reply(out) => send(&resolver, &sock, &out, src).await,
            Step::ReplyAndPrefetch(out, q) => {
                send(&resolver, &sock, &out, src).await;
                resolver.prefetch(&q);
            }
            Step::Drop => {}
            Step::Resolve(q) => {
                let resolver = Arc::clone(&resolver);
                let sock = Arc::clone(&sock);
                let packet = packet.to_vec();
                tokio::spawn(async move {
                    let out = resolver.resolve(q, &packet, Transport::Udp).await;
                    send(&resolver, &sock, &out, src).await;
                });
            }
        }
    }
}

async fn send(resolver: &Resolver, sock: &UdpSocket, out: &[u8], to: SocketAddr) {
    if let Err(e) = sock.send_to(out, to).await {
        resolver.metrics.send_errors.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(error = %e, %to, "udp send failed");
    }
}

/// Serves DNS over TCP on `listener` forever.
pub async fn serve_tcp(resolver: Arc<Resolver>, listener: TcpListener) {
    let connections = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            resolver.metrics.tcp_refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let resolver = Arc::clone(&resolver);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = connection(resolver, stream, peer).await {
                tracing::debug!(error = %e, %peer, "tcp connection ended");
            }
        });
    }
}

async fn connection(
    resolver: Arc<Resolver>,
    stream: TcpStream,
    peer: SocketAddr,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(MAX_TCP_PIPELINE);
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            let Ok(len) = u16::try_from(out.len()) else {
                continue;
            };
            let mut framed = Vec::with_capacity(out.len() + 2);
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(&out);
            if wr.write_all(&framed).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let pipeline = Arc::new(Semaphore::new(MAX_TCP_PIPELINE));
    loop {
        let len = match tokio::time::timeout(TCP_IDLE, rd.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            Ok(Err(_)) | Err(_) => break,
        };
        let mut packet = vec![0u8; len];
        match tokio::time::timeout(TCP_IDLE, rd.read_exact(&mut packet)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => break,
        }
        match resolver.decide(&packet, peer.ip(), Transport::Tcp, Instant::now()) {
            Step::Reply(out) => {
                if tx.send(out).await.is_err() {
                    break;
                }
            }
            Step::ReplyAndPrefetch(out, q) => {
                resolver.prefetch(&q);
                if tx.send(out).await.is_err() {
                    break;
                }
            }
            Step::Drop => {}
            Step::Resolve(q) => {
                let Ok(permit) = Arc::clone(&pipeline).acquire_owned().await else {
                    break;
                };
                let resolver = Arc::clone(&resolver);
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let out = resolver.resolve(q, &packet, Transport::Tcp).await;
                    let _ = tx.send(out).await;
                });
            }
        }
    }
    drop(tx);
    let _ = writer.await;
    Ok(())
}
