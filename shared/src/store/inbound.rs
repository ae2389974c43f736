//! The inbound critical path's single durable write: the message, its conversation and the
//! MessageSid guard (plus the consent record for a keyword) in one TransactWriteItems call.
//! An opt-out or opt-in first reads the consent item, so the write can be conditional on it
//! (`store::consent`).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use serde_dynamo::to_attribute_value;

use super::consent::{
    changed_by, consent_write, optimistic_consent_write, ConsentOutcome, CONSENT_ATTEMPTS,
};
use super::items::{Consent, ConsentChange, Direction, Message};
use super::{keys, s, Store, StoreError, TxError};
use crate::consent::Classification;
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
    pub keyword: Option<Classification>,
    /// The webhook's trace, stored on the message: stream records carry no trace header, so
    /// the processor continues it from the message's image.
    pub trace: Option<crate::xray::TraceHeader>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Recorded,
    /// The MessageSid was already recorded: nothing was written.
    Duplicate,
}

/// What recording an inbound message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundOutcome {
    pub write: WriteOutcome,
    pub consent: ConsentOutcome,
}

/// The consent item is the fourth entry of the transaction.
const CONSENT_INDEX: usize = 3;

impl Store {
    pub async fn record_inbound(&self, r: &InboundRecord<'_>) -> Result<WriteOutcome, StoreError> {
        Ok(self.record_inbound_consent(r).await?.write)
    }

