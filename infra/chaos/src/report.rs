//! The run's report: the load, every fault class with what it did, and the audit.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::audit::Audit;
use crate::inject::Injected;
use crate::plan::FaultClass;

/// The load as it ran.
#[derive(Debug, Clone, Default)]
pub struct LoadFigures {
    pub duration: Duration,
    pub rate: f64,
    pub sends_attempted: usize,
    pub sends_refused: usize,
    /// API answers other than 202 before a send was accepted (then retried).
    pub send_refusals: u32,
    pub texts: usize,
    pub receive_errors: usize,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub load: LoadFigures,
    pub injected: BTreeMap<FaultClass, Injected>,
    /// Classes of the plan that did nothing (a window no request met, a crash that never hit).
    pub not_injected: Vec<FaultClass>,
    pub injection_errors: Vec<String>,
    pub backfill_runs: u32,
    /// Texts the backfill recorded over its runs (their webhook never got through).
    pub backfill_recorded: u64,
    /// The backfill's last report line.
    pub backfill_last: String,
    /// Stream batches (and records) the processor had given up on, replayed from its
    /// failure queue by `parley-local replay-failures`.
    pub processor_replays: (u64, u64),
    /// From the end of the load to the final audit.
    pub settled_in: Duration,
    pub audit: Audit,
}

impl Report {
    /// Every class injected, nothing lost, duplicated, stuck or regressed.
    pub fn passed(&self) -> bool {
        self.audit.clean() && self.not_injected.is_empty() && self.injection_errors.is_empty()
    }
}

fn list(f: &mut fmt::Formatter<'_>, title: &str, items: &[String]) -> fmt::Result {
    writeln!(f, "  {title}: {}", items.len())?;
    for item in items.iter().take(20) {
        writeln!(f, "    - {item}")?;
    }
    if items.len() > 20 {
        writeln!(f, "    … and {} more", items.len() - 20)?;
    }
    Ok(())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.load;
        let a = &self.audit;
        writeln!(f, "== chaos report ==")?;
        writeln!(
            f,
            "load: {:.0} s at {:.1} operations/s: {} sends ({} accepted, {} refused for good, {} refusals retried), {} texts received by Twilio ({} receive errors)",
            l.duration.as_secs_f64(),
            l.rate,
            l.sends_attempted,
            a.sends_accepted,
            l.sends_refused,
            l.send_refusals,
            l.texts,
            l.receive_errors
        )?;
        writeln!(f, "faults injected (class: times, seconds, hits):")?;
        for (class, i) in &self.injected {
            writeln!(f, "  {class}: {}, {:.1} s, {}", i.times, i.seconds, i.hits)?;
        }
        list(
            f,
            "classes not injected",
            &self
                .not_injected
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
        )?;
        list(f, "injection errors", &self.injection_errors)?;
        writeln!(
            f,
            "settled in {:.0} s; inbound backfill: {} runs, {} texts recorded (last: {})",
            self.settled_in.as_secs_f64(),
            self.backfill_runs,
            self.backfill_recorded,
            self.backfill_last
        )?;
        writeln!(
            f,
            "processor: {} stream batches ({} records) given up during faults, replayed from its failure queue",
            self.processor_replays.0, self.processor_replays.1
        )?;
        writeln!(
            f,
            "sends: {} accepted, {} final ({} delivered, {} failed before Twilio)",
            a.sends_accepted, a.sends_final, a.sends_delivered, a.sends_failed_unsent
        )?;
        writeln!(
            f,
            "texts: {} received by Twilio, {} acknowledged by the webhook, {} stored",
            a.texts_received, a.texts_webhook_ok, a.texts_stored
        )?;
        writeln!(f, "audit:")?;
        list(f, "lost", &a.lost)?;
        list(f, "duplicated", &a.duplicated)?;
        list(f, "stuck", &a.stuck)?;
        list(f, "regressed", &a.regressed)?;
        writeln!(f, "result: {}", if self.passed() { "PASS" } else { "FAIL" })
    }
}
