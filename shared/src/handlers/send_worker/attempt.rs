//! One claimed message's attempt: reconcile an earlier attempt at Twilio if there may have been
//! one, wait for a send slot, call Twilio, and classify what came back. Twilio's acceptance is
//! recorded by the caller, for the whole batch at once.

use std::time::Duration;

use time::OffsetDateTime;
use tracing::{error, info, warn};

use super::{Disposition, SendWorker, FUNCTION};
use crate::breaker::Outcome;
use crate::delivery::DeliveryStatus;
use crate::metrics::Metrics;
use crate::pipeline::PipelineState;
use crate::store::{Message, StoreError};
use crate::twilio::client::{
    with_credentials, Attempted, CreateMessage, Failure, TwilioError, TwilioMessage,
};
use crate::twilio::MessageSid;

/// How much earlier than its claim an attempt's message may carry as `date_created`: Twilio's
/// timestamps have whole seconds, and its clock is not ours.
const RECONCILE_SKEW: Duration = Duration::from_secs(5);

/// Twilio's "unsubscribed recipient" error: also an opt-out.
const UNSUBSCRIBED: i64 = 21610;

pub(super) enum Attempt {
    /// Twilio has the message: to be recorded.
    Accepted {
        message: Box<Message>,
        sid: MessageSid,
        status: DeliveryStatus,
    },
    Settled(Disposition),
}

impl SendWorker {
    /// Sends a message claimed as `message` (its state before the claim).
    pub(super) async fn attempt(&self, message: Message) -> Attempt {
        let attempt = message.attempts + 1;
        match self.try_attempt(&message, attempt).await {
            Ok(Some((sid, status))) => Attempt::Accepted {
                message: Box::new(message),
                sid,
                status,
            },
            Ok(None) => Attempt::Settled(Disposition::Done),
            Err(Interrupted::Retry(delay)) => Attempt::Settled(Disposition::Retry(Some(delay))),
            Err(Interrupted::Unauthorized) => {
                // Not a delivery attempt: the message waits (requeued, not counted toward the
                // dead-letter queue) until the credentials are fixed, however long that takes.
                error!(
                    "Twilio refuses our credentials even after re-reading the secret; given back"
                );
                Metrics::new(FUNCTION).count("TwilioUnauthorized", 1).emit();
                let at_twilio = message.ambiguous || message.status == PipelineState::Sending;
                Attempt::Settled(
                    self.give_back(&message, "twilio_unauthorized", at_twilio)
                        .await,
                )
            }
            Err(Interrupted::Store { error, at_twilio }) => {
                error!(error = %crate::error::chain(&error), "the store failed mid-send");
                Attempt::Settled(self.give_back(&message, "store_error", at_twilio).await)
            }
        }
    }

    /// Cancels a claimed message whose recipient opted out after it was queued.
    pub(super) async fn cancel_opted_out(&self, message: Message) -> Disposition {
        info!("recipient opted out before sending; canceled");
        let result = self
            .store
            .finish_unsent(
                &message,
                DeliveryStatus::Canceled,
                "opted_out",
                "the recipient opted out",
                &self.clock.now().to_string(),
            )
            .await;
        match result {
            Ok(()) => {
                Metrics::new(FUNCTION).count("CanceledOptedOut", 1).emit();
                Disposition::Done
            }
            Err(e) => {
                error!(error = %crate::error::chain(&e), "could not cancel");
                self.give_back(&message, "store_error", false).await
            }
        }
    }

    /// Gives a claimed message back to the queue after the store failed mid-send: released to
    /// `queued` (marked ambiguous if Twilio may have it, so the next attempt looks first), and
    /// retried. If even that fails, the claim stands until its lease runs out: the job comes
    /// back after it, and the next worker takes the message over and looks at Twilio first.
    pub(super) async fn give_back(
        &self,
        message: &Message,
        reason: &str,
        at_twilio: bool,
    ) -> Disposition {
        let delay = self.config.retry_base;
        match self
            .store
            .release(message, reason, at_twilio, self.sweep_after(delay))
            .await
        {
            Ok(()) => Disposition::Requeue(delay),
            Err(e) => {
                error!(error = %crate::error::chain(&e), "could not release the claim; retried after the lease");
                Disposition::Requeue(self.config.claim_lease + Duration::from_secs(1))
            }
        }
    }

    /// The due-index minute for a message given back to the queue for `delay`: if its job is
    /// lost as well, the dispatcher's sweep enqueues it then.
    pub(super) fn sweep_after(&self, delay: Duration) -> crate::time::Timestamp {
        let now = self.clock.now();
        self.policy.sweep_minute(now.plus(delay), now)
    }

