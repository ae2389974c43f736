//! One measured run: N queued messages and their jobs are written (not timed), then send workers
//! behind `SqsPoller`s — Lambda's SQS event source — are started and timed until every job has
//! been handled; the store and the sandbox are checked afterwards.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use futures::{StreamExt, TryStreamExt};
use parley::handlers::send_worker::{SendWorker, WorkerConfig};
use parley::phone::Address;
use parley::store::{keys, CreateOutcome, NewOutbound, Store};
use parley::twilio::client::{Sender, TwilioClient};
use parley_local::event_sources::{SqsFunction, SqsPoller};
use serde_json::{json, Value};

use crate::cpu;
use crate::stack::Stack;
use crate::timing::{self, OpSummary, OpTimer};

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    pub label: &'static str,
    pub messages: usize,
    /// Concurrent pollers, each invoking its own worker (one Lambda execution environment each,
    /// so each has its own rate limiter).
    pub pollers: usize,
    pub rate_per_second: f64,
    /// First exchange of the recipients' numbers (+1 628 EEE LLLL), distinct per run.
    pub exchange: u32,
    /// How long the run may take (None: from the messages and the rate, see `deadline`).
    pub timeout: Option<Duration>,
    /// At most this many jobs on the queue (None: all N enqueued before the timed run). With a
    /// bound, the rest are enqueued during the run as jobs are handled, in batches of 10: moto's
    /// ReceiveMessage costs about 1 ms per queued message, so a deep queue makes each receive
    /// outlast the SDK's 2 s attempt timeout.
    pub backlog: Option<usize>,
}

/// What a run measured.
pub struct Outcome {
    pub spec: Spec,
    pub seeding: Duration,
    /// Whether every job was handled before the deadline, and how many were.
    pub complete: bool,
    pub handled: usize,
    /// From starting the pollers to the return of the invocation that completed the last job
    /// (or to the deadline, when incomplete).
    pub elapsed: Duration,
    pub invocations: usize,
    /// Messages by stored status, after the run.
    pub statuses: BTreeMap<String, usize>,
    /// `submitted_at` of every submitted message (Unix seconds, millisecond precision).
    pub submitted_at: Vec<f64>,
    /// When each create call the sandbox answered with a message arrived there (Unix seconds,
    /// sorted): the rate Twilio sees.
    pub twilio_received_at: Vec<f64>,
    /// Twilio create calls the sandbox answered with a message, and all create calls.
    pub twilio_created: usize,
    pub twilio_calls: usize,
    pub cpu: cpu::Usage,
    /// Requests of the workers' and pollers' SDK clients during the timed run.
    pub ops: Vec<OpSummary>,
}

/// The `i`th recipient of a run: a valid US number (area code 628) no other run uses.
pub fn phone(exchange: u32, i: usize) -> String {
    let exchange = exchange as usize + i / 10_000;
    format!("+1628{exchange:03}{:04}", i % 10_000)
}

fn body(label: &str, i: usize) -> String {
    format!("Parley send bench ({label}) #{i}: your order is ready for pickup.")
}

/// Writes a queued outbound message like `POST /messages` does; returns its job body.
pub async fn queued(store: &Store, to: &str, text: &str) -> Result<String, String> {
    let address = Address::parse(to).map_err(|e| format!("{to}: {e}"))?;
    let message_id = ulid::Ulid::new().to_string();
    let outcome = store
        .create_outbound(&NewOutbound::queued(
            message_id.clone(),
            &address,
            text,
            parley::time::Timestamp::now(),
        ))
        .await
        .map_err(|e| format!("create_outbound: {}", parley::error::chain(&e)))?;
    if !matches!(outcome, CreateOutcome::Created) {
        return Err("create_outbound replayed instead of creating".into());
    }
    Ok(json!({
        "message_id": message_id,
        "pk": keys::conversation_pk(address.channel, &address.e164),
        "sk": keys::message_sk(&message_id),
    })
    .to_string())
}

