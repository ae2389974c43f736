//! What a rule did with each event it matched: one entry per firing, listed by
//! `GET /rules/{id}/activity`. Entries name messages by id and never hold a phone number or
//! a rendered body.

use serde::{Deserialize, Serialize};

use crate::pipeline::PipelineState;
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A message was accepted (`state` says queued, scheduled or deferred).
    Scheduled,
    /// The business key already made a message (a producer retry, a second event).
    Deduplicated,
    /// A `cancel_on` event canceled the pending message of its key.
    Canceled,
    /// A `cancel_on` event came when the message was already sent, or before any message.
    CancelTooLate,
    Capped,
    /// Shadow mode: what would have been sent, and nothing sent.
    Shadow,
    RecipientUnresolved,
    TemplateFailed,
    /// The event lacks what `timing` points at, or quiet hours push it past `not_after`.
    TimingFailed,
    OptedOut,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Deduplicated => "deduplicated",
            Self::Canceled => "canceled",
            Self::CancelTooLate => "cancel_too_late",
            Self::Capped => "capped",
            Self::Shadow => "shadow",
            Self::RecipientUnresolved => "recipient_unresolved",
            Self::TemplateFailed => "template_failed",
            Self::TimingFailed => "timing_failed",
            Self::OptedOut => "opted_out",
        }
    }
}

/// One firing of a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Activity {
    pub rule_id: String,
    pub rule_version: u32,
    /// When the router processed it.
    pub at: Timestamp,
    /// When the event happened: entries are listed by it, and a redelivered event's entry
    /// (same event, same outcome) replaces the first instead of listing twice.
    pub event_time: Timestamp,
    pub event_id: String,
    pub source: String,
    pub detail_type: String,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The message's first state, for `scheduled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<PipelineState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_at: Option<Timestamp>,
    /// Why, for the failures (never the rendered text or a number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
