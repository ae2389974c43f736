//! Outbound messages: the intent is written before Twilio is called, the send worker claims it
//! (see `sending`), and Twilio's status only ever moves forward.

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};
use serde_dynamo::to_attribute_value;

use super::inbound::put;
use super::items::{Direction, Message, ParkedCallback, SidGuard, StatusChange};
use super::{aws_error, keys, s, sending, Store, StoreError, TxError};
use crate::delivery::DeliveryStatus;
use crate::language::Language;
use crate::phone::Address;
use crate::pipeline::PipelineState;
use crate::schedule::ZoneSource;
use crate::segments::Segments;
use crate::time::Timestamp;
use crate::twilio::MessageSid;

/// How often optimistic updates of one message's status are retried under contention.
const STATUS_ATTEMPTS: usize = 8;

pub struct NewOutbound<'a> {
    pub message_id: String,
    pub conversation_id: String,
    pub to: &'a Address,
    pub body: &'a str,
    pub media_urls: &'a [String],
    pub workflow_type: Option<&'a str>,
    pub workflow_id: Option<&'a str>,
    pub segments: Segments,
    pub created_at: Timestamp,
    /// `queued`, `scheduled` or `deferred`, as the pending policy decided.
    pub state: PipelineState,
    pub reason: Option<&'static str>,
    pub send_at: Timestamp,
    pub not_after: Option<Timestamp>,
    pub time_zone: String,
    pub time_zone_source: ZoneSource,
    pub urgent: bool,
    /// The due-index minute: its release, or when to sweep it if still queued.
    pub index_minute: Timestamp,
    pub idempotency: Option<Idempotency<'a>>,
    /// Made by an event rule.
    pub cause: Option<&'a crate::rules::Cause>,
    /// Further conditional writes that stand or fall with the message (a rule's cap and
    /// activity entry).
    pub extra: Vec<TransactWriteItem>,
    /// The trace the send was accepted in, stored on the message.
    pub trace: Option<&'a crate::xray::TraceHeader>,
}

impl<'a> NewOutbound<'a> {
    /// A message to send now, queued, with no key: what tests and benchmarks write directly
    /// (the send use case decides the rest for real requests).
    pub fn queued(message_id: String, to: &'a Address, body: &'a str, now: Timestamp) -> Self {
        Self {
            message_id,
            conversation_id: ulid::Ulid::new().to_string(),
            to,
            body,
            media_urls: &[],
            workflow_type: None,
            workflow_id: None,
            segments: crate::segments::count(body),
            created_at: now,
            state: PipelineState::Queued,
            reason: None,
            send_at: now,
            not_after: None,
            time_zone: "UTC".into(),
            time_zone_source: ZoneSource::Default,
            urgent: false,
            index_minute: now.plus(std::time::Duration::from_secs(60)).minute(),
            idempotency: None,
            cause: None,
            extra: Vec::new(),
            trace: None,
        }
    }
}

/// What an `Idempotency-Key` stores: the request's hash and the response it got.
/// A caller's `Idempotency-Key`, with the API key that sent it: keys are per caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencyKey<'a> {
    pub api_key_id: &'a str,
    pub key: &'a str,
}

impl IdempotencyKey<'_> {
    pub fn pk(&self) -> String {
        keys::idempotency_pk(self.api_key_id, self.key)
    }
}

pub struct Idempotency<'a> {
    pub key: IdempotencyKey<'a>,
    pub request_hash: String,
    pub response: String,
    /// Epoch seconds; DynamoDB's TTL removes the record after it.
    pub expires_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub pk: String,
    pub sk: String,
    #[serde(default = "idempotency_entity")]
    pub entity: keys::Entity,
    pub request_hash: String,
    pub response: String,
    pub message_pk: String,
    pub message_sk: String,
    pub expires_at: i64,
}

fn idempotency_entity() -> keys::Entity {
    keys::Entity::Idempotency
}

#[derive(Debug)]
pub enum CreateOutcome {
    Created,
    /// The idempotency key was used before; nothing was written.
    Replay(IdempotencyRecord),
    /// One of the `extra` writes' conditions failed; nothing was written.
    ExtraRefused,
}

/// Where a delivery status came from, as the history records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusSource {
    Callback,
    /// Fetched from Twilio by the dispatcher when no final callback came.
    Poll,
}