/// Writes `n` queued messages (2 at a time: the emulator runs them one by one anyway) and
/// returns their job bodies.
pub async fn seed_messages(
    store: &Store,
    label: &str,
    exchange: u32,
    n: usize,
) -> Result<Vec<String>, String> {
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| async move {
            let job = queued(store, &phone(exchange, i), &body(label, i)).await;
            if (i + 1) % 500 == 0 {
                eprintln!(
                    "  {label}: {} messages written ({:.0} s)",
                    i + 1,
                    started.elapsed().as_secs_f64()
                );
            }
            job
        })
        .buffered(2)
        .try_collect()
        .await
}

/// SendMessageBatch in tens (4 batches at a time).
async fn enqueue(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    jobs: &[String],
) -> Result<(), String> {
    futures::stream::iter(jobs.chunks(10))
        .map(|chunk| send_batch(sqs, queue_url, chunk))
        .buffer_unordered(4)
        .try_collect::<Vec<()>>()
        .await
        .map(|_| ())
}

/// One SendMessageBatch of up to 10 jobs.
async fn send_batch(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    chunk: &[String],
) -> Result<(), String> {
    let mut entries = Vec::with_capacity(chunk.len());
    for (i, job) in chunk.iter().enumerate() {
        entries.push(
            SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(job)
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    let out = sqs
        .send_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|e| format!("SendMessageBatch: {}", aws_sdk_sqs::Error::from(e)))?;
    if out.failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "SendMessageBatch: {} entries failed",
            out.failed.len()
        ))
    }
}

/// Counts handled jobs across pollers and notes when the last one was.
struct Progress {
    target: usize,
    done: AtomicUsize,
    invocations: AtomicUsize,
    finished: OnceLock<Instant>,
}

impl Progress {
    fn record(&self, handled: usize) {
        self.invocations.fetch_add(1, Ordering::Relaxed);
        let before = self.done.fetch_add(handled, Ordering::SeqCst);
        if before < self.target && before + handled >= self.target {
            let _ = self.finished.set(Instant::now());
        }
    }
}

