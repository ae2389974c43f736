//! The field envelope against the emulator's KMS and a table of its own: sealing makes no KMS
//! call, another instance opens what one sealed, and a field moved or altered does not open.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_sdk_kms::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_kms::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use parley::envelope::{Envelope, EnvelopeError};
use parley_e2e::*;

/// Counts the KMS requests a client sends.
#[derive(Debug, Clone, Default)]
struct KmsCalls(Arc<AtomicUsize>);

impl Intercept for KmsCalls {
    fn name(&self) -> &'static str {
        "KmsCalls"
    }

    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

async fn kms_key(stack: &Stack) -> String {
    aws_sdk_kms::Client::new(&stack.sdk)
        .create_key()
        .description("parley test data key")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id
}

fn counted_kms(stack: &Stack) -> (aws_sdk_kms::Client, KmsCalls) {
    let calls = KmsCalls::default();
    let client = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::config::Builder::from(&stack.sdk)
            .interceptor(calls.clone())
            .build(),
    );
    (client, calls)
}

#[tokio::test]
async fn sealing_costs_no_kms_call_and_another_instance_opens_it_with_one() {
    let stack = stack().await;
    let store = stack.own_table("envelope").await;
    let key = kms_key(&stack).await;

    let (kms, writer_calls) = counted_kms(&stack);
    let writer = Envelope::start(kms, &key, store.clone()).await.unwrap();
    assert_eq!(
        writer_calls.0.load(Ordering::SeqCst),
        1,
        "one data key at start"
    );
    let body = unique_body("¿Pueden arreglar la calefacción? 🔥");
    let sealed: Vec<String> = (0..100)
        .map(|i| writer.seal(&body, &format!("message-{i}")).unwrap())
        .collect();
    assert_eq!(writer_calls.0.load(Ordering::SeqCst), 1, "sealing is local");
    assert!(sealed
        .iter()
        .all(|s| !s.contains(&body) && Envelope::is_sealed(s)));
    assert_ne!(sealed[0], sealed[1], "a fresh nonce each time");

    let (kms, reader_calls) = counted_kms(&stack);
    let reader = Envelope::start(kms, &key, store.clone()).await.unwrap();
    for (i, s) in sealed.iter().enumerate() {
        assert_eq!(reader.open(s, &format!("message-{i}")).await.unwrap(), body);
    }
    assert_eq!(
        reader_calls.0.load(Ordering::SeqCst),
        2,
        "its own data key, then the writer's unwrapped once and cached"
    );
}

#[tokio::test]
async fn a_field_moved_to_another_item_or_altered_does_not_open() {
    let stack = stack().await;
    let store = stack.own_table("envelope-forged").await;
    let key = kms_key(&stack).await;
    let envelope = Envelope::start(aws_sdk_kms::Client::new(&stack.sdk), &key, store)
        .await
        .unwrap();
    let sealed = envelope
        .seal("Rent is due on the 1st", "message-a")
        .unwrap();

    assert!(matches!(
        envelope.open(&sealed, "message-b").await,
        Err(EnvelopeError::Forged)
    ));
    let mut altered = sealed.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    assert!(matches!(
        envelope.open(&altered, "message-a").await,
        Err(EnvelopeError::Forged | EnvelopeError::Malformed)
    ));
    assert!(matches!(
        envelope.open("plain text", "message-a").await,
        Err(EnvelopeError::Malformed)
    ));
    let unknown = format!(
        "pe1:{}:{}",
        "0".repeat(26),
        sealed.splitn(3, ':').nth(2).unwrap()
    );
    assert!(matches!(
        envelope.open(&unknown, "message-a").await,
        Err(EnvelopeError::UnknownKey(_))
    ));
}

#[tokio::test]
async fn the_running_stack_stores_no_body_media_url_or_payload_in_plain_text() {
    let stack = stack().await;
    let phone = unique_phone();
    let inbound = unique_body("The kitchen sink is leaking again");
    let media_marker = ulid::Ulid::new().to_string();
    let form = InboundForm::new(&stack, &phone, &inbound)
        .set("NumMedia", "1")
        .set(
            "MediaUrl0",
            &format!(
                "https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/{media_marker}"
            ),
        )
        .set("MediaContentType0", "image/jpeg");
    assert_eq!(stack.post_inbound(&form).await.status, 200);
    let outbound = unique_body("A plumber comes tomorrow at 10");
    let sent = stack
        .send(&serde_json::json!({"to": phone, "body": outbound}), None)
        .await;
    assert_eq!(sent.status, 202, "{}", sent.body);
    let message_id = sent.json()["message_id"].as_str().unwrap().to_owned();

    // Both read back in plain text through the API…
    let read = stack
        .get(&format!("/messages/{message_id}"), Some(&stack.api_key))
        .await;
    assert_eq!(read.json()["body"], outbound.as_str());

    // …and nowhere in the table.
    let client = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let table = stack.env.get("TABLE_NAME").unwrap();
    let mut start = None;
    let mut items = 0;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in page.items.unwrap_or_default() {
            items += 1;
            let text = format!("{item:?}");
            for secret in [&inbound, &outbound, &media_marker] {
                assert!(
                    !text.contains(secret.as_str()),
                    "found in plain text: {:?}",
                    item.get("pk")
                );
            }
            // The raw payload form-encodes the body: look for that form too.
            assert!(!text.contains(&encode(&inbound)));
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    assert!(items > 2, "the scan saw the table");
}
