//! `event-router`: every event on Parley's bus reaches it through an SQS queue (batches, with
//! partial batch failures). Each enabled rule whose `match` fits the event fires; each whose
//! `cancel_on` fits it cancels the pending message of the event's business key. An event
//! about a message a rule made (it carries `cause`) fires nothing: the loop guard.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::future::join_all;
use tracing::{info, info_span, warn, Instrument};

use super::{ColdStart, InitError};
use crate::config::{optional, required, ConfigError};
use crate::metrics::Metrics;
use crate::monitor::MonitorClient;
use crate::pending::Policy;
use crate::queue::JobQueue;
use crate::rules::activity::Activity;
use crate::rules::cache::RuleCache;
use crate::rules::engine::{Engine, EngineError};
use crate::rules::event::Event;
use crate::send::SendService;
use crate::time::Timestamp;
use crate::xray::TraceHeader;

const FUNCTION: &str = "event-router";

/// What one event did.
#[derive(Debug, Default)]
pub struct Routed {
    /// The event was about a rule's message: nothing fired.
    pub loop_guarded: bool,
    pub activity: Vec<Activity>,
}

pub struct EventRouter {
    engine: Engine,
    rules: RuleCache,
}

impl EventRouter {
    pub fn new(engine: Engine, rules: RuleCache) -> Self {
        Self { engine, rules }
    }

    pub async fn from_env() -> Result<Self, InitError> {
        let queue_url = required("SEND_QUEUE_URL")?;
        let policy = Arc::new(Policy::from_env()?);
        let cold = ColdStart::load_sealing().await?;
        let monitor = monitor(&cold)?;
        let queue = JobQueue::new(aws_sdk_sqs::Client::new(&cold.sdk), queue_url);
        let rules = RuleCache::from_env(cold.store.clone())?;
        let service = SendService::new(cold.store, queue, policy);
        Ok(Self::new(Engine::new(service, monitor), rules))
    }

    pub fn rules(&self) -> &RuleCache {
        &self.rules
    }

    /// A batch from the queue; records that failed are reported for a retry.
    pub async fn handle(&self, batch: SqsEvent) -> SqsBatchResponse {
        let outcomes = join_all(batch.records.iter().map(|r| self.record(r))).await;
        let mut response = SqsBatchResponse::default();
        for (record, ok) in batch.records.iter().zip(outcomes) {
            if !ok {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = record.message_id.clone().unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    async fn record(&self, record: &SqsMessage) -> bool {
        let body = record.body.as_deref().unwrap_or_default();
        let mut event = match serde_json::from_str(body).map(Event::from_json) {
            Ok(Ok(event)) => event,
            Ok(Err(e)) => {
                // It will never read: retrying would only dead-letter it later.
                warn!(error = %e, "not an event; dropped");
                Metrics::new(FUNCTION).count("UnreadableEvents", 1).emit();
                return true;
            }
            Err(_) => {
                warn!("the record is not JSON; dropped");
                Metrics::new(FUNCTION).count("UnreadableEvents", 1).emit();
                return true;
            }
        };
        event.trace = TraceHeader::of_sqs(record);
        let span = info_span!(
            "route",
            event_id = %event.id,
            detail_type = %event.detail_type,
            xrayTraceId = event.trace.as_ref().map(tracing::field::display),
        );
        match self.route(&event, Timestamp::now()).instrument(span).await {
            Ok(_) => true,
            Err(e) => {
                warn!(error = %crate::error::chain(&e), event_id = %event.id, "routing failed; retried");
                Metrics::new(FUNCTION).count("RoutingFailures", 1).emit();
                false
            }
        }
    }

    /// Fires and cancels what `event` asks of the enabled rules. Every step is idempotent, so
    /// a retried event repeats nothing.
    pub async fn route(&self, event: &Event, now: Timestamp) -> Result<Routed, EngineError> {
        if event.has_cause() {
            info!("event about a rule's message; no rule fires on it");
            Metrics::new(FUNCTION).count("LoopGuarded", 1).emit();
            return Ok(Routed {
                loop_guarded: true,
                ..Routed::default()
            });
        }
        let rules = self.rules.enabled().await?;
        let mut routed = Routed::default();
        for rule in rules.iter() {
            if rule.spec.pattern.matches(&event.raw) {
                if let Some(activity) = self.engine.fire(rule, event, now).await? {
                    routed.activity.push(activity);
                }
            }
            if rule.spec.cancel_on.iter().any(|p| p.matches(&event.raw)) {
                routed
                    .activity
                    .push(self.engine.cancel(rule, event, now).await?);
            }
        }
        let mut metrics = Metrics::new(FUNCTION).count("Events", 1);
        for a in &routed.activity {
            info!(rule_id = %a.rule_id, outcome = a.outcome.as_str(), message_id = a.message_id.as_deref().unwrap_or("-"), "rule fired");
            metrics = metrics.count(outcome_metric(a), 1);
        }
        metrics.emit();
        Ok(routed)
    }
}

fn outcome_metric(a: &Activity) -> &'static str {
    use crate::rules::activity::Outcome::*;
    match a.outcome {
        Scheduled => "RuleScheduled",
        Deduplicated => "RuleDeduplicated",
        Canceled => "RuleCanceled",
        CancelTooLate => "RuleCancelTooLate",
        Capped => "RuleCapped",
        Shadow => "RuleShadow",
        RecipientUnresolved => "RuleRecipientUnresolved",
        TemplateFailed => "RuleTemplateFailed",
        TimingFailed => "RuleTimingFailed",
        OptedOut => "RuleOptedOut",
    }
}

/// The Collections Monitor, for tenant recipients without a stored number (optional:
/// without `MONITOR_API_URL` such a recipient is unresolved).
pub fn monitor(cold: &ColdStart) -> Result<Option<Arc<MonitorClient>>, ConfigError> {
    let Some(url) = optional("MONITOR_API_URL") else {
        return Ok(None);
    };
    let key = cold
        .secrets
        .current()
        .monitor_api_key
        .clone()
        .unwrap_or_default();
    let client = MonitorClient::new(&url, &key, Duration::from_secs(3)).map_err(|e| {
        ConfigError::Invalid {
            name: "MONITOR_API_URL",
            reason: e.to_string(),
        }
    })?;
    Ok(Some(Arc::new(client)))
}
