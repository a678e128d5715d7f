use std::sync::Arc;

use roost_control::{Limits, Token, bind, router, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{Fake, TOKEN};

async fn http(addr: std::net::SocketAddr, request: String) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn real_server_on_port_0_serves_and_shuts_down_gracefully() {
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(
        Arc::new(Fake::default()),
        Token::new(TOKEN).unwrap(),
        Limits::default(),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, app, async {
        let _ = stop_rx.await;
    }));

    let body = "v3";
    let put = http(
        addr,
        format!(
            "PUT /config HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(put.starts_with("HTTP/1.1 200"), "{put}");
    let state = http(
        addr,
        format!("GET /state HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(state.contains(r#""config":"v3""#), "{state}");
    let denied = http(
        addr,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_owned(),
    )
    .await;
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");

    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still listening after shutdown"
    );
}

#[tokio::test]
async fn token_file_is_read_and_missing_file_is_an_error() {
    let dir = std::env::temp_dir().join(format!("roost-control-t-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("firewall");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    let t = Token::load(&path).unwrap();
    assert!(t.matches(TOKEN.as_bytes()));
    std::fs::write(&path, "\n").unwrap();
    assert!(matches!(
        Token::load(&path),
        Err(roost_control::ControlError::TokenEmpty { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
    let err = Token::load(&path).unwrap_err();
    assert!(err.to_string().contains("cannot read token file"), "{err}");
}
