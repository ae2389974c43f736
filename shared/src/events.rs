//! Domain events on Parley's EventBridge bus (schema: docs/events.md). Delivery is at least
//! once; every event carries a stable `event_id` in its detail for consumers to dedupe on.

use serde_json::Value;

pub const SOURCE: &str = "parley";
pub const SCHEMA_VERSION: &str = "1";

#[derive(Debug, Clone)]
pub struct DomainEvent {
    pub detail_type: &'static str,
    /// Includes `event_id` and `version`.
    pub detail: Value,
}

impl DomainEvent {
    /// `detail` fields plus the envelope every event shares.
    pub fn new(
        detail_type: &'static str,
        event_id: String,
        occurred_at: &str,
        mut detail: Value,
    ) -> Self {
        detail["event_id"] = Value::String(event_id);
        detail["version"] = Value::String(SCHEMA_VERSION.into());
        detail["occurred_at"] = Value::String(occurred_at.into());
        Self {
            detail_type,
            detail,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
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

    pub async fn publish(&self, events: &[DomainEvent]) -> Result<(), EventError> {
        if events.is_empty() {
            return Ok(());
        }
        let entries = events
            .iter()
            .map(|e| {
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(SOURCE)
                    .detail_type(e.detail_type)
                    .detail(e.detail.to_string())
                    .build()
            })
            .collect();
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
