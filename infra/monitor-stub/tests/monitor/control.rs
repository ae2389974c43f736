//! The control API: adding tenants, the lookup log, reset.

use http::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn a_test_can_add_and_replace_its_own_tenant() {
    let monitor = Monitor::start().await;
    let (status, body) = monitor
        .control_post(
            "tenants",
            json!({
                "tenant_id": "t-test-1",
                "name": "Test Tenant",
                "phone_numbers": ["+1 (212) 555-0142", "2125550143"]
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["tenant"]["preferred_language"], json!(null));
    let (status, found) = monitor.lookup("+1 (212) 555-0142").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["tenant"]["tenant_id"], "t-test-1");
    assert_eq!(
        monitor.lookup("+12125550142").await.0,
        StatusCode::NOT_FOUND
    );

    let (status, _) = monitor
        .control_post(
            "tenants",
            json!({
                "tenant_id": "t-test-1",
                "name": "Renamed",
                "phone_numbers": ["+12125550142"],
                "preferred_language": "pt"
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        monitor.lookup("+1 (212) 555-0142").await.0,
        StatusCode::NOT_FOUND,
        "replaced, not merged"
    );
    let (_, found) = monitor.lookup("+12125550142").await;
    assert_eq!(found["tenant"]["name"], "Renamed");
    assert_eq!(found["tenant"]["preferred_language"], "pt");
    let tenants = monitor.control_get("tenants").await;
    assert_eq!(tenants["tenants"].as_array().unwrap().len(), 6);
}

#[tokio::test]
async fn bad_tenants_are_refused() {
    let monitor = Monitor::start().await;
    for body in [
        json!({"tenant_id": "", "name": "x", "phone_numbers": []}),
        json!({"tenant_id": "t-x", "name": "x", "phone_numbers": ["1"], "preferred_language": "fr"}),
        json!({"tenant_id": "t-x", "phone_numbers": ["1"]}),
    ] {
        let (status, _) = monitor.control_post("tenants", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    assert_eq!(
        monitor.api_get("/tenants/t-x").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_lookup_log_shows_every_variant_tried_in_order() {
    let monitor = Monitor::start().await;
    let variants = [
        "+14155550103",
        "4155550103",
        "14155550103",
        "(415) 555-0103",
    ];
    for phone in variants {
        monitor.lookup(phone).await;
    }
    monitor.lookup("4155550103").await;
    let all = monitor.control_get("lookups").await;
    let tried: Vec<_> = all["lookups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["phone"].as_str().unwrap().to_owned(),
                l["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        tried,
        [
            ("+14155550103".to_owned(), 404),
            ("4155550103".to_owned(), 200),
            ("14155550103".to_owned(), 404),
            ("(415) 555-0103".to_owned(), 404),
            ("4155550103".to_owned(), 200),
        ]
    );
    assert_eq!(monitor.lookup_statuses("4155550103").await, [200, 200]);
    assert_eq!(monitor.lookup_statuses("(415) 555-0103").await, [404]);
    assert!(monitor.lookup_statuses("415 555 0103").await.is_empty());
}

#[tokio::test]
async fn reset_restores_fixtures_and_forgets_everything() {
    let monitor = Monitor::start().await;
    monitor
        .control_post(
            "tenants",
            json!({"tenant_id": "t-temp", "name": "Temp", "phone_numbers": ["999"]}),
        )
        .await;
    monitor
        .update_profile("t-1001", json!({"preferred_language": "es"}))
        .await;
    monitor.lookup("999").await;
    monitor
        .control_post("faults", json!({"kind": "down", "phone": "nobody"}))
        .await;

    let response = monitor
        .http
        .post(monitor.url("/_stub/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    assert_eq!(monitor.lookup("999").await.0, StatusCode::NOT_FOUND);
    let (_, tenant) = monitor.api_get("/tenants/t-1001").await;
    assert_eq!(tenant["tenant"]["preferred_language"], json!(null));
    assert_eq!(
        monitor.control_get("profile-updates").await,
        json!({"updates": []})
    );
    assert_eq!(monitor.control_get("faults").await, json!({"faults": []}));
    assert_eq!(
        monitor.lookup_statuses("999").await,
        [404],
        "only the one after reset"
    );
}

#[tokio::test]
async fn stubs_do_not_share_state() {
    let first = Monitor::start().await;
    let second = Monitor::start().await;
    first.control_post("faults", json!({"kind": "down"})).await;
    assert_eq!(
        first.lookup("+14155550101").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(second.lookup("+14155550101").await.0, StatusCode::OK);
}
