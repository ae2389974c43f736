//! Signed status callbacks: order, parameters, signatures, failures, and the stored status.

use std::time::Duration;

use http::StatusCode;
use parley::twilio::signature::{self, Payload};
use serde_json::{json, Value};

use crate::support::*;

fn statuses(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .map(|r| r.param("MessageStatus").unwrap())
        .collect()
}

#[tokio::test]
async fn default_callbacks_go_queued_sent_delivered_signed_over_the_given_url() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start(StatusCode::OK).await;
    let to = "+14155550300";
    // A query string and an explicit port: the URL is signed exactly as given.
    let callback = format!("{}/webhook/twilio/status?tenant=t1&x=a%20b", receiver.base);
    let (status, created) = sandbox
        .create(&[
            ("To", to),
            ("From", FROM),
            ("Body", "hello"),
            ("StatusCallback", &callback),
        ])
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let sid = created["sid"].as_str().unwrap();

    let received = receiver.wait_for(3).await;
    assert_eq!(statuses(&received), ["queued", "sent", "delivered"]);
    for r in &received {
        assert_eq!(r.path_and_query, "/webhook/twilio/status?tenant=t1&x=a%20b");
        assert!(r
            .content_type
            .as_deref()
            .unwrap()
            .starts_with("application/x-www-form-urlencoded"));
        let form = r.form();
        let status = form.get("MessageStatus").unwrap();
        assert_eq!(form.get("MessageSid"), Some(sid));
        assert_eq!(form.get("SmsSid"), Some(sid));
        assert_eq!(form.get("SmsStatus"), Some(status));
        assert_eq!(form.get("AccountSid"), Some(ACCOUNT));
        assert_eq!(form.get("From"), Some(FROM));
        assert_eq!(form.get("To"), Some(to));
        assert_eq!(form.get("ApiVersion"), Some("2010-04-01"));
        assert_eq!(form.get("ErrorCode"), None);
        let sig = r.signature.as_deref().expect("X-Twilio-Signature");
        assert!(signature::verify(
            &[TOKEN],
            &callback,
            Payload::Form(form.pairs()),
            sig
        ));
        assert!(!signature::verify(
            &["another-token"],
            &callback,
            Payload::Form(form.pairs()),
            sig
        ));
        let without_query = callback.split_once('?').unwrap().0;
        assert!(!signature::verify(
            &[TOKEN],
            without_query,
            Payload::Form(form.pairs()),
            sig
        ));
    }

    let (_, fetched) = sandbox.api_get(&format!("Messages/{sid}.json")).await;
    assert_eq!(fetched["status"], "delivered");
    assert_ne!(fetched["date_sent"], Value::Null);
    let stored = &sandbox.messages_to(to).await[0];
    let attempts: Vec<_> = stored["callbacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["status"].as_str().unwrap(), a["response_status"].as_u64()))
        .collect();
    assert_eq!(
        attempts,
        [
            ("queued", Some(200)),
            ("sent", Some(200)),
            ("delivered", Some(200))
        ]
    );
}

