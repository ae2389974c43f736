//! Fault injection: each kind, and faults keyed by recipient staying with that recipient.

use std::time::Duration;

use http::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn rate_limited_answers_429_count_times_then_recovers() {
    let sandbox = Sandbox::start().await;
    let to = "+14155550200";
    let (status, fault) = sandbox
        .control_post(
            "faults",
            json!({"to": to, "kind": "rate_limited", "count": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{fault}");
    let params = [("To", to), ("From", FROM), ("Body", "retry me")];
    for _ in 0..2 {
        let (status, error) = sandbox.create(&params).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            error,
            json!({
                "code": 20429,
                "message": "Too Many Requests",
                "more_info": "https://www.twilio.com/docs/errors/20429",
                "status": 429
            })
        );
    }
    let (status, _) = sandbox.create(&params).await;
    assert_eq!(status, StatusCode::CREATED);
    let messages = sandbox.messages_to(to).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["create_calls"], 3);
    let outcomes: Vec<String> = sandbox
        .calls_to(to)
        .await
        .iter()
        .map(|c| c["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(outcomes, ["error:20429", "error:20429", "created"]);
}

#[tokio::test]
async fn server_error_answers_500_with_20500() {
    let sandbox = Sandbox::start().await;
    let to = "+14155550201";
    sandbox
        .control_post("faults", json!({"to": to, "kind": "server_error"}))
        .await;
    let params = [("To", to), ("From", FROM), ("Body", "x")];
    let (status, error) = sandbox.create(&params).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error["code"], 20500);
    assert_eq!(error["status"], 500);
    assert!(sandbox.messages_to(to).await.is_empty());
    let (status, _) = sandbox.create(&params).await;
    assert_eq!(status, StatusCode::CREATED, "count defaults to 1");
}

#[tokio::test]
async fn faults_keyed_by_recipient_leave_other_recipients_alone() {
    let sandbox = Sandbox::start().await;
    let (faulty, healthy) = ("+14155550202", "+14155550203");
    sandbox
        .control_post(
            "faults",
            json!({"to": faulty, "kind": "server_error", "count": 5}),
        )
        .await;
    let healthy_sends = (0..5).map(|i| {
        let body = format!("healthy {i}");
        let sandbox = &sandbox;
        async move {
            sandbox
                .create(&[("To", healthy), ("From", FROM), ("Body", &body)])
                .await
                .0
        }
    });
    for status in futures::future::join_all(healthy_sends).await {
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, _) = sandbox
        .create(&[("To", faulty), ("From", FROM), ("Body", "x")])
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let pending = sandbox.control_get("faults").await;
    assert_eq!(pending["faults"][0]["count"], 4, "{pending}");
}

#[tokio::test]
async fn a_global_fault_applies_to_anyone() {
    let sandbox = Sandbox::start().await;
    sandbox
        .control_post("faults", json!({"kind": "rate_limited", "count": 2}))
        .await;
    for to in ["+14155550204", "+14155550205"] {
        let (status, _) = sandbox
            .create(&[("To", to), ("From", FROM), ("Body", "x")])
            .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{to}");
    }
    let (status, _) = sandbox
        .create(&[("To", "+14155550204"), ("From", FROM), ("Body", "x")])
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn slow_times_the_client_out_and_creates_nothing() {
    let sandbox = Sandbox::start().await;
    let to = "+14155550206";
    sandbox
        .control_post("faults", json!({"to": to, "kind": "slow", "delay_ms": 800}))
        .await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let params = [("To", to), ("From", FROM), ("Body", "slow")];
    let error = sandbox
        .create_request(&impatient, &params)
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");

    // Well past the injected delay: the abandoned request must not have created anything.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(sandbox.messages_to(to).await.is_empty());
    let (_, page) = sandbox
        .api_get(&format!("Messages.json?To={}", encode(to)))
        .await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 0);
    let calls = sandbox.calls_to(to).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["outcome"], "abandoned");
    assert_eq!(calls[0]["fault"], "slow");

    // The retry goes through, and the sandbox holds exactly one message after two calls.
    let response = sandbox
        .create_request(&impatient, &params)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let messages = sandbox.messages_to(to).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["create_calls"], 2);
}

#[tokio::test]
async fn slow_answers_normally_to_a_patient_client() {
    let sandbox = Sandbox::start().await;
    let to = "+14155550207";
    sandbox
        .control_post("faults", json!({"to": to, "kind": "slow", "delay_ms": 300}))
        .await;
    let started = std::time::Instant::now();
    let (status, _) = sandbox
        .create(&[("To", to), ("From", FROM), ("Body", "x")])
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(sandbox.messages_to(to).await.len(), 1);
}

#[tokio::test]
async fn accept_then_timeout_creates_the_message_the_client_never_hears_of() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start(StatusCode::OK).await;
    let to = "+14155550208";
    sandbox
        .control_post(
            "faults",
            json!({"to": to, "kind": "accept_then_timeout", "delay_ms": 2000}),
        )
        .await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let callback = format!("{}/status", receiver.base);
    let error = sandbox
        .create_request(
            &impatient,
            &[
                ("To", to),
                ("From", FROM),
                ("Body", "ambiguous"),
                ("StatusCallback", &callback),
            ],
        )
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");

    let messages = sandbox.messages_to(to).await;
    assert_eq!(messages.len(), 1, "Twilio accepted it");
    let sid = messages[0]["sid"].as_str().unwrap().to_owned();
    let (status, fetched) = sandbox.api_get(&format!("Messages/{sid}.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched["body"], "ambiguous");
    let (_, page) = sandbox
        .api_get(&format!("Messages.json?To={}", encode(to)))
        .await;
    assert_eq!(
        page["messages"][0]["sid"],
        sid.as_str(),
        "reconciliation finds it"
    );
    let calls = sandbox.calls_to(to).await;
    assert_eq!(calls[0]["outcome"], "created");
    assert_eq!(calls[0]["fault"], "accept_then_timeout");
    assert_eq!(calls[0]["sid"], sid.as_str());

    let received = receiver.wait_for(3).await;
    assert!(received
        .iter()
        .all(|r| r.param("MessageSid").as_deref() == Some(&sid)));
}

#[tokio::test]
async fn invalid_fault_requests_are_refused() {
    let sandbox = Sandbox::start().await;
    for body in [
        json!({"kind": "meteor"}),
        json!({"kind": "slow", "count": 0}),
        json!({"kind": "slow", "extra": true}),
        json!({"to": "+14155550209"}),
    ] {
        let (status, error) = sandbox.control_post("faults", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(error["error"].is_string());
    }
    let pending = sandbox.control_get("faults").await;
    assert_eq!(pending["faults"].as_array().unwrap().len(), 0);
}
