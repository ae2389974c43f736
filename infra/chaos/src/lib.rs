//! The chaos suite (`make chaos`, and its short form in `make test`, tests/chaos.rs).
//!
//! A run starts a local stack of its own (`parley-local up` on its own ports, so its faults
//! touch nothing else), puts a steady mixed load on it — texts the Twilio sandbox receives
//! and delivers to Parley's webhook, sends through `POST /sms/send` and the status callbacks
//! they bring — and meanwhile injects every fault class of [`plan::schedule`]: windows of
//! the AWS emulator (DynamoDB, SQS, EventBridge, Secrets Manager unavailable, throttled,
//! slow; infra/emulator.py), Twilio's 5xx storms, 429s and accepted-then-timeout answers,
//! duplicated, reordered and delayed status callbacks (the sandbox), and send-worker crashes
//! mid-batch (infra/local/src/crash.rs). Then the faults end, the inbound backfill runs, the
//! dispatcher's sweeps and status polls do their work, and [`audit::audit`] checks every
//! accepted send and every received text until all is settled or the settle time is up.
//! docs/reliability.md has the figures of a run.

pub mod audit;
pub mod inject;
pub mod load;
pub mod plan;
pub mod report;
pub mod stack;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use parley::store::Store;
use parley_local::env::LocalEnv;
use parley_local::fault::EmulatorFaults;

use crate::inject::{Injected, Injector};
use crate::load::{Load, LoadLog, GROUPS};
use crate::plan::{FaultClass, Injection};
use crate::report::{LoadFigures, Report};
use crate::stack::Ports;

/// The user agent of the run's own AWS reads: the emulator never faults it.
const APP_NAME: &str = "parley-chaos";
/// Between two runs of the inbound backfill while settling.
const BACKFILL_EVERY: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct Options {
    /// How long the load and the faults last.
    pub duration: Duration,
    /// Operations a second (sends and texts alternate).
    pub rate: f64,
    /// How long the store is down (capped at a quarter of the load).
    pub store_down: Duration,
    /// How long to wait, after the load, for everything to settle.
    pub settle: Duration,
    pub ports: Ports,
    /// The `parley-local` binary.
    pub parley_local: PathBuf,
    /// Where the stack's log goes.
    pub log: PathBuf,
}

