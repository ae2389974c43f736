//! The send use case: a validated [`NewSend`] becomes a stored message and, when it is due
//! soon enough, a job on the queue. The HTTP API (`handlers::send_sms`), the event-rule router
//! and the tests all come through [`SendService::send`].
//!
//! Once the intent is stored the answer is 202, even if the enqueue then fails: the message is
//! in the due index, and the dispatcher's sweep enqueues it. So a caller that retries without
//! an `Idempotency-Key` after a lost answer never has to, and never sends twice because of us.

pub mod cancel;
pub mod request;

use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::pending::{Decision, Pending, Policy};
use crate::phone::Address;
use crate::pipeline::PipelineState;
use crate::queue::{JobQueue, SendJob};
use crate::schedule::{self, SendAt, ZoneSource, Zones};
use crate::segments::Segments;
use crate::store::{
    keys, CreateOutcome, Idempotency, IdempotencyKey, IdempotencyRecord, NewOutbound, Store,
    StoreError,
};
use crate::time::Timestamp;

pub use request::{FieldErrors, RequestError, SendRequest};

/// How long an idempotency key is remembered.
const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

/// A send request that passed validation: typed, normalized, trusted from here on.
#[derive(Debug, Clone)]
pub struct NewSend {
    pub to: Address,
    pub body: String,
    pub conversation_id: Option<String>,
    pub workflow_type: Option<String>,
    pub workflow_id: Option<String>,
    pub media_urls: Vec<String>,
    pub send_at: Option<SendAt>,
    pub not_after: Option<Timestamp>,
    pub time_zone: Option<TimeZone>,
    pub urgent: bool,
    pub segments: Segments,
    /// Set when an event rule made it.
    pub cause: Option<crate::rules::Cause>,
}

/// The 202's body (also what an idempotent replay answers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accepted {
    pub message_id: String,
    pub conversation_id: String,
    /// `queued`, `scheduled` or `deferred`.
    pub status: PipelineState,
    /// When it is due, resolved to UTC (after quiet hours).
    pub send_at: Timestamp,
    pub time_zone: String,
    pub time_zone_source: ZoneSource,
    pub urgent: bool,
    pub segments: u32,
    pub encoding: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the recipient has opted out of messages (they must text START to opt back in)")]
    OptedOut,
    #[error("conversation_id is not the conversation of this recipient")]
    ConversationMismatch,
    #[error("this Idempotency-Key was used with a different request body")]
    IdempotencyKeyReused,
    /// `send_at` read in the recipient's zone is out of bounds (validation checks it in UTC).
    #[error("{0}")]
    InvalidSendAt(String),
    #[error("the message cannot be sent before not_after (quiet hours last until {allowed})")]
    NotAfterUnreachable { allowed: Timestamp },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a stored idempotent answer could not be read")]
    Corrupt(#[source] serde_json::Error),
}

/// The canonical form of a request, for the idempotency hash: two spellings of one number,
/// or one body in another key order, are the same request.
#[derive(Serialize)]
struct Canonical<'a> {
    to: &'a str,
    channel: &'a str,
    body: &'a str,
    conversation_id: Option<&'a str>,
    workflow_type: Option<&'a str>,
    workflow_id: Option<&'a str>,
    media_urls: &'a [String],
    send_at: Option<String>,
    not_after: Option<Timestamp>,
    time_zone: Option<std::borrow::Cow<'a, str>>,
    urgent: bool,
}

impl NewSend {
    /// SHA-256 of the normalized request.
    pub fn request_hash(&self) -> String {
        let canonical = Canonical {
            to: self.to.e164.as_str(),
            channel: self.to.channel.as_str(),
            body: &self.body,
            conversation_id: self.conversation_id.as_deref(),
            workflow_type: self.workflow_type.as_deref(),
            workflow_id: self.workflow_id.as_deref(),
            media_urls: &self.media_urls,
            send_at: self.send_at.as_ref().map(SendAt::to_string),
            not_after: self.not_after,
            time_zone: self.time_zone.as_ref().map(schedule::zone_name),
            urgent: self.urgent,
        };
        let json = serde_json::to_vec(&canonical).unwrap_or_default();
        crate::digest::sha256_hex(&json)
    }
}

/// What the use case needs; built once per cold start.
#[derive(Clone)]
pub struct SendService {
    pub store: Store,
    pub queue: JobQueue,
    pub policy: Arc<Policy>,
}

impl SendService {
    pub fn new(store: Store, queue: JobQueue, policy: Arc<Policy>) -> Self {
        Self {
            store,
            queue,
            policy,
        }
    }

