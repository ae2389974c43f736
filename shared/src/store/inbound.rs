//! The inbound critical path's single durable write: the message, its conversation and the
//! MessageSid guard (plus the consent record for a keyword) in one TransactWriteItems call.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use serde_dynamo::to_attribute_value;

use super::items::{ConsentChange, Direction, Message, SidGuard};
use super::{keys, s, Store, StoreError, TxError};
use crate::consent::Keyword;
use crate::language::{Detection, Language};
use crate::pipeline::PipelineState;
use crate::time::Timestamp;
use crate::twilio::InboundSms;

/// Everything the write needs, decided before it: ids and time are chosen by the caller so
/// the write itself has no hidden inputs.
pub struct InboundRecord<'a> {
    pub sms: &'a InboundSms,
    pub raw_payload: &'a str,
    pub message_id: String,
    /// Used only when this message creates the conversation.
    pub new_conversation_id: String,
    pub received_at: String,
    pub detection: Detection,
    pub keyword: Option<Keyword>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Recorded,
    /// The MessageSid was already recorded: nothing was written.
    Duplicate,
}

impl Store {
    pub async fn record_inbound(&self, r: &InboundRecord<'_>) -> Result<WriteOutcome, StoreError> {
        match self.transact(self.inbound_write_items(r)?).await {
            Ok(()) => Ok(WriteOutcome::Recorded),
            // The SID guard is the first item: its condition failing means a duplicate.
            Err(TxError::ConditionFailed(0)) => Ok(WriteOutcome::Duplicate),
            Err(e) => Err(e.into()),
        }
    }

    /// The TransactWriteItems entries of one inbound message (public for the benchmark).
    pub fn inbound_write_items(
        &self,
        r: &InboundRecord<'_>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let sms = r.sms;
        let pk = keys::conversation_pk(sms.channel(), &sms.from.e164);
        let sk = keys::message_sk(&r.message_id);

        let guard = SidGuard {
            pk: keys::sid_pk(&sms.message_sid),
            sk: keys::SID_SK.into(),
            entity: keys::Entity::SidGuard,
            message_pk: Some(pk.clone()),
            message_sk: Some(sk.clone()),
            message_id: Some(r.message_id.clone()),
            direction: Some(Direction::Inbound),
            created_at: Some(r.received_at.clone()),
            parked: Vec::new(),
        };
        let message = Message {
            pk: pk.clone(),
            sk,
            entity: keys::Entity::Message,
            gsi1pk: keys::message_gsi1pk(&r.message_id),
            gsi1sk: keys::MESSAGE_GSI1SK.into(),
            gsi2pk: None,
            gsi2sk: None,
            message_id: r.message_id.clone(),
            direction: Direction::Inbound,
            channel: sms.channel(),
            body: sms.body.clone(),
            twilio_sid: Some(sms.message_sid.to_string()),
            account_sid: Some(sms.account_sid.to_string()),
            from_e164: Some(sms.from.e164.clone()),
            from_original: sms.from.original.clone(),
            to_e164: sms.to.e164.clone(),
            to_original: sms.to.original.clone(),
            num_media: sms.media.len() as u32,
            media_urls: sms.media.iter().map(|m| m.url.clone()).collect(),
            media_content_types: sms
                .media
                .iter()
                .map(|m| m.content_type.clone().unwrap_or_default())
                .collect(),
            language: r.detection.language,
            language_confidence: r.detection.confidence,
            keyword: r.keyword.map(|k| k.as_str().to_owned()),
            status: PipelineState::Received,
            status_reason: None,
            version: 0,
            // Written by `time::now_rfc3339`, the stored form.
            created_at: Timestamp::parse(&r.received_at).unwrap_or_else(Timestamp::now),
            send_at: None,
            not_after: None,
            time_zone: None,
            time_zone_source: None,
            urgent: false,
            raw_payload: Some(r.raw_payload.to_owned()),
            delivery_status: None,
            status_history: Vec::new(),
            error_code: None,
            error_message: None,
            attempts: 0,
            claimed_at: None,
            sweeps: 0,
            ambiguous: false,
            segments: None,
            encoding: None,
            workflow_type: None,
            workflow_id: None,
            callbacks_seen: Vec::new(),
            status_version: 0,
            idempotency_pk: None,
        };

        let mut items = vec![
            // First, so a duplicate is recognised by the first cancellation reason.
            put(&self.table, serde_dynamo::to_item(&guard)?)?,
            put(&self.table, serde_dynamo::to_item(&message)?)?,
            TransactWriteItem::builder()
                .update(conversation_update(&self.table, pk, r)?)
                .build(),
        ];
        if let Some(opted_out) = r.keyword.and_then(Keyword::opted_out) {
            let change = ConsentChange {
                opted_out,
                keyword: sms.body.trim().to_uppercase(),
                at: r.received_at.clone(),
                message_id: r.message_id.clone(),
            };
            items.push(
                TransactWriteItem::builder()
                    .update(consent_update(&self.table, &sms.from.e164, &change)?)
                    .build(),
            );
        }
        Ok(items)
    }
}

