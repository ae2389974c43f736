//! The dispatcher, run every minute by a `Schedule` event: it walks the due index minute by
//! minute from its checkpoint and moves every message it finds on:
//!
//! - `scheduled`/`deferred` → `queued` (conditional), and onto the queue with the remaining
//!   seconds as `DelaySeconds` — or deferred again, or `expired`, as the policy says;
//! - `queued` (its sweep minute came and no worker finished it: the job was lost) → enqueued
//!   again, and filed for the next sweep;
//! - `sending` past its lease (the worker died and its job is gone) → enqueued, so a worker
//!   takes the claim over through the Twilio lookup; a live claim is filed for when it ends.
//!
//! - `submitted` with no final delivery status an hour after (`STATUS_POLL_AFTER_SECONDS`):
//!   the message is fetched from Twilio by its SID and the status applied (history source
//!   `poll`); polled again at doubling intervals while Twilio has nothing final either.
//!
//! Releases are written in transactions of up to 100 and enqueued ten to a request, so a busy
//! minute costs a few requests per hundred messages. Every write is conditional on the state
//! and version read, so an overlapping run, a cancel or a worker can race it safely.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tracing::{error, info, info_span, warn, Instrument};

use super::{ColdStart, InitError};
use crate::config::{optional, required, ConfigError};
use crate::delivery::DeliveryStatus;
use crate::metrics::Metrics;
use crate::pending::{Decision, Policy};
use crate::pipeline::PipelineState;
use crate::queue::{JobQueue, SendJob};
use crate::secrets::SecretStore;
use crate::store::keys::DUE_SHARDS;
use crate::store::StatusSource;
use crate::store::{IndexChange, Message, Store, StoreError, Transition};
use crate::time::{Clock, SystemClock, Timestamp};
use crate::twilio::client::{with_credentials, Sender, TwilioClient};
use crate::twilio::MessageSid;

const FUNCTION: &str = "dispatcher";
const MINUTE: Duration = Duration::from_secs(60);
/// A minute is processed this long after it ends, so writes filed into it at its last moment
/// (and the index's propagation) are in.
const SETTLE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Minutes one run processes at most (a long outage is caught up over several runs).
    pub max_minutes_per_run: u32,
    /// Where a first run starts, before its first minute.
    pub first_run_lookback: Duration,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            max_minutes_per_run: 180,
            first_run_lookback: Duration::from_secs(3600),
        }
    }
}

impl DispatcherConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let max_minutes_per_run = optional("DISPATCH_MAX_MINUTES_PER_RUN")
            .map_or(Ok(defaults.max_minutes_per_run), |v| v.parse())
            .map_err(|_| ConfigError::Invalid {
                name: "DISPATCH_MAX_MINUTES_PER_RUN",
                reason: "not a whole number".into(),
            })?;
        Ok(Self {
            max_minutes_per_run,
            ..defaults
        })
    }
}

/// What one run did.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct DispatchReport {
    pub minutes: u32,
    pub seen: u32,
    pub released: u32,
    pub deferred: u32,
    pub expired: u32,
    /// Queued messages whose job was lost, enqueued again.
    pub requeued: u32,
    /// Claims past their lease, handed to a worker to take over.
    pub taken_over: u32,
    /// Moved to a later minute without a change of state (a live claim, a raced message).
    pub refiled: u32,
    /// Submitted messages whose status was fetched from Twilio.
    pub polled: u32,
    pub enqueue_failed: u32,
    pub checkpoint: Option<Timestamp>,
}

pub struct Dispatcher {
    store: Store,
    queue: JobQueue,
    policy: Arc<Policy>,
    clock: Arc<dyn Clock>,
    config: DispatcherConfig,
    /// Where statuses no callback brought are fetched (none: such messages just wait).
    twilio: Option<(TwilioClient, Arc<SecretStore>)>,
}

/// Status polls of one message before it leaves the index without a final status: with the
/// doubling intervals, the last is about 63 polling periods (deployed: hours) after submission.
const MAX_POLLS: u32 = 6;
/// Twilio lookups in flight at once.
const POLL_CONCURRENCY: usize = 8;

