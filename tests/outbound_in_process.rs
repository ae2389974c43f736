//! Send workers run in this process against the emulator and the sandbox: a redelivered job,
//! two workers racing for one message, the store failing mid-send, and the shipped sample events.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use parley::handlers::send_sms::SendSmsHandler;
use parley::handlers::send_worker::{SendWorker, WorkerConfig};
use parley::pending::Policy;
use parley::phone::Address;
use parley::pipeline::PipelineState;
use parley::queue::JobQueue;
use parley::send::SendService;
use parley::store::{keys, CreateOutcome, NewOutbound, Store};
use parley::twilio::client::{Sender, TwilioClient};
use parley_e2e::*;
use serde_json::{json, Value};

fn config(stack: &Stack) -> WorkerConfig {
    WorkerConfig {
        status_callback_url: format!("{}/webhook/twilio/status", stack.public_base_url),
        max_attempts: 5,
        retry_base: Duration::from_secs(1),
        retry_cap: Duration::from_secs(10),
        claim_lease: Duration::from_secs(60),
        rate_per_second: 0.0,
    }
}

async fn worker(stack: &Stack, store: &Store) -> SendWorker {
    worker_with(stack, store, config(stack)).await
}

async fn worker_with(stack: &Stack, store: &Store, config: WorkerConfig) -> SendWorker {
    let (_, secrets) = stack.own_secrets(&stack.token, None).await;
    let twilio = TwilioClient::new(
        &stack.sandbox(),
        Sender::Number(TWILIO_NUMBER.into()),
        Duration::from_secs(2),
    )
    .unwrap();
    SendWorker::new(
        store.clone(),
        aws_sdk_sqs::Client::new(&stack.sdk),
        stack.queue_url("SendQueue").await,
        twilio,
        secrets,
        config,
    )
    .with_policy(Arc::new(Policy::always_open()))
}

/// Writes a queued outbound message directly and returns the job body the API would enqueue.
async fn queued(store: &Store, to: &str, body: &str, message_id: &str) -> String {
    let address = Address::parse(to).unwrap();
    let outcome = store
        .create_outbound(&NewOutbound::queued(
            message_id.into(),
            &address,
            body,
            parley::time::Timestamp::now(),
        ))
        .await
        .unwrap();
    assert!(matches!(outcome, CreateOutcome::Created));
    json!({
        "message_id": message_id,
        "pk": keys::conversation_pk(address.channel, &address.e164),
        "sk": keys::message_sk(message_id),
    })
    .to_string()
}

fn event(bodies: &[&str]) -> SqsEvent {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| json!({"messageId": format!("m-{i}"), "receiptHandle": format!("r-{i}"), "body": body, "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "eventSource": "aws:sqs"}))
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

#[tokio::test]
async fn a_job_delivered_twice_and_two_racing_workers_make_one_twilio_call() {
    let stack = stack().await;
    let store = stack.own_table("race").await;
    let to = unique_phone();
    let body = unique_body("Your move-in checklist is attached");
    let job = queued(&store, &to, &body, &ulid::Ulid::new().to_string()).await;

    let (a, b) = (worker(&stack, &store).await, worker(&stack, &store).await);
    // The same job twice in one batch, and the same batch to two workers at once.
    let batch = event(&[&job, &job]);
    let (ra, rb) = tokio::join!(a.handle(batch.clone()), b.handle(batch));
    // The second copy in a batch is dropped; a worker that finds the message claimed by the
    // other leaves its job for later rather than dropping it. At most one of them can lose.
    let left = ra.batch_item_failures.len() + rb.batch_item_failures.len();
    assert!(left <= 1, "{ra:?} {rb:?}");
    // And once more later, as SQS redelivers after a lost delete or the retry delay.
    assert!(a
        .handle(event(&[&job]))
        .await
        .batch_item_failures
        .is_empty());

    let calls: Vec<_> = stack.sandbox_calls(&to).await;
    assert_eq!(calls.len(), 1, "one create call: {calls:?}");
    let at_twilio = stack.sandbox_messages_with(&to, &body).await;
    assert_eq!(at_twilio[0]["create_calls"], 1);
}

/// Makes a store fail the way a network does: a refused request never reaches the emulator;
/// a lost answer is applied by it, and then the caller hears nothing back.
#[derive(Debug)]
struct Fault {
    operation: &'static str,
    /// Calls of `operation` that go through before the fault starts.
    pass_first: usize,
    lose_answer: bool,
    seen: AtomicUsize,
}

impl Fault {
    fn refuse(operation: &'static str, pass_first: usize) -> Self {
        Self {
            operation,
            pass_first,
            lose_answer: false,
            seen: AtomicUsize::new(0),
        }
    }

    fn lose_answer(operation: &'static str) -> Self {
        Self {
            lose_answer: true,
            ..Self::refuse(operation, 0)
        }
    }
}

#[derive(Debug)]
struct Faults(Vec<Fault>);

impl Faults {
    fn strike(&self, cfg: &ConfigBag, lose_answer: bool) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().map(|m| m.name().to_owned());
        for fault in &self.0 {
            if fault.lose_answer == lose_answer
                && operation.as_deref() == Some(fault.operation)
                && fault.seen.fetch_add(1, Ordering::SeqCst) >= fault.pass_first
            {
                return Err(format!("injected fault in {}", fault.operation).into());
            }
        }
        Ok(())
    }
}

impl Intercept for Faults {
    fn name(&self) -> &'static str {
        "Faults"
    }

    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.strike(cfg, false)
    }

    fn read_before_deserialization(
        &self,
        _: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.strike(cfg, true)
    }
}

