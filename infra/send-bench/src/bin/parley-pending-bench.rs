//! `parley-pending-bench`: the pending-message engine on this machine, against the emulator.
//!
//! - `dispatch`: N `scheduled` messages due in the same minute, released by the real
//!   `Dispatcher` at a manual clock set to their due time; DynamoDB requests per released
//!   message, wall time and messages/s, against the emulator's ceiling for the same requests
//!   issued back to back in the same run (`parley_send_bench::pending::dispatch`).
//! - `precision`: N `scheduled` messages due at one whole minute a few minutes ahead, through
//!   the real pipeline on real time (dispatcher every 2 s, two pollers and send workers, the
//!   Twilio sandbox); lateness of each create call at the sandbox after `send_at`
//!   (`parley_send_bench::pending::precision`).
//!
//! Each runs on its own emulator (`infra/emulator.py`). The report goes to stderr; stdout
//! carries what the functions print (EMF metric lines). It exits non-zero when a run is broken
//! (not every message released, queued or sent exactly once), not when a target is missed.
//!
//! Options: `--only dispatch|precision`, `--messages N` (10000), `--rounds R` (2: ceiling and
//! dispatcher runs alternate, C D C D C), `--dispatch-attempt-timeout-ms MS` (60000: moto's
//! due-index Query outlasts the functions' 2 s at this table size; 0 keeps the functions'
//! timeouts), `--precision-messages N` (1000), `--pollers P` (2), `--dispatch-every-ms MS`
//! (2000), `--lead-s S` (150: the precision run's messages are due at the first whole minute
//! at least S s after seeding starts), `--timeout-s S` (300, after their due time),
//! `--emulator-port P`, `--sandbox-port P`, `--sink-port P` (0: any free port; with a port
//! set, the second scenario uses P + 1 for the emulator and the sink).
//!
//! `make bench-pending` builds it in release mode and runs it; figures are in
//! docs/benchmarks.md.

use std::process::ExitCode;
use std::time::Duration;

use parley_local::env::LocalEnv;
use parley_send_bench::pending::{dispatch, precision, Spread};
use parley_send_bench::report::{cpu_model, interrupted, load_average, pass, print_ops};
use parley_send_bench::stack::{self, Ports};

/// The targets.
const MAX_DYNAMODB_PER_MESSAGE: f64 = 0.2;
const MIN_SHARE_OF_CEILING: f64 = 0.8;
const MAX_P99_LATENESS_S: f64 = 2.0;

#[derive(Debug, Clone, PartialEq)]
struct Args {
    only: Option<String>,
    messages: usize,
    rounds: usize,
    dispatch_attempt_timeout: Option<Duration>,
    precision_messages: usize,
    pollers: usize,
    dispatch_every: Duration,
    lead: Duration,
    timeout: Duration,
    emulator_port: u16,
    sandbox_port: u16,
    sink_port: u16,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            only: None,
            messages: 10_000,
            rounds: 2,
            dispatch_attempt_timeout: Some(Duration::from_secs(60)),
            precision_messages: 1_000,
            pollers: 2,
            dispatch_every: Duration::from_secs(2),
            lead: Duration::from_secs(150),
            timeout: Duration::from_secs(300),
            emulator_port: 0,
            sandbox_port: 0,
            sink_port: 0,
        }
    }
}

fn usage() -> String {
    "usage: parley-pending-bench [--only dispatch|precision] [--messages N] [--rounds R] \
     [--dispatch-attempt-timeout-ms MS] [--precision-messages N] [--pollers P] [--dispatch-every-ms MS] [--lead-s S] \
     [--timeout-s S] [--emulator-port P] [--sandbox-port P] [--sink-port P]\n\
     --dispatch-attempt-timeout-ms MS: the dispatch run's SDK attempt timeout (60000; 0: the \
     functions' own, 2 s or AWS_ATTEMPT_TIMEOUT_MS)\n\
     --lead-s S: the precision run's messages are due at the first whole minute at least S s \
     after seeding starts (at least 130)"
        .into()
}

