//! API keys with scopes, destination countries and quotas, on the running stack (created with
//! the dev bootstrap key through `POST /keys`), and revocation within the TTL in process.

use std::sync::Arc;
use std::time::Duration;

use lambda_http::{Body, Request, RequestExt};
use parley::access::NewKey;
use parley::handlers::conversations::ConversationsHandler;
use parley::secrets::SecretStore;
use parley::time::Timestamp;
use parley_e2e::*;
use serde_json::{json, Value};

/// A key made through the API with the dev (bootstrap) key: its id and token.
async fn create_key(stack: &Stack, spec: Value) -> (String, String) {
    let reply = call(stack, "POST", "/keys", Some(&stack.api_key), Some(&spec)).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let json = reply.json();
    assert!(
        json["key"].get("secret_sha256").is_none(),
        "the digest is never shown"
    );
    let token = json["token"].as_str().unwrap().to_owned();
    (json["key"]["key_id"].as_str().unwrap().to_owned(), token)
}

async fn call(
    stack: &Stack,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> Reply {
    let mut req = stack
        .http
        .request(method.parse().unwrap(), format!("{}{path}", stack.gateway));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    read(req.send().await.expect("gateway reachable")).await
}

async fn send_with(stack: &Stack, key: &str, to: &str, idempotency_key: Option<&str>) -> Reply {
    let mut req = stack
        .http
        .post(format!("{}/sms/send", stack.gateway))
        .bearer_auth(key)
        .json(&json!({"to": to, "body": unique_body("Your rent receipt is ready")}));
    if let Some(k) = idempotency_key {
        req = req.header("idempotency-key", k);
    }
    read(req.send().await.unwrap()).await
}

fn error_code(reply: &Reply) -> String {
    reply.json()["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_send_only_key_sends_and_is_refused_reads_and_key_management() {
    let stack = stack().await;
    let (_, token) = create_key(&stack, json!({"name": "collections", "scopes": ["send"]})).await;
    let to = unique_phone();

    let sent = send_with(&stack, &token, &to, None).await;
    assert_eq!(sent.status, 202, "{}", sent.body);

    let read_attempt = call(
        &stack,
        "GET",
        &format!("/conversations/{}", encode(&to)),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(read_attempt.status, 403);
    assert_eq!(error_code(&read_attempt), "insufficient_scope");
    let keys = call(&stack, "GET", "/keys", Some(&token), None).await;
    assert_eq!(keys.status, 403);

    // The bootstrap key reads what the send-only key sent.
    let thread = call(
        &stack,
        "GET",
        &format!("/conversations/{}", encode(&to)),
        Some(&stack.api_key),
        None,
    )
    .await;
    assert_eq!(thread.status, 200);
}

#[tokio::test]
async fn a_read_only_key_reads_and_cannot_send() {
    let stack = stack().await;
    let (_, token) = create_key(&stack, json!({"name": "dashboard", "scopes": ["read"]})).await;
    let sent = send_with(&stack, &token, &unique_phone(), None).await;
    assert_eq!(sent.status, 403);
    assert_eq!(error_code(&sent), "insufficient_scope");
    let summary = call(&stack, "GET", "/queue/summary", Some(&token), None).await;
    assert_eq!(summary.status, 200, "{}", summary.body);
}

#[tokio::test]
async fn unknown_malformed_and_revoked_keys_are_401() {
    let stack = stack().await;
    let (id, token) = create_key(&stack, json!({"name": "temp", "scopes": ["read"]})).await;
    let wrong_secret = format!("prly_{id}_{}", "0".repeat(64));
    let unknown_id = format!(
        "prly_{}_{}",
        ulid::Ulid::new().to_string().to_lowercase(),
        "0".repeat(64)
    );
    for key in [
        wrong_secret.as_str(),
        unknown_id.as_str(),
        "prly_nonsense",
        "not-a-key",
    ] {
        let reply = call(&stack, "GET", "/queue/summary", Some(key), None).await;
        assert_eq!(reply.status, 401, "{key}");
    }

    let revoked = call(
        &stack,
        "DELETE",
        &format!("/keys/{id}"),
        Some(&stack.api_key),
        None,
    )
    .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert!(revoked.json()["key"]["revoked_at"].is_string());
    let listed = call(&stack, "GET", "/keys", Some(&stack.api_key), None).await;
    let entry = listed.json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == id.as_str())
        .cloned()
        .expect("a revoked key stays listed, for audit");
    assert!(entry["revoked_at"].is_string());
    let again = call(
        &stack,
        "DELETE",
        &format!("/keys/{id}"),
        Some(&stack.api_key),
        None,
    )
    .await;
    assert_eq!(again.status, 200, "revoking twice is fine");
    let missing = call(
        &stack,
        "DELETE",
        "/keys/01jaaaaaaaaaaaaaaaaaaaaaaa",
        Some(&stack.api_key),
        None,
    )
    .await;
    assert_eq!(missing.status, 404);
    let _ = token;
}

#[tokio::test]
async fn an_invalid_key_request_names_every_bad_field() {
    let stack = stack().await;
    let reply = call(
        &stack,
        "POST",
        "/keys",
        Some(&stack.api_key),
        Some(&json!({"name": "", "scopes": ["everything"], "countries": ["USA"]})),
    )
    .await;
    assert_eq!(reply.status, 400);
    let fields = reply.json()["error"]["fields"].clone();
    for field in ["name", "scopes", "countries"] {
        assert!(fields.get(field).is_some(), "{field}: {fields}");
    }
    let unknown = call(
        &stack,
        "POST",
        "/keys",
        Some(&stack.api_key),
        Some(&json!({"name": "x", "scopes": ["send"], "admin": true})),
    )
    .await;
    assert_eq!(unknown.status, 400);
}

#[tokio::test]
async fn a_key_sends_only_to_its_countries() {
    let stack = stack().await;
    let (_, token) = create_key(
        &stack,
        json!({"name": "canada-only", "scopes": ["send"], "countries": ["CA"]}),
    )
    .await;
    let us = send_with(&stack, &token, &unique_phone(), None).await;
    assert_eq!(us.status, 403);
    assert_eq!(error_code(&us), "destination_not_allowed");

    let n = ulid::Ulid::new().random() % 10_000;
    let canadian = format!("+1604253{n:04}");
    record_sensitive("phone", &canadian);
    let ca = send_with(&stack, &token, &canadian, None).await;
    assert_eq!(ca.status, 202, "{}", ca.body);
}

#[tokio::test]
async fn past_its_requests_per_second_a_key_gets_429_with_retry_after() {
    let stack = stack().await;
    let (_, token) = create_key(
        &stack,
        json!({"name": "slow", "scopes": ["read"], "quotas": {"requests_per_second": 2}}),
    )
    .await;
    // Six at once land in at most two seconds' windows: at most four can pass.
    let replies = futures::future::join_all(
        (0..6).map(|_| call(&stack, "GET", "/queue/summary", Some(&token), None)),
    )
    .await;
    let limited: Vec<_> = replies.iter().filter(|r| r.status == 429).collect();
    assert!(
        limited.len() >= 2,
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(replies.iter().all(|r| r.status == 200 || r.status == 429));
    for r in limited {
        assert_eq!(error_code(r), "rate_limited");
        assert_eq!(r.headers.get("retry-after").unwrap(), "1");
    }
}

#[tokio::test]
async fn past_its_messages_per_day_a_key_gets_429_until_tomorrow() {
    let stack = stack().await;
    let (_, token) = create_key(
        &stack,
        json!({"name": "daily", "scopes": ["send"], "quotas": {"messages_per_day": 1}}),
    )
    .await;
    assert_eq!(
        send_with(&stack, &token, &unique_phone(), None)
            .await
            .status,
        202
    );
    let over = send_with(&stack, &token, &unique_phone(), None).await;
    assert_eq!(over.status, 429);
    assert_eq!(error_code(&over), "daily_quota_exceeded");
    let retry: u64 = over.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
}

#[tokio::test]
async fn two_callers_idempotency_keys_do_not_collide() {
    let stack = stack().await;
    let (_, a) = create_key(&stack, json!({"name": "a", "scopes": ["send"]})).await;
    let (_, b) = create_key(&stack, json!({"name": "b", "scopes": ["send"]})).await;
    let shared_key = format!("order-{}", ulid::Ulid::new());
    let first = send_with(&stack, &a, &unique_phone(), Some(&shared_key)).await;
    let second = send_with(&stack, &b, &unique_phone(), Some(&shared_key)).await;
    assert_eq!(first.status, 202, "{}", first.body);
    assert_eq!(
        second.status, 202,
        "another caller's key is another request: {}",
        second.body
    );
    assert_ne!(first.json()["message_id"], second.json()["message_id"]);
    // The same caller replaying gets its own first answer.
    let replay = send_with(&stack, &a, &unique_phone(), Some(&shared_key)).await;
    assert_eq!(replay.status, 422, "same key, other body: {}", replay.body);
}

#[tokio::test]
async fn every_api_call_leaves_one_access_line_with_the_key_id_and_route() {
    let stack = stack().await;
    let (id, token) = create_key(&stack, json!({"name": "logged", "scopes": ["read"]})).await;
    assert_eq!(
        call(&stack, "GET", "/queue", Some(&token), None)
            .await
            .status,
        200
    );
    let Some(dir) = std::env::var_os("PARLEY_E2E_LOG_DIR") else {
        panic!("run through infra/scripts/test.sh, which captures the stack's log");
    };
    let log = std::path::Path::new(&dir).join("stack.log");
    let line = eventually(5, "the access line", || {
        let log = log.clone();
        let id = id.clone();
        async move {
            std::fs::read_to_string(&log)
                .ok()?
                .lines()
                .find(|l| l.contains("\"api call\"") && l.contains(&id) && l.contains("GET /queue"))
                .map(str::to_owned)
        }
    })
    .await;
    let json: Value = serde_json::from_str(&line).unwrap();
    let fields = &json["fields"];
    assert_eq!(fields["status"], 200, "{line}");
    assert!(fields["latency_ms"].is_number(), "{line}");
    assert!(!line.contains(&token), "never the key itself");
}

#[tokio::test]
async fn a_revoked_key_is_refused_once_the_ttl_has_passed() {
    let stack = stack().await;
    let store = stack.own_table("revoke").await;
    let id = format!("test/access/{}", ulid::Ulid::new());
    stack.put_secret(&id, &stack.token, None).await;
    let secrets = SecretStore::load_with_ttl(
        aws_sdk_secretsmanager::Client::new(&stack.sdk),
        id,
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    let handler = ConversationsHandler::new(store.clone(), Arc::new(secrets));
    let new: NewKey =
        serde_json::from_value(json!({"name": "leaked", "scopes": ["read"]})).unwrap();
    let (key, token) = new.validate(Timestamp::now()).unwrap();
    store.put_api_key(&key).await.unwrap();

    let summary = || {
        let mut req = Request::new(Body::Empty).with_raw_http_path("/queue/summary");
        *req.uri_mut() = "/queue/summary".parse().unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        req
    };
    assert_eq!(handler.handle(summary()).await.status(), 200);
    store
        .revoke_api_key(&key.key_id, Timestamp::now())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        handler.handle(summary()).await.status(),
        401,
        "refused within the TTL"
    );
}

#[tokio::test]
async fn the_local_stack_seeds_a_send_only_and_a_read_only_dev_key() {
    let stack = stack().await;
    let send_key = stack.env.get("LOCAL_SEND_API_KEY").unwrap().to_owned();
    let read_key = stack.env.get("LOCAL_READ_API_KEY").unwrap().to_owned();
    assert_eq!(
        send_with(&stack, &send_key, &unique_phone(), None)
            .await
            .status,
        202
    );
    assert_eq!(
        call(&stack, "GET", "/queue/summary", Some(&send_key), None)
            .await
            .status,
        403
    );
    assert_eq!(
        call(&stack, "GET", "/queue/summary", Some(&read_key), None)
            .await
            .status,
        200
    );
    assert_eq!(
        send_with(&stack, &read_key, &unique_phone(), None)
            .await
            .status,
        403
    );
}
