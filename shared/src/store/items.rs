//! What the table holds, as typed items (mapped by serde_dynamo, never by hand).

use serde::{Deserialize, Serialize};

use crate::language::Language;
use crate::phone::{Channel, E164};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

/// A message, inbound or outbound, in its conversation's partition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    pub pk: String,
    pub sk: String,
    pub gsi1pk: String,
    pub gsi1sk: String,
    pub message_id: String,
    pub direction: Direction,
    pub channel: Channel,
    pub body: String,
    pub twilio_sid: Option<String>,
    pub account_sid: Option<String>,
    pub from_e164: E164,
    pub from_original: String,
    pub to_e164: E164,
    pub to_original: String,
    pub num_media: u32,
    #[serde(default)]
    pub media_urls: Vec<String>,
    #[serde(default)]
    pub media_content_types: Vec<String>,
    pub language: Language,
    pub language_confidence: f64,
    pub keyword: Option<String>,
    pub status: String,
    pub created_at: String,
    /// The webhook body exactly as Twilio sent it, for replay and audit.
    pub raw_payload: Option<String>,
}

/// One conversation per channel and number; counters are only ever bumped atomically.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Conversation {
    pub conversation_id: String,
    pub channel: Channel,
    pub phone: E164,
    pub created_at: String,
    pub last_message_at: String,
    #[serde(default)]
    pub message_count: u64,
    #[serde(default)]
    pub inbound_count: u64,
    #[serde(default)]
    pub outbound_count: u64,
    pub language: Option<Language>,
    pub language_confidence: Option<f64>,
    pub tenant_id: Option<String>,
    pub workflow_type: Option<String>,
    pub workflow_id: Option<String>,
}

/// `SID#{MessageSid}`: the idempotency guard of a Twilio message and its pointer to the message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SidGuard {
    pub pk: String,
    pub sk: String,
    pub message_pk: String,
    pub message_sk: String,
    pub message_id: String,
    pub direction: Direction,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConsentChange {
    pub opted_out: bool,
    pub keyword: String,
    pub at: String,
    pub message_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Consent {
    pub phone: E164,
    pub opted_out: bool,
    pub keyword: String,
    pub updated_at: String,
    #[serde(default)]
    pub history: Vec<ConsentChange>,
}