fn faulty(stack: &Stack, store: &Store, faults: Vec<Fault>) -> Store {
    let config = aws_sdk_dynamodb::config::Builder::from(&stack.sdk)
        .interceptor(Faults(faults))
        .build();
    Store::new(aws_sdk_dynamodb::Client::from_conf(config), store.table())
}

fn with_lease(stack: &Stack, lease: Duration) -> WorkerConfig {
    WorkerConfig {
        claim_lease: lease,
        ..config(stack)
    }
}

/// After a fault left the message claimed: a worker must not drop the job while the claim is
/// live, and once it has expired takes the message over and sends it exactly once in all.
async fn recovered_after_the_lease(stack: &Stack, store: &Store, job: &str, to: &str) {
    let live = worker(stack, store).await.handle(event(&[job])).await;
    assert!(
        live.batch_item_failures.is_empty(),
        "a job whose message is claimed comes back later, as a fresh copy"
    );
    assert_ne!(
        stored(store, job).await.status,
        PipelineState::Submitted,
        "not sent under another worker's live claim"
    );
    let expired = worker_with(stack, store, with_lease(stack, Duration::ZERO)).await;
    assert!(expired
        .handle(event(&[job]))
        .await
        .batch_item_failures
        .is_empty());
    let calls = stack.sandbox_calls(to).await;
    assert_eq!(calls.len(), 1, "exactly one create call: {calls:?}");
}

