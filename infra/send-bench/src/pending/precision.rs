//! How late a minute's messages reach Twilio: N `scheduled` messages due at the same whole
//! minute a few minutes ahead, filed in the due index at `release_minute(due, now)`, then the
//! real pipeline on real time — the `Dispatcher` on the system clock every few seconds (as the
//! local stack runs the template's `Schedule` event), and `SendWorker`s behind `SqsPoller`s
//! (Lambda's SQS event source, one poller per concurrent execution) sending to the Twilio
//! sandbox. Lateness is when each create call arrived at the sandbox minus the message's
//! `send_at`; quiet hours never close (`Policy::always_open`) for the dispatcher and the workers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use parley::handlers::dispatcher::{DispatchReport, Dispatcher, DispatcherConfig};
use parley::handlers::send_worker::{SendWorker, WorkerConfig};
use parley::pending::Policy;
use parley::queue::JobQueue;
use parley::store::Store;
use parley::time::{SystemClock, Timestamp};
use parley::twilio::client::{Sender, TwilioClient};
use parley_local::event_sources::{ScheduleFunction, SchedulePoller, SqsFunction, SqsPoller};
use serde_json::Value;

use super::{scan_messages, seed_scheduled, statuses, text, unix_seconds, Plan, Spread};
use crate::cpu;
use crate::stack::Stack;
use crate::timing::{self, OpSummary, OpTimer};

#[derive(Debug, Clone)]
pub struct Spec {
    pub messages: usize,
    pub pollers: usize,
    /// How often the dispatcher runs.
    pub dispatch_every: Duration,
    /// The messages are due at the first whole minute at least this far ahead.
    pub lead: Duration,
    /// How long after they are due the run may go on before it is reported incomplete.
    pub timeout: Duration,
}

/// When each job the dispatcher enqueues becomes visible: an interceptor on its SQS client
/// reads every SendMessageBatch as it is sent (Unix seconds) and each entry's DelaySeconds.
#[derive(Debug, Clone, Default)]
pub struct EnqueueLog(Arc<Mutex<Vec<f64>>>);

impl EnqueueLog {
    /// Unix seconds at which each enqueued job becomes visible (the send of its batch plus its
    /// delay; attempts that were retried count each time).
    pub fn visible_at(&self) -> Vec<f64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Intercept for EnqueueLog {
    fn name(&self) -> &'static str {
        "PendingBenchEnqueueLog"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let batch = request
            .headers()
            .get("x-amz-target")
            .is_some_and(|t| t.ends_with(".SendMessageBatch"));
        if !batch {
            return Ok(());
        }
        let sent = unix_now();
        let body: Value = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or_default();
        let mut log = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for entry in body["Entries"].as_array().into_iter().flatten() {
            log.push(sent + entry["DelaySeconds"].as_f64().unwrap_or(0.0));
        }
        Ok(())
    }
}

/// One dispatcher invocation (Unix seconds).
#[derive(Debug, Clone)]
pub struct Invocation {
    pub started: f64,
    pub ended: f64,
    pub report: Result<DispatchReport, String>,
}

pub struct Outcome {
    pub spec: Spec,
    pub due: Timestamp,
    pub index_minute: Timestamp,
    pub seeded_at: f64,
    pub seeding: Duration,
    pub complete: bool,
    pub handled: usize,
    pub invocations: Vec<Invocation>,
    pub worker_invocations: usize,
    pub statuses: std::collections::BTreeMap<String, usize>,
    /// Create calls at the sandbox: answered with a message, and all.
    pub created: usize,
    pub calls: usize,
    /// Seconds after `send_at`, one per create call answered with a message.
    pub lateness: Vec<f64>,
    /// Seconds after `send_at` at which each enqueued job became visible on the queue.
    pub visible: Vec<f64>,
    /// Seconds after `send_at` of each message's claim and recorded submission.
    pub claimed: Vec<f64>,
    pub submitted: Vec<f64>,
    pub dispatcher_ops: Vec<OpSummary>,
    pub worker_ops: Vec<OpSummary>,
    pub cpu: cpu::Usage,
}

impl Outcome {
    pub fn lateness(&self) -> Option<Spread> {
        Spread::of(&self.lateness)
    }

    pub fn early(&self) -> usize {
        self.lateness.iter().filter(|l| **l < 0.0).count()
    }

