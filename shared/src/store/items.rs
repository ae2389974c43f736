//! What the table holds, as typed items (mapped by serde_dynamo, never by hand).

use serde::{Deserialize, Serialize};

use crate::envelope::StoredText;

use super::keys::Entity;
use crate::delivery::DeliveryStatus;
use crate::language::Language;
use crate::phone::{Channel, E164};
use crate::pipeline::PipelineState;
use crate::time::Timestamp;

fn message_entity() -> Entity {
    Entity::Message
}

fn sid_guard_entity() -> Entity {
    Entity::SidGuard
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[serde(default = "message_entity")]
    pub entity: Entity,
    pub gsi1pk: String,
    pub gsi1sk: String,
    /// The pending-message index (see `keys::DUE_INDEX`): present only while the message is
    /// outbound and not final.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi2pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi2sk: Option<String>,
    pub message_id: String,
    pub direction: Direction,
    pub channel: Channel,
    /// Sealed when the store has an envelope: [`Store::body_of`](super::Store::body_of).
    pub body: StoredText,
    pub twilio_sid: Option<String>,
    pub account_sid: Option<String>,
    /// Inbound: the sender. Outbound: absent until Twilio reports the number it sent from.
    pub from_e164: Option<E164>,
    #[serde(default)]
    pub from_original: String,
    pub to_e164: E164,
    pub to_original: String,
    pub num_media: u32,
    #[serde(default)]
    pub media_urls: Vec<StoredText>,
    #[serde(default)]
    pub media_content_types: Vec<String>,
    pub language: Language,
    pub language_confidence: f64,
    pub keyword: Option<String>,
    /// Parley's pipeline state (Twilio's is `delivery_status`).
    pub status: PipelineState,
    /// Why it is in its state, when that needs saying: `quiet_hours` (deferred), `opted_out`,
    /// `api` (canceled), `not_after` (expired), `retry` (queued again after a failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// Bumped by every change of `status`: each transition is conditional on it.
    #[serde(default)]
    pub version: u64,
    pub created_at: Timestamp,
    /// Outbound: when it is due (resolved, UTC); absent for "now" sends written before
    /// scheduling existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_at: Option<Timestamp>,
    /// Still unsent at this instant: `expired`, never sent late.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Timestamp>,
    /// The zone(s) quiet hours are judged in (IANA names, comma-separated when the number's
    /// prefix spans several) and where they came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone_source: Option<crate::schedule::ZoneSource>,
    /// Bypasses quiet hours.
    #[serde(default)]
    pub urgent: bool,
    /// The webhook body exactly as Twilio sent it, for replay and audit.
    pub raw_payload: Option<StoredText>,
    /// Outbound: Twilio's status, moving only forward (see `delivery`).
    #[serde(default)]
    pub delivery_status: Option<DeliveryStatus>,
    #[serde(default)]
    pub status_history: Vec<StatusChange>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub claimed_at: Option<Timestamp>,
    /// How often the dispatcher's sweep has enqueued it again (its lost-job backoff).
    #[serde(default)]
    pub sweeps: u32,
    /// Set when a Twilio call timed out after it may have been accepted: the next attempt
    /// looks the message up at Twilio before sending again.
    #[serde(default)]
    pub ambiguous: bool,
    #[serde(default)]
    pub segments: Option<u32>,
    #[serde(default)]
    pub encoding: Option<String>,
    #[serde(default)]
    pub workflow_type: Option<String>,
    #[serde(default)]
    pub workflow_id: Option<String>,
    /// `status|error_code` of every status callback applied, so a duplicate changes nothing.
    /// A string set in the table (written by `ADD`), so never written as an empty list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub callbacks_seen: Vec<String>,
    /// Optimistic-concurrency version of the delivery status.
    #[serde(default)]
    pub status_version: u64,
    /// Outbound: the `IDEM#…` record the send was made under, so an erasure finds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_pk: Option<String>,
    /// Outbound, made by an event rule: which rule, version and event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<crate::rules::Cause>,
    /// Outbound, a re-send: the id of the failed message it sends again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resend_of: Option<String>,
    /// Outbound, failed and sent again: the id of the new message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resent_as: Option<String>,
    /// The X-Ray trace it was accepted (outbound) or received (inbound) in, written with it:
    /// the dispatcher, the worker, the status callback and the processor continue it.
    #[serde(
        default,
        deserialize_with = "crate::xray::lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub trace: Option<crate::xray::TraceHeader>,
}

/// One entry of a message's status history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusChange {
    pub status: String,
    pub at: String,
    #[serde(default)]
    pub error_code: Option<String>,
    /// `callback`, `worker` or `api`.
    pub source: String,
}

/// One conversation per channel and number; counters are only ever bumped atomically.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Conversation {
    pub conversation_id: String,
    pub channel: Channel,
    pub phone: E164,
    pub created_at: String,
    pub last_message_at: String,
    /// The latest activity of any kind, status callbacks included.
    #[serde(default)]
    pub last_activity_at: Option<String>,
    #[serde(default)]
    pub message_count: u64,
    #[serde(default)]
    pub inbound_count: u64,
    #[serde(default)]
    pub outbound_count: u64,
    pub language: Option<Language>,
    pub language_confidence: Option<f64>,
    pub tenant_id: Option<String>,
    /// The tenant's time zone (IANA) from the Collections Monitor, when it gives one: second
    /// in the precedence of quiet hours, after the request's own.
    #[serde(default)]
    pub tenant_time_zone: Option<String>,
    pub workflow_type: Option<String>,
    pub workflow_id: Option<String>,
    /// Inbound messages since an operator last read the thread.
    #[serde(default)]
    pub unread_count: u64,
    /// The ids of its outbound messages that are not final (scheduled, deferred, queued,
    /// sending), kept from the table's stream as a set so a replayed record changes nothing.
    #[serde(default)]
    pub pending_ids: Vec<String>,
    /// The number's consent, mirrored from its `CONSENT#` item for the inbox's filter.
    #[serde(default)]
    pub opted_out: bool,
}

/// `SID#{MessageSid}`: the idempotency guard of a Twilio message and its pointer to the message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SidGuard {
    pub pk: String,
    pub sk: String,
    #[serde(default = "sid_guard_entity")]
    pub entity: Entity,
    /// Absent while only parked status callbacks exist for this SID.
    pub message_pk: Option<String>,
    pub message_sk: Option<String>,
    pub message_id: Option<String>,
    pub direction: Option<Direction>,
    pub created_at: Option<String>,
    /// Status callbacks that arrived before the send worker recorded the SID.
    #[serde(default)]
    pub parked: Vec<ParkedCallback>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ParkedCallback {
    pub status: String,
    pub error_code: Option<String>,
    pub at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConsentChange {
    pub opted_out: bool,
    /// The matched keyword or phrase (`STOP`, `NO MAS MENSAJES`), or `TWILIO_21610`.
    pub keyword: String,
    pub at: String,
    pub message_id: String,
    /// The inbound message's Twilio SID, so its redelivery is recognised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twilio_sid: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Consent {
    pub phone: E164,
    pub opted_out: bool,
    pub keyword: String,
    pub updated_at: String,
    /// The latest changes, oldest first, at most `store::consent::HISTORY_CAP`.
    #[serde(default)]
    pub history: Vec<ConsentChange>,
    /// Bumped by every write; each write is conditional on it (0: written before versions).
    #[serde(default)]
    pub version: u64,
    /// The Twilio SID of the message that made the current state (or, for a change without
    /// one, its message id), so a redelivery of that message is recognised in a condition.
    #[serde(default)]
    pub changed_by: Option<String>,
}
