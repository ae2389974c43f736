//! One X-Ray trace followed end to end on the local stack: a send through the API with a
//! known trace header, through the queue and the worker to the Twilio sandbox and back through
//! its status callbacks; and a text through the webhook, the table's stream and the
//! processor. Each hop is checked where an operator would look: the `trace_id` of the stack's
//! log lines (`target/e2e/stack.log`), the stored message, the sandbox's record of the call.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use parley::delivery::DeliveryStatus;
use parley::handlers::dispatcher::{Dispatcher, DispatcherConfig};
use parley::pending::Policy;
use parley::phone::{Channel, E164};
use parley::pipeline::PipelineState;
use parley::queue::{JobQueue, SendJob};
use parley::send::{SendRequest, SendService};
use parley::time::{ManualClock, Timestamp};
use parley::xray::{TraceHeader, TraceId};
use parley_e2e::*;
use parley_local::event_sources::{sqs_invocation_context, SqsFunction, SqsPoller};
use serde_json::{json, Value};

/// The stack's JSON log lines whose `trace_id` is `root`.
fn lines_in(root: &TraceId) -> Vec<Value> {
    let Some(dir) = std::env::var_os("PARLEY_E2E_LOG_DIR") else {
        panic!("run through infra/scripts/test.sh, which captures the stack's log");
    };
    let log =
        std::fs::read_to_string(std::path::Path::new(&dir).join("stack.log")).unwrap_or_default();
    log.lines()
        .filter(|l| l.contains(root.as_str()))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["trace_id"] == root.as_str())
        .collect()
}

/// Waits for the line of trace `root` written in span `span` with `message` (and `extra`
/// fields, when given).
async fn logged(root: &TraceId, span: &str, message: &str, extra: Option<(&str, &str)>) -> Value {
    eventually(20, &format!("`{message}` in span {span}"), || async {
        lines_in(root).into_iter().find(|l| {
            l["span"]["name"] == span
                && l["fields"]["message"] == message
                && extra.is_none_or(|(k, v)| l["fields"][k] == v)
        })
    })
    .await
}

