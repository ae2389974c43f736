//! The inbound processor end to end: texts through the gateway, the table's stream, the
//! Collections Monitor stub, and Parley's event bus read back through a subscribed queue.

use std::time::Duration;

use parley::events::DomainEvent;
use parley::handlers::inbound_processor::{InboundProcessor, ProcessorError, ProcessorInput};
use parley::phone::{Channel, E164};
use parley_e2e::*;
use serde_json::{json, Value};

async fn tenant_of(stack: &Stack, phone: &str) -> Option<String> {
    let e164 = E164::parse(phone).unwrap();
    stack
        .store
        .conversation(Channel::Sms, &e164)
        .await
        .unwrap()
        .and_then(|c| c.tenant_id)
}

async fn linked(stack: &Stack, phone: &str, tenant: &str) {
    eventually(60, "the conversation linked to its tenant", || async {
        (tenant_of(stack, phone).await.as_deref() == Some(tenant)).then_some(())
    })
    .await;
}

/// Waits until the monitor has been asked about every variant of `phone` (so a "no tenant"
/// conclusion is final).
async fn looked_up(stack: &Stack, phone: &str, times: usize) {
    eventually(60, "the monitor lookups", || async {
        let lookups = stack.monitor_get("lookups", &[("phone", phone)]).await;
        (lookups["lookups"].as_array().map_or(0, Vec::len) >= times).then_some(())
    })
    .await;
}

fn tenant_id() -> String {
    format!("t-{}", ulid::Ulid::new())
}

fn national(phone: &str) -> (String, String) {
    let n = &phone[2..];
    (
        n.to_owned(),
        format!("({}) {}-{}", &n[..3], &n[3..6], &n[6..]),
    )
}

