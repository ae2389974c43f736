//! Runs after the durable writes, from the table's stream: ties inbound messages to tenants
//! through the Collections Monitor, keeps tenants' language preferences, and tells the rest of
//! the platform what happened on the event bus. Everything here is idempotent, because stream
//! records are delivered at least once.

use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{info, info_span, warn, Instrument};

use super::{ColdStart, InitError};
use crate::config::required;
use crate::delivery::DeliveryStatus;
use crate::events::{DomainEvent, EventPublisher};
use crate::language::{self, Decision, Detection, Preference};
use crate::metrics::Metrics;
use crate::monitor::{self, MonitorClient, MonitorError, Tenant};
use crate::phone::{Channel, E164};
use crate::store::keys::{self, Entity};
use crate::store::tenants::PhoneTenant;
use crate::store::{Consent, Direction, Message, Store, StoreError};
use crate::telemetry::Pseudonymizer;

const FUNCTION: &str = "inbound-processor";
/// Lookups retried in the call before the conversation is left to reconciliation.
const LOOKUP_ATTEMPTS: u32 = 3;
const LOOKUP_BACKOFF: Duration = Duration::from_millis(200);
/// A record that takes longer than this is failed and retried rather than holding the shard.
const RECORD_TIMEOUT: Duration = Duration::from_secs(20);

/// The function's input: stream batches, or the scheduled reconciliation.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ProcessorInput {
    Stream(Event),
    Reconcile { reconcile: bool },
}

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct ReconcileReport {
    pub checked: usize,
    pub linked: usize,
    pub still_pending: usize,
}

pub struct InboundProcessor {
    store: Store,
    monitor: MonitorClient,
    events: EventPublisher,
    pseudonyms: Pseudonymizer,
    bodies: EventBodies,
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

#[derive(Deserialize)]
struct Keys {
    pk: String,
    sk: String,
}

/// What a lookup concluded.
enum Lookup {
    /// The tenant, and its time zone when the monitor gives one.
    Known(String, Option<String>),
    Unknown,
    /// The monitor failed even after retries; try again later.
    Unavailable,
    /// The conversation was erased meanwhile: nothing more to do for it.
    Erased,
}

impl InboundProcessor {
    pub fn new(
        store: Store,
        monitor: MonitorClient,
        events: EventPublisher,
        log_key: &str,
    ) -> Self {
        Self {
            store,
            monitor,
            events,
            pseudonyms: Pseudonymizer::new(log_key),
            bodies: EventBodies::default(),
        }
    }

    pub fn with_event_bodies(mut self, bodies: EventBodies) -> Self {
        self.bodies = bodies;
        self
    }

    pub async fn from_env() -> Result<Self, InitError> {
        let monitor_url = required("MONITOR_API_URL")?;
        let bus = required("EVENT_BUS_NAME")?;
        let bodies = EventBodies::from_env()?;
        let cold = ColdStart::load().await?;
        let current = cold.secrets.current();
        let monitor = MonitorClient::new(
            &monitor_url,
            current.monitor_api_key.as_deref().unwrap_or(""),
            Duration::from_secs(3),
        )
        .map_err(|e| crate::config::ConfigError::Invalid {
            name: "MONITOR_API_URL",
            reason: e.to_string(),
        })?;
        let events = EventPublisher::new(aws_sdk_eventbridge::Client::new(&cold.sdk), bus);
        Ok(Self::new(cold.store, monitor, events, &current.log_hmac_key).with_event_bodies(bodies))
    }

    pub async fn handle(&self, input: ProcessorInput) -> serde_json::Value {
        match input {
            ProcessorInput::Stream(event) => json!(self.handle_stream(event).await),
            ProcessorInput::Reconcile { .. } => match self.reconcile().await {
                Ok(report) => json!(report),
                Err(e) => {
                    warn!(error = %crate::error::chain(&e), "reconciliation failed");
                    json!({ "error": "store unavailable" })
                }
            },
        }
    }