impl StatusSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Callback => "callback",
            Self::Poll => "poll",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusOutcome {
    Applied {
        advanced: bool,
    },
    Duplicate,
    /// No message has this SID yet; the callback is kept on the SID guard until one does.
    Parked,
}

impl Store {
    pub async fn message(&self, pk: &str, sk: &str) -> Result<Option<Message>, StoreError> {
        self.get(pk.to_owned(), sk).await
    }

    pub async fn idempotency(
        &self,
        key: IdempotencyKey<'_>,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.get(key.pk(), keys::IDEMPOTENCY_SK).await
    }

    /// Writes the outbound message (status `queued`), its conversation and, with a key, the
    /// idempotency record — in one transaction, so a replayed key creates nothing.
    pub async fn create_outbound(&self, n: &NewOutbound<'_>) -> Result<CreateOutcome, StoreError> {
        let pk = keys::conversation_pk(n.to.channel, &n.to.e164);
        let sk = keys::message_sk(&n.message_id);
        let mut items = Vec::new();
        if let Some(idem) = &n.idempotency {
            let record = IdempotencyRecord {
                pk: idem.key.pk(),
                sk: keys::IDEMPOTENCY_SK.into(),
                entity: keys::Entity::Idempotency,
                request_hash: idem.request_hash.clone(),
                response: idem.response.clone(),
                message_pk: pk.clone(),
                message_sk: sk.clone(),
                expires_at: idem.expires_at,
            };
            items.push(put(&self.table, serde_dynamo::to_item(&record)?)?);
        }
        let created_at = n.created_at.to_string();
        let message = Message {
            pk: pk.clone(),
            sk,
            entity: keys::Entity::Message,
            gsi1pk: keys::message_gsi1pk(&n.message_id),
            gsi1sk: keys::MESSAGE_GSI1SK.into(),
            gsi2pk: Some(keys::due_gsi2pk(
                n.index_minute,
                keys::due_shard(&n.message_id),
            )),
            gsi2sk: Some(keys::due_gsi2sk(n.send_at, &n.message_id)),
            message_id: n.message_id.clone(),
            direction: Direction::Outbound,
            channel: n.to.channel,
            body: self.seal(n.body, &n.message_id)?,
            twilio_sid: None,
            account_sid: None,
            from_e164: None,
            from_original: String::new(),
            to_e164: n.to.e164.clone(),
            to_original: n.to.original.clone(),
            num_media: n.media_urls.len() as u32,
            media_urls: n
                .media_urls
                .iter()
                .map(|url| self.seal(url, &n.message_id))
                .collect::<Result<_, _>>()?,
            media_content_types: Vec::new(),
            language: Language::Unknown,
            language_confidence: 0.0,
            keyword: None,
            status: n.state,
            status_reason: n.reason.map(str::to_owned),
            version: 0,
            created_at: n.created_at,
            send_at: Some(n.send_at),
            not_after: n.not_after,
            time_zone: Some(n.time_zone.clone()),
            time_zone_source: Some(n.time_zone_source),
            urgent: n.urgent,
            raw_payload: None,
            delivery_status: None,
            status_history: vec![StatusChange {
                status: n.state.as_str().into(),
                at: created_at.clone(),
                error_code: None,
                source: "api".into(),
            }],
            error_code: None,
            error_message: None,
            attempts: 0,
            claimed_at: None,
            sweeps: 0,
            ambiguous: false,
            segments: Some(n.segments.count),
            encoding: Some(n.segments.encoding.as_str().into()),
            workflow_type: n.workflow_type.map(str::to_owned),
            workflow_id: n.workflow_id.map(str::to_owned),
            callbacks_seen: Vec::new(),
            status_version: 0,
            idempotency_pk: n.idempotency.as_ref().map(|i| i.key.pk()),
            cause: n.cause.cloned(),
            resend_of: None,
            resent_as: None,
            trace: n.trace.cloned(),
        };
        items.push(put(&self.table, serde_dynamo::to_item(&message)?)?);
        items.push(
            TransactWriteItem::builder()
                .update(outbound_conversation_update(&self.table, pk, n)?)
                .build(),
        );
        let extra_from = items.len();
        items.extend(n.extra.iter().cloned());
        match (self.transact(items).await, &n.idempotency) {
            (Ok(()), _) => Ok(CreateOutcome::Created),
            (Err(TxError::ConditionFailed(i)), _) if i >= extra_from => {
                Ok(CreateOutcome::ExtraRefused)
            }
            (Err(TxError::ConditionFailed(0)), Some(idem)) => {
                match self.idempotency(idem.key).await? {
                    Some(record) => Ok(CreateOutcome::Replay(record)),
                    None => Err(StoreError::Cancelled {
                        operation: "TransactWriteItems",
                        reasons: "idempotency record vanished".into(),
                    }),
                }
            }
            (Err(e), _) => Err(e.into()),
        }
    }

