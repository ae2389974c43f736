//! What a run injects, and when: every fault class at its offset into the load.

use std::time::Duration;

use parley_local::fault::{FaultKind, FaultSpec, Service};

/// How a recipient's status callbacks misbehave (the sandbox's callback plans).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Callbacks {
    /// `queued, sent, delivered`, each status twice.
    Duplicated,
    /// `delivered, queued, sent`: the final status first.
    Reordered,
    /// `queued, sent, delivered`, each 2.5 s after the one before.
    Delayed,
}

impl Callbacks {
    pub const ALL: [Callbacks; 3] = [Self::Duplicated, Self::Reordered, Self::Delayed];

    /// The sandbox's `POST /_sandbox/callbacks` body for recipient `to`.
    pub fn plan(self, to: &str) -> serde_json::Value {
        match self {
            Self::Duplicated => serde_json::json!({"to": to,
                "sequence": ["queued", "queued", "sent", "sent", "delivered", "delivered"]}),
            Self::Reordered => serde_json::json!({"to": to,
                "sequence": ["delivered", "queued", "sent"]}),
            Self::Delayed => serde_json::json!({"to": to,
                "sequence": ["queued", "sent", "delivered"], "delay_ms": 2_500}),
        }
    }
}

/// A fault of the Twilio sandbox: the next `count` create calls fail this way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SandboxFault {
    /// 500/20500.
    ServerErrorStorm,
    /// 429/20429.
    RateLimited,
    /// Created, then no answer before the worker's timeout.
    AcceptThenTimeout,
}

impl SandboxFault {
    pub fn kind(self) -> &'static str {
        match self {
            Self::ServerErrorStorm => "server_error",
            Self::RateLimited => "rate_limited",
            Self::AcceptThenTimeout => "accept_then_timeout",
        }
    }
}

/// One fault class of the report.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultClass {
    /// A window of the AWS emulator.
    Emulator(Service, FaultKind),
    Sandbox(SandboxFault),
    Callbacks(Callbacks),
    /// The send worker abandoned mid-batch.
    WorkerCrash,
}

impl std::fmt::Display for FaultClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Emulator(service, kind) => write!(f, "{} {}", service.as_str(), kind.as_str()),
            Self::Sandbox(fault) => write!(f, "twilio {}", fault.kind()),
            Self::Callbacks(c) => write!(f, "callbacks {}", format!("{c:?}").to_lowercase()),
            Self::WorkerCrash => f.write_str("send worker crash mid-batch"),
        }
    }
}

/// One injection: what, when (offset into the load) and how much.
#[derive(Debug, Clone)]
pub enum Injection {
    Emulator {
        at: Duration,
        spec: FaultSpec,
    },
    Sandbox {
        at: Duration,
        fault: SandboxFault,
        count: u32,
    },
    Crash {
        at: Duration,
    },
}

impl Injection {
    pub fn at(&self) -> Duration {
        match self {
            Self::Emulator { at, .. } | Self::Sandbox { at, .. } | Self::Crash { at } => *at,
        }
    }
}

