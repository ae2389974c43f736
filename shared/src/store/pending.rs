//! Transitions of the pipeline state and the due index they keep (see `crate::pending` for
//! the policy, `keys::DUE_INDEX` for the layout). Every transition is one conditional update on
//! the state and `version` the writer read, so of a release, a claim, a cancel and a STOP racing
//! for one message exactly one wins; the others see their condition fail and read again.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use serde_dynamo::to_attribute_value;

use super::items::{Message, StatusChange};
use super::{aws_error, keys, s, update_applied, Store, StoreError};
use crate::delivery::DeliveryStatus;
use crate::phone::{Channel, E164};
use crate::pipeline::PipelineState;
use crate::time::Timestamp;

/// TransactWriteItems takes at most 100 items.
pub const MAX_TRANSACTION: usize = 100;

/// What a transition does to the message's place in the due index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexChange {
    Keep,
    /// Filed under `minute`, sorted by `due`.
    File {
        minute: Timestamp,
        due: Timestamp,
    },
    /// Out of the index: the message is final.
    Remove,
}

/// One change of a message's state, conditional on the message as it was read.
#[derive(Debug, Clone)]
pub struct Transition<'a> {
    pub message: &'a Message,
    pub to: PipelineState,
    pub reason: Option<&'a str>,
    pub index: IndexChange,
    /// A new due time (a deferral moves it).
    pub send_at: Option<Timestamp>,
    /// Set on canceled and expired messages, so the change is published like Twilio's.
    pub delivery_status: Option<DeliveryStatus>,
    /// Who made it, for the history: `api`, `dispatcher`, `worker`, `opt_out`.
    pub source: &'a str,
    /// Counts an enqueue by the sweep (`sweeps + 1`).
    pub swept: bool,
    pub now: Timestamp,
}

/// An opaque position in a paged read (the last evaluated key).
pub type PageKey = HashMap<String, AttributeValue>;

pub(crate) fn version_condition(version: u64) -> &'static str {
    if version == 0 {
        "(attribute_not_exists(version) OR version = :version)"
    } else {
        "version = :version"
    }
}

pub(crate) fn number(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

impl Transition<'_> {
    pub(crate) fn update(&self, table: &str) -> Result<Update, StoreError> {
        let m = self.message;
        // A change of state is a new version; moving a message to another minute of the index,
        // or enqueueing it again, is not (a live claim's worker must still own it, and a claim
        // read before a sweep is still the claim of the same message).
        let bump = self.to != m.status;
        let mut set = vec!["#status = :to".to_owned(), "updated_at = :now".to_owned()];
        if bump {
            set.push("version = :next".to_owned());
        }
        let mut remove = Vec::new();
        let mut update = Update::builder()
            .table_name(table)
            .key("pk", s(&m.pk))
            .key("sk", s(&m.sk))
            .condition_expression(format!(
                "#status = :from AND {}",
                version_condition(m.version)
            ))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":from", s(m.status.as_str()))
            .expression_attribute_values(":version", number(m.version))
            .expression_attribute_values(":to", s(self.to.as_str()))
            .expression_attribute_values(":now", s(self.now.to_string()));
        if bump {
            update = update.expression_attribute_values(":next", number(m.version + 1));
        }
        match self.reason {
            Some(reason) => {
                set.push("status_reason = :reason".into());
                update = update.expression_attribute_values(":reason", s(reason));
            }
            None => remove.push("status_reason"),
        }
        if let Some(at) = self.send_at {
            set.push("send_at = :send_at".into());
            update = update.expression_attribute_values(":send_at", s(at.to_string()));
        }
        match self.index {
            IndexChange::Keep => {}
            IndexChange::File { minute, due } => {
                set.push("gsi2pk = :gsi2pk, gsi2sk = :gsi2sk".into());
                update = update
                    .expression_attribute_values(
                        ":gsi2pk",
                        s(keys::due_gsi2pk(minute, keys::due_shard(&m.message_id))),
                    )
                    .expression_attribute_values(
                        ":gsi2sk",
                        s(keys::due_gsi2sk(due, &m.message_id)),
                    );
            }
            IndexChange::Remove => remove.extend(["gsi2pk", "gsi2sk"]),
        }
        if self.swept {
            set.push("sweeps = if_not_exists(sweeps, :zero) + :one".into());
            update = update
                .expression_attribute_values(":zero", number(0))
                .expression_attribute_values(":one", number(1));
        }
        if let Some(status) = self.delivery_status {
            set.push("delivery_status = :delivery".into());
            update = update.expression_attribute_values(":delivery", s(status.as_str()));
        }
        if self.to != m.status {
            let entry = StatusChange {
                status: self.to.as_str().into(),
                at: self.now.to_string(),
                error_code: self.reason.map(str::to_owned),
                source: self.source.into(),
            };
            set.push(
                "status_history = list_append(if_not_exists(status_history, :empty), :entry)"
                    .into(),
            );
            update = update
                .expression_attribute_values(":empty", AttributeValue::L(vec![]))
                .expression_attribute_values(
                    ":entry",
                    AttributeValue::L(vec![to_attribute_value(&entry)?]),
                );
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        Ok(update.update_expression(expression).build()?)
    }
}

