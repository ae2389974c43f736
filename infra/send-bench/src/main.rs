//! `parley-send-bench`: throughput of the outbound send pipeline on this machine.
//!
//! Starts the AWS emulator (`infra/emulator.py`) on a free port and a Twilio sandbox in-process,
//! creates the table and queues from `template.yaml`, writes N queued messages and their jobs
//! (not timed), then runs send workers behind `SqsPoller`s (Lambda's SQS event source: batches
//! of 10, one poller per concurrent execution) and times them until every job is handled.
//!
//! Runs, in order: `unpaced` (rate_per_second 0, 2 pollers), `paced` (a sender rate, 1 poller),
//! and `calibration` (the worker's steps for one batch at a time, to show where time goes).
//! The report goes to stderr; stdout carries what the worker prints (EMF metric lines, and its
//! JSON logs when `RUST_LOG` is set), as in Lambda.
//!
//! Options: `--messages N` (2500), `--pollers P` (2), `--paced-messages N` (400), `--rate R`
//! (20, per worker), `--paced-pollers P` (1), `--calibration N` (200; 0 skips it),
//! `--only unpaced|paced|calibration`, `--callback-delay-ms MS` (3600000: the sandbox's status
//! callbacks come after the run, so they do not compete with it), `--backlog B|all` (30: at
//! most B jobs wait on the queue, the rest are enqueued during the run as jobs are handled; a
//! small backlog keeps the emulator's work down; `all` enqueues every job before the run),
//! `--timeout-s S`.
//!
//! `make bench-send` builds it in release mode and runs it; figures are in docs/benchmarks.md.

use std::process::ExitCode;
use std::time::Duration;

use parley_local::env::LocalEnv;
use parley_send_bench::report::{cpu_model, interrupted, pass, print_ops};
use parley_send_bench::scenario::{self, Outcome, Spec};
use parley_send_bench::stats::{self, deviation_percent, ms, per_minute, rate_between, Summary};
use parley_send_bench::{calibrate, stack};

/// The targets.
const TARGET_PER_MINUTE: f64 = 10_000.0;
const SEED_TARGET_PER_MINUTE: f64 = 1_000.0;
const RATE_TOLERANCE_PERCENT: f64 = 5.0;

#[derive(Debug, Clone, PartialEq)]
struct Args {
    messages: usize,
    pollers: usize,
    paced_messages: usize,
    rate: f64,
    paced_pollers: usize,
    calibration: usize,
    only: Option<String>,
    callback_delay: Duration,
    timeout: Option<Duration>,
    backlog: Option<usize>,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            messages: 2500,
            pollers: 2,
            paced_messages: 400,
            rate: 20.0,
            paced_pollers: 1,
            calibration: 200,
            only: None,
            callback_delay: Duration::from_secs(3600),
            timeout: None,
            backlog: Some(30),
        }
    }
}

impl Args {
    fn parse(mut argv: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut args = Self::default();
        while let Some(flag) = argv.next() {
            let mut value = || argv.next().ok_or_else(|| format!("{flag} needs a value"));
            let number = |v: String| -> Result<usize, String> {
                v.parse().map_err(|_| format!("{flag}: not a count: {v}"))
            };
            match flag.as_str() {
                "--messages" => args.messages = number(value()?)?,
                "--pollers" => args.pollers = number(value()?)?,
                "--paced-messages" => args.paced_messages = number(value()?)?,
                "--paced-pollers" => args.paced_pollers = number(value()?)?,
                "--calibration" => args.calibration = number(value()?)?,
                "--rate" => {
                    let v = value()?;
                    args.rate = v
                        .parse()
                        .ok()
                        .filter(|r: &f64| *r > 0.0 && r.is_finite())
                        .ok_or_else(|| format!("--rate: not a positive number: {v}"))?;
                }
                "--callback-delay-ms" => {
                    args.callback_delay = Duration::from_millis(number(value()?)? as u64)
                }
                "--only" => {
                    let v = value()?;
                    if !["unpaced", "paced", "calibration"].contains(&v.as_str()) {
                        return Err(format!("--only: unpaced, paced or calibration, not {v}"));
                    }
                    args.only = Some(v);
                }
                "--timeout-s" => args.timeout = Some(Duration::from_secs(number(value()?)? as u64)),
                "--backlog" => {
                    let v = value()?;
                    args.backlog =
                        match v.as_str() {
                            "all" => None,
                            _ => Some(number(v)?).filter(|b| *b >= 10).map(Some).ok_or_else(
                                || "--backlog: `all` or at least 10 (one batch)".to_owned(),
                            )?,
                        };
                }
                "-h" | "--help" => return Err(usage()),
                other => return Err(format!("unknown option {other}\n{}", usage())),
            }
        }
        if args.messages == 0 || args.paced_messages < 2 {
            return Err("--messages must be at least 1 and --paced-messages at least 2".into());
        }
        if args.pollers == 0 || args.paced_pollers == 0 {
            return Err("--pollers and --paced-pollers must be at least 1".into());
        }
        Ok(args)
    }