/// Keeps at most `backlog` unhandled jobs on the queue: enqueues the `rest` in tens as jobs are
/// handled (`enqueued` are on it already). Ends when all are enqueued or a send fails (the run
/// then stops at its deadline, reported incomplete).
async fn feed(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    rest: Vec<String>,
    mut enqueued: usize,
    backlog: usize,
    progress: Arc<Progress>,
) {
    let mut rest = rest.as_slice();
    while !rest.is_empty() {
        let handled = progress.done.load(Ordering::SeqCst);
        if enqueued.saturating_sub(handled) + 10 > backlog {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let (now, later) = rest.split_at(rest.len().min(10));
        if let Err(e) = send_batch(&sqs, &queue_url, now).await {
            eprintln!("  feeding the queue failed: {e}");
            return;
        }
        enqueued += now.len();
        rest = later;
    }
}

/// How long a run may take before it is reported as stuck.
fn deadline(spec: &Spec) -> Duration {
    if let Some(t) = spec.timeout {
        return t;
    }
    let expected = if spec.rate_per_second > 0.0 {
        spec.messages as f64 / (spec.rate_per_second * spec.pollers as f64)
    } else {
        // As slow as 300 messages a minute still finishes.
        spec.messages as f64 * 0.2
    };
    Duration::from_secs_f64(60.0 + 3.0 * expected)
}

pub fn table_name(spec: &Spec) -> String {
    format!("send-bench-{}", spec.label)
}

pub async fn run(stack: &Stack, spec: Spec) -> Result<Outcome, String> {
    let table = table_name(&spec);
    stack.table(&table).await?;
    let (queue_url, queue_arn) = stack
        .send_queue(&format!("send-bench-{}-", spec.label))
        .await?;
    let sandbox = stack.sandbox().await?;
    let setup_store = Store::new(aws_sdk_dynamodb::Client::new(&stack.setup_sdk), &table);
    let setup_sqs = aws_sdk_sqs::Client::new(&stack.setup_sdk);

    let seeding = Instant::now();
    let jobs = seed_messages(&setup_store, spec.label, spec.exchange, spec.messages).await?;
    let upfront = spec.backlog.map_or(jobs.len(), |b| b.min(jobs.len()));
    enqueue(&setup_sqs, &queue_url, &jobs[..upfront]).await?;
    let seeding = seeding.elapsed();

    // The workers' and pollers' clients, timed per operation.
    let timer = OpTimer::default();
    let dynamodb = timing::dynamodb(&stack.sdk, &timer);
    let sqs = timing::sqs(&stack.sdk, &timer);
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
            // TWILIO_TIMEOUT_MS of the deployed function.
            Duration::from_secs(10),
        )
        .map_err(|e| e.to_string())?;
        let worker = Arc::new(
            SendWorker::new(
                Store::new(dynamodb.clone(), &table),
                sqs.clone(),
                queue_url.clone(),
                twilio,
                stack.secrets.clone(),
                WorkerConfig {
                    status_callback_url: stack.sink.url.clone(),
                    // As in template.yaml (SEND_MAX_ATTEMPTS = maxReceiveCount).
                    max_attempts: 5,
                    retry_base: Duration::from_secs(2),
                    retry_cap: Duration::from_secs(300),
                    claim_lease: Duration::from_secs(60),
                    rate_per_second: spec.rate_per_second,
                },
            )
            .with_policy(Arc::new(parley::pending::Policy::always_open())),
        );
        let counter = progress.clone();
        let function: SqsFunction = Arc::new(move |event: SqsEvent| {
            let worker = worker.clone();
            let counter = counter.clone();
            Box::pin(async move {
                let records = event.records.len();
                let response = worker.handle(event).await;
                counter.record(records.saturating_sub(response.batch_item_failures.len()));
                response
            })
        });
        pollers.push(SqsPoller {
            client: sqs.clone(),
            queue_url: queue_url.clone(),
            queue_arn: queue_arn.clone(),
            // The template's BatchSize.
            batch_size: 10,
            region: "us-east-1".into(),
            function,
        });
    }

    let limit = deadline(&spec);
    let cpu_before = cpu::snapshot(stack.emulator_pid);
    let start = Instant::now();
    let mut tasks: Vec<_> = pollers.into_iter().map(|p| tokio::spawn(p.run())).collect();
    if upfront < jobs.len() {
        let backlog = spec.backlog.unwrap_or(jobs.len());
        tasks.push(tokio::spawn(feed(
            setup_sqs.clone(),
            queue_url.clone(),
            jobs[upfront..].to_vec(),
            upfront,
            backlog,
            progress.clone(),
        )));
    }
    let mut next_note = Duration::from_secs(10);
    let finished = loop {
        if let Some(at) = progress.finished.get() {
            break Some(*at);
        }
        let elapsed = start.elapsed();
        if elapsed > limit {
            break None;
        }
        if elapsed >= next_note {
            eprintln!(
                "  {}: {} of {} jobs handled after {} s",
                spec.label,
                progress.done.load(Ordering::SeqCst),
                spec.messages,
                next_note.as_secs()
            );
            next_note += Duration::from_secs(10);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let cpu_after = cpu::snapshot(stack.emulator_pid);
    let cpu_wall = start.elapsed();
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
    let ops = timer.take_summaries();
    // In-flight requests of the stopped pollers may still hold the emulator's DynamoDB lock:
    // a few tries, and a run whose store cannot be read is reported without its statuses.
    let mut check = stored(setup_store.table(), stack).await;
    for _ in 0..2 {
        if check.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        check = stored(setup_store.table(), stack).await;
    }
    let (statuses, submitted_at) = check.unwrap_or_else(|e| {
        eprintln!(
            "  {}: the store could not be read after the run: {e}",
            spec.label
        );
        (
            BTreeMap::from([("unknown (Scan failed)".to_owned(), spec.messages)]),
            Vec::new(),
        )
    });
    let (twilio_received_at, twilio_calls) = sandbox_calls(&sandbox.url()).await?;
    let twilio_created = twilio_received_at.len();
    Ok(Outcome {
        complete: finished.is_some(),
        handled: progress.done.load(Ordering::SeqCst),
        elapsed: finished.map_or(cpu_wall, |at| at - start),
        invocations: progress.invocations.load(Ordering::SeqCst),
        statuses,
        submitted_at,
        twilio_received_at,
        twilio_created,
        twilio_calls,
        cpu: cpu::usage(cpu_before, cpu_after, cpu_wall),
        ops,
        seeding,
        spec,
    })
}

/// Every message of the table: counts by status and the `submitted_at` of submitted ones.
async fn stored(table: &str, stack: &Stack) -> Result<(BTreeMap<String, usize>, Vec<f64>), String> {
    let client = aws_sdk_dynamodb::Client::new(&stack.setup_sdk);
    let pages: Vec<_> = client
        .scan()
        .table_name(table)
        .projection_expression("sk, #status, submitted_at")
        .expression_attribute_names("#status", "status")
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| format!("Scan: {}", aws_sdk_dynamodb::Error::from(e)))?;
    let text = |item: &std::collections::HashMap<String, AttributeValue>, k: &str| {
        item.get(k)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    let mut statuses = BTreeMap::new();
    let mut submitted = Vec::new();
    for item in pages
        .iter()
        .filter(|i| text(i, "sk").starts_with(keys::MESSAGE_PREFIX))
    {
        *statuses.entry(text(item, "status")).or_insert(0) += 1;
        let at = text(item, "submitted_at");
        if !at.is_empty() {
            let t =
                time::OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| format!("submitted_at {at}: {e}"))?;
            submitted.push(t.unix_timestamp_nanos() as f64 / 1e9);
        }
    }
    Ok((statuses, submitted))
}