impl Store {
    /// Applies one transition; `Ok(false)` when the message is no longer as read.
    pub async fn transition(&self, t: &Transition<'_>) -> Result<bool, StoreError> {
        let item = TransactWriteItem::builder()
            .update(t.update(&self.table)?)
            .build();
        match self.transact(vec![item]).await {
            Ok(()) => Ok(true),
            Err(super::TxError::ConditionFailed(_)) => Ok(false),
            Err(super::TxError::Failed(e)) => Err(e),
        }
    }

    /// Applies independent transitions in as few transactions as possible; which were applied.
    pub async fn transitions(&self, all: &[Transition<'_>]) -> Result<Vec<bool>, StoreError> {
        let mut applied = Vec::with_capacity(all.len());
        for chunk in all.chunks(MAX_TRANSACTION) {
            let items = chunk
                .iter()
                .map(|t| {
                    Ok(TransactWriteItem::builder()
                        .update(t.update(&self.table)?)
                        .build())
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            applied.extend(self.transact_each(items).await?);
        }
        Ok(applied)
    }

    /// One page of a due-index bucket, oldest due first.
    pub async fn due_page(
        &self,
        minute: Timestamp,
        shard: u32,
        start: Option<PageKey>,
    ) -> Result<(Vec<Message>, Option<PageKey>), StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(keys::DUE_INDEX)
            .key_condition_expression("gsi2pk = :bucket")
            .expression_attribute_values(":bucket", s(keys::due_gsi2pk(minute, shard)))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| aws_error("Query", &e))?;
        // One item that does not read as a message must not stop the minute (and every
        // minute after it): it is logged and left.
        let messages = out
            .items
            .unwrap_or_default()
            .into_iter()
            .filter_map(|item| {
                serde_dynamo::from_item::<_, Message>(item)
                    .inspect_err(|e| {
                        tracing::error!(error = %e, bucket_shard = shard, "an item in the due index is not a message; skipped")
                    })
                    .ok()
            })
            .collect();
        Ok((messages, out.last_evaluated_key))
    }

    /// The last minute the dispatcher finished, if it ever ran.
    pub async fn dispatch_checkpoint(&self) -> Result<Option<Timestamp>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Checkpoint {
            minute: Timestamp,
        }
        let item: Option<Checkpoint> = self
            .get(keys::DISPATCH_PK.to_owned(), keys::DISPATCH_SK)
            .await?;
        Ok(item.map(|c| c.minute))
    }