    /// Records Twilio's acceptance: [`Store::record_sid`], then [`Store::merge_parked`].
    ///
    /// The two steps converge if the process dies between them (or during the merge): the
    /// merge is idempotent and is run again by every later status for the SID, callback or
    /// poll, until the parked list is gone (docs/architecture.md, "Status callbacks").
    pub async fn record_submitted(
        &self,
        message: &Message,
        sid: &MessageSid,
        status: DeliveryStatus,
        now: &str,
        poll_minute: Timestamp,
    ) -> Result<(), StoreError> {
        self.record_sid(message, sid, status, now, poll_minute)
            .await?;
        self.merge_parked(sid).await
    }

    /// The SID and status on the message and the SID guard pointing to it, in one
    /// transaction. The status is set only if no callback (found by the message id in its
    /// URL) set one first: Twilio's answer to the create (`queued`, `accepted`) ranks below
    /// every status a callback brings (`sending::submitted_update`).
    pub async fn record_sid(
        &self,
        message: &Message,
        sid: &MessageSid,
        status: DeliveryStatus,
        now: &str,
        poll_minute: Timestamp,
    ) -> Result<(), StoreError> {
        let items = |set_status: bool| -> Result<Vec<TransactWriteItem>, StoreError> {
            let update_message = sending::submitted_update(
                &self.table,
                message,
                sid,
                status,
                set_status,
                now,
                poll_minute,
            )?
            .build()?;
            let point_guard =
                sending::guard_update(&self.table, message, sid, now, false).build()?;
            Ok(vec![
                TransactWriteItem::builder().update(update_message).build(),
                TransactWriteItem::builder().update(point_guard).build(),
            ])
        };
        match self.transact(items(true)?).await {
            // A callback by id set a status first; or the claim is lost, and the second try
            // fails the same way and says so.
            Err(TxError::ConditionFailed(0)) => {}
            other => return other.map_err(StoreError::from),
        }
        self.transact(items(false)?).await.map_err(StoreError::from)
    }

    /// Merges the status callbacks parked on `sid`'s guard into the message the guard names,
    /// then clears them. Idempotent: a callback merged twice is a duplicate (`callbacks_seen`),
    /// and once the guard names a message nothing parks on it any more, so clearing the list
    /// loses nothing. A guard that names no message yet is left alone.
    pub async fn merge_parked(&self, sid: &MessageSid) -> Result<(), StoreError> {
        let Some(guard) = self.sid_guard(sid).await? else {
            return Ok(());
        };
        self.merge_parked_on(&guard).await
    }

