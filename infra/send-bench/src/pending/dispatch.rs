//! Releasing a busy minute: N `scheduled` messages due in the same minute, released by the real
//! `Dispatcher` at a `ManualClock` set to their due time, against the emulator's ceiling for the
//! same requests measured in the same run.
//!
//! Every run gets its own table and queue with the same N messages (a copy each, because every
//! release is conditional on the state it read), filed at `release_minute(due, due − 1 h)`,
//! i.e. five minutes before they are due, and the dispatcher's checkpoint just before that
//! minute (where a dispatcher running every minute leaves it). Two kinds of run:
//!
//! - **ceiling**: the requests the release needs, issued back to back through the same public
//!   `Store` and `JobQueue` calls with nothing around them: the checkpoint read, every Query
//!   page of the minutes the dispatcher reads at that clock, one `Transition` per message (to
//!   `queued`, filed for its sweep, as the dispatcher writes it) through `Store::transitions`
//!   (TransactWriteItems of 100), the checkpoint updates; then the jobs through
//!   `JobQueue::enqueue_many` (SendMessageBatch of 10). Timed twice: DynamoDB only, and
//!   DynamoDB + SQS.
//! - **dispatcher**: `Dispatcher::run` with the clock at their due time.
//!
//! They alternate, ceiling first and last (C D C D C for two rounds), so that drift in the
//! machine's load shows and every dispatcher run has a ceiling run on each side. A run's table
//! and queue are deleted after its checks, so the emulator holds one run's items at a time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parley::handlers::dispatcher::{DispatchReport, Dispatcher, DispatcherConfig};
use parley::pending::Policy;
use parley::pipeline::PipelineState;
use parley::queue::{JobQueue, SendJob};
use parley::store::{keys, IndexChange, Message, Store, Transition};
use parley::time::{ManualClock, Timestamp};

use super::{queue_depth, scan_messages, seed_scheduled, statuses, text, Plan, Seeded};
use crate::cpu;
use crate::stack::Stack;
use crate::timing::{self, OpSummary, OpTimer};

const MINUTE: Duration = Duration::from_secs(60);

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    pub messages: usize,
    /// Dispatcher runs, each followed by a ceiling run (and one ceiling run before the first).
    pub rounds: usize,
    /// The SDK's per-attempt timeout for the timed clients (the operation's is three times
    /// it); `None` keeps the functions' (`parley::aws::loader`: 2 s, or
    /// `AWS_ATTEMPT_TIMEOUT_MS`). moto answers a due-index Query by scanning the whole table,
    /// which takes longer than 2 s at this size.
    pub attempt_timeout: Option<Duration>,
}

/// The functions' SDK configuration, with `spec`'s timeouts when it sets them.
pub fn sdk(stack: &Stack, spec: &Spec) -> aws_config::SdkConfig {
    match spec.attempt_timeout {
        None => stack.sdk.clone(),
        Some(attempt) => stack
            .sdk
            .to_builder()
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(1))
                    .operation_attempt_timeout(attempt)
                    .operation_timeout(attempt * 3)
                    .build(),
            )
            .build(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ceiling,
    Dispatcher,
}

/// One timed release (the dispatcher's or a ceiling's).
pub struct Release {
    pub kind: Kind,
    pub label: String,
    pub seeding: Duration,
    /// The whole release.
    pub elapsed: Duration,
    /// Ceiling only: the DynamoDB requests alone (reads, transitions, checkpoint).
    pub dynamodb_elapsed: Option<Duration>,
    pub ops: Vec<OpSummary>,
    pub cpu: cpu::Usage,
    /// Messages changed to `queued` (the dispatcher's `released`; the transitions applied).
    pub released: usize,
    pub report: Option<DispatchReport>,
    /// After the run: messages by status, and the queue's visible / in flight / delayed jobs.
    pub statuses: BTreeMap<String, usize>,
    pub queue: [u64; 3],
    /// Messages now filed in the bucket of their sweep minute.
    pub filed_for_sweep: usize,
}

impl Release {
    pub fn requests(&self, service: &str) -> usize {
        self.ops
            .iter()
            .filter(|o| o.op.to_ascii_lowercase().starts_with(service))
            .map(|o| o.latency.n)
            .sum()
    }

    pub fn count(&self, op: &str) -> usize {
        self.ops
            .iter()
            .find(|o| o.op == op)
            .map_or(0, |o| o.latency.n)
    }

    pub fn errors(&self) -> usize {
        self.ops.iter().map(|o| o.errors).sum()
    }

    /// Messages per second over the whole release.
    pub fn rate(&self) -> f64 {
        self.released as f64 / self.elapsed.as_secs_f64()
    }

    /// Messages per second over the DynamoDB requests alone (ceiling runs; the whole release
    /// otherwise).
    pub fn dynamodb_rate(&self) -> f64 {
        self.released as f64 / self.dynamodb_elapsed.unwrap_or(self.elapsed).as_secs_f64()
    }
}

