use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use roost_control::{Limits, Token, router};
use tower::ServiceExt;

use crate::{Fake, TOKEN};

fn app(fake: Arc<Fake>) -> axum::Router {
    router(fake, Token::new(TOKEN).unwrap(), Limits::default())
}

fn req(method: Method, path: &str, token: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(body.into()).unwrap()
}

async fn call(app: axum::Router, r: Request<Body>) -> (StatusCode, String) {
    let resp = app.oneshot(r).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn every_route_refuses_a_missing_token() {
    let fake = Arc::new(Fake::default());
    for (m, p) in [
        (Method::GET, "/health"),
        (Method::GET, "/metrics"),
        (Method::GET, "/state"),
        (Method::PUT, "/config"),
    ] {
        let (status, _) = call(app(fake.clone()), req(m, p, None, "x")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{p}");
    }
    assert_eq!(
        *fake.config.lock().unwrap(),
        "",
        "unauthorised PUT changed the config"
    );
}

#[tokio::test]
async fn wrong_or_prefixed_token_is_refused() {
    let fake = Arc::new(Fake::default());
    for t in [
        "wrong",
        "test-token-012345678",
        "test-token-01234567890",
        "",
    ] {
        let (status, _) = call(app(fake.clone()), req(Method::GET, "/health", Some(t), "")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "token {t:?}");
    }
    // Another scheme with the right secret is refused too.
    let r = Request::get("/health")
        .header(header::AUTHORIZATION, format!("Basic {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(app(fake), r).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn health_answers_ok_or_503_with_the_reason() {
    let fake = Arc::new(Fake::default());
    let (status, body) = call(
        app(fake.clone()),
        req(Method::GET, "/health", Some(TOKEN), ""),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));
    *fake.unhealthy.lock().unwrap() = Some("wan down".to_owned());
    let (status, body) = call(app(fake), req(Method::GET, "/health", Some(TOKEN), "")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("wan down"));
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let resp = app(Arc::new(Fake::default()))
        .oneshot(req(Method::GET, "/metrics", Some(TOKEN), ""))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        roost_control::METRICS_CONTENT_TYPE
    );
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("fake_up 1"));
}

#[tokio::test]
async fn put_config_applies_and_state_shows_it() {
    let fake = Arc::new(Fake::default());
    let (status, _) = call(
        app(fake.clone()),
        req(Method::PUT, "/config", Some(TOKEN), "v2"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(app(fake), req(Method::GET, "/state", Some(TOKEN), "")).await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["config"], "v2");
}

#[tokio::test]
async fn rejected_config_answers_4xx_with_the_error_and_keeps_the_old_one() {
    let fake = Arc::new(Fake::default());
    call(
        app(fake.clone()),
        req(Method::PUT, "/config", Some(TOKEN), "v1"),
    )
    .await;
    let (status, body) = call(
        app(fake.clone()),
        req(Method::PUT, "/config", Some(TOKEN), "bad"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("line 1"), "{body}");
    let (status, body) = call(
        app(fake.clone()),
        req(Method::PUT, "/config", Some(TOKEN), "unappliable"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("device busy"), "{body}");
    assert_eq!(*fake.config.lock().unwrap(), "v1");
}

#[tokio::test]
async fn oversized_body_is_refused_without_reaching_the_daemon() {
    let fake = Arc::new(Fake::default());
    let limits = Limits {
        body_bytes: 16,
        ..Limits::default()
    };
    let app = router(fake.clone(), Token::new(TOKEN).unwrap(), limits);
    let (status, _) = call(
        app,
        req(Method::PUT, "/config", Some(TOKEN), "x".repeat(17)),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(*fake.config.lock().unwrap(), "");
}

#[tokio::test]
async fn non_utf8_config_is_invalid() {
    let fake = Arc::new(Fake::default());
    let (status, _) = call(
        app(fake),
        req(Method::PUT, "/config", Some(TOKEN), vec![0xffu8, 0xfe]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// A daemon whose state never answers, to show the timeout.
struct Stuck;

impl roost_control::Daemon for Stuck {
    async fn health(&self) -> Result<(), String> {
        Ok(())
    }
    async fn metrics(&self) -> String {
        String::new()
    }
    async fn state(&self) -> serde_json::Value {
        std::future::pending().await
    }
    async fn put_config(&self, _: String) -> Result<(), roost_control::ConfigRejected> {
        Ok(())
    }
}

#[tokio::test]
async fn slow_request_times_out_with_408() {
    let limits = Limits {
        timeout: Duration::from_millis(50),
        ..Limits::default()
    };
    let app = router(Arc::new(Stuck), Token::new(TOKEN).unwrap(), limits);
    let (status, _) = call(app, req(Method::GET, "/state", Some(TOKEN), "")).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
}

#[tokio::test]
async fn health_reports_the_digest_of_the_last_applied_config_only() {
    use roost_control::{CONFIG_DIGEST_HEADER, config_digest};
    let app = app(Arc::new(Fake::default()));
    let digest = |app: axum::Router| async move {
        let resp = app
            .oneshot(req(Method::GET, "/health", Some(TOKEN), ""))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.headers()
            .get(CONFIG_DIGEST_HEADER)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    // Started from its file: nothing pushed yet, so no digest.
    assert_eq!(digest(app.clone()).await, None);
    let (status, _) = call(app.clone(), req(Method::PUT, "/config", Some(TOKEN), "v2")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(digest(app.clone()).await, Some(config_digest("v2")));
    // A refused view leaves the digest of the one still active.
    let (status, _) = call(app.clone(), req(Method::PUT, "/config", Some(TOKEN), "bad")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(digest(app).await, Some(config_digest("v2")));
}
