//! The pending-message engine in this process, against the emulator and the Twilio sandbox,
//! with a clock the test sets: the send use case, the dispatcher and the send worker all take
//! it, so "next month", "23:30 in Lisbon" and "a lease ago" need no sleeping. Each test has its
//! own table and queue (the dispatcher's checkpoint is per table).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_sqs::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use parley::handlers::dispatcher::{DispatchReport, Dispatcher, DispatcherConfig};
use parley::handlers::send_worker::{SendWorker, WorkerConfig};
use parley::pending::Policy;
use parley::pipeline::PipelineState;
use parley::queue::JobQueue;
use parley::send::cancel::{cancel, cancel_pending_to, CancelError, CancelReason};
use parley::send::{Accepted, SendError, SendRequest, SendService};
use parley::store::{keys, Message, Store};
use parley::time::{Clock, ManualClock, Timestamp};
use parley::twilio::client::{Sender, TwilioClient};
use parley_e2e::*;
use serde_json::{json, Value};

fn at(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

/// Fails SQS `SendMessage` while `on` is set: the enqueue after a stored intent is lost.
#[derive(Debug, Clone, Default)]
struct QueueOutage(Arc<AtomicBool>);

impl Intercept for QueueOutage {
    fn name(&self) -> &'static str {
        "QueueOutage"
    }

    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.0.load(Ordering::SeqCst) {
            return Err("injected SQS outage".into());
        }
        Ok(())
    }
}

struct Engine {
    stack: Stack,
    store: Store,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    clock: Arc<ManualClock>,
    policy: Arc<Policy>,
    service: SendService,
    dispatcher: Dispatcher,
    worker: SendWorker,
    outage: QueueOutage,
}

async fn engine(label: &str, policy: Policy, now: Timestamp) -> Engine {
    let stack = stack().await;
    let store = stack.own_table(label).await;
    let plain = aws_sdk_sqs::Client::new(&stack.sdk);
    let queue_url = plain
        .create_queue()
        .queue_name(format!("test-{label}-{}", ulid::Ulid::new()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let outage = QueueOutage::default();
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&stack.sdk)
            .interceptor(outage.clone())
            .build(),
    );
    let clock = Arc::new(ManualClock::new(now));
    let policy = Arc::new(policy);
    let queue = JobQueue::new(sqs.clone(), queue_url.clone());
    let service = SendService::new(store.clone(), queue.clone(), policy.clone());
    let (_, secrets) = stack.own_secrets(&stack.token, None).await;
    let fetcher = TwilioClient::new(
        &stack.sandbox(),
        Sender::Number(String::new()),
        Duration::from_secs(2),
    )
    .unwrap();
    let dispatcher = Dispatcher::new(
        store.clone(),
        queue,
        policy.clone(),
        clock.clone(),
        DispatcherConfig::default(),
    )
    .with_twilio(fetcher, secrets.clone());
    let twilio = TwilioClient::new(
        &stack.sandbox(),
        Sender::Number(TWILIO_NUMBER.into()),
        Duration::from_secs(2),
    )
    .unwrap();
    let config = WorkerConfig {
        // Nobody listens: this table's messages never hear Twilio's callbacks (the status poll
        // test relies on it), and the running stack is spared parking callbacks it cannot use.
        status_callback_url: "http://127.0.0.1:9/webhook/twilio/status".into(),
        max_attempts: 5,
        retry_base: Duration::from_secs(1),
        retry_cap: Duration::from_secs(10),
        claim_lease: policy.claim_lease,
        rate_per_second: 0.0,
    };
    let worker = SendWorker::new(
        store.clone(),
        plain.clone(),
        queue_url.clone(),
        twilio,
        secrets,
        config,
    )
    .with_policy(policy.clone())
    .with_clock(clock.clone());
    Engine {
        stack,
        store,
        sqs: plain,
        queue_url,
        clock,
        policy,
        service,
        dispatcher,
        worker,
        outage,
    }
}