/// What to do with one message found in a bucket.
struct Step<'a> {
    transition: Transition<'a>,
    /// Enqueue after the write, due at this instant (the delay is counted when the job is
    /// sent, not when the minute was read, so a long run does not make every job late).
    enqueue: Option<Timestamp>,
    counter: fn(&mut DispatchReport) -> &mut u32,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        queue: JobQueue,
        policy: Arc<Policy>,
        clock: Arc<dyn Clock>,
        config: DispatcherConfig,
    ) -> Self {
        Self {
            store,
            queue,
            policy,
            clock,
            config,
            twilio: None,
        }
    }

    /// Fetches statuses from Twilio for submitted messages that never got a final one.
    pub fn with_twilio(mut self, client: TwilioClient, secrets: Arc<SecretStore>) -> Self {
        self.twilio = Some((client, secrets));
        self
    }

    pub async fn from_env() -> Result<Self, InitError> {
        let queue_url = required("SEND_QUEUE_URL")?;
        let policy = Arc::new(Policy::from_env()?);
        let config = DispatcherConfig::from_env()?;
        let api_base =
            optional("TWILIO_API_BASE").unwrap_or_else(|| "https://api.twilio.com".into());
        // Fetching a message needs no sender.
        let twilio = TwilioClient::new(
            &api_base,
            Sender::Number(String::new()),
            Duration::from_secs(5),
        )
        .map_err(|e| ConfigError::Invalid {
            name: "TWILIO_API_BASE",
            reason: e.to_string(),
        })?;
        let cold = ColdStart::load_stored().await?;
        let queue = JobQueue::new(aws_sdk_sqs::Client::new(&cold.sdk), queue_url);
        Ok(
            Self::new(cold.store, queue, policy, Arc::new(SystemClock), config)
                .with_twilio(twilio, cold.secrets),
        )
    }

    /// The `Schedule` event's handler: its content does not matter, only that it came.
    pub async fn handle(&self, _event: serde_json::Value) -> serde_json::Value {
        match self.run().await {
            Ok(report) => serde_json::to_value(report).unwrap_or_default(),
            Err(e) => {
                // The next run starts from the same checkpoint.
                error!(error = %crate::error::chain(&e), "dispatch failed");
                serde_json::json!({ "error": "store unavailable" })
            }
        }
    }

    /// Processes every complete minute since the checkpoint (at most the configured number).
    pub async fn run(&self) -> Result<DispatchReport, StoreError> {
        let now = self.clock.now();
        let newest = now.minus(MINUTE + SETTLE).minute();
        let mut checkpoint = self.store.dispatch_checkpoint().await?;
        let mut minute = match checkpoint {
            Some(done) => done.plus(MINUTE),
            None => newest.minus(self.config.first_run_lookback),
        };
        let mut report = DispatchReport {
            checkpoint,
            ..Default::default()
        };
        while minute <= newest && report.minutes < self.config.max_minutes_per_run {
            // The clock again for each minute: a long catch-up must not file messages by a
            // "now" that has since passed.
            let now = self.clock.now();
            self.process_minute(minute, now, &mut report).await?;
            if !self
                .store
                .advance_dispatch_checkpoint(checkpoint, minute)
                .await?
            {
                info!("another dispatcher run moved the checkpoint; stopping");
                break;
            }
            checkpoint = Some(minute);
            report.checkpoint = checkpoint;
            report.minutes += 1;
            minute = minute.plus(MINUTE);
        }
        if report.seen > 0 {
            info!(
                minutes = report.minutes,
                released = report.released,
                deferred = report.deferred,
                expired = report.expired,
                requeued = report.requeued,
                taken_over = report.taken_over,
                "dispatched"
            );
        }
        Metrics::new(FUNCTION)
            .count("Released", report.released.into())
            .count("Requeued", report.requeued.into())
            .count("TakenOver", report.taken_over.into())
            .count("Expired", report.expired.into())
            .emit();
        Ok(report)
    }

    /// Every shard of one minute's bucket.
    pub async fn process_minute(
        &self,
        minute: Timestamp,
        now: Timestamp,
        report: &mut DispatchReport,
    ) -> Result<(), StoreError> {
        let reads = futures::future::join_all((0..DUE_SHARDS).map(|shard| async move {
            let mut messages = Vec::new();
            let mut start = None;
            loop {
                let (page, next) = self.store.due_page(minute, shard, start).await?;
                messages.extend(page);
                start = next;
                if start.is_none() {
                    return Ok::<_, StoreError>(messages);
                }
            }
        }))
        .await;
        let mut messages = Vec::new();
        for read in reads {
            messages.extend(read?);
        }
        report.seen += messages.len() as u32;
        let (submitted, messages): (Vec<Message>, Vec<Message>) = messages
            .into_iter()
            .partition(|m| m.status == PipelineState::Submitted);
        let steps: Vec<Step> = messages
            .iter()
            .filter_map(|m| self.step(m, minute, now))
            .collect();
        let transitions: Vec<Transition> = steps.iter().map(|s| s.transition.clone()).collect();
        let applied = self.store.transitions(&transitions).await?;
        let mut jobs = Vec::new();
        for (step, applied) in steps.iter().zip(applied) {
            if !applied {
                // Changed since the read: whoever changed it also filed it where it belongs.
                continue;
            }
            *(step.counter)(report) += 1;
            if let Some(due) = step.enqueue {
                let m = step.transition.message;
                // In the trace the message was accepted in, stored with it: a scheduled send
                // continues the request's trace however long it waited.
                jobs.push((
                    SendJob::new(m.message_id.clone(), m.pk.clone(), m.sk.clone())
                        .traced(m.trace.clone()),
                    due,
                ));
            }
        }
        let sent_at = self.clock.now();
        let refs: Vec<(&SendJob, Duration)> = jobs
            .iter()
            .map(|(job, due)| (job, sent_at.until(*due)))
            .collect();
        let failed = self.queue.enqueue_many(&refs).await;
        if !failed.is_empty() {
            // They are queued and filed for a sweep: the next one enqueues them.
            warn!(
                count = failed.len(),
                "could not enqueue; left for the sweep"
            );
            report.enqueue_failed += failed.len() as u32;
        }
        // Status polls last, a few at a time: a day of lost callbacks must not hold up
        // today's releases.
        for chunk in submitted.chunks(POLL_CONCURRENCY) {
            // Each in its message's trace: a status no callback brought is logged with the rest.
            let polls = chunk.iter().map(|m| {
                let span = info_span!(
                    "poll",
                    xrayTraceId = m.trace.as_ref().map(tracing::field::display)
                );
                self.poll(m, now).instrument(span)
            });
            for asked in futures::future::join_all(polls).await {
                if asked? {
                    report.polled += 1;
                }
            }
        }
        Ok(())
    }

    /// A submitted message with no final status at its poll minute: its status fetched from
    /// Twilio and applied (a final one takes it out of the index), else polled again later.
    /// Whether Twilio was asked.
    async fn poll(&self, m: &Message, now: Timestamp) -> Result<bool, StoreError> {
        let fetched = match (&self.twilio, m.twilio_sid.as_deref()) {
            _ if m.delivery_status.is_some_and(|s| s.is_final()) => None,
            (Some((client, secrets)), Some(sid)) => match MessageSid::parse(sid) {
                Ok(sid) => match with_credentials(secrets, |s| {
                    let sid = &sid;
                    async move { client.fetch(&s, sid).await }
                })
                .await
                {
                    Ok(found) => Some((sid, found)),
                    Err(e) => {
                        warn!(message_id = %m.message_id, error = %e, "status poll failed; polled again later");
                        None
                    }
                },
                Err(_) => None,
            },
            _ => None,
        };
        let asked = fetched.is_some();
        if let Some((sid, found)) = fetched {
            let status = DeliveryStatus::parse(&found.status);
            let code = found.error_code.map(|c| c.to_string());
            self.store
                .apply_status_from(
                    &sid,
                    status,
                    code.as_deref(),
                    &now.to_string(),
                    StatusSource::Poll,
                )
                .await?;
            info!(message_id = %m.message_id, status = status.as_str(), "status polled from Twilio");
            if status.is_final() {
                return Ok(true);
            }
        }
        let done = m.delivery_status.is_some_and(|s| s.is_final()) || m.sweeps + 1 >= MAX_POLLS;
        let again = now.plus(self.policy.status_repoll_after(m.sweeps)).minute();
        let transition = Transition {
            message: m,
            to: PipelineState::Submitted,
            reason: None,
            index: if done {
                IndexChange::Remove
            } else {
                IndexChange::File {
                    minute: again,
                    due: again,
                }
            },
            send_at: None,
            delivery_status: None,
            source: "dispatcher",
            swept: true,
            now,
        };
        // A callback may have moved it meanwhile: then it is where it belongs already. The
        // version may have moved under the status update just applied: read it again.
        let current = self.store.message(&m.pk, &m.sk).await?;
        if let Some(current) = current.filter(|c| c.gsi2pk.is_some()) {
            let transition = Transition {
                message: &current,
                ..transition
            };
            self.store.transition(&transition).await?;
        }
        Ok(asked)
    }

    fn step<'a>(&self, m: &'a Message, minute: Timestamp, now: Timestamp) -> Option<Step<'a>> {
        let base = |to, index, counter: fn(&mut DispatchReport) -> &mut u32| Step {
            transition: Transition {
                message: m,
                to,
                reason: None,
                index,
                send_at: None,
                delivery_status: None,
                source: "dispatcher",
                swept: false,
                now,
            },
            enqueue: None,
            counter,
        };
        match m.status {
            PipelineState::Scheduled | PipelineState::Deferred | PipelineState::Queued => {
                let decision = self.policy.decide_for(now, m);
                Some(match decision {
                    Decision::Queue { due, .. } => {
                        let counter: fn(&mut DispatchReport) -> &mut u32 =
                            if m.status == PipelineState::Queued {
                                |r| &mut r.requeued
                            } else {
                                |r| &mut r.released
                            };
                        // A queued message found at its sweep minute lost its job (or waits in
                        // a long backlog): enqueued again, and looked at again after a wait
                        // that doubles each time, so a healthy backlog is not flooded.
                        let swept = m.status == PipelineState::Queued;
                        let minute = if swept {
                            self.policy.resweep_minute(m.sweeps, now)
                        } else {
                            self.policy.sweep_minute(due, now)
                        };
                        let mut step = base(
                            PipelineState::Queued,
                            IndexChange::File { minute, due },
                            counter,
                        );
                        step.transition.swept = swept;
                        step.transition.reason = swept.then_some("swept");
                        step.enqueue = Some(due);
                        step
                    }
                    hold => {
                        let transition = self.policy.hold(m, hold, "dispatcher", now)?;
                        let counter: fn(&mut DispatchReport) -> &mut u32 =
                            if transition.to == PipelineState::Expired {
                                |r| &mut r.expired
                            } else {
                                |r| &mut r.deferred
                            };
                        Step {
                            transition,
                            enqueue: None,
                            counter,
                        }
                    }
                })
            }
            PipelineState::Sending => {
                let claimed = m.claimed_at;
                let expires = claimed.map_or(now, |at| at.plus(self.policy.claim_lease));
                let due = m.send_at.unwrap_or(now);
                if expires <= now {
                    // Its worker died and the job is gone: a worker takes the claim over.
                    let mut step = base(
                        PipelineState::Sending,
                        IndexChange::File {
                            minute: self
                                .policy
                                .sweep_minute(now.plus(self.policy.claim_lease), now),
                            due,
                        },
                        |r| &mut r.taken_over,
                    );
                    step.enqueue = Some(now);
                    Some(step)
                } else {
                    Some(base(
                        PipelineState::Sending,
                        IndexChange::File {
                            minute: self
                                .policy
                                .sweep_minute(expires, now)
                                .max(minute.plus(MINUTE)),
                            due,
                        },
                        |r| &mut r.refiled,
                    ))
                }
            }
            // Final already (the index is eventually consistent): nothing to do.
            _ => None,
        }
    }
}
