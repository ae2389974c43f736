//! Claiming a batch: read every message and its recipient's consent at once, decide what each
//! job needs, and claim the sendable ones in one transaction. A claim lost to another worker
//! cancels the transaction; the next round reads again, so each round settles at least one job.

use std::time::Duration;

use time::OffsetDateTime;
use tracing::{error, info, warn};

use super::{Disposition, SendWorker};
use crate::handlers::send_sms::SendJob;
use crate::store::{ClaimOrder, Message, MessageKey, TxError};

/// Rounds of read-and-claim before the jobs still contended are left for redelivery.
const CLAIM_ROUNDS: usize = 3;

/// What became of one job.
pub(super) enum Claimed {
    /// Ours to send; the message as it was before the claim.
    Ours(Message),
    /// Ours to cancel: the recipient opted out after the message was queued.
    OptedOut(Message),
    Settled(Disposition),
}

/// Where a message stands, as read.
enum Standing {
    /// Queued, or claimed by a worker whose lease ran out: ours to take.
    Claimable,
    /// A live claim: another worker is sending it, or a failure of ours left it claimed.
    /// Never skipped: the job comes back when the lease has run out.
    Leased { remaining: Duration },
    /// Submitted, failed or canceled.
    Finished,
}

fn standing(message: &Message, now: OffsetDateTime, lease: Duration) -> Standing {
    match message.status.as_str() {
        "queued" => Standing::Claimable,
        "sending" => {
            let claimed = message.claimed_at.as_deref().and_then(crate::time::parse);
            let expires = claimed.map_or(now, |at| at + lease);
            if expires <= now {
                Standing::Claimable
            } else {
                Standing::Leased {
                    remaining: (expires - now).unsigned_abs(),
                }
            }
        }
        _ => Standing::Finished,
    }
}

impl SendWorker {
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
            let now = OffsetDateTime::now_utc();
            let mut orders = Vec::new();
            for (i, key) in pending.into_iter().zip(&keys) {
                let Some(message) = state.messages.get(key) else {
                    error!(message_id = %jobs[i].message_id, "job for a message that does not exist; dropped");
                    results[i] = Some(Claimed::Settled(Disposition::Done));
                    continue;
                };
                match standing(message, now, self.config.claim_lease) {
                    Standing::Claimable => orders.push((i, message, state.opted_out(message))),
                    Standing::Leased { remaining } => {
                        info!(message_id = %message.message_id, "claimed elsewhere; retried when the claim expires");
                        // A second past the lease, so the claim has surely expired by then.
                        let delay = remaining + Duration::from_secs(1);
                        results[i] = Some(Claimed::Settled(Disposition::Retry(Some(delay))));
                    }
                    Standing::Finished => {
                        info!(message_id = %message.message_id, "already sent or finished; skipped");
                        results[i] = Some(Claimed::Settled(Disposition::Done));
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
            let stale = now - self.config.claim_lease;
            let result = self
                .store
                .claim_batch(
                    &claims,
                    &crate::time::format(now),
                    &crate::time::format(stale),
                )
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
        let retry = self.config.retry_base;
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    warn!("not claimed; retried");
                    Claimed::Settled(Disposition::Retry(Some(retry)))
                })
            })
            .collect()
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
        m.claimed_at = claimed_at.map(str::to_owned);
        m
    }

    #[test]
    fn a_live_claim_is_waited_out_and_a_stale_one_taken_over() {
        let now = OffsetDateTime::parse(
            "2026-11-22T10:01:00Z",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let lease = Duration::from_secs(60);
        assert!(matches!(
            standing(&message("queued", None), now, lease),
            Standing::Claimable
        ));
        assert!(matches!(
            standing(
                &message("sending", Some("2026-11-22T10:00:00Z")),
                now,
                lease
            ),
            Standing::Claimable
        ));
        match standing(
            &message("sending", Some("2026-11-22T10:00:45Z")),
            now,
            lease,
        ) {
            Standing::Leased { remaining } => assert_eq!(remaining, Duration::from_secs(45)),
            _ => panic!("a claim 15 s old is live"),
        }
        for done in ["submitted", "failed", "canceled"] {
            assert!(matches!(
                standing(&message(done, None), now, lease),
                Standing::Finished
            ));
        }
    }
}
