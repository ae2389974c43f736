//! The CPU the pending-message engine adds to an accepted send (`POST /sms/send`): the
//! scheduling fields' parsing and validation, the choice of zones, the resolution of a local
//! `send_at`, the quiet-hours decision and the due-index minute — the same calls, in the same
//! order, as `SendRequest::from_json` → `validate` → `SendService::send` make before any I/O.
//!
//! Two requests, identical but for the scheduling fields:
//!
//! - **plain**: `to` and `body`; the engine still chooses the number's zones and decides
//!   (quiet hours apply to every send);
//! - **scheduled**: the same plus `send_at` as a local date-time and `time_zone`.
//!
//! Each call is timed on its own with `Instant` (p50/p99/max), after a warm-up; the mean is
//! also taken from the process CPU clock (`CLOCK_PROCESS_CPUTIME_ID`) over a second, untimed
//! loop of the same calls, so preemption by other processes does not inflate it.
//!
//! Environment: `BENCH_ITERATIONS` (default 100000), `BENCH_WARMUP` (default 10000).

mod common;

use std::time::{Duration, Instant};

use common::{env_number, micros, time, Summary};
use parley::pending::{Decision, Pending, Policy};
use parley::schedule::{self, Zones};
use parley::send::{NewSend, SendRequest};
use parley::time::Timestamp;

const BODY: &str = "Your appointment with Dr. Rivera is tomorrow at 10:30. Reply C to confirm.";
const PLAIN: &str = r#"{"to": "+14155552671", "body": "Your appointment with Dr. Rivera is tomorrow at 10:30. Reply C to confirm."}"#;
const SCHEDULED: &str = r#"{"to": "+14155552671", "body": "Your appointment with Dr. Rivera is tomorrow at 10:30. Reply C to confirm.", "send_at": "2026-12-02T09:00", "time_zone": "America/Los_Angeles"}"#;
/// 10:00 in Los Angeles: inside the default window, so a plain send is queued at once.
const NOW: &str = "2026-12-01T18:00:00Z";
/// 23:30 in Los Angeles: a plain send is deferred to the morning (with its spread).
const NIGHT: &str = "2026-12-02T07:30:00Z";
const MESSAGE_ID: &str = "01JDQ3ZK8V4N6P2R9S7T5W3X1Y";

fn validate(raw: &str, now: Timestamp) -> NewSend {
    SendRequest::from_json(raw.as_bytes())
        .expect("a JSON object")
        .validate(now)
        .expect("a valid request")
}

/// The engine's part of `SendService::send` for a validated request, as it runs there: the
/// zones, the requested instant, the decision, the index minute and the zone name stored.
fn engine(policy: &Policy, new: &NewSend, now: Timestamp) -> (Decision, Timestamp, String) {
    let zones = schedule::choose(
        new.time_zone.as_ref(),
        None,
        new.to.e164.as_str(),
        &policy.default_zone,
    );
    let requested = resolve(&zones, new, now);
    let decision = policy.decide(
        now,
        Pending {
            message_id: MESSAGE_ID,
            due: requested,
            not_after: new.not_after,
            urgent: new.urgent,
            zones: &zones.zones,
        },
    );
    let minute = match decision {
        Decision::Queue { due, .. } => policy.sweep_minute(due, now),
        Decision::Wait { due, .. } => policy.release_minute(due, now),
        Decision::Expire => now,
    };
    (decision, minute, zones.name())
}

/// `send::resolve`: a local `send_at` is read in the first zone.
fn resolve(zones: &Zones, new: &NewSend, now: Timestamp) -> Timestamp {
    match &new.send_at {
        Some(at) => zones
            .resolve(at, now.jiff())
            .map(Timestamp::from_jiff)
            .unwrap_or(now),
        None => now,
    }
}

/// A decision's outcome, for the report.
fn kind(decision: Decision) -> String {
    match decision {
        Decision::Queue { delay, .. } => format!("Queue (delay {delay:?})"),
        Decision::Wait { state, due } => format!("Wait ({state} until {due})"),
        Decision::Expire => "Expire".into(),
    }
}

fn header(first: &str) {
    eprintln!("| {first} | CPU mean µs | wall mean µs | p50 µs | p99 µs | max µs | n |");
    eprintln!("|---|---:|---:|---:|---:|---:|---:|");
}