/// Every fault class over a load of `duration`, in windows scaled to it: the store down for
/// `store_down` (a quarter of the load at most), each other window a tenth of the load
/// (at least 4 s), placed one after the other with some overlap so faults also meet — but
/// never two windows of one service at once: the emulator applies the first window that
/// matches, so a window of `unavailable` would hide a `throttle` one behind it.
pub fn schedule(duration: Duration, store_down: Duration) -> Vec<Injection> {
    let d = duration.as_secs_f64();
    let at = |share: f64| Duration::from_secs_f64(d * share);
    let window = Duration::from_secs_f64((d / 10.0).max(4.0));
    let store_down = store_down.min(Duration::from_secs_f64(d / 4.0).max(window));
    let emulator = |share: f64, service, kind, seconds: Duration, tune: fn(&mut FaultSpec)| {
        let mut spec = FaultSpec::new(service, kind, seconds);
        tune(&mut spec);
        Injection::Emulator {
            at: at(share),
            spec,
        }
    };
    let slow = |s: &mut FaultSpec| {
        s.delay_ms = Some(1_500);
        s.probability = Some(0.5);
    };
    let half = |s: &mut FaultSpec| s.probability = Some(0.5);
    let all = |_: &mut FaultSpec| {};
    vec![
        emulator(0.00, Service::Dynamodb, FaultKind::Slow, window, slow),
        emulator(0.05, Service::Sqs, FaultKind::Throttle, window, half),
        emulator(
            0.10,
            Service::Secretsmanager,
            FaultKind::Unavailable,
            window,
            all,
        ),
        // Before the store's outage, while the processor publishes steadily (afterwards it
        // works through a backlog in bursts), and every request: events are few.
        emulator(0.12, Service::Events, FaultKind::Throttle, window, all),
        emulator(0.20, Service::Dynamodb, FaultKind::Throttle, window, half),
        emulator(0.25, Service::Sqs, FaultKind::Slow, window, slow),
        emulator(0.35, Service::Events, FaultKind::Unavailable, window, all),
        emulator(
            0.40,
            Service::Dynamodb,
            FaultKind::Unavailable,
            store_down,
            all,
        ),
        emulator(0.70, Service::Sqs, FaultKind::Unavailable, window, all),
        // Every request, and early enough to end before 85 % of the load, where a window
        // that met nothing gets its second chance: the secret is read only about once per
        // window (warm functions' re-reads after SECRETS_TTL_SECONDS), so a late window that
        // met none could not be given another.
        emulator(
            0.58,
            Service::Secretsmanager,
            FaultKind::Throttle,
            window,
            all,
        ),
        Injection::Sandbox {
            at: at(0.12),
            fault: SandboxFault::ServerErrorStorm,
            count: 8,
        },
        Injection::Sandbox {
            at: at(0.32),
            fault: SandboxFault::RateLimited,
            count: 8,
        },
        Injection::Sandbox {
            at: at(0.55),
            fault: SandboxFault::AcceptThenTimeout,
            count: 3,
        },
        Injection::Sandbox {
            at: at(0.80),
            fault: SandboxFault::ServerErrorStorm,
            count: 8,
        },
        Injection::Crash { at: at(0.18) },
        Injection::Crash { at: at(0.50) },
        Injection::Crash { at: at(0.85) },
    ]
}

/// Every class a run must have injected for its report to count.
pub fn classes() -> Vec<FaultClass> {
    let mut classes: Vec<FaultClass> = schedule(Duration::from_secs(60), Duration::from_secs(10))
        .iter()
        .map(|i| match i {
            Injection::Emulator { spec, .. } => FaultClass::Emulator(spec.service, spec.kind),
            Injection::Sandbox { fault, .. } => FaultClass::Sandbox(*fault),
            Injection::Crash { .. } => FaultClass::WorkerCrash,
        })
        .chain(Callbacks::ALL.into_iter().map(FaultClass::Callbacks))
        .collect();
    classes.sort();
    classes.dedup();
    classes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_covers_every_class_the_brief_names_within_the_load() {
        let classes = classes();
        for service in [
            Service::Dynamodb,
            Service::Sqs,
            Service::Events,
            Service::Secretsmanager,
        ] {
            assert!(classes.contains(&FaultClass::Emulator(service, FaultKind::Unavailable)));
            assert!(classes.contains(&FaultClass::Emulator(service, FaultKind::Throttle)));
        }
        assert!(classes.contains(&FaultClass::Emulator(Service::Dynamodb, FaultKind::Slow)));
        for fault in [
            SandboxFault::ServerErrorStorm,
            SandboxFault::RateLimited,
            SandboxFault::AcceptThenTimeout,
        ] {
            assert!(classes.contains(&FaultClass::Sandbox(fault)));
        }
        assert!(classes.contains(&FaultClass::WorkerCrash));
        for d in [20, 30, 240] {
            let windows: Vec<(Service, f64, f64)> =
                schedule(Duration::from_secs(d), Duration::from_secs(60))
                    .into_iter()
                    .filter_map(|i| match i {
                        Injection::Emulator { at, spec } => Some((
                            spec.service,
                            at.as_secs_f64(),
                            at.as_secs_f64() + spec.seconds,
                        )),
                        _ => None,
                    })
                    .collect();
            for (i, a) in windows.iter().enumerate() {
                for b in &windows[i + 1..] {
                    assert!(
                        a.0 != b.0 || a.2 <= b.1 || b.2 <= a.1,
                        "two {:?} windows meet in a {d} s load",
                        a.0
                    );
                }
            }
        }
        let load = Duration::from_secs(120);
        for injection in schedule(load, Duration::from_secs(60)) {
            assert!(injection.at() < load, "{injection:?} starts after the load");
            if let Injection::Emulator { spec, .. } = injection {
                assert!(
                    spec.seconds <= 30.0,
                    "{spec:?}: a quarter of the load at most"
                );
            }
        }
    }
}
