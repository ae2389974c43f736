//! Exact-string lookups, fetch by id, and the bearer token.

use http::StatusCode;
use monitor_stub::{MonitorConfig, Tenant};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn each_fixture_format_matches_only_its_own_exact_string() {
    let monitor = Monitor::start().await;
    // (stored string, tenant, other spellings of the same number that must not match)
    let cases = [
        (
            "+14155550101",
            "t-1001",
            vec![
                "4155550101",
                "14155550101",
                "(415) 555-0101",
                "+1 415 555 0101",
            ],
        ),
        (
            "(415) 555-0102",
            "t-1002",
            vec![
                "+14155550102",
                "4155550102",
                "415-555-0102",
                "(415)555-0102",
            ],
        ),
        (
            "+1 628 555 0199",
            "t-1002",
            vec!["+16285550199", "6285550199", "+1 628 555 0199 "],
        ),
        (
            "4155550103",
            "t-1003",
            vec!["+14155550103", "14155550103", "(415) 555-0103"],
        ),
        (
            "14155550104",
            "t-1004",
            vec!["+14155550104", "4155550104", "1 415 555 0104"],
        ),
        (
            "415-555-0105",
            "t-1005",
            vec!["+14155550105", "4155550105", "(415) 555-0105"],
        ),
    ];
    for (stored, tenant_id, others) in cases {
        let (status, body) = monitor.lookup(stored).await;
        assert_eq!(status, StatusCode::OK, "{stored}: {body}");
        assert_eq!(body["tenant"]["tenant_id"], tenant_id, "{stored}");
        for other in others {
            let (status, body) = monitor.lookup(other).await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{other} must not match {stored}"
            );
            assert_eq!(body, json!({"error": "not_found"}));
        }
    }
}

#[tokio::test]
async fn a_lookup_answers_the_whole_tenant_with_its_stored_strings() {
    let monitor = Monitor::start().await;
    let (status, body) = monitor.lookup("+1 628 555 0199").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"tenant": {
            "tenant_id": "t-1002",
            "name": "Luis Ortega",
            "phone_numbers": ["(415) 555-0102", "+1 628 555 0199"],
            "preferred_language": null
        }})
    );
    let (_, body) = monitor.lookup("415-555-0105").await;
    assert_eq!(body["tenant"]["preferred_language"], "es");
}

#[tokio::test]
async fn the_query_is_form_decoded_so_a_bare_plus_is_a_space() {
    let monitor = Monitor::start().await;
    let (status, _) = monitor
        .api_get("/tenants/lookup?phone=%2B14155550101")
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = monitor.api_get("/tenants/lookup?phone=+14155550101").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an unencoded + arrives as a space"
    );
    let lookups = monitor.control_get("lookups").await;
    assert_eq!(lookups["lookups"][1]["phone"], " 14155550101");
    // reqwest's own query builder encodes the plus properly.
    let response = monitor
        .http
        .get(monitor.url("/tenants/lookup"))
        .query(&[("phone", "(415) 555-0102")])
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_lookup_without_a_phone_is_a_bad_request() {
    let monitor = Monitor::start().await;
    let (status, body) = monitor.api_get("/tenants/lookup").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "bad_request");
    let (status, _) = monitor.api_get("/tenants/lookup?phone=%ZZ").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn fetch_by_id_answers_the_tenant_or_404() {
    let monitor = Monitor::start().await;
    let (status, body) = monitor.api_get("/tenants/t-1003").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["tenant"]["name"], "Grace Kim");
    assert_eq!(body["tenant"]["phone_numbers"], json!(["4155550103"]));
    let (status, body) = monitor.api_get("/tenants/t-9999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"error": "not_found"}));
}

#[tokio::test]
async fn every_api_route_refuses_a_missing_or_wrong_key() {
    let monitor = Monitor::start().await;
    let requests = [
        monitor
            .http
            .get(monitor.url("/tenants/lookup?phone=%2B14155550101")),
        monitor.http.get(monitor.url("/tenants/t-1001")),
        monitor
            .http
            .put(monitor.url("/tenants/t-1001/profile"))
            .json(&json!({"preferred_language": "pt"})),
    ];
    for request in requests {
        let wrong = request.try_clone().unwrap().bearer_auth("not-the-key");
        let basic = request
            .try_clone()
            .unwrap()
            .basic_auth(API_KEY, None::<&str>);
        for attempt in [request, wrong, basic] {
            let response = attempt.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(
                response.headers().get("www-authenticate").unwrap(),
                "Bearer"
            );
            assert_eq!(json(response).await.1, json!({"error": "unauthorized"}));
        }
    }
    let (_, tenant) = monitor.api_get("/tenants/t-1001").await;
    assert_eq!(
        tenant["tenant"]["preferred_language"],
        json!(null),
        "refused updates change nothing"
    );
    assert_eq!(
        monitor.lookup_statuses("+14155550101").await,
        [401, 401, 401]
    );
}

#[tokio::test]
async fn tenants_come_from_the_config() {
    let mut config = MonitorConfig::new(API_KEY);
    config.tenants = vec![Tenant::new("t-only", "Only One", ["555 0000"])];
    let monitor = Monitor::start_with(config).await;
    assert_eq!(monitor.lookup("555 0000").await.0, StatusCode::OK);
    assert_eq!(
        monitor.lookup("+14155550101").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_json() {
    let monitor = Monitor::start().await;
    let (status, body) = monitor.api_get("/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"error": "not_found"}));
    let response = monitor
        .http
        .delete(monitor.url("/tenants/t-1001"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(json(response).await.1["error"], "method_not_allowed");
}

#[tokio::test]
async fn dropping_the_monitor_stops_it() {
    let monitor = Monitor::start().await;
    let url = monitor.url("/tenants/t-1001");
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .unwrap();
    let response = client.get(&url).bearer_auth(API_KEY).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    drop(monitor);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(client.get(&url).bearer_auth(API_KEY).send().await.is_err());
    assert!(reqwest::Client::new()
        .get(&url)
        .bearer_auth(API_KEY)
        .send()
        .await
        .is_err());
}