impl Args {
    fn parse(mut argv: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut args = Self::default();
        while let Some(flag) = argv.next() {
            let mut value = || argv.next().ok_or_else(|| format!("{flag} needs a value"));
            let number = |v: String| -> Result<usize, String> {
                v.parse().map_err(|_| format!("{flag}: not a count: {v}"))
            };
            let port = |v: String| -> Result<u16, String> {
                v.parse().map_err(|_| format!("{flag}: not a port: {v}"))
            };
            match flag.as_str() {
                "--only" => {
                    let v = value()?;
                    if !["dispatch", "precision"].contains(&v.as_str()) {
                        return Err(format!("--only: dispatch or precision, not {v}"));
                    }
                    args.only = Some(v);
                }
                "--messages" => args.messages = number(value()?)?,
                "--rounds" => args.rounds = number(value()?)?,
                "--dispatch-attempt-timeout-ms" => {
                    args.dispatch_attempt_timeout = match number(value()?)? {
                        0 => None,
                        ms => Some(Duration::from_millis(ms as u64)),
                    }
                }
                "--precision-messages" => args.precision_messages = number(value()?)?,
                "--pollers" => args.pollers = number(value()?)?,
                "--dispatch-every-ms" => {
                    args.dispatch_every = Duration::from_millis(number(value()?)? as u64)
                }
                "--lead-s" => args.lead = Duration::from_secs(number(value()?)? as u64),
                "--timeout-s" => args.timeout = Duration::from_secs(number(value()?)? as u64),
                "--emulator-port" => args.emulator_port = port(value()?)?,
                "--sandbox-port" => args.sandbox_port = port(value()?)?,
                "--sink-port" => args.sink_port = port(value()?)?,
                "-h" | "--help" => return Err(usage()),
                other => return Err(format!("unknown option {other}\n{}", usage())),
            }
        }
        if args.messages == 0 || args.precision_messages == 0 || args.pollers == 0 {
            return Err("--messages, --precision-messages and --pollers must be at least 1".into());
        }
        if args.rounds == 0 {
            return Err("--rounds must be at least 1".into());
        }
        if args.lead < Duration::from_secs(130) {
            return Err(
                "--lead-s must be at least 130: the dispatcher reads a minute 65 s after it ends"
                    .into(),
            );
        }
        if args.dispatch_every.is_zero() {
            return Err("--dispatch-every-ms must be positive".into());
        }
        Ok(args)
    }

    fn runs(&self, name: &str) -> bool {
        self.only.as_deref().is_none_or(|o| o == name)
    }
}