async fn stored(store: &Store, job: &str) -> parley::store::Message {
    let job: Value = serde_json::from_str(job).unwrap();
    store
        .message(job["pk"].as_str().unwrap(), job["sk"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_claim_applied_but_unanswered_is_not_lost() {
    let stack = stack().await;
    let store = stack.own_table("claim-lost").await;
    let to = unique_phone();
    let job = queued(
        &store,
        &to,
        &unique_body("Rent reminder"),
        &ulid::Ulid::new().to_string(),
    )
    .await;

    let broken = faulty(
        &stack,
        &store,
        vec![Fault::lose_answer("TransactWriteItems")],
    );
    let response = worker(&stack, &broken).await.handle(event(&[&job])).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "a store fault is not a delivery attempt: a fresh copy of the job, not a failed receive"
    );
    assert_eq!(
        stored(&store, &job).await.status,
        PipelineState::Sending,
        "the claim was applied"
    );
    assert!(stack.sandbox_calls(&to).await.is_empty());

    recovered_after_the_lease(&stack, &store, &job, &to).await;
    let message = stored(&store, &job).await;
    assert_eq!(message.status, PipelineState::Submitted);
    assert_eq!(message.attempts, 2);
}

#[tokio::test]
async fn an_acceptance_the_store_could_not_record_is_found_at_twilio_not_sent_again() {
    let stack = stack().await;
    let store = stack.own_table("record-lost").await;
    let to = unique_phone();
    let body = unique_body("Your lease renewal is ready");
    let job = queued(&store, &to, &body, &ulid::Ulid::new().to_string()).await;

    // The claim goes through; recording the SID and giving the claim back both fail.
    let broken = faulty(
        &stack,
        &store,
        vec![
            Fault::refuse("TransactWriteItems", 1),
            Fault::refuse("UpdateItem", 0),
        ],
    );
    let response = worker(&stack, &broken).await.handle(event(&[&job])).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "a store fault is not a delivery attempt: a fresh copy of the job, not a failed receive"
    );
    assert_eq!(stored(&store, &job).await.status, PipelineState::Sending);
    assert_eq!(stack.sandbox_calls(&to).await.len(), 1, "Twilio has it");

    recovered_after_the_lease(&stack, &store, &job, &to).await;
    let message = stored(&store, &job).await;
    assert_eq!(message.status, PipelineState::Submitted);
    let at_twilio = stack.sandbox_messages_with(&to, &body).await;
    assert_eq!(message.twilio_sid.as_deref(), at_twilio[0]["sid"].as_str());
}

#[tokio::test]
async fn an_unrecorded_acceptance_given_back_is_looked_up_before_sending() {
    let stack = stack().await;
    let store = stack.own_table("record-released").await;
    let to = unique_phone();
    let body = unique_body("Maintenance visit tomorrow");
    let job = queued(&store, &to, &body, &ulid::Ulid::new().to_string()).await;

    let broken = faulty(&stack, &store, vec![Fault::refuse("TransactWriteItems", 1)]);
    let response = worker(&stack, &broken).await.handle(event(&[&job])).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "a store fault is not a delivery attempt: a fresh copy of the job, not a failed receive"
    );
    let released = stored(&store, &job).await;
    assert_eq!(released.status, PipelineState::Queued);
    assert!(released.ambiguous, "marked for a look at Twilio first");

    let healthy = worker(&stack, &store).await;
    assert!(healthy
        .handle(event(&[&job]))
        .await
        .batch_item_failures
        .is_empty());
    assert_eq!(stack.sandbox_calls(&to).await.len(), 1, "not sent twice");
    assert_eq!(stored(&store, &job).await.status, PipelineState::Submitted);
}

#[tokio::test]
async fn an_opt_out_after_queueing_cancels_the_message_unsent() {
    let stack = stack().await;
    let store = stack.own_table("late-opt-out").await;
    let to = unique_phone();
    let job = queued(
        &store,
        &to,
        &unique_body("Late fee notice"),
        &ulid::Ulid::new().to_string(),
    )
    .await;
    let e164 = Address::parse(&to).unwrap().e164;
    store
        .record_opt_out(&e164, "STOP", "inbound-1", &parley::time::now_rfc3339())
        .await
        .unwrap();

    let response = worker(&stack, &store).await.handle(event(&[&job])).await;
    assert!(response.batch_item_failures.is_empty());
    let message = stored(&store, &job).await;
    assert_eq!(message.status, PipelineState::Canceled);
    assert_eq!(message.error_code.as_deref(), Some("opted_out"));
    assert!(stack.sandbox_calls(&to).await.is_empty());
}

