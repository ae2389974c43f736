//! The send worker: SQS batches of [`SendJob`]s. A batch is read in one request and claimed
//! in one transaction that also re-checks consent (a redelivered job or a second worker never
//! sends twice); an attempt whose answer was lost is reconciled at Twilio before sending again;
//! Twilio's acceptances are recorded in one transaction; failures are retried with backoff
//! through the message's visibility, or failed at once when Twilio refuses the message itself.
//! A job whose message is claimed is never dropped: it comes back when the claim expires.
//! While Twilio's circuit breaker is open, jobs are held (a fresh copy, due at the next probe)
//! before they are claimed, so an outage of any length costs no attempt.

mod attempt;
mod claim;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use tracing::{error, info, info_span, warn, Instrument};

use self::attempt::Attempt;
use self::claim::Claimed;
use super::{ColdStart, InitError};
use crate::breaker::{Breaker, BreakerConfig, TWILIO_BREAKER_ENV};
use crate::config::{optional, required, ConfigError};
use crate::metrics::Metrics;
use crate::pending::Policy;
use crate::queue::{JobQueue, SendJob};
use crate::rate::RateLimiter;
use crate::secrets::SecretStore;
use crate::store::sending::MAX_BATCH;
use crate::store::{Accepted, Message, Store, TxError};
use crate::telemetry::Pseudonymizer;
use crate::time::{Clock, SystemClock};
use crate::twilio::client::{Sender, TwilioClient};
use crate::twilio::overrides::with_overrides;
use crate::xray::TraceHeader;

const FUNCTION: &str = "send-worker";
/// Fresh copies of one job after faults (hours of a store outage at the growing delays)
/// before its receives start to count.
const MAX_REQUEUES: u32 = 50;
pub const STATUS_ROUTE: &str = "/webhook/twilio/status";
/// The `StatusCallback` URL's query parameter that names Parley's message.
pub const MESSAGE_ID_PARAM: &str = "m";
/// The `StatusCallback` URL's query parameter with the message's trace id (`Root`), so its
/// callbacks log in its trace without reading it first.
pub const TRACE_PARAM: &str = "t";

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The status-callback route's public URL; each message's adds its id
    /// ([`WorkerConfig::status_callback_for`]).
    pub status_callback_url: String,
    /// Must equal the queue's `maxReceiveCount`, so the last failure is also the one SQS
    /// moves to the dead-letter queue.
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// A `sending` claim older than this belongs to a worker that died; it may be taken over.
    pub claim_lease: Duration,
    pub rate_per_second: f64,
}

impl WorkerConfig {
    /// The `StatusCallback` URL of one message: the route with the message's id in the query
    /// (`?m=<message_id>`), so its callbacks find it by id whether or not its SID is recorded
    /// yet; the id of the trace it was sent in (`&t=<Root>`), when it has one; and Twilio's
    /// connection overrides as its fragment ([`crate::twilio::overrides::WEBHOOK_OVERRIDES`]),
    /// so a callback refused while the store fails is retried at once instead of waiting for
    /// the status poll (without them Twilio retries no 5xx). Twilio signs the URL it calls,
    /// query included, so neither id can be forged; the status route accepts the signature
    /// with or without the fragment. Message ids are ULIDs and trace ids `1-` and hex: nothing
    /// to encode.
    pub fn status_callback_for(&self, message_id: &str, trace: Option<&TraceHeader>) -> String {
        let url = format!(
            "{}?{MESSAGE_ID_PARAM}={message_id}",
            self.status_callback_url
        );
        let url = match trace {
            Some(t) => format!("{url}&{TRACE_PARAM}={}", t.root()),
            None => url,
        };
        with_overrides(&url)
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        let number = |name: &'static str, default: f64| -> Result<f64, ConfigError> {
            optional(name).map_or(Ok(default), |v| {
                v.parse().map_err(|_| ConfigError::Invalid {
                    name,
                    reason: "not a number".into(),
                })
            })
        };
        let seconds = |name: &'static str, default: f64| -> Result<Duration, ConfigError> {
            Duration::try_from_secs_f64(number(name, default)?).map_err(|_| ConfigError::Invalid {
                name,
                reason: "not a number of seconds".into(),
            })
        };
        let base = required("PUBLIC_BASE_URL")?;
        Ok(Self {
            status_callback_url: format!("{}{STATUS_ROUTE}", base.trim_end_matches('/')),
            max_attempts: number("SEND_MAX_ATTEMPTS", 5.0)? as u32,
            retry_base: seconds("SEND_RETRY_BASE_SECONDS", 2.0)?,
            retry_cap: Duration::from_secs(300),
            claim_lease: seconds("SEND_CLAIM_LEASE_SECONDS", 60.0)?,
            rate_per_second: number("SEND_RATE_PER_SECOND", 0.0)?,
        })
    }
}