#[tokio::test]
async fn a_configured_out_of_order_failure_is_sent_as_configured() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start(StatusCode::OK).await;
    let to = "+14155550301";
    let (status, _) = sandbox
        .control_post(
            "callbacks",
            json!({"to": to, "sequence": ["sent", "queued", "failed"], "error_code": 30007}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let callback = format!("{}/status", receiver.base);
    let (_, created) = sandbox
        .create(&[
            ("To", to),
            ("From", FROM),
            ("Body", "doomed"),
            ("StatusCallback", &callback),
        ])
        .await;
    let sid = created["sid"].as_str().unwrap();
    let received = receiver.wait_for(3).await;
    assert_eq!(statuses(&received), ["sent", "queued", "failed"]);
    assert_eq!(received[0].param("ErrorCode"), None);
    assert_eq!(received[2].param("ErrorCode").as_deref(), Some("30007"));
    for r in &received {
        assert!(signature::verify(
            &[TOKEN],
            &callback,
            Payload::Form(r.form().pairs()),
            r.signature.as_deref().unwrap()
        ));
    }
    let (_, fetched) = sandbox.api_get(&format!("Messages/{sid}.json")).await;
    assert_eq!(fetched["status"], "failed");
    assert_eq!(fetched["error_code"], 30007);
    assert_eq!(fetched["error_message"], "Carrier violation");
}

#[tokio::test]
async fn the_stored_status_never_moves_backwards() {
    let sandbox = Sandbox::start().await;
    let to = "+14155550302";
    sandbox
        .control_post(
            "callbacks",
            json!({"to": to, "sequence": ["delivered", "sent", "queued"]}),
        )
        .await;
    let (_, created) = sandbox
        .create(&[("To", to), ("From", FROM), ("Body", "x")])
        .await;
    let sid = created["sid"].as_str().unwrap().to_owned();
    // No StatusCallback: the status still progresses.
    eventually(|| async {
        let (_, m) = sandbox.api_get(&format!("Messages/{sid}.json")).await;
        (m["status"] == "delivered").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_, m) = sandbox.api_get(&format!("Messages/{sid}.json")).await;
    assert_eq!(
        m["status"], "delivered",
        "later sent/queued did not roll it back"
    );
}

#[tokio::test]
async fn a_plan_may_repeat_statuses_and_set_its_own_pace() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start(StatusCode::OK).await;
    let to = "+14155550305";
    let (status, plan) = sandbox
        .control_post(
            "callbacks",
            json!({"to": to, "sequence": ["queued", "queued", "sent", "delivered", "delivered"],
                   "delay_ms": 10}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(plan["delay_ms"], 10);
    let callback = format!("{}/status", receiver.base);
    sandbox
        .create(&[
            ("To", to),
            ("From", FROM),
            ("Body", "x"),
            ("StatusCallback", &callback),
        ])
        .await;
    let received = receiver.wait_for(5).await;
    assert_eq!(
        statuses(&received),
        ["queued", "queued", "sent", "delivered", "delivered"],
        "duplicates are sent as planned"
    );
}

#[tokio::test]
async fn plans_apply_per_recipient_and_undelivered_defaults_to_30003() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start(StatusCode::OK).await;
    let (special, ordinary) = ("+14155550303", "+14155550304");
    sandbox
        .control_post(
            "callbacks",
            json!({"to": special, "sequence": ["queued", "undelivered"]}),
        )
        .await;
    for to in [special, ordinary] {
        let callback = format!("{}/{}", receiver.base, &to[1..]);
        sandbox
            .create(&[
                ("To", to),
                ("From", FROM),
                ("Body", "x"),
                ("StatusCallback", &callback),
            ])
            .await;
    }
    let received = receiver.wait_for(5).await;
    let for_number = |n: &str| -> Vec<Received> {
        received
            .iter()
            .filter(|r| r.param("To").as_deref() == Some(n))
            .cloned()
            .collect()
    };
    assert_eq!(statuses(&for_number(special)), ["queued", "undelivered"]);
    assert_eq!(
        for_number(special)[1].param("ErrorCode").as_deref(),
        Some("30003")
    );
    assert_eq!(
        statuses(&for_number(ordinary)),
        ["queued", "sent", "delivered"]
    );
}

#[tokio::test]
async fn a_messaging_service_message_reports_its_service_and_sender() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start(StatusCode::OK).await;
    let service = "MG0123456789abcdef0123456789abcdef";
    let callback = format!("{}/status", receiver.base);
    sandbox
        .create(&[
            ("To", "+14155550305"),
            ("MessagingServiceSid", service),
            ("Body", "x"),
            ("StatusCallback", &callback),
        ])
        .await;
    let received = receiver.wait_for(3).await;
    assert_eq!(
        received[0].param("MessagingServiceSid").as_deref(),
        Some(service)
    );
    assert!(received[0]
        .param("From")
        .is_some_and(|f| f.starts_with('+')));
}

#[tokio::test]
async fn callback_failures_are_recorded_and_do_not_stop_the_sandbox() {
    let sandbox = Sandbox::start_with(|c| c.callback_timeout = Duration::from_millis(500)).await;
    let failing = Receiver::start(StatusCode::INTERNAL_SERVER_ERROR).await;
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/status", l.local_addr().unwrap())
    };
    let to = "+14155550306";
    for callback in [format!("{}/status", failing.base), closed] {
        let (status, _) = sandbox
            .create(&[
                ("To", to),
                ("From", FROM),
                ("Body", &callback),
                ("StatusCallback", &callback),
            ])
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    // Without overrides, Twilio's defaults: a 500 is not retried (one attempt a status), a
    // refused connection is, once (two a status).
    let messages = eventually(|| async {
        let messages = sandbox.messages_to(to).await;
        let attempts: Vec<usize> = messages
            .iter()
            .map(|m| m["callbacks"].as_array().unwrap().len())
            .collect();
        (messages.iter().all(|m| m["status"] == "delivered") && attempts == [3, 6])
            .then_some(messages)
    })
    .await;
    assert!(messages[0]["callbacks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["response_status"] == 500));
    assert!(messages[1]["callbacks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["error"].is_string()));
    let (status, _) = sandbox
        .create(&[("To", to), ("From", FROM), ("Body", "still up")])
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

/// A `StatusCallback` with connection overrides (as Parley's has) is retried as they say:
/// a 503 is tried again, up to `rc` times, each attempt recorded and signed over the URL as
/// given, fragment included; the fragment itself is never sent.
#[tokio::test]
async fn a_refused_callback_is_retried_as_its_overrides_say() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start_sequence(&[
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::NO_CONTENT,
    ])
    .await;
    let to = "+14155550308";
    let (status, _) = sandbox
        .control_post(
            "callbacks",
            json!({"to": to, "sequence": ["delivered"], "delay_ms": 10}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let callback = format!("{}/status?m=1#rc=3&rp=5xx", receiver.base);
    let (status, _) = sandbox
        .create(&[
            ("To", to),
            ("From", FROM),
            ("Body", "retried"),
            ("StatusCallback", &callback),
        ])
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let received = receiver.wait_for(3).await;
    assert_eq!(statuses(&received), ["delivered"; 3]);
    for r in &received {
        assert_eq!(r.path_and_query, "/status?m=1");
        assert_eq!(
            r.signature.as_deref(),
            Some(signature::compute(TOKEN, &callback, r.form().pairs()).as_str())
        );
    }
    let stored = eventually(|| async {
        let m = sandbox.messages_to(to).await.remove(0);
        (m["callbacks"].as_array().unwrap().len() == 3).then_some(m)
    })
    .await;
    let answers: Vec<_> = stored["callbacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["response_status"].as_u64())
        .collect();
    assert_eq!(answers, [Some(503), Some(503), Some(204)]);
}

#[tokio::test]
async fn invalid_callback_plans_are_refused() {
    let sandbox = Sandbox::start().await;
    for body in [
        json!({"sequence": ["queued", "teleported"]}),
        json!({"to": "+14155550307"}),
        json!({"sequence": ["queued"], "error_code": "x"}),
    ] {
        let (status, _) = sandbox.control_post("callbacks", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
}
