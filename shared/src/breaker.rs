//! A circuit breaker in front of a dependency (Twilio for the send worker, the Collections
//! Monitor for the inbound processor): when a large share of the recent calls failed the way
//! an outage fails (5xx, timeouts, no connection), it stops calling for an interval, then lets
//! exactly one call through as a probe; the probe's answer closes it or opens it again for
//! twice as long (up to a cap).
//!
//! ```text
//!            share of failures ≥ threshold           interval over: next admit is the probe
//!  Closed ─────────────────────────────────▶ Open ─────────────────────────────────▶ HalfOpen
//!    ▲                                        ▲                                          │
//!    │                                        └──── probe failed: interval doubled ──────┤
//!    └──────────────────────────── probe succeeded ──────────────────────────────────────┘
//! ```
//!
//! The breaker is pure state plus a [`Clock`]: it never sleeps and never calls anything, so
//! its tests drive it with a manual clock. Its state lives in the warm process (one per
//! Lambda instance); `docs/architecture.md` ("Circuit breakers") says why that is enough.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing::{info, warn};

use crate::config::{optional, ConfigError};
use crate::time::{Clock, Timestamp};

/// When a breaker opens and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// How many of the latest calls are judged.
    pub window: usize,
    /// Calls older than this are forgotten: at low traffic, failures spread over hours are
    /// not an outage.
    pub window_age: Duration,
    /// Fewer calls than this in the window never open the breaker: two failures out of two
    /// are not a trend.
    pub min_calls: usize,
    /// The breaker opens when at least this share (0–1] of the window failed.
    pub failure_share: f64,
    /// The first open interval; each failed probe doubles it.
    pub open_base: Duration,
    /// The longest open interval.
    pub open_cap: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            window: 20,
            window_age: Duration::from_secs(60),
            min_calls: 10,
            failure_share: 0.5,
            open_base: Duration::from_secs(5),
            open_cap: Duration::from_secs(300),
        }
    }
}

/// The environment variables of one breaker's settings (each optional; the defaults apply).
#[derive(Debug, Clone, Copy)]
pub struct BreakerEnv {
    pub window: &'static str,
    pub min_calls: &'static str,
    pub failure_share: &'static str,
    pub open_seconds: &'static str,
    pub max_open_seconds: &'static str,
}

pub const TWILIO_BREAKER_ENV: BreakerEnv = BreakerEnv {
    window: "TWILIO_BREAKER_WINDOW",
    min_calls: "TWILIO_BREAKER_MIN_CALLS",
    failure_share: "TWILIO_BREAKER_FAILURE_SHARE",
    open_seconds: "TWILIO_BREAKER_OPEN_SECONDS",
    max_open_seconds: "TWILIO_BREAKER_MAX_OPEN_SECONDS",
};

pub const MONITOR_BREAKER_ENV: BreakerEnv = BreakerEnv {
    window: "MONITOR_BREAKER_WINDOW",
    min_calls: "MONITOR_BREAKER_MIN_CALLS",
    failure_share: "MONITOR_BREAKER_FAILURE_SHARE",
    open_seconds: "MONITOR_BREAKER_OPEN_SECONDS",
    max_open_seconds: "MONITOR_BREAKER_MAX_OPEN_SECONDS",
};

/// SQS delays a message by at most 15 minutes: a message held while the breaker is open must
/// come back by the probe, so no interval may be longer.
const MAX_INTERVAL: Duration = Duration::from_secs(900);

impl BreakerConfig {
    pub fn from_env(names: BreakerEnv) -> Result<Self, ConfigError> {
        Self::from_vars(names, optional)
    }

    /// The settings from `get` (the environment, or a test's map), defaults for those unset.
    fn from_vars(
        names: BreakerEnv,
        get: impl Fn(&'static str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let number = |name: &'static str, default: f64| -> Result<f64, ConfigError> {
            get(name).map_or(Ok(default), |v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite() && *n >= 0.0)
                    .ok_or(ConfigError::Invalid {
                        name,
                        reason: "not a non-negative number".into(),
                    })
            })
        };
        let seconds = |name: &'static str, default: Duration| -> Result<Duration, ConfigError> {
            let n = number(name, default.as_secs_f64())?;
            let d = Duration::from_secs_f64(n);
            if d.is_zero() || d > MAX_INTERVAL {
                return Err(ConfigError::Invalid {
                    name,
                    reason: "between 0 and 900 seconds".into(),
                });
            }
            Ok(d)
        };
        let share = number(names.failure_share, defaults.failure_share)?;
        if share == 0.0 || share > 1.0 {
            return Err(ConfigError::Invalid {
                name: names.failure_share,
                reason: "a share in (0, 1]".into(),
            });
        }
        let config = Self {
            window: (number(names.window, defaults.window as f64)? as usize).max(1),
            window_age: defaults.window_age,
            min_calls: (number(names.min_calls, defaults.min_calls as f64)? as usize).max(1),
            failure_share: share,
            open_base: seconds(names.open_seconds, defaults.open_base)?,
            open_cap: seconds(names.max_open_seconds, defaults.open_cap)?,
        };
        Ok(Self {
            open_cap: config.open_cap.max(config.open_base),
            ..config
        })
    }
}

