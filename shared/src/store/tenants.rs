//! What Parley remembers about tenants: which tenant a number belongs to (and the form that
//! matched), the tenant's most recently used number, and their language preference.

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::{aws_error, keys, s, Conversation, Store, StoreError, TxError};
use crate::language::Preference;
use crate::phone::{Channel, E164};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhoneTenant {
    pub tenant_id: String,
    /// The form of the number the Collections Monitor matched.
    pub matched_variant: String,
    pub updated_at: String,
    /// The tenant's time zone as the monitor gave it.
    #[serde(default)]
    pub time_zone: Option<String>,
}

impl Store {
    pub async fn phone_tenant(&self, phone: &E164) -> Result<Option<PhoneTenant>, StoreError> {
        self.get(keys::phone_tenant_pk(phone), keys::PHONE_TENANT_SK)
            .await
    }

    /// Stores the mapping while the number's conversation on `channel` exists; `Ok(false)`
    /// when it does not (erased since the message was read): nothing is written under the
    /// number's key again.
    pub async fn put_phone_tenant(
        &self,
        channel: Channel,
        phone: &E164,
        mapping: &PhoneTenant,
    ) -> Result<bool, StoreError> {
        let mut item: std::collections::HashMap<String, AttributeValue> =
            serde_dynamo::to_item(mapping)?;
        item.insert("pk".into(), s(keys::phone_tenant_pk(phone)));
        item.insert("sk".into(), s(keys::PHONE_TENANT_SK));
        item.insert("entity".into(), s(keys::Entity::PhoneTenant.as_str()));
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .build()?;
        self.while_conversation_exists(
            channel,
            phone,
            vec![TransactWriteItem::builder().put(put).build()],
        )
        .await
    }

    /// Links a conversation to its tenant (idempotent) and records the tenant's latest number,
    /// in one transaction conditional on the conversation: `Ok(false)` when it is gone (erased),
    /// and then the tenant's profile does not learn the number either.
    pub async fn link_tenant(
        &self,
        channel: Channel,
        phone: &E164,
        tenant_id: &str,
        time_zone: Option<&str>,
        now: &str,
    ) -> Result<bool, StoreError> {
        let (set_zone, remove_zone) = match time_zone {
            Some(_) => (", tenant_time_zone = :zone", ""),
            None => ("", ", tenant_time_zone"),
        };
        let mut conversation = Update::builder()
            .table_name(&self.table)
            .key("pk", s(keys::conversation_pk(channel, phone)))
            .key("sk", s(keys::META))
            .condition_expression("attribute_exists(pk)")
            .update_expression(format!(
                "SET tenant_id = :tenant, \
                 tenant_linked_at = if_not_exists(tenant_linked_at, :now){set_zone} \
                 REMOVE tenant_lookup_pending{remove_zone}"
            ))
            .expression_attribute_values(":tenant", s(tenant_id))
            .expression_attribute_values(":now", s(now));
        if let Some(zone) = time_zone {
            conversation = conversation.expression_attribute_values(":zone", s(zone));
        }
        let profile = Update::builder()
            .table_name(&self.table)
            .key("pk", s(keys::tenant_pk(tenant_id)))
            .key("sk", s(keys::TENANT_PROFILE_SK))
            .update_expression(
                "SET entity = :entity, tenant_id = :tenant, last_used_phone = :phone, \
                 last_used_channel = :channel, last_used_at = :now",
            )
            .expression_attribute_values(":entity", s(keys::Entity::Tenant.as_str()))
            .expression_attribute_values(":tenant", s(tenant_id))
            .expression_attribute_values(":phone", s(phone.as_str()))
            .expression_attribute_values(":channel", s(channel.as_str()))
            .expression_attribute_values(":now", s(now))
            .build()?;
        match self
            .transact(vec![
                TransactWriteItem::builder()
                    .update(conversation.build()?)
                    .build(),
                TransactWriteItem::builder().update(profile).build(),
            ])
            .await
        {
            Ok(()) => Ok(true),
            Err(TxError::ConditionFailed(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Runs `items` on the condition that the conversation exists.
    async fn while_conversation_exists(
        &self,
        channel: Channel,
        phone: &E164,
        mut items: Vec<TransactWriteItem>,
    ) -> Result<bool, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .key("pk", s(keys::conversation_pk(channel, phone)))
            .key("sk", s(keys::META))
            .condition_expression("attribute_exists(pk)")
            .build()?;
        items.insert(
            0,
            TransactWriteItem::builder().condition_check(check).build(),
        );
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(TxError::ConditionFailed(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The tenant's most recently used number, for later sends.
    pub async fn tenant_last_phone(&self, tenant_id: &str) -> Result<Option<E164>, StoreError> {
        #[derive(Deserialize)]
        struct Profile {
            last_used_phone: Option<E164>,
        }
        let profile: Option<Profile> = self
            .get(keys::tenant_pk(tenant_id), keys::TENANT_PROFILE_SK)
            .await?;
        Ok(profile.and_then(|p| p.last_used_phone))
    }

    /// Marks a conversation whose lookup failed for the monitor's sake; reconciliation retries it.
    pub async fn mark_lookup_pending(
        &self,
        channel: Channel,
        phone: &E164,
    ) -> Result<(), StoreError> {
        // Gone (erased): nothing is left to reconcile.
        let pk = keys::conversation_pk(channel, phone);
        self.update_meta(
            &pk,
            "SET tenant_lookup_pending = :v",
            AttributeValue::Bool(true),
        )
        .await
        .map(|_| ())
    }

    pub async fn language_preference(
        &self,
        tenant_id: &str,
    ) -> Result<Option<Preference>, StoreError> {
        self.get(keys::tenant_pk(tenant_id), keys::TENANT_LANGUAGE_SK)
            .await
    }

    pub async fn put_language_preference(
        &self,
        tenant_id: &str,
        preference: &Preference,
    ) -> Result<(), StoreError> {
        let mut item: std::collections::HashMap<String, AttributeValue> =
            serde_dynamo::to_item(preference)?;
        item.insert("pk".into(), s(keys::tenant_pk(tenant_id)));
        item.insert("sk".into(), s(keys::TENANT_LANGUAGE_SK));
        item.insert(
            "entity".into(),
            s(keys::Entity::LanguagePreference.as_str()),
        );
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| aws_error("PutItem", &e))?;
        Ok(())
    }

    /// Conversations not linked to a tenant yet (reconciliation). A full scan: fine at the
    /// expected volume; a sparse index on unlinked conversations is the step after.
    pub async fn unlinked_conversations(&self) -> Result<Vec<Conversation>, StoreError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression(
                    "entity = :conversation AND attribute_not_exists(tenant_id) \
                     AND NOT begins_with(pk, :erased)",
                )
                .expression_attribute_values(
                    ":conversation",
                    s(keys::Entity::Conversation.as_str()),
                )
                .expression_attribute_values(":erased", s(keys::ERASED_PREFIX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| aws_error("Scan", &e))?;
            found.extend(serde_dynamo::from_items::<_, Conversation>(
                out.items.unwrap_or_default(),
            )?);
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(found),
            }
        }
    }
}