pub struct SendWorker {
    store: Store,
    queue: JobQueue,
    twilio: TwilioClient,
    secrets: Arc<SecretStore>,
    config: WorkerConfig,
    policy: Arc<Policy>,
    clock: Arc<dyn Clock>,
    limiter: Option<RateLimiter>,
    pseudonyms: Pseudonymizer,
    /// Twilio's circuit breaker, per instance (see `crate::breaker`).
    breaker: Breaker,
}

/// What to do with one SQS record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disposition {
    Done,
    /// A delivery attempt failed: leave it on the queue, visible again after `delay` (None:
    /// the queue's own timeout). Counts toward the dead-letter queue's `maxReceiveCount`.
    Retry(Option<Duration>),
    /// Not an attempt (a store fault, another worker's live claim, a lost race): a fresh copy
    /// of the job after `delay`, so infrastructure faults never dead-letter a message.
    Requeue(Duration),
    /// Twilio's circuit breaker is open: an unchanged fresh copy of the job, due when the
    /// breaker next lets a call through. Neither a receive nor a requeue is counted, so
    /// however long Twilio is down the job never drifts toward the dead-letter queue.
    Hold(Duration),
}

impl SendWorker {
    pub fn new(
        store: Store,
        sqs: aws_sdk_sqs::Client,
        queue_url: String,
        twilio: TwilioClient,
        secrets: Arc<SecretStore>,
        config: WorkerConfig,
    ) -> Self {
        let pseudonyms = Pseudonymizer::new(&secrets.current().log_hmac_key);
        let limiter = RateLimiter::per_second(config.rate_per_second);
        let policy = Policy {
            claim_lease: config.claim_lease,
            ..Policy::default()
        };
        Self {
            store,
            queue: JobQueue::new(sqs, queue_url),
            twilio,
            secrets,
            config,
            policy: Arc::new(policy),
            clock: Arc::new(SystemClock),
            limiter,
            pseudonyms,
            breaker: Breaker::new("twilio", BreakerConfig::default(), Arc::new(SystemClock)),
        }
    }

    /// A circuit breaker toward Twilio other than the default one (its settings, its clock).
    pub fn with_twilio_breaker(mut self, breaker: Breaker) -> Self {
        self.breaker = breaker;
        self
    }

    pub fn twilio_breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Quiet hours, zones and timings other than the defaults.
    pub fn with_policy(mut self, policy: Arc<Policy>) -> Self {
        self.policy = policy;
        self
    }