pub(crate) fn put(
    table: &str,
    item: HashMap<String, AttributeValue>,
) -> Result<TransactWriteItem, StoreError> {
    Ok(TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()?,
        )
        .build())
}

fn conversation_update(
    table: &str,
    pk: String,
    r: &InboundRecord<'_>,
) -> Result<Update, StoreError> {
    let sms = r.sms;
    let mut expression = String::from(
        "SET entity = :entity, channel = :channel, phone = :phone, \
         conversation_id = if_not_exists(conversation_id, :cid), \
         created_at = if_not_exists(created_at, :now), \
         last_message_at = :now, last_inbound_at = :now",
    );
    let mut update = Update::builder()
        .table_name(table)
        .key("pk", s(pk))
        .key("sk", s(keys::META))
        .expression_attribute_values(":entity", s(keys::Entity::Conversation.as_str()))
        .expression_attribute_values(":channel", s(sms.channel().as_str()))
        .expression_attribute_values(":phone", s(sms.from.e164.as_str()))
        .expression_attribute_values(":cid", s(&r.new_conversation_id))
        .expression_attribute_values(":now", s(&r.received_at))
        .expression_attribute_values(":one", AttributeValue::N("1".into()));
    // An unsure detection must not overwrite what earlier messages established.
    if r.detection.language != Language::Unknown {
        expression.push_str(", #language = :language, language_confidence = :confidence");
        update = update
            .expression_attribute_names("#language", "language")
            .expression_attribute_values(":language", s(r.detection.language.as_str()))
            .expression_attribute_values(
                ":confidence",
                to_attribute_value(r.detection.confidence)?,
            );
    }
    expression.push_str(" ADD message_count :one, inbound_count :one");
    Ok(update.update_expression(expression).build()?)
}

/// Sets a number's consent and appends the change to its history.
pub(crate) fn consent_update(
    table: &str,
    phone: &crate::phone::E164,
    change: &ConsentChange,
) -> Result<Update, StoreError> {
    Ok(Update::builder()
        .table_name(table)
        .key("pk", s(keys::consent_pk(phone)))
        .key("sk", s(keys::CONSENT_SK))
        .update_expression(
            "SET entity = :entity, phone = :phone, opted_out = :opted_out, keyword = :keyword, \
             updated_at = :now, history = list_append(if_not_exists(history, :empty), :change)",
        )
        .expression_attribute_values(":entity", s(keys::Entity::Consent.as_str()))
        .expression_attribute_values(":phone", s(phone.as_str()))
        .expression_attribute_values(":opted_out", AttributeValue::Bool(change.opted_out))
        .expression_attribute_values(":keyword", s(&change.keyword))
        .expression_attribute_values(":now", s(&change.at))
        .expression_attribute_values(":empty", AttributeValue::L(vec![]))
        .expression_attribute_values(
            ":change",
            AttributeValue::L(vec![to_attribute_value(change)?]),
        )
        .build()?)
}