impl Engine {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    async fn send(&self, request: Value) -> Result<Accepted, SendError> {
        let now = self.now();
        let new = SendRequest::from_json(request.to_string().as_bytes())
            .unwrap()
            .validate(now)
            .unwrap_or_else(|e| panic!("{request}: {e:?}"));
        self.service.send(&new, None, now).await
    }

    async fn message(&self, id: &str) -> Message {
        self.store.message_by_id(id).await.unwrap().unwrap()
    }

    async fn dispatch(&self) -> DispatchReport {
        self.dispatcher.run().await.unwrap()
    }

    /// Receives every job visible now and runs the worker on it, as Lambda's SQS source does;
    /// returns how many jobs it received.
    async fn work(&self) -> usize {
        let mut total = 0;
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                return total;
            }
            total += messages.len();
            let records: Vec<Value> = messages
                .iter()
                .map(|m| json!({"messageId": m.message_id, "receiptHandle": m.receipt_handle, "body": m.body, "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs"}))
                .collect();
            let event: SqsEvent = serde_json::from_value(json!({ "Records": records })).unwrap();
            let response = self.worker.handle(event).await;
            for m in &messages {
                let failed = response
                    .batch_item_failures
                    .iter()
                    .any(|f| Some(f.item_identifier.as_str()) == m.message_id.as_deref());
                if !failed {
                    self.sqs
                        .delete_message()
                        .queue_url(&self.queue_url)
                        .receipt_handle(m.receipt_handle.clone().unwrap())
                        .send()
                        .await
                        .unwrap();
                }
            }
        }
    }

    async fn queue_depth(&self) -> usize {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let attributes = out.attributes.unwrap_or_default();
        [
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed,
        ]
        .iter()
        .filter_map(|k| attributes.get(k).and_then(|v| v.parse::<usize>().ok()))
        .sum()
    }
}

#[tokio::test]
async fn a_send_next_month_waits_in_the_table_and_is_released_by_the_dispatcher_at_its_time() {
    let now = at("2026-12-01T15:00:00Z");
    let e = engine("next-month", Policy::default(), now).await;
    let to = unique_phone();
    let body = unique_body("Your lease renewal is due next month");
    let accepted = e
        .send(json!({"to": to, "body": body, "send_at": "2027-01-04T17:30:00Z"}))
        .await
        .unwrap();
    assert_eq!(accepted.status, PipelineState::Scheduled);
    assert_eq!(accepted.send_at, at("2027-01-04T17:30:00Z"));
    assert_eq!(accepted.time_zone, "America/Los_Angeles");
    assert_eq!(
        serde_json::to_value(accepted.time_zone_source).unwrap(),
        "number"
    );
    let stored = e.message(&accepted.message_id).await;
    assert_eq!(stored.status, PipelineState::Scheduled);
    // Filed for release five minutes before it is due.
    assert_eq!(
        stored.gsi2pk.as_deref(),
        Some(
            keys::due_gsi2pk(
                at("2027-01-04T17:25:00Z"),
                keys::due_shard(&accepted.message_id)
            )
            .as_str()
        )
    );
    assert_eq!(
        e.queue_depth().await,
        0,
        "nothing on the queue a month ahead"
    );

    // Ten minutes before: the dispatcher has nothing to release yet.
    e.clock.set(at("2027-01-04T17:20:00Z"));
    let report = e.dispatch().await;
    assert_eq!((report.seen, report.released), (0, 0), "{report:?}");

    // At its time: released, enqueued with no delay left, sent once.
    e.clock.set(at("2027-01-04T17:30:00Z"));
    let report = e.dispatch().await;
    assert_eq!(report.released, 1, "{report:?}");
    assert_eq!(
        e.message(&accepted.message_id).await.status,
        PipelineState::Queued
    );
    assert_eq!(e.work().await, 1);
    let sent = e.message(&accepted.message_id).await;
    assert_eq!(sent.status, PipelineState::Submitted);
    assert!(
        sent.gsi2pk
            .as_deref()
            .is_some_and(|k| k.starts_with("DUE#2027-01-04T18:30")),
        "filed for a status poll an hour later: {:?}",
        sent.gsi2pk
    );
    assert_eq!(e.stack.sandbox_messages_with(&to, &body).await.len(), 1);
    // A second run of the same minute changes nothing.
    let again = e.dispatch().await;
    assert_eq!(again.released, 0, "{again:?}");
}

