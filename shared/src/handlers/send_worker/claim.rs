//! Claiming a batch: read every message and its recipient's consent at once, decide what each
//! job needs, and claim the sendable ones in one transaction. A claim lost to another worker
//! cancels the transaction; the next round reads again, so each round settles at least one job.
//! Quiet hours and `not_after` are decided here, authoritatively, just before the claim: a
//! queued message that may not go now is deferred (or expired) instead of claimed.

use std::time::Duration;

use tracing::{error, info, warn};

use super::{Disposition, SendWorker};
use crate::pending::Decision;
use crate::pipeline::PipelineState;
use crate::queue::SendJob;
use crate::store::{ClaimOrder, Message, MessageKey, TxError};
use crate::time::Timestamp;
use crate::twilio::MessageSid;

/// Rounds of read-and-claim before the jobs still contended are left for redelivery.
const CLAIM_ROUNDS: usize = 3;
/// How early a job may find its message and still send it (clock skew between functions).
const EARLY_TOLERANCE: Duration = Duration::from_secs(1);

/// What became of one job.
pub(super) enum Claimed {
    /// Ours to send; the message as it was before the claim.
    Ours(Message),
    /// Ours to cancel: the recipient opted out after the message was queued.
    OptedOut(Message),
    Settled(Disposition),
}

/// Where a message stands, as read.
#[derive(Debug)]
enum Standing {
    /// Queued, or claimed by a worker whose lease ran out: ours to take.
    Claimable,
    /// Queued, but it may not go now: deferred out of quiet hours, or expired.
    NotNow(Decision),
    /// Queued and due later: its job came early.
    Early { delay: Duration },
    /// A live claim: another worker is sending it, or a failure of ours left it claimed.
    /// Never skipped: the job comes back when the lease has run out.
    Leased { remaining: Duration },
    /// Waiting in the table (the dispatcher releases it), or finished.
    Finished,
}

fn standing(
    message: &Message,
    now: Timestamp,
    lease: Duration,
    policy: &crate::pending::Policy,
) -> Standing {
    match message.status {
        PipelineState::Queued => {
            match policy.decide_for(now, message) {
                // Due (a second of clock skew allowed): ours to send.
                Decision::Queue { delay, .. } if delay <= EARLY_TOLERANCE => Standing::Claimable,
                // A job that came early (SQS is the only thing that delays it): back on the
                // queue until the message's time, never sent early.
                Decision::Queue { delay, .. } => Standing::Early { delay },
                other => Standing::NotNow(other),
            }
        }
        PipelineState::Sending => {
            let claimed = message.claimed_at;
            let expires = claimed.map_or(now, |at| at.plus(lease));
            if expires <= now {
                Standing::Claimable
            } else {
                Standing::Leased {
                    remaining: now.until(expires),
                }
            }
        }
        _ => Standing::Finished,
    }
}

impl SendWorker {
    /// The job of a message already submitted: a redelivery, or the job of a worker that
    /// stopped after recording the SID and before merging the callbacks parked on it. The
    /// merge is idempotent (`Store::merge_parked`), so it is run again here, as by every later
    /// status; if the store fails, the job comes back to try again.
    async fn finish_recording(&self, message: &Message) -> Disposition {
        let sid = message
            .twilio_sid
            .as_deref()
            .filter(|_| message.status == PipelineState::Submitted)
            .and_then(|sid| MessageSid::parse(sid).ok());
        let Some(sid) = sid else {
            return Disposition::Done;
        };
        match self.store.merge_parked(&sid).await {
            Ok(()) => Disposition::Done,
            Err(e) => {
                warn!(message_id = %message.message_id, error = %crate::error::chain(&e), "could not merge parked callbacks; retried");
                Disposition::Requeue(self.config.retry_base)
            }
        }
    }

