//! Domain events on Parley's EventBridge bus, as typed structs: one per detail-type, each
//! with the envelope every event shares (`event_id`, `version`, `occurred_at`). They write
//! exactly the `detail` documented in docs/events.md and validated by docs/events.schema.json
//! (a test holds the three together). Delivery is at least once; every event carries a stable
//! `event_id` in its detail for consumers to dedupe on.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::consent::Keyword;
use crate::delivery::DeliveryStatus;
use crate::language::Language;
use crate::phone::{Channel, E164};
use crate::pipeline::PipelineState;
use crate::rules::Cause;
use crate::time::Timestamp;

#[cfg(test)]
mod schema_tests;

pub const SOURCE: &str = "parley";
/// The version of every detail this code writes. Additive changes keep it; breaking ones
/// bump it (docs/events.md).
pub const SCHEMA_VERSION: &str = "1";

/// A detail-type: its name on the bus and what makes one of its facts unique.
pub trait Detail: Serialize + DeserializeOwned {
    const DETAIL_TYPE: &'static str;

    /// What follows `{detail-type}/` in the event's id: the same for every redelivery of
    /// the same fact.
    fn fact_key(&self, occurred_at: Timestamp) -> String;
}

/// One event's `detail`: the envelope, then the fields of its detail-type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event<D> {
    /// `{detail-type}/{fact}`: stable across redeliveries.
    pub event_id: String,
    pub version: String,
    pub occurred_at: Timestamp,
    #[serde(flatten)]
    pub detail: D,
}

impl<D: Detail> Event<D> {
    pub fn new(occurred_at: Timestamp, detail: D) -> Self {
        Self {
            event_id: format!("{}/{}", D::DETAIL_TYPE, detail.fact_key(occurred_at)),
            version: SCHEMA_VERSION.to_owned(),
            occurred_at,
            detail,
        }
    }
}

/// `sms.received`: an inbound message from a known tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmsReceived {
    pub message_id: String,
    pub conversation_id: String,
    pub tenant_id: String,
    pub channel: Channel,
    pub from: E164,
    pub to: E164,
    /// The text and media, only with `EVENT_BODIES=include`; absent (not null) otherwise.
    #[serde(flatten)]
    pub content: Option<Content>,
    pub media_count: usize,
    /// Whether `content` is there: a consumer without it reads `GET /messages/{id}`.
    pub body_included: bool,
    pub language: Language,
    pub language_confidence: f64,
    pub keyword: Option<Keyword>,
    pub workflow_type: Option<String>,
    pub workflow_id: Option<String>,
}

/// What people wrote, on `sms.received` only when the deployment asks for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Content {
    pub body: String,
    pub media_urls: Vec<String>,
}

impl Detail for SmsReceived {
    const DETAIL_TYPE: &'static str = "sms.received";

    fn fact_key(&self, _: Timestamp) -> String {
        self.message_id.clone()
    }
}

/// `sms.status_changed`: an outbound message's status moved forward, or Parley ended it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmsStatusChanged {
    pub message_id: String,
    pub tenant_id: Option<String>,
    pub twilio_sid: Option<String>,
    pub status: Status,
    /// Parley's pipeline state after the change.
    pub state: PipelineState,
    /// Why Parley ended it (`api`, `opted_out`, `not_after`), when it says.
    pub reason: Option<String>,
    pub previous_status: Option<Status>,
    pub error_code: Option<String>,
    pub workflow_type: Option<String>,
    pub workflow_id: Option<String>,
    /// The rule that made the message, if one did: the loop guard (no rule fires on an
    /// event with a cause).
    pub cause: Option<Cause>,
}

impl Detail for SmsStatusChanged {
    const DETAIL_TYPE: &'static str = "sms.status_changed";

    fn fact_key(&self, _: Timestamp) -> String {
        format!("{}/{}", self.message_id, self.status.as_str())
    }
}

/// What `sms.opted_out` and `sms.opted_in` say about a number's consent change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentDetail {
    pub phone_number: E164,
    pub tenant_id: Option<String>,
    /// The keyword or phrase matched (`STOP`, `NO MAS MENSAJES`), or `TWILIO_21610`.
    pub keyword: String,
    /// The message that changed it.
    pub message_id: Option<String>,
}

impl ConsentDetail {
    /// The message that changed it, else the instant of the change.
    fn fact_key(&self, occurred_at: Timestamp) -> String {
        self.message_id
            .clone()
            .unwrap_or_else(|| occurred_at.to_string())
    }
}

/// `sms.opted_out`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SmsOptedOut(pub ConsentDetail);

/// `sms.opted_in`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SmsOptedIn(pub ConsentDetail);

impl Detail for SmsOptedOut {
    const DETAIL_TYPE: &'static str = "sms.opted_out";

    fn fact_key(&self, occurred_at: Timestamp) -> String {
        self.0.fact_key(occurred_at)
    }
}

impl Detail for SmsOptedIn {
    const DETAIL_TYPE: &'static str = "sms.opted_in";

    fn fact_key(&self, occurred_at: Timestamp) -> String {
        self.0.fact_key(occurred_at)
    }
}

/// A status as `sms.status_changed` publishes it: Twilio's statuses Parley ranks, and
/// `expired`, Parley's own end for a message Twilio never saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Accepted,
    Scheduled,
    Queued,
    Sending,
    Sent,
    Delivered,
    Read,
    Failed,
    Undelivered,
    Canceled,
    Expired,
}

impl Status {
    pub const ALL: [Status; 11] = [
        Self::Accepted,
        Self::Scheduled,
        Self::Queued,
        Self::Sending,
        Self::Sent,
        Self::Delivered,
        Self::Read,
        Self::Failed,
        Self::Undelivered,
        Self::Canceled,
        Self::Expired,
    ];

