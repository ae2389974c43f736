//! The pending-message engine's one decision: given a message's due time, its limits and the
//! recipient's zones, where does it stand now — to the queue (with how much SQS delay), to wait
//! in the table (`scheduled`, or `deferred` out of quiet hours), or `expired`. It is pure and
//! runs at accept (send-sms), at release (dispatcher) and authoritatively at claim (worker).
//!
//! Where a waiting message is filed in the due index follows from the same policy: a message
//! due later than SQS can delay is filed [`Policy::release_lead`] before it is due, so the
//! dispatcher hands it to SQS with the remaining seconds; a queued one is filed
//! [`Policy::sweep_grace`] after it is due, where the dispatcher finds it only if no worker
//! has finished it — its job was lost, and it is enqueued again.

use std::time::Duration;

use jiff::tz::TimeZone;

use crate::config::{optional, ConfigError};
use crate::pipeline::PipelineState;
use crate::queue::MAX_DELAY;
use crate::schedule::{self, Window};
use crate::store::{IndexChange, Message, Transition};
use crate::time::Timestamp;

#[derive(Debug, Clone)]
pub struct Policy {
    /// The allowed local window (default 08:00–21:00).
    pub window: Window,
    pub default_zone: TimeZone,
    /// A night's deferred messages are released over this long after the window opens.
    pub spread_max: Duration,
    /// How long before its time a waiting message is handed to SQS (under SQS's 15 minutes).
    pub release_lead: Duration,
    /// How long after its time a queued message may go unclaimed before it is enqueued again.
    pub sweep_grace: Duration,
    /// How long a worker's claim lasts before another may take the message over.
    pub claim_lease: Duration,
    /// A submitted message with no final delivery status after this is looked up at Twilio
    /// (later polls wait twice as long each time: [`Policy::status_repoll_after`]).
    pub status_poll_after: Duration,
}

/// What to do with a message now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// On the queue, visible after `delay` (≤ 15 minutes).
    Queue { due: Timestamp, delay: Duration },
    /// In the table until the dispatcher releases it.
    Wait {
        state: PipelineState,
        due: Timestamp,
    },
    /// Its `not_after` has passed, or quiet hours would push it past it.
    Expire,
}

/// The facts about one message the decision needs.
#[derive(Debug, Clone, Copy)]
pub struct Pending<'a> {
    pub message_id: &'a str,
    pub due: Timestamp,
    pub not_after: Option<Timestamp>,
    pub urgent: bool,
    pub zones: &'a [TimeZone],
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            window: Window::default(),
            default_zone: TimeZone::UTC,
            spread_max: Duration::from_secs(20 * 60),
            release_lead: Duration::from_secs(5 * 60),
            sweep_grace: Duration::from_secs(30),
            claim_lease: Duration::from_secs(60),
            // An hour, not a day: the poll is the safety net for callbacks Twilio gave up on
            // (a store outage longer than the connection overrides' retries last, or Twilio
            // ignoring the overrides on a `StatusCallback`), and a delivery reported a day
            // late is a day of wrong "sent" in every reader. It costs one Twilio GET per
            // message still without a final status after an hour: few, as most are delivered
            // within seconds.
            status_poll_after: Duration::from_secs(3600),
        }
    }
}

