//! The send worker: SQS batches of [`SendJob`]s. Each message is claimed with a conditional
//! update (a redelivered job or a second worker never sends twice), consent is checked again,
//! an attempt whose answer was lost is reconciled at Twilio before sending again, and failures
//! are retried with backoff through the message's visibility, or failed at once when Twilio
//! refuses the message itself.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use time::OffsetDateTime;
use tracing::{error, info, info_span, warn, Instrument};

use super::send_sms::SendJob;
use super::{ColdStart, InitError};
use crate::config::{optional, required, ConfigError};
use crate::delivery::DeliveryStatus;
use crate::metrics::Metrics;
use crate::rate::RateLimiter;
use crate::secrets::SecretStore;
use crate::store::{Claim, Message, Store};
use crate::telemetry::Pseudonymizer;
use crate::twilio::client::{CreateMessage, Failure, Sender, TwilioClient, TwilioError};
use crate::twilio::MessageSid;

const FUNCTION: &str = "send-worker";
pub const STATUS_ROUTE: &str = "/webhook/twilio/status";
/// Twilio's "unsubscribed recipient" error: also an opt-out.
const UNSUBSCRIBED: i64 = 21610;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
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
    pub fn from_env() -> Result<Self, ConfigError> {
        let number = |name: &'static str, default: f64| -> Result<f64, ConfigError> {
            optional(name).map_or(Ok(default), |v| {
                v.parse().map_err(|_| ConfigError::Invalid {
                    name,
                    reason: "not a number".into(),
                })
            })
        };
        let base = required("PUBLIC_BASE_URL")?;
        Ok(Self {
            status_callback_url: format!("{}{STATUS_ROUTE}", base.trim_end_matches('/')),
            max_attempts: number("SEND_MAX_ATTEMPTS", 5.0)? as u32,
            retry_base: Duration::from_secs_f64(number("SEND_RETRY_BASE_SECONDS", 2.0)?),
            retry_cap: Duration::from_secs(300),
            claim_lease: Duration::from_secs_f64(number("SEND_CLAIM_LEASE_SECONDS", 60.0)?),
            rate_per_second: number("SEND_RATE_PER_SECOND", 0.0)?,
        })
    }
}

pub struct SendWorker {
    store: Store,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    twilio: TwilioClient,
    secrets: Arc<SecretStore>,
    config: WorkerConfig,
    limiter: Option<RateLimiter>,
    pseudonyms: Pseudonymizer,
}