#[tokio::test]
async fn a_tenant_is_matched_through_each_stored_form_of_the_number() {
    let stack = stack().await;
    for form in 0..4 {
        let phone = unique_phone();
        let (digits10, formatted) = national(&phone);
        let stored = [
            phone.clone(),
            digits10,
            format!("1{}", &phone[2..]),
            formatted,
        ][form]
            .clone();
        let tenant = tenant_id();
        stack.add_tenant(&tenant, &[&stored]).await;
        stack
            .post_inbound(&InboundForm::new(&stack, &phone, "Hello there"))
            .await;
        linked(&stack, &phone, &tenant).await;
        let mapping = stack
            .store
            .phone_tenant(&E164::parse(&phone).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(mapping.tenant_id, tenant);
        assert_eq!(
            mapping.matched_variant,
            ["e164", "national", "digits", "national_formatted"][form],
            "stored as {stored}"
        );
        assert_eq!(
            stack
                .store
                .tenant_last_phone(&tenant)
                .await
                .unwrap()
                .map(|p| p.as_str().to_owned()),
            Some(phone.clone())
        );
    }
}

#[tokio::test]
async fn a_known_sender_produces_sms_received_and_an_unknown_one_produces_nothing() {
    let stack = stack().await;
    let queue = stack.subscribe_events().await;
    let known = unique_phone();
    let tenant = tenant_id();
    stack.add_tenant(&tenant, &[&known]).await;
    let unknown = unique_phone();
    let known_body = unique_body("My heater stopped working this morning");
    stack
        .post_inbound(&InboundForm::new(
            &stack,
            &unknown,
            &unique_body("Who is this? I did not sign up"),
        ))
        .await;
    stack
        .post_inbound(&InboundForm::new(&stack, &known, &known_body))
        .await;
    linked(&stack, &known, &tenant).await;
    // The formatted national form is the last one tried: once asked, the answer is final.
    looked_up(&stack, &national(&unknown).1, 1).await;
    assert_eq!(
        tenant_of(&stack, &unknown).await,
        None,
        "unknown numbers stay unlinked"
    );

    let received = eventually(60, "sms.received", || async {
        let events = stack.drain_events(&queue).await;
        let mine: Vec<Value> = events
            .into_iter()
            .filter(|e| e["detail-type"] == "sms.received")
            .collect();
        (!mine.is_empty()).then_some(mine)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = stack.drain_events(&queue).await;
    let all: Vec<&Value> = received
        .iter()
        .chain(later.iter())
        .filter(|e| e["detail-type"] == "sms.received")
        .collect();
    let for_unknown = all
        .iter()
        .filter(|e| e["detail"]["from"] == unknown.as_str())
        .count();
    assert_eq!(
        for_unknown, 0,
        "unknown senders never trigger downstream flows"
    );
    let event = all
        .iter()
        .find(|e| e["detail"]["from"] == known.as_str())
        .expect("an event for the known sender");
    let d = &event["detail"];
    assert_eq!(event["source"], "parley");
    assert_eq!(
        (d["tenant_id"].as_str(), d["version"].as_str()),
        (Some(tenant.as_str()), Some("1"))
    );
    // EVENT_BODIES defaults to omit: the bus never sees the text.
    assert_eq!(d["body_included"], false);
    assert!(d.get("body").is_none() && d.get("media_urls").is_none());
    assert!(!event.to_string().contains(&known_body));
    assert_eq!(
        d["event_id"],
        format!("sms.received/{}", d["message_id"].as_str().unwrap())
    );
    assert!(d["conversation_id"].as_str().is_some());
}

#[tokio::test]
async fn a_monitor_failing_then_recovering_still_links_the_tenant() {
    let stack = stack().await;
    let phone = unique_phone();
    let tenant = tenant_id();
    stack.add_tenant(&tenant, &[&phone]).await;
    stack
        .monitor_control(
            "faults",
            json!({"kind": "server_error", "count": 2, "phone": phone}),
        )
        .await;
    stack
        .post_inbound(&InboundForm::new(&stack, &phone, "Hello again"))
        .await;
    linked(&stack, &phone, &tenant).await;
    let lookups = stack.monitor_get("lookups", &[("phone", &phone)]).await;
    let statuses: Vec<_> = lookups["lookups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [500, 500, 200], "retried with backoff");
}

#[tokio::test]
async fn texts_arriving_while_the_monitor_is_down_are_stored_and_linked_once_it_recovers() {
    let stack = stack().await;
    let phone = unique_phone();
    let tenant = tenant_id();
    stack.add_tenant(&tenant, &[&phone]).await;
    stack
        .monitor_control("faults", json!({"kind": "down", "phone": phone}))
        .await;
    for text in ["First text while down", "Second text while down"] {
        assert_eq!(
            stack
                .post_inbound(&InboundForm::new(&stack, &phone, text))
                .await
                .status,
            200
        );
    }
    looked_up(&stack, &phone, 6).await;
    let e164 = E164::parse(&phone).unwrap();
    assert_eq!(
        stack
            .store
            .messages(Channel::Sms, &e164, 10)
            .await
            .unwrap()
            .len(),
        2,
        "messages stored"
    );
    assert_eq!(tenant_of(&stack, &phone).await, None);

    stack
        .monitor_control("faults/clear", json!({"phone": phone}))
        .await;
    let processor = processor(&stack).await;
    let report = processor.reconcile().await.unwrap();
    assert!(report.linked >= 1, "{report:?}");
    assert_eq!(
        tenant_of(&stack, &phone).await.as_deref(),
        Some(tenant.as_str())
    );
    let conversation = stack
        .store
        .conversation(Channel::Sms, &e164)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        conversation.message_count, 2,
        "no duplicated messages or conversations"
    );
}

#[tokio::test]
async fn an_unknown_number_that_becomes_known_is_linked_by_its_next_message() {
    let stack = stack().await;
    let phone = unique_phone();
    stack
        .post_inbound(&InboundForm::new(&stack, &phone, "Hi, new here"))
        .await;
    looked_up(&stack, &phone, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(tenant_of(&stack, &phone).await, None);

    let tenant = tenant_id();
    stack.add_tenant(&tenant, &[&phone]).await;
    stack
        .post_inbound(&InboundForm::new(&stack, &phone, "I just signed my lease"))
        .await;
    linked(&stack, &phone, &tenant).await;
    let e164 = E164::parse(&phone).unwrap();
    assert_eq!(
        stack
            .store
            .conversation(Channel::Sms, &e164)
            .await
            .unwrap()
            .unwrap()
            .message_count,
        2
    );
}

#[tokio::test]
async fn language_preference_follows_en_es_pt_and_is_pushed_to_the_tenant_profile() {
    let stack = stack().await;
    let phone = unique_phone();
    let tenant = tenant_id();
    stack.add_tenant(&tenant, &[&phone]).await;
    let texts = [
        (
            "I already paid the rent for this month, please check your records.",
            "en",
        ),
        (
            "Mi fregadero está goteando otra vez, ¿pueden venir mañana a revisarlo?",
            "es",
        ),
        (
            "A minha pia está vazando de novo, alguém pode vir amanhã dar uma olhada?",
            "pt",
        ),
    ];
    for (i, (text, _)) in texts.iter().enumerate() {
        stack
            .post_inbound(&InboundForm::new(&stack, &phone, &unique_body(text)))
            .await;
        eventually(60, "the profile update", || async {
            let updates = stack
                .monitor_get("profile-updates", &[("tenant_id", &tenant)])
                .await;
            (updates["updates"].as_array().map_or(0, Vec::len) > i).then_some(())
        })
        .await;
    }
    // An unsure reply does not change the preference.
    stack
        .post_inbound(&InboundForm::new(&stack, &phone, "ok"))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let updates = stack
        .monitor_get("profile-updates", &[("tenant_id", &tenant)])
        .await;
    let languages: Vec<_> = updates["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["body"]["preferred_language"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(languages, ["en", "es", "pt"]);
    let preference = stack
        .store
        .language_preference(&tenant)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(preference.language, parley::language::Language::Pt);
}

#[tokio::test]
async fn opt_out_and_opt_in_and_status_changes_are_published() {
    let stack = stack().await;
    let queue = stack.subscribe_events().await;
    let phone = unique_phone();
    let tenant = tenant_id();
    stack.add_tenant(&tenant, &[&phone]).await;
    stack
        .post_inbound(&InboundForm::new(&stack, &phone, "Hello"))
        .await;
    linked(&stack, &phone, &tenant).await;
    stack
        .post_inbound(&InboundForm::new(&stack, &phone, "STOP"))
        .await;
    stack
        .post_inbound(&InboundForm::new(&stack, &phone, "START"))
        .await;
    let reply = stack
        .send(
            &json!({"to": phone, "body": unique_body("Thanks for confirming your visit")}),
            None,
        )
        .await;
    let message_id = reply.json()["message_id"].as_str().unwrap().to_owned();

    let mut seen: Vec<Value> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        seen.extend(stack.drain_events(&queue).await);
        let has = |t: &str| {
            seen.iter()
                .any(|e| e["detail-type"] == t && e["detail"]["tenant_id"] == tenant.as_str())
        };
        let delivered = seen.iter().any(|e| {
            e["detail-type"] == "sms.status_changed"
                && e["detail"]["message_id"] == message_id.as_str()
                && e["detail"]["status"] == "delivered"
        });
        if has("sms.opted_out") && has("sms.opted_in") && delivered {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "events so far: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every event on the bus reads back as Parley's typed events; a message no rule made
    // has a null cause.
    for event in &seen {
        let detail_type = event["detail-type"].as_str().unwrap();
        let parsed = DomainEvent::parse(detail_type, &event["detail"].to_string());
        assert!(parsed.is_ok(), "{event}: {parsed:?}");
    }
    let delivered = seen
        .iter()
        .find(|e| {
            e["detail-type"] == "sms.status_changed"
                && e["detail"]["message_id"] == message_id.as_str()
        })
        .unwrap();
    assert!(delivered["detail"].get("cause").is_some_and(Value::is_null));
    let out = seen
        .iter()
        .find(|e| {
            e["detail-type"] == "sms.opted_out" && e["detail"]["tenant_id"] == tenant.as_str()
        })
        .unwrap();
    assert_eq!(out["detail"]["keyword"], "STOP");
    assert!(out["detail"]["event_id"]
        .as_str()
        .unwrap()
        .starts_with("sms.opted_out/"));
}

async fn processor(stack: &Stack) -> InboundProcessor {
    processor_with(stack, stack.store.clone(), &stack.monitor())
}

/// A processor on `store`, asking the Collections Monitor at `monitor`.
fn processor_with(stack: &Stack, store: parley::store::Store, monitor: &str) -> InboundProcessor {
    use parley::events::EventPublisher;
    use parley::monitor::MonitorClient;
    let monitor = MonitorClient::new(
        monitor,
        stack.env.get("LOCAL_MONITOR_API_KEY").unwrap(),
        Duration::from_secs(3),
    )
    .unwrap();
    let bus = format!("{}EventBus", stack.env.get("LOCAL_QUEUE_PREFIX").unwrap());
    let events = EventPublisher::new(aws_sdk_eventbridge::Client::new(&stack.sdk), bus);
    InboundProcessor::new(store, monitor, events, "test-pseudonym-key")
}

/// An inbound message from `phone` recorded in `store` (a table of the test's own, so the
/// stack's processor never sees it), the number already mapped to `tenant`, and the stream
/// record of the message (the sample's, made about this number and message).
async fn recorded_inbound(
    stack: &Stack,
    store: &parley::store::Store,
    phone: &str,
    tenant: &str,
) -> (String, aws_lambda_events::event::dynamodb::Event) {
    let recorded = recorded_message(stack, store, phone).await;
    let mapping = parley::store::tenants::PhoneTenant {
        tenant_id: tenant.to_owned(),
        matched_variant: "e164".into(),
        updated_at: parley::time::now_rfc3339(),
        time_zone: None,
    };
    let e164 = E164::parse(phone).unwrap();
    assert!(store
        .put_phone_tenant(Channel::Sms, &e164, &mapping)
        .await
        .unwrap());
    recorded
}

/// The `sms.received` events of `message_id` on `queue`, waiting up to 30 s for the first.
async fn received_events(stack: &Stack, queue: &str, message_id: &str) -> Vec<Value> {
    eventually(30, "sms.received on the bus", || async {
        let mine: Vec<Value> = stack
            .drain_events(queue)
            .await
            .into_iter()
            .filter(|e| {
                e["detail-type"] == "sms.received" && e["detail"]["message_id"] == message_id
            })
            .collect();
        (!mine.is_empty()).then_some(mine)
    })
    .await
}

#[tokio::test]
async fn a_failing_language_push_does_not_hold_back_sms_received() {
    let stack = stack().await;
    let store = stack.own_table("processor-order").await;
    let phone = unique_phone();
    let tenant = tenant_id();
    stack.add_tenant(&tenant, &[&phone]).await;
    let (message_id, record) = recorded_inbound(&stack, &store, &phone, &tenant).await;
    let bus = stack.subscribe_events().await;

    // Nothing listens on port 9: the language push fails, after the event went out.
    let monitor_down = processor_with(&stack, store.clone(), "http://127.0.0.1:9");
    let response = monitor_down.handle_stream(record.clone()).await;
    assert_eq!(
        response.batch_item_failures.len(),
        1,
        "the record is retried"
    );
    let first = received_events(&stack, &bus, &message_id).await;
    assert_eq!(
        first[0]["detail"]["tenant_id"], tenant,
        "published before the push"
    );
    assert!(
        store.language_preference(&tenant).await.unwrap().is_none(),
        "a preference the monitor has not taken is not stored"
    );

    // The retry, with the monitor back: the event again, under the same id.
    let monitor_up = processor_with(&stack, store.clone(), &stack.monitor());
    let response = monitor_up.handle_stream(record).await;
    assert!(response.batch_item_failures.is_empty());
    let again = received_events(&stack, &bus, &message_id).await;
    assert_eq!(
        again[0]["detail"]["event_id"],
        format!("sms.received/{message_id}")
    );
    assert_eq!(
        again[0]["detail"]["event_id"],
        first[0]["detail"]["event_id"]
    );
    assert_eq!(
        store
            .language_preference(&tenant)
            .await
            .unwrap()
            .unwrap()
            .language,
        parley::language::Language::Es
    );
    for event in first.iter().chain(&again) {
        let parsed = DomainEvent::parse("sms.received", &event["detail"].to_string());
        assert!(parsed.is_ok(), "{parsed:?}");
    }
}

#[tokio::test]
async fn a_reconciliation_the_store_fails_is_an_invocation_error() {
    let stack = stack().await;
    let missing = parley::store::Store::new(
        aws_sdk_dynamodb::Client::new(&stack.sdk),
        format!(
            "test-missing-{}",
            ulid::Ulid::new().to_string().to_lowercase()
        ),
    );
    let processor = processor_with(&stack, missing, &stack.monitor());
    let input: ProcessorInput = serde_json::from_value(json!({"reconcile": true})).unwrap();
    let error = processor
        .handle(input)
        .await
        .expect_err("no answer when the table cannot be read");
    assert!(matches!(error, ProcessorError::Reconcile(_)), "{error:?}");
    assert_eq!(error.kind(), "ReconcileFailed");
    assert!(
        parley::error::chain(&error).starts_with("reconciliation failed: DynamoDB"),
        "{}",
        parley::error::chain(&error)
    );
}

#[tokio::test]
async fn the_sample_stream_event_links_a_fixture_tenant() {
    use parley::store::InboundRecord;
    let stack = stack().await;
    let store = stack.own_table("processor-event").await;
    // The conversation the sample message belongs to (fixture tenant t-1001's number), and
    // the message itself: a record whose message is gone (erased) is skipped.
    let raw = InboundForm::new(&stack, "+14155550101", "Hola").encode();
    let sms = parley::twilio::InboundSms::from_form(
        &parley::twilio::Form::parse(raw.as_bytes()).unwrap(),
    )
    .unwrap();
    store
        .record_inbound(&InboundRecord {
            sms: &sms,
            raw_payload: &raw,
            message_id: "01JDPROCESSOREVENT0000000A".into(),
            new_conversation_id: ulid::Ulid::new().to_string(),
            received_at: parley::time::now_rfc3339(),
            detection: parley::language::detect("Hola"),
            keyword: None,
            trace: None,
        })
        .await
        .unwrap();
    let processor = processor_with(&stack, store.clone(), &stack.monitor())
        .with_event_bodies(parley::handlers::inbound_processor::EventBodies::Include);
    let bus = stack.subscribe_events().await;
    let event: aws_lambda_events::event::dynamodb::Event =
        serde_json::from_str(include_str!("../events/inbound-processor.json")).unwrap();
    let response = processor.handle_stream(event).await;
    assert!(response.batch_item_failures.is_empty());
    // EVENT_BODIES=include: the text rides along.
    let published = eventually(10, "the sample's sms.received", || async {
        stack
            .drain_events(&bus)
            .await
            .into_iter()
            .find(|e| e["detail"]["message_id"] == "01JDPROCESSOREVENT0000000A")
    })
    .await;
    assert_eq!(published["detail"]["body_included"], true);
    assert!(published["detail"]["body"]
        .as_str()
        .is_some_and(|b| !b.is_empty()));
    let conversation = store
        .conversation(Channel::Sms, &E164::parse("+14155550101").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conversation.tenant_id.as_deref(), Some("t-1001"));
    assert_eq!(
        store
            .language_preference("t-1001")
            .await
            .unwrap()
            .unwrap()
            .language,
        parley::language::Language::Es
    );
}

#[tokio::test]
async fn without_a_monitor_senders_wait_for_reconciliation_and_link_once_it_is_set() {
    use parley::events::EventPublisher;
    let stack = stack().await;
    let store = stack.own_table("no-monitor").await;
    let phone = unique_phone();
    let tenant = tenant_id();
    stack.add_tenant(&tenant, &[&phone]).await;
    let (_, event) = recorded_message(&stack, &store, &phone).await;

    // MONITOR_API_URL empty (the first deploy, before the monitor is reachable).
    let bus = format!("{}EventBus", stack.env.get("LOCAL_QUEUE_PREFIX").unwrap());
    let events = EventPublisher::new(aws_sdk_eventbridge::Client::new(&stack.sdk), bus);
    let without = InboundProcessor::new_with(store.clone(), None, events, "test-pseudonym-key");
    let response = without.handle_stream(event).await;
    assert!(response.batch_item_failures.is_empty());
    let e164 = E164::parse(&phone).unwrap();
    assert!(store.phone_tenant(&e164).await.unwrap().is_none());
    let pending: Vec<_> = store
        .unlinked_conversations()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.phone)
        .collect();
    assert_eq!(pending, vec![e164.clone()], "left for reconciliation");
    let lookups = stack.monitor_get("lookups", &[("phone", &phone)]).await;
    assert_eq!(lookups["lookups"], json!([]), "nothing asked of a monitor");

    // The URL set: the next reconciliation links it.
    let with = processor_with(&stack, store.clone(), &stack.monitor());
    let input: ProcessorInput = serde_json::from_value(json!({"reconcile": true})).unwrap();
    let output = serde_json::to_value(with.handle(input).await.unwrap()).unwrap();
    assert_eq!(output["linked"], 1, "{output}");
    assert_eq!(
        store
            .phone_tenant(&e164)
            .await
            .unwrap()
            .map(|m| m.tenant_id),
        Some(tenant)
    );
}
