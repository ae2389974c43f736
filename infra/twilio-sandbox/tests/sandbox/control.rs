//! The inspection side of the control API: create_calls, the call log, and reset.

use http::StatusCode;
use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn create_calls_counts_every_request_for_a_to_and_body() {
    let sandbox = Sandbox::start().await;
    let to = "+14155550400";
    sandbox
        .control_post("faults", json!({"to": to, "kind": "server_error"}))
        .await;
    let same = [("To", to), ("From", FROM), ("Body", "once")];
    assert_eq!(
        sandbox.create(&same).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(sandbox.create(&same).await.0, StatusCode::CREATED);
    assert_eq!(sandbox.create(&same).await.0, StatusCode::CREATED);
    sandbox
        .create(&[("To", to), ("From", FROM), ("Body", "different")])
        .await;

    let messages = sandbox.messages_to(to).await;
    let counts: Vec<(&str, u64)> = messages
        .iter()
        .map(|m| {
            (
                m["body"].as_str().unwrap(),
                m["create_calls"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts, [("once", 3), ("once", 3), ("different", 1)]);
    assert_eq!(messages[0]["status_callback"], Value::Null);
    assert_eq!(
        messages[0]["account_sid"], ACCOUNT,
        "the full resource is there"
    );
}

#[tokio::test]
async fn the_call_log_lists_every_create_call_in_order() {
    let sandbox = Sandbox::start().await;
    let to = "+14155550401";
    sandbox
        .create(&[
            ("To", to),
            ("From", FROM),
            ("Body", "ok"),
            ("StatusCallback", "http://127.0.0.1:9/cb"),
        ])
        .await;
    sandbox
        .create(&[("To", to), ("From", "+15005550008"), ("Body", "full")])
        .await;
    sandbox
        .create(&[("To", "+15005550001"), ("From", FROM), ("Body", "bad")])
        .await;

    let all = sandbox.control_get("calls").await;
    let calls = all["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0]["to"], to);
    assert_eq!(calls[0]["from"], FROM);
    assert_eq!(calls[0]["body"], "ok");
    assert_eq!(calls[0]["status_callback"], "http://127.0.0.1:9/cb");
    assert_eq!(calls[0]["outcome"], "created");
    assert!(calls[0]["sid"].as_str().unwrap().starts_with("SM"));
    assert_eq!(calls[1]["outcome"], "error:21611");
    assert_eq!(calls[1].get("sid"), None);
    assert_eq!(calls[2]["outcome"], "error:21211");
    assert_eq!(sandbox.calls_to(to).await.len(), 2);
}

#[tokio::test]
async fn a_plus_left_unencoded_in_the_query_still_means_plus() {
    let sandbox = Sandbox::start().await;
    let to = "+14155550402";
    sandbox
        .create(&[("To", to), ("From", FROM), ("Body", "x")])
        .await;
    let listed = sandbox.control_get("messages?to=+14155550402").await;
    assert_eq!(listed["messages"].as_array().unwrap().len(), 1);
    let (_, page) = sandbox.api_get("Messages.json?To=+14155550402").await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn reset_clears_one_recipient_or_everything() {
    let sandbox = Sandbox::start().await;
    let (a, b) = ("+14155550403", "+14155550404");
    for to in [a, b] {
        sandbox
            .create(&[("To", to), ("From", FROM), ("Body", "x")])
            .await;
        sandbox
            .control_post("faults", json!({"to": to, "kind": "server_error"}))
            .await;
    }
    let (status, _) = sandbox.control_post("reset", json!({"to": a})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(sandbox.messages_to(a).await.is_empty());
    assert!(sandbox.calls_to(a).await.is_empty());
    assert_eq!(sandbox.messages_to(b).await.len(), 1);
    let faults = sandbox.control_get("faults").await;
    assert_eq!(faults["faults"].as_array().unwrap().len(), 1);
    assert_eq!(faults["faults"][0]["to"], b);

    let response = sandbox
        .http
        .post(format!("{}/_sandbox/reset", sandbox.running.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(sandbox.messages_to(b).await.is_empty());
    assert_eq!(
        sandbox.control_get("calls").await["calls"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        sandbox.control_get("faults").await["faults"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let (status, _) = sandbox
        .create(&[("To", b), ("From", FROM), ("Body", "x")])
        .await;
    assert_eq!(status, StatusCode::CREATED, "the fault went with the reset");
}