    /// `Ok(Some(..))`: accepted by Twilio, to record; `Ok(None)`: finished here.
    async fn try_attempt(
        &self,
        message: &Message,
        attempt: u32,
    ) -> Result<Option<(MessageSid, DeliveryStatus)>, Interrupted> {
        let to = &super::recipient(message);
        let (body, media_urls) = match self.opened(message).await {
            Ok(opened) => opened,
            Err(e) if e.unreadable() => {
                self.fail_unreadable(message).await?;
                return Ok(None);
            }
            Err(e) => return Err(Interrupted::not_at_twilio(e)),
        };
        let body = body.as_str();

        // A previous attempt may have been accepted by Twilio without us hearing back.
        if message.ambiguous || message.status == crate::pipeline::PipelineState::Sending {
            match self.earlier_attempt(message, to, body).await {
                Ok(Some(found)) => {
                    info!("earlier attempt found at Twilio; recorded without sending again");
                    return self.accepted(message, &found.sid, &found.status).await;
                }
                Ok(None) if message.status == crate::pipeline::PipelineState::Sending => {
                    // A claim taken over after its lease skipped the claim-time check.
                    if self.not_now_after_takeover(message).await? {
                        return Ok(None);
                    }
                    info!("no earlier attempt at Twilio; sending");
                }
                Ok(None) => info!("no earlier attempt at Twilio; sending"),
                Err(Lookup::Twilio(e)) if e.failure() == Failure::Unauthorized => {
                    return Err(Interrupted::Unauthorized)
                }
                Err(Lookup::Twilio(e)) => return self.retry_or_fail(message, attempt, &e).await,
                Err(Lookup::Store(e)) => return Err(Interrupted::not_at_twilio(e)),
            }
        }

        if let Some(limiter) = &self.limiter {
            limiter.acquire().await;
        }
        let status_callback = self
            .config
            .status_callback_for(&message.message_id, message.trace.as_ref());
        let request = &CreateMessage {
            to,
            body,
            media_urls: &media_urls,
            status_callback: &status_callback,
            trace: message.trace.as_ref(),
        };
        let created = with_credentials(&self.secrets, |secrets| async move {
            self.twilio.create(&secrets, request).await
        })
        .await;
        self.breaker.record(breaker_outcome(&created));
        match created {
            Ok(created) => self.accepted(message, &created.sid, &created.status).await,
            Err(e) if e.failure() == Failure::Unauthorized => Err(Interrupted::Unauthorized),
            Err(e) if e.failure() == Failure::Permanent => {
                self.fail_permanently(message, &e).await?;
                Ok(None)
            }
            Err(e) => self.retry_or_fail(message, attempt, &e).await,
        }
    }

    /// The message an earlier attempt of `message` left at Twilio, if one did: the oldest
    /// candidate (ours, same recipient and body, created since the attempt's claim; see
    /// [`is_candidate`](crate::twilio::client::is_candidate)) whose SID Parley has not
    /// recorded for another message. An identical text sent to the same number before, by
    /// Parley or by another message racing this one, is thereby never taken for this one's.
    async fn earlier_attempt(
        &self,
        message: &Message,
        to: &str,
        body: &str,
    ) -> Result<Option<TwilioMessage>, Lookup> {
        let since = message
            .claimed_at
            .map(crate::time::Timestamp::offset_date_time)
            .unwrap_or_else(OffsetDateTime::now_utc)
            - RECONCILE_SKEW;
        let attempted = Attempted { to, body, since };
        let candidates = with_credentials(&self.secrets, |secrets| async move {
            self.twilio.find_attempts(&secrets, &attempted).await
        })
        .await;
        self.breaker.record(breaker_outcome(&candidates));
        let candidates = candidates.map_err(Lookup::Twilio)?;
        for candidate in candidates {
            let Ok(sid) = MessageSid::parse(&candidate.sid) else {
                continue;
            };
            let guard = self.store.sid_guard(&sid).await.map_err(Lookup::Store)?;
            let recorded_for = guard.and_then(|g| g.message_id);
            match recorded_for {
                Some(id) if id != message.message_id => {
                    info!(twilio_sid = %sid, "a candidate at Twilio is another message's; skipped");
                }
                _ => return Ok(Some(candidate)),
            }
        }
        Ok(None)
    }

    /// For a message taken over from a dead worker and not at Twilio: defers or expires it
    /// when quiet hours or `not_after` say it may not go now. `Ok(true)` when it did.
    async fn not_now_after_takeover(&self, message: &Message) -> Result<bool, Interrupted> {
        let now = self.clock.now();
        let decision = self.policy.decide_for(now, message);
        // The message as our claim left it.
        let mut claimed = message.clone();
        claimed.version += 1;
        let Some(transition) = self.policy.hold(&claimed, decision, "worker", now) else {
            return Ok(false);
        };
        self.store
            .transition(&transition)
            .await
            .map_err(Interrupted::not_at_twilio)?;
        info!(status = %transition.to, "taken over, not sent now");
        Ok(true)
    }

