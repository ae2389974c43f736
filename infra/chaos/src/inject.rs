//! Carries out the plan during the load and counts what each fault class did.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use parley_local::fault::EmulatorFaults;
use serde_json::{json, Value};

use crate::plan::{FaultClass, Injection, SandboxFault};

/// How far into a send-worker batch each successive crash hits (ms): before, around and
/// after its Twilio call.
const CRASH_AFTER_MS: [u64; 3] = [10, 30, 60];
/// The records of a crashed batch are visible again after this long (the template's visibility
/// timeout is minutes; see infra/local/src/crash.rs).
const CRASH_REDELIVER_AFTER_S: i32 = 5;
/// Longer than the worker's Twilio timeout (`TWILIO_TIMEOUT_MS`, 2 s locally).
const ACCEPT_THEN_TIMEOUT_MS: u64 = 4_000;

/// What one class did in a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Injected {
    /// Windows opened, faults armed or crashes armed.
    pub times: u32,
    /// Seconds of windows (emulator classes).
    pub seconds: f64,
    /// Requests faulted, create calls failed, batches crashed or messages concerned.
    pub hits: u64,
}

pub struct Injector {
    pub http: reqwest::Client,
    pub emulator: EmulatorFaults,
    pub sandbox: String,
    pub gateway: String,
}

impl Injector {
    /// Runs `plan` from `started` on, then gives every emulator window that met no request a
    /// second chance at `retry_at` (a service with few requests, EventBridge above all, can
    /// go quiet for a whole window on a busy machine). Errors are collected, not fatal (the
    /// report shows a class that was still not injected).
    pub async fn run(
        &self,
        plan: Vec<Injection>,
        started: Instant,
        retry_at: Duration,
    ) -> Vec<String> {
        let mut errors = self.run_plan(plan.clone(), started).await;
        tokio::time::sleep(retry_at.saturating_sub(started.elapsed())).await;
        let windows = match self.emulator.list().await {
            Ok(windows) => windows,
            Err(e) => {
                errors.push(format!("listing the fault windows: {e}"));
                return errors;
            }
        };
        for injection in plan {
            let Injection::Emulator { spec, .. } = &injection else {
                continue;
            };
            let same = |w: &&parley_local::fault::FaultWindow| {
                w.service == spec.service && w.kind == spec.kind
            };
            let missed = windows.iter().filter(same).all(|w| w.hits == 0);
            // Never two windows of one service at once (see `plan::schedule`).
            let busy = windows
                .iter()
                .any(|w| w.service == spec.service && w.remaining_s > 0.0);
            if missed && !busy {
                if let Err(e) = self.emulator.open(spec).await {
                    errors.push(format!("{injection:?} (second chance): {e}"));
                }
            }
        }
        errors
    }

    async fn run_plan(&self, plan: Vec<Injection>, started: Instant) -> Vec<String> {
        let mut plan = plan;
        plan.sort_by_key(Injection::at);
        let mut errors = Vec::new();
        let mut crashes = 0usize;
        for injection in plan {
            let wait = injection.at().saturating_sub(started.elapsed());
            tokio::time::sleep(wait).await;
            let result = match &injection {
                Injection::Emulator { spec, .. } => self.emulator.open(spec).await.map(|_| ()),
                Injection::Sandbox { fault, count, .. } => self.sandbox_fault(*fault, *count).await,
                Injection::Crash { .. } => {
                    let after = CRASH_AFTER_MS[crashes % CRASH_AFTER_MS.len()];
                    crashes += 1;
                    self.crash(after).await
                }
            };
            if let Err(e) = result {
                errors.push(format!("{injection:?}: {e}"));
            }
        }
        errors
    }

    async fn sandbox_fault(&self, fault: SandboxFault, count: u32) -> Result<(), String> {
        let mut body = json!({"kind": fault.kind(), "count": count});
        if fault == SandboxFault::AcceptThenTimeout {
            body["delay_ms"] = json!(ACCEPT_THEN_TIMEOUT_MS);
        }
        self.post(&format!("{}/_sandbox/faults", self.sandbox), &body)
            .await
    }

    async fn crash(&self, after_ms: u64) -> Result<(), String> {
        let body = json!({"function": "SendWorkerFunction", "after_ms": after_ms,
                          "redeliver_after_s": CRASH_REDELIVER_AFTER_S});
        self.post(&format!("{}/_local/crash", self.gateway), &body)
            .await
    }

    async fn post(&self, url: &str, body: &Value) -> Result<(), String> {
        let response = self
            .http
            .post(url)
            .json(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "{} {}",
                response.status(),
                response.text().await.unwrap_or_default()
            ))
        }
    }

    /// The JSON a control API answers `GET url` with.
    async fn get_json(&self, url: &str) -> Result<Value, String> {
        self.http
            .get(url)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())
    }

    /// What was injected, by class, once the run is over: the emulator's windows with the
    /// requests they faulted, the sandbox's create calls that met a fault, the crashes that
    /// fired.
    pub async fn injected(&self) -> Result<BTreeMap<FaultClass, Injected>, String> {
        let mut out: BTreeMap<FaultClass, Injected> = BTreeMap::new();
        for w in self.emulator.list().await? {
            let row = out
                .entry(FaultClass::Emulator(w.service, w.kind))
                .or_default();
            row.times += 1;
            row.seconds += w.seconds;
            row.hits += w.hits;
        }
        let calls = self
            .get_json(&format!("{}/_sandbox/calls", self.sandbox))
            .await?;
        for fault in [
            SandboxFault::ServerErrorStorm,
            SandboxFault::RateLimited,
            SandboxFault::AcceptThenTimeout,
        ] {
            let hits = calls["calls"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["fault"] == fault.kind())
                .count();
            let row = out.entry(FaultClass::Sandbox(fault)).or_default();
            row.hits += hits as u64;
        }
        let crashes = self
            .get_json(&format!("{}/_local/crashes", self.gateway))
            .await?;
        let worker = &crashes["crashes"]["SendWorkerFunction"];
        let row = out.entry(FaultClass::WorkerCrash).or_default();
        row.hits += worker["batches"].as_u64().unwrap_or(0);
        Ok(out)
    }
}

/// The wait before a crash armed late in the run has had a batch to hit.
pub const CRASH_GRACE: Duration = Duration::from_secs(5);
