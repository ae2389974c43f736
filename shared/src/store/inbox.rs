//! The inbox: conversations by last activity (`GET /conversations`, the console's inbox), and
//! the flags its filters read, which the stream processor keeps on each conversation's `META`
//! (its pending messages, its number's consent) and an operator clears (unread).
//!
//! Each conversation's `META` carries `gsi1pk = CONVS`, `gsi1sk = last_message_at`, written by
//! the same update that records a message, so listing costs no write of its own.

use aws_sdk_dynamodb::types::AttributeValue;
use tracing::warn;

use super::{aws_error, keys, s, update_applied, Conversation, PageKey, Store, StoreError};
use crate::phone::{Channel, E164};

/// Which conversations an inbox listing wants; every filter narrows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboxFilter {
    /// `Some(true)`: linked to a tenant; `Some(false)`: not (yet) linked.
    pub known_tenant: Option<bool>,
    /// `Some(true)`: with a scheduled, deferred, queued or sending message.
    pub has_pending: Option<bool>,
    /// `Some(true)`: the number has opted out.
    pub opted_out: Option<bool>,
}

impl InboxFilter {
    /// The DynamoDB filter expression, if any filter is set.
    fn expression(&self) -> Option<String> {
        let mut conditions = Vec::new();
        match self.known_tenant {
            Some(true) => conditions.push("attribute_exists(tenant_id)"),
            Some(false) => conditions.push("attribute_not_exists(tenant_id)"),
            None => {}
        }
        // DynamoDB removes a set that becomes empty, so the attribute exists exactly while
        // some message is pending.
        match self.has_pending {
            Some(true) => conditions.push("attribute_exists(pending_ids)"),
            Some(false) => conditions.push("attribute_not_exists(pending_ids)"),
            None => {}
        }
        match self.opted_out {
            Some(true) => conditions.push("opted_out = :true"),
            Some(false) => {
                conditions.push("(attribute_not_exists(opted_out) OR opted_out = :false)")
            }
            None => {}
        }
        (!conditions.is_empty()).then(|| conditions.join(" AND "))
    }
}

/// A page of conversations, newest activity first, and where the next one starts.
#[derive(Debug)]
pub struct InboxPage {
    pub conversations: Vec<Conversation>,
    /// Items that did not read as a conversation: skipped, so one bad item never hides the
    /// rest of the inbox (and counted, for the caller to report).
    pub unreadable: usize,
    pub next: Option<PageKey>,
}

impl Store {
    /// One page of the inbox. DynamoDB filters after reading `limit` items, so a filtered page
    /// may hold fewer and still have a next one.
    pub async fn inbox_page(
        &self,
        filter: InboxFilter,
        limit: i32,
        start: Option<PageKey>,
    ) -> Result<InboxPage, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(keys::GSI1)
            .key_condition_expression("gsi1pk = :inbox")
            .expression_attribute_values(":inbox", s(keys::CONVERSATIONS_GSI1PK))
            .scan_index_forward(false)
            .limit(limit)
            .set_exclusive_start_key(start);
        if let Some(expression) = filter.expression() {
            if filter.opted_out.is_some() {
                query = query
                    .expression_attribute_values(":true", AttributeValue::Bool(true))
                    .expression_attribute_values(":false", AttributeValue::Bool(false));
            }
            query = query.filter_expression(expression);
        }
        let out = query.send().await.map_err(|e| aws_error("Query", &e))?;
        let mut page = InboxPage {
            conversations: Vec::new(),
            unreadable: 0,
            next: out.last_evaluated_key,
        };
        for item in out.items.unwrap_or_default() {
            match serde_dynamo::from_item::<_, Conversation>(item) {
                Ok(c) => page.conversations.push(c),
                Err(e) => {
                    warn!(error = %e, "an inbox item is not a conversation; skipped");
                    page.unreadable += 1;
                }
            }
        }
        Ok(page)
    }

    /// The conversations of a number on every channel (the inbox's search), in one request.
    pub async fn conversations_of(&self, phone: &E164) -> Result<Vec<Conversation>, StoreError> {
        let keys = [Channel::Sms, Channel::Whatsapp]
            .into_iter()
            .map(|channel| {
                [
                    ("pk".to_owned(), s(keys::conversation_pk(channel, phone))),
                    ("sk".to_owned(), s(keys::META)),
                ]
                .into()
            })
            .collect();
        let mut found: Vec<Conversation> = self
            .batch_get(keys)
            .await?
            .into_iter()
            .filter_map(|item| serde_dynamo::from_item(item).ok())
            .collect();
        found.sort_by(|a, b| b.last_message_at.cmp(&a.last_message_at));
        Ok(found)
    }

    /// Records that a message of the conversation `conversation_pk` is pending (or no longer
    /// is). A set update: applying it twice is applying it once. A conversation that is gone
    /// (erased) is left alone.
    pub async fn set_pending(
        &self,
        conversation_pk: &str,
        message_id: &str,
        pending: bool,
    ) -> Result<(), StoreError> {
        let action = if pending { "ADD" } else { "DELETE" };
        let id = AttributeValue::Ss(vec![message_id.to_owned()]);
        self.update_meta(conversation_pk, &format!("{action} pending_ids :v"), id)
            .await
            .map(|_| ())
    }

    /// Mirrors a number's consent onto its conversations, on every channel it has one.
    pub async fn set_conversation_opted_out(
        &self,
        phone: &E164,
        opted_out: bool,
    ) -> Result<(), StoreError> {
        for channel in [Channel::Sms, Channel::Whatsapp] {
            let pk = keys::conversation_pk(channel, phone);
            self.update_meta(&pk, "SET opted_out = :v", AttributeValue::Bool(opted_out))
                .await?;
        }
        Ok(())
    }

    /// An operator read the thread: its unread count starts again from zero.
    pub async fn mark_read(&self, channel: Channel, phone: &E164) -> Result<bool, StoreError> {
        let pk = keys::conversation_pk(channel, phone);
        self.update_meta(&pk, "SET unread_count = :v", AttributeValue::N("0".into()))
            .await
    }

    /// Applies `expression` (with its one value `:v`) to a conversation's `META`, if the
    /// conversation still exists: `false` when it does not (erased).
    pub(crate) async fn update_meta(
        &self,
        conversation_pk: &str,
        expression: &str,
        value: AttributeValue,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(conversation_pk))
            .key("sk", s(keys::META))
            .condition_expression("attribute_exists(pk)")
            .update_expression(expression)
            .expression_attribute_values(":v", value)
            .send()
            .await;
        update_applied(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_filter_narrows_with_its_own_condition() {
        assert_eq!(InboxFilter::default().expression(), None);
        let all = InboxFilter {
            known_tenant: Some(false),
            has_pending: Some(true),
            opted_out: Some(true),
        };
        assert_eq!(
            all.expression().unwrap(),
            "attribute_not_exists(tenant_id) AND attribute_exists(pending_ids) AND opted_out = :true"
        );
        let not_out = InboxFilter {
            opted_out: Some(false),
            ..Default::default()
        };
        assert!(not_out
            .expression()
            .unwrap()
            .contains("attribute_not_exists(opted_out)"));
    }
}
