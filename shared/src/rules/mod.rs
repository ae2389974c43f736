//! Event rules: operator-defined answers to events ("when `invoice.overdue` happens, text the
//! tenant a reminder at 10:00 their time the next day, unless `payment.received` comes first").
//! A rule matches events with an EventBridge-style pattern, finds a recipient, renders a
//! template in the recipient's language, resolves when to send, and goes through the send use
//! case like every other message.

pub mod activity;
pub mod cache;
pub mod engine;
pub mod event;
pub mod ingest;
pub mod path;
pub mod pattern;
pub mod render;
pub mod rule;
pub mod timing;

use serde::{Deserialize, Serialize};

/// Why a rule made a message: kept on the message, on its events and in the rule's activity.
/// Its presence on an event is also the loop guard: no rule fires on an event a rule's
/// message caused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Cause {
    pub rule_id: String,
    pub rule_version: u32,
    pub event_id: String,
    pub source: String,
    pub detail_type: String,
    pub dedupe_key: String,
}
