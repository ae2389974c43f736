//! The send use case: a validated [`NewSend`] becomes a stored message and, when it is due
//! soon enough, a job on the queue. The HTTP API (`handlers::send_sms`), the event-rule router
//! and the tests all come through [`SendService::send`].
//!
//! Once the intent is stored the answer is 202, even if the enqueue then fails: the message is
//! in the due index, and the dispatcher's sweep enqueues it. So a caller that retries without
//! an `Idempotency-Key` after a lost answer never has to, and never sends twice because of us.

pub mod cancel;
pub mod request;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::TransactWriteItem;
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
    item_of, keys, Consent, Conversation, CreateOutcome, Idempotency, IdempotencyKey,
    IdempotencyRecord, Item, ItemKey, NewOutbound, Store, StoreError,
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
    /// The trace it was asked for in (the request's, or the rule's event's): stored on the
    /// message and put on its queue jobs. Not part of the request's hash.
    pub trace: Option<crate::xray::TraceHeader>,
}

/// The 202's body (also what an idempotent replay answers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// A rule's message: the event that made it, so a redelivered event is told apart from
    /// another event with the same business key. Absent for API requests (their hashes stay
    /// as they were).
    #[serde(skip_serializing_if = "Option::is_none")]
    cause_event: Option<&'a str>,
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
            cause_event: self.cause.as_ref().map(|c| c.event_id.as_str()),
        };
        let json = serde_json::to_vec(&canonical).unwrap_or_default();
        crate::digest::sha256_hex(&json)
    }
}

/// The record a message is created under, written with it: a caller's `Idempotency-Key`,
/// or an event rule's business key. Only one message is ever created under one record.
#[derive(Debug, Clone, Copy)]
pub struct Guard<'a> {
    pub key: IdempotencyKey<'a>,
    /// Epoch seconds; DynamoDB's TTL removes the record after it.
    pub expires_at: i64,
}

/// What a send is decided on, read in one BatchGetItem.
#[derive(Debug, Default)]
pub struct Prior {
    /// The guard's record, when it exists (a replay, or a duplicate business key).
    pub record: Option<IdempotencyRecord>,
    pub opted_out: bool,
    pub conversation: Option<Conversation>,
}

impl Prior {
    /// The items to read for `to` (and the guard's record).
    pub fn keys(guard: Option<&Guard<'_>>, to: &Address) -> Vec<ItemKey> {
        let mut keys = vec![
            (keys::consent_pk(&to.e164), keys::CONSENT_SK.to_owned()),
            (
                keys::conversation_pk(to.channel, &to.e164),
                keys::META.to_owned(),
            ),
        ];
        if let Some(g) = guard {
            keys.push((g.key.pk(), keys::IDEMPOTENCY_SK.to_owned()));
        }
        keys
    }

    pub fn read(
        items: &HashMap<ItemKey, Item>,
        guard: Option<&Guard<'_>>,
        to: &Address,
    ) -> Result<Self, StoreError> {
        let consent: Option<Consent> =
            item_of(items, &keys::consent_pk(&to.e164), keys::CONSENT_SK)?;
        Ok(Self {
            record: match guard {
                Some(g) => item_of(items, &g.key.pk(), keys::IDEMPOTENCY_SK)?,
                None => None,
            },
            opted_out: consent.is_some_and(|c| c.opted_out),
            conversation: item_of(
                items,
                &keys::conversation_pk(to.channel, &to.e164),
                keys::META,
            )?,
        })
    }
}

/// Where a message would stand: its 202 answer, and what the write and enqueue need.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The time asked for (before quiet hours).
    pub requested: Timestamp,
    pub accepted: Accepted,
    pub index_minute: Timestamp,
    /// `Some` when it goes to the queue now, with this delay.
    pub delay: Option<Duration>,
}

/// What [`SendService::accept`] did.
#[derive(Debug)]
pub enum Outcome {
    Accepted(Accepted),
    /// The guard's record existed: nothing written.
    Existing(IdempotencyRecord),
    /// An extra write's condition failed: nothing written.
    Refused,
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
    /// stores the message in its first state and, when due soon enough, enqueues it. One read
    /// (the key's record, consent and the conversation together) and one transaction.
    pub async fn send(
        &self,
        new: &NewSend,
        idempotency_key: Option<IdempotencyKey<'_>>,
        now: Timestamp,
    ) -> Result<Accepted, SendError> {
        let request_hash = new.request_hash();
        let guard = idempotency_key.map(|key| Guard {
            key,
            expires_at: now.plus(IDEMPOTENCY_TTL).unix_seconds(),
        });
        let keys = Prior::keys(guard.as_ref(), &new.to);
        let items = self.store.items(&keys).await?;
        let prior = Prior::read(&items, guard.as_ref(), &new.to)?;
        if let Some(record) = prior.record {
            return self.replay(record, &request_hash).await;
        }
        match self
            .accept(new, &prior, guard, |_| Ok(Vec::new()), now)
            .await?
        {
            Outcome::Accepted(accepted) => Ok(accepted),
            Outcome::Existing(record) => self.replay(record, &request_hash).await,
            Outcome::Refused => Err(SendError::Store(StoreError::Cancelled {
                operation: "TransactWriteItems",
                reasons: "a condition of the send failed".into(),
            })),
        }
    }

