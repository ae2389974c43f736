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
    post_to(stack, form, "").await
}

/// A callback to the URL the worker gives Twilio for message `id`: `?m=<id>`.
async fn post_for(stack: &Stack, id: &str, form: &InboundForm) -> Reply {
    post_to(stack, form, &format!("?m={id}")).await
}

/// Signed for the public URL with `query`, as Twilio signs the URL it calls.
async fn post_to(stack: &Stack, form: &InboundForm, query: &str) -> Reply {
    let route = parley::handlers::status_callback::ROUTE;
    let url = format!("{}{route}{query}", stack.public_base_url);
    let sig = form.signature(&stack.token, &url);
    let resp = stack
        .http
        .post(format!("{}{route}{query}", stack.gateway))
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
        "no message with that id or SID yet: parked"
    );
}

/// The worker's `StatusCallback` carries Twilio's connection overrides as its fragment, which
/// never reaches the server: a callback signed over the URL with it is accepted, one signed
/// over another fragment is not.
#[tokio::test]
async fn a_callback_signed_with_the_overrides_fragment_is_accepted() {
    let stack = stack().await;
    let (m, sid, to) = submitted(&stack).await;
    let overrides = parley::twilio::overrides::WEBHOOK_OVERRIDES;
    let form = callback(&stack, &sid, &to, "delivered", None);
    let forged = post_to(&stack, &form, &format!("?m={}#rc=5", m.message_id)).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let reply = post_to(&stack, &form, &format!("?m={}#{overrides}", m.message_id)).await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    let applied = reread(&stack, &m).await;
    assert_eq!(applied.delivery_status, Some(DeliveryStatus::Delivered));
}

fn history(m: &Message) -> Vec<(String, String)> {
    m.status_history
        .iter()
        .map(|h| (h.status.clone(), h.source.clone()))
        .collect()
}

#[tokio::test]
async fn a_callback_naming_its_message_applies_before_the_sid_is_recorded() {
    let stack = stack().await;
    let (m, sid, to) = claimed(&stack).await;
    // Twilio's answer to the create is late; its callbacks are not.
    for status in ["sent", "delivered"] {
        let reply = post_for(
            &stack,
            &m.message_id,
            &callback(&stack, &sid, &to, status, None),
        )
        .await;
        assert_eq!(reply.status, 204, "{}", reply.body);
    }
    let early = reread(&stack, &m).await;
    assert_eq!(early.delivery_status, Some(DeliveryStatus::Delivered));
    assert!(
        stack.store.sid_guard(&sid).await.unwrap().is_none(),
        "nothing parked"
    );
    assert!(
        early.gsi2pk.is_some(),
        "still the worker's: kept in the due index"
    );
    // The worker records Twilio's answer (`queued`): it does not move the status back.
    stack
        .store
        .record_submitted(
            &m,
            &sid,
            DeliveryStatus::Queued,
            &parley::time::now_rfc3339(),
            parley::time::Timestamp::now().plus(Duration::from_secs(86_400)),
        )
        .await
        .unwrap();
    let recorded = reread(&stack, &m).await;
    assert_eq!(recorded.delivery_status, Some(DeliveryStatus::Delivered));
    assert_eq!(recorded.twilio_sid.as_deref(), Some(sid.as_str()));
    // Later callbacks by id are applied to it and deduplicated like any.
    let again = post_for(
        &stack,
        &m.message_id,
        &callback(&stack, &sid, &to, "delivered", None),
    )
    .await;
    assert_eq!(again.status, 204);
    let last = reread(&stack, &m).await;
    let delivered = history(&last)
        .into_iter()
        .filter(|(s, _)| s == "delivered")
        .count();
    assert_eq!(delivered, 1, "{:?}", history(&last));
}

#[tokio::test]
async fn a_callback_whose_id_names_another_sids_message_is_handled_by_sid() {
    let stack = stack().await;
    let (m, sid, to) = submitted(&stack).await;
    let stray = MessageSid::parse(&unique_sid()).unwrap();
    let reply = post_for(
        &stack,
        &m.message_id,
        &callback(&stack, &stray, &to, "delivered", None),
    )
    .await;
    assert_eq!(reply.status, 204);
    let after = reread(&stack, &m).await;
    assert_eq!(
        after.delivery_status,
        Some(DeliveryStatus::Queued),
        "not applied"
    );
    assert_eq!(after.twilio_sid.as_deref(), Some(sid.as_str()));
    let parked = stack.store.sid_guard(&stray).await.unwrap().unwrap();
    assert_eq!(parked.parked.len(), 1, "parked under its own SID");
}