pub struct Outcome {
    pub spec: Spec,
    pub due: Timestamp,
    pub index_minute: Timestamp,
    /// In the order they ran.
    pub runs: Vec<Release>,
}

impl Outcome {
    pub fn of(&self, kind: Kind) -> impl Iterator<Item = &Release> {
        self.runs.iter().filter(move |r| r.kind == kind)
    }
}

/// One run's table and queue, with `n` scheduled messages due at `due` and the dispatcher's
/// checkpoint just before their minute (not timed).
struct Prepared {
    table: String,
    queue_url: String,
    seeded: Seeded,
}

async fn prepare(
    stack: &Stack,
    policy: &Policy,
    label: &str,
    exchange: u32,
    n: usize,
    due: Timestamp,
) -> Result<Prepared, String> {
    let table = format!("pending-bench-{label}");
    stack.table(&table).await?;
    let (queue_url, _) = stack.send_queue(&format!("pending-bench-{label}-")).await?;
    let client = aws_sdk_dynamodb::Client::new(&stack.setup_sdk);
    let plan = Plan {
        label,
        exchange,
        n,
        due,
        accepted_at: due.minus(Duration::from_secs(3600)),
    };
    let seeded = seed_scheduled(&client, &table, policy, plan).await?;
    Store::new(client, &table)
        .advance_dispatch_checkpoint(None, seeded.index_minute.minus(MINUTE))
        .await
        .map_err(|e| e.to_string())?;
    eprintln!(
        "  {label}: {n} scheduled messages written in {:.1} s (not timed), filed under {}",
        seeded.elapsed.as_secs_f64(),
        seeded.index_minute.minute_key()
    );
    Ok(Prepared {
        table,
        queue_url,
        seeded,
    })
}

/// The checks every release gets (statuses, the queue, the due index); then the table and the
/// queue are deleted.
async fn check_and_drop(
    stack: &Stack,
    policy: &Policy,
    p: &Prepared,
    due: Timestamp,
) -> Result<(BTreeMap<String, usize>, [u64; 3], usize), String> {
    let client = aws_sdk_dynamodb::Client::new(&stack.setup_sdk);
    let items = scan_messages(&client, &p.table).await?;
    let sweep_bucket_prefix = format!("DUE#{}#", policy.sweep_minute(due, due).minute_key());
    let filed = items
        .iter()
        .filter(|i| text(i, "gsi2pk").starts_with(&sweep_bucket_prefix))
        .count();
    let sqs = aws_sdk_sqs::Client::new(&stack.setup_sdk);
    let depth = queue_depth(&sqs, &p.queue_url).await?;
    client
        .delete_table()
        .table_name(&p.table)
        .send()
        .await
        .map_err(|e| format!("DeleteTable: {}", aws_sdk_dynamodb::Error::from(e)))?;
    sqs.delete_queue()
        .queue_url(&p.queue_url)
        .send()
        .await
        .map_err(|e| format!("DeleteQueue: {}", aws_sdk_sqs::Error::from(e)))?;
    Ok((statuses(&items), depth, filed))
}

/// The minutes a dispatcher run at `due` processes after a checkpoint just before `first`.
fn minutes_read(first: Timestamp, due: Timestamp) -> Vec<Timestamp> {
    // The newest minute a run processes: the one that ended at least 5 s ago.
    let newest = due.minus(MINUTE + Duration::from_secs(5)).minute();
    let mut minutes = Vec::new();
    let mut m = first;
    while m <= newest {
        minutes.push(m);
        m = m.plus(MINUTE);
    }
    minutes
}