#[tokio::test]
async fn a_send_keeps_the_caller_s_trace_through_the_queue_the_worker_twilio_and_its_callbacks() {
    let stack = stack().await;
    let to = unique_phone();
    let body = unique_body("Your inspection is booked for Thursday morning");
    let root = TraceId::new();
    let header = format!("Root={root};Parent=53995c3f42cd8ad8;Sampled=1");

    let reply = read(
        stack
            .http
            .post(format!(
                "{}{}",
                stack.gateway,
                parley::handlers::send_sms::ROUTE
            ))
            .bearer_auth(&stack.api_key)
            .header("x-amzn-trace-id", &header)
            .json(&json!({"to": to, "body": body}))
            .send()
            .await
            .expect("gateway reachable"),
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let id = reply.json()["message_id"].as_str().unwrap().to_owned();

    let message = eventually(30, "delivered", || async {
        stack
            .outbound(&to, &id)
            .await
            .filter(|m| m.delivery_status == Some(DeliveryStatus::Delivered))
    })
    .await;
    // Stored with the message when it was accepted: the dispatcher and the callbacks continue
    // it from there.
    let stored = message.trace.expect("the trace stored with the message");
    assert_eq!(stored.root(), &root);
    assert_eq!(stored.to_string(), header);

    // Twilio was called in the trace, and given it in the status callback's (signed) URL.
    let calls = stack.sandbox_calls(&to).await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    let at_twilio = calls[0]["trace_header"]
        .as_str()
        .and_then(TraceHeader::parse)
        .expect("an X-Amzn-Trace-Id on the create call");
    assert_eq!(at_twilio.root(), &root);
    assert!(calls[0]["status_callback"]
        .as_str()
        .unwrap()
        .ends_with(&format!(
            "?m={id}&t={root}#{}",
            parley::twilio::overrides::WEBHOOK_OVERRIDES
        )));

    // Every function on the way logged in it: the send API, the worker, the callbacks.
    let accepted = logged(&root, "send_sms", "outbound message accepted", None).await;
    assert_eq!(accepted["span"]["message_id"], id.as_str());
    let submitted = logged(&root, "send", "message submitted to Twilio", None).await;
    assert_eq!(submitted["span"]["message_id"], id.as_str());
    for status in ["sent", "delivered"] {
        let callback = logged(
            &root,
            "status_callback",
            "status callback",
            Some(("status", status)),
        )
        .await;
        assert_eq!(
            callback["span"]["message_sid"].as_str(),
            message.twilio_sid.as_deref()
        );
    }
    // And nothing of another message is in it.
    assert!(lines_in(&root)
        .iter()
        .all(|l| l["span"]["message_id"].as_str().is_none_or(|m| m == id)));
}

#[tokio::test]
async fn a_text_s_trace_goes_from_the_webhook_through_the_stream_to_the_processor() {
    let stack = stack().await;
    let phone = unique_phone();
    let tenant = format!("t-{}", ulid::Ulid::new());
    stack.add_tenant(&tenant, &[&phone]).await;
    let body = unique_body("The hallway light is out again on the second floor");
    // Twilio sends no trace header: the gateway starts a trace for the request, as API Gateway
    // does, and the webhook stores it with the text (stream records carry none).
    let reply = stack
        .post_inbound(&InboundForm::new(&stack, &phone, &body))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let e164 = E164::parse(&phone).unwrap();
    let messages = stack.store.messages(Channel::Sms, &e164, 10).await.unwrap();
    assert_eq!(messages.len(), 1);
    let trace = messages[0]
        .trace
        .clone()
        .expect("the webhook's trace, stored");
    let root = trace.root();

    let recorded = logged(root, "inbound_sms", "inbound message recorded", None).await;
    assert_eq!(
        recorded["fields"]["message_id"],
        messages[0].message_id.as_str()
    );
    // Written in the processor's span for the message, inside the record's traced one.
    let published = logged(
        root,
        "inbound",
        "inbound message linked and published",
        None,
    )
    .await;
    assert_eq!(published["fields"]["tenant_id"], tenant.as_str());
    assert_eq!(
        published["span"]["message_id"],
        messages[0].message_id.as_str()
    );
}

/// A queue of the test's own.
async fn own_queue(stack: &Stack) -> (aws_sdk_sqs::Client, String) {
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("test-trace-{}", ulid::Ulid::new()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (sqs, queue_url)
}

#[tokio::test]
async fn a_scheduled_send_is_released_in_the_trace_it_was_accepted_in() {
    let stack = stack().await;
    let store = stack.own_table("trace-scheduled").await;
    let (sqs, queue_url) = own_queue(&stack).await;
    let now = Timestamp::parse("2026-12-01T15:00:00Z").unwrap();
    let clock = Arc::new(ManualClock::new(now));
    let policy = Arc::new(Policy::default());
    let queue = JobQueue::new(sqs.clone(), queue_url.clone());
    let service = SendService::new(store.clone(), queue.clone(), policy.clone());
    let dispatcher = Dispatcher::new(
        store.clone(),
        queue,
        policy,
        clock.clone(),
        DispatcherConfig::default(),
    );
    let request = json!({
        "to": unique_phone(),
        "body": unique_body("Your move-in walkthrough is this afternoon"),
        "send_at": "2026-12-01T21:00:00Z",
    });
    let mut new = SendRequest::from_json(request.to_string().as_bytes())
        .unwrap()
        .validate(now)
        .unwrap();
    let trace = TraceHeader::start();
    new.trace = Some(trace.clone());
    let accepted = service.send(&new, None, now).await.unwrap();
    assert_eq!(accepted.status, PipelineState::Scheduled);

    // Hours later, only the stored message knows the trace: the dispatcher puts it on the job.
    clock.set(Timestamp::parse("2026-12-01T21:00:00Z").unwrap());
    assert_eq!(dispatcher.run().await.unwrap().released, 1);
    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .wait_time_seconds(1)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    let messages = received.messages.unwrap_or_default();
    assert_eq!(messages.len(), 1);
    let mut record = SqsMessage::default();
    record.body = messages[0].body.clone();
    record.attributes = messages[0]
        .attributes
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
        .collect();
    let job = SendJob::from_record(&record).unwrap();
    assert_eq!(job.message_id, accepted.message_id);
    assert_eq!(job.trace, Some(trace));
}

#[tokio::test]
async fn jobs_carry_their_trace_as_aws_trace_header_and_the_local_lambda_continues_it() {
    let stack = stack().await;
    let (sqs, queue_url) = own_queue(&stack).await;
    let queue = JobQueue::new(sqs.clone(), queue_url.clone());
    let first = TraceHeader::start();
    let second = TraceHeader::start();
    // One job as the send API enqueues it, one as the dispatcher does (SendMessageBatch).
    let job = |id: &str, trace: &TraceHeader| {
        SendJob::new(id, "CONV#sms#+15005550006", format!("MSG#{id}")).traced(Some(trace.clone()))
    };
    let (a, b) = (job("A", &first), job("B", &second));
    queue.enqueue(&a, Duration::ZERO).await.unwrap();
    assert!(queue.enqueue_many(&[(&b, Duration::ZERO)]).await.is_empty());

    let seen: Arc<Mutex<Vec<SqsEvent>>> = Arc::default();
    let sink = seen.clone();
    let function: SqsFunction = Arc::new(move |event| {
        sink.lock().unwrap().push(event);
        Box::pin(async { SqsBatchResponse::default() })
    });
    let poller = SqsPoller {
        client: sqs,
        queue_url,
        queue_arn: "arn:aws:sqs:us-east-1:000000000000:test-trace".into(),
        batch_size: 1,
        region: "us-east-1".into(),
        function,
    };
    let mut received = Vec::new();
    while received.len() < 2 {
        let got = poller.poll_once().await.unwrap();
        assert!(got > 0, "both jobs are visible at once");
        received.extend(seen.lock().unwrap().drain(..));
    }
    for event in &received {
        let record = &event.records[0];
        let job = SendJob::from_record(record).unwrap();
        let sent = if job.message_id == "A" {
            &first
        } else {
            &second
        };
        assert_eq!(job.trace.as_ref(), Some(sent), "AWSTraceHeader as sent");
        // The invocation's context continues the record's trace from a segment of its own.
        let context = TraceHeader::of_context(&sqs_invocation_context(event)).unwrap();
        assert_eq!(context.root(), sent.root());
        assert_ne!(&context, sent);
    }
}