/// Runs the suite; `Err` only when the run itself could not happen (the stack did not
/// start). Violations are in the report.
pub async fn run(options: &Options) -> Result<Report, String> {
    let env = stack::environment(options.ports);
    let local = LocalEnv::load().map_err(|e| e.to_string())?;
    let _stack = stack::start(&options.parley_local, &env, &options.log)?;

    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(options.ports.aws_url())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, APP_NAME,
        ))
        .app_name(aws_config::AppName::new(APP_NAME).map_err(|e| e.to_string())?)
        .load()
        .await;
    let store = Store::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        local.require("TABLE_NAME")?,
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())?;
    let load = Load {
        http: http.clone(),
        gateway: options.ports.gateway_url(),
        sandbox: options.ports.sandbox_url(),
        send_key: local.require("LOCAL_SEND_API_KEY")?.to_owned(),
        parley_number: local.require("TWILIO_FROM_NUMBER")?.to_owned(),
        run_id: ulid::Ulid::new().to_string()[16..].to_owned(),
        log: Arc::new(Mutex::new(LoadLog::default())),
    };
    let injector = Injector {
        http: http.clone(),
        emulator: EmulatorFaults::new(&options.ports.aws_url()),
        sandbox: options.ports.sandbox_url(),
        gateway: options.ports.gateway_url(),
    };
    load.plan_callbacks().await?;
    // The senders are a tenant's, so their texts make `sms.received` events (EventBridge's
    // faults meet them).
    load.register_senders(options.ports.monitor).await?;

    let since = parley::time::Timestamp::now().minus(Duration::from_secs(60));
    let plan = plan::schedule(options.duration, options.store_down);
    let started = Instant::now();
    let (injection_errors, ()) = tokio::join!(
        injector.run(plan.clone(), started, options.duration.mul_f64(0.85)),
        load.run(options.rate, options.duration)
    );
    tokio::time::sleep(inject::CRASH_GRACE).await;
    injector.emulator.clear().await?;

    let load_done = Instant::now();
    let mut backfill_runs = 0;
    let mut backfill_recorded = 0;
    let mut replays = (0, 0);
    let mut backfill_last = String::new();
    let mut last_backfill: Option<Instant> = None;
    let log = Arc::clone(&load.log);
    let audit = loop {
        if last_backfill.is_none_or(|at| at.elapsed() >= BACKFILL_EVERY) {
            let since = since.to_string();
            backfill_last = parley_local(
                &options.parley_local,
                &env,
                &["backfill", "--since", &since],
            )
            .await;
            backfill_recorded += serde_json::from_str::<serde_json::Value>(&backfill_last)
                .ok()
                .and_then(|v| v["recorded"].as_u64())
                .unwrap_or(0);
            backfill_runs += 1;
            // Stream batches the processor gave up on while a fault lasted go to its failure
            // queue (an alarm); the runbook's answer is a replay.
            let line = parley_local(&options.parley_local, &env, &["replay-failures"]).await;
            let (batches, records) = replayed(&line);
            replays.0 += batches;
            replays.1 += records;
            last_backfill = Some(Instant::now());
        }
        let snapshot = snapshot(&log);
        let before = sandbox_messages(&http, &options.ports).await?;
        let audit = audit::audit(
            &snapshot,
            &store,
            &before,
            sandbox_messages(&http, &options.ports),
        )
        .await?;
        if audit.clean() || load_done.elapsed() >= options.settle {
            break audit;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    };
    let settled_in = load_done.elapsed();

    let mut injected = injector.injected().await?;
    for injection in &plan {
        let class = match injection {
            Injection::Emulator { .. } => continue,
            Injection::Sandbox { fault, .. } => FaultClass::Sandbox(*fault),
            Injection::Crash { .. } => FaultClass::WorkerCrash,
        };
        injected.entry(class).or_default().times += 1;
    }
    let snapshot = snapshot(&log);
    for callbacks in GROUPS.iter().flatten() {
        let hits = snapshot
            .accepted
            .iter()
            .filter(|s| s.callbacks == Some(*callbacks))
            .count();
        injected.insert(
            FaultClass::Callbacks(*callbacks),
            Injected {
                times: 1,
                seconds: 0.0,
                hits: hits as u64,
            },
        );
    }
    let not_injected = plan::classes()
        .into_iter()
        .filter(|c| injected.get(c).is_none_or(|i| i.hits == 0))
        .collect();
    Ok(Report {
        load: LoadFigures {
            duration: options.duration,
            rate: options.rate,
            sends_attempted: snapshot.accepted.len() + snapshot.refused.len(),
            sends_refused: snapshot.refused.len(),
            send_refusals: snapshot.accepted.iter().map(|s| s.refusals).sum(),
            texts: snapshot.texts.len(),
            receive_errors: snapshot.receive_errors.len(),
        },
        injected,
        not_injected,
        injection_errors,
        backfill_runs,
        backfill_recorded,
        backfill_last,
        processor_replays: replays,
        settled_in,
        audit,
    })
}

/// A copy of the load's log (the lock is not held across the audit's awaits).
fn snapshot(log: &Mutex<LoadLog>) -> LoadLog {
    let log = log
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    LoadLog {
        accepted: log.accepted.clone(),
        refused: log.refused.clone(),
        texts: log.texts.clone(),
        receive_errors: log.receive_errors.clone(),
    }
}

async fn sandbox_messages(
    http: &reqwest::Client,
    ports: &Ports,
) -> Result<Vec<serde_json::Value>, String> {
    let value: serde_json::Value = http
        .get(format!("{}/_sandbox/messages", ports.sandbox_url()))
        .send()
        .await
        .map_err(|e| format!("sandbox: {e}"))?
        .json()
        .await
        .map_err(|e| format!("sandbox: {e}"))?;
    Ok(value["messages"].as_array().cloned().unwrap_or_default())
}

/// Runs `parley-local ARGS…` against the run's stack, as an operator would: its report (the
/// last line of its output: counts only), or why it failed.
async fn parley_local(
    parley_local: &std::path::Path,
    env: &BTreeMap<String, String>,
    args: &[&str],
) -> String {
    let output = tokio::process::Command::new(parley_local)
        .args(args)
        .envs(env)
        .output()
        .await;
    match output {
        // The report is the last line (an EMF line may come before it).
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .to_owned(),
        Ok(out) => format!("failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        Err(e) => format!("could not run: {e}"),
    }
}

/// The first two numbers of `replay-failures`' line ("Q: 2 batches, 7 records replayed, …").
fn replayed(line: &str) -> (u64, u64) {
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    match numbers.as_slice() {
        [batches, records, ..] if line.contains("replayed") => (*batches, *records),
        _ => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replay_reports_are_read_for_their_counts() {
        assert_eq!(
            super::replayed("parley-local-ProcessorFailureQueue: 2 batches, 7 records replayed, 0 no longer in the stream, 0 batches kept"),
            (2, 7)
        );
        assert_eq!(super::replayed("failed: no queue"), (0, 0));
    }
}