    /// Moves the checkpoint from `from` to `to`; `Ok(false)` if another dispatcher moved it.
    pub async fn advance_dispatch_checkpoint(
        &self,
        from: Option<Timestamp>,
        to: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::DISPATCH_PK))
            .key("sk", s(keys::DISPATCH_SK))
            // `minute` is one of DynamoDB's reserved words.
            .update_expression("SET #minute = :to, entity = :entity")
            .expression_attribute_names("#minute", "minute")
            .expression_attribute_values(":to", s(to.to_string()))
            .expression_attribute_values(":entity", s(keys::Entity::DispatchCheckpoint.as_str()));
        request = match from {
            Some(from) => request
                .condition_expression("#minute = :from")
                .expression_attribute_values(":from", s(from.to_string())),
            None => request.condition_expression("attribute_not_exists(#minute)"),
        };
        update_applied(request.send().await)
    }

    /// Every pending (scheduled, deferred or queued) message to a number, on any channel.
    pub async fn pending_to(&self, phone: &E164) -> Result<Vec<Message>, StoreError> {
        let mut found = Vec::new();
        for channel in [Channel::Sms, Channel::Whatsapp] {
            let mut start: Option<PageKey> = None;
            loop {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .filter_expression("#status IN (:scheduled, :deferred, :queued)")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":pk", s(keys::conversation_pk(channel, phone)))
                    .expression_attribute_values(":prefix", s(keys::MESSAGE_PREFIX))
                    .expression_attribute_values(":scheduled", s(PipelineState::Scheduled.as_str()))
                    .expression_attribute_values(":deferred", s(PipelineState::Deferred.as_str()))
                    .expression_attribute_values(":queued", s(PipelineState::Queued.as_str()))
                    .consistent_read(true)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| aws_error("Query", &e))?;
                found.extend(serde_dynamo::from_items::<_, Message>(
                    out.items.unwrap_or_default(),
                )?);
                start = out.last_evaluated_key;
                if start.is_none() {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// One page of the due index (every outbound message not yet final) that matches
    /// `filter`, in index order. A page may hold fewer than `limit` (DynamoDB filters after
    /// reading) and still have a next one.
    pub async fn pending_page(
        &self,
        filter: &QueueFilter,
        limit: i32,
        start: Option<PageKey>,
    ) -> Result<(Vec<Message>, Option<PageKey>), StoreError> {
        let mut scan = self
            .client
            .scan()
            .table_name(&self.table)
            .index_name(keys::DUE_INDEX)
            .limit(limit)
            .set_exclusive_start_key(start);
        let mut conditions = Vec::new();
        if !filter.states.is_empty() {
            let names: Vec<String> = (0..filter.states.len()).map(|i| format!(":s{i}")).collect();
            conditions.push(format!("#status IN ({})", names.join(", ")));
            scan = scan.expression_attribute_names("#status", "status");
            for (name, state) in names.iter().zip(&filter.states) {
                scan = scan.expression_attribute_values(name, s(state.as_str()));
            }
        }
        if let Some(phone) = &filter.phone {
            conditions.push("to_e164 = :phone".into());
            scan = scan.expression_attribute_values(":phone", s(phone.as_str()));
        }
        if let Some(from) = filter.due_from {
            conditions.push("send_at >= :from".into());
            scan = scan.expression_attribute_values(":from", s(from.to_string()));
        }
        if let Some(to) = filter.due_to {
            conditions.push("send_at < :to".into());
            scan = scan.expression_attribute_values(":to", s(to.to_string()));
        }
        if !conditions.is_empty() {
            scan = scan.filter_expression(conditions.join(" AND "));
        }
        let out = scan.send().await.map_err(|e| aws_error("Scan", &e))?;
        let messages = serde_dynamo::from_items(out.items.unwrap_or_default())?;
        Ok((messages, out.last_evaluated_key))
    }
}

/// Which pending messages a queue listing wants.
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    /// Any of these states (all when empty).
    pub states: Vec<PipelineState>,
    pub phone: Option<E164>,
    /// Due at or after.
    pub due_from: Option<Timestamp>,
    /// Due before.
    pub due_to: Option<Timestamp>,
}