    /// Records the message, and for an opt-out or opt-in the consent it asks for.
    ///
    /// The first attempt does not read: an opt-out is written conditional on the number not
    /// being opted out (and its history not full), an opt-in only checks that the number is not
    /// opted out. Either way DynamoDB returns the item when that condition fails, and the write
    /// is decided again from it (read-modify-write on its `version`, `store::consent`).
    pub async fn record_inbound_consent(
        &self,
        r: &InboundRecord<'_>,
    ) -> Result<InboundOutcome, StoreError> {
        // Built for each attempt (a conflict retry rebuilds them) rather than copied.
        let items = || self.inbound_write_items(r);
        let Some(opted_out) = r.keyword.and_then(|c| c.keyword.opted_out()) else {
            let write = match self.transact_built(items).await {
                Ok(()) => WriteOutcome::Recorded,
                // The SID guard is the first item: its condition failing means a duplicate.
                Err(TxError::ConditionFailed(0)) => WriteOutcome::Duplicate,
                Err(e) => return Err(e.into()),
            };
            return Ok(InboundOutcome {
                write,
                consent: ConsentOutcome::Untouched,
            });
        };
        let sid = r.sms.message_sid.as_str();
        let outcome = |write, changed: bool| InboundOutcome {
            write,
            consent: if changed {
                ConsentOutcome::Changed
            } else {
                ConsentOutcome::Unchanged
            },
        };
        // The item as the failed condition returned it, when it did.
        let mut known: Option<Consent> = match self.transact_reasons_built(items).await {
            // An optimistic opt-out that went through changed the state; an opt-in did not.
            Ok(()) => return Ok(outcome(WriteOutcome::Recorded, opted_out)),
            Err(Err(e)) => return Err(e),
            Err(Ok(failed)) => {
                let item = failed
                    .iter()
                    .find(|f| f.index == CONSENT_INDEX)
                    .and_then(|f| f.item.clone())
                    .map(serde_dynamo::from_item::<_, Consent>)
                    .transpose()?;
                match failed.first().map(|f| f.index) {
                    // A duplicate: answered like its first delivery, which changed consent
                    // only if the item still names it.
                    Some(0) => {
                        let changed = changed_by(item.as_ref(), opted_out, sid);
                        return Ok(outcome(WriteOutcome::Duplicate, changed));
                    }
                    Some(CONSENT_INDEX) => item,
                    _ => {
                        return Err(StoreError::Cancelled {
                            operation: "TransactWriteItems",
                            reasons: "an unexpected condition failed".into(),
                        })
                    }
                }
            }
        };
        for _ in 0..CONSENT_ATTEMPTS {
            let current = match known.take() {
                Some(item) => Some(item),
                None => self.consent(&r.sms.from.e164).await?,
            };
            let items = || self.inbound_write_items_as_read(r, current.as_ref());
            let changes = current.as_ref().is_some_and(|c| c.opted_out) != opted_out;
            match self.transact_built(items).await {
                Ok(()) => return Ok(outcome(WriteOutcome::Recorded, changes)),
                Err(TxError::ConditionFailed(0)) => {
                    let changed = changed_by(current.as_ref(), opted_out, sid);
                    return Ok(outcome(WriteOutcome::Duplicate, changed));
                }
                Err(TxError::ConditionFailed(CONSENT_INDEX)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Cancelled {
            operation: "TransactWriteItems",
            reasons: "the consent item kept changing".into(),
        })
    }

    /// The TransactWriteItems entries of one inbound message as first tried (public for the
    /// benchmark): for an opt-out or opt-in, the optimistic consent entry.
    pub fn inbound_write_items(
        &self,
        r: &InboundRecord<'_>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        self.inbound_items(r, None)
    }

    /// The entries with the consent write decided from the item as read (`None`: no item).
    fn inbound_write_items_as_read(
        &self,
        r: &InboundRecord<'_>,
        consent: Option<&Consent>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        self.inbound_items(r, Some(consent))
    }

    /// `read`: `None` for the optimistic first attempt, else the consent item as read.
    fn inbound_items(
        &self,
        r: &InboundRecord<'_>,
        read: Option<Option<&Consent>>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let sms = r.sms;
        let pk = keys::conversation_pk(sms.channel(), &sms.from.e164);
        let sk = keys::message_sk(&r.message_id);

        let guard = inbound_guard(&self.table, &sms.message_sid, &pk, &sk, r)?;
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
            body: self.seal(&sms.body, &r.message_id)?,
            twilio_sid: Some(sms.message_sid.to_string()),
            account_sid: Some(sms.account_sid.to_string()),
            from_e164: Some(sms.from.e164.clone()),
            from_original: sms.from.original.clone(),
            to_e164: sms.to.e164.clone(),
            to_original: sms.to.original.clone(),
            num_media: sms.media.len() as u32,
            media_urls: sms
                .media
                .iter()
                .map(|m| self.seal(&m.url, &r.message_id))
                .collect::<Result<_, _>>()?,
            media_content_types: sms
                .media
                .iter()
                .map(|m| m.content_type.clone().unwrap_or_default())
                .collect(),
            language: r.detection.language,
            language_confidence: r.detection.confidence,
            keyword: r.keyword.map(|k| k.keyword.as_str().to_owned()),
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
            raw_payload: Some(self.seal(r.raw_payload, &r.message_id)?),
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
            cause: None,
            resend_of: None,
            resent_as: None,
            trace: r.trace.clone(),
        };

        let mut items = vec![
            // First, so a duplicate is recognised by the first cancellation reason.
            guard,
            put(&self.table, serde_dynamo::to_item(&message)?)?,
            TransactWriteItem::builder()
                .update(conversation_update(&self.table, pk, r)?)
                .build(),
        ];
        if let Some(c) = r.keyword {
            if let Some(opted_out) = c.keyword.opted_out() {
                let change = ConsentChange {
                    opted_out,
                    keyword: c.term.to_owned(),
                    at: r.received_at.clone(),
                    message_id: r.message_id.clone(),
                    twilio_sid: Some(sms.message_sid.to_string()),
                };
                items.push(match read {
                    None => optimistic_consent_write(&self.table, &sms.from.e164, &change)?,
                    Some(current) => {
                        consent_write(&self.table, &sms.from.e164, current, &change)?.0
                    }
                });
            }
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

/// The SID guard of an inbound message, conditional on no message being recorded under the
/// SID yet. Not on the item being absent: a guard can exist holding only status callbacks
/// parked under that SID (`store::outbound`), and those must not make a new message look like
/// a duplicate. They are dropped: Twilio sends status callbacks only for the messages we
/// create, so none can belong to a message Twilio received.
fn inbound_guard(
    table: &str,
    sid: &crate::twilio::MessageSid,
    pk: &str,
    sk: &str,
    r: &InboundRecord<'_>,
) -> Result<TransactWriteItem, StoreError> {
    let update = Update::builder()
        .table_name(table)
        .key("pk", s(keys::sid_pk(sid)))
        .key("sk", s(keys::SID_SK))
        .condition_expression("attribute_not_exists(message_id)")
        .update_expression(
            "SET entity = :entity, message_pk = :pk, message_sk = :sk, message_id = :id, \
             direction = :inbound, created_at = :at REMOVE parked",
        )
        .expression_attribute_values(":entity", s(keys::Entity::SidGuard.as_str()))
        .expression_attribute_values(":pk", s(pk))
        .expression_attribute_values(":sk", s(sk))
        .expression_attribute_values(":id", s(&r.message_id))
        .expression_attribute_values(":inbound", to_attribute_value(Direction::Inbound)?)
        .expression_attribute_values(":at", s(&r.received_at))
        .build()?;
    Ok(TransactWriteItem::builder().update(update).build())
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
         last_message_at = :now, last_inbound_at = :now, \
         gsi1pk = :inbox, gsi1sk = :now",
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
        .expression_attribute_values(":inbox", s(keys::CONVERSATIONS_GSI1PK))
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
    expression.push_str(" ADD message_count :one, inbound_count :one, unread_count :one");
    Ok(update.update_expression(expression).build()?)
}
