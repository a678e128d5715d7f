//! The TLS server on a real socket.

use std::sync::Arc;

use crate::{World, example};

#[tokio::test]
async fn serves_the_ui_over_tls_with_the_client_address_and_stops_on_request() {
    let w = World::new(example()).await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) =
        roost_web::tls::certificate_files(&w.app.controller.current(), dir.path()).unwrap();
    let acceptor = roost_web::tls::acceptor(&cert, &key).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(roost_web::server::serve(
        listener,
        Some(acceptor),
        roost_web::app::app(Arc::clone(&w.app)),
        stop,
    ));

    let pem = std::fs::read(&cert).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .resolve("roost", addr)
        .build()
        .unwrap();
    // The self-signed certificate names the router; the client is on loopback, which is in no
    // zone, so the gate refuses it: proof the address reached the gate.
    let r = client
        .get(format!("https://roost:{}/setup", addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::FORBIDDEN);
    assert!(r.headers().contains_key("content-security-policy"));
    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::get(format!("http://{addr}/")).await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());

    stop_tx.send(true).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