#[tokio::test]
async fn a_local_send_at_is_wall_clock_time_in_the_recipients_zone_across_dst() {
    let e = engine("dst", Policy::default(), at("2027-03-01T12:00:00Z")).await;
    let us = unique_phone();
    // 09:00 in Los Angeles: PST before 2027-03-14, PDT after; the same in Lisbon around 2027-03-28.
    for (to, zone, local, utc) in [
        (
            us.as_str(),
            None,
            "2027-03-13T09:00",
            "2027-03-13T17:00:00Z",
        ),
        (
            us.as_str(),
            None,
            "2027-03-15T09:00",
            "2027-03-15T16:00:00Z",
        ),
        (
            us.as_str(),
            None,
            "2027-11-06T09:00",
            "2027-11-06T16:00:00Z",
        ),
        (
            us.as_str(),
            None,
            "2027-11-08T09:00",
            "2027-11-08T17:00:00Z",
        ),
        (
            us.as_str(),
            Some("Europe/Lisbon"),
            "2027-03-27T09:00",
            "2027-03-27T09:00:00Z",
        ),
        (
            us.as_str(),
            Some("Europe/Lisbon"),
            "2027-03-29T09:00",
            "2027-03-29T08:00:00Z",
        ),
        (
            us.as_str(),
            Some("Europe/Berlin"),
            "2027-10-30T09:00",
            "2027-10-30T07:00:00Z",
        ),
        (
            us.as_str(),
            Some("Europe/Berlin"),
            "2027-11-01T09:00",
            "2027-11-01T08:00:00Z",
        ),
    ] {
        let mut request = json!({"to": to, "body": "DST check", "send_at": local});
        if let Some(zone) = zone {
            request["time_zone"] = json!(zone);
        }
        let accepted = e.send(request).await.unwrap();
        assert_eq!(accepted.send_at, at(utc), "{local} in {zone:?}");
        assert_eq!(accepted.status, PipelineState::Scheduled);
    }
}

#[tokio::test]
async fn the_time_zone_comes_from_the_request_then_the_tenant_then_the_number_then_the_default() {
    let e = engine("zones", Policy::default(), at("2026-12-01T15:00:00Z")).await;
    let to = unique_phone();
    let source = |a: &Accepted| serde_json::to_value(a.time_zone_source).unwrap();

    let a = e
        .send(json!({"to": to, "body": "zone", "time_zone": "Europe/Lisbon"}))
        .await
        .unwrap();
    assert_eq!(
        (a.time_zone.as_str(), source(&a)),
        ("Europe/Lisbon", json!("request"))
    );

    let a = e.send(json!({"to": to, "body": "zone"})).await.unwrap();
    assert_eq!(
        (a.time_zone.as_str(), source(&a)),
        ("America/Los_Angeles", json!("number"))
    );

    // The conversation exists now; link it to a tenant whose profile has a zone.
    let address = parley::phone::Address::parse(&to).unwrap();
    e.store
        .link_tenant(
            address.channel,
            &address.e164,
            "t-zone",
            Some("America/Chicago"),
            "2026-12-01T15:00:00.000Z",
        )
        .await
        .unwrap();
    let a = e.send(json!({"to": to, "body": "zone"})).await.unwrap();
    assert_eq!(
        (a.time_zone.as_str(), source(&a)),
        ("America/Chicago", json!("tenant"))
    );
    let a = e
        .send(json!({"to": to, "body": "zone", "time_zone": "Asia/Tokyo"}))
        .await
        .unwrap();
    assert_eq!(
        source(&a),
        json!("request"),
        "the request wins over the tenant"
    );

    // A number whose prefix spans two zones (Nevada's 775 outside the exchanges libphonenumber
    // places: Boise and Los Angeles).
    let nevada = format!("+1775201{}", &unique_phone()[8..]);
    record_sensitive("phone", &nevada);
    let a = e.send(json!({"to": nevada, "body": "zone"})).await.unwrap();
    assert_eq!(source(&a), json!("number"));
    assert!(
        a.time_zone.contains("America/Boise") && a.time_zone.contains("America/Los_Angeles"),
        "{}",
        a.time_zone
    );
}