/// The worker stops after recording the SID and before merging what was parked: the next
/// status for the SID, however it comes, completes the merge.
#[tokio::test]
async fn a_stop_between_recording_the_sid_and_merging_converges() {
    let stack = stack().await;
    for next in ["callback by SID", "callback by id", "merge again"] {
        let (m, sid, to) = claimed(&stack).await;
        for status in ["sent", "delivered"] {
            assert_eq!(
                post(&stack, &callback(&stack, &sid, &to, status, None))
                    .await
                    .status,
                204
            );
        }
        assert_eq!(
            stack
                .store
                .sid_guard(&sid)
                .await
                .unwrap()
                .unwrap()
                .parked
                .len(),
            2
        );
        // The first step alone, then the crash.
        stack
            .store
            .record_sid(
                &m,
                &sid,
                DeliveryStatus::Queued,
                &parley::time::now_rfc3339(),
                parley::time::Timestamp::now().plus(Duration::from_secs(86_400)),
            )
            .await
            .unwrap();
        let stopped = reread(&stack, &m).await;
        assert_eq!(
            stopped.delivery_status,
            Some(DeliveryStatus::Queued),
            "{next}"
        );
        let guard = stack.store.sid_guard(&sid).await.unwrap().unwrap();
        assert_eq!(guard.message_id.as_deref(), Some(m.message_id.as_str()));
        assert_eq!(guard.parked.len(), 2, "{next}: left unmerged");

        match next {
            // A repeated callback (Twilio retries) without the id, and one with it.
            "callback by SID" => {
                let reply = post(&stack, &callback(&stack, &sid, &to, "sent", None)).await;
                assert_eq!(reply.status, 204);
            }
            "callback by id" => {
                let reply = post_for(
                    &stack,
                    &m.message_id,
                    &callback(&stack, &sid, &to, "sent", None),
                )
                .await;
                assert_eq!(reply.status, 204);
            }
            // A merge run twice (a stop after applying, before clearing) changes nothing more.
            _ => {
                stack.store.merge_parked(&sid).await.unwrap();
                stack.store.merge_parked(&sid).await.unwrap();
            }
        }
        let converged = reread(&stack, &m).await;
        assert_eq!(
            converged.delivery_status,
            Some(DeliveryStatus::Delivered),
            "{next}"
        );
        let guard = stack.store.sid_guard(&sid).await.unwrap().unwrap();
        assert!(guard.parked.is_empty(), "{next}: cleared");
        let callbacks: Vec<_> = history(&converged)
            .into_iter()
            .filter(|(_, source)| source == "callback")
            .map(|(status, _)| status)
            .collect();
        assert_eq!(callbacks, ["sent", "delivered"], "{next}: each once");
    }
}

#[tokio::test]
async fn a_guard_holding_only_parked_callbacks_does_not_block_an_inbound_text() {
    let stack = stack().await;
    let from = unique_phone();
    let form = InboundForm::new(&stack, &from, "Is the unit still available?");
    let sid = form.sid();
    // A status callback for that SID came first and was parked.
    let parked = post(&stack, &callback(&stack, &sid, &from, "delivered", None)).await;
    assert_eq!(parked.status, 204);
    assert_eq!(
        stack
            .store
            .sid_guard(&sid)
            .await
            .unwrap()
            .unwrap()
            .parked
            .len(),
        1
    );
    let reply = stack.post_inbound(&form).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let guard = stack.store.sid_guard(&sid).await.unwrap().unwrap();
    assert_eq!(guard.direction, Some(parley::store::Direction::Inbound));
    let (pk, sk) = (guard.message_pk.unwrap(), guard.message_sk.unwrap());
    let message = stack.store.message(&pk, &sk).await.unwrap().unwrap();
    assert_eq!(
        message.twilio_sid.as_deref(),
        Some(sid.as_str()),
        "recorded, not a duplicate"
    );
    assert!(guard.parked.is_empty());
    // A redelivery of the same text is still the duplicate it is.
    let again = stack.post_inbound(&form).await;
    assert_eq!(again.status, 200);
    let messages = stack
        .store
        .messages(
            parley::phone::Channel::Sms,
            &parley::phone::E164::parse(&from).unwrap(),
            10,
        )
        .await
        .unwrap();
    assert_eq!(messages.len(), 1);
}