impl Policy {
    /// Quiet hours that never close (tests, benchmarks and a test stack that must not depend
    /// on the hour it runs at).
    pub fn always_open() -> Self {
        Self {
            window: Window::parse("00:00", "24:00").unwrap_or_default(),
            ..Self::default()
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let seconds = |name: &'static str, default: Duration| -> Result<Duration, ConfigError> {
            optional(name).map_or(Ok(default), |v| {
                v.parse::<f64>()
                    .ok()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .ok_or(ConfigError::Invalid {
                        name,
                        reason: "not a number of seconds".into(),
                    })
            })
        };
        let window = Window::parse(
            &optional("QUIET_HOURS_START").unwrap_or_else(|| "08:00".into()),
            &optional("QUIET_HOURS_END").unwrap_or_else(|| "21:00".into()),
        )
        .map_err(|e| ConfigError::Invalid {
            name: "QUIET_HOURS_START",
            reason: e.to_string(),
        })?;
        let default_zone = match optional("DEFAULT_TIME_ZONE") {
            Some(name) => schedule::parse_zone(&name).map_err(|e| ConfigError::Invalid {
                name: "DEFAULT_TIME_ZONE",
                reason: e.to_string(),
            })?,
            None => defaults.default_zone.clone(),
        };
        let release_lead = seconds("RELEASE_LEAD_SECONDS", defaults.release_lead)?;
        if release_lead >= MAX_DELAY {
            return Err(ConfigError::Invalid {
                name: "RELEASE_LEAD_SECONDS",
                reason: "must be under 900 (SQS's longest delay)".into(),
            });
        }
        Ok(Self {
            window,
            default_zone,
            spread_max: seconds("QUIET_HOURS_SPREAD_SECONDS", defaults.spread_max)?,
            release_lead,
            sweep_grace: seconds("SWEEP_GRACE_SECONDS", defaults.sweep_grace)?,
            claim_lease: seconds("SEND_CLAIM_LEASE_SECONDS", defaults.claim_lease)?,
            status_poll_after: seconds("STATUS_POLL_AFTER_SECONDS", defaults.status_poll_after)?,
        })
    }

    /// The zones quiet hours are judged in: the message's, else the default.
    fn zones<'a>(&'a self, zones: &'a [TimeZone]) -> &'a [TimeZone] {
        if zones.is_empty() {
            std::slice::from_ref(&self.default_zone)
        } else {
            zones
        }
    }

    /// The first instant at or after `at` inside the window in every zone. Zones whose windows
    /// never meet fall back to the default zone.
    pub fn next_allowed(&self, at: Timestamp, zones: &[TimeZone]) -> Timestamp {
        schedule::next_allowed(at.jiff(), &self.window, self.zones(zones))
            .or_else(|| {
                schedule::next_allowed(
                    at.jiff(),
                    &self.window,
                    std::slice::from_ref(&self.default_zone),
                )
            })
            .map_or(at, Timestamp::from_jiff)
    }

    /// When a message due at `at` may go: `at` itself when allowed, else the next allowed
    /// instant plus the message's spread (kept inside the window).
    fn release_at(&self, at: Timestamp, zones: &[TimeZone], message_id: &str) -> Timestamp {
        let zones = self.zones(zones);
        schedule::release_at(at.jiff(), &self.window, zones, message_id, self.spread_max)
            .or_else(|| {
                schedule::release_at(
                    at.jiff(),
                    &self.window,
                    std::slice::from_ref(&self.default_zone),
                    message_id,
                    self.spread_max,
                )
            })
            .map_or(at, Timestamp::from_jiff)
    }

    /// Where a stored message stands at `now`, in the zones it was accepted with.
    pub fn decide_for(&self, now: Timestamp, m: &Message) -> Decision {
        let zones = zones_of(m);
        self.decide(
            now,
            Pending {
                message_id: &m.message_id,
                due: m.send_at.unwrap_or(now),
                not_after: m.not_after,
                urgent: m.urgent,
                zones: &zones,
            },
        )
    }

