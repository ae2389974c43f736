//! The store against the emulator, each test on a table of its own made from template.yaml.

use parley::consent::Keyword;
use parley::language::{self, Language};
use parley::phone::{Channel, E164};
use parley::store::{InboundRecord, Store, WriteOutcome};
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
            keyword: Keyword::classify(&sms.body),
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