#[tokio::test]
async fn quiet_hours_defer_to_the_morning_in_every_zone_of_the_number() {
    // 23:30 in Boise is 22:30 in Los Angeles: quiet in both.
    let night = at("2026-12-02T06:30:00Z");
    let e = engine("quiet", Policy::default(), night).await;
    let nevada = format!("+1775201{}", &unique_phone()[8..]);
    record_sensitive("phone", &nevada);
    let body = unique_body("Reminder: rent is due on the 5th");
    let a = e.send(json!({"to": nevada, "body": body})).await.unwrap();
    assert_eq!(a.status, PipelineState::Deferred);
    // 08:00 in Los Angeles (the later of the two zones' mornings), plus at most 20 minutes.
    let morning = at("2026-12-02T16:00:00Z");
    assert!(
        a.send_at >= morning && a.send_at < morning.plus(e.policy.spread_max),
        "{}",
        a.send_at
    );
    let m = e.message(&a.message_id).await;
    assert_eq!(m.status_reason.as_deref(), Some("quiet_hours"));

    // Urgent bypasses quiet hours.
    let urgent = e
        .send(json!({"to": nevada, "body": "Water shut-off tonight", "urgent": true}))
        .await
        .unwrap();
    assert_eq!(urgent.status, PipelineState::Queued);
    assert!(e.message(&urgent.message_id).await.urgent);

    // Released in the morning at its spread, and sent.
    e.clock.set(a.send_at);
    let report = e.dispatch().await;
    assert_eq!(report.released, 1, "{report:?}");
    e.work().await;
    assert_eq!(
        e.message(&a.message_id).await.status,
        PipelineState::Submitted
    );
    assert_eq!(
        e.message(&urgent.message_id).await.status,
        PipelineState::Submitted
    );
    assert_eq!(e.stack.sandbox_messages_with(&nevada, &body).await.len(), 1);
}

#[tokio::test]
async fn a_queued_message_whose_moment_turned_quiet_is_deferred_at_claim_and_not_after_expires() {
    let evening = at("2026-12-02T04:55:00Z"); // 20:55 in Los Angeles
    let e = engine("claim-quiet", Policy::default(), evening).await;
    let to = unique_phone();
    let a = e.send(json!({"to": to, "body": "late"})).await.unwrap();
    assert_eq!(a.status, PipelineState::Queued);
    // The job is picked up after 21:00 (a retry backoff, a slow queue): the worker defers it.
    e.clock.set(at("2026-12-02T05:01:00Z"));
    assert_eq!(e.work().await, 1);
    let m = e.message(&a.message_id).await;
    assert_eq!(m.status, PipelineState::Deferred, "{:?}", m.status_history);
    assert!(m.send_at.unwrap() >= at("2026-12-02T16:00:00Z"));
    assert!(e.stack.sandbox_calls(&to).await.is_empty());

    // One with a not_after before the morning expires instead of going late.
    e.clock.set(at("2026-12-02T04:59:00Z"));
    let b = e
        .send(json!({"to": to, "body": "tonight only", "send_at": "2026-12-02T05:10:00Z", "not_after": "2026-12-02T07:00:00Z", "urgent": false}))
        .await;
    assert!(
        matches!(b, Err(SendError::NotAfterUnreachable { .. })),
        "{b:?}"
    );
    let c = e
        .send(json!({"to": to, "body": "before nine", "not_after": "2026-12-02T05:30:00Z"}))
        .await
        .unwrap();
    assert_eq!(c.status, PipelineState::Queued);
    e.clock.set(at("2026-12-02T05:31:00Z"));
    e.work().await;
    assert_eq!(
        e.message(&c.message_id).await.status,
        PipelineState::Expired
    );
    assert!(
        e.stack.sandbox_calls(&to).await.is_empty(),
        "never sent late"
    );
}