/// The release without the dispatcher: the same requests, back to back.
async fn ceiling(
    stack: &Stack,
    sdk: &aws_config::SdkConfig,
    policy: &Policy,
    label: String,
    exchange: u32,
    n: usize,
    due: Timestamp,
) -> Result<Release, String> {
    let p = prepare(stack, policy, &label, exchange, n, due).await?;
    let before = p.seeded.index_minute.minus(MINUTE);
    let minutes = minutes_read(p.seeded.index_minute, due);

    let timer = OpTimer::default();
    let store = Store::new(timing::dynamodb(sdk, &timer), &p.table);
    let queue = JobQueue::new(timing::sqs(sdk, &timer), p.queue_url.clone());
    let now = due;
    let cpu_before = cpu::snapshot(stack.emulator_pid);
    let started = Instant::now();
    store
        .dispatch_checkpoint()
        .await
        .map_err(|e| e.to_string())?;
    let mut messages: Vec<Message> = Vec::new();
    for minute in &minutes {
        for shard in 0..keys::DUE_SHARDS {
            let mut start = None;
            loop {
                let (page, next) = store
                    .due_page(*minute, shard, start)
                    .await
                    .map_err(|e| e.to_string())?;
                messages.extend(page);
                start = next;
                if start.is_none() {
                    break;
                }
            }
        }
    }
    let transitions: Vec<Transition> = messages
        .iter()
        .map(|m| {
            let due = m.send_at.unwrap_or(now).max(now);
            Transition {
                message: m,
                to: PipelineState::Queued,
                reason: None,
                index: IndexChange::File {
                    minute: policy.sweep_minute(due, now),
                    due,
                },
                send_at: None,
                delivery_status: None,
                source: "dispatcher",
                swept: false,
                now,
            }
        })
        .collect();
    let applied = store
        .transitions(&transitions)
        .await
        .map_err(|e| e.to_string())?;
    let mut checkpoint = before;
    for minute in &minutes {
        store
            .advance_dispatch_checkpoint(Some(checkpoint), *minute)
            .await
            .map_err(|e| e.to_string())?;
        checkpoint = *minute;
    }
    let dynamodb_elapsed = started.elapsed();
    let jobs: Vec<SendJob> = messages
        .iter()
        .zip(&applied)
        .filter(|(_, applied)| **applied)
        .map(|(m, _)| SendJob::new(m.message_id.clone(), m.pk.clone(), m.sk.clone()))
        .collect();
    let refs: Vec<(&SendJob, Duration)> = jobs.iter().map(|j| (j, Duration::ZERO)).collect();
    let failed = queue.enqueue_many(&refs).await;
    let elapsed = started.elapsed();
    let cpu = cpu::usage(cpu_before, cpu::snapshot(stack.emulator_pid), elapsed);
    if !failed.is_empty() {
        return Err(format!("{label}: {} jobs not enqueued", failed.len()));
    }
    let (statuses, queue, filed_for_sweep) = check_and_drop(stack, policy, &p, due).await?;
    Ok(Release {
        kind: Kind::Ceiling,
        label,
        seeding: p.seeded.elapsed,
        elapsed,
        dynamodb_elapsed: Some(dynamodb_elapsed),
        ops: timer.take_summaries(),
        cpu,
        released: applied.iter().filter(|a| **a).count(),
        report: None,
        statuses,
        queue,
        filed_for_sweep,
    })
}

/// `Dispatcher::run` at their due time.
async fn dispatcher(
    stack: &Stack,
    sdk: &aws_config::SdkConfig,
    policy: &Policy,
    label: String,
    exchange: u32,
    n: usize,
    due: Timestamp,
) -> Result<Release, String> {
    let p = prepare(stack, policy, &label, exchange, n, due).await?;
    let timer = OpTimer::default();
    let dispatcher = Dispatcher::new(
        Store::new(timing::dynamodb(sdk, &timer), &p.table),
        JobQueue::new(timing::sqs(sdk, &timer), p.queue_url.clone()),
        Arc::new(policy.clone()),
        Arc::new(ManualClock::new(due)),
        DispatcherConfig::default(),
    );
    let cpu_before = cpu::snapshot(stack.emulator_pid);
    let started = Instant::now();
    let report = dispatcher.run().await.map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    let cpu = cpu::usage(cpu_before, cpu::snapshot(stack.emulator_pid), elapsed);
    let (statuses, queue, filed_for_sweep) = check_and_drop(stack, policy, &p, due).await?;
    Ok(Release {
        kind: Kind::Dispatcher,
        label,
        seeding: p.seeded.elapsed,
        elapsed,
        dynamodb_elapsed: None,
        ops: timer.take_summaries(),
        cpu,
        released: report.released as usize,
        report: Some(report),
        statuses,
        queue,
        filed_for_sweep,
    })
}

pub async fn run(stack: &Stack, spec: Spec) -> Result<Outcome, String> {
    let policy = Policy::always_open();
    let n = spec.messages;
    // Any whole minute will do with a manual clock: an hour from now, so nothing is past.
    let due = Timestamp::now().plus(Duration::from_secs(3600)).minute();
    let index_minute = policy.release_minute(due, due.minus(Duration::from_secs(3600)));
    let sdk = sdk(stack, &spec);
    let mut runs = Vec::new();
    for i in 0..=2 * spec.rounds {
        let exchange = 300 + 10 * i as u32;
        let run = if i % 2 == 0 {
            let label = format!("ceiling-{}", i / 2 + 1);
            ceiling(stack, &sdk, &policy, label, exchange, n, due).await?
        } else {
            let label = format!("dispatcher-{}", i / 2 + 1);
            dispatcher(stack, &sdk, &policy, label, exchange, n, due).await?
        };
        eprintln!(
            "  {}: {} released in {:.2} s",
            run.label,
            run.released,
            run.elapsed.as_secs_f64()
        );
        runs.push(run);
    }
    Ok(Outcome {
        spec,
        due,
        index_minute,
        runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_at_the_due_time_reads_from_their_minute_to_two_minutes_before() {
        let due = Timestamp::parse("2026-12-01T10:00:00Z").unwrap();
        let policy = Policy::always_open();
        let first = policy.release_minute(due, due.minus(Duration::from_secs(3600)));
        assert_eq!(first, Timestamp::parse("2026-12-01T09:55:00Z").unwrap());
        let minutes = minutes_read(first, due);
        assert_eq!(minutes.len(), 4);
        assert_eq!(
            minutes.last(),
            Some(&Timestamp::parse("2026-12-01T09:58:00Z").unwrap())
        );
    }
}
