//! Fault injection: server_error, slow and down, global and scoped to one phone string.

use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn server_error_answers_500_count_times_then_recovers() {
    let monitor = Monitor::start().await;
    let (status, fault) = monitor
        .control_post("faults", json!({"kind": "server_error", "count": 2}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{fault}");
    assert_eq!(fault["count"], 2);
    for _ in 0..2 {
        let (status, body) = monitor.lookup("+14155550101").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, json!({"error": "internal_error"}));
    }
    assert_eq!(monitor.lookup("+14155550101").await.0, StatusCode::OK);
    let lookups = monitor.control_get("lookups").await;
    let faults: Vec<_> = lookups["lookups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["status"].clone(), l["fault"].clone()))
        .collect();
    assert_eq!(
        faults,
        [
            (json!(500), json!("server_error")),
            (json!(500), json!("server_error")),
            (json!(200), json!(null)),
        ]
    );
    assert_eq!(monitor.control_get("faults").await, json!({"faults": []}));
}

#[tokio::test]
async fn server_error_on_a_profile_update_applies_nothing() {
    let monitor = Monitor::start().await;
    monitor
        .control_post("faults", json!({"kind": "server_error"}))
        .await;
    let (status, _) = monitor
        .update_profile("t-1002", json!({"preferred_language": "es"}))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (_, tenant) = monitor.api_get("/tenants/t-1002").await;
    assert_eq!(tenant["tenant"]["preferred_language"], json!(null));
    let updates = monitor.updates_for("t-1002").await;
    assert_eq!(updates[0]["status"], 500);
    assert_eq!(updates[0]["fault"], "server_error");
    let (status, _) = monitor
        .update_profile("t-1002", json!({"preferred_language": "es"}))
        .await;
    assert_eq!(status, StatusCode::OK, "count defaults to 1");
}

#[tokio::test]
async fn slow_answers_after_the_delay_but_has_already_applied() {
    let monitor = Monitor::start().await;
    monitor
        .control_post("faults", json!({"kind": "slow", "delay_ms": 400}))
        .await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let outcome = impatient
        .put(monitor.url("/tenants/t-1004/profile"))
        .bearer_auth(API_KEY)
        .json(&json!({"preferred_language": "pt"}))
        .send()
        .await;
    assert!(outcome.unwrap_err().is_timeout());
    let (_, tenant) = monitor.api_get("/tenants/t-1004").await;
    assert_eq!(
        tenant["tenant"]["preferred_language"], "pt",
        "handled on arrival"
    );
    let updates = monitor.updates_for("t-1004").await;
    assert_eq!(updates[0]["fault"], "slow");

    monitor
        .control_post("faults", json!({"kind": "slow", "delay_ms": 300}))
        .await;
    let started = Instant::now();
    let (status, body) = monitor.lookup("4155550103").await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["tenant"]["tenant_id"], "t-1003");
    let started = Instant::now();
    assert_eq!(monitor.lookup("4155550103").await.0, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_millis(300), "used up");
}

#[tokio::test]
async fn slow_defaults_to_three_seconds() {
    let monitor = Monitor::start().await;
    let (_, fault) = monitor
        .control_post("faults", json!({"kind": "slow"}))
        .await;
    assert_eq!(fault["delay_ms"], 3000);
    assert_eq!(fault["count"], 1);
}

#[tokio::test]
async fn down_answers_503_to_everything_until_cleared() {
    let monitor = Monitor::start().await;
    let (status, fault) = monitor
        .control_post("faults", json!({"kind": "down", "count": 1}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(fault["count"], json!(null), "count is ignored for down");
    for _ in 0..3 {
        let (status, body) = monitor.lookup("+14155550101").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, json!({"error": "unavailable"}));
        assert_eq!(
            monitor.api_get("/tenants/t-1001").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            monitor
                .update_profile("t-1001", json!({"preferred_language": "es"}))
                .await
                .0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    let unauthenticated = monitor
        .http
        .get(monitor.url("/tenants/t-1001"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        monitor.control_get("tenants").await["tenants"][0]["tenant_id"],
        "t-1001",
        "the control API stays up"
    );

    let (status, cleared) = monitor.control_post("faults/clear", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cleared, json!({"cleared": 1}));
    assert_eq!(monitor.lookup("+14155550101").await.0, StatusCode::OK);
    assert_eq!(
        monitor.lookup_statuses("+14155550101").await,
        [503, 503, 503, 200]
    );
    let (_, tenant) = monitor.api_get("/tenants/t-1001").await;
    assert_eq!(tenant["tenant"]["preferred_language"], json!(null));
}

#[tokio::test]
async fn a_phone_scoped_fault_hits_only_lookups_of_that_exact_string() {
    let monitor = Monitor::start().await;
    monitor
        .control_post(
            "faults",
            json!({"kind": "server_error", "count": 2, "phone": "(415) 555-0102"}),
        )
        .await;
    // Other strings, even for the same tenant, and other routes are untouched.
    assert_eq!(monitor.lookup("+1 628 555 0199").await.0, StatusCode::OK);
    assert_eq!(
        monitor.lookup("+14155550102").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(monitor.api_get("/tenants/t-1002").await.0, StatusCode::OK);
    assert_eq!(
        monitor
            .update_profile("t-1002", json!({"preferred_language": "es"}))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        monitor.lookup("(415) 555-0102").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        monitor.lookup("(415) 555-0102").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(monitor.lookup("(415) 555-0102").await.0, StatusCode::OK);
    assert_eq!(
        monitor.lookup_statuses("(415) 555-0102").await,
        [500, 500, 200]
    );
}

#[tokio::test]
async fn a_phone_scoped_down_lasts_until_that_phone_is_cleared() {
    let monitor = Monitor::start().await;
    let phone = "+14155550101";
    monitor
        .control_post("faults", json!({"kind": "down", "phone": phone}))
        .await;
    monitor
        .control_post("faults", json!({"kind": "down", "phone": "4155550103"}))
        .await;
    for _ in 0..2 {
        assert_eq!(
            monitor.lookup(phone).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    assert_eq!(monitor.lookup("14155550104").await.0, StatusCode::OK);
    assert_eq!(monitor.api_get("/tenants/t-1001").await.0, StatusCode::OK);

    let (_, cleared) = monitor
        .control_post("faults/clear", json!({"phone": "14155550104"}))
        .await;
    assert_eq!(cleared["cleared"], 0, "no fault scoped to that phone");
    assert_eq!(
        monitor.lookup(phone).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let (_, cleared) = monitor
        .control_post("faults/clear", json!({"phone": phone}))
        .await;
    assert_eq!(cleared["cleared"], 1);
    assert_eq!(monitor.lookup(phone).await.0, StatusCode::OK);
    assert_eq!(
        monitor.lookup("4155550103").await.0,
        StatusCode::SERVICE_UNAVAILABLE,
        "the other phone's fault stays"
    );
    let faults = monitor.control_get("faults").await;
    assert_eq!(faults["faults"].as_array().unwrap().len(), 1);
    assert_eq!(faults["faults"][0]["phone"], "4155550103");
}

#[tokio::test]
async fn a_scoped_fault_is_used_before_a_global_one() {
    let monitor = Monitor::start().await;
    monitor
        .control_post("faults", json!({"kind": "server_error"}))
        .await;
    monitor
        .control_post(
            "faults",
            json!({"kind": "slow", "delay_ms": 1, "phone": "4155550103"}),
        )
        .await;
    assert_eq!(monitor.lookup("4155550103").await.0, StatusCode::OK);
    assert_eq!(
        monitor.lookup("4155550103").await.0,
        StatusCode::INTERNAL_SERVER_ERROR,
        "then the global one"
    );
    let lookups = monitor.control_get("lookups?phone=4155550103").await;
    assert_eq!(lookups["lookups"][0]["fault"], "slow");
    assert_eq!(lookups["lookups"][1]["fault"], "server_error");
}

#[tokio::test]
async fn bad_fault_requests_are_refused() {
    let monitor = Monitor::start().await;
    for body in [
        json!({"kind": "explode"}),
        json!({"kind": "server_error", "count": 0}),
        json!({"kind": "slow", "dealy_ms": 10}),
        json!({}),
    ] {
        let (status, answer) = monitor.control_post("faults", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["error"], "bad_request");
    }
    assert_eq!(monitor.control_get("faults").await, json!({"faults": []}));
}

#[tokio::test]
async fn dropping_the_monitor_ends_a_held_slow_answer() {
    let monitor = Monitor::start().await;
    monitor
        .control_post("faults", json!({"kind": "slow", "delay_ms": 30000}))
        .await;
    let url = monitor.url("/tenants/t-1001");
    let pending = tokio::spawn(async move {
        let started = Instant::now();
        let outcome = reqwest::Client::new()
            .get(url)
            .bearer_auth(API_KEY)
            .send()
            .await;
        (started.elapsed(), outcome.map(|r| r.status()))
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(monitor);
    let (elapsed, outcome) = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("the held answer ends with the monitor")
        .unwrap();
    assert!(elapsed < Duration::from_secs(5));
    assert!(
        matches!(outcome, Ok(StatusCode::SERVICE_UNAVAILABLE) | Err(_)),
        "{outcome:?}"
    );
}
