//! API keys and their usage counters.

use aws_sdk_dynamodb::types::AttributeValue;

use super::{aws_error, keys, s, update_applied, Store, StoreError};
use crate::access::ApiKey;
use crate::time::Timestamp;

/// Whether a counter took one more use or was already at its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Within,
    OverLimit,
}

impl Store {
    /// Stores a new key; never overwrites one (ids are ULIDs).
    pub async fn put_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let mut item: std::collections::HashMap<String, AttributeValue> =
            serde_dynamo::to_item(key)?;
        item.insert("pk".into(), s(keys::API_KEYS_PK));
        item.insert("sk".into(), s(keys::api_key_sk(&key.key_id)));
        item.insert("entity".into(), s(keys::Entity::ApiKey.as_str()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| aws_error("PutItem", &e))?;
        Ok(())
    }

    pub async fn api_key(&self, key_id: &str) -> Result<Option<ApiKey>, StoreError> {
        self.get(keys::API_KEYS_PK.into(), &keys::api_key_sk(key_id))
            .await
    }

    /// Every key, revoked ones included (kept for audit), oldest first.
    pub async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let mut keys_found = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(keys::API_KEYS_PK))
                .expression_attribute_values(":prefix", s(keys::API_KEY_SK_PREFIX))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| aws_error("Query", &e))?;
            for item in out.items.unwrap_or_default() {
                keys_found.push(serde_dynamo::from_item(item)?);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(keys_found);
            }
        }
    }

    /// Marks a key revoked (it stays, for audit). `None` if there is no such key; revoking
    /// again keeps the first revocation's time.
    pub async fn revoke_api_key(
        &self,
        key_id: &str,
        now: Timestamp,
    ) -> Result<Option<ApiKey>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::API_KEYS_PK))
            .key("sk", s(keys::api_key_sk(key_id)))
            .condition_expression("attribute_exists(pk)")
            .update_expression("SET revoked_at = if_not_exists(revoked_at, :now)")
            .expression_attribute_values(":now", s(now.to_string()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.attributes.map(serde_dynamo::from_item).transpose()?),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(aws_error("UpdateItem", &e)),
        }
    }

    /// Adds one use to a key's counter for a window unless it is at `limit` already; the
    /// counter expires on its own after `expires_at` (epoch seconds).
    pub async fn count_use(
        &self,
        key_id: &str,
        window_sk: &str,
        limit: u32,
        expires_at: i64,
    ) -> Result<Counted, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::quota_pk(key_id)))
            .key("sk", s(window_sk))
            .condition_expression("attribute_not_exists(uses) OR uses < :limit")
            .update_expression("SET entity = :entity, expires_at = :expires ADD uses :one")
            .expression_attribute_values(":entity", s(keys::Entity::QuotaCounter.as_str()))
            .expression_attribute_values(":limit", AttributeValue::N(limit.to_string()))
            .expression_attribute_values(":expires", AttributeValue::N(expires_at.to_string()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await;
        Ok(match update_applied(result)? {
            true => Counted::Within,
            false => Counted::OverLimit,
        })
    }
}