fn row(name: &str, (s, cpu): &(Summary, Duration)) {
    eprintln!(
        "| {name} | {} | {} | {} | {} | {} | {} |",
        micros(*cpu),
        micros(s.mean),
        micros(s.p50),
        micros(s.p99),
        micros(s.max),
        s.n
    );
}

fn main() {
    let n = env_number("BENCH_ITERATIONS", 100_000);
    let warmup = env_number("BENCH_WARMUP", 10_000);
    let now = Timestamp::parse(NOW).expect("a timestamp");
    let night = Timestamp::parse(NIGHT).expect("a timestamp");
    let policy = Policy::default();
    // As the functions do at init, so the first lookup does not parse the zone table.
    schedule::preload();

    let plain = validate(PLAIN, now);
    let scheduled = validate(SCHEDULED, now);
    assert!(plain.send_at.is_none() && scheduled.send_at.is_some());
    assert_eq!(plain.body, BODY);
    let (plain_decision, _, plain_zone) = engine(&policy, &plain, now);
    let (scheduled_decision, scheduled_minute, scheduled_zone) = engine(&policy, &scheduled, now);
    let (night_decision, _, _) = engine(&policy, &plain, night);
    assert!(matches!(plain_decision, Decision::Queue { .. }));
    assert!(matches!(scheduled_decision, Decision::Wait { .. }));
    assert!(matches!(night_decision, Decision::Wait { .. }));
    let plain_zones = schedule::choose(None, None, "+14155552671", &policy.default_zone);
    let scheduled_zones = schedule::choose(
        scheduled.time_zone.as_ref(),
        None,
        "+14155552671",
        &policy.default_zone,
    );
    // The widest zone set a single number gets: an area code libphonenumber does not place,
    // so quiet hours must hold from Guam to Newfoundland.
    let wide_number = "+15005550006";
    let wide = schedule::choose(None, None, wide_number, &policy.default_zone);

    eprintln!("# Pending-message engine: CPU added to an accepted send");
    eprintln!();
    eprintln!("- machine: {}", common::machine());
    eprintln!("- load average at the start: {}", common::load_average());
    eprintln!("- iterations: {n} timed per row (and {n} more for the CPU mean), after {warmup} warm-up calls");
    eprintln!("- policy: `Policy::default()` (08:00–21:00 local, 20 min spread); now = {now} (10:00 in Los Angeles)");
    eprintln!("- plain request ({} bytes): {PLAIN}", PLAIN.len());
    eprintln!(
        "- scheduled request ({} bytes): {SCHEDULED}",
        SCHEDULED.len()
    );
    eprintln!(
        "- plain: zones {plain_zone} ({:?}), {plain_decision:?}",
        plain_zones.source
    );
    eprintln!(
        "- scheduled: zones {scheduled_zone} ({:?}), {scheduled_decision:?}, filed under {}",
        scheduled_zones.source,
        scheduled_minute.minute_key()
    );
    eprintln!(
        "- widest number {wide_number}: {} zones ({:?})",
        wide.zones.len(),
        wide.source
    );
    eprintln!();

    let timer = time(warmup, n, || Instant::now().elapsed());
    let plain_validate = time(warmup, n, || validate(PLAIN, now));
    let scheduled_validate = time(warmup, n, || validate(SCHEDULED, now));
    let choose_number = time(warmup, n, || {
        schedule::choose(None, None, "+14155552671", &policy.default_zone)
    });
    let choose_request = time(warmup, n, || {
        schedule::choose(
            scheduled.time_zone.as_ref(),
            None,
            "+14155552671",
            &policy.default_zone,
        )
    });
    let resolve_local = time(warmup, n, || resolve(&scheduled_zones, &scheduled, now));
    let decide = |zones: &Zones, due: Timestamp, at: Timestamp| {
        policy.decide(
            at,
            Pending {
                message_id: MESSAGE_ID,
                due,
                not_after: None,
                urgent: false,
                zones: &zones.zones,
            },
        )
    };
    let scheduled_due = resolve(&scheduled_zones, &scheduled, now);
    let decide_plain = time(warmup, n, || decide(&plain_zones, now, now));
    let decide_scheduled = time(warmup, n, || decide(&scheduled_zones, scheduled_due, now));
    let decide_night = time(warmup, n, || decide(&plain_zones, night, night));
    let decide_wide = time(warmup, n, || decide(&wide, now, now));
    let decide_wide_night = time(warmup, n, || decide(&wide, night, night));
    let engine_plain = time(warmup, n, || engine(&policy, &plain, now));
    let engine_scheduled = time(warmup, n, || engine(&policy, &scheduled, now));
    let whole_plain = time(warmup, n, || {
        let new = validate(PLAIN, now);
        engine(&policy, &new, now)
    });
    let whole_scheduled = time(warmup, n, || {
        let new = validate(SCHEDULED, now);
        engine(&policy, &new, now)
    });

    header("piece (one call each)");
    row("(timer overhead: `Instant::now` + `elapsed`)", &timer);
    row("`from_json` + `validate`, plain", &plain_validate);
    row(
        "`from_json` + `validate`, scheduled (`send_at` local, `time_zone`)",
        &scheduled_validate,
    );
    row(
        "`schedule::choose`, the number's zones (plain)",
        &choose_number,
    );
    row(
        "`schedule::choose`, the request's `time_zone` (scheduled)",
        &choose_request,
    );
    row("resolve the local `send_at` (scheduled)", &resolve_local);
    row(
        "`Policy::decide`, plain: now, inside the window → Queue",
        &decide_plain,
    );
    row(
        "`Policy::decide`, scheduled: tomorrow 09:00 → Wait",
        &decide_scheduled,
    );
    row(
        "`Policy::decide`, plain at 23:30 local → Wait (deferred, + spread)",
        &decide_night,
    );
    row(
        &format!(
            "`Policy::decide`, {} zones ({wide_number}) at {now} → {}",
            wide.zones.len(),
            kind(decide(&wide, now, now))
        ),
        &decide_wide,
    );
    row(
        &format!(
            "`Policy::decide`, {} zones ({wide_number}) at {night} → {}",
            wide.zones.len(),
            kind(decide(&wide, night, night))
        ),
        &decide_wide_night,
    );
    eprintln!();
    header("what an accepted send runs");
    row(
        "engine, plain: choose + decide + sweep minute + zone name",
        &engine_plain,
    );
    row(
        "engine, scheduled: choose + resolve + decide + release minute + zone name",
        &engine_scheduled,
    );
    row("validate + engine, plain", &whole_plain);
    row("validate + engine, scheduled", &whole_scheduled);

    let diff = |a: Duration, b: Duration| a.as_secs_f64() * 1e6 - b.as_secs_f64() * 1e6;
    let fields_cpu = diff(scheduled_validate.1, plain_validate.1);
    let fields_p50 = diff(scheduled_validate.0.p50, plain_validate.0.p50);
    let added_plain_cpu = engine_plain.1.as_secs_f64() * 1e6;
    let added_scheduled_cpu = fields_cpu + engine_scheduled.1.as_secs_f64() * 1e6;
    let added_scheduled_p50 = fields_p50 + engine_scheduled.0.p50.as_secs_f64() * 1e6;
    eprintln!();
    eprintln!("| added to an accepted send | CPU mean µs | p50 µs |");
    eprintln!("|---|---:|---:|");
    eprintln!(
        "| scheduling fields in `from_json` + `validate` (scheduled − plain) | {fields_cpu:.2} | {fields_p50:.2} |"
    );
    eprintln!(
        "| plain send: the engine (quiet-hours check) | {added_plain_cpu:.2} | {} |",
        micros(engine_plain.0.p50)
    );
    eprintln!(
        "| scheduled send: fields + engine | {added_scheduled_cpu:.2} | {added_scheduled_p50:.2} |"
    );
    eprintln!(
        "| validate + engine, scheduled − plain (what the scheduling fields add) | {:.2} | {:.2} |",
        diff(whole_scheduled.1, whole_plain.1),
        diff(whole_scheduled.0.p50, whole_plain.0.p50)
    );
    eprintln!();
    let worst = added_plain_cpu.max(added_scheduled_cpu);
    eprintln!(
        "target ≤ 20 µs CPU added to an accepted send: {} (CPU mean: plain {added_plain_cpu:.2} µs, scheduled {added_scheduled_cpu:.2} µs)",
        if worst <= 20.0 { "PASS" } else { "FAIL" }
    );
    eprintln!("load average at the end: {}", common::load_average());
}
