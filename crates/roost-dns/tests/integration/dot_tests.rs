//! DNS-over-TLS upstreams: a TLS front end in the test (tokio-rustls, a certificate from a CA
//! rcgen makes here) that forwards each connection to the test's knot over TCP. Debian's knot
//! 3.2 has no DoT listener, and this keeps every peer on loopback.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use roost_config::settings::Upstream;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::{Knot, RoostDns, loopback_view};

const NAME: &str = "dns.test.example";

/// A TLS-terminating proxy to `upstream`'s TCP port; counts the connections it accepted.
struct TlsFront {
    addr: SocketAddr,
    connections: Arc<AtomicU64>,
    ca_pem: String,
    _runtime: tokio::runtime::Runtime,
}

impl TlsFront {
    fn start(upstream: SocketAddr) -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "roost test ca");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![NAME.to_owned()]).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&connections);
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    // A failed handshake (the client refused our name) is not a connection.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                    let Ok(mut back) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut back).await;
                });
            }
        });
        Self {
            addr,
            connections,
            ca_pem: ca.pem(),
            _runtime: runtime,
        }
    }

    fn write_ca(&self, dir: &Path) -> std::path::PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.ca_pem).unwrap();
        path
    }
}

fn dot(addr: SocketAddr, name: &str) -> Upstream {
    Upstream {
        address: addr.ip(),
        port: Some(addr.port()),
        tls_name: Some(name.to_owned()),
    }
}

#[test]
fn dot_upstream_answers_over_one_reused_tls_connection() {
    let knot = Knot::start();
    let front = TlsFront::start(knot.addr);
    let dns = RoostDns::start_with(|dir| {
        let mut v = loopback_view(dir, None);
        v.dns.upstreams = vec![dot(front.addr, NAME)];
        v.dns.tls_ca_file = Some(front.write_ca(dir));
        v
    });
    assert_eq!(
        dns.dig(&["+short", "www.example.test"]).trim(),
        "192.0.2.10"
    );
    assert_eq!(
        dns.dig(&["+short", "mail.example.test"]).trim(),
        "192.0.2.12"
    );
    // The 100-record answer that needs TCP fallback over UDP comes whole over TLS.
    assert_eq!(
        dns.dig(&["+short", "big.example.test"]).lines().count(),
        100
    );
    assert_eq!(dns.metric("roost_dns_upstream_queries_total"), 3);
    assert_eq!(dns.metric("roost_dns_upstream_failures_total"), 0);
    assert_eq!(
        front.connections.load(Ordering::SeqCst),
        1,
        "the connection was not reused"
    );
}

#[test]
fn dot_upstream_with_a_wrong_tls_name_fails_and_the_next_server_answers() {
    let knot = Knot::start();
    let front = TlsFront::start(knot.addr);
    // Only the wrongly named DoT server: nothing answers.
    let alone = RoostDns::start_with(|dir| {
        let mut v = loopback_view(dir, None);
        v.dns.upstreams = vec![dot(front.addr, "other.test.example")];
        v.dns.tls_ca_file = Some(front.write_ca(dir));
        v
    });
    let out = alone.dig(&["www.example.test"]);
    assert!(out.contains("status: SERVFAIL"), "{out}");
    assert!(alone.metric("roost_dns_upstream_failures_total") >= 1);
    assert!(
        alone.log_text().contains("tls handshake"),
        "{}",
        alone.log_text()
    );
    assert_eq!(front.connections.load(Ordering::SeqCst), 0);
    // Without the test CA, the right name fails too (the system roots do not know it).
    let untrusted = RoostDns::start_with(|dir| {
        let mut v = loopback_view(dir, None);
        v.dns.upstreams = vec![dot(front.addr, NAME)];
        v
    });
    let out = untrusted.dig(&["www.example.test"]);
    assert!(out.contains("status: SERVFAIL"), "{out}");
    // First the wrongly named server, then plain DNS: the fallback answers.
    let fallback = RoostDns::start_with(|dir| {
        let mut v = loopback_view(dir, Some(knot.addr));
        v.dns
            .upstreams
            .insert(0, dot(front.addr, "other.test.example"));
        v.dns.tls_ca_file = Some(front.write_ca(dir));
        v
    });
    assert_eq!(
        fallback.dig(&["+short", "www.example.test"]).trim(),
        "192.0.2.10"
    );
    let (_, state) = fallback.http("GET", "/state", "");
    assert!(state.contains("\"failures\":1"), "{state}");
}
