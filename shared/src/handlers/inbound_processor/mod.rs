//! Runs after the durable writes, from the table's stream: ties inbound messages to tenants
//! through the Collections Monitor, keeps tenants' language preferences, and tells the rest of
//! the platform what happened on the event bus. Everything here is idempotent, because stream
//! records are delivered at least once.
//!
//! `routing` decides what a record asks (a pure function of the record); `inbound`,
//! `changes`, `tenant` and `language` do it; `events` builds what is published; `projection`
//! keeps the inbox's flags and the traffic counters; `reconcile` is the scheduled run that
//! links conversations left without a tenant.

mod changes;
mod error;
mod events;
mod inbound;
mod language;
mod projection;
mod reconcile;
mod routing;
mod tenant;

use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde::{Deserialize, Serialize};
use tracing::{debug, error, info_span, warn, Instrument};

pub use self::error::ProcessorError;
pub use self::reconcile::ReconcileReport;
use self::routing::{record_kind, route, Keys, Route};
use super::{ColdStart, InitError};
use crate::breaker::{Breaker, BreakerConfig, MONITOR_BREAKER_ENV};
use crate::config::required;
use crate::events::EventPublisher;
use crate::metrics::Metrics;
use crate::monitor::MonitorClient;
use crate::store::Store;
use crate::telemetry::Pseudonymizer;
use crate::time::SystemClock;

const FUNCTION: &str = "inbound-processor";
/// A record that takes longer than this is failed and retried rather than holding the shard.
const RECORD_TIMEOUT: Duration = Duration::from_secs(20);

/// The function's input: stream batches, or the scheduled reconciliation.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ProcessorInput {
    Stream(Event),
    Reconcile { reconcile: bool },
}

impl ProcessorInput {
    pub fn is_stream(&self) -> bool {
        matches!(self, ProcessorInput::Stream(_))
    }
}

/// What the function answers: the batch's failures, or the reconciliation's report.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ProcessorOutput {
    Stream(DynamoDbEventResponse),
    Reconcile(ReconcileReport),
}

/// Whether `sms.received` carries the text and media (`EVENT_BODIES`). Omitted by default:
/// everything that can read the bus would otherwise read every tenant's texts; a consumer
/// that needs the text reads `GET /messages/{id}` with a `read` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventBodies {
    #[default]
    Omit,
    Include,
}

impl EventBodies {
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        match crate::config::optional("EVENT_BODIES").as_deref() {
            None | Some("omit") => Ok(Self::Omit),
            Some("include") => Ok(Self::Include),
            Some(_) => Err(crate::config::ConfigError::Invalid {
                name: "EVENT_BODIES",
                reason: "omit or include".into(),
            }),
        }
    }
}

pub struct InboundProcessor {
    store: Store,
    /// `None` until `MONITOR_API_URL` is set: every sender is then left for reconciliation.
    monitor: Option<MonitorClient>,
    events: EventPublisher,
    pseudonyms: Pseudonymizer,
    bodies: EventBodies,
    /// The Collections Monitor's circuit breaker, per instance (see `crate::breaker`).
    monitor_breaker: Breaker,
}

impl InboundProcessor {
    pub fn new(
        store: Store,
        monitor: MonitorClient,
        events: EventPublisher,
        log_key: &str,
    ) -> Self {
        Self::new_with(store, Some(monitor), events, log_key)
    }

    /// Without a Collections Monitor (`MONITOR_API_URL` empty: a stack deployed before the
    /// monitor is reachable), no sender is looked up; each is marked for reconciliation, which
    /// links it once the URL is set.
    pub fn new_with(
        store: Store,
        monitor: Option<MonitorClient>,
        events: EventPublisher,
        log_key: &str,
    ) -> Self {
        Self {
            store,
            monitor,
            events,
            pseudonyms: Pseudonymizer::new(log_key),
            bodies: EventBodies::default(),
            monitor_breaker: Breaker::new(
                "monitor",
                BreakerConfig::default(),
                std::sync::Arc::new(SystemClock),
            ),
        }
    }

    /// A circuit breaker toward the monitor other than the default one.
    pub fn with_monitor_breaker(mut self, breaker: Breaker) -> Self {
        self.monitor_breaker = breaker;
        self
    }

    pub fn monitor_breaker(&self) -> &Breaker {
        &self.monitor_breaker
    }

    pub fn with_event_bodies(mut self, bodies: EventBodies) -> Self {
        self.bodies = bodies;
        self
    }

    pub async fn from_env() -> Result<Self, InitError> {
        let monitor_url = crate::config::optional("MONITOR_API_URL");
        let bus = required("EVENT_BUS_NAME")?;
        let bodies = EventBodies::from_env()?;
        let breaker = BreakerConfig::from_env(MONITOR_BREAKER_ENV)?;
        let cold = ColdStart::load_stored().await?;
        let current = cold.secrets.current();
        let monitor = monitor_url
            .map(|url| {
                MonitorClient::new(
                    &url,
                    current.monitor_api_key.as_deref().unwrap_or(""),
                    Duration::from_secs(3),
                )
            })
            .transpose()
            .map_err(|e| crate::config::ConfigError::Invalid {
                name: "MONITOR_API_URL",
                reason: e.to_string(),
            })?;
        let events = EventPublisher::new(aws_sdk_eventbridge::Client::new(&cold.sdk), bus);
        let processor = Self::new_with(cold.store, monitor, events, &current.log_hmac_key);
        Ok(processor
            .with_event_bodies(bodies)
            .with_monitor_breaker(Breaker::new(
                "monitor",
                breaker,
                std::sync::Arc::new(SystemClock),
            )))
    }