#[tokio::test]
async fn a_night_of_deferred_messages_is_released_across_the_spread_each_sent_once() {
    const N: usize = 300;
    let night = at("2026-12-02T07:00:00Z"); // 23:00 in Los Angeles
                                            // Released at their minute rather than ahead of it, so no job waits on an SQS delay.
    let policy = Policy {
        release_lead: Duration::ZERO,
        ..Policy::default()
    };
    let e = engine("spread", policy, night).await;
    let mut ids = Vec::new();
    let mut phones = Vec::new();
    let e = &e;
    for chunk in 0..N / 50 {
        let sends = (0..50).map(|i| {
            let to = unique_phone();
            let body = format!("Good morning {chunk}-{i}");
            phones.push(to.clone());
            async move { e.send(json!({"to": to, "body": body})).await.unwrap() }
        });
        let accepted: Vec<Accepted> = futures::future::join_all(sends).await;
        ids.extend(accepted.into_iter().map(|a| (a.message_id, a.send_at)));
    }
    let morning = at("2026-12-02T16:00:00Z");
    let mut minutes = std::collections::BTreeMap::new();
    for (_, due) in &ids {
        assert!(*due >= morning && *due < morning.plus(e.policy.spread_max));
        *minutes.entry(due.minute()).or_insert(0) += 1;
    }
    assert!(
        minutes.len() >= 18,
        "spread over the 20 minutes: {minutes:?}"
    );
    assert!(minutes.values().all(|n| *n < N / 5), "{minutes:?}");

    // The dispatcher releases each minute's share as the morning goes on, never early.
    let mut released = 0;
    for step in 0..=22 {
        let now = morning.plus(Duration::from_secs(60 * step));
        e.clock.set(now);
        let report = e.dispatch().await;
        released += report.released;
        let due_by_then = ids.iter().filter(|(_, due)| *due <= now).count();
        assert!(
            released as usize <= due_by_then,
            "{step}: {released} released, {due_by_then} due"
        );
    }
    assert_eq!(released as usize, N);
    e.clock.set(morning.plus(Duration::from_secs(30 * 60)));
    e.work().await;
    for (id, _) in &ids {
        assert_eq!(e.message(id).await.status, PipelineState::Submitted);
    }
    for to in phones.iter().take(20) {
        assert_eq!(e.stack.sandbox_calls(to).await.len(), 1, "sent once");
    }
}

#[tokio::test]
async fn cancel_races_release_and_claim_and_a_message_is_sent_or_canceled_never_both() {
    let start = at("2026-12-01T18:00:00Z");
    let e = engine("cancel-race", Policy::always_open(), start).await;
    let mut sent_count = 0;
    let mut canceled_count = 0;
    for round in 0..12 {
        // Time only moves forward: the dispatcher never looks at a minute twice.
        let now = start.plus(Duration::from_secs(3600 * round));
        let due = now.plus(Duration::from_secs(3600));
        let to = unique_phone();
        let body = unique_body("race");
        // Half released by the dispatcher, half straight to the queue.
        let request = if round % 2 == 0 {
            json!({"to": to, "body": body, "send_at": due.to_string()})
        } else {
            json!({"to": to, "body": body})
        };
        e.clock.set(now);
        let a = e.send(request).await.unwrap();
        e.clock.set(due);
        let (_, canceled) = tokio::join!(
            async {
                if round % 2 == 0 {
                    e.dispatch().await;
                }
                e.work().await
            },
            cancel(&e.store, &a.message_id, CancelReason::Api, e.now())
        );
        e.work().await;
        let m = e.message(&a.message_id).await;
        let calls = e.stack.sandbox_calls(&to).await.len();
        match m.status {
            PipelineState::Canceled => {
                assert_eq!(calls, 0, "canceled and sent: {m:?}");
                assert!(canceled.is_ok());
                canceled_count += 1;
            }
            PipelineState::Submitted => {
                assert_eq!(calls, 1, "sent once");
                assert!(
                    matches!(canceled, Err(CancelError::NotCancelable(_))),
                    "{canceled:?}"
                );
                sent_count += 1;
            }
            other => panic!("round {round}: ended {other}"),
        }
    }
    assert_eq!(sent_count + canceled_count, 12);
}

