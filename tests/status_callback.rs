//! Status callbacks over HTTP: ordering, duplicates, failures, parking, and refusal.

use std::time::Duration;

use parley::delivery::DeliveryStatus;
use parley::phone::Address;
use parley::store::{keys, ClaimOrder, Message, NewOutbound};
use parley::twilio::MessageSid;
use parley_e2e::*;
use serde_json::Value;

/// An outbound message in the shared table, claimed by a (pretend) worker, and a fresh SID.
async fn claimed(stack: &Stack) -> (Message, MessageSid, String) {
    let to = unique_phone();
    let address = Address::parse(&to).unwrap();
    let id = ulid::Ulid::new().to_string();
    stack
        .store
        .create_outbound(&NewOutbound::queued(
            id.clone(),
            &address,
            "status test",
            parley::time::Timestamp::now(),
        ))
        .await
        .unwrap();
    let pk = keys::conversation_pk(address.channel, &address.e164);
    let sk = keys::message_sk(&id);
    let now = parley::time::now_rfc3339();
    let message = stack.store.message(&pk, &sk).await.unwrap().unwrap();
    let order = ClaimOrder {
        message: &message,
        require_consent: true,
    };
    stack
        .store
        .claim_batch(
            &[order],
            &now,
            "0",
            parley::time::Timestamp::now().plus(std::time::Duration::from_secs(120)),
        )
        .await
        .expect("claimed");
    (message, MessageSid::parse(&unique_sid()).unwrap(), to)
}

async fn submitted(stack: &Stack) -> (Message, MessageSid, String) {
    let (m, sid, to) = claimed(stack).await;
    stack
        .store
        .record_submitted(
            &m,
            &sid,
            DeliveryStatus::Queued,
            &parley::time::now_rfc3339(),
            parley::time::Timestamp::now().plus(std::time::Duration::from_secs(86_400)),
        )
        .await
        .unwrap();
    (m, sid, to)
}

fn callback(
    stack: &Stack,
    sid: &MessageSid,
    to: &str,
    status: &str,
    error_code: Option<&str>,
) -> InboundForm {
    let mut form = InboundForm { pairs: vec![] }
        .set("SmsSid", sid.as_str())
        .set("SmsStatus", status)
        .set("MessageStatus", status)
        .set("To", to)
        .set("MessageSid", sid.as_str())
        .set("AccountSid", &stack.account_sid)
        .set("From", TWILIO_NUMBER)
        .set("ApiVersion", "2010-04-01");
    if let Some(code) = error_code {
        form = form.set("ErrorCode", code);
    }
    form
}