/// What to do with one SQS record.
enum Disposition {
    Done,
    /// Leave it on the queue, visible again after `delay` (None: the queue's own timeout).
    Retry(Option<Duration>),
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
        Self {
            store,
            sqs,
            queue_url,
            twilio,
            secrets,
            config,
            limiter,
            pseudonyms,
        }
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
        let cold = ColdStart::load().await?;
        let sqs = aws_sdk_sqs::Client::new(&cold.sdk);
        Ok(Self::new(
            cold.store,
            sqs,
            queue_url,
            twilio,
            cold.secrets,
            config,
        ))
    }

    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let outcomes = futures::future::join_all(event.records.iter().map(|record| {
            let span = info_span!(
                "send_worker",
                sqs_message_id = record.message_id.as_deref().unwrap_or("")
            );
            async move { (record, self.process(record).await) }.instrument(span)
        }))
        .await;
        let mut response = SqsBatchResponse::default();
        for (record, disposition) in outcomes {
            if let Disposition::Retry(delay) = disposition {
                if let (Some(delay), Some(handle)) = (delay, record.receipt_handle.as_deref()) {
                    self.delay_visibility(handle, delay).await;
                }
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = record.message_id.clone().unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    async fn process(&self, record: &SqsMessage) -> Disposition {
        let Some(job) = record
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<SendJob>(b).ok())
        else {
            // Never succeeds: left for the dead-letter queue, where someone can look at it.
            error!("malformed send job");
            return Disposition::Retry(None);
        };
        tracing::Span::current().record("message_id", job.message_id.as_str());
        match self.send(&job).await {
            Ok(d) => d,
            Err(e) => {
                error!(error = %crate::error::chain(&e), "send failed on the store");
                Disposition::Retry(Some(self.config.retry_base))
            }
        }
    }

    async fn send(&self, job: &SendJob) -> Result<Disposition, crate::store::StoreError> {
        let now = OffsetDateTime::now_utc();
        let stale = now - self.config.claim_lease;
        let claim = self
            .store
            .claim(
                &job.pk,
                &job.sk,
                &crate::time::format(now),
                &crate::time::format(stale),
            )
            .await?;
        let Claim::Claimed { previous } = claim else {
            info!(message_id = %job.message_id, "already claimed or finished; skipped");
            return Ok(Disposition::Done);
        };
        let message = *previous;
        let attempt = message.attempts + 1;
        let phone = self.pseudonyms.pseudonym(&message.to_e164);
        let span = info_span!("send", message_id = %message.message_id, phone = %phone, attempt);
        self.send_claimed(message, attempt, now)
            .instrument(span)
            .await
    }

    async fn send_claimed(
        &self,
        message: Message,
        attempt: u32,
        claimed_at: OffsetDateTime,
    ) -> Result<Disposition, crate::store::StoreError> {
        let now = || crate::time::now_rfc3339();
        if self
            .store
            .consent(&message.to_e164)
            .await?
            .is_some_and(|c| c.opted_out)
        {
            info!("recipient opted out before sending; canceled");
            self.store
                .finish_unsent(
                    &message,
                    DeliveryStatus::Canceled,
                    "opted_out",
                    "the recipient opted out",
                    &now(),
                )
                .await?;
            Metrics::new(FUNCTION).count("CanceledOptedOut", 1).emit();
            return Ok(Disposition::Done);
        }
        let secrets = self.secrets.current();
        let to = recipient(&message);

        // A previous attempt may have been accepted by Twilio without us hearing back.
        if message.ambiguous || message.status == "sending" {
            let since = message
                .claimed_at
                .as_deref()
                .and_then(|t| {
                    OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
                })
                .unwrap_or(claimed_at)
                - Duration::from_secs(5);
            match self
                .twilio
                .find_accepted(&secrets, &to, &message.body, since)
                .await
            {
                Ok(Some(found)) => {
                    info!("earlier attempt found at Twilio; recorded without sending again");
                    return self.record(&message, &found.sid, &found.status).await;
                }
                Ok(None) => info!("no earlier attempt at Twilio; sending"),
                Err(e) => return self.retry_or_fail(&message, attempt, &e).await,
            }
        }

        if let Some(limiter) = &self.limiter {
            limiter.acquire().await;
        }
        let request = CreateMessage {
            to: &to,
            body: &message.body,
            media_urls: &message.media_urls,
            status_callback: &self.config.status_callback_url,
        };
        match self.twilio.create(&secrets, &request).await {
            Ok(created) => self.record(&message, &created.sid, &created.status).await,
            Err(e) if e.failure() == Failure::Permanent => {
                let code = e.code();
                warn!(error_code = %code, "Twilio refused the message; failed without retry");
                self.store
                    .finish_unsent(
                        &message,
                        DeliveryStatus::Failed,
                        &code,
                        &e.message(),
                        &now(),
                    )
                    .await?;
                if matches!(
                    e,
                    TwilioError::Api {
                        code: Some(UNSUBSCRIBED),
                        ..
                    }
                ) {
                    self.store
                        .record_opt_out(
                            &message.to_e164,
                            "TWILIO_21610",
                            &message.message_id,
                            &now(),
                        )
                        .await?;
                }
                Metrics::new(FUNCTION)
                    .dimension("error_code", code)
                    .count("Failed", 1)
                    .emit();
                Ok(Disposition::Done)
            }
            Err(e) => self.retry_or_fail(&message, attempt, &e).await,
        }
    }

    async fn record(
        &self,
        message: &Message,
        sid: &str,
        status: &str,
    ) -> Result<Disposition, crate::store::StoreError> {
        let Ok(sid) = MessageSid::parse(sid) else {
            error!("Twilio returned a malformed SID");
            self.store.release(message, "malformed_sid", true).await?;
            return Ok(Disposition::Retry(Some(self.config.retry_base)));
        };
        self.store
            .record_submitted(
                message,
                &sid,
                DeliveryStatus::parse(status),
                &crate::time::now_rfc3339(),
            )
            .await?;
        info!(twilio_sid = %sid, "message submitted to Twilio");
        Metrics::new(FUNCTION).count("Sent", 1).emit();
        Ok(Disposition::Done)
    }

    async fn retry_or_fail(
        &self,
        message: &Message,
        attempt: u32,
        e: &TwilioError,
    ) -> Result<Disposition, crate::store::StoreError> {
        let code = e.code();
        let ambiguous = e.failure() == Failure::Ambiguous;
        if attempt >= self.config.max_attempts {
            warn!(error_code = %code, "retries exhausted; failed, and the job goes to the dead-letter queue");
            self.store
                .finish_unsent(
                    message,
                    DeliveryStatus::Failed,
                    &code,
                    &e.message(),
                    &crate::time::now_rfc3339(),
                )
                .await?;
            Metrics::new(FUNCTION)
                .dimension("error_code", code)
                .count("Failed", 1)
                .emit();
            // Visible again at once: the next receive exceeds maxReceiveCount and SQS redrives it.
            return Ok(Disposition::Retry(Some(Duration::ZERO)));
        }
        let delay = backoff(self.config.retry_base, self.config.retry_cap, attempt);
        warn!(error_code = %code, ambiguous, delay_ms = delay.as_millis() as u64, "transient failure; will retry");
        self.store.release(message, &code, ambiguous).await?;
        Metrics::new(FUNCTION).count("Retries", 1).emit();
        Ok(Disposition::Retry(Some(delay)))
    }

    async fn delay_visibility(&self, receipt_handle: &str, delay: Duration) {
        let seconds = delay.as_secs_f64().ceil() as i32;
        let result = self
            .sqs
            .change_message_visibility()
            .queue_url(&self.queue_url)
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