/// Port `base + offset`, or 0 (any free port) when `base` is 0.
fn nth(base: u16, offset: u16) -> u16 {
    if base == 0 {
        0
    } else {
        base + offset
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if std::env::var_os("RUST_LOG").is_some() {
        parley::telemetry::init();
    }
    let env = match LocalEnv::load() {
        Ok(env) => env,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    eprintln!("# parley-pending-bench");
    eprintln!(
        "machine: {cores} CPUs ({}); dispatcher, workers, pollers and sandbox in this process, moto in its own",
        cpu_model()
    );
    eprintln!("load average at the start: {}", load_average());
    let mut problems = Vec::new();
    let mut offset = 0;
    for (name, selected) in [
        ("dispatch", args.runs("dispatch")),
        ("precision", args.runs("precision")),
    ] {
        if !selected {
            continue;
        }
        let result = tokio::select! {
            r = scenario(name, &args, &env, offset) => r,
            signal = interrupted() => Err(format!("interrupted by {signal}")),
        };
        offset += 1;
        if let Err(e) = result {
            eprintln!("{name}: {e}");
            problems.push(format!("{name}: {e}"));
            if e.starts_with("interrupted") {
                break;
            }
        }
    }
    eprintln!("\nload average at the end: {}", load_average());
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("pending bench failed: {}", problems.join("; "));
        ExitCode::FAILURE
    }
}

/// One scenario on its own emulator.
async fn scenario(name: &str, args: &Args, env: &LocalEnv, offset: u16) -> Result<(), String> {
    let emulator = stack::Emulator::start_on(&stack::python(env), nth(args.emulator_port, offset))
        .await
        .map_err(|e| format!("could not start the emulator: {e}"))?;
    eprintln!(
        "\n## {name} (emulator infra/emulator.py on port {}, DynamoDB requests one at a time)",
        emulator.port
    );
    let log = emulator.log.clone();
    let result = async {
        let stack = stack::Stack::with_ports(
            env,
            &emulator,
            // Status callbacks are not part of either measurement: after the run.
            Duration::from_secs(3600),
            Ports {
                sandbox: args.sandbox_port,
                callback_sink: nth(args.sink_port, offset),
            },
        )
        .await?;
        match name {
            "dispatch" => {
                let outcome = dispatch::run(
                    &stack,
                    dispatch::Spec {
                        messages: args.messages,
                        rounds: args.rounds,
                        attempt_timeout: args.dispatch_attempt_timeout,
                    },
                )
                .await?;
                report_dispatch(&outcome)
            }
            _ => {
                let outcome = precision::run(
                    &stack,
                    precision::Spec {
                        messages: args.precision_messages,
                        pollers: args.pollers,
                        dispatch_every: args.dispatch_every,
                        lead: args.lead,
                        timeout: args.timeout,
                    },
                )
                .await?;
                report_precision(&outcome)
            }
        }
    }
    .await;
    emulator.stop().await;
    match &result {
        Ok(()) => {
            let _ = std::fs::remove_file(&log);
        }
        Err(_) => eprintln!("(emulator log: {})", log.display()),
    }
    result
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn report_dispatch(o: &dispatch::Outcome) -> Result<(), String> {
    use dispatch::{Kind, Release};
    let n = o.spec.messages;
    eprintln!(
        "{n} scheduled messages per run, due {}, filed under {} (release_minute of an accept an hour earlier); checkpoint at the minute before",
        o.due,
        o.index_minute.minute_key()
    );
    eprintln!(
        "SDK timeouts of the timed clients: {}",
        match o.spec.attempt_timeout {
            Some(t) => format!(
                "{t:?} per attempt, {:?} per call (the functions': 2 s and 5 s)",
                t * 3
            ),
            None => "the functions' (parley::aws::loader)".into(),
        }
    );

    eprintln!("\nruns, in order (each on its own table and queue of {n} messages):");
    eprintln!(
        "| run | released | wall s | messages/s | DynamoDB requests | SQS requests | emulator cores | bench cores | other cores |"
    );
    eprintln!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &o.runs {
        let row = |label: String, elapsed: Duration, sqs: bool| {
            eprintln!(
                "| {label} | {} | {:.2} | {:.0} | {} | {} | {:.2} | {:.2} | {:.2} |",
                r.released,
                seconds(elapsed),
                r.released as f64 / seconds(elapsed),
                r.requests("dynamodb."),
                if sqs {
                    r.requests("sqs.").to_string()
                } else {
                    "-".into()
                },
                r.cpu.emulator,
                r.cpu.harness,
                r.cpu.other,
            );
        };
        match (r.kind, r.dynamodb_elapsed) {
            (Kind::Ceiling, Some(dynamodb)) => {
                row(format!("{}: DynamoDB only", r.label), dynamodb, false);
                row(format!("{}: DynamoDB + SQS", r.label), r.elapsed, true);
            }
            _ => row(
                format!("**{}** (`Dispatcher::run`)", r.label),
                r.elapsed,
                true,
            ),
        }
    }
    for r in &o.runs {
        eprintln!("\n{}'s requests (attempts):", r.label);
        print_ops(&r.ops);
        if let Some(report) = &r.report {
            eprintln!("  report: {report:?}");
        }
    }

    // Checks: every message released once, queued, filed for its sweep, and one job each.
    let mut problems = Vec::new();
    eprintln!();
    for r in &o.runs {
        let queued = r.statuses.get("queued").copied().unwrap_or(0);
        let jobs = r.queue.iter().sum::<u64>();
        eprintln!(
            "check {}: released {}, statuses {:?}, filed for the sweep {}, jobs on the queue {} (visible {}, in flight {}, delayed {}), SendMessageBatch {}, HTTP errors {}",
            r.label,
            r.released,
            r.statuses,
            r.filed_for_sweep,
            jobs,
            r.queue[0],
            r.queue[1],
            r.queue[2],
            r.count("SQS.SendMessageBatch"),
            r.errors()
        );
        if r.released != n || queued != n || r.filed_for_sweep != n || jobs != n as u64 {
            problems.push(format!(
                "{}: {} released, {queued} queued, {} filed for the sweep, {jobs} jobs; expected {n} of each",
                r.label, r.released, r.filed_for_sweep
            ));
        }
        if let Some(report) = &r.report {
            if report.enqueue_failed > 0 {
                problems.push(format!(
                    "{}: {} enqueues failed",
                    r.label, report.enqueue_failed
                ));
            }
        }
    }

    eprintln!();
    let mut per_message_ok = true;
    for d in o.of(Kind::Dispatcher) {
        let dynamodb = d.requests("dynamodb.") as f64 / d.released.max(1) as f64;
        let sqs = d.requests("sqs.") as f64 / d.released.max(1) as f64;
        per_message_ok &= dynamodb <= MAX_DYNAMODB_PER_MESSAGE;
        eprintln!(
            "{}: requests per released message: DynamoDB {dynamodb:.4}, SQS {sqs:.4}",
            d.label
        );
    }
    eprintln!(
        "target DynamoDB requests per released message ≤ {MAX_DYNAMODB_PER_MESSAGE}: {}",
        pass(per_message_ok)
    );

    let best_dynamodb = o
        .of(Kind::Ceiling)
        .map(Release::dynamodb_rate)
        .fold(0.0_f64, f64::max);
    let best_full = o
        .of(Kind::Ceiling)
        .map(Release::rate)
        .fold(0.0_f64, f64::max);
    eprintln!(
        "ceiling, best run: {best_dynamodb:.0} messages/s (DynamoDB only), {best_full:.0} messages/s (DynamoDB + SQS)"
    );
    let mut strict_ok = true;
    for (i, d) in o.runs.iter().enumerate() {
        if d.kind != Kind::Dispatcher {
            continue;
        }
        // The ceiling runs just before and just after it.
        let around: Vec<&Release> = [i.checked_sub(1), Some(i + 1)]
            .into_iter()
            .flatten()
            .filter_map(|j| o.runs.get(j))
            .filter(|r| r.kind == Kind::Ceiling)
            .collect();
        let mean = |f: fn(&Release) -> f64| {
            around.iter().map(|r| f(r)).sum::<f64>() / around.len().max(1) as f64
        };
        let rate = d.rate();
        strict_ok &= rate >= MIN_SHARE_OF_CEILING * best_dynamodb;
        eprintln!(
            "{}: {rate:.0} messages/s = {:.1} % of the best DynamoDB-only ceiling, {:.1} % of the best DynamoDB + SQS ceiling; against the ceiling runs around it: {:.1} % (DynamoDB only), {:.1} % (DynamoDB + SQS)",
            d.label,
            100.0 * rate / best_dynamodb,
            100.0 * rate / best_full,
            100.0 * rate / mean(Release::dynamodb_rate),
            100.0 * rate / mean(Release::rate),
        );
    }
    eprintln!(
        "target ≥ {:.0} % of the emulator's ceiling (every dispatcher run against the best DynamoDB-only ceiling run): {}",
        MIN_SHARE_OF_CEILING * 100.0,
        pass(strict_ok)
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn spread_row(label: &str, s: Option<Spread>) {
    match s {
        Some(s) => eprintln!(
            "| {label} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            s.n, s.min, s.mean, s.p50, s.p90, s.p99, s.max
        ),
        None => eprintln!("| {label} | 0 | | | | | | |"),
    }
}

fn report_precision(o: &precision::Outcome) -> Result<(), String> {
    let n = o.spec.messages;
    let due_s = o.due.unix_millis() as f64 / 1e3;
    eprintln!(
        "{n} scheduled messages due {}, filed under {} (release_minute at seeding), written in {:.1} s, {:.1} s before they were due",
        o.due,
        o.index_minute.minute_key(),
        seconds(o.seeding),
        due_s - o.seeded_at
    );
    eprintln!(
        "dispatcher every {:?} on the system clock ({} invocations); {} poller(s) × batch 10, {} worker invocations",
        o.spec.dispatch_every,
        o.invocations.len(),
        o.spec.pollers,
        o.worker_invocations
    );
    for i in o.releases() {
        if let Ok(r) = &i.report {
            eprintln!(
                "release run: started {:+.3} s, ended {:+.3} s from their due time ({:.3} s); released {}, seen {}, enqueue failed {}",
                i.started - due_s,
                i.ended - due_s,
                i.ended - i.started,
                r.released,
                r.seen,
                r.enqueue_failed
            );
        }
    }
    let failed = o.invocations.iter().filter(|i| i.report.is_err()).count();
    if failed > 0 {
        eprintln!("dispatcher invocations that failed: {failed}");
        for i in o.invocations.iter().filter(|i| i.report.is_err()).take(3) {
            eprintln!(
                "  started {:+.3} s, ended {:+.3} s from their due time: {:?}",
                i.started - due_s,
                i.ended - due_s,
                i.report
            );
        }
    }
    eprintln!(
        "complete: {} ({} jobs handled); stored statuses {:?}; sandbox create calls {} ({} created)",
        o.complete, o.handled, o.statuses, o.calls, o.created
    );
    eprintln!(
        "CPU, cores busy on average from 5 s before the release to the end: emulator {:.2}, bench process {:.2}, anything else {:.2}, machine {:.2}",
        o.cpu.emulator, o.cpu.harness, o.cpu.other, o.cpu.machine
    );
    eprintln!("\n| seconds after `send_at` | n | min | mean | p50 | p90 | p99 | max |");
    eprintln!("|---|---:|---:|---:|---:|---:|---:|---:|");
    spread_row(
        "job visible on the queue (its SendMessageBatch + DelaySeconds)",
        Spread::of(&o.visible),
    );
    spread_row("claim by a worker (`claimed_at`)", Spread::of(&o.claimed));
    spread_row(
        "**create call at the Twilio sandbox** (lateness)",
        o.lateness(),
    );
    spread_row(
        "recorded as submitted (`submitted_at`)",
        Spread::of(&o.submitted),
    );
    eprintln!("\ndispatcher's requests over the whole run (attempts):");
    print_ops(&o.dispatcher_ops);
    eprintln!("workers' and pollers' requests (attempts):");
    print_ops(&o.worker_ops);

    let early = o.early();
    let p99 = o.lateness().map_or(f64::INFINITY, |s| s.p99);
    eprintln!(
        "\ntarget p99 lateness ≤ {MAX_P99_LATENESS_S} s: {} (p99 {p99:.3} s); never early: {} ({early} early)",
        pass(p99 <= MAX_P99_LATENESS_S),
        pass(early == 0)
    );
    let submitted = o.statuses.get("submitted").copied().unwrap_or(0);
    if !o.complete || o.created != n || o.calls != n || submitted != n {
        return Err(format!(
            "{submitted} of {n} messages submitted, {} create calls ({} created) within {:?} of their due time",
            o.calls, o.created, o.spec.timeout
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Args, String> {
        Args::parse(s.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn options_override_the_defaults() {
        assert_eq!(parse("").unwrap(), Args::default());
        let a = parse("--only precision --precision-messages 50 --emulator-port 4701").unwrap();
        assert!(a.runs("precision") && !a.runs("dispatch"));
        assert_eq!((a.precision_messages, a.emulator_port), (50, 4701));
        assert!(parse("--only everything").is_err());
        assert!(parse("--lead-s 60").is_err());
        assert!(parse("--rounds 0").is_err());
        assert!(parse("--bogus").is_err());
        assert_eq!((nth(0, 1), nth(4700, 1)), (0, 4701));
    }
}
