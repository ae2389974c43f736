//! The circuit breakers end to end: a send worker and an inbound processor run in this process
//! (each its own "Lambda instance", with its own breaker on a manual clock) against the
//! emulator's queues and tables, the Twilio sandbox and the Collections Monitor stub, whose
//! injected faults play the outage. The stack's own functions keep their breakers closed:
//! the suite shares them, and other tests' deliberate faults must not pause everyone's sends.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, QueueAttributeName};
use parley::breaker::{Breaker, BreakerConfig, BreakerState};
use parley::handlers::inbound_processor::InboundProcessor;
use parley::handlers::send_worker::{SendWorker, WorkerConfig};
use parley::pending::Policy;
use parley::phone::{Address, Channel, E164};
use parley::pipeline::PipelineState;
use parley::store::{keys, CreateOutcome, NewOutbound, Store};
use parley::time::{ManualClock, Timestamp};
use parley::twilio::client::{Sender, TwilioClient};
use parley_e2e::*;
use serde_json::json;

/// Opens after 4 calls of which half failed; 2 s open at first.
fn breaker_config() -> BreakerConfig {
    BreakerConfig {
        window: 10,
        window_age: Duration::from_secs(600),
        min_calls: 4,
        failure_share: 0.5,
        open_base: Duration::from_secs(2),
        open_cap: Duration::from_secs(8),
    }
}

/// A queue of the test's own with a dead-letter queue after `max_receives` receives, as the
/// template's send queue: (queue URL, dead-letter queue URL).
async fn own_queue_pair(sqs: &aws_sdk_sqs::Client, max_receives: u32) -> (String, String) {
    let name = format!(
        "test-breaker-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let queue = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::VisibilityTimeout, "30")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives}).to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (queue, dlq)
}

/// Writes a queued outbound message and returns its job's body.
async fn queued(store: &Store, to: &str, body: &str) -> String {
    let message_id = ulid::Ulid::new().to_string();
    let address = Address::parse(to).unwrap();
    let outcome = store
        .create_outbound(&NewOutbound::queued(
            message_id.clone(),
            &address,
            body,
            Timestamp::now(),
        ))
        .await
        .unwrap();
    assert!(matches!(outcome, CreateOutcome::Created));
    json!({
        "message_id": message_id,
        "pk": keys::conversation_pk(address.channel, &address.e164),
        "sk": keys::message_sk(&message_id),
    })
    .to_string()
}

async fn stored(store: &Store, to: &str) -> parley::store::Message {
    let address = Address::parse(to).unwrap();
    let mut messages = store
        .messages(address.channel, &address.e164, 10)
        .await
        .unwrap();
    assert_eq!(messages.len(), 1);
    messages.remove(0)
}

/// Receives until `n` jobs are in hand (each received once, hidden for 30 s meanwhile).
async fn receive(sqs: &aws_sdk_sqs::Client, queue: &str, n: usize) -> Vec<SqsMessage> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut records: Vec<SqsMessage> = Vec::new();
    while records.len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {n} jobs back on the queue ({} came)",
            records.len()
        );
        let received = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in received.messages.unwrap_or_default() {
            let mut record = SqsMessage::default();
            record.message_id = m.message_id;
            record.receipt_handle = m.receipt_handle;
            record.body = m.body;
            record.event_source = Some("aws:sqs".into());
            records.push(record);
        }
    }
    assert_eq!(records.len(), n, "exactly the expected jobs");
    records
}

/// One invocation as Lambda's SQS source makes it: the batch to the worker, then the records
/// it did not report as failed deleted. The number of failed records.
async fn invoke(
    worker: &SendWorker,
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    records: Vec<SqsMessage>,
) -> usize {
    let mut event = SqsEvent::default();
    event.records = records;
    let response = worker.handle(event.clone()).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    let done: Vec<DeleteMessageBatchRequestEntry> = event
        .records
        .iter()
        .filter(|r| !failed.contains(&r.message_id.as_deref().unwrap_or("")))
        .enumerate()
        .map(|(i, r)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .set_receipt_handle(r.receipt_handle.clone())
                .build()
                .unwrap()
        })
        .collect();
    if !done.is_empty() {
        sqs.delete_message_batch()
            .queue_url(queue)
            .set_entries(Some(done))
            .send()
            .await
            .unwrap();
    }
    failed.len()
}

async fn visible(sqs: &aws_sdk_sqs::Client, queue: &str) -> usize {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    attributes
        .values()
        .map(|v| v.parse::<usize>().unwrap_or(0))
        .sum()
}

