//! Send workers run in this process against the emulator and the sandbox: a redelivered job,
//! two workers racing for one message, and the shipped sample events.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use parley::handlers::send_sms::SendSmsHandler;
use parley::handlers::send_worker::{SendWorker, WorkerConfig};
use parley::phone::Address;
use parley::segments;
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
        config(stack),
    )
}

/// Writes a queued outbound message directly and returns the job body the API would enqueue.
async fn queued(store: &Store, to: &str, body: &str, message_id: &str) -> String {
    let address = Address::parse(to).unwrap();
    let outcome = store
        .create_outbound(&NewOutbound {
            message_id: message_id.into(),
            conversation_id: ulid::Ulid::new().to_string(),
            to: &address,
            body,
            media_urls: &[],
            workflow_type: None,
            workflow_id: None,
            segments: segments::count(body),
            created_at: parley::time::now_rfc3339(),
            idempotency: None,
        })
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
    assert!(ra.batch_item_failures.is_empty() && rb.batch_item_failures.is_empty());
    // And once more later, as SQS redelivers after a lost delete.
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
    assert_eq!(message.status, "submitted");
    assert_eq!(
        stack
            .sandbox_messages_with("+14155552671", &body)
            .await
            .len(),
        1
    );
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
    let handler = SendSmsHandler::new(
        store.clone(),
        Arc::clone(&secrets),
        sqs.clone(),
        queue_url.clone(),
    );

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