    /// A clock other than the system's (tests run the worker at a chosen time).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub async fn from_env() -> Result<Self, InitError> {
        let config = WorkerConfig::from_env()?;
        let queue_url = required("SEND_QUEUE_URL")?;
        let sender = match (
            optional("TWILIO_MESSAGING_SERVICE_SID"),
            optional("TWILIO_FROM_NUMBER"),
        ) {
            (Some(service), _) => Sender::MessagingService(service),
            (None, Some(number)) => Sender::Number(number),
            (None, None) => return Err(ConfigError::Missing("TWILIO_FROM_NUMBER").into()),
        };
        let timeout_ms: u64 = optional("TWILIO_TIMEOUT_MS")
            .map_or(Ok(10_000), |v| v.parse())
            .map_err(|_| ConfigError::Invalid {
                name: "TWILIO_TIMEOUT_MS",
                reason: "not a number".into(),
            })?;
        let api_base =
            optional("TWILIO_API_BASE").unwrap_or_else(|| "https://api.twilio.com".into());
        let twilio = TwilioClient::new(&api_base, sender, Duration::from_millis(timeout_ms))
            .map_err(|e| ConfigError::Invalid {
                name: "TWILIO_API_BASE",
                reason: e.to_string(),
            })?;
        let mut policy = Policy::from_env()?;
        policy.claim_lease = config.claim_lease;
        let breaker = BreakerConfig::from_env(TWILIO_BREAKER_ENV)?;
        let cold = ColdStart::load_stored().await?;
        let sqs = aws_sdk_sqs::Client::new(&cold.sdk);
        Ok(
            Self::new(cold.store, sqs, queue_url, twilio, cold.secrets, config)
                .with_policy(Arc::new(policy))
                .with_twilio_breaker(Breaker::new("twilio", breaker, Arc::new(SystemClock))),
        )
    }

    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut dispositions: Vec<Option<Disposition>> = vec![None; event.records.len()];
        let mut jobs: Vec<(usize, SendJob)> = Vec::new();
        let mut seen = HashSet::new();
        for (i, record) in event.records.iter().enumerate() {
            match SendJob::from_record(record) {
                // One copy of a job is enough: the others are done when it is.
                Some(job) if !seen.insert((job.pk.clone(), job.sk.clone())) => {
                    info!(message_id = %job.message_id, "the same job twice in one batch; one kept");
                    dispositions[i] = Some(Disposition::Done);
                }
                Some(job) => jobs.push((i, job)),
                None => {
                    // Never succeeds: left for the dead-letter queue, where someone can look at it.
                    error!(
                        sqs_message_id = record.message_id.as_deref().unwrap_or(""),
                        "malformed send job"
                    );
                    dispositions[i] = Some(Disposition::Retry(None));
                }
            }
        }
        let batches = jobs.chunks(MAX_BATCH).map(|chunk| async move {
            let jobs: Vec<&SendJob> = chunk.iter().map(|(_, job)| job).collect();
            let done = self.send_batch(&jobs).await;
            chunk.iter().map(|(i, _)| *i).zip(done).collect::<Vec<_>>()
        });
        for (i, disposition) in futures::future::join_all(batches)
            .await
            .into_iter()
            .flatten()
        {
            dispositions[i] = Some(disposition);
        }

        let mut response = SqsBatchResponse::default();
        let mut held = 0;
        for (record, disposition) in event.records.iter().zip(dispositions) {
            let disposition = match (disposition, record.body.as_deref()) {
                (Some(Disposition::Requeue(delay)), Some(_)) => {
                    Some(self.requeue(record, delay).await)
                }
                (Some(Disposition::Hold(delay)), Some(body)) => {
                    held += 1;
                    Some(self.hold(body, delay).await)
                }
                (other, _) => other,
            };
            if let Some(Disposition::Retry(delay)) = disposition {
                if let (Some(delay), Some(handle)) = (delay, record.receipt_handle.as_deref()) {
                    self.delay_visibility(handle, delay).await;
                }
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = record.message_id.clone().unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
        // The breaker's state with every batch: while it is open, held jobs keep coming back,
        // so the gauge has a value each minute for as long as Twilio is down.
        Metrics::new(FUNCTION)
            .count("TwilioCircuitOpen", self.breaker.open_gauge())
            .count("HeldByBreaker", held)
            .emit();
        response
    }

    /// Claims, sends and records up to [`MAX_BATCH`] distinct jobs; a disposition for each.
    /// Twilio's breaker is asked first, before anything is claimed: the claim counts an
    /// attempt, and a held message must not lose one. A batch admitted while the breaker is
    /// closed runs all its calls; a probe is one job's, and the others wait for its answer.
    async fn send_batch(&self, jobs: &[&SendJob]) -> Vec<Disposition> {
        let permit = match self.breaker.admit() {
            Ok(permit) => permit,
            Err(refused) => {
                info!(
                    jobs = jobs.len(),
                    retry_ms = refused.retry_after.as_millis() as u64,
                    "Twilio's circuit is open; jobs held without an attempt"
                );
                return jobs
                    .iter()
                    .map(|_| Disposition::Hold(refused.retry_after))
                    .collect();
            }
        };
        let first = if permit.is_probe() { 1 } else { jobs.len() };
        let (now, later) = jobs.split_at(first.min(jobs.len()));
        let mut dispositions = self.claim_and_send(now).await;
        // The probe's answer is in (or it made no call, and is handed back to the next batch).
        drop(permit);
        let wait = self.breaker.retry_after();
        dispositions.extend(later.iter().map(|_| Disposition::Hold(wait)));
        dispositions
    }

    async fn claim_and_send(&self, jobs: &[&SendJob]) -> Vec<Disposition> {
        let claimed = self.claim(jobs).await;
        let attempts = futures::future::join_all(claimed.into_iter().map(|c| async move {
            match c {
                Claimed::Ours(message) => {
                    let span = self.span(&message);
                    self.attempt(message).instrument(span).await
                }
                Claimed::OptedOut(message) => {
                    let span = self.span(&message);
                    Attempt::Settled(self.cancel_opted_out(message).instrument(span).await)
                }
                Claimed::Settled(disposition) => Attempt::Settled(disposition),
            }
        }))
        .await;
        self.record(attempts).await
    }

    /// Records every message Twilio accepted: the whole batch in one transaction, or one by
    /// one when that is refused (a parked callback to merge, a claim taken over).
    async fn record(&self, attempts: Vec<Attempt>) -> Vec<Disposition> {
        let at = self.clock.now();
        let now = at.to_string();
        let poll_minute = at.plus(self.policy.status_poll_after).minute();
        let accepted: Vec<Accepted> = attempts
            .iter()
            .filter_map(|a| match a {
                Attempt::Accepted {
                    message,
                    sid,
                    status,
                } => Some(Accepted {
                    message,
                    sid,
                    status: *status,
                }),
                Attempt::Settled(_) => None,
            })
            .collect();
        let together = accepted.is_empty()
            || self
                .store
                .record_submitted_batch(&accepted, &now, poll_minute)
                .await
                .inspect_err(|e| {
                    if let TxError::Failed(e) = e {
                        warn!(error = %crate::error::chain(e), "could not record the batch; one by one");
                    }
                })
                .is_ok();
        if !accepted.is_empty() {
            Metrics::new(FUNCTION)
                .count("Sent", accepted.len() as u64)
                .emit();
        }
        drop(accepted);
        let mut dispositions = Vec::with_capacity(attempts.len());
        for attempt in attempts {
            let disposition = match attempt {
                Attempt::Settled(d) => d,
                Attempt::Accepted {
                    message,
                    sid,
                    status,
                } => {
                    let span = self.span(&message);
                    async {
                        if together {
                            info!(twilio_sid = %sid, "message submitted to Twilio");
                            return Disposition::Done;
                        }
                        match self.store.record_submitted(&message, &sid, status, &now, poll_minute).await {
                            Ok(()) => {
                                info!(twilio_sid = %sid, "message submitted to Twilio");
                                Disposition::Done
                            }
                            Err(e) => {
                                error!(twilio_sid = %sid, error = %crate::error::chain(&e), "could not record Twilio's acceptance");
                                self.give_back(&message, "store_error", true).await
                            }
                        }
                    }
                    .instrument(span)
                    .await
                }
            };
            dispositions.push(disposition);
        }
        dispositions
    }

    fn span(&self, message: &Message) -> tracing::Span {
        let phone = self.pseudonyms.pseudonym(&message.to_e164);
        info_span!(
            "send",
            message_id = %message.message_id,
            phone = %phone,
            attempt = message.attempts + 1,
            xrayTraceId = message.trace.as_ref().map(tracing::field::display),
        )
    }

    /// A fresh copy of the job (in its trace), visible after `delay`; the received copy is
    /// then done. If the queue refuses, the received copy is retried instead.
    async fn requeue(&self, record: &SqsMessage, delay: Duration) -> Disposition {
        let Some(mut job) = SendJob::from_record(record) else {
            return Disposition::Retry(Some(delay));
        };
        if job.requeues >= MAX_REQUEUES {
            warn!(message_id = %job.message_id, "requeued too often; retried as received, toward the dead-letter queue");
            return Disposition::Retry(Some(delay));
        }
        job.requeues += 1;
        // The longer the fault lasts, the less often it is tried.
        let delay = delay.max(backoff(
            self.config.retry_base,
            self.config.retry_cap,
            job.requeues,
        ));
        match self.queue.enqueue(&job, delay).await {
            Ok(()) => Disposition::Done,
            Err(e) => {
                warn!(error = %e, "could not requeue; the received job is retried");
                Disposition::Retry(Some(delay))
            }
        }
    }

    /// An unchanged fresh copy of the job, visible after `delay` (plus up to a fifth more, so
    /// a backlog held through an outage does not come back all at one instant); the received
    /// copy is then done. If the queue refuses, the received copy is retried instead.
    async fn hold(&self, body: &str, delay: Duration) -> Disposition {
        let Ok(job) = serde_json::from_str::<SendJob>(body) else {
            return Disposition::Retry(Some(delay));
        };
        let jitter = (ulid::Ulid::new().random() % 1000) as f64 / 5000.0;
        let delay = (delay + delay.mul_f64(jitter)).min(crate::queue::MAX_DELAY);
        match self.queue.enqueue(&job, delay).await {
            Ok(()) => Disposition::Done,
            Err(e) => {
                warn!(error = %e, "could not hold the job; the received job is retried");
                Disposition::Retry(Some(delay))
            }
        }
    }

    async fn delay_visibility(&self, receipt_handle: &str, delay: Duration) {
        let seconds = delay.as_secs_f64().ceil() as i32;
        let result = self
            .queue
            .client()
            .change_message_visibility()
            .queue_url(self.queue.url())
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await;
        if let Err(e) = result {
            // The queue's own visibility timeout still brings the job back.
            warn!(error = %aws_sdk_sqs::Error::from(e), "could not set the retry delay");
        }
    }
}