/// Create calls the sandbox received for each recipient.
async fn calls(stack: &Stack, recipients: &[String]) -> Vec<usize> {
    let mut counts = Vec::new();
    for to in recipients {
        counts.push(stack.sandbox_calls(to).await.len());
    }
    counts
}

/// Four queued messages with their jobs on `queue`, each recipient's next create call at the
/// sandbox answered with the fault `kind`: the recipients.
async fn storm(
    stack: &Stack,
    store: &Store,
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    kind: &str,
) -> Vec<String> {
    let recipients: Vec<String> = (0..4).map(|_| unique_phone()).collect();
    for to in &recipients {
        stack
            .sandbox_control(
                "faults",
                json!({"to": to, "kind": kind, "count": 1, "delay_ms": 3000}),
            )
            .await;
        let job = queued(store, to, &unique_body("Your lease renewal is ready")).await;
        sqs.send_message()
            .queue_url(queue)
            .message_body(job)
            .send()
            .await
            .unwrap();
    }
    recipients
}

/// A worker of its own on `queue`, with the test's breaker on `clock`; Twilio calls time out
/// after 2 s.
async fn twilio_worker(
    stack: &Stack,
    store: &Store,
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    clock: Arc<ManualClock>,
) -> SendWorker {
    let (_, secrets) = stack.own_secrets(&stack.token, None).await;
    let twilio = TwilioClient::new(
        &stack.sandbox(),
        Sender::Number(TWILIO_NUMBER.into()),
        Duration::from_secs(2),
    )
    .unwrap();
    let config = WorkerConfig {
        status_callback_url: format!("{}/webhook/twilio/status", stack.public_base_url),
        max_attempts: 5,
        retry_base: Duration::from_secs(1),
        retry_cap: Duration::from_secs(10),
        claim_lease: Duration::from_secs(60),
        rate_per_second: 0.0,
    };
    SendWorker::new(
        store.clone(),
        sqs.clone(),
        queue.to_owned(),
        twilio,
        secrets,
        config,
    )
    .with_policy(Arc::new(Policy::always_open()))
    .with_twilio_breaker(Breaker::new("twilio", breaker_config(), clock))
}