    /// Records of one item are processed in order, different items concurrently. The earliest
    /// failure is reported by sequence number: Lambda retries from it (and bisects), and every
    /// step is idempotent, so records after it that did succeed may safely run again.
    pub async fn handle_stream(&self, event: Event) -> DynamoDbEventResponse {
        let mut groups: Vec<(String, Vec<(usize, &EventRecord)>)> = Vec::new();
        for (i, record) in event.records.iter().enumerate() {
            let key = serde_dynamo::from_item::<_, Keys>(record.change.keys.clone())
                .map(|k| format!("{}\n{}", k.pk, k.sk))
                .unwrap_or_default();
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, records)) => records.push((i, record)),
                None => groups.push((key, vec![(i, record)])),
            }
        }
        let failures = futures::future::join_all(groups.iter().map(|(_, records)| async move {
            for (i, record) in records {
                let span = info_span!("inbound_processor", event_id = %record.event_id);
                let outcome = tokio::time::timeout(RECORD_TIMEOUT, self.process(record).instrument(span))
                    .await
                    .unwrap_or_else(|_| Err("timed out".into()));
                if let Err(e) = outcome {
                    warn!(error = %e, kind = %record_kind(record), "stream record failed; it will be retried");
                    return Some(*i);
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
        response
    }

    async fn process(&self, record: &EventRecord) -> Result<(), String> {
        let image = &record.change.new_image;
        // An image of keys alone carries nothing to act on (moto emits one before the full
        // INSERT when UpdateItem creates an item; DynamoDB does not).
        if image.len() <= 2 {
            return Ok(());
        }
        // Items moved by an erasure (and its audit entry) are nobody's to act on: no events, no
        // tenant lookups. Their keys say so; the removal of the originals is ignored below too.
        if serde_dynamo::from_item::<_, Keys>(record.change.keys.clone())
            .is_ok_and(|k| keys::is_erased(&k.pk))
        {
            return Ok(());
        }
        match (record.event_name.as_str(), entity(image)) {
            ("INSERT", Some(Entity::Message)) => {
                let message: Message =
                    serde_dynamo::from_item(image.clone()).map_err(|e| e.to_string())?;
                if message.direction == Direction::Inbound {
                    self.inbound(&message)
                        .await
                        .map_err(|e| crate::error::chain(e.as_ref()))?;
                }
                Ok(())
            }
            ("MODIFY", Some(Entity::Message)) => {
                let new: Message =
                    serde_dynamo::from_item(image.clone()).map_err(|e| e.to_string())?;
                let old: Option<Message> =
                    serde_dynamo::from_item(record.change.old_image.clone()).ok();
                self.status_changed(old.as_ref(), &new)
                    .await
                    .map_err(|e| e.to_string())
            }
            ("INSERT" | "MODIFY", Some(Entity::Consent)) => {
                let new: Consent =
                    serde_dynamo::from_item(image.clone()).map_err(|e| e.to_string())?;
                let old: Option<Consent> =
                    serde_dynamo::from_item(record.change.old_image.clone()).ok();
                self.consent_changed(old.as_ref(), &new)
                    .await
                    .map_err(|e| e.to_string())
            }
            _ => Ok(()),
        }
    }

    async fn inbound(
        &self,
        message: &Message,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let Some(phone) = &message.from_e164 else {
            return Ok(());
        };
        let span = info_span!("inbound", message_id = %message.message_id, phone = %self.pseudonyms.pseudonym(phone));
        async {
            // A record delivered after its message was erased: the number must not go to the
            // monitor, into a mapping or onto the bus.
            if self
                .store
                .message(&message.pk, &message.sk)
                .await?
                .is_none()
            {
                info!("the message was erased before processing; skipped");
                return Ok(());
            }
            let now = crate::time::now_rfc3339();
            let (tenant_id, time_zone) = match self
                .resolve(message.channel, phone, &message.from_original)
                .await?
            {
                Lookup::Known(id, zone) => (id, zone),
                Lookup::Erased => {
                    info!("the conversation was erased during processing; skipped");
                    return Ok(());
                }
                Lookup::Unknown => {
                    info!("unknown sender: stored without a tenant, no downstream event");
                    Metrics::new(FUNCTION).count("UnknownSenders", 1).emit();
                    return Ok(());
                }
                Lookup::Unavailable => {
                    self.store
                        .mark_lookup_pending(message.channel, phone)
                        .await?;
                    warn!("the Collections Monitor is unavailable; left for reconciliation");
                    return Ok(());
                }
            };
            let linked = self
                .store
                .link_tenant(
                    message.channel,
                    phone,
                    &tenant_id,
                    time_zone.as_deref(),
                    &now,
                )
                .await?;
            if !linked {
                info!("the conversation was erased during processing; skipped");
                return Ok(());
            }
            Metrics::new(FUNCTION).count("KnownSenders", 1).emit();
            self.update_language(&tenant_id, message).await?;
            let conversation = self.store.conversation(message.channel, phone).await?;
            let mut detail = json!({
                    "message_id": message.message_id,
                    "conversation_id": conversation.as_ref().map(|c| c.conversation_id.clone()),
                    "tenant_id": tenant_id,
                    "channel": message.channel,
                    "from": phone.as_str(),
                    "to": message.to_e164.as_str(),
                    "language": message.language,
                    "language_confidence": message.language_confidence,
                    "keyword": message.keyword,
                    "workflow_type": conversation.as_ref().and_then(|c| c.workflow_type.clone()),
                    "workflow_id": conversation.as_ref().and_then(|c| c.workflow_id.clone()),
                    "media_count": message.media_urls.len(),
                    "body_included": self.bodies == EventBodies::Include,
            });
            if self.bodies == EventBodies::Include {
                detail["body"] = json!(self.store.body_of(message).await?);
                detail["media_urls"] = json!(self.store.media_of(message).await?);
            }
            let event = DomainEvent::new(
                "sms.received",
                format!("sms.received/{}", message.message_id),
                &message.created_at.to_string(),
                detail,
            );
            self.events.publish(&[event]).await?;
            info!(tenant_id = %tenant_id, "inbound message linked and published");
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// The tenant of a number: the stored mapping, else the monitor tried with each variant.
    async fn resolve(
        &self,
        channel: Channel,
        phone: &E164,
        original: &str,
    ) -> Result<Lookup, StoreError> {
        if let Some(mapping) = self.store.phone_tenant(phone).await? {
            return Ok(Lookup::Known(mapping.tenant_id, mapping.time_zone));
        }
        for variant in monitor::variants(phone, original) {
            match self.lookup_with_retries(&variant).await {
                Ok(Some(tenant)) => {
                    let mapping = PhoneTenant {
                        tenant_id: tenant.tenant_id.clone(),
                        matched_variant: variant_kind(phone, &variant).into(),
                        updated_at: crate::time::now_rfc3339(),
                        // Only a zone Parley knows is kept: an unknown one would be ignored
                        // at every send anyway.
                        time_zone: tenant
                            .time_zone
                            .clone()
                            .filter(|z| crate::schedule::parse_zone(z).is_ok()),
                    };
                    if !self
                        .store
                        .put_phone_tenant(channel, phone, &mapping)
                        .await?
                    {
                        return Ok(Lookup::Erased);
                    }
                    info!(variant = mapping.matched_variant, "tenant found");
                    return Ok(Lookup::Known(tenant.tenant_id, mapping.time_zone));
                }
                Ok(None) => continue,
                Err(_) => return Ok(Lookup::Unavailable),
            }
        }
        Ok(Lookup::Unknown)
    }

    async fn lookup_with_retries(&self, variant: &str) -> Result<Option<Tenant>, MonitorError> {
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            let result = self.monitor.lookup(variant).await;
            let metrics = Metrics::new(FUNCTION)
                .millis("MonitorLatency", started.elapsed().as_secs_f64() * 1e3);
            match result {
                Err(e) if e.is_transient() && attempt < LOOKUP_ATTEMPTS => {
                    metrics.count("MonitorErrors", 1).emit();
                    tokio::time::sleep(LOOKUP_BACKOFF * 2u32.pow(attempt - 1)).await;
                    attempt += 1;
                }
                Err(e) => {
                    metrics.count("MonitorErrors", 1).emit();
                    return Err(e);
                }
                Ok(found) => {
                    metrics.emit();
                    return Ok(found);
                }
            }
        }
    }

    async fn update_language(
        &self,
        tenant_id: &str,
        message: &Message,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let current = self.store.language_preference(tenant_id).await?;
        // A redelivered record must not count its own signal twice.
        if current.as_ref().is_some_and(|p| {
            p.message_id == message.message_id || p.at > message.created_at.to_string()
        }) {
            return Ok(());
        }
        let signal = Detection {
            language: message.language,
            confidence: message.language_confidence,
        };
        Metrics::new(FUNCTION)
            .dimension("language", message.language.as_str())
            .count("LanguageSignals", 1)
            .emit();
        match language::decide(current.as_ref(), signal) {
            Decision::Keep(reason) => {
                info!(
                    signal = message.language.as_str(),
                    kept = current.as_ref().map(|p| p.language.as_str()),
                    reason,
                    "language preference kept"
                );
                Ok(())
            }
            Decision::Adopt { changed, reason } => {
                let preference = Preference {
                    language: message.language,
                    confidence: message.language_confidence,
                    at: message.created_at.to_string(),
                    message_id: message.message_id.clone(),
                };
                if changed {
                    // Pushed first: if the monitor fails, the record is retried and pushes again.
                    self.monitor
                        .update_language(
                            tenant_id,
                            message.language,
                            message.language_confidence,
                            reason,
                        )
                        .await?;
                }
                self.store
                    .put_language_preference(tenant_id, &preference)
                    .await?;
                info!(
                    language = message.language.as_str(),
                    changed, reason, "language preference updated"
                );
                Ok(())
            }
        }
    }

    async fn status_changed(
        &self,
        old: Option<&Message>,
        new: &Message,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let before = old.and_then(|m| m.delivery_status);
        let expired = new.status == crate::pipeline::PipelineState::Expired
            && old.is_some_and(|o| o.status != new.status);
        let status = match new
            .delivery_status
            .filter(|s| Some(*s) != before && *s != DeliveryStatus::Unknown)
        {
            Some(status) => status.as_str(),
            // Parley's own final state when Twilio never saw the message.
            None if expired => crate::pipeline::PipelineState::Expired.as_str(),
            None => return Ok(()),
        };
        let tenant_id = self
            .store
            .phone_tenant(&new.to_e164)
            .await?
            .map(|t| t.tenant_id);
        let event = DomainEvent::new(
            "sms.status_changed",
            format!("sms.status_changed/{}/{}", new.message_id, status),
            &crate::time::now_rfc3339(),
            json!({
                "message_id": new.message_id,
                "tenant_id": tenant_id,
                "twilio_sid": new.twilio_sid,
                "status": status,
                "state": new.status,
                "reason": new.status_reason,
                "previous_status": before,
                "error_code": new.error_code,
                "workflow_type": new.workflow_type,
                "workflow_id": new.workflow_id,
            }),
        );
        self.events.publish(&[event]).await?;
        Ok(())
    }

    async fn consent_changed(
        &self,
        old: Option<&Consent>,
        new: &Consent,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if old.is_some_and(|o| o.opted_out == new.opted_out) {
            return Ok(());
        }
        let detail_type = if new.opted_out {
            "sms.opted_out"
        } else {
            "sms.opted_in"
        };
        if new.opted_out {
            // Every scheduled, deferred and queued message to the number ends here; each
            // cancellation is published as a status change from its own stream record.
            let now = crate::time::Timestamp::now();
            let canceled = crate::send::cancel::cancel_pending_to(
                &self.store,
                &new.phone,
                crate::send::cancel::CancelReason::OptedOut,
                crate::time::Timestamp::parse(&new.updated_at).unwrap_or(now),
                now,
            )
            .await?;
            if canceled > 0 {
                info!(canceled, "opted out: pending messages canceled");
                Metrics::new(FUNCTION)
                    .count("CanceledOnOptOut", canceled as u64)
                    .emit();
            }
        }
        let tenant_id = self
            .store
            .phone_tenant(&new.phone)
            .await?
            .map(|t| t.tenant_id);
        let change = new.history.last();
        let event = DomainEvent::new(
            detail_type,
            format!(
                "{detail_type}/{}",
                change
                    .map(|c| c.message_id.as_str())
                    .unwrap_or(&new.updated_at)
            ),
            &new.updated_at,
            json!({
                "phone_number": new.phone.as_str(),
                "tenant_id": tenant_id,
                "keyword": new.keyword,
                "message_id": change.map(|c| c.message_id.clone()),
            }),
        );
        self.events.publish(&[event]).await?;
        Metrics::new(FUNCTION)
            .count(
                if new.opted_out {
                    "OptOutEvents"
                } else {
                    "OptInEvents"
                },
                1,
            )
            .emit();
        Ok(())
    }

    /// Retries the lookup for every conversation without a tenant (left unknown, or pending
    /// while the monitor was down) and links the ones that are known now.
    pub async fn reconcile(&self) -> Result<ReconcileReport, StoreError> {
        let mut report = ReconcileReport::default();
        for conversation in self.store.unlinked_conversations().await? {
            report.checked += 1;
            let phone = &conversation.phone;
            match self
                .resolve(conversation.channel, phone, phone.as_str())
                .await?
            {
                Lookup::Known(tenant_id, time_zone) => {
                    let linked = self
                        .store
                        .link_tenant(
                            conversation.channel,
                            phone,
                            &tenant_id,
                            time_zone.as_deref(),
                            &crate::time::now_rfc3339(),
                        )
                        .await?;
                    report.linked += usize::from(linked);
                }
                Lookup::Unknown | Lookup::Erased => {}
                Lookup::Unavailable => report.still_pending += 1,
            }
        }
        Metrics::new(FUNCTION)
            .count("Reconciliations", report.linked as u64)
            .emit();
        info!(
            checked = report.checked,
            linked = report.linked,
            pending = report.still_pending,
            "reconciliation"
        );
        Ok(report)
    }
}

/// What an image is, from its `entity` (every item carries one; see `store::keys`).
fn entity(image: &serde_dynamo::Item) -> Option<Entity> {
    #[derive(Deserialize)]
    struct Kind {
        entity: Option<Entity>,
    }
    serde_dynamo::from_item::<_, Kind>(image.clone())
        .ok()
        .and_then(|k| k.entity)
}

/// `INSERT consent`: what a record is about, without the number in its key.
fn record_kind(record: &EventRecord) -> String {
    let kind = entity(&record.change.new_image).map_or("unknown", Entity::as_str);
    format!(
        "{} {kind} ({} attributes)",
        record.event_name,
        record.change.new_image.len()
    )
}

/// Which form matched, for the mapping (never the number itself in logs).
fn variant_kind(phone: &E164, variant: &str) -> &'static str {
    let digits: String = phone
        .as_str()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    if variant == phone.as_str() {
        "e164"
    } else if variant == digits {
        "digits"
    } else if variant.chars().all(|c| c.is_ascii_digit()) {
        "national"
    } else if variant.contains('(') {
        "national_formatted"
    } else {
        "raw"
    }
}

impl ProcessorInput {
    pub fn is_stream(&self) -> bool {
        matches!(self, ProcessorInput::Stream(_))
    }
}
