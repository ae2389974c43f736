//! The inbound backfill's state: one checkpoint per number (`BACKFILL#{number}`), and which
//! of a page's MessageSids Parley already holds (their `SID#` guards).

use std::collections::HashSet;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::{keys, Store, StoreError};
use crate::time::Timestamp;
use crate::twilio::MessageSid;

/// How far the backfill has come on one number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillCheckpoint {
    /// Every message this number received before `through` has been recorded, except those
    /// that appeared in Twilio's list only later (still `receiving`, or listed late): each
    /// run re-reads an overlap before it, so those are found by the next one.
    pub through: Timestamp,
    /// A run that stopped between pages (a timeout, a fault): the next one continues there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<BackfillResume>,
    /// Bumped by every write; each write is conditional on the version read, so two runs
    /// cannot move one checkpoint over each other.
    pub version: u64,
}

/// Where an unfinished run stands: every page before `next_page_uri` is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillResume {
    pub next_page_uri: String,
    /// The run's own `through` once it finishes (when it started).
    pub until: Timestamp,
    /// How far back it reads (its checkpoint minus the overlap).
    pub low: Timestamp,
}

#[derive(Serialize)]
struct CheckpointItem<'a> {
    pk: String,
    sk: &'static str,
    entity: keys::Entity,
    number: &'a str,
    #[serde(flatten)]
    checkpoint: &'a BackfillCheckpoint,
    updated_at: Timestamp,
}

impl Store {
    /// The number's checkpoint, if a backfill ever finished a page for it.
    pub async fn backfill_checkpoint(
        &self,
        number: &str,
    ) -> Result<Option<BackfillCheckpoint>, StoreError> {
        self.get(keys::backfill_pk(number), keys::BACKFILL_SK).await
    }

    /// Writes `next` if the stored checkpoint is still at `expected` (`None`: none stored);
    /// `Ok(false)` when another run moved it first.
    pub async fn save_backfill_checkpoint(
        &self,
        number: &str,
        expected: Option<u64>,
        next: &BackfillCheckpoint,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let item = serde_dynamo::to_item(CheckpointItem {
            pk: keys::backfill_pk(number),
            sk: keys::BACKFILL_SK,
            entity: keys::Entity::BackfillCheckpoint,
            number,
            checkpoint: next,
            updated_at: now,
        })?;
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let request = match expected {
            Some(version) => request
                .condition_expression("version = :version")
                .expression_attribute_values(":version", AttributeValue::N(version.to_string())),
            None => request.condition_expression("attribute_not_exists(pk)"),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(super::aws_error("PutItem", &e)),
        }
    }

    /// Which of `sids` Parley holds (a `SID#` guard exists): one consistent BatchGetItem per
    /// hundred, reading only the key.
    pub async fn recorded_sids(&self, sids: &[MessageSid]) -> Result<HashSet<String>, StoreError> {
        let keys: Vec<super::ItemKey> = sids
            .iter()
            .map(|sid| (keys::sid_pk(sid), keys::SID_SK.to_owned()))
            .collect();
        let found = self.items(&keys).await?;
        Ok(found
            .into_keys()
            .filter_map(|(pk, _)| pk.strip_prefix("SID#").map(str::to_owned))
            .collect())
    }
}
