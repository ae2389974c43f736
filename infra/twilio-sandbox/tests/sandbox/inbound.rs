//! Twilio's side of an inbound text: stored as received, listed like any message, and its
//! signed webhook delivered with the retry behaviour of the URL's connection overrides.

use std::time::Duration;

use http::StatusCode;
use parley::twilio::signature::{self, Payload};
use serde_json::{json, Value};

use crate::support::*;

const PARLEY: &str = "+15005550006";
const SENDER: &str = "+14155550401";

async fn receive(sandbox: &Sandbox, body: Value) -> Value {
    let (status, answer) = sandbox.control_post("receive", body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    answer
}

fn attempts(answer: &Value) -> Vec<Value> {
    answer["webhook"]["attempts"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_5xx_then_success_is_delivered_on_the_retry_the_overrides_ask_for() {
    let sandbox = Sandbox::start().await;
    let parley = Receiver::start_sequence(&[StatusCode::SERVICE_UNAVAILABLE, StatusCode::OK]).await;
    let url = format!(
        "{}/webhook/twilio/sms#rc=3&rp=5xx,ct&ct=2000&rt=10000",
        parley.base
    );
    let answer = receive(
        &sandbox,
        json!({"from": SENDER, "to": PARLEY, "body": "Hola", "sms_url": url}),
    )
    .await;
    assert_eq!(answer["webhook"]["delivered"], true);
    assert_eq!(
        attempts(&answer),
        vec![
            json!({"response_status": 503}),
            json!({"response_status": 200})
        ]
    );
    let sid = answer["message"]["sid"].as_str().unwrap();
    assert!(sid.starts_with("SM") && sid.len() == 34, "{sid}");
    assert_eq!(answer["message"]["direction"], "inbound");
    assert_eq!(answer["message"]["status"], "received");

    let received = parley.received();
    assert_eq!(received.len(), 2, "the same webhook, twice");
    for r in &received {
        // The fragment is never sent; the signature holds for the URL as configured.
        assert_eq!(r.path_and_query, "/webhook/twilio/sms");
        let form = r.form();
        assert_eq!(form.get("MessageSid"), Some(sid));
        assert_eq!(form.get("From"), Some(SENDER));
        assert_eq!(form.get("To"), Some(PARLEY));
        assert_eq!(form.get("Body"), Some("Hola"));
        assert_eq!(form.get("SmsStatus"), Some("received"));
        assert_eq!(form.get("AccountSid"), Some(ACCOUNT));
        let sig = r.signature.as_deref().unwrap();
        assert!(signature::verify(
            &[TOKEN],
            &url,
            Payload::Form(form.pairs()),
            sig
        ));
        assert!(!signature::verify(
            &["other"],
            &url,
            Payload::Form(form.pairs()),
            sig
        ));
    }
}

#[tokio::test]
async fn without_overrides_a_5xx_is_not_retried_and_a_refused_connection_once() {
    let sandbox = Sandbox::start().await;
    let parley = Receiver::start(StatusCode::SERVICE_UNAVAILABLE).await;
    let answer = receive(
        &sandbox,
        json!({"from": SENDER, "to": PARLEY, "body": "one", "sms_url": format!("{}/sms", parley.base)}),
    )
    .await;
    assert_eq!(answer["webhook"]["delivered"], false);
    assert_eq!(attempts(&answer), vec![json!({"response_status": 503})]);

    // Nothing listens on port 9: Twilio's default retries a connection failure once.
    let answer = receive(
        &sandbox,
        json!({"from": SENDER, "to": PARLEY, "body": "two", "sms_url": "http://127.0.0.1:9/sms"}),
    )
    .await;
    assert_eq!(
        attempts(&answer),
        vec![json!({"error": "connect"}), json!({"error": "connect"})]
    );

    // rc bounds the attempts; a 4xx is retried only when rp names it.
    let answer = receive(
        &sandbox,
        json!({"from": SENDER, "to": PARLEY, "body": "three",
               "sms_url": format!("{}/sms#rc=2&rp=5xx", parley.base)}),
    )
    .await;
    assert_eq!(attempts(&answer).len(), 3);
    let forbidden = Receiver::start(StatusCode::FORBIDDEN).await;
    let answer = receive(
        &sandbox,
        json!({"from": SENDER, "to": PARLEY, "body": "four",
               "sms_url": format!("{}/sms#rc=2&rp=5xx", forbidden.base)}),
    )
    .await;
    assert_eq!(attempts(&answer), vec![json!({"response_status": 403})]);
}

#[tokio::test]
async fn an_answer_later_than_rt_is_a_read_timeout_retried_only_when_rp_names_it() {
    let sandbox = Sandbox::start().await;
    let slow = Duration::from_millis(1500);
    let answers = [(slow, StatusCode::OK), (Duration::ZERO, StatusCode::OK)];
    let parley = Receiver::start_answers(&answers).await;
    let answer = receive(
        &sandbox,
        json!({"from": SENDER, "to": PARLEY, "body": "slow",
               "sms_url": format!("{}/sms#rt=500&rc=2&rp=rt", parley.base)}),
    )
    .await;
    assert_eq!(
        attempts(&answer),
        vec![json!({"error": "timeout"}), json!({"response_status": 200})]
    );
    assert_eq!(answer["webhook"]["delivered"], true);

    // rp=5xx does not name read timeouts: the first slow answer ends the delivery.
    let parley = Receiver::start_answers(&answers).await;
    let answer = receive(
        &sandbox,
        json!({"from": SENDER, "to": PARLEY, "body": "slow again",
               "sms_url": format!("{}/sms#rt=500&rc=2&rp=5xx", parley.base)}),
    )
    .await;
    assert_eq!(attempts(&answer), vec![json!({"error": "timeout"})]);
    assert_eq!(answer["webhook"]["delivered"], false);
}

#[tokio::test]
async fn the_numbers_webhook_is_configured_once_and_invalid_overrides_are_refused() {
    let sandbox = Sandbox::start().await;
    let parley = Receiver::start(StatusCode::OK).await;
    let (status, _) = sandbox
        .control_post(
            "incoming-numbers",
            json!({"number": PARLEY, "sms_url": format!("{}/sms#rc=9", parley.base)}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "rc is 0 to 5");
    let (status, answer) = sandbox
        .control_post(
            "receive",
            json!({"from": SENDER, "to": PARLEY, "body": "x"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "no webhook configured: {answer}"
    );
    let (status, _) = sandbox
        .control_post(
            "incoming-numbers",
            json!({"number": PARLEY, "sms_url": format!("{}/sms#rc=1&rp=5xx", parley.base)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let answer = receive(&sandbox, json!({"from": SENDER, "to": PARLEY, "body": "x"})).await;
    assert_eq!(answer["webhook"]["delivered"], true);
    assert_eq!(parley.received().len(), 1);
    let (status, _) = sandbox
        .control_post("receive", json!({"from": SENDER, "to": PARLEY, "bogus": 1}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn received_texts_are_listed_newest_first_page_by_page_with_their_media() {
    let sandbox = Sandbox::start().await;
    let parley = Receiver::start(StatusCode::OK).await;
    let url = format!("{}/sms", parley.base);
    let mut sids = Vec::new();
    for body in ["first", "second", "third"] {
        let answer = receive(
            &sandbox,
            json!({"from": SENDER, "to": PARLEY, "body": body, "sms_url": url}),
        )
        .await;
        sids.push(answer["message"]["sid"].as_str().unwrap().to_owned());
    }
    let photo = receive(
        &sandbox,
        json!({"from": SENDER, "to": "+15005550007", "body": "", "media": ["image/jpeg"], "sms_url": url}),
    )
    .await;
    let mms = photo["message"]["sid"].as_str().unwrap();
    assert!(mms.starts_with("MM"), "{mms}");

    let query = format!(
        "Messages.json?To={}&DateSent%3E={}&PageSize=2",
        encode(PARLEY),
        utc_date(0)
    );
    let (status, page) = sandbox.api_get(&query).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let listed: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["sid"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [sids[2].as_str(), sids[1].as_str()], "newest first");
    assert_eq!(page["messages"][0]["direction"], "inbound");
    assert!(page["messages"][0]["date_sent"].is_string());
    let next = page["next_page_uri"].as_str().unwrap().to_owned();
    let (_, page) = sandbox
        .api_get(
            next.split_once("/Accounts/")
                .unwrap()
                .1
                .split_once('/')
                .unwrap()
                .1,
        )
        .await;
    assert_eq!(page["messages"][0]["sid"], sids[0].as_str());
    assert!(page["next_page_uri"].is_null());
    let (_, none) = sandbox
        .api_get(&format!(
            "Messages.json?To={}&DateSent%3E={}",
            encode(PARLEY),
            utc_date(1)
        ))
        .await;
    assert!(none["messages"].as_array().unwrap().is_empty());

    // The medium as Twilio's Media subresource names it, and as the webhook sent it.
    let (status, media) = sandbox.api_get(&format!("Messages/{mms}/Media.json")).await;
    assert_eq!(status, StatusCode::OK);
    let entry = &media["media_list"][0];
    assert_eq!(entry["content_type"], "image/jpeg");
    let uri = entry["uri"].as_str().unwrap();
    let sent = parley.received().last().unwrap().form();
    assert_eq!(sent.get("NumMedia"), Some("1"));
    assert_eq!(
        sent.get("MediaUrl0").unwrap(),
        format!(
            "{}{}",
            sandbox.running.url(),
            uri.strip_suffix(".json").unwrap()
        )
    );
    assert_eq!(sent.get("MediaContentType0"), Some("image/jpeg"));
}