    /// A stream batch always succeeds as an invocation (its failures are reported per
    /// record); a reconciliation that fails is an error for the runtime, so Lambda counts it.
    pub async fn handle(&self, input: ProcessorInput) -> Result<ProcessorOutput, ProcessorError> {
        match input {
            ProcessorInput::Stream(event) => {
                Ok(ProcessorOutput::Stream(self.handle_stream(event).await))
            }
            ProcessorInput::Reconcile { .. } => match self.reconcile().await {
                Ok(report) => Ok(ProcessorOutput::Reconcile(report)),
                Err(e) => {
                    let e = ProcessorError::Reconcile(e);
                    error!(error = %crate::error::chain(&e), "reconciliation failed");
                    Err(e)
                }
            },
        }
    }

    /// Records of one item are processed in order, different items concurrently. The earliest
    /// failure is reported by sequence number: Lambda retries from it (and bisects), and every
    /// step is idempotent, so records after it that did succeed may safely run again.
    pub async fn handle_stream(&self, event: Event) -> DynamoDbEventResponse {
        let groups = by_item(&event.records);
        let failures = futures::future::join_all(groups.iter().map(|records| async move {
            for &(i, record) in records {
                let trace = record_trace(record);
                let span = info_span!(
                    "inbound_processor",
                    event_id = %record.event_id,
                    xrayTraceId = trace.as_ref().map(tracing::field::display),
                );
                let outcome = tokio::time::timeout(RECORD_TIMEOUT, self.process(record))
                    .instrument(span)
                    .await
                    .unwrap_or(Err(ProcessorError::TimedOut(RECORD_TIMEOUT)));
                if let Err(e) = outcome {
                    warn!(
                        error = %crate::error::chain(&e),
                        kind = %record_kind(record),
                        "stream record failed; it will be retried"
                    );
                    return Some(i);
                }
            }
            None
        }))
        .await;
        let mut response = DynamoDbEventResponse::default();
        if let Some(first) = failures.into_iter().flatten().min() {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = event.records[first].change.sequence_number.clone();
            response.batch_item_failures.push(failure);
        }
        // The breaker's state with every batch, so an open breaker is seen as long as it lasts.
        Metrics::new(FUNCTION)
            .count("MonitorCircuitOpen", self.monitor_breaker.open_gauge())
            .emit();
        response
    }

    async fn process(&self, record: &EventRecord) -> Result<(), ProcessorError> {
        match route(record)? {
            Route::Inbound(message) => self.inbound(&message).await?,
            Route::StatusChanged(transition) => self.status_changed(&transition).await?,
            Route::ConsentChanged(consent) => self.consent_changed(&consent).await?,
            Route::Skip(why) => debug!(?why, "nothing to do for the record"),
        }
        self.project(record).await
    }
}

/// The trace a record's item was written in: a message's, stored with it. Stream records carry
/// no trace header of their own (Lambda starts a new trace for each stream batch).
fn record_trace(record: &EventRecord) -> Option<crate::xray::TraceHeader> {
    #[derive(Deserialize)]
    struct Traced {
        #[serde(default, deserialize_with = "crate::xray::lenient")]
        trace: Option<crate::xray::TraceHeader>,
    }
    serde_dynamo::from_item::<_, Traced>(record.change.new_image.clone())
        .ok()
        .and_then(|t| t.trace)
}

/// The records of each item (by key), in stream order, each with its index in the batch;
/// items in the order they first appear.
fn by_item(records: &[EventRecord]) -> Vec<Vec<(usize, &EventRecord)>> {
    let mut groups: Vec<(String, Vec<(usize, &EventRecord)>)> = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let key = serde_dynamo::from_item::<_, Keys>(record.change.keys.clone())
            .map(|k| format!("{}\n{}", k.pk, k.sk))
            .unwrap_or_default();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, group)) => group.push((i, record)),
            None => groups.push((key, vec![(i, record)])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(pk: &str, sk: &str) -> EventRecord {
        let mut record = EventRecord::default();
        record.change.keys =
            serde_dynamo::to_item(serde_json::json!({"pk": pk, "sk": sk})).unwrap();
        record
    }

    #[test]
    fn records_are_grouped_by_item_in_stream_order() {
        let records = [
            record("CONV#a", "MSG#1"),
            record("CONSENT#a", "CONSENT"),
            record("CONV#a", "MSG#1"),
            record("CONV#a", "MSG#2"),
            record("CONV#a", "MSG#1"),
        ];
        let groups: Vec<Vec<usize>> = by_item(&records)
            .into_iter()
            .map(|g| g.into_iter().map(|(i, _)| i).collect())
            .collect();
        assert_eq!(groups, [vec![0, 2, 4], vec![1], vec![3]]);
    }

    #[test]
    fn the_input_is_a_stream_batch_or_the_schedule() {
        let schedule: ProcessorInput =
            serde_json::from_value(serde_json::json!({"reconcile": true})).unwrap();
        assert!(!schedule.is_stream());
        let batch: ProcessorInput =
            serde_json::from_str(include_str!("../../../../events/inbound-processor.json"))
                .unwrap();
        assert!(batch.is_stream());
    }

    #[test]
    fn the_output_is_the_batch_response_or_the_report() {
        let report = ProcessorOutput::Reconcile(ReconcileReport {
            checked: 3,
            linked: 1,
            still_pending: 2,
        });
        assert_eq!(
            serde_json::to_value(report).unwrap(),
            serde_json::json!({"checked": 3, "linked": 1, "still_pending": 2})
        );
        let batch = ProcessorOutput::Stream(DynamoDbEventResponse::default());
        assert!(serde_json::to_value(batch).unwrap()["batchItemFailures"].is_array());
    }
}