    async fn merge_parked_on(&self, guard: &SidGuard) -> Result<(), StoreError> {
        let (Some(pk), Some(sk), Some(id)) = (
            guard.message_pk.as_deref(),
            guard.message_sk.as_deref(),
            guard.message_id.as_deref(),
        ) else {
            return Ok(());
        };
        if guard.parked.is_empty() {
            return Ok(());
        }
        for parked in &guard.parked {
            let status = DeliveryStatus::parse(&parked.status);
            // `None`: the message moved (an erasure) since; its guard is repointed and the
            // next status for the SID merges into the new place.
            if self
                .apply_to_message(
                    pk,
                    sk,
                    status,
                    parked.error_code.as_deref(),
                    &parked.at,
                    StatusSource::Callback,
                )
                .await?
                .is_none()
            {
                return Ok(());
            }
        }
        let cleared = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&guard.pk))
            .key("sk", s(keys::SID_SK))
            .condition_expression("message_id = :id")
            .expression_attribute_values(":id", s(id))
            .update_expression("REMOVE parked")
            .send()
            .await;
        match cleared {
            Ok(_) => Ok(()),
            // Gone or repointed meanwhile: nothing of ours to clear.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(aws_error("UpdateItem", &e)),
        }
    }

    /// Applies a status callback that names its message (`?m=<message_id>` in the
    /// `StatusCallback` URL): straight to that message, whether or not the worker has recorded
    /// the SID yet, so such callbacks never park. Handled by SID ([`Store::apply_status`])
    /// instead when the id names no live outbound message, or one Twilio knows under another
    /// SID.
    pub async fn apply_status_by_id(
        &self,
        message_id: &str,
        sid: &MessageSid,
        status: DeliveryStatus,
        error_code: Option<&str>,
        at: &str,
    ) -> Result<StatusOutcome, StoreError> {
        let message = match self.lookup_message(message_id).await? {
            Some(super::MessageLookup::Live(m))
                if m.direction == Direction::Outbound
                    && m.twilio_sid.as_deref().is_none_or(|s| s == sid.as_str()) =>
            {
                m
            }
            _ => return self.apply_status(sid, status, error_code, at).await,
        };
        if message.twilio_sid.is_some() {
            // Parked callbacks left by an interrupted merge converge here too.
            self.merge_parked(sid).await?;
        }
        match self
            .apply_to_message(
                &message.pk,
                &message.sk,
                status,
                error_code,
                at,
                StatusSource::Callback,
            )
            .await?
        {
            Some(outcome) => Ok(outcome),
            // Moved (an erasure) since it was read: its guard knows where.
            None => self.apply_status(sid, status, error_code, at).await,
        }
    }

    /// Gives a claimed message back to the queue after a transient failure, filed in the due
    /// index for `sweep_minute` in case its job is lost too.
    pub async fn release(
        &self,
        message: &Message,
        error: &str,
        ambiguous: bool,
        sweep_minute: Timestamp,
    ) -> Result<(), StoreError> {
        let due = message.send_at.unwrap_or(sweep_minute);
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&message.pk))
            .key("sk", s(&message.sk))
            .condition_expression(sending::UNDER_OUR_CLAIM)
            .expression_attribute_values(":claimed", sending::claimed_version(message))
            .update_expression(
                "SET #status = :queued, last_error = :error, ambiguous = :ambiguous, \
                 status_reason = :retry, version = if_not_exists(version, :zero) + :one, \
                 gsi2pk = :gsi2pk, gsi2sk = :gsi2sk",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":sending", sending::state(PipelineState::Sending))
            .expression_attribute_values(":queued", sending::state(PipelineState::Queued))
            .expression_attribute_values(":error", s(error))
            .expression_attribute_values(":ambiguous", AttributeValue::Bool(ambiguous))
            .expression_attribute_values(":retry", s("retry"))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(
                ":gsi2pk",
                s(keys::due_gsi2pk(
                    sweep_minute,
                    keys::due_shard(&message.message_id),
                )),
            )
            .expression_attribute_values(":gsi2sk", s(keys::due_gsi2sk(due, &message.message_id)))
            .send()
            .await
            .map_err(|e| aws_error("UpdateItem", &e))?;
        Ok(())
    }

    /// Ends a claimed message: `failed` (with Twilio's code) or `canceled` (never sent).
    pub async fn finish_unsent(
        &self,
        message: &Message,
        outcome: DeliveryStatus,
        error_code: &str,
        error_message: &str,
        now: &str,
    ) -> Result<(), StoreError> {
        let entry = StatusChange {
            status: outcome.as_str().into(),
            at: now.into(),
            error_code: Some(error_code.into()),
            source: "worker".into(),
        };
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&message.pk))
            .key("sk", s(&message.sk))
            .condition_expression(sending::UNDER_OUR_CLAIM)
            .expression_attribute_values(":claimed", sending::claimed_version(message))
            .update_expression(
                "SET #status = :outcome, delivery_status = :outcome, error_code = :code, \
                 error_message = :message, finished_at = :now, \
                 version = if_not_exists(version, :zero) + :one, \
                 status_history = list_append(if_not_exists(status_history, :empty), :entry) \
                 REMOVE gsi2pk, gsi2sk",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":sending", sending::state(PipelineState::Sending))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":outcome", s(outcome.as_str()))
            .expression_attribute_values(":code", s(error_code))
            .expression_attribute_values(":message", s(error_message))
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(":empty", AttributeValue::L(vec![]))
            .expression_attribute_values(
                ":entry",
                AttributeValue::L(vec![to_attribute_value(&entry)?]),
            )
            .send()
            .await
            .map_err(|e| aws_error("UpdateItem", &e))?;
        Ok(())
    }

    /// Applies a status callback for `sid`: to its message when the SID is recorded, else
    /// parked on the SID guard until the send worker records it.
    pub async fn apply_status(
        &self,
        sid: &MessageSid,
        status: DeliveryStatus,
        error_code: Option<&str>,
        at: &str,
    ) -> Result<StatusOutcome, StoreError> {
        self.apply_status_from(sid, status, error_code, at, StatusSource::Callback)
            .await
    }

    /// [`Store::apply_status`] for a status learnt some other way (`poll`: the dispatcher
    /// fetched it from Twilio because no final callback came).
    pub async fn apply_status_from(
        &self,
        sid: &MessageSid,
        status: DeliveryStatus,
        error_code: Option<&str>,
        at: &str,
        source: StatusSource,
    ) -> Result<StatusOutcome, StoreError> {
        for _ in 0..STATUS_ATTEMPTS {
            let guard: Option<SidGuard> = self.sid_guard(sid).await?;
            // Callbacks parked before the SID was recorded and not merged yet (the worker
            // stopped between recording and merging): merged first, by every later status.
            if let Some(guard) = guard.as_ref().filter(|g| !g.parked.is_empty()) {
                self.merge_parked_on(guard).await?;
            }
            if let Some((pk, sk)) = guard
                .as_ref()
                .and_then(|g| g.message_pk.clone().zip(g.message_sk.clone()))
            {
                match self
                    .apply_to_message(&pk, &sk, status, error_code, at, source)
                    .await?
                {
                    Some(outcome) => return Ok(outcome),
                    // The message moved (an erasure) after the guard was read: the guard
                    // names its new place once the move is done; read it again.
                    None => {
                        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
                        continue;
                    }
                }
            }
            let parked = ParkedCallback {
                status: status.as_str().into(),
                error_code: error_code.map(str::to_owned),
                at: at.into(),
            };
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(keys::sid_pk(sid)))
                .key("sk", s(keys::SID_SK))
                .condition_expression("attribute_not_exists(message_id)")
                .update_expression(
                    "SET parked = list_append(if_not_exists(parked, :empty), :entry), \
                     created_at = if_not_exists(created_at, :at)",
                )
                .expression_attribute_values(":empty", AttributeValue::L(vec![]))
                .expression_attribute_values(
                    ":entry",
                    AttributeValue::L(vec![to_attribute_value(&parked)?]),
                )
                .expression_attribute_values(":at", s(at))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(StatusOutcome::Parked),
                // The worker recorded the SID meanwhile: go round and apply it directly.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
                Err(e) => return Err(aws_error("UpdateItem", &e)),
            }
        }
        Err(StoreError::Cancelled {
            operation: "UpdateItem",
            reasons: "status callback contention".into(),
        })
    }

    /// `Ok(None)`: no message at `pk`/`sk` (moved by an erasure since the guard was read).
    /// Works on erased messages too (they keep their statuses), so a late callback lands in
    /// the erased copy and never recreates an item under the number's key.
    async fn apply_to_message(
        &self,
        pk: &str,
        sk: &str,
        status: DeliveryStatus,
        error_code: Option<&str>,
        at: &str,
        source: StatusSource,
    ) -> Result<Option<StatusOutcome>, StoreError> {
        let seen_key = format!("{}|{}", status.as_str(), error_code.unwrap_or(""));
        for _ in 0..STATUS_ATTEMPTS {
            let Some(message) = self.get::<StatusView>(pk.to_owned(), sk).await? else {
                return Ok(None);
            };
            if message.callbacks_seen.contains(&seen_key) {
                return Ok(Some(StatusOutcome::Duplicate));
            }
            let current = message.delivery_status.unwrap_or(DeliveryStatus::Unknown);
            let advanced = current.advances_to(status);
            let entry = StatusChange {
                status: status.as_str().into(),
                at: at.into(),
                error_code: error_code.map(str::to_owned),
                source: source.as_str().into(),
            };
            let mut expression = String::from(
                "SET status_history = list_append(if_not_exists(status_history, :empty), :entry), \
                 last_callback_at = :at, status_version = :next",
            );
            let mut update = Update::builder()
                .table_name(&self.table)
                .key("pk", s(pk))
                .key("sk", s(sk))
                .expression_attribute_values(":empty", AttributeValue::L(vec![]))
                .expression_attribute_values(
                    ":entry",
                    AttributeValue::L(vec![to_attribute_value(&entry)?]),
                )
                .expression_attribute_values(":at", s(at))
                .expression_attribute_values(
                    ":next",
                    AttributeValue::N((message.status_version + 1).to_string()),
                )
                .expression_attribute_values(":seen", AttributeValue::Ss(vec![seen_key.clone()]));
            if advanced {
                expression.push_str(", delivery_status = :status");
                update = update.expression_attribute_values(":status", s(status.as_str()));
                if let Some(code) = error_code {
                    expression.push_str(", error_code = :code");
                    update = update.expression_attribute_values(":code", s(code));
                }
            }
            expression.push_str(" ADD callbacks_seen :seen");
            // A final status ends the wait for one: out of the due index (no status poll). Not
            // while the message is still with the worker (a callback found by id can come
            // before the SID is recorded): the index is then the worker's safety net, and
            // recording files the message for a poll, which sees the final status and drops it.
            let submitted = message.status.is_none_or(|s| s == PipelineState::Submitted);
            if advanced && status.is_final() && message.gsi2pk.is_some() && submitted {
                expression.push_str(" REMOVE gsi2pk, gsi2sk");
            }
            // Items written before versioning (inbound ones) have no attribute: that is version 0.
            // The message must still be there: an update of a message moved away meanwhile
            // (an erasure) would otherwise create an item under the number's key.
            update = update
                .condition_expression(
                    "attribute_exists(pk) AND \
                     (attribute_not_exists(status_version) OR status_version = :version)",
                )
                .expression_attribute_values(
                    ":version",
                    AttributeValue::N(message.status_version.to_string()),
                );
            let touch_conversation = Update::builder()
                .table_name(&self.table)
                .key("pk", s(pk))
                .key("sk", s(keys::META))
                .update_expression("SET last_activity_at = :at")
                .expression_attribute_values(":at", s(at))
                .build()?;
            match self
                .transact(vec![
                    TransactWriteItem::builder()
                        .update(update.update_expression(expression).build()?)
                        .build(),
                    TransactWriteItem::builder()
                        .update(touch_conversation)
                        .build(),
                ])
                .await
            {
                Ok(()) => return Ok(Some(StatusOutcome::Applied { advanced })),
                Err(TxError::ConditionFailed(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Cancelled {
            operation: "TransactWriteItems",
            reasons: "status update contention".into(),
        })
    }
}

/// What a status update reads of a message: live and erased messages alike have it.
#[derive(Deserialize)]
struct StatusView {
    #[serde(default)]
    callbacks_seen: Vec<String>,
    #[serde(default)]
    delivery_status: Option<DeliveryStatus>,
    #[serde(default)]
    status_version: u64,
    #[serde(default)]
    gsi2pk: Option<String>,
    #[serde(default)]
    status: Option<PipelineState>,
}

fn outbound_conversation_update(
    table: &str,
    pk: String,
    n: &NewOutbound<'_>,
) -> Result<Update, StoreError> {
    let mut expression = String::from(
        "SET entity = :entity, channel = :channel, phone = :phone, \
         conversation_id = if_not_exists(conversation_id, :cid), \
         created_at = if_not_exists(created_at, :now), \
         last_message_at = :now, last_outbound_at = :now, \
         gsi1pk = :inbox, gsi1sk = :now",
    );
    let mut update = Update::builder()
        .table_name(table)
        .key("pk", s(pk))
        .key("sk", s(keys::META))
        .expression_attribute_values(":entity", s(keys::Entity::Conversation.as_str()))
        .expression_attribute_values(":channel", s(n.to.channel.as_str()))
        .expression_attribute_values(":phone", s(n.to.e164.as_str()))
        .expression_attribute_values(":cid", s(&n.conversation_id))
        .expression_attribute_values(":now", s(n.created_at.to_string()))
        .expression_attribute_values(":inbox", s(keys::CONVERSATIONS_GSI1PK))
        .expression_attribute_values(":one", AttributeValue::N("1".into()));
    if let Some(t) = n.workflow_type {
        expression.push_str(", workflow_type = :wtype");
        update = update.expression_attribute_values(":wtype", s(t));
    }
    if let Some(id) = n.workflow_id {
        expression.push_str(", workflow_id = :wid");
        update = update.expression_attribute_values(":wid", s(id));
    }
    expression.push_str(" ADD message_count :one, outbound_count :one");
    Ok(update.update_expression(expression).build()?)
}