#[tokio::test]
async fn the_sample_worker_event_sends_its_message() {
    let stack = stack().await;
    let store = stack.own_table("worker-event").await;
    let sample: SqsEvent =
        serde_json::from_str(include_str!("../events/send-worker.json")).unwrap();
    let job: Value = serde_json::from_str(sample.records[0].body.as_deref().unwrap()).unwrap();
    let body = unique_body("Sample worker event message");
    queued(
        &store,
        "+14155552671",
        &body,
        job["message_id"].as_str().unwrap(),
    )
    .await;

    let response = worker(&stack, &store).await.handle(sample).await;
    assert!(response.batch_item_failures.is_empty());
    let message = store
        .message(job["pk"].as_str().unwrap(), job["sk"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(message.status, PipelineState::Submitted);
    assert_eq!(
        stack
            .sandbox_messages_with("+14155552671", &body)
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn an_unreadable_message_fails_only_its_own_job_and_its_batch_is_sent() {
    let stack = stack().await;
    let store = stack.own_table("unreadable").await;
    let good_to = unique_phone();
    let good = queued(
        &store,
        &good_to,
        &unique_body("Rent reminder"),
        &ulid::Ulid::new().to_string(),
    )
    .await;
    let bad_to = unique_phone();
    let bad = queued(
        &store,
        &bad_to,
        &unique_body("Rent reminder"),
        &ulid::Ulid::new().to_string(),
    )
    .await;
    // One item damaged in the table: a status no version of Parley wrote.
    let job: Value = serde_json::from_str(&bad).unwrap();
    aws_sdk_dynamodb::Client::new(&stack.sdk)
        .update_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S(job["pk"].as_str().unwrap().into()))
        .key("sk", AttributeValue::S(job["sk"].as_str().unwrap().into()))
        .update_expression("SET #s = :s")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":s", AttributeValue::S("mangled".into()))
        .send()
        .await
        .unwrap();

    let response = worker(&stack, &store)
        .await
        .handle(event(&[&good, &bad]))
        .await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, vec!["m-1"]);
    assert_eq!(stored(&store, &good).await.status, PipelineState::Submitted);
    assert_eq!(stack.sandbox_calls(&good_to).await.len(), 1);
    assert!(stack.sandbox_calls(&bad_to).await.is_empty());
}

#[tokio::test]
async fn a_malformed_job_is_reported_as_failed_for_the_dead_letter_queue() {
    let stack = stack().await;
    let store = stack.own_table("malformed").await;
    let response = worker(&stack, &store)
        .await
        .handle(event(&["{not json"]))
        .await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(response.batch_item_failures[0].item_identifier, "m-0");
}

#[tokio::test]
async fn the_sample_send_event_is_accepted_and_replayed_by_its_idempotency_key() {
    let stack = stack().await;
    let store = stack.own_table("send-event").await;
    let (_, secrets) = stack.own_secrets(&stack.token, None).await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let queue = sqs
        .create_queue()
        .queue_name(format!("test-{}", ulid::Ulid::new()))
        .send()
        .await
        .unwrap();
    let queue_url = queue.queue_url.unwrap();
    let service = SendService::new(
        store.clone(),
        JobQueue::new(sqs.clone(), queue_url.clone()),
        Arc::new(Policy::always_open()),
    );
    let handler = SendSmsHandler::new(service, Arc::clone(&secrets));

    let request =
        || lambda_http::request::from_str(include_str!("../events/send-sms.json")).unwrap();
    let (parts, first) = parley_local::apigw::response_parts(handler.handle(request()).await);
    assert_eq!(
        parts.status.as_u16(),
        202,
        "{}",
        String::from_utf8_lossy(&first)
    );
    let (_, again) = parley_local::apigw::response_parts(handler.handle(request()).await);
    assert_eq!(first, again);
    let json: Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(json["segments"], 1);

    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let jobs = received.messages.unwrap_or_default();
    assert!(!jobs.is_empty(), "the job was enqueued");
    assert!(jobs.iter().all(|j| j
        .body
        .as_deref()
        .unwrap()
        .contains(json["message_id"].as_str().unwrap())));
}

/// An ambiguous attempt whose message is behind newer ones at Twilio: the worker reads the
/// list page by page (two to a page here) and finds it on the fourth, so it is not sent again.
#[tokio::test]
async fn an_ambiguous_attempt_found_on_a_later_page_is_not_sent_again() {
    let stack = stack().await;
    let store = stack.own_table("paged").await;
    let to = unique_phone();
    let body = unique_body("Your parking permit is ready");
    let id = ulid::Ulid::new().to_string();
    let job = queued(&store, &to, &body, &id).await;
    stack
        .sandbox_control(
            "faults",
            json!({"to": to, "kind": "accept_then_timeout", "count": 1, "delay_ms": 3000}),
        )
        .await;
    let (_, secrets) = stack.own_secrets(&stack.token, None).await;
    let twilio = TwilioClient::new(
        &stack.sandbox(),
        Sender::Number(TWILIO_NUMBER.into()),
        Duration::from_secs(2),
    )
    .unwrap()
    .with_list_page_size(2);
    let worker = SendWorker::new(
        store.clone(),
        aws_sdk_sqs::Client::new(&stack.sdk),
        stack.queue_url("SendQueue").await,
        twilio,
        secrets,
        config(&stack),
    )
    .with_policy(Arc::new(Policy::always_open()));

    let first = worker.handle(event(&[&job])).await;
    assert_eq!(first.batch_item_failures.len(), 1, "timed out: retried");
    let address = Address::parse(&to).unwrap();
    let (pk, sk) = (
        keys::conversation_pk(address.channel, &address.e164),
        keys::message_sk(&id),
    );
    let released = store.message(&pk, &sk).await.unwrap().unwrap();
    assert!(released.ambiguous);
    assert_eq!(released.status, PipelineState::Queued);
    // Newer texts to the same number from the same sender push it to the fourth page.
    let http = reqwest::Client::new();
    for i in 0..6 {
        let reply = http
            .post(format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                stack.sandbox(),
                stack.account_sid
            ))
            .basic_auth(&stack.account_sid, Some(&stack.token))
            .form(&[
                ("To", to.as_str()),
                ("From", TWILIO_NUMBER),
                ("Body", format!("{body} ({i})").as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 201);
    }

    let second = worker.handle(event(&[&job])).await;
    assert!(second.batch_item_failures.is_empty(), "{second:?}");
    let recorded = store.message(&pk, &sk).await.unwrap().unwrap();
    assert_eq!(recorded.status, PipelineState::Submitted);
    let at_twilio = stack.sandbox_messages_with(&to, &body).await;
    assert_eq!(at_twilio.len(), 1, "not sent again");
    assert_eq!(at_twilio[0]["create_calls"], 1);
    assert_eq!(at_twilio[0]["sid"].as_str(), recorded.twilio_sid.as_deref());
}

/// A worker that stopped after recording the SID and before merging the callbacks parked on
/// it: its job comes back (never deleted), and the worker that receives it completes the merge.
#[tokio::test]
async fn a_worker_stopped_before_merging_parked_callbacks_is_completed_by_its_job() {
    use parley::delivery::DeliveryStatus;
    use parley::store::ClaimOrder;
    let stack = stack().await;
    let store = stack.own_table("merge").await;
    let to = unique_phone();
    let id = ulid::Ulid::new().to_string();
    let job = queued(&store, &to, "Your keys are at the office", &id).await;
    let address = Address::parse(&to).unwrap();
    let (pk, sk) = (
        keys::conversation_pk(address.channel, &address.e164),
        keys::message_sk(&id),
    );
    let read = store.message(&pk, &sk).await.unwrap().unwrap();
    let now = parley::time::now_rfc3339();
    store
        .claim_batch(
            &[ClaimOrder {
                message: &read,
                require_consent: true,
            }],
            &now,
            "0",
            parley::time::Timestamp::now().plus(Duration::from_secs(120)),
        )
        .await
        .unwrap();
    let sid = parley::twilio::MessageSid::parse(&unique_sid()).unwrap();
    // Callbacks without an id (as from a message sent before ids were given) beat the record.
    for status in [DeliveryStatus::Sent, DeliveryStatus::Delivered] {
        let outcome = store.apply_status(&sid, status, None, &now).await.unwrap();
        assert_eq!(outcome, parley::store::StatusOutcome::Parked);
    }
    // The record's first step, then the stop.
    store
        .record_sid(
            &read,
            &sid,
            DeliveryStatus::Queued,
            &now,
            parley::time::Timestamp::now().plus(Duration::from_secs(86_400)),
        )
        .await
        .unwrap();
    assert_eq!(
        store.sid_guard(&sid).await.unwrap().unwrap().parked.len(),
        2
    );

    let worker = worker(&stack, &store).await;
    let answer = worker.handle(event(&[&job])).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    let merged = store.message(&pk, &sk).await.unwrap().unwrap();
    assert_eq!(merged.delivery_status, Some(DeliveryStatus::Delivered));
    assert_eq!(merged.twilio_sid.as_deref(), Some(sid.as_str()));
    assert!(store
        .sid_guard(&sid)
        .await
        .unwrap()
        .unwrap()
        .parked
        .is_empty());
    assert!(
        stack.sandbox_calls(&to).await.is_empty(),
        "nothing sent: it was already at Twilio"
    );
}