    /// Where `new` would stand if accepted at `now`, given what was read: the decision
    /// without the write (the send itself, and previews).
    pub fn plan(&self, new: &NewSend, prior: &Prior, now: Timestamp) -> Result<Plan, SendError> {
        if prior.opted_out {
            return Err(SendError::OptedOut);
        }
        let existing = prior.conversation.as_ref();
        let conversation_id = match (existing, &new.conversation_id) {
            (Some(c), Some(asked)) if &c.conversation_id != asked => {
                return Err(SendError::ConversationMismatch)
            }
            (None, Some(_)) => return Err(SendError::ConversationMismatch),
            (Some(c), _) => c.conversation_id.clone(),
            (None, None) => ulid::Ulid::new().to_string(),
        };
        let zones = self.zones(new, existing);
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
        let accepted = Accepted {
            message_id,
            conversation_id,
            status: state,
            send_at: due,
            time_zone: zones.name(),
            time_zone_source: zones.source,
            urgent: new.urgent,
            segments: new.segments.count,
            encoding: new.segments.encoding.as_str().to_owned(),
        };
        Ok(Plan {
            requested,
            accepted,
            index_minute,
            delay: match decision {
                Decision::Queue { delay, .. } => Some(delay),
                _ => None,
            },
        })
    }

    /// The zones quiet hours are judged in for `new` (see `schedule::choose`).
    pub fn zones(&self, new: &NewSend, conversation: Option<&Conversation>) -> Zones {
        let tenant_zone = conversation
            .and_then(|c| c.tenant_time_zone.as_deref())
            .and_then(|name| schedule::parse_zone(name).ok());
        schedule::choose(
            new.time_zone.as_ref(),
            tenant_zone.as_ref(),
            new.to.e164.as_str(),
            &self.policy.default_zone,
        )
    }

    /// Plans `new` and writes it in one transaction with its guard record (an
    /// `Idempotency-Key`'s, or a rule's business key) and the `extra` writes made for it; enqueues it when
    /// due soon. `Existing` when the guard was there first, `Refused` when an `extra`
    /// condition failed: nothing was written in either case.
    pub async fn accept(
        &self,
        new: &NewSend,
        prior: &Prior,
        guard: Option<Guard<'_>>,
        extra: impl FnOnce(&Accepted) -> Result<Vec<TransactWriteItem>, StoreError>,
        now: Timestamp,
    ) -> Result<Outcome, SendError> {
        let plan = self.plan(new, prior, now)?;
        let accepted = plan.accepted;
        let extra = extra(&accepted)?;
        let message_id = accepted.message_id.clone();
        let state = accepted.status;
        tracing::Span::current().record("message_id", message_id.as_str());
        let outbound = NewOutbound {
            message_id: message_id.clone(),
            conversation_id: accepted.conversation_id.clone(),
            to: &new.to,
            body: &new.body,
            media_urls: &new.media_urls,
            workflow_type: new.workflow_type.as_deref(),
            workflow_id: new.workflow_id.as_deref(),
            segments: new.segments,
            created_at: now,
            state,
            reason: (state == PipelineState::Deferred).then_some("quiet_hours"),
            send_at: accepted.send_at,
            not_after: new.not_after,
            time_zone: accepted.time_zone.clone(),
            time_zone_source: accepted.time_zone_source,
            urgent: new.urgent,
            index_minute: plan.index_minute,
            idempotency: guard.map(|g| Idempotency {
                key: g.key,
                request_hash: new.request_hash(),
                response: serde_json::to_string(&accepted).unwrap_or_default(),
                expires_at: g.expires_at,
            }),
            cause: new.cause.as_ref(),
            extra,
            trace: new.trace.as_ref(),
        };
        match self.store.create_outbound(&outbound).await? {
            CreateOutcome::Replay(record) => return Ok(Outcome::Existing(record)),
            CreateOutcome::ExtraRefused => return Ok(Outcome::Refused),
            CreateOutcome::Created => {}
        }
        if let Some(delay) = plan.delay {
            let job = SendJob::new(
                message_id.clone(),
                keys::conversation_pk(new.to.channel, &new.to.e164),
                keys::message_sk(&message_id),
            )
            .traced(new.trace.clone());
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
            time_zone_source = ?accepted.time_zone_source,
            segments = new.segments.count,
            "outbound message accepted"
        );
        Ok(Outcome::Accepted(accepted))
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
            let job =
                SendJob::new(m.message_id, record.message_pk, record.message_sk).traced(m.trace);
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