/// (arrival times of the create calls answered with a message, sorted; all create calls) at
/// the sandbox.
async fn sandbox_calls(base: &str) -> Result<(Vec<f64>, usize), String> {
    let calls: Value = reqwest::get(format!("{base}/_sandbox/calls"))
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let calls = calls["calls"].as_array().cloned().unwrap_or_default();
    let mut created: Vec<f64> = calls
        .iter()
        .filter(|c| c["outcome"] == "created")
        .filter_map(|c| c["received_at"].as_f64())
        .collect();
    created.sort_by(f64::total_cmp);
    Ok((created, calls.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_distinct_valid_us_numbers() {
        let numbers: Vec<String> = (0..25_000).step_by(997).map(|i| phone(200, i)).collect();
        for n in &numbers {
            let address = Address::parse(n).unwrap_or_else(|e| panic!("{n}: {e}"));
            assert_eq!(address.e164.as_str(), n);
        }
        let mut unique = numbers.clone();
        unique.dedup();
        assert_eq!(unique.len(), numbers.len());
        assert_eq!(phone(200, 0), "+16282000000");
        assert_eq!(phone(500, 10_001), "+16285010001");
    }

    #[test]
    fn the_deadline_allows_three_times_the_paced_duration() {
        let spec = Spec {
            label: "t",
            messages: 400,
            pollers: 1,
            rate_per_second: 20.0,
            exchange: 500,
            timeout: None,
            backlog: None,
        };
        assert_eq!(deadline(&spec), Duration::from_secs(120));
        let fixed = Spec {
            timeout: Some(Duration::from_secs(5)),
            ..spec
        };
        assert_eq!(deadline(&fixed), Duration::from_secs(5));
    }
}
