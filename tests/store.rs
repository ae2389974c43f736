//! The store against the emulator, each test on a table of its own made from template.yaml.

use aws_sdk_dynamodb::types::AttributeValue;
use parley::language::{self, Language};
use parley::phone::{Channel, E164};
use parley::store::{
    ConsentOutcome, InboundOutcome, InboundRecord, Store, WriteOutcome, HISTORY_CAP,
};
use parley::twilio::{Form, InboundSms};
use parley_e2e::*;

fn sms(stack: &Stack, phone: &str, body: &str) -> (InboundSms, String) {
    let raw = InboundForm::new(stack, phone, body).encode();
    (
        InboundSms::from_form(&Form::parse(raw.as_bytes()).unwrap()).unwrap(),
        raw,
    )
}

async fn record(store: &Store, sms: &InboundSms, raw: &str) -> WriteOutcome {
    store
        .record_inbound(&InboundRecord {
            sms,
            raw_payload: raw,
            message_id: ulid::Ulid::new().to_string(),
            new_conversation_id: ulid::Ulid::new().to_string(),
            received_at: parley::time::now_rfc3339(),
            detection: language::detect(&sms.body),
            keyword: parley::consent::classify(&sms.body),
            trace: None,
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_duplicate_sid_is_reported_and_changes_nothing() {
    let stack = stack().await;
    let store = stack.own_table("dup").await;
    let phone = unique_phone();
    let (message, raw) = sms(&stack, &phone, "Gracias");
    assert_eq!(record(&store, &message, &raw).await, WriteOutcome::Recorded);
    let before = store
        .conversation(Channel::Sms, &message.from.e164)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record(&store, &message, &raw).await,
        WriteOutcome::Duplicate
    );
    let after = store
        .conversation(Channel::Sms, &message.from.e164)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.message_count, 1);
    assert_eq!(after.last_message_at, before.last_message_at);
    assert_eq!(after.conversation_id, before.conversation_id);
    assert_eq!(
        store
            .messages(Channel::Sms, &message.from.e164, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn messages_come_back_newest_first_and_the_conversation_id_is_stable() {
    let stack = stack().await;
    let store = stack.own_table("order").await;
    let phone = unique_phone();
    let mut ids = Vec::new();
    for text in ["Sim", "Obrigado", "Hola"] {
        let (message, raw) = sms(&stack, &phone, text);
        record(&store, &message, &raw).await;
        ids.push(
            store
                .messages(Channel::Sms, &message.from.e164, 1)
                .await
                .unwrap()[0]
                .message_id
                .clone(),
        );
    }
    let e164 = E164::parse(&phone).unwrap();
    let messages = store.messages(Channel::Sms, &e164, 10).await.unwrap();
    let got: Vec<_> = messages.iter().map(|m| m.message_id.clone()).collect();
    ids.reverse();
    assert_eq!(got, ids);
    let c = store
        .conversation(Channel::Sms, &e164)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((c.message_count, c.language), (3, Some(Language::Es)));
}

#[tokio::test]
async fn consent_history_grows_with_each_keyword() {
    let stack = stack().await;
    let store = stack.own_table("consent").await;
    let phone = unique_phone();
    for word in ["STOP", "START", "QUIT"] {
        let (message, raw) = sms(&stack, &phone, word);
        record(&store, &message, &raw).await;
    }
    let consent = store
        .consent(&E164::parse(&phone).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(consent.opted_out);
    assert_eq!(
        consent
            .history
            .iter()
            .map(|h| h.opted_out)
            .collect::<Vec<_>>(),
        [true, false, true]
    );
}

/// DynamoDB's size of an item: attribute names plus values (strings and binaries by their
/// bytes, numbers by their digits, lists and maps 3 bytes plus 1 per element).
fn item_size(item: &std::collections::HashMap<String, AttributeValue>) -> usize {
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => n.len().div_ceil(2) + 1,
            AttributeValue::B(b) => b.as_ref().len(),
            AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
            AttributeValue::L(l) => 3 + l.iter().map(|e| 1 + value(e)).sum::<usize>(),
            AttributeValue::M(m) => {
                3 + m.iter().map(|(k, e)| 1 + k.len() + value(e)).sum::<usize>()
            }
            AttributeValue::Ss(s) => s.iter().map(String::len).sum(),
            AttributeValue::Ns(n) => n.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
            _ => 0,
        }
    }
    item.iter().map(|(k, v)| k.len() + value(v)).sum()
}

async fn raw_consent(
    stack: &Stack,
    store: &Store,
    phone: &E164,
) -> std::collections::HashMap<String, AttributeValue> {
    aws_sdk_dynamodb::Client::new(&stack.sdk)
        .get_item()
        .table_name(store.table())
        .key(
            "pk",
            AttributeValue::S(format!("CONSENT#{}", phone.as_str())),
        )
        .key("sk", AttributeValue::S("STATE".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("a consent item")
}

async fn keyword(store: &Store, stack: &Stack, phone: &str, body: &str) -> InboundOutcome {
    let (message, raw) = sms(stack, phone, body);
    record_consent(store, &message, &raw).await
}

async fn record_consent(store: &Store, sms: &InboundSms, raw: &str) -> InboundOutcome {
    store
        .record_inbound_consent(&InboundRecord {
            sms,
            raw_payload: raw,
            message_id: ulid::Ulid::new().to_string(),
            new_conversation_id: ulid::Ulid::new().to_string(),
            received_at: parley::time::now_rfc3339(),
            detection: language::detect(&sms.body),
            keyword: parley::consent::classify(&sms.body),
            trace: None,
        })
        .await
        .unwrap()
}

/// A number that keeps texting STOP and START: each repeat writes nothing, each change keeps
/// only the newest `HISTORY_CAP` entries, and the item stays a couple of KB. 10,000 writes
/// take minutes on the emulator (docs/architecture.md), so this runs enough to pass the cap
/// several times over, every one of them a real write read back.
#[tokio::test]
async fn consent_stays_small_however_often_a_number_opts_out_and_in() {
    let stack = stack().await;
    let store = stack.own_table("consent-cap").await;
    let phone = unique_phone();
    let e164 = E164::parse(&phone).unwrap();
    let rounds = std::env::var("CONSENT_CAP_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(HISTORY_CAP * 5);
    let started = std::time::Instant::now();
    let (mut changed, mut unchanged) = (0, 0);
    for round in 0..rounds {
        // STOP twice then START: the second STOP repeats the state.
        for body in ["STOP", "stop please", "START"] {
            match keyword(&store, &stack, &phone, body).await.consent {
                ConsentOutcome::Changed => changed += 1,
                ConsentOutcome::Unchanged => unchanged += 1,
                ConsentOutcome::Untouched => panic!("{body} is a consent keyword"),
            }
        }
        if round == 0 {
            let consent = store.consent(&e164).await.unwrap().unwrap();
            assert_eq!(consent.history.len(), 2, "a repeated STOP is not appended");
        }
    }
    let writes = rounds * 3;
    println!(
        "consent cap: {writes} keyword messages in {:.1} s ({:.1} ms each)",
        started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64() * 1e3 / writes as f64
    );
    assert_eq!((changed, unchanged), (rounds * 2, rounds));

    let consent = store.consent(&e164).await.unwrap().unwrap();
    assert!(!consent.opted_out);
    assert_eq!(consent.history.len(), HISTORY_CAP);
    assert_eq!(consent.version, (rounds * 2) as u64);
    let states: Vec<bool> = consent.history.iter().map(|h| h.opted_out).collect();
    assert!(states.windows(2).all(|w| w[0] != w[1]), "{states:?}");
    let size = item_size(&raw_consent(&stack, &store, &e164).await);
    println!("consent cap: item of {size} bytes after {writes} keyword messages");
    assert!(size < 4096, "{size} bytes");

    // Still opts out and in.
    assert_eq!(
        keyword(&store, &stack, &phone, "PARAR").await.consent,
        ConsentOutcome::Changed
    );
    let consent = store.consent(&e164).await.unwrap().unwrap();
    assert!(consent.opted_out);
    assert_eq!(consent.keyword, "PARAR");
    assert_eq!(consent.history.len(), HISTORY_CAP);
}

#[tokio::test]
async fn a_repeated_stop_changes_nothing_and_a_redelivered_one_is_answered_like_the_first() {
    let stack = stack().await;
    let store = stack.own_table("consent-repeat").await;
    let phone = unique_phone();
    let e164 = E164::parse(&phone).unwrap();
    let (first, raw) = sms(&stack, &phone, "Stop texting me");
    let outcome = record_consent(&store, &first, &raw).await;
    assert_eq!(
        (outcome.write, outcome.consent),
        (WriteOutcome::Recorded, ConsentOutcome::Changed)
    );
    let again = keyword(&store, &stack, &phone, "STOP").await;
    assert_eq!(
        (again.write, again.consent),
        (WriteOutcome::Recorded, ConsentOutcome::Unchanged)
    );
    let redelivered = record_consent(&store, &first, &raw).await;
    assert_eq!(
        (redelivered.write, redelivered.consent),
        (WriteOutcome::Duplicate, ConsentOutcome::Changed)
    );
    // Twilio's 21610 for a number already opted out appends nothing either.
    store
        .record_opt_out(&e164, "TWILIO_21610", "m", &parley::time::now_rfc3339())
        .await
        .unwrap();
    let consent = store.consent(&e164).await.unwrap().unwrap();
    assert_eq!(consent.history.len(), 1);
    assert_eq!(consent.keyword, "STOP TEXTING");
    assert_eq!(consent.version, 1);
    // A START from a number never opted out leaves no item behind.
    let other = unique_phone();
    assert_eq!(
        keyword(&store, &stack, &other, "START").await.consent,
        ConsentOutcome::Unchanged
    );
    assert!(store
        .consent(&E164::parse(&other).unwrap())
        .await
        .unwrap()
        .is_none());
}

/// Keywords from one number racing each other: every write decides on the state it read, so
/// the history alternates (no change is lost or recorded twice) and ends in the item's state.
#[tokio::test]
async fn concurrent_keywords_of_one_number_keep_a_consistent_history() {
    let stack = stack().await;
    let store = stack.own_table("consent-race").await;
    let phone = unique_phone();
    let outcomes = futures::future::join_all((0..8).map(|i| {
        let (store, stack, phone) = (&store, &stack, &phone);
        async move {
            let body = if i % 2 == 0 { "STOP" } else { "START" };
            keyword(store, stack, phone, body).await
        }
    }))
    .await;
    let changed = outcomes
        .iter()
        .filter(|o| o.consent == ConsentOutcome::Changed)
        .count();
    let consent = store
        .consent(&E164::parse(&phone).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(consent.history.len(), changed.min(HISTORY_CAP));
    assert_eq!(consent.version, changed as u64);
    let states: Vec<bool> = consent.history.iter().map(|h| h.opted_out).collect();
    assert!(states.windows(2).all(|w| w[0] != w[1]), "{states:?}");
    assert_eq!(states.last(), Some(&consent.opted_out));
}

#[tokio::test]
async fn a_redelivered_opt_in_is_answered_like_the_first_and_a_legacy_history_is_trimmed() {
    let stack = stack().await;
    let store = stack.own_table("consent-legacy").await;
    let phone = unique_phone();
    let e164 = E164::parse(&phone).unwrap();
    // An item as written before the cap: no version, no changed_by, 30 entries of history.
    let entry = |i: usize| {
        AttributeValue::M(
            [
                ("opted_out", AttributeValue::Bool(i % 2 == 1)),
                ("keyword", AttributeValue::S("STOP".into())),
                (
                    "at",
                    AttributeValue::S(format!("2025-01-01T00:00:{:02}.000Z", i)),
                ),
                ("message_id", AttributeValue::S(format!("legacy-{i}"))),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        )
    };
    aws_sdk_dynamodb::Client::new(&stack.sdk)
        .put_item()
        .table_name(store.table())
        .item("pk", AttributeValue::S(format!("CONSENT#{phone}")))
        .item("sk", AttributeValue::S("STATE".into()))
        .item("entity", AttributeValue::S("consent".into()))
        .item("phone", AttributeValue::S(phone.clone()))
        .item("opted_out", AttributeValue::Bool(true))
        .item("keyword", AttributeValue::S("STOP".into()))
        .item(
            "updated_at",
            AttributeValue::S("2025-01-01T00:00:29.000Z".into()),
        )
        .item("history", AttributeValue::L((0..30).map(entry).collect()))
        .send()
        .await
        .unwrap();

    let (start, raw) = sms(&stack, &phone, "START");
    let first = record_consent(&store, &start, &raw).await;
    assert_eq!(
        (first.write, first.consent),
        (WriteOutcome::Recorded, ConsentOutcome::Changed)
    );
    let consent = store.consent(&e164).await.unwrap().unwrap();
    assert!(!consent.opted_out);
    assert_eq!(consent.history.len(), HISTORY_CAP);
    assert_eq!(consent.history[0].message_id, "legacy-11");
    assert_eq!(consent.version, 1);

    let redelivered = record_consent(&store, &start, &raw).await;
    assert_eq!(
        (redelivered.write, redelivered.consent),
        (WriteOutcome::Duplicate, ConsentOutcome::Changed)
    );
    let yes = keyword(&store, &stack, &phone, "YES").await;
    assert_eq!(
        (yes.write, yes.consent),
        (WriteOutcome::Recorded, ConsentOutcome::Unchanged)
    );
    assert_eq!(store.consent(&e164).await.unwrap().unwrap().version, 1);
}