#[tokio::test]
async fn an_opt_out_cancels_every_pending_message_to_the_number() {
    let now = at("2026-12-02T07:00:00Z"); // night in Los Angeles
    let e = engine("stop", Policy::default(), now).await;
    let to = unique_phone();
    let scheduled = e
        .send(json!({"to": to, "body": "next week", "send_at": "2026-12-09T18:00:00Z"}))
        .await
        .unwrap();
    let deferred = e.send(json!({"to": to, "body": "morning"})).await.unwrap();
    let queued = e
        .send(json!({"to": to, "body": "now", "urgent": true}))
        .await
        .unwrap();
    let other = unique_phone();
    let untouched = e
        .send(json!({"to": other, "body": "someone else", "send_at": "2026-12-09T18:00:00Z"}))
        .await
        .unwrap();
    assert_eq!(
        (scheduled.status, deferred.status, queued.status),
        (
            PipelineState::Scheduled,
            PipelineState::Deferred,
            PipelineState::Queued
        )
    );
    let phone = parley::phone::E164::parse(&to).unwrap();
    e.store
        .record_opt_out(&phone, "STOP", "test", &now.to_string())
        .await
        .unwrap();
    // A message accepted after the opt-out (the recipient texted START meanwhile) is not the
    // opt-out's to cancel.
    let before = cancel_pending_to(
        &e.store,
        &phone,
        CancelReason::OptedOut,
        now.minus(Duration::from_secs(1)),
        now,
    )
    .await
    .unwrap();
    assert_eq!(before, 0);
    let canceled = cancel_pending_to(&e.store, &phone, CancelReason::OptedOut, now, now)
        .await
        .unwrap();
    assert_eq!(canceled, 3);
    for id in [
        &scheduled.message_id,
        &deferred.message_id,
        &queued.message_id,
    ] {
        let m = e.message(id).await;
        assert_eq!(m.status, PipelineState::Canceled);
        assert_eq!(m.status_reason.as_deref(), Some("opted_out"));
        assert_eq!(m.gsi2pk, None);
    }
    assert_eq!(
        e.message(&untouched.message_id).await.status,
        PipelineState::Scheduled
    );
    // The queued one's job finds it canceled; nothing reaches Twilio.
    e.work().await;
    assert!(e.stack.sandbox_calls(&to).await.is_empty());
    // And a new send to the number is refused.
    assert!(matches!(
        e.send(json!({"to": to, "body": "again"})).await,
        Err(SendError::OptedOut)
    ));
}

#[tokio::test]
async fn a_lost_enqueue_is_swept_and_sent_once() {
    let now = at("2026-12-01T18:00:00Z");
    let e = engine("lost-enqueue", Policy::always_open(), now).await;
    let to = unique_phone();
    let body = unique_body("Your package is at the front desk");
    e.outage.0.store(true, Ordering::SeqCst);
    let a = e.send(json!({"to": to, "body": body})).await.unwrap();
    e.outage.0.store(false, Ordering::SeqCst);
    assert_eq!(
        a.status,
        PipelineState::Queued,
        "202 once the intent is stored"
    );
    assert_eq!(e.queue_depth().await, 0, "the enqueue was lost");

    // Within two minutes of its time the sweep finds it still queued and enqueues it.
    e.clock.set(now.plus(Duration::from_secs(119)));
    let report = e.dispatch().await;
    assert_eq!(report.requeued, 1, "{report:?}");
    e.work().await;
    assert_eq!(
        e.message(&a.message_id).await.status,
        PipelineState::Submitted
    );
    assert_eq!(
        e.stack.sandbox_messages_with(&to, &body).await[0]["create_calls"],
        1
    );
    // Later sweeps find nothing: a submitted message leaves the index.
    e.clock.set(now.plus(Duration::from_secs(600)));
    assert_eq!(e.dispatch().await.requeued, 0);
}