    /// Accepts `new` at `now`: refuses an opted-out recipient, resolves the time and zone,
    /// stores the message in its first state and, when due soon enough, enqueues it.
    pub async fn send(
        &self,
        new: &NewSend,
        idempotency_key: Option<IdempotencyKey<'_>>,
        now: Timestamp,
    ) -> Result<Accepted, SendError> {
        let request_hash = new.request_hash();
        if let Some(key) = idempotency_key {
            if let Some(record) = self.store.idempotency(key).await? {
                return self.replay(record, &request_hash).await;
            }
        }
        if self
            .store
            .consent(&new.to.e164)
            .await?
            .is_some_and(|c| c.opted_out)
        {
            return Err(SendError::OptedOut);
        }
        let existing = self
            .store
            .conversation(new.to.channel, &new.to.e164)
            .await?;
        let conversation_id = match (&existing, &new.conversation_id) {
            (Some(c), Some(asked)) if &c.conversation_id != asked => {
                return Err(SendError::ConversationMismatch)
            }
            (None, Some(_)) => return Err(SendError::ConversationMismatch),
            (Some(c), _) => c.conversation_id.clone(),
            (None, None) => ulid::Ulid::new().to_string(),
        };
        let tenant_zone = existing
            .as_ref()
            .and_then(|c| c.tenant_time_zone.as_deref())
            .and_then(|name| schedule::parse_zone(name).ok());
        let zones = schedule::choose(
            new.time_zone.as_ref(),
            tenant_zone.as_ref(),
            new.to.e164.as_str(),
            &self.policy.default_zone,
        );
        let requested = match &new.send_at {
            Some(at) => resolve(at, &zones, &self.policy.default_zone, now)?,
            None => now,
        };

        let message_id = ulid::Ulid::new().to_string();
        let decision = self.policy.decide(
            now,
            Pending {
                message_id: &message_id,
                due: requested,
                not_after: new.not_after,
                urgent: new.urgent,
                zones: &zones.zones,
            },
        );
        let (state, due, index_minute) = match decision {
            Decision::Queue { due, .. } => (
                PipelineState::Queued,
                due,
                self.policy.sweep_minute(due, now),
            ),
            Decision::Wait { state, due } => (state, due, self.policy.release_minute(due, now)),
            Decision::Expire => {
                return Err(SendError::NotAfterUnreachable {
                    allowed: self.policy.next_allowed(requested.max(now), &zones.zones),
                })
            }
        };
        tracing::Span::current().record("message_id", message_id.as_str());
        let accepted = Accepted {
            message_id: message_id.clone(),
            conversation_id: conversation_id.clone(),
            status: state,
            send_at: due,
            time_zone: zones.name(),
            time_zone_source: zones.source,
            urgent: new.urgent,
            segments: new.segments.count,
            encoding: new.segments.encoding.as_str().to_owned(),
        };
        let outbound = NewOutbound {
            message_id: message_id.clone(),
            conversation_id,
            to: &new.to,
            body: &new.body,
            media_urls: &new.media_urls,
            workflow_type: new.workflow_type.as_deref(),
            workflow_id: new.workflow_id.as_deref(),
            segments: new.segments,
            created_at: now,
            state,
            reason: (state == PipelineState::Deferred).then_some("quiet_hours"),
            send_at: due,
            not_after: new.not_after,
            time_zone: accepted.time_zone.clone(),
            time_zone_source: zones.source,
            urgent: new.urgent,
            index_minute,
            idempotency: idempotency_key.map(|key| Idempotency {
                key,
                request_hash: request_hash.clone(),
                response: serde_json::to_string(&accepted).unwrap_or_default(),
                expires_at: now.plus(IDEMPOTENCY_TTL).unix_seconds(),
            }),
            cause: new.cause.as_ref(),
        };
        match self.store.create_outbound(&outbound).await? {
            CreateOutcome::Replay(record) => return self.replay(record, &request_hash).await,
            CreateOutcome::Created => {}
        }
        if let Decision::Queue { delay, .. } = decision {
            let job = SendJob::new(
                message_id.clone(),
                keys::conversation_pk(new.to.channel, &new.to.e164),
                keys::message_sk(&message_id),
            );
            if let Err(e) = self.queue.enqueue(&job, delay).await {
                // Stored and in the due index: the dispatcher's sweep enqueues it.
                warn!(error = %e, "could not enqueue; the sweep will");
                crate::metrics::Metrics::new("send-sms")
                    .count("EnqueueFailed", 1)
                    .emit();
            }
        }
        info!(
            status = %state,
            urgent = new.urgent,
            time_zone_source = ?zones.source,
            segments = new.segments.count,
            "outbound message accepted"
        );
        Ok(accepted)
    }

    /// The first answer for a reused key, after putting a still-queued message on the queue
    /// again (harmless: the worker's claim sends it once) so a retry mends a lost enqueue at
    /// once instead of at the next sweep.
    async fn replay(
        &self,
        record: IdempotencyRecord,
        request_hash: &str,
    ) -> Result<Accepted, SendError> {
        // An erased recipient's record keeps its key (a retry must not send again) but not
        // the request's hash (a hash of the number and the body): any retry gets the answer.
        let erased = record.request_hash == crate::store::ERASED_REQUEST_HASH
            || keys::is_erased(&record.message_pk);
        if record.request_hash != request_hash && !erased {
            return Err(SendError::IdempotencyKeyReused);
        }
        let message = match erased {
            true => None,
            false => {
                self.store
                    .message(&record.message_pk, &record.message_sk)
                    .await?
            }
        };
        if let Some(m) = message.filter(|m| m.status == PipelineState::Queued) {
            let delay = Timestamp::now().until(m.send_at.unwrap_or_else(Timestamp::now));
            let job = SendJob::new(m.message_id, record.message_pk, record.message_sk);
            if let Err(e) = self.queue.enqueue(&job, delay).await {
                warn!(error = %e, "could not enqueue on replay; the sweep will");
            }
        }
        info!("idempotent replay");
        serde_json::from_str(&record.response).map_err(SendError::Corrupt)
    }
}

/// A requested `send_at` as an instant: a local time is read in the first of the zones.
fn resolve(
    at: &SendAt,
    zones: &Zones,
    default: &TimeZone,
    now: Timestamp,
) -> Result<Timestamp, SendError> {
    let zone = zones.zones.first().unwrap_or(default);
    schedule::resolve(at, zone, now.jiff())
        .map(Timestamp::from_jiff)
        .map_err(|e| SendError::InvalidSendAt(e.to_string()))
}
