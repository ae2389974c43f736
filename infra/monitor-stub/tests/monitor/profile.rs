//! `PUT /tenants/{id}/profile`: applied, reflected, recorded; refused when invalid.

use http::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn an_update_is_applied_reflected_and_recorded_as_received() {
    let monitor = Monitor::start().await;
    let sent = json!({
        "preferred_language": "pt",
        "language_confidence": 0.93,
        "source": "parley",
        "reason": "3 inbound messages detected as Portuguese",
        "detected_at": "2024-05-01T12:00:00Z"
    });
    let (status, body) = monitor.update_profile("t-1001", sent.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"tenant": {
            "tenant_id": "t-1001",
            "name": "Ana Souza",
            "phone_numbers": ["+14155550101"],
            "preferred_language": "pt"
        }})
    );
    let (_, fetched) = monitor.api_get("/tenants/t-1001").await;
    assert_eq!(fetched["tenant"]["preferred_language"], "pt");
    let (_, looked_up) = monitor.lookup("+14155550101").await;
    assert_eq!(looked_up["tenant"]["preferred_language"], "pt");

    let updates = monitor.updates_for("t-1001").await;
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["tenant_id"], "t-1001");
    assert_eq!(updates[0]["body"], sent, "extra fields are kept");
    assert_eq!(updates[0]["status"], 200);
    let received_at = updates[0]["received_at"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(received_at, &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "{received_at}"
    );
}

#[tokio::test]
async fn updates_are_listed_in_arrival_order_per_tenant() {
    let monitor = Monitor::start().await;
    for language in ["es", "en", "pt"] {
        let (status, _) = monitor
            .update_profile("t-1003", json!({"preferred_language": language}))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    monitor
        .update_profile("t-1004", json!({"preferred_language": "es"}))
        .await;
    let languages: Vec<_> = monitor
        .updates_for("t-1003")
        .await
        .iter()
        .map(|u| u["body"]["preferred_language"].clone())
        .collect();
    assert_eq!(languages, [json!("es"), json!("en"), json!("pt")]);
    let all = monitor.control_get("profile-updates").await;
    assert_eq!(all["updates"].as_array().unwrap().len(), 4);
    assert_eq!(all["updates"][3]["tenant_id"], "t-1004");
    let (_, tenant) = monitor.api_get("/tenants/t-1003").await;
    assert_eq!(
        tenant["tenant"]["preferred_language"], "pt",
        "the last one wins"
    );
}

#[tokio::test]
async fn a_language_outside_en_es_pt_is_refused_with_400() {
    let monitor = Monitor::start().await;
    let bad_bodies = [
        json!({"preferred_language": "fr"}),
        json!({"preferred_language": "ES"}),
        json!({"preferred_language": "spanish"}),
        json!({"preferred_language": null}),
        json!({"language_confidence": 0.9}),
        json!(["es"]),
    ];
    for body in &bad_bodies {
        let (status, answer) = monitor.update_profile("t-1005", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["error"], "bad_request");
        assert!(answer["message"].is_string());
    }
    let response = monitor
        .http
        .put(monitor.url("/tenants/t-1005/profile"))
        .bearer_auth(API_KEY)
        .body("preferred_language=es")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let (_, tenant) = monitor.api_get("/tenants/t-1005").await;
    assert_eq!(tenant["tenant"]["preferred_language"], "es", "unchanged");
    let updates = monitor.updates_for("t-1005").await;
    assert_eq!(
        updates.len(),
        bad_bodies.len() + 1,
        "refused updates are recorded too"
    );
    assert!(updates.iter().all(|u| u["status"] == 400));
    assert_eq!(updates[0]["body"], bad_bodies[0]);
    assert_eq!(updates.last().unwrap()["body"], "preferred_language=es");
}

#[tokio::test]
async fn an_unknown_tenant_is_404() {
    let monitor = Monitor::start().await;
    let (status, body) = monitor
        .update_profile("t-missing", json!({"preferred_language": "es"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"error": "not_found"}));
    let (status, _) = monitor
        .update_profile("t-missing", json!({"preferred_language": "xx"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the tenant is checked first");
    let statuses: Vec<_> = monitor
        .updates_for("t-missing")
        .await
        .iter()
        .map(|u| u["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [404, 404]);
}