    fn runs(&self, name: &str) -> bool {
        self.only.as_deref().is_none_or(|o| o == name)
    }
}

fn usage() -> String {
    "usage: parley-send-bench [--messages N] [--pollers P] [--paced-messages N] [--rate R] \
     [--paced-pollers P] [--calibration N] [--only unpaced|paced|calibration] \
     [--callback-delay-ms MS] [--timeout-s S] [--backlog B|all]"
        .into()
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
    let emulator = match stack::Emulator::start(&stack::python(&env)).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("could not start the emulator: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Ctrl-C or SIGTERM ends the bench, but not before the emulator is stopped.
    let result = tokio::select! {
        r = run(&args, &env, &emulator) => r,
        signal = interrupted() => Err(format!("interrupted by {signal}")),
    };
    let log = emulator.log.clone();
    emulator.stop().await;
    match result {
        Ok(()) => {
            let _ = std::fs::remove_file(&log);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("send bench failed: {e} (emulator log: {})", log.display());
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args, env: &LocalEnv, emulator: &stack::Emulator) -> Result<(), String> {
    let stack = stack::Stack::new(env, emulator, args.callback_delay).await?;
    report_machine(args);
    let mut problems = Vec::new();
    let mut unpaced_table = None;
    if args.runs("unpaced") {
        let outcome = scenario::run(
            &stack,
            Spec {
                label: "unpaced",
                messages: args.messages,
                pollers: args.pollers,
                rate_per_second: 0.0,
                exchange: 200,
                timeout: args.timeout,
                backlog: args.backlog,
            },
        )
        .await?;
        problems.extend(report_unpaced(&outcome));
        unpaced_table = Some((scenario::table_name(&outcome.spec), outcome.spec.messages));
    }
    if args.runs("paced") {
        let outcome = scenario::run(
            &stack,
            Spec {
                label: "paced",
                messages: args.paced_messages,
                pollers: args.paced_pollers,
                rate_per_second: args.rate,
                exchange: 500,
                timeout: args.timeout,
                backlog: args.backlog,
            },
        )
        .await?;
        problems.extend(report_paced(&outcome));
    }
    if args.runs("calibration") && args.calibration > 0 {
        // On an empty table, then on the unpaced run's table, to show whether a request's cost
        // grows with the table.
        let fresh = calibrate::run(&stack, "send-bench-calibration", 0, 800, args.calibration);
        report_calibration(&fresh.await?);
        if let Some((table, existing)) = unpaced_table {
            let after = calibrate::run(&stack, &table, existing, 900, args.calibration);
            report_calibration(&after.await?);
        }
    }
    eprintln!(
        "\nstatus callbacks received by the sink during the whole bench: {}",
        stack
            .sink
            .received
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn report_machine(args: &Args) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    eprintln!("# parley-send-bench");
    eprintln!(
        "machine: {cores} CPUs ({}); worker, pollers and sandbox in this process, moto in its own",
        cpu_model()
    );
    eprintln!("emulator: infra/emulator.py (moto, DynamoDB requests one at a time)");
    eprintln!(
        "sandbox status callbacks delayed {:?} (not part of the send pipeline)",
        args.callback_delay
    );
}

/// Prints the common figures; a problem when the run is incomplete or not every message was
/// submitted exactly once (then no rate is judged).
fn report_common(o: &Outcome) -> Option<String> {
    let n = o.spec.messages;
    let submitted = o.statuses.get("submitted").copied().unwrap_or(0);
    let queueing = match o.spec.backlog {
        Some(b) if b < n => format!(
            "messages written and {b} jobs enqueued in {:.1} s, not timed; the other jobs \
             enqueued during the run, at most {b} waiting",
            o.seeding.as_secs_f64()
        ),
        _ => format!(
            "messages written and all jobs enqueued in {:.1} s, not timed",
            o.seeding.as_secs_f64()
        ),
    };
    eprintln!(
        "messages: {n}, {} poller(s) × batch 10, rate_per_second {} per worker ({queueing})",
        o.spec.pollers, o.spec.rate_per_second
    );
    if o.complete {
        eprintln!(
            "elapsed: {:.2} s from starting the pollers to the last job handled ({} invocations)",
            o.elapsed.as_secs_f64(),
            o.invocations
        );
    } else {
        eprintln!(
            "INCOMPLETE: {} of {n} jobs handled in {:.2} s ({} invocations)",
            o.handled,
            o.elapsed.as_secs_f64(),
            o.invocations
        );
    }
    eprintln!(
        "stored statuses: {:?}; Twilio create calls: {} ({} created)",
        o.statuses, o.twilio_calls, o.twilio_created
    );
    eprintln!(
        "CPU, cores busy on average: emulator {:.2}, bench process {:.2}, anything else {:.2}, machine {:.2}",
        o.cpu.emulator, o.cpu.harness, o.cpu.other, o.cpu.machine
    );
    let per_message = |service: &str| {
        o.ops
            .iter()
            .filter(|s| s.op.to_ascii_lowercase().starts_with(service))
            .map(|s| s.latency.n)
            .sum::<usize>() as f64
            / n as f64
    };
    eprintln!(
        "requests per message: DynamoDB {:.2}, SQS {:.2}",
        per_message("dynamodb."),
        per_message("sqs.")
    );
    print_ops(&o.ops);
    if !o.complete {
        return Some(format!(
            "{}: only {} of {n} jobs handled within {:.0} s",
            o.spec.label,
            o.handled,
            o.elapsed.as_secs_f64()
        ));
    }
    if submitted != n || o.twilio_created != n || o.twilio_calls != n {
        return Some(format!(
            "{}: {submitted} of {n} messages submitted, {} Twilio create calls ({} created); \
             expected {n} of each",
            o.spec.label, o.twilio_calls, o.twilio_created
        ));
    }
    None
}

fn report_unpaced(o: &Outcome) -> Option<String> {
    eprintln!("\n## unpaced (no sender rate)");
    if let Some(problem) = report_common(o) {
        eprintln!("{problem}");
        return Some(problem);
    }
    let rate = per_minute(o.spec.messages, o.elapsed);
    eprintln!(
        "throughput: {rate:.0} messages/minute ({:.1}/s)",
        rate / 60.0
    );
    if let Some((span, steady)) = rate_between(&o.submitted_at) {
        eprintln!(
            "  first → last submitted_at: {span:.2} s, {:.0} messages/minute",
            steady * 60.0
        );
    }
    eprintln!(
        "target ≥ {TARGET_PER_MINUTE:.0}/min: {}; seed target ≥ {SEED_TARGET_PER_MINUTE:.0}/min: {}",
        pass(rate >= TARGET_PER_MINUTE),
        pass(rate >= SEED_TARGET_PER_MINUTE)
    );
    None
}

fn report_paced(o: &Outcome) -> Option<String> {
    eprintln!("\n## paced (sender rate)");
    if let Some(problem) = report_common(o) {
        eprintln!("{problem}");
        return Some(problem);
    }
    let configured = o.spec.rate_per_second * o.spec.pollers as f64;
    // Measured where the sender's throughput applies: create calls arriving at Twilio.
    let Some((span, measured)) = rate_between(&o.twilio_received_at) else {
        return Some("paced: fewer than two create calls to measure a rate".into());
    };
    let deviation = deviation_percent(measured, configured);
    eprintln!(
        "configured: {:.2}/s per worker × {} = {configured:.2}/s",
        o.spec.rate_per_second, o.spec.pollers
    );
    eprintln!(
        "measured: {measured:.2}/s = (N − 1) / ({span:.3} s from the first to the last create call at the sandbox); deviation {deviation:+.2} %"
    );
    let whole = o.spec.messages as f64 / o.elapsed.as_secs_f64();
    eprintln!(
        "  whole run N / elapsed: {whole:.2}/s ({:+.2} %), includes the first batch's receive and claims",
        deviation_percent(whole, configured)
    );
    let gaps = stats::gaps(&o.twilio_received_at);
    let g = Summary::of(&gaps);
    eprintln!(
        "  intervals between consecutive create calls: mean {} ms, p50 {} ms, p90 {} ms, p99 {} ms, max {} ms (slot {:.2} ms)",
        ms(g.mean),
        ms(g.p50),
        ms(g.p90),
        ms(g.p99),
        ms(g.max),
        1000.0 / configured
    );
    let slot = Duration::from_secs_f64(1.0 / configured);
    let late: Vec<Duration> = gaps
        .iter()
        .filter(|g| **g > slot.mul_f64(1.5))
        .map(|g| *g - slot)
        .collect();
    eprintln!(
        "  {} intervals over 1.5 slots; time lost beyond their slot: {:.3} s of the {span:.3} s span",
        late.len(),
        late.iter().sum::<Duration>().as_secs_f64()
    );
    eprintln!(
        "target within ±{RATE_TOLERANCE_PERCENT} % of the configured rate: {}",
        pass(deviation.abs() <= RATE_TOLERANCE_PERCENT)
    );
    None
}

fn report_calibration(c: &calibrate::Calibration) {
    eprintln!(
        "\n## calibration: the worker's steps, one batch of {} at a time ({} messages, table {} with {} messages before)",
        calibrate::BATCH, c.messages, c.table, c.existing
    );
    eprintln!(
        "  {:<48} {:>9} {:>9} {:>9}",
        "step", "mean ms", "p50 ms", "p99 ms"
    );
    for (step, s) in &c.steps {
        eprintln!(
            "  {step:<48} {:>9} {:>9} {:>9}",
            ms(s.mean),
            ms(s.p50),
            ms(s.p99)
        );
    }
    eprintln!(
        "  {:<48} {:>9} {:>9} {:>9}",
        "DynamoDB steps together",
        ms(c.dynamodb.mean),
        ms(c.dynamodb.p50),
        ms(c.dynamodb.p99)
    );
    eprintln!(
        "  {:<48} {:>9} {:>9} {:>9}",
        "whole batch",
        ms(c.total.mean),
        ms(c.total.p50),
        ms(c.total.p99)
    );
    print_ops(&c.ops);
    let ceiling = 60.0 * calibrate::BATCH as f64 / c.dynamodb.mean.as_secs_f64();
    eprintln!(
        "the emulator runs DynamoDB requests one at a time: at {} ms of DynamoDB per batch, at most ≈ {ceiling:.0} messages/minute however many workers",
        ms(c.dynamodb.mean)
    );
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
        let a = parse("--messages 3000 --rate 12.5 --only paced --callback-delay-ms 50").unwrap();
        assert_eq!(a.messages, 3000);
        assert_eq!(a.rate, 12.5);
        assert!(a.runs("paced") && !a.runs("unpaced"));
        assert_eq!(a.callback_delay, Duration::from_millis(50));
        assert!(parse("--rate 0").is_err());
        assert!(parse("--only everything").is_err());
        assert!(parse("--pollers").is_err());
        assert!(parse("--bogus 1").is_err());
        assert_eq!(Args::default().backlog, Some(30));
        assert_eq!(parse("--backlog all").unwrap().backlog, None);
        assert_eq!(parse("--backlog 50").unwrap().backlog, Some(50));
        assert!(parse("--backlog 5").is_err());
    }
}