async fn post(stack: &Stack, form: &InboundForm) -> Reply {
    let url = format!(
        "{}{}",
        stack.public_base_url,
        parley::handlers::status_callback::ROUTE
    );
    let sig = form.signature(&stack.token, &url);
    let resp = stack
        .http
        .post(format!(
            "{}{}",
            stack.gateway,
            parley::handlers::status_callback::ROUTE
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", sig)
        .body(form.encode())
        .send()
        .await
        .unwrap();
    read(resp).await
}

async fn reread(stack: &Stack, m: &Message) -> Message {
    stack.store.message(&m.pk, &m.sk).await.unwrap().unwrap()
}

#[tokio::test]
async fn every_order_of_queued_sent_delivered_ends_delivered() {
    let stack = stack().await;
    let orders = [
        ["queued", "sent", "delivered"],
        ["queued", "delivered", "sent"],
        ["sent", "queued", "delivered"],
        ["sent", "delivered", "queued"],
        ["delivered", "queued", "sent"],
        ["delivered", "sent", "queued"],
    ];
    for order in orders {
        let (m, sid, to) = submitted(&stack).await;
        for status in order {
            assert_eq!(
                post(&stack, &callback(&stack, &sid, &to, status, None))
                    .await
                    .status,
                204
            );
        }
        let m = reread(&stack, &m).await;
        assert_eq!(
            m.delivery_status,
            Some(DeliveryStatus::Delivered),
            "{order:?}"
        );
        let callbacks: Vec<_> = m
            .status_history
            .iter()
            .filter(|h| h.source == "callback")
            .map(|h| h.status.as_str())
            .collect();
        assert_eq!(callbacks, order, "every callback kept, in arrival order");
    }
}

#[tokio::test]
async fn failed_after_sent_ends_failed_with_its_error_code() {
    let stack = stack().await;
    let (m, sid, to) = submitted(&stack).await;
    post(&stack, &callback(&stack, &sid, &to, "sent", None)).await;
    post(
        &stack,
        &callback(&stack, &sid, &to, "failed", Some("30003")),
    )
    .await;
    post(&stack, &callback(&stack, &sid, &to, "delivered", None)).await;
    let m = reread(&stack, &m).await;
    assert_eq!(m.delivery_status, Some(DeliveryStatus::Failed));
    assert_eq!(m.error_code.as_deref(), Some("30003"));
}

#[tokio::test]
async fn a_duplicate_callback_changes_nothing() {
    let stack = stack().await;
    let (m, sid, to) = submitted(&stack).await;
    let form = callback(&stack, &sid, &to, "sent", None);
    post(&stack, &form).await;
    let once = reread(&stack, &m).await;
    assert_eq!(post(&stack, &form).await.status, 204);
    let twice = reread(&stack, &m).await;
    assert_eq!(twice.status_history, once.status_history);
    assert_eq!(twice.status_version, once.status_version);
}

#[tokio::test]
async fn a_callback_before_the_sid_is_recorded_is_parked_then_merged() {
    let stack = stack().await;
    let (m, sid, to) = claimed(&stack).await;
    assert_eq!(
        post(&stack, &callback(&stack, &sid, &to, "sent", None))
            .await
            .status,
        204
    );
    assert_eq!(
        post(&stack, &callback(&stack, &sid, &to, "delivered", None))
            .await
            .status,
        204
    );
    let guard = stack
        .store
        .sid_guard(&sid)
        .await
        .unwrap()
        .expect("parked on the SID guard");
    assert_eq!(guard.parked.len(), 2);
    assert!(guard.message_id.is_none());

    stack
        .store
        .record_submitted(
            &m,
            &sid,
            DeliveryStatus::Queued,
            &parley::time::now_rfc3339(),
            parley::time::Timestamp::now().plus(std::time::Duration::from_secs(86_400)),
        )
        .await
        .unwrap();
    let m = reread(&stack, &m).await;
    assert_eq!(m.delivery_status, Some(DeliveryStatus::Delivered));
    assert!(
        stack
            .store
            .sid_guard(&sid)
            .await
            .unwrap()
            .unwrap()
            .parked
            .is_empty(),
        "merged and cleared"
    );
    let conversation = stack
        .store
        .conversation(m.channel, &m.to_e164)
        .await
        .unwrap()
        .unwrap();
    let activity = conversation
        .last_activity_at
        .expect("callbacks update the conversation's activity");
    assert!(activity >= m.created_at.to_string());
}

#[tokio::test]
async fn callbacks_for_another_account_or_badly_signed_or_incomplete_are_refused() {
    let stack = stack().await;
    let (m, sid, to) = submitted(&stack).await;
    let other = callback(&stack, &sid, &to, "delivered", None)
        .set("AccountSid", "AC11111111111111111111111111111111");
    let reply = post(&stack, &other).await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        serde_json::from_str::<Value>(&reply.body).unwrap()["error"]["code"],
        "account_mismatch"
    );

    let unsigned = stack
        .http
        .post(format!(
            "{}{}",
            stack.gateway,
            parley::handlers::status_callback::ROUTE
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(callback(&stack, &sid, &to, "delivered", None).encode())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 403);

    let incomplete = callback(&stack, &sid, &to, "delivered", None)
        .without("MessageStatus")
        .without("SmsStatus");
    assert_eq!(post(&stack, &incomplete).await.status, 400);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        reread(&stack, &m).await.delivery_status,
        Some(DeliveryStatus::Queued),
        "nothing applied"
    );
}

#[tokio::test]
async fn the_sample_status_event_is_accepted() {
    use parley::handlers::status_callback::StatusCallbackHandler;
    let stack = stack().await;
    let store = stack.own_table("status-event").await;
    let (_, secrets) = stack.own_secrets("dev-twilio-auth-token", None).await;
    let config = parley::config::WebhookConfig {
        public_base_url: "http://127.0.0.1:3000".into(),
        ..stack.webhook_config()
    };
    let handler = StatusCallbackHandler::new(store.clone(), secrets, config);
    let req =
        lambda_http::request::from_str(include_str!("../events/status-callback.json")).unwrap();
    let (parts, _) = parley_local::apigw::response_parts(handler.handle(req).await);
    assert_eq!(parts.status.as_u16(), 204);
    let sid = MessageSid::parse("SM7c1e2d3f4a5b6c7d8e9f0a1b2c3d4e5f").unwrap();
    assert_eq!(
        store.sid_guard(&sid).await.unwrap().unwrap().parked.len(),
        1,
        "no message yet: parked"
    );
}