/// A 5xx storm at Twilio opens the worker's breaker; while it is open no call is made, no
/// attempt is counted and nothing is dead-lettered, however many times the jobs come back;
/// after the storm the probe closes it and every message is sent exactly once.
#[tokio::test]
async fn a_twilio_5xx_storm_opens_the_breaker_and_nothing_is_lost_sent_twice_or_dead_lettered() {
    let stack = stack().await;
    let store = stack.own_table("twilio-breaker").await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let (queue, dlq) = own_queue_pair(&sqs, 5).await;
    // The storm: Twilio answers each recipient's next create with a 500.
    let recipients = storm(&stack, &store, &sqs, &queue, "server_error").await;
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let worker = twilio_worker(&stack, &store, &sqs, &queue, clock.clone()).await;

    // The storm: every call fails, and the fourth failure opens the breaker.
    let records = receive(&sqs, &queue, 4).await;
    assert_eq!(
        invoke(&worker, &sqs, &queue, records).await,
        4,
        "each retried"
    );
    assert_eq!(worker.twilio_breaker().state(), BreakerState::Open);
    assert_eq!(calls(&stack, &recipients).await, [1, 1, 1, 1]);
    for to in &recipients {
        let message = stored(&store, to).await;
        assert_eq!(message.status, PipelineState::Queued);
        assert_eq!(message.attempts, 1);
    }

    // Open (the breaker's clock stands still): the jobs come back twice and are held each
    // time, unclaimed and uncalled.
    for _ in 0..2 {
        let records = receive(&sqs, &queue, 4).await;
        assert_eq!(
            invoke(&worker, &sqs, &queue, records).await,
            0,
            "held as fresh copies, not failed receives"
        );
        assert_eq!(worker.twilio_breaker().state(), BreakerState::Open);
        assert_eq!(
            calls(&stack, &recipients).await,
            [1, 1, 1, 1],
            "no call while open"
        );
        for to in &recipients {
            let message = stored(&store, to).await;
            assert_eq!(message.status, PipelineState::Queued);
            assert_eq!(message.attempts, 1, "holding costs no attempt");
        }
        assert_eq!(visible(&sqs, &dlq).await, 0, "nothing dead-lettered");
    }

    // The storm is over and the open interval has passed: one job is the probe, its success
    // closes the breaker, and the others follow.
    clock.set(Timestamp::now().plus(Duration::from_secs(3)));
    let records = receive(&sqs, &queue, 4).await;
    assert_eq!(invoke(&worker, &sqs, &queue, records).await, 0);
    assert_eq!(worker.twilio_breaker().state(), BreakerState::Closed);
    let probed: usize = calls(&stack, &recipients).await.iter().sum();
    assert_eq!(probed, 5, "exactly one probe");
    let records = receive(&sqs, &queue, 3).await;
    assert_eq!(invoke(&worker, &sqs, &queue, records).await, 0);

    for to in &recipients {
        let message = stored(&store, to).await;
        assert_eq!(message.status, PipelineState::Submitted);
        assert_eq!(
            message.attempts, 2,
            "the failed call and the one that went through"
        );
        let calls = stack.sandbox_calls(to).await;
        let outcomes: Vec<&str> = calls
            .iter()
            .map(|c| c["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(outcomes, ["error:20500", "created"], "sent exactly once");
    }
    assert_eq!(visible(&sqs, &queue).await, 0, "no job left");
    assert_eq!(visible(&sqs, &dlq).await, 0, "nothing dead-lettered");
}

/// Twilio accepting messages but answering too late (timeouts) opens the breaker too. While
/// it is open the ambiguous messages are held without a create call; after it, the probe's
/// first call is the reconciliation's lookup, and each message is found at Twilio and
/// recorded, never created twice.
#[tokio::test]
async fn twilio_timing_out_opens_the_breaker_and_its_ambiguous_messages_are_reconciled_after() {
    let stack = stack().await;
    let store = stack.own_table("twilio-timeouts").await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let (queue, dlq) = own_queue_pair(&sqs, 5).await;
    // Created at Twilio, answered after 3 s: the worker has given up after 2.
    let recipients = storm(&stack, &store, &sqs, &queue, "accept_then_timeout").await;
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let worker = twilio_worker(&stack, &store, &sqs, &queue, clock.clone()).await;

    let records = receive(&sqs, &queue, 4).await;
    assert_eq!(
        invoke(&worker, &sqs, &queue, records).await,
        4,
        "each retried"
    );
    assert_eq!(worker.twilio_breaker().state(), BreakerState::Open);
    for to in &recipients {
        let message = stored(&store, to).await;
        assert!(message.ambiguous, "Twilio may have it");
        assert_eq!(message.attempts, 1);
    }

    let records = receive(&sqs, &queue, 4).await;
    assert_eq!(invoke(&worker, &sqs, &queue, records).await, 0, "held");
    assert_eq!(
        calls(&stack, &recipients).await,
        [1, 1, 1, 1],
        "no call while open"
    );

    clock.set(Timestamp::now().plus(Duration::from_secs(3)));
    let records = receive(&sqs, &queue, 4).await;
    assert_eq!(invoke(&worker, &sqs, &queue, records).await, 0);
    assert_eq!(worker.twilio_breaker().state(), BreakerState::Closed);
    let records = receive(&sqs, &queue, 3).await;
    assert_eq!(invoke(&worker, &sqs, &queue, records).await, 0);
    for to in &recipients {
        let message = stored(&store, to).await;
        assert_eq!(message.status, PipelineState::Submitted);
        let at_twilio = stack.sandbox_messages(to).await;
        assert_eq!(at_twilio.len(), 1, "created once");
        assert_eq!(at_twilio[0]["create_calls"], 1);
        assert_eq!(at_twilio[0]["sid"].as_str(), message.twilio_sid.as_deref());
    }
    assert_eq!(visible(&sqs, &dlq).await, 0, "nothing dead-lettered");
}

fn tenant_id() -> String {
    format!("t-{}", ulid::Ulid::new())
}

/// A processor on `store` with its own breaker on `clock`.
fn processor(stack: &Stack, store: &Store, clock: Arc<ManualClock>) -> InboundProcessor {
    use parley::events::EventPublisher;
    use parley::monitor::MonitorClient;
    let monitor = MonitorClient::new(
        &stack.monitor(),
        stack.env.get("LOCAL_MONITOR_API_KEY").unwrap(),
        Duration::from_secs(3),
    )
    .unwrap();
    let bus = format!("{}EventBus", stack.env.get("LOCAL_QUEUE_PREFIX").unwrap());
    let events = EventPublisher::new(aws_sdk_eventbridge::Client::new(&stack.sdk), bus);
    InboundProcessor::new(store.clone(), monitor, events, "test-pseudonym-key")
        .with_monitor_breaker(Breaker::new("monitor", breaker_config(), clock))
}

async fn lookups(stack: &Stack, phone: &str) -> Vec<u64> {
    stack.monitor_get("lookups", &[("phone", phone)]).await["lookups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["status"].as_u64().unwrap())
        .collect()
}

async fn tenant_of(store: &Store, phone: &str) -> Option<String> {
    let e164 = E164::parse(phone).unwrap();
    store
        .conversation(Channel::Sms, &e164)
        .await
        .unwrap()
        .and_then(|c| c.tenant_id)
}

/// The monitor down for four senders' lookups opens the processor's breaker: later senders are
/// left for reconciliation and a language push is retried, all without a call; after the
/// outage the reconciliation's first lookup is the probe, and every sender is linked.
#[tokio::test]
async fn a_monitor_outage_opens_the_breaker_and_every_sender_is_linked_after_it() {
    let stack = stack().await;
    let store = stack.own_table("monitor-breaker").await;
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let processor = processor(&stack, &store, clock.clone());
    let phones: Vec<String> = (0..4).map(|_| unique_phone()).collect();
    let tenants: Vec<String> = phones.iter().map(|_| tenant_id()).collect();
    for (phone, tenant) in phones.iter().zip(&tenants) {
        stack.add_tenant(tenant, &[phone]).await;
        stack
            .monitor_control("faults", json!({"kind": "down", "phone": phone}))
            .await;
    }

    // The first sender's lookup fails three times (retried), the second's once more: four
    // failures open the breaker, and the second's retries are not made.
    for phone in &phones[..2] {
        let event = recorded_message(&stack, &store, phone).await.1;
        let response = processor.handle_stream(event).await;
        assert!(
            response.batch_item_failures.is_empty(),
            "a failed lookup leaves the sender to reconciliation"
        );
    }
    assert_eq!(processor.monitor_breaker().state(), BreakerState::Open);
    assert_eq!(lookups(&stack, &phones[0]).await, [503, 503, 503]);
    assert_eq!(lookups(&stack, &phones[1]).await, [503]);

    // Open: the next senders are not looked up at all, and left for reconciliation too.
    for phone in &phones[2..] {
        let event = recorded_message(&stack, &store, phone).await.1;
        let response = processor.handle_stream(event).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(
            lookups(&stack, phone).await,
            Vec::<u64>::new(),
            "not called"
        );
    }
    // A known sender's language push is retried (the record fails) without a call.
    let known = unique_phone();
    let known_tenant = tenant_id();
    stack.add_tenant(&known_tenant, &[&known]).await;
    let push = recorded_message(&stack, &store, &known).await.1;
    let mapping = parley::store::tenants::PhoneTenant {
        tenant_id: known_tenant.clone(),
        matched_variant: "e164".into(),
        updated_at: parley::time::now_rfc3339(),
        time_zone: None,
    };
    assert!(store
        .put_phone_tenant(Channel::Sms, &E164::parse(&known).unwrap(), &mapping)
        .await
        .unwrap());
    let response = processor.handle_stream(push.clone()).await;
    assert_eq!(response.batch_item_failures.len(), 1, "retried");
    let updates = stack
        .monitor_get("profile-updates", &[("tenant_id", &known_tenant)])
        .await;
    assert_eq!(updates["updates"], json!([]), "not called");
    for phone in &phones {
        assert_eq!(tenant_of(&store, phone).await, None);
    }

    // The outage ends and the open interval passes: the reconciliation's first lookup is the
    // probe, its answer closes the breaker, and every sender is linked.
    for phone in &phones {
        stack
            .monitor_control("faults/clear", json!({"phone": phone}))
            .await;
    }
    clock.set(Timestamp::now().plus(Duration::from_secs(3)));
    let report = processor.reconcile().await.unwrap();
    assert_eq!(processor.monitor_breaker().state(), BreakerState::Closed);
    assert_eq!((report.linked, report.still_pending), (4, 0), "{report:?}");
    for (phone, tenant) in phones.iter().zip(&tenants) {
        assert_eq!(
            tenant_of(&store, phone).await.as_deref(),
            Some(tenant.as_str())
        );
    }
    assert_eq!(
        lookups(&stack, &phones[2]).await,
        [200],
        "one lookup, after"
    );
    assert_eq!(lookups(&stack, &phones[3]).await, [200]);
    // The retried record now pushes the preference, once.
    let response = processor.handle_stream(push).await;
    assert!(response.batch_item_failures.is_empty());
    let updates = stack
        .monitor_get("profile-updates", &[("tenant_id", &known_tenant)])
        .await;
    assert_eq!(updates["updates"].as_array().unwrap().len(), 1);
}