    /// Claims what it can of `jobs` (distinct messages); one result per job, in order.
    pub(super) async fn claim(&self, jobs: &[&SendJob]) -> Vec<Claimed> {
        let mut results: Vec<Option<Claimed>> = jobs.iter().map(|_| None).collect();
        for _ in 0..CLAIM_ROUNDS {
            let pending: Vec<usize> = (0..jobs.len()).filter(|i| results[*i].is_none()).collect();
            if pending.is_empty() {
                break;
            }
            let keys: Vec<MessageKey> = pending
                .iter()
                .map(|i| (jobs[*i].pk.clone(), jobs[*i].sk.clone()))
                .collect();
            let state = match self.store.read_for_sending(&keys).await {
                Ok(state) => state,
                Err(e) => {
                    error!(error = %crate::error::chain(&e), "could not read the batch; retried");
                    break;
                }
            };
            let now = self.clock.now();
            let mut orders = Vec::new();
            for (i, key) in pending.into_iter().zip(&keys) {
                if state.unreadable(key) {
                    // Only this job fails (counted: after the queue's maxReceiveCount it is in
                    // the dead-letter queue, whose alarm calls someone); its batch goes on.
                    results[i] = Some(Claimed::Settled(Disposition::Retry(None)));
                    continue;
                }
                let Some(message) = state.messages.get(key) else {
                    error!(message_id = %jobs[i].message_id, "job for a message that does not exist; dropped");
                    results[i] = Some(Claimed::Settled(Disposition::Done));
                    continue;
                };
                let opted_out = state.opted_out(message);
                match standing(message, now, self.config.claim_lease, &self.policy) {
                    Standing::Claimable => orders.push((i, message, opted_out)),
                    // Cancel rather than defer: nothing is ever sent to an opted-out number.
                    Standing::NotNow(_) if opted_out => orders.push((i, message, true)),
                    Standing::NotNow(decision) => {
                        results[i] = self.not_now(message, decision, now).await;
                    }
                    Standing::Early { delay } => {
                        info!(message_id = %message.message_id, delay_ms = delay.as_millis() as u64, "job came early; back on the queue until its time");
                        results[i] = Some(Claimed::Settled(Disposition::Requeue(delay)));
                    }
                    Standing::Leased { remaining } => {
                        info!(message_id = %message.message_id, "claimed elsewhere; retried when the claim expires");
                        // A second past the lease, so the claim has surely expired by then.
                        let delay = remaining + Duration::from_secs(1);
                        results[i] = Some(Claimed::Settled(Disposition::Requeue(delay)));
                    }
                    Standing::Finished => {
                        info!(message_id = %message.message_id, status = %message.status, "not queued; skipped");
                        results[i] = Some(Claimed::Settled(self.finish_recording(message).await));
                    }
                }
            }
            if orders.is_empty() {
                break;
            }
            let claims: Vec<ClaimOrder> = orders
                .iter()
                .map(|(_, message, opted_out)| ClaimOrder {
                    message,
                    require_consent: !opted_out,
                })
                .collect();
            let stale = now.minus(self.config.claim_lease);
            let sweep = self
                .policy
                .sweep_minute(now.plus(self.config.claim_lease), now);
            let result = self
                .store
                .claim_batch(&claims, &now.to_string(), &stale.to_string(), sweep)
                .await;
            match result {
                Ok(()) => {
                    for (i, message, opted_out) in orders {
                        let message = message.clone();
                        results[i] = Some(if opted_out {
                            Claimed::OptedOut(message)
                        } else {
                            Claimed::Ours(message)
                        });
                    }
                }
                // Someone claimed one of them, or a recipient opted out, since the read.
                Err(TxError::ConditionFailed(_)) => continue,
                // If the claim was applied and only its answer lost, the messages stay claimed
                // for one lease; their jobs come back and wait it out (see `Standing::Leased`).
                Err(TxError::Failed(e)) => {
                    error!(error = %crate::error::chain(&e), "could not claim the batch; retried");
                    break;
                }
            }
        }
        // Store faults and lost races are not delivery attempts: a fresh copy of the job, so
        // they never count toward the dead-letter queue.
        let retry = self.config.retry_base;
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    warn!("not claimed; retried");
                    Claimed::Settled(Disposition::Requeue(retry))
                })
            })
            .collect()
    }

    /// A queued message that may not be sent now: deferred to its next allowed time, or
    /// expired. `None` when it changed since the read (the next round reads it again).
    async fn not_now(
        &self,
        message: &Message,
        decision: Decision,
        now: Timestamp,
    ) -> Option<Claimed> {
        let transition = self.policy.hold(message, decision, "worker", now)?;
        match self.store.transition(&transition).await {
            Ok(true) => {
                info!(message_id = %message.message_id, status = %transition.to, send_at = ?transition.send_at, "not sent now");
                crate::metrics::Metrics::new(super::FUNCTION)
                    .count(
                        if transition.to == PipelineState::Expired {
                            "Expired"
                        } else {
                            "Deferred"
                        },
                        1,
                    )
                    .emit();
                Some(Claimed::Settled(Disposition::Done))
            }
            Ok(false) => None,
            Err(e) => {
                error!(error = %crate::error::chain(&e), "could not defer; retried");
                Some(Claimed::Settled(Disposition::Requeue(
                    self.config.retry_base,
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(status: &str, claimed_at: Option<&str>) -> Message {
        let mut m: Message = serde_json::from_value(serde_json::json!({
            "pk": "CONV#sms#+14155552671", "sk": "MSG#1", "gsi1pk": "MSG#1", "gsi1sk": "MSG",
            "message_id": "1", "direction": "outbound", "channel": "sms", "body": "hi",
            "from_original": "", "to_e164": "+14155552671", "to_original": "+14155552671",
            "num_media": 0, "language": "unknown", "language_confidence": 0.0,
            "status": status, "created_at": "2026-11-22T10:00:00Z"
        }))
        .unwrap();
        m.claimed_at = claimed_at.and_then(Timestamp::parse);
        m
    }

    #[test]
    fn a_live_claim_is_waited_out_and_a_stale_one_taken_over() {
        let now = Timestamp::parse("2026-11-22T10:01:00Z").unwrap();
        // Quiet hours never close, so only the claim decides.
        let policy = crate::pending::Policy::always_open();
        let lease = Duration::from_secs(60);
        assert!(matches!(
            standing(&message("queued", None), now, lease, &policy),
            Standing::Claimable
        ));
        assert!(matches!(
            standing(
                &message("sending", Some("2026-11-22T10:00:00Z")),
                now,
                lease,
                &policy
            ),
            Standing::Claimable
        ));
        match standing(
            &message("sending", Some("2026-11-22T10:00:45Z")),
            now,
            lease,
            &policy,
        ) {
            Standing::Leased { remaining } => assert_eq!(remaining, Duration::from_secs(45)),
            _ => panic!("a claim 15 s old is live"),
        }
        // A queued message due in the recipient's night is deferred, not claimed.
        let night = crate::pending::Policy::default();
        let mut late = message("queued", None);
        late.time_zone = Some("America/Los_Angeles".into());
        assert!(matches!(
            standing(&late, now, lease, &night),
            Standing::NotNow(crate::pending::Decision::Wait { .. })
        ));
        for done in ["submitted", "failed", "canceled", "scheduled", "deferred"] {
            assert!(matches!(
                standing(&message(done, None), now, lease, &policy),
                Standing::Finished
            ));
        }
    }
}