    /// The transition that holds back a message that may not go now: `deferred` (or
    /// `scheduled`) until its due time, filed for release, or `expired`. `None` for
    /// [`Decision::Queue`], which each caller handles its own way.
    pub fn hold<'a>(
        &self,
        m: &'a Message,
        decision: Decision,
        source: &'a str,
        now: Timestamp,
    ) -> Option<Transition<'a>> {
        let (to, reason, index, send_at) = match decision {
            Decision::Queue { .. } => return None,
            Decision::Wait { state, due } => (
                state,
                (state == PipelineState::Deferred).then_some("quiet_hours"),
                IndexChange::File {
                    minute: self.release_minute(due, now),
                    due,
                },
                Some(due),
            ),
            Decision::Expire => (
                PipelineState::Expired,
                Some("not_after"),
                IndexChange::Remove,
                None,
            ),
        };
        Some(Transition {
            message: m,
            to,
            reason,
            index,
            send_at,
            delivery_status: None,
            source,
            swept: false,
            now,
        })
    }

    /// Where `p` stands at `now`.
    pub fn decide(&self, now: Timestamp, p: Pending<'_>) -> Decision {
        if p.not_after.is_some_and(|limit| now >= limit) {
            return Decision::Expire;
        }
        let mut due = p.due.max(now);
        let mut state = PipelineState::Scheduled;
        if !p.urgent {
            let allowed = self.release_at(due, p.zones, p.message_id);
            if allowed > due {
                due = allowed;
                state = PipelineState::Deferred;
            }
        }
        if p.not_after.is_some_and(|limit| due >= limit) {
            return Decision::Expire;
        }
        let delay = now.until(due);
        if delay < MAX_DELAY && state == PipelineState::Scheduled {
            Decision::Queue { due, delay }
        } else if delay < self.release_lead {
            // Deferred, but so soon that the queue can hold it.
            Decision::Queue { due, delay }
        } else {
            Decision::Wait { state, due }
        }
    }

    /// The due-index minute of a waiting message: its release, never a minute the dispatcher
    /// may already have passed.
    pub fn release_minute(&self, due: Timestamp, now: Timestamp) -> Timestamp {
        due.minus(self.release_lead)
            .max(now.plus(Duration::from_secs(60)))
            .minute()
    }

    /// The due-index minute of a queued message: when to look for it if no worker finished it.
    pub fn sweep_minute(&self, due: Timestamp, now: Timestamp) -> Timestamp {
        // The current minute at the earliest: the dispatcher processes a minute only 65 s after
        // it starts, so a write now still lands before it is read.
        due.max(now)
            .plus(self.sweep_grace)
            .minute()
            .max(now.minute())
    }

    /// The next sweep of a message already enqueued again `sweeps` times: the wait doubles
    /// each time (up to an hour), so a long but healthy backlog — a paced sender working
    /// through thousands — is not flooded with copies of its jobs.
    /// How long after a status poll that found no final status the message is polled again,
    /// `polls` (its `sweeps`) counted so far: `status_poll_after` doubled each time (deployed:
    /// 2 h, 4 h, 8 h… after the first at an hour), so a carrier slow to report delivery is
    /// still heard over days for a handful of requests.
    pub fn status_repoll_after(&self, polls: u32) -> Duration {
        self.status_poll_after.saturating_mul(2 << polls.min(16))
    }

    pub fn resweep_minute(&self, sweeps: u32, now: Timestamp) -> Timestamp {
        let wait = self
            .sweep_grace
            .saturating_mul(1 << sweeps.min(16))
            .min(Duration::from_secs(3600));
        self.sweep_minute(now.plus(wait), now)
    }
}

