//! Event rules (every version kept), their activity, and their per-recipient caps.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use serde::{Deserialize, Serialize};

use super::{aws_error, keys, s, Store, StoreError, TxError};
use crate::phone::E164;
use crate::rules::activity::Activity;
use crate::rules::rule::Rule;

/// How long activity entries are kept (DynamoDB's TTL removes them).
const ACTIVITY_DAYS: i64 = 90;

/// A rule as stored: the whole rule as JSON (patterns keep their exact form, which DynamoDB
/// maps would not: numbers, key order), plus the attributes the table's indexes need.
#[derive(Debug, Serialize, Deserialize)]
struct RuleItem {
    pk: String,
    sk: String,
    entity: keys::Entity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1sk: Option<String>,
    rule_id: String,
    version: u32,
    rule: String,
}

impl RuleItem {
    fn of(rule: &Rule, sk: String, entity: keys::Entity) -> Result<Self, StoreError> {
        let current = entity == keys::Entity::Rule;
        Ok(Self {
            pk: keys::rule_pk(&rule.rule_id),
            sk,
            entity,
            gsi1pk: current.then(|| keys::RULES_GSI1PK.to_owned()),
            gsi1sk: current.then(|| rule.rule_id.clone()),
            rule_id: rule.rule_id.clone(),
            version: rule.version,
            rule: serde_json::to_string(rule).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        })
    }

    fn rule(&self) -> Result<Rule, StoreError> {
        serde_json::from_str(&self.rule)
            .map_err(|e| StoreError::Corrupt(format!("rule {}: {e}", self.rule_id)))
    }
}

/// A rule's recent sends to one number (epoch seconds), versioned for optimistic writes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CapItem {
    #[serde(default)]
    pub sent: Vec<i64>,
    #[serde(default)]
    pub version: u64,
}

impl Store {
    /// Stores a rule's first version, or a new version of it when `previous` (the version the
    /// change was made from) is still current. `false` when another change came first.
    pub async fn put_rule(&self, rule: &Rule, previous: Option<u32>) -> Result<bool, StoreError> {
        let current = RuleItem::of(rule, keys::RULE_CURRENT_SK.into(), keys::Entity::Rule)?;
        let version = RuleItem::of(
            rule,
            keys::rule_version_sk(rule.version),
            keys::Entity::RuleVersion,
        )?;
        let mut put_current = Put::builder()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(&current)?));
        put_current = match previous {
            None => put_current.condition_expression("attribute_not_exists(pk)"),
            Some(v) => put_current
                .condition_expression("version = :previous")
                .expression_attribute_values(":previous", AttributeValue::N(v.to_string())),
        };
        let put_version = Put::builder()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(&version)?))
            .condition_expression("attribute_not_exists(pk)");
        let items = vec![
            TransactWriteItem::builder()
                .put(put_current.build()?)
                .build(),
            TransactWriteItem::builder()
                .put(put_version.build()?)
                .build(),
        ];
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(TxError::ConditionFailed(_)) => Ok(false),
            Err(TxError::Failed(e)) => Err(e),
        }
    }

    pub async fn rule(&self, rule_id: &str) -> Result<Option<Rule>, StoreError> {
        let item: Option<RuleItem> = self
            .get(keys::rule_pk(rule_id), keys::RULE_CURRENT_SK)
            .await?;
        item.map(|i| i.rule()).transpose()
    }

    pub async fn rule_version(
        &self,
        rule_id: &str,
        version: u32,
    ) -> Result<Option<Rule>, StoreError> {
        let item: Option<RuleItem> = self
            .get(keys::rule_pk(rule_id), &keys::rule_version_sk(version))
            .await?;
        item.map(|i| i.rule()).transpose()
    }

    /// Every rule's current version (enabled or not), by id: one Query of the rules' index
    /// partition per page.
    pub async fn rules(&self) -> Result<Vec<Rule>, StoreError> {
        let mut rules = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(keys::GSI1)
                .key_condition_expression("gsi1pk = :pk")
                .expression_attribute_values(":pk", s(keys::RULES_GSI1PK))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| aws_error("Query", &e))?;
            for item in out.items.unwrap_or_default() {
                let item: RuleItem = serde_dynamo::from_item(item)?;
                rules.push(item.rule()?);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(rules);
            }
        }
    }

    /// The activity entry as a write, for a transaction (the message and its firing are one
    /// write) or on its own.
    pub fn activity_put(&self, activity: &Activity) -> Result<TransactWriteItem, StoreError> {
        Ok(TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(activity_item(activity)?))
                    .build()?,
            )
            .build())
    }

    /// Records a firing. An entry for the same event and outcome is overwritten, so a
    /// redelivered event does not list twice.
    pub async fn put_activity(&self, activity: &Activity) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(activity_item(activity)?))
            .send()
            .await
            .map_err(|e| aws_error("PutItem", &e))?;
        Ok(())
    }

    /// One page of a rule's activity, newest first, after `after` (an `sk`).
    pub async fn activity_page(
        &self,
        rule_id: &str,
        limit: i32,
        after: Option<&str>,
    ) -> Result<(Vec<Activity>, Option<String>), StoreError> {
        self.page(keys::rule_activity_pk(rule_id), None, limit, after)
            .await
    }

    /// The cap item's write: the new list of send times, on condition that the item is still
    /// at the version it was read at (so two firings cannot both take the last place).
    pub fn cap_put(
        &self,
        rule_id: &str,
        phone: &E164,
        seen: &CapItem,
        sent: Vec<i64>,
        expires_at: i64,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(CapItem {
            sent,
            version: seen.version + 1,
        })?;
        item.insert("pk".into(), s(keys::rule_cap_pk(rule_id, phone)));
        item.insert("sk".into(), s(keys::RULE_CAP_SK));
        item.insert("entity".into(), s(keys::Entity::RuleCap.as_str()));
        item.insert(
            "expires_at".into(),
            AttributeValue::N(expires_at.to_string()),
        );
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR version = :seen")
            .expression_attribute_values(":seen", AttributeValue::N(seen.version.to_string()));
        Ok(TransactWriteItem::builder().put(put.build()?).build())
    }
}

fn activity_item(a: &Activity) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(a)?;
    item.insert("pk".into(), s(keys::rule_activity_pk(&a.rule_id)));
    item.insert(
        "sk".into(),
        s(keys::rule_activity_sk(
            a.event_time,
            &a.event_id,
            a.outcome.as_str(),
        )),
    );
    item.insert("entity".into(), s(keys::Entity::RuleActivity.as_str()));
    let expires = a.at.unix_seconds() + ACTIVITY_DAYS * 86_400;
    item.insert("expires_at".into(), AttributeValue::N(expires.to_string()));
    Ok(item)
}