    async fn accepted(
        &self,
        message: &Message,
        sid: &str,
        status: &str,
    ) -> Result<Option<(MessageSid, DeliveryStatus)>, Interrupted> {
        match MessageSid::parse(sid) {
            Ok(sid) => Ok(Some((sid, DeliveryStatus::parse(status)))),
            Err(_) => {
                error!("Twilio returned a malformed SID");
                self.store
                    .release(
                        message,
                        "malformed_sid",
                        true,
                        self.sweep_after(self.config.retry_base),
                    )
                    .await
                    .map_err(Interrupted::at_twilio)?;
                Err(Interrupted::Retry(self.config.retry_base))
            }
        }
    }

    /// The body and media URLs to send, opened.
    async fn opened(&self, message: &Message) -> Result<(String, Vec<String>), StoreError> {
        Ok((
            self.store.body_of(message).await?,
            self.store.media_of(message).await?,
        ))
    }

    /// A message whose sealed body no key opens can never be sent: failed, not retried.
    async fn fail_unreadable(&self, message: &Message) -> Result<(), Interrupted> {
        error!("the stored body cannot be opened; failed without sending");
        self.store
            .finish_unsent(
                message,
                DeliveryStatus::Failed,
                "body_unreadable",
                "the stored body could not be decrypted",
                &self.clock.now().to_string(),
            )
            .await
            .map_err(Interrupted::not_at_twilio)?;
        Metrics::new(FUNCTION)
            .dimension("error_code", "body_unreadable")
            .count("Failed", 1)
            .emit();
        Ok(())
    }

    async fn fail_permanently(
        &self,
        message: &Message,
        e: &TwilioError,
    ) -> Result<(), Interrupted> {
        let code = e.code();
        warn!(error_code = %code, "Twilio refused the message; failed without retry");
        let now = self.clock.now().to_string();
        // The opt-out first: once the message is failed nothing retries it, so an opt-out
        // written after could be lost; written before, a failure here retries the job, which
        // meets 21610 again and writes it then.
        if matches!(
            e,
            TwilioError::Api {
                code: Some(UNSUBSCRIBED),
                ..
            }
        ) {
            self.store
                .record_opt_out(&message.to_e164, "TWILIO_21610", &message.message_id, &now)
                .await
                .map_err(Interrupted::not_at_twilio)?;
        }
        self.store
            .finish_unsent(message, DeliveryStatus::Failed, &code, &e.message(), &now)
            .await
            .map_err(Interrupted::not_at_twilio)?;
        Metrics::new(FUNCTION)
            .dimension("error_code", code)
            .count("Failed", 1)
            .emit();
        Ok(())
    }

    async fn retry_or_fail(
        &self,
        message: &Message,
        attempt: u32,
        e: &TwilioError,
    ) -> Result<Option<(MessageSid, DeliveryStatus)>, Interrupted> {
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
                    &self.clock.now().to_string(),
                )
                .await
                .map_err(|error| Interrupted::Store {
                    error,
                    at_twilio: ambiguous,
                })?;
            Metrics::new(FUNCTION)
                .dimension("error_code", code)
                .count("Failed", 1)
                .emit();
            // Visible again at once: the next receive exceeds maxReceiveCount and SQS redrives it.
            // Only delivery attempts leave a job in place (faults requeue a fresh copy), so the
            // receive count is the attempt count.
            return Err(Interrupted::Retry(Duration::ZERO));
        }
        let delay = super::backoff(self.config.retry_base, self.config.retry_cap, attempt);
        warn!(error_code = %code, ambiguous, delay_ms = delay.as_millis() as u64, "transient failure; will retry");
        self.store
            .release(message, &code, ambiguous, self.sweep_after(delay))
            .await
            .map_err(|error| Interrupted::Store {
                error,
                at_twilio: ambiguous,
            })?;
        Metrics::new(FUNCTION).count("Retries", 1).emit();
        Err(Interrupted::Retry(delay))
    }
}

/// What a call's result says about Twilio, for the breaker (see [`TwilioError::is_outage`]).
fn breaker_outcome<T>(result: &Result<T, TwilioError>) -> Outcome {
    match result {
        Err(e) if e.is_outage() => Outcome::Failed,
        _ => Outcome::Answered,
    }
}

/// Why reconciliation could not tell whether an earlier attempt reached Twilio.
enum Lookup {
    Twilio(TwilioError),
    Store(StoreError),
}

/// Why an attempt ended without a result to record.
enum Interrupted {
    Retry(Duration),
    /// Twilio refused our credentials twice, the second time freshly read.
    Unauthorized,
    /// A store call failed after the claim; `at_twilio`: Twilio may have the message.
    Store {
        error: StoreError,
        at_twilio: bool,
    },
}

impl Interrupted {
    fn at_twilio(error: StoreError) -> Self {
        Self::Store {
            error,
            at_twilio: true,
        }
    }

    fn not_at_twilio(error: StoreError) -> Self {
        Self::Store {
            error,
            at_twilio: false,
        }
    }
}
