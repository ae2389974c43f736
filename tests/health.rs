//! `GET /health`: authenticated, version and dependency checks, bounded in time.

use std::time::{Duration, Instant};

use parley::handlers::health::HealthHandler;
use parley::store::Store;
use parley_e2e::*;
use serde_json::Value;

#[tokio::test]
async fn health_reports_version_and_reachable_dependencies() {
    let stack = stack().await;
    let reply = stack.get("/health", Some(&stack.api_key)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let json = reply.json();
    assert_eq!(json["ok"], true);
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["checks"]["store"]["ok"], true);
    assert_eq!(json["checks"]["secrets"]["ok"], true);
    for secret in [&stack.api_key, &stack.token, &stack.previous_token] {
        assert!(!reply.body.contains(secret.as_str()), "reveals no secrets");
    }
}

#[tokio::test]
async fn health_requires_an_api_key() {
    let stack = stack().await;
    for key in [None, Some("wrong-key"), Some("")] {
        let reply = stack.get("/health", key).await;
        assert_eq!(reply.status, 401, "{key:?}");
        assert_eq!(reply.json()["error"]["code"], "unauthorized");
    }
}

#[tokio::test]
async fn unknown_routes_are_a_json_404() {
    let stack = stack().await;
    let reply = stack.get("/nope", Some(&stack.api_key)).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"]["code"], "not_found");
}

async fn handler_with_store_at(stack: &Stack, endpoint: &str) -> HealthHandler {
    let (secret_id, secrets) = stack.own_secrets("t", None).await;
    // Built like `HealthHandler::from_env` builds its probe clients.
    let sdk = parley::aws::probe(&parley::aws::builder().endpoint_url(endpoint).build());
    HealthHandler::new(
        Store::new(aws_sdk_dynamodb::Client::new(&sdk), "any"),
        secrets,
        aws_sdk_secretsmanager::Client::new(&stack.sdk),
        secret_id,
    )
}

async fn call(handler: &HealthHandler) -> (u16, Value, Duration) {
    let req = lambda_http::request::from_str(include_str!("../events/health.json")).unwrap();
    let started = Instant::now();
    let (parts, body) = parley_local::apigw::response_parts(handler.handle(req).await);
    (
        parts.status.as_u16(),
        serde_json::from_slice(&body).unwrap(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn the_sample_event_is_answered_and_a_dead_store_is_a_503() {
    let stack = stack().await;
    let healthy = HealthHandler::new(
        stack.store.clone(),
        stack.own_secrets("t", None).await.1,
        aws_sdk_secretsmanager::Client::new(&stack.sdk),
        stack.env.get("SECRET_ID").unwrap().to_owned(),
    );
    let (status, json, _) = call(&healthy).await;
    assert_eq!(
        (status, json["ok"].clone()),
        (200, Value::Bool(true)),
        "{json}"
    );

    let dead = handler_with_store_at(&stack, "http://127.0.0.1:9").await;
    let (status, json, _) = call(&dead).await;
    assert_eq!(status, 503);
    assert_eq!(json["ok"], false);
    assert_eq!(json["checks"]["store"]["error"], "unreachable");
    assert_eq!(json["checks"]["secrets"]["ok"], true);
}

#[tokio::test]
async fn a_hanging_store_is_cut_off_by_the_probe_timeout() {
    let stack = stack().await;
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let handler = handler_with_store_at(&stack, &format!("http://127.0.0.1:{port}")).await;
    let (status, json, elapsed) = call(&handler).await;
    assert_eq!(status, 503);
    assert_eq!(json["checks"]["store"]["error"], "timeout");
    assert!(
        elapsed < parley::handlers::health::PROBE_TIMEOUT + Duration::from_millis(500),
        "answered after {elapsed:?}, not bounded by the probe timeout"
    );
}