#[tokio::test]
async fn a_dead_workers_claim_with_no_job_is_taken_over_and_finished_once() {
    let now = at("2026-12-01T18:00:00Z");
    let e = engine("dead-claim", Policy::always_open(), now).await;
    let to = unique_phone();
    let body = unique_body("Your inspection is tomorrow");
    let a = e.send(json!({"to": to, "body": body})).await.unwrap();
    // A worker claims it and dies before calling Twilio: drop the job, keep the claim.
    let received = e
        .sqs
        .receive_message()
        .queue_url(&e.queue_url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let job = received
        .messages
        .unwrap_or_default()
        .pop()
        .expect("the job");
    e.sqs
        .delete_message()
        .queue_url(&e.queue_url)
        .receipt_handle(job.receipt_handle.unwrap())
        .send()
        .await
        .unwrap();
    let m = e.message(&a.message_id).await;
    let order = parley::store::ClaimOrder {
        message: &m,
        require_consent: true,
    };
    e.store
        .claim_batch(
            &[order],
            &now.to_string(),
            &now.minus(Duration::from_secs(60)).to_string(),
            e.policy.sweep_minute(now.plus(e.policy.claim_lease), now),
        )
        .await
        .unwrap();
    assert_eq!(
        e.message(&a.message_id).await.status,
        PipelineState::Sending
    );

    // The lease runs out; the sweep hands the message to a worker, which looks at Twilio
    // first (nothing there) and sends it once.
    e.clock.set(
        now.plus(e.policy.claim_lease)
            .plus(Duration::from_secs(130)),
    );
    let report = e.dispatch().await;
    assert_eq!(report.taken_over, 1, "{report:?}");
    e.work().await;
    let m = e.message(&a.message_id).await;
    assert_eq!(m.status, PipelineState::Submitted);
    assert_eq!(
        e.stack.sandbox_messages_with(&to, &body).await[0]["create_calls"],
        1
    );
}

#[tokio::test]
async fn a_store_outage_during_a_batch_dead_letters_nothing_and_sends_each_once() {
    let now = at("2026-12-01T18:00:00Z");
    let e = engine("outage", Policy::always_open(), now).await;
    let mut sent = Vec::new();
    for _ in 0..5 {
        let to = unique_phone();
        let body = unique_body("Outage test");
        e.send(json!({"to": to, "body": body})).await.unwrap();
        sent.push((to, body));
    }
    // The store refuses everything for a while: every receive of the batch is answered with a
    // fresh copy of its job, never a failure that would count toward maxReceiveCount.
    let down = {
        let config = aws_sdk_dynamodb::config::Builder::from(&e.stack.sdk)
            .interceptor(DynamoOutage)
            .build();
        Store::new(aws_sdk_dynamodb::Client::from_conf(config), e.store.table())
    };
    let (_, secrets) = e.stack.own_secrets(&e.stack.token, None).await;
    let broken = SendWorker::new(
        down,
        e.sqs.clone(),
        e.queue_url.clone(),
        TwilioClient::new(
            &e.stack.sandbox(),
            Sender::Number(TWILIO_NUMBER.into()),
            Duration::from_secs(2),
        )
        .unwrap(),
        secrets,
        WorkerConfig {
            status_callback_url: format!("{}/webhook/twilio/status", e.stack.public_base_url),
            max_attempts: 5,
            retry_base: Duration::from_millis(10),
            retry_cap: Duration::from_secs(1),
            claim_lease: Duration::from_secs(60),
            rate_per_second: 0.0,
        },
    )
    .with_policy(e.policy.clone())
    .with_clock(e.clock.clone());
    for _ in 0..6 {
        let received = e
            .sqs
            .receive_message()
            .queue_url(&e.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(2)
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
            )
            .send()
            .await
            .unwrap();
        let messages = received.messages.unwrap_or_default();
        assert!(!messages.is_empty());
        for m in &messages {
            let count = m
                .attributes
                .as_ref()
                .and_then(|a| {
                    a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
                })
                .and_then(|c| c.parse::<u32>().ok())
                .unwrap_or(0);
            assert_eq!(count, 1, "a store fault never counts a receive");
        }
        let records: Vec<Value> = messages
            .iter()
            .map(|m| json!({"messageId": m.message_id, "receiptHandle": m.receipt_handle, "body": m.body, "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs"}))
            .collect();
        let event: SqsEvent = serde_json::from_value(json!({ "Records": records })).unwrap();
        let response = broken.handle(event).await;
        assert!(
            response.batch_item_failures.is_empty(),
            "requeued, not failed"
        );
        for m in &messages {
            e.sqs
                .delete_message()
                .queue_url(&e.queue_url)
                .receipt_handle(m.receipt_handle.clone().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    // The store is back: each is sent once.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    e.work().await;
    for (to, body) in &sent {
        let at_twilio = e.stack.sandbox_messages_with(to, body).await;
        assert_eq!(at_twilio.len(), 1, "sent");
        assert_eq!(at_twilio[0]["create_calls"], 1, "once");
    }
}

/// Refuses every DynamoDB request.
#[derive(Debug)]
struct DynamoOutage;

impl aws_sdk_dynamodb::config::Intercept for DynamoOutage {
    fn name(&self) -> &'static str {
        "DynamoOutage"
    }

    fn read_before_transmit(
        &self,
        _: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), BoxError> {
        Err("injected DynamoDB outage".into())
    }
}

#[tokio::test]
async fn the_sample_dispatcher_event_runs_the_dispatcher() {
    let e = engine("sample", Policy::always_open(), Timestamp::now()).await;
    let event: Value = serde_json::from_str(include_str!("../events/dispatcher.json")).unwrap();
    let report = e.dispatcher.handle(event.clone()).await;
    assert!(
        report["minutes"].as_u64().is_some_and(|m| m > 0),
        "{report}"
    );
    assert!(report["checkpoint"].is_string(), "{report}");
    // A second event right after: the minutes are done, the checkpoint holds.
    let again = e.dispatcher.handle(event).await;
    assert_eq!(again["minutes"], 0, "{again}");
    assert_eq!(again["checkpoint"], report["checkpoint"]);
}

#[tokio::test]
async fn a_submitted_message_with_no_final_status_after_an_hour_is_polled_from_twilio() {
    let now = at("2026-12-01T18:00:00Z");
    let e = engine("poll", Policy::always_open(), now).await;
    let to = unique_phone();
    let body = unique_body("Your deposit has been returned");
    let a = e.send(json!({"to": to, "body": body})).await.unwrap();
    e.work().await;
    // Twilio's callbacks go nowhere (see `engine`): nothing final arrives here.
    let m = e.message(&a.message_id).await;
    assert_eq!(m.status, PipelineState::Submitted);
    assert!(!m.delivery_status.unwrap().is_final());
    assert!(m.gsi2pk.is_some(), "filed for a status poll");
    eventually(20, "delivered at the sandbox", || async {
        e.stack
            .sandbox_messages_with(&to, &body)
            .await
            .into_iter()
            .find(|s| s["status"] == "delivered")
    })
    .await;

    // Filed an hour after its submission.
    assert!(
        m.gsi2pk.as_deref().unwrap().contains("2026-12-01T19:00"),
        "{:?}",
        m.gsi2pk
    );
    // An hour later: fetched by SID, applied with source `poll`, out of the index.
    e.clock.set(now.plus(Duration::from_secs(3600 + 120)));
    let report = e.dispatch().await;
    assert_eq!(report.polled, 1, "{report:?}");
    let m = e.message(&a.message_id).await;
    assert_eq!(
        m.delivery_status,
        Some(parley::delivery::DeliveryStatus::Delivered),
        "{:?}",
        m.status_history
    );
    assert!(m
        .status_history
        .iter()
        .any(|h| h.status == "delivered" && h.source == "poll"));
    assert_eq!(m.gsi2pk, None);
}
