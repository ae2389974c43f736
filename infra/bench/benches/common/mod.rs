//! What both benchmarks share: summary statistics, the dev secret, and printing.

#![allow(dead_code)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use parley_local::env::LocalEnv;
use serde_json::json;

/// Mean, percentiles and extremes of a set of samples.
pub struct Summary {
    pub n: usize,
    pub mean: Duration,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub min: Duration,
    pub max: Duration,
}

impl Summary {
    pub fn of(samples: &[Duration]) -> Self {
        assert!(!samples.is_empty(), "no samples");
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let total: Duration = sorted.iter().sum();
        // Nearest-rank percentile.
        let rank = |p: f64| {
            let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            sorted[i.clamp(1, sorted.len()) - 1]
        };
        Self {
            n: sorted.len(),
            mean: total / sorted.len() as u32,
            p50: rank(50.0),
            p90: rank(90.0),
            p99: rank(99.0),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        }
    }
}

pub fn micros(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e6)
}

pub fn millis(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

/// An environment variable as a number, or `default`.
pub fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The dev values of `infra/local.env` (each overridable from the environment).
pub fn local_env() -> LocalEnv {
    LocalEnv::load().unwrap_or_else(|e| panic!("{e}"))
}

/// The secret's JSON, in the shape of `parley::secrets::Secrets`, from the local dev values.
pub fn secret_json(env: &LocalEnv) -> String {
    let get = |key: &str| {
        env.require(key)
            .unwrap_or_else(|e| panic!("{e}"))
            .to_owned()
    };
    json!({
        "twilio_account_sid": get("LOCAL_TWILIO_ACCOUNT_SID"),
        "twilio_auth_token": get("LOCAL_TWILIO_AUTH_TOKEN"),
        "twilio_auth_token_previous": get("LOCAL_TWILIO_AUTH_TOKEN_PREVIOUS"),
        "api_keys": [get("LOCAL_API_KEY")],
        "log_hmac_key": get("LOCAL_LOG_HMAC_KEY"),
    })
    .to_string()
}

/// `nproc` and the CPU model, for the record.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    format!("{cores} cores, {model}, {}", std::env::consts::ARCH)
}

/// The 1, 5 and 15 minute load averages: other work on the machine shows in wall times.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU time of the whole process (all threads), which other processes on the machine do not
/// inflate the way they inflate wall time.
pub fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid out-pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Per-call wall times (after `warmup` calls), and the mean process CPU per call over a second
/// loop of `n` calls.
pub fn time<T>(warmup: usize, n: usize, mut f: impl FnMut() -> T) -> (Summary, Duration) {
    for _ in 0..warmup {
        drop(black_box(f()));
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        drop(black_box(f()));
        samples.push(started.elapsed());
    }
    let cpu_started = process_cpu();
    for _ in 0..n {
        drop(black_box(f()));
    }
    let cpu = (process_cpu() - cpu_started) / n as u32;
    (Summary::of(&samples), cpu)
}
