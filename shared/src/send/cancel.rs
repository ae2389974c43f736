//! Ending pending messages before they are sent: one by id (the API), or all of a number's
//! when it opts out. Each is the conditional transition `scheduled|deferred|queued →
//! canceled` on the state and version read, so against a dispatcher's release or a worker's
//! claim exactly one wins: a message is sent or canceled, never both.

use crate::delivery::DeliveryStatus;
use crate::phone::E164;
use crate::pipeline::PipelineState;
use crate::store::{IndexChange, Message, Store, StoreError, Transition};
use crate::time::Timestamp;

/// Rounds of read-and-write before a message that keeps changing is reported as contended.
const ROUNDS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("no message has this id")]
    NotFound,
    #[error("the message is {0} and can no longer be canceled")]
    NotCancelable(PipelineState),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a message was canceled, as recorded in `status_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// `POST /messages/{id}/cancel`.
    Api,
    /// The recipient opted out (a STOP keyword or Twilio's 21610).
    OptedOut,
    /// The recipient's data is being erased (`DELETE /contacts/{phone}`).
    Erased,
    /// An event rule's `cancel_on` event (a payment cancels the overdue reminder).
    Event,
}

impl CancelReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::OptedOut => "opted_out",
            Self::Erased => "erased",
            Self::Event => "event",
        }
    }
}

fn cancel_transition(m: &Message, reason: CancelReason, now: Timestamp) -> Transition<'_> {
    Transition {
        message: m,
        to: PipelineState::Canceled,
        reason: Some(reason.as_str()),
        index: IndexChange::Remove,
        send_at: None,
        delivery_status: Some(DeliveryStatus::Canceled),
        source: reason.as_str(),
        swept: false,
        now,
    }
}

/// Cancels one message by id; canceling a canceled message again is not an error.
pub async fn cancel(
    store: &Store,
    message_id: &str,
    reason: CancelReason,
    now: Timestamp,
) -> Result<Message, CancelError> {
    for _ in 0..ROUNDS {
        let Some(message) = store.message_by_id(message_id).await? else {
            return Err(CancelError::NotFound);
        };
        if message.status == PipelineState::Canceled {
            return Ok(message);
        }
        if !message.status.is_pending() {
            return Err(CancelError::NotCancelable(message.status));
        }
        if store
            .transition(&cancel_transition(&message, reason, now))
            .await?
        {
            return store
                .message(&message.pk, &message.sk)
                .await?
                .ok_or(CancelError::NotFound);
        }
    }
    Err(CancelError::Store(StoreError::Cancelled {
        operation: "TransactWriteItems",
        reasons: "the message kept changing".into(),
    }))
}

/// Cancels every pending message to `phone` (on every channel) accepted at or before
/// `accepted_by`; returns how many. The opt-out is processed after it happened: a message
/// accepted later (after the recipient texted START again) is not the opt-out's to cancel.
pub async fn cancel_pending_to(
    store: &Store,
    phone: &E164,
    reason: CancelReason,
    accepted_by: Timestamp,
    now: Timestamp,
) -> Result<usize, StoreError> {
    let mut canceled = 0;
    for _ in 0..ROUNDS {
        let mut pending = store.pending_to(phone).await?;
        pending.retain(|m| m.created_at <= accepted_by);
        if pending.is_empty() {
            break;
        }
        let transitions: Vec<Transition> = pending
            .iter()
            .map(|m| cancel_transition(m, reason, now))
            .collect();
        let applied = store.transitions(&transitions).await?;
        let done = applied.iter().filter(|a| **a).count();
        canceled += done;
        if done == applied.len() {
            break;
        }
        // Some changed since the read (released, claimed): read again; a claimed one is no
        // longer pending, and its claim's consent check stops the send.
    }
    Ok(canceled)
}
