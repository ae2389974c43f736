//! The failed list: one small entry per failed outbound message (`FAILED` / `MSG#{ulid}`),
//! put by the stream processor when it counts the failure — a put of the same key, so a
//! replayed record changes nothing — and the link between a failed message and its re-send.

use aws_sdk_dynamodb::types::{ConditionCheck, Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::items::Message;
use super::pending::PageKey;
use super::{aws_error, keys, s, Store, StoreError, TxError};
use crate::time::Timestamp;

/// How long an entry stays listed (DynamoDB's TTL removes it; the message stays).
const FAILURE_DAYS: i64 = 30;

/// One failed message, as the list keeps it: where the message is, and when it failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FailureEntry {
    pk: String,
    sk: String,
    entity: keys::Entity,
    message_pk: String,
    message_sk: String,
    failed_at: Timestamp,
    expires_at: i64,
}

/// A message that failed, as the processor saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub message_pk: String,
    pub message_sk: String,
    pub message_id: String,
}

impl Failed {
    pub fn of(m: &Message) -> Self {
        Self {
            message_pk: m.pk.clone(),
            message_sk: m.sk.clone(),
            message_id: m.message_id.clone(),
        }
    }
}

/// Why a re-send could not be linked to the message it re-sends.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The failed message was re-sent already, as another message.
    #[error("the message was already re-sent as {0}")]
    AlreadyResent(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Lists `m` as failed (again: the same key, nothing new) — only while the message is
    /// where it was: an erasure moves it and deletes its entry in the same transaction, so a
    /// late replay of the failure cannot list an erased number again.
    pub async fn record_failure(&self, m: &Failed, at: Timestamp) -> Result<(), StoreError> {
        let entry = FailureEntry {
            pk: keys::FAILURES_PK.into(),
            sk: keys::failure_sk(&m.message_id),
            entity: keys::Entity::Failure,
            message_pk: m.message_pk.clone(),
            message_sk: m.message_sk.clone(),
            failed_at: at,
            expires_at: at.unix_seconds() + FAILURE_DAYS * 24 * 3600,
        };
        let items = vec![
            TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name(&self.table)
                        .key("pk", s(&m.message_pk))
                        .key("sk", s(&m.message_sk))
                        .condition_expression("attribute_exists(pk)")
                        .build()?,
                )
                .build(),
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(serde_dynamo::to_item(&entry)?))
                        .build()?,
                )
                .build(),
        ];
        match self.transact(items).await {
            Ok(()) | Err(TxError::ConditionFailed(_)) => Ok(()),
            Err(TxError::Failed(e)) => Err(e),
        }
    }

    /// One page of failed messages, the most recently made first: one Query for the entries
    /// and one BatchGetItem for the messages (as they are now: re-sent or not).
    pub async fn failures_page(
        &self,
        limit: i32,
        start: Option<PageKey>,
    ) -> Result<(Vec<Message>, Option<PageKey>), StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(keys::FAILURES_PK))
            .scan_index_forward(false)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| aws_error("Query", &e))?;
        let entries: Vec<FailureEntry> = serde_dynamo::from_items(out.items.unwrap_or_default())?;
        let wanted: Vec<_> = entries
            .iter()
            .map(|e| (e.message_pk.clone(), e.message_sk.clone()))
            .collect();
        let mut found = self.items(&wanted).await?;
        let messages = wanted
            .iter()
            .filter_map(|key| found.remove(key))
            .filter_map(|item| serde_dynamo::from_item::<_, Message>(item).ok())
            .collect();
        Ok((messages, out.last_evaluated_key))
    }

    /// Links `new` (a re-send) and `old` (the failed message it re-sends), both ways and
    /// together. Linking the same pair again changes nothing; `old` is re-sent only once.
    pub async fn link_resend(
        &self,
        old: &Message,
        new_pk: &str,
        new_message_id: &str,
    ) -> Result<(), LinkError> {
        let old_update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(&old.pk))
            .key("sk", s(&old.sk))
            .update_expression("SET resent_as = :new")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(resent_as) OR resent_as = :new)",
            )
            .expression_attribute_values(":new", s(new_message_id))
            .build()
            .map_err(StoreError::from)?;
        let new_update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(new_pk))
            .key("sk", s(keys::message_sk(new_message_id)))
            .update_expression("SET resend_of = :old")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":old", s(&old.message_id))
            .build()
            .map_err(StoreError::from)?;
        let items = vec![
            TransactWriteItem::builder().update(old_update).build(),
            TransactWriteItem::builder().update(new_update).build(),
        ];
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(TxError::ConditionFailed(0)) => {
                let current = self.message(&old.pk, &old.sk).await?;
                Err(LinkError::AlreadyResent(
                    current.and_then(|m| m.resent_as).unwrap_or_default(),
                ))
            }
            Err(e) => Err(LinkError::Store(e.into())),
        }
    }
}
