//! The inbound handler run in this process against the emulator: the shipped sample event,
//! bodies as API Gateway may deliver them, token rotation, and an unreachable store.

use std::sync::Arc;

use lambda_http::Request;
use parley::config::WebhookConfig;
use parley::handlers::inbound_sms::InboundSmsHandler;
use parley::language::Language;
use parley::phone::{Channel, E164};
use parley::store::Store;
use parley_e2e::*;
use serde_json::Value;

/// The documented dev values `events/inbound-sms.json` is signed for.
const DEV_TOKEN: &str = "dev-twilio-auth-token";
const DEV_PUBLIC_URL: &str = "http://127.0.0.1:3000";
const SAMPLE: &str = include_str!("../events/inbound-sms.json");

fn event(json: &Value) -> Request {
    lambda_http::request::from_str(&json.to_string()).expect("valid API Gateway v2 event")
}

fn dev_config(stack: &Stack) -> WebhookConfig {
    WebhookConfig {
        public_base_url: DEV_PUBLIC_URL.into(),
        ..stack.webhook_config()
    }
}

async fn status_and_body(handler: &InboundSmsHandler, req: Request) -> (u16, String) {
    let (parts, body) = parley_local::apigw::response_parts(handler.handle(req).await);
    (parts.status.as_u16(), String::from_utf8(body).unwrap())
}

#[tokio::test]
async fn the_sample_event_base64_and_plain_is_accepted_and_stored_once() {
    let stack = stack().await;
    let store = stack.own_table("sample").await;
    let (_, secrets) = stack.own_secrets(DEV_TOKEN, None).await;
    let handler = InboundSmsHandler::new(store.clone(), secrets, dev_config(&stack));

    let base64: Value = serde_json::from_str(SAMPLE).unwrap();
    assert_eq!(base64["isBase64Encoded"], true);
    let (status, body) = status_and_body(&handler, event(&base64)).await;
    assert_eq!(status, 200, "{body}");

    // The same request with a plain-text body, as API Gateway sends some content types.
    let mut plain = base64.clone();
    let decoded = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        base64["body"].as_str().unwrap(),
    )
    .unwrap();
    plain["body"] = Value::String(String::from_utf8(decoded).unwrap());
    plain["isBase64Encoded"] = Value::Bool(false);
    let (status, replay_body) = status_and_body(&handler, event(&plain)).await;
    assert_eq!(
        (status, replay_body.as_str()),
        (200, body.as_str()),
        "plain body accepted, as a duplicate"
    );

    let phone = E164::parse("+14155552671").unwrap();
    let messages = store.messages(Channel::Sms, &phone, 10).await.unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0].body.stored(),
        "Hola, ya pagué la renta de este mes. ¿Pueden confirmar?"
    );
    assert_eq!(messages[0].language, Language::Es);

    let mut tampered = base64.clone();
    tampered["headers"]["x-twilio-signature"] =
        Value::String("AAAAAAAAAAAAAAAAAAAAAAAAAAA=".into());
    assert_eq!(status_and_body(&handler, event(&tampered)).await.0, 403);
}

#[tokio::test]
async fn a_rotated_token_is_picked_up_by_refreshing_the_secret_once() {
    let stack = stack().await;
    let store = stack.own_table("rotation").await;
    let (secret_id, secrets) = stack.own_secrets("token-one", None).await;
    let handler = InboundSmsHandler::new(store.clone(), secrets.clone(), dev_config(&stack));
    let url = format!("{DEV_PUBLIC_URL}{}", parley::handlers::inbound_sms::ROUTE);

    // Twilio starts signing with token-two; the operator stored it with token-one as previous.
    stack
        .put_secret(&secret_id, "token-two", Some("token-one"))
        .await;
    let signed = |token: &str| {
        let form = InboundForm::new(&stack, &unique_phone(), "Thanks");
        let sig = form.signature(token, &url);
        let mut json: Value = serde_json::from_str(SAMPLE).unwrap();
        json["headers"]["x-twilio-signature"] = Value::String(sig);
        json["isBase64Encoded"] = Value::Bool(false);
        json["body"] = Value::String(form.encode());
        (form, event(&json))
    };

    // Just loaded: a refresh is not due yet, so forged or early requests cannot hammer AWS.
    let (_, req) = signed("token-two");
    assert_eq!(status_and_body(&handler, req).await.0, 403);

    secrets.allow_refresh_now().await;
    let (form, req) = signed("token-two");
    assert_eq!(status_and_body(&handler, req).await.0, 200);
    assert!(store.sid_guard(&form.sid()).await.unwrap().is_some());

    let (_, req) = signed("token-one");
    assert_eq!(
        status_and_body(&handler, req).await.0,
        200,
        "the previous token still works"
    );
}

#[tokio::test]
async fn an_unreachable_store_is_a_503_that_twilio_retries_and_nothing_is_written() {
    let stack = stack().await;
    let real = stack.own_table("outage").await;
    let (_, secrets) = stack.own_secrets(DEV_TOKEN, None).await;
    let dead_sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url("http://127.0.0.1:9")
        .load()
        .await;
    let dead = Store::new(aws_sdk_dynamodb::Client::new(&dead_sdk), real.table());
    let handler = InboundSmsHandler::new(dead, Arc::clone(&secrets), dev_config(&stack));

    let (status, body) =
        status_and_body(&handler, event(&serde_json::from_str(SAMPLE).unwrap())).await;
    assert_eq!(status, 503, "{body}");
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"]["code"], "unavailable");
    assert!(!body.contains("127.0.0.1"), "no internals in the answer");

    let phone = E164::parse("+14155552671").unwrap();
    assert!(real
        .messages(Channel::Sms, &phone, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(real
        .conversation(Channel::Sms, &phone)
        .await
        .unwrap()
        .is_none());
}