/// The zones a message's quiet hours are judged in, as stored at accept (comma-separated when
/// the number's prefix spans several).
pub fn zones_of(message: &Message) -> Vec<TimeZone> {
    message
        .time_zone
        .as_deref()
        .map(|names| {
            names
                .split(',')
                .filter_map(|name| schedule::parse_zone(name.trim()).ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    #[test]
    fn status_polls_come_an_hour_after_submission_then_at_doubling_intervals() {
        let p = Policy::default();
        assert_eq!(p.status_poll_after, Duration::from_secs(3600));
        let hours: Vec<u64> = (0..5)
            .map(|polls| p.status_repoll_after(polls).as_secs() / 3600)
            .collect();
        assert_eq!(hours, [2, 4, 8, 16, 32]);
    }

    fn lisbon() -> Vec<TimeZone> {
        vec![schedule::parse_zone("Europe/Lisbon").unwrap()]
    }

    fn pending<'a>(due: &str, zones: &'a [TimeZone]) -> Pending<'a> {
        Pending {
            message_id: "01JTEST",
            due: at(due),
            not_after: None,
            urgent: false,
            zones,
        }
    }

    #[test]
    fn now_or_soon_goes_to_the_queue_later_waits() {
        let policy = Policy::default();
        let zones = lisbon();
        let now = at("2026-12-01T10:00:00Z");
        assert_eq!(
            policy.decide(now, pending("2026-12-01T09:00:00Z", &zones)),
            Decision::Queue {
                due: now,
                delay: Duration::ZERO
            }
        );
        assert_eq!(
            policy.decide(now, pending("2026-12-01T10:14:00Z", &zones)),
            Decision::Queue {
                due: at("2026-12-01T10:14:00Z"),
                delay: Duration::from_secs(14 * 60)
            }
        );
        assert_eq!(
            policy.decide(now, pending("2026-12-01T10:15:00Z", &zones)),
            Decision::Wait {
                state: PipelineState::Scheduled,
                due: at("2026-12-01T10:15:00Z")
            }
        );
    }

    #[test]
    fn quiet_hours_defer_to_the_morning_plus_a_spread_unless_urgent() {
        let policy = Policy::default();
        let zones = lisbon();
        let night = at("2026-12-01T23:30:00Z");
        match policy.decide(night, pending("2026-12-01T23:30:00Z", &zones)) {
            Decision::Wait { state, due } => {
                assert_eq!(state, PipelineState::Deferred);
                let morning = at("2026-12-02T08:00:00Z");
                assert!(
                    due >= morning && due < morning.plus(policy.spread_max),
                    "{due}"
                );
            }
            other => panic!("expected a deferral, got {other:?}"),
        }
        let mut urgent = pending("2026-12-01T23:30:00Z", &zones);
        urgent.urgent = true;
        assert!(matches!(
            policy.decide(night, urgent),
            Decision::Queue { .. }
        ));
    }

    #[test]
    fn not_after_expires_rather_than_sending_late() {
        let policy = Policy::default();
        let zones = lisbon();
        let mut p = pending("2026-12-01T23:30:00Z", &zones);
        p.not_after = Some(at("2026-12-02T07:00:00Z"));
        assert_eq!(
            policy.decide(at("2026-12-01T23:30:00Z"), p),
            Decision::Expire
        );
        p.not_after = Some(at("2026-12-01T23:00:00Z"));
        p.urgent = true;
        assert_eq!(
            policy.decide(at("2026-12-01T23:30:00Z"), p),
            Decision::Expire
        );
    }

    #[test]
    fn index_minutes_are_never_in_the_past() {
        let policy = Policy::default();
        let now = at("2026-12-01T10:00:30Z");
        assert_eq!(
            policy.release_minute(at("2026-12-01T11:00:00Z"), now),
            at("2026-12-01T10:55:00Z")
        );
        assert_eq!(
            policy.release_minute(at("2026-12-01T10:02:00Z"), now),
            at("2026-12-01T10:01:00Z")
        );
        assert_eq!(
            policy.sweep_minute(at("2026-12-01T10:00:00Z"), now),
            at("2026-12-01T10:01:00Z")
        );
        assert_eq!(
            policy.sweep_minute(at("2026-12-01T10:00:10Z"), at("2026-12-01T10:00:10Z")),
            at("2026-12-01T10:00:00Z"),
            "30 s of grace"
        );
        assert_eq!(
            policy.sweep_minute(at("2026-12-01T10:00:40Z"), at("2026-12-01T10:00:40Z")),
            at("2026-12-01T10:01:00Z")
        );
        let waits: Vec<_> = (0..10).map(|n| policy.resweep_minute(n, now)).collect();
        assert!(waits.windows(2).all(|w| w[0] <= w[1]), "{waits:?}");
        assert_eq!(
            waits[9],
            at("2026-12-01T11:01:00Z"),
            "at most an hour (and its grace)"
        );
    }
}