    /// The invocations that released something.
    pub fn releases(&self) -> Vec<&Invocation> {
        self.invocations
            .iter()
            .filter(|i| i.report.as_ref().is_ok_and(|r| r.released > 0))
            .collect()
    }
}

fn unix_now() -> f64 {
    Timestamp::now().unix_millis() as f64 / 1e3
}

struct Progress {
    target: usize,
    done: AtomicUsize,
    invocations: AtomicUsize,
    finished: OnceLock<Instant>,
}

pub async fn run(stack: &Stack, spec: Spec) -> Result<Outcome, String> {
    let policy = Policy::always_open();
    let table = "pending-bench-precision";
    stack.table(table).await?;
    let (queue_url, queue_arn) = stack.send_queue("pending-bench-precision-").await?;
    let sandbox = stack.sandbox().await?;

    let now = Timestamp::now();
    let due = now.plus(spec.lead + Duration::from_secs(60)).minute();
    let setup = aws_sdk_dynamodb::Client::new(&stack.setup_sdk);
    let plan = Plan {
        label: "precision",
        exchange: 400,
        n: spec.messages,
        due,
        accepted_at: now,
    };
    let seeded = seed_scheduled(&setup, table, &policy, plan).await?;
    let seeded_at = unix_now();
    eprintln!(
        "  {} scheduled messages due {due}, filed under {}, written in {:.1} s (not timed)",
        spec.messages,
        seeded.index_minute.minute_key(),
        seeded.elapsed.as_secs_f64()
    );
    // The dispatcher reads a minute 65 s after it starts: it must all be written by then.
    let read_at = seeded.index_minute.plus(Duration::from_secs(65));
    if Timestamp::now() >= read_at.minus(Duration::from_secs(2)) {
        return Err(format!(
            "seeding ended too late for the dispatcher to find every message (its minute is read at {read_at}); use a longer --lead-s"
        ));
    }

    // The dispatcher on the system clock, every `dispatch_every`, one run at a time.
    let dispatcher_timer = OpTimer::default();
    let enqueued = EnqueueLog::default();
    let dispatcher_sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&stack.sdk)
            .interceptor(dispatcher_timer.clone())
            .interceptor(enqueued.clone())
            .build(),
    );
    let dispatcher = Arc::new(Dispatcher::new(
        Store::new(timing::dynamodb(&stack.sdk, &dispatcher_timer), table),
        JobQueue::new(dispatcher_sqs, queue_url.clone()),
        Arc::new(policy.clone()),
        Arc::new(SystemClock),
        DispatcherConfig::default(),
    ));
    let invocations = Arc::new(Mutex::new(Vec::new()));
    let log = invocations.clone();
    let function: ScheduleFunction = Arc::new(move |_event: Value| {
        let dispatcher = dispatcher.clone();
        let log = log.clone();
        Box::pin(async move {
            // What `Dispatcher::handle` does, keeping the typed report.
            let started = unix_now();
            let result = dispatcher.run().await;
            let ended = unix_now();
            let answer = match &result {
                Ok(report) => serde_json::to_value(report).unwrap_or_default(),
                Err(_) => serde_json::json!({ "error": "store unavailable" }),
            };
            log.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Invocation {
                    started,
                    ended,
                    report: result.map_err(|e| parley::error::chain(&e)),
                });
            answer
        })
    });
    let schedule = SchedulePoller {
        name: "DispatcherFunction-Dispatch".into(),
        every: spec.dispatch_every,
        input: None,
        region: "us-east-1".into(),
        function,
    };

    // The workers, as in the send bench (template settings, no sender rate).
    let worker_timer = OpTimer::default();
    let dynamodb = timing::dynamodb(&stack.sdk, &worker_timer);
    let sqs = timing::sqs(&stack.sdk, &worker_timer);
    let progress = Arc::new(Progress {
        target: spec.messages,
        done: AtomicUsize::new(0),
        invocations: AtomicUsize::new(0),
        finished: OnceLock::new(),
    });
    let mut pollers = Vec::new();
    for _ in 0..spec.pollers {
        let twilio = TwilioClient::new(
            &sandbox.url(),
            Sender::Number(stack.from_number.clone()),
            Duration::from_secs(10),
        )
        .map_err(|e| e.to_string())?;
        let worker = Arc::new(
            SendWorker::new(
                Store::new(dynamodb.clone(), table),
                sqs.clone(),
                queue_url.clone(),
                twilio,
                stack.secrets.clone(),
                WorkerConfig {
                    status_callback_url: stack.sink.url.clone(),
                    max_attempts: 5,
                    retry_base: Duration::from_secs(2),
                    retry_cap: Duration::from_secs(300),
                    claim_lease: Duration::from_secs(60),
                    rate_per_second: 0.0,
                },
            )
            .with_policy(Arc::new(Policy::always_open())),
        );
        let counter = progress.clone();
        let function: SqsFunction = Arc::new(move |event: SqsEvent| {
            let worker = worker.clone();
            let counter = counter.clone();
            Box::pin(async move {
                let records = event.records.len();
                let response = worker.handle(event).await;
                let handled = records.saturating_sub(response.batch_item_failures.len());
                counter.invocations.fetch_add(1, Ordering::Relaxed);
                let before = counter.done.fetch_add(handled, Ordering::SeqCst);
                if before < counter.target && before + handled >= counter.target {
                    let _ = counter.finished.set(Instant::now());
                }
                response
            })
        });
        pollers.push(SqsPoller {
            client: sqs.clone(),
            queue_url: queue_url.clone(),
            queue_arn: queue_arn.clone(),
            batch_size: 10,
            region: "us-east-1".into(),
            function,
        });
    }

    let mut tasks = vec![tokio::spawn(schedule.run())];
    tasks.extend(pollers.into_iter().map(|p| tokio::spawn(p.run())));
    // CPU from a few seconds before the minute is read to the end of the run.
    let until_read = Timestamp::now().until(read_at.minus(Duration::from_secs(5)));
    tokio::time::sleep(until_read).await;
    let cpu_before = cpu::snapshot(stack.emulator_pid);
    let cpu_started = Instant::now();
    let deadline = Instant::now() + Timestamp::now().until(due) + spec.timeout;
    let mut next_note = Instant::now();
    let complete = loop {
        // Every job handled once is every message sent, unless one was requeued: then the
        // sandbox has the last word.
        if progress.finished.get().is_some() {
            if sandbox_created(&sandbox.url()).await? >= spec.messages {
                break true;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if Instant::now() > deadline {
            break false;
        }
        if Instant::now() >= next_note {
            let to_due = Timestamp::now().unix_millis() - due.unix_millis();
            eprintln!(
                "  precision: {} of {} sent, {:+.0} s from their due time",
                progress.done.load(Ordering::SeqCst),
                spec.messages,
                to_due as f64 / 1e3
            );
            next_note += Duration::from_secs(10);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let cpu = cpu::usage(
        cpu_before,
        cpu::snapshot(stack.emulator_pid),
        cpu_started.elapsed(),
    );
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }

    let calls = sandbox_calls(&sandbox.url()).await?;
    let due_s = due.unix_millis() as f64 / 1e3;
    let lateness: Vec<f64> = calls
        .iter()
        .filter(|c| c["outcome"] == "created")
        .filter_map(|c| c["received_at"].as_f64())
        .map(|at| at - due_s)
        .collect();
    let items = scan_messages(&setup, table).await?;
    let after = |name: &str| -> Vec<f64> {
        items
            .iter()
            .filter_map(|i| unix_seconds(&text(i, name)))
            .map(|at| at - due_s)
            .collect()
    };
    let invocations = invocations
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Ok(Outcome {
        due,
        index_minute: seeded.index_minute,
        seeded_at,
        seeding: seeded.elapsed,
        complete,
        handled: progress.done.load(Ordering::SeqCst),
        invocations,
        worker_invocations: progress.invocations.load(Ordering::SeqCst),
        statuses: statuses(&items),
        created: lateness.len(),
        calls: calls.len(),
        lateness,
        visible: enqueued
            .visible_at()
            .into_iter()
            .map(|at| at - due_s)
            .collect(),
        claimed: after("claimed_at"),
        submitted: after("submitted_at"),
        dispatcher_ops: dispatcher_timer.take_summaries(),
        worker_ops: worker_timer.take_summaries(),
        cpu,
        spec,
    })
}

/// Every create call the sandbox received.
async fn sandbox_calls(base: &str) -> Result<Vec<Value>, String> {
    let calls: Value = reqwest::get(format!("{base}/_sandbox/calls"))
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    Ok(calls["calls"].as_array().cloned().unwrap_or_default())
}

async fn sandbox_created(base: &str) -> Result<usize, String> {
    Ok(sandbox_calls(base)
        .await?
        .iter()
        .filter(|c| c["outcome"] == "created")
        .count())
}