    /// Twilio's status as published; `None` for one this version does not know (never
    /// published). Exhaustive, so a new delivery status must be given its published name.
    pub fn from_delivery(status: DeliveryStatus) -> Option<Self> {
        Some(match status {
            DeliveryStatus::Accepted => Self::Accepted,
            DeliveryStatus::Scheduled => Self::Scheduled,
            DeliveryStatus::Queued => Self::Queued,
            DeliveryStatus::Sending => Self::Sending,
            DeliveryStatus::Sent => Self::Sent,
            DeliveryStatus::Delivered => Self::Delivered,
            DeliveryStatus::Read => Self::Read,
            DeliveryStatus::Failed => Self::Failed,
            DeliveryStatus::Undelivered => Self::Undelivered,
            DeliveryStatus::Canceled => Self::Canceled,
            DeliveryStatus::Unknown => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Scheduled => "scheduled",
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
            Self::Undelivered => "undelivered",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
        }
    }
}

/// Any event Parley publishes.
#[derive(Debug, Clone, PartialEq)]
pub enum DomainEvent {
    Received(Event<SmsReceived>),
    StatusChanged(Event<SmsStatusChanged>),
    OptedOut(Event<SmsOptedOut>),
    OptedIn(Event<SmsOptedIn>),
}

macro_rules! domain_event_from {
    ($($variant:ident($detail:ty)),*) => {$(
        impl From<Event<$detail>> for DomainEvent {
            fn from(event: Event<$detail>) -> Self {
                Self::$variant(event)
            }
        }
    )*};
}

domain_event_from!(
    Received(SmsReceived),
    StatusChanged(SmsStatusChanged),
    OptedOut(SmsOptedOut),
    OptedIn(SmsOptedIn)
);

/// The detail-types Parley publishes, in the order docs/events.md lists them.
pub const DETAIL_TYPES: [&str; 4] = [
    SmsReceived::DETAIL_TYPE,
    SmsStatusChanged::DETAIL_TYPE,
    SmsOptedOut::DETAIL_TYPE,
    SmsOptedIn::DETAIL_TYPE,
];

impl DomainEvent {
    pub fn detail_type(&self) -> &'static str {
        match self {
            Self::Received(_) => SmsReceived::DETAIL_TYPE,
            Self::StatusChanged(_) => SmsStatusChanged::DETAIL_TYPE,
            Self::OptedOut(_) => SmsOptedOut::DETAIL_TYPE,
            Self::OptedIn(_) => SmsOptedIn::DETAIL_TYPE,
        }
    }

    pub fn event_id(&self) -> &str {
        match self {
            Self::Received(e) => &e.event_id,
            Self::StatusChanged(e) => &e.event_id,
            Self::OptedOut(e) => &e.event_id,
            Self::OptedIn(e) => &e.event_id,
        }
    }

    /// The rule whose message this event is about, if any. A rule never fires on an event
    /// with a cause: that is what keeps rules from answering their own messages forever.
    pub fn cause(&self) -> Option<&Cause> {
        match self {
            Self::StatusChanged(e) => e.detail.cause.as_ref(),
            Self::Received(_) | Self::OptedOut(_) | Self::OptedIn(_) => None,
        }
    }

    /// The `detail` as it goes on the bus.
    pub fn detail_json(&self) -> Result<String, serde_json::Error> {
        match self {
            Self::Received(e) => serde_json::to_string(e),
            Self::StatusChanged(e) => serde_json::to_string(e),
            Self::OptedOut(e) => serde_json::to_string(e),
            Self::OptedIn(e) => serde_json::to_string(e),
        }
    }

    /// An event read back from the bus: its `detail-type` and `detail`.
    pub fn parse(detail_type: &str, detail: &str) -> Result<Self, ParseError> {
        let event = match detail_type {
            SmsReceived::DETAIL_TYPE => Self::Received(serde_json::from_str(detail)?),
            SmsStatusChanged::DETAIL_TYPE => Self::StatusChanged(serde_json::from_str(detail)?),
            SmsOptedOut::DETAIL_TYPE => Self::OptedOut(serde_json::from_str(detail)?),
            SmsOptedIn::DETAIL_TYPE => Self::OptedIn(serde_json::from_str(detail)?),
            _ => return Err(ParseError::DetailType(detail_type.to_owned())),
        };
        Ok(event)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("not a Parley detail-type: {0}")]
    DetailType(String),
    #[error("the detail does not have its detail-type's shape")]
    Shape(#[from] serde_json::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("an event could not be encoded")]
    Encode(#[from] serde_json::Error),
    #[error("EventBridge PutEvents failed: {0}")]
    Put(String),
    #[error("EventBridge refused {0} of the events")]
    Refused(i32),
}

pub struct EventPublisher {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventPublisher {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }

    /// Puts `events` on the bus, in `trace` when there is one (EventBridge's `TraceHeader`,
    /// which it hands on to the targets it delivers to).
    pub async fn publish(
        &self,
        events: &[DomainEvent],
        trace: Option<&crate::xray::TraceHeader>,
    ) -> Result<(), EventError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut entries = Vec::with_capacity(events.len());
        for event in events {
            entries.push(
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(SOURCE)
                    .detail_type(event.detail_type())
                    .detail(event.detail_json()?)
                    .set_trace_header(trace.map(ToString::to_string))
                    .build(),
            );
        }
        let out = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| EventError::Put(aws_sdk_eventbridge::Error::from(e).to_string()))?;
        match out.failed_entry_count {
            0 => Ok(()),
            n => Err(EventError::Refused(n)),
        }
    }
}