/// Where a breaker stands, for metrics, logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    /// The probe is out; every other call waits for its answer.
    HalfOpen,
}

/// What one call's answer says about the dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It answered (a refusal of one request, 4xx, is an answer: the dependency is up).
    Answered,
    /// It failed the way an outage fails: 5xx, throttled, timed out, unreachable.
    Failed,
}

/// A call refused: nothing may be called before `retry_after` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_after: Duration,
}

/// Leave to call. Held for as long as the call (or the batch of calls) it admits runs: a probe
/// dropped without an outcome recorded (the call was never made, or was abandoned) hands the
/// probe back, so the next admission probes at once and the breaker never stays half-open.
#[must_use = "hold the permit until the call is made and its outcome recorded"]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    /// The probe's number, when this is the half-open breaker's probe.
    probe: Option<u64>,
}

impl Permit<'_> {
    /// Whether this is the half-open breaker's single probe.
    pub fn is_probe(&self) -> bool {
        self.probe.is_some()
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Some(probe) = self.probe {
            self.breaker.hand_back_probe(probe);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed,
    Open {
        until: Timestamp,
        interval: Duration,
    },
    HalfOpen {
        interval: Duration,
    },
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// The latest calls while closed, oldest first: when, and whether it failed.
    recent: VecDeque<(Timestamp, bool)>,
    /// Probes handed out so far: a permit hands back only its own probe, never a later one.
    probes: u64,
}

pub struct Breaker {
    /// What it guards (`twilio`, `monitor`), for logs.
    name: &'static str,
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

impl Breaker {
    pub fn new(name: &'static str, config: BreakerConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            name,
            config,
            clock,
            inner: Mutex::new(Inner {
                state: State::Closed,
                recent: VecDeque::new(),
                probes: 0,
            }),
        }
    }

    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn state(&self) -> BreakerState {
        match self.inner().state {
            State::Closed => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// 1 while the breaker is not closed, else 0: the value of its `…CircuitOpen` metric.
    pub fn open_gauge(&self) -> u64 {
        u64::from(self.state() != BreakerState::Closed)
    }

    /// Leave to call now, or how long to wait. Closed: every call. Open: none until the
    /// interval is over; the first call after it is the probe. Half-open: none (the probe is
    /// out; its answer is expected within the call's timeout, so the others are asked to come
    /// back after one base interval).
    pub fn admit(&self) -> Result<Permit<'_>, Refused> {
        let now = self.clock.now();
        let mut inner = self.inner();
        match inner.state {
            State::Closed => Ok(Permit {
                breaker: self,
                probe: None,
            }),
            State::Open { until, interval } if until <= now => {
                inner.state = State::HalfOpen { interval };
                inner.probes += 1;
                info!(
                    breaker = self.name,
                    "circuit half-open: probing with one call"
                );
                Ok(Permit {
                    breaker: self,
                    probe: Some(inner.probes),
                })
            }
            State::Open { until, .. } => Err(Refused {
                retry_after: now.until(until),
            }),
            State::HalfOpen { .. } => Err(Refused {
                retry_after: self.config.open_base,
            }),
        }
    }

    /// How long a call refused now would have to wait (zero when one would be admitted).
    pub fn retry_after(&self) -> Duration {
        let now = self.clock.now();
        match self.inner().state {
            State::Closed => Duration::ZERO,
            State::Open { until, .. } if until <= now => Duration::ZERO,
            State::Open { until, .. } => now.until(until),
            State::HalfOpen { .. } => self.config.open_base,
        }
    }

    /// Records the answer of a call made under a permit. Closed: it joins the window, which
    /// may open the breaker. Half-open: it is the probe's answer (or one as good: any fresh
    /// answer says whether the dependency is back), closing or reopening the breaker. Open:
    /// a late answer of a call admitted before it opened; the state is decided already.
    pub fn record(&self, outcome: Outcome) {
        let now = self.clock.now();
        let mut inner = self.inner();
        match inner.state {
            State::Closed => {
                inner.recent.push_back((now, outcome == Outcome::Failed));
                let oldest = now.minus(self.config.window_age);
                while inner.recent.len() > self.config.window
                    || inner.recent.front().is_some_and(|(at, _)| *at < oldest)
                {
                    inner.recent.pop_front();
                }
                let calls = inner.recent.len();
                let failures = inner.recent.iter().filter(|(_, failed)| *failed).count();
                if calls >= self.config.min_calls
                    && failures as f64 >= self.config.failure_share * calls as f64
                {
                    let interval = self.config.open_base.min(self.config.open_cap);
                    inner.state = State::Open {
                        until: now.plus(interval),
                        interval,
                    };
                    inner.recent.clear();
                    warn!(
                        breaker = self.name,
                        failures,
                        calls,
                        open_ms = interval.as_millis() as u64,
                        "circuit opened: calls stop until the probe"
                    );
                }
            }
            State::HalfOpen { interval } => match outcome {
                Outcome::Answered => {
                    inner.state = State::Closed;
                    inner.recent.clear();
                    info!(breaker = self.name, "circuit closed: the probe succeeded");
                }
                Outcome::Failed => {
                    let interval = interval.saturating_mul(2).min(self.config.open_cap);
                    inner.state = State::Open {
                        until: now.plus(interval),
                        interval,
                    };
                    warn!(
                        breaker = self.name,
                        open_ms = interval.as_millis() as u64,
                        "circuit open again: the probe failed"
                    );
                }
            },
            State::Open { .. } => {}
        }
    }

    /// Probe `probe` dropped: if no answer was recorded since it was handed out, open, with
    /// the next probe due at once.
    fn hand_back_probe(&self, probe: u64) {
        let now = self.clock.now();
        let mut inner = self.inner();
        if inner.probes != probe {
            return;
        }
        if let State::HalfOpen { interval } = inner.state {
            inner.state = State::Open {
                until: now,
                interval,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ManualClock;

    fn config() -> BreakerConfig {
        BreakerConfig {
            window: 10,
            window_age: Duration::from_secs(60),
            min_calls: 4,
            failure_share: 0.5,
            open_base: Duration::from_secs(5),
            open_cap: Duration::from_secs(30),
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_millis(1_800_000_000_000 + seconds * 1000).unwrap()
    }

    fn breaker() -> (Breaker, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(at(0)));
        (Breaker::new("test", config(), clock.clone()), clock)
    }

    /// A call admitted and answered with `outcome`.
    fn call(breaker: &Breaker, outcome: Outcome) {
        let _permit = breaker.admit().expect("admitted");
        breaker.record(outcome);
    }

    fn refused(breaker: &Breaker) -> Duration {
        match breaker.admit() {
            Ok(_) => panic!("admitted while {:?}", breaker.state()),
            Err(r) => r.retry_after,
        }
    }

    #[test]
    fn it_stays_closed_below_the_minimum_of_calls_or_the_share() {
        let (b, _) = breaker();
        for _ in 0..3 {
            call(&b, Outcome::Failed);
        }
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "3 of 3 failed: too few calls"
        );
        let (b, _) = breaker();
        for outcome in [Outcome::Answered, Outcome::Answered, Outcome::Answered] {
            call(&b, outcome);
        }
        for _ in 0..2 {
            call(&b, Outcome::Failed);
        }
        assert_eq!(b.state(), BreakerState::Closed, "2 of 5 failed");
        call(&b, Outcome::Failed);
        assert_eq!(b.state(), BreakerState::Open, "3 of 6 failed: half");
    }

    #[test]
    fn only_the_window_of_latest_calls_counts() {
        let (b, _) = breaker();
        for _ in 0..4 {
            call(&b, Outcome::Answered);
            call(&b, Outcome::Answered);
            call(&b, Outcome::Failed);
        }
        // The last 10 of these 12: F A A F A A F A A F.
        assert_eq!(b.state(), BreakerState::Closed, "4 of the last 10");
        call(&b, Outcome::Failed);
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "A A F A A F A A F F: 4 of 10"
        );
        call(&b, Outcome::Failed);
        // 6 of 14 calls failed in all, under half; but 5 of the last 10.
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn failures_older_than_the_window_age_are_forgotten() {
        let (b, clock) = breaker();
        for _ in 0..3 {
            call(&b, Outcome::Failed);
        }
        clock.set(at(61));
        call(&b, Outcome::Failed);
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "the three from a minute ago are gone"
        );
        for _ in 0..3 {
            call(&b, Outcome::Failed);
        }
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn open_refuses_until_the_interval_is_over_then_admits_exactly_one_probe() {
        let (b, clock) = breaker();
        for _ in 0..4 {
            call(&b, Outcome::Failed);
        }
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.open_gauge(), 1);
        assert_eq!(refused(&b), Duration::from_secs(5));
        clock.set(at(3));
        assert_eq!(refused(&b), Duration::from_secs(2));
        assert_eq!(b.retry_after(), Duration::from_secs(2));
        clock.set(at(5));
        let probe = b.admit().expect("the probe");
        assert!(probe.is_probe());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(
            refused(&b),
            Duration::from_secs(5),
            "one probe at a time: the rest wait one base interval"
        );
        b.record(Outcome::Answered);
        drop(probe);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.open_gauge(), 0);
        assert!(!b.admit().expect("closed").is_probe());
    }

    #[test]
    fn each_failed_probe_doubles_the_interval_up_to_the_cap() {
        let (b, clock) = breaker();
        for _ in 0..4 {
            call(&b, Outcome::Failed);
        }
        let mut now = 0;
        let mut waits = Vec::new();
        for _ in 0..5 {
            let wait = refused(&b);
            waits.push(wait.as_secs());
            now += wait.as_secs() as i64;
            clock.set(at(now));
            let probe = b.admit().expect("the probe");
            assert!(probe.is_probe());
            b.record(Outcome::Failed);
        }
        assert_eq!(waits, [5, 10, 20, 30, 30]);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn a_probe_dropped_unanswered_is_handed_back_for_the_next_call() {
        let (b, clock) = breaker();
        for _ in 0..4 {
            call(&b, Outcome::Failed);
        }
        clock.set(at(5));
        drop(b.admit().expect("the probe"));
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.retry_after(), Duration::ZERO);
        assert_eq!(
            b.state(),
            BreakerState::Open,
            "asking how long to wait takes no probe"
        );
        let probe = b.admit().expect("probed at once");
        assert!(probe.is_probe());
        b.record(Outcome::Failed);
        drop(probe);
        assert_eq!(
            refused(&b),
            Duration::from_secs(10),
            "the handed-back probe did not reset the growth"
        );
    }

    #[test]
    fn an_answered_probe_held_on_to_never_hands_back_a_later_one() {
        let (b, clock) = breaker();
        for _ in 0..4 {
            call(&b, Outcome::Failed);
        }
        clock.set(at(5));
        let first = b.admit().expect("the probe");
        b.record(Outcome::Failed);
        clock.set(at(15));
        let second = b.admit().expect("the next probe");
        drop(first);
        assert_eq!(
            b.state(),
            BreakerState::HalfOpen,
            "the second probe is still out"
        );
        assert!(b.admit().is_err());
        b.record(Outcome::Answered);
        drop(second);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn a_late_answer_while_open_changes_nothing_and_closing_starts_a_fresh_window() {
        let (b, clock) = breaker();
        let early = b.admit().expect("closed");
        for _ in 0..4 {
            call(&b, Outcome::Failed);
        }
        b.record(Outcome::Answered);
        drop(early);
        assert_eq!(b.state(), BreakerState::Open);
        clock.set(at(5));
        let probe = b.admit().expect("the probe");
        b.record(Outcome::Answered);
        drop(probe);
        // The failures before it opened do not count again.
        for _ in 0..3 {
            call(&b, Outcome::Failed);
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn settings_come_from_the_environment_within_bounds() {
        let vars = |pairs: &[(&'static str, &str)]| {
            let pairs: Vec<(&'static str, String)> =
                pairs.iter().map(|(k, v)| (*k, v.to_string())).collect();
            move |name: &'static str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone())
            }
        };
        let env = TWILIO_BREAKER_ENV;
        assert_eq!(
            BreakerConfig::from_vars(env, vars(&[])).unwrap(),
            BreakerConfig::default()
        );
        let config = BreakerConfig::from_vars(
            env,
            vars(&[
                ("TWILIO_BREAKER_MIN_CALLS", "4"),
                ("TWILIO_BREAKER_OPEN_SECONDS", "2"),
                ("TWILIO_BREAKER_MAX_OPEN_SECONDS", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(config.min_calls, 4);
        assert_eq!(config.open_base, Duration::from_secs(2));
        assert_eq!(
            config.open_cap,
            Duration::from_secs(2),
            "the cap is never below the base"
        );
        for (name, value) in [
            ("TWILIO_BREAKER_FAILURE_SHARE", "1.5"),
            ("TWILIO_BREAKER_FAILURE_SHARE", "0"),
            ("TWILIO_BREAKER_WINDOW", "many"),
            // Longer than SQS can delay a held job.
            ("TWILIO_BREAKER_OPEN_SECONDS", "901"),
        ] {
            let refused = BreakerConfig::from_vars(env, vars(&[(name, value)]));
            assert!(
                matches!(refused, Err(ConfigError::Invalid { name: n, .. }) if n == name),
                "{name}={value}: {refused:?}"
            );
        }
    }
}
