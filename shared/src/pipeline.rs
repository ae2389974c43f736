//! Parley's own state of a message, as opposed to Twilio's delivery status
//! ([`crate::delivery`]). Every change of state is a conditional write on the state it leaves
//! (and the message's `version`), so a dispatcher, a worker, a cancel and a STOP racing for one
//! message settle on exactly one outcome. docs/architecture.md draws the machine.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum PipelineState {
    /// An inbound message: stored, nothing left to do.
    Received,
    /// Outbound, waiting in the table for its time (released by the dispatcher).
    Scheduled,
    /// Outbound, moved out of the recipient's quiet hours (released by the dispatcher).
    Deferred,
    /// Outbound, a send job is (or should be) on the queue.
    Queued,
    /// Claimed by a worker that is calling Twilio.
    Sending,
    /// Twilio accepted it; delivery is Twilio's (`delivery_status`).
    Submitted,
    Failed,
    Canceled,
    /// Still unsent at its `not_after`: never sent late.
    Expired,
}

impl PipelineState {
    pub const ALL: [PipelineState; 9] = [
        Self::Received,
        Self::Scheduled,
        Self::Deferred,
        Self::Queued,
        Self::Sending,
        Self::Submitted,
        Self::Failed,
        Self::Canceled,
        Self::Expired,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Scheduled => "scheduled",
            Self::Deferred => "deferred",
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Submitted => "submitted",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }

    /// Accepted and not yet handed to a worker: what a cancel, a STOP or `not_after` may end.
    pub const fn is_pending(self) -> bool {
        matches!(self, Self::Scheduled | Self::Deferred | Self::Queued)
    }

    /// Nothing more will happen to it in Parley's pipeline.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            Self::Received | Self::Submitted | Self::Failed | Self::Canceled | Self::Expired
        )
    }

    /// Waiting in the table, not on the queue.
    pub const fn is_waiting(self) -> bool {
        matches!(self, Self::Scheduled | Self::Deferred)
    }
}

impl std::fmt::Display for PipelineState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::PipelineState::{self, *};

    #[test]
    fn serialized_as_the_strings_stored_today() {
        for state in PipelineState::ALL {
            let json = serde_json::to_value(state).unwrap();
            assert_eq!(json, serde_json::json!(state.as_str()));
            assert_eq!(PipelineState::parse(state.as_str()), Some(state));
        }
        assert_eq!(PipelineState::parse("Queued"), None);
    }

    #[test]
    fn every_state_is_pending_sending_or_final() {
        for state in PipelineState::ALL {
            let kinds = [state.is_pending(), state == Sending, state.is_final()];
            assert_eq!(kinds.iter().filter(|k| **k).count(), 1, "{state}");
        }
        assert!(Scheduled.is_waiting() && Deferred.is_waiting() && !Queued.is_waiting());
    }
}