/// The number as Twilio wants it: E.164, prefixed on WhatsApp.
fn recipient(message: &Message) -> String {
    match message.channel {
        crate::phone::Channel::Sms => message.to_e164.as_str().to_owned(),
        crate::phone::Channel::Whatsapp => format!("whatsapp:{}", message.to_e164.as_str()),
    }
}

/// Exponential backoff with equal jitter: half the step fixed, half random.
pub fn backoff(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let step = base
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(cap);
    let jitter = (ulid::Ulid::new().random() % 1000) as f64 / 1000.0;
    step / 2 + step.mul_f64(jitter / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twilio::overrides::{AttemptOutcome, ConnectionOverrides};

    #[test]
    fn the_status_callback_names_the_message_and_asks_for_retries_of_5xx() {
        let config = WorkerConfig {
            status_callback_url: "https://sms.example.com/webhook/twilio/status".into(),
            max_attempts: 5,
            retry_base: Duration::from_secs(2),
            retry_cap: Duration::from_secs(300),
            claim_lease: Duration::from_secs(60),
            rate_per_second: 0.0,
        };
        let url = config.status_callback_for("01JD0000000000000000000000", None);
        let (base, _) = url.split_once('#').unwrap();
        assert_eq!(
            base,
            "https://sms.example.com/webhook/twilio/status?m=01JD0000000000000000000000"
        );
        let overrides = ConnectionOverrides::of_url(&url).unwrap();
        assert!(overrides.retries(AttemptOutcome::Status(503)));
        assert!(overrides.retry_count >= 1);
    }

    #[test]
    fn backoff_grows_exponentially_within_jitter_and_cap() {
        let base = Duration::from_secs(2);
        let cap = Duration::from_secs(60);
        for attempt in 1..=10 {
            let step = (base * (1 << (attempt - 1))).min(cap);
            let d = backoff(base, cap, attempt);
            assert!(
                d >= step / 2 && d <= step,
                "attempt {attempt}: {d:?} not in [{:?}, {step:?}]",
                step / 2
            );
        }
    }
}
