//! Erasure of a person's data (`DELETE /contacts/{phone}`): their conversations' items move
//! out of the partitions keyed by their number into `ERASED#<conversation id>`, keeping only
//! an allowlist of attributes (ids, counts, statuses, times — never a body, a medium, a raw
//! payload or a number); the number's tenant mapping goes, and so does its mention on a
//! tenant's profile. The consent record stays: the law requires the opt-out to be kept.
//!
//! Each message moves in one transaction (its erased copy, the conditional delete of the
//! original as it was read, and its SID guard pointed at the copy), so a status callback or a
//! worker racing the move finds the message in one place or the other, never in both and
//! never recreated. The conversation item moves last, on the condition that no message was
//! added since its partition was read (`message_count` unchanged): an inbound text either
//! lands before (and is moved with the rest) or after (a fresh conversation, new id).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValue, TransactWriteItem, Update,
};
use serde::{Deserialize, Serialize};

use super::items::{Direction, StatusChange};
use super::pending::PageKey;
use super::{aws_error, keys, s, update_applied, Store, StoreError, TxError};
use crate::delivery::DeliveryStatus;
use crate::language::Language;
use crate::phone::{Channel, E164};
use crate::pipeline::PipelineState;
use crate::time::Timestamp;

/// What an idempotency record of an erased recipient keeps instead of its request's hash (an
/// unkeyed hash of the number and the body).
pub const ERASED_REQUEST_HASH: &str = "erased";

/// Rounds of read-and-move before a conversation that keeps changing is reported contended.
const ROUNDS: usize = 6;
/// Messages per transaction: up to four items each, and at most 100 items in one.
const MESSAGES_PER_TRANSACTION: usize = 25;
/// How long a message a worker is sending (`sending`) is given to settle before the move: its
/// Twilio answer is then recorded, and its SID guard moves with it. Within the API's 10 s.
const SETTLE_WAIT: Duration = Duration::from_secs(4);
const SETTLE_POLL: Duration = Duration::from_millis(200);

/// What a message keeps when erased: ids, direction, statuses and their history, counts and
/// times. Everything else — body, media, raw payload, numbers, Twilio's error text (it can
/// quote the number), the due index — is left behind and deleted.
const MESSAGE_KEEPS: &[&str] = &[
    "entity",
    "gsi1pk",
    "gsi1sk",
    "message_id",
    "direction",
    "channel",
    "twilio_sid",
    "account_sid",
    "num_media",
    "language",
    "language_confidence",
    "keyword",
    "status",
    "status_reason",
    "version",
    "created_at",
    "send_at",
    "not_after",
    "time_zone",
    "time_zone_source",
    "urgent",
    "delivery_status",
    "status_history",
    "error_code",
    "attempts",
    "sweeps",
    "segments",
    "encoding",
    "workflow_type",
    "workflow_id",
    "callbacks_seen",
    "status_version",
    "claimed_at",
    "submitted_at",
    "finished_at",
    "updated_at",
    "last_callback_at",
];

/// What a conversation keeps: its id, channel, counts and times. Not its number, nor its
/// tenant (which names the person elsewhere).
const CONVERSATION_KEEPS: &[&str] = &[
    "entity",
    "conversation_id",
    "channel",
    "created_at",
    "last_message_at",
    "last_inbound_at",
    "last_outbound_at",
    "last_activity_at",
    "message_count",
    "inbound_count",
    "outbound_count",
    "language",
    "language_confidence",
    "workflow_type",
    "workflow_id",
];

/// How much one erasure removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErasureCounts {
    pub conversations: u64,
    pub messages: u64,
    /// Pending messages canceled (before the move, or by it).
    pub canceled: u64,
    pub sid_guards: u64,
    pub idempotency_records: u64,
    pub phone_tenant: u64,
    pub tenant_profiles: u64,
    /// Event rules' caps for the number (`RULECAP#<rule>#<e164>`).
    #[serde(default)]
    pub rule_caps: u64,
}

impl ErasureCounts {
    fn add(&mut self, other: ErasureCounts) {
        self.conversations += other.conversations;
        self.messages += other.messages;
        self.canceled += other.canceled;
        self.sid_guards += other.sid_guards;
        self.idempotency_records += other.idempotency_records;
        self.phone_tenant += other.phone_tenant;
        self.tenant_profiles += other.tenant_profiles;
        self.rule_caps += other.rule_caps;
    }
}

/// An erased message as `GET /messages/{id}` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErasedMessage {
    pub message_id: String,
    pub direction: Direction,
    pub channel: Channel,
    pub status: PipelineState,
    #[serde(default)]
    pub status_reason: Option<String>,
    #[serde(default)]
    pub delivery_status: Option<DeliveryStatus>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub twilio_sid: Option<String>,
    pub created_at: Timestamp,
    #[serde(default)]
    pub send_at: Option<Timestamp>,
    #[serde(default)]
    pub language: Option<Language>,
    #[serde(default)]
    pub segments: Option<u32>,
    #[serde(default)]
    pub workflow_type: Option<String>,
    #[serde(default)]
    pub workflow_id: Option<String>,
    #[serde(default)]
    pub status_history: Vec<StatusChange>,
    #[serde(default)]
    pub attempts: u32,
    pub erased_at: String,
}

/// A message found by its id: as it is, or what its erasure kept.
#[derive(Debug, Clone)]
pub enum MessageLookup {
    Live(Box<super::Message>),
    Erased(Box<ErasedMessage>),
}

/// One erasure's audit entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErasureAudit {
    pub audit_id: String,
    pub erased_at: String,
    /// The API key that asked for it.
    pub key_id: String,
    /// The log pseudonym of the number (keyed HMAC), never the number.
    pub phone_pseudonym: String,
    pub counts: ErasureCounts,
}

type Item = HashMap<String, AttributeValue>;

fn attr_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// `name = :value` for the value read, `attribute_not_exists(name)` when it was absent: the
/// item is still as read, as far as `name` goes.
fn unchanged(
    names: &[&str],
    item: &Item,
    values: &mut Item,
    attribute_names: &mut HashMap<String, String>,
) -> String {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let alias = format!("#u{i}");
            attribute_names.insert(alias.clone(), (*name).to_owned());
            match item.get(*name) {
                Some(v) => {
                    let placeholder = format!(":u{i}");
                    values.insert(placeholder.clone(), v.clone());
                    format!("{alias} = {placeholder}")
                }
                None => format!("attribute_not_exists({alias})"),
            }
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn kept(item: &Item, keeps: &[&str], pk: &str, now: &str) -> Item {
    let mut copy: Item = keeps
        .iter()
        .filter_map(|k| item.get(*k).map(|v| ((*k).to_owned(), v.clone())))
        .collect();
    copy.insert("pk".into(), s(pk));
    if let Some(sk) = item.get("sk") {
        copy.insert("sk".into(), sk.clone());
    }
    copy.insert("erased_at".into(), s(now));
    copy
}

/// One message's move: its erased copy, the delete of the original as read, the delete of its
/// failed-list entry (outbound) and, when it has a SID, its guard pointed at the copy. Also whether it was canceled by the move.
fn message_move(
    table: &str,
    item: &Item,
    erased_pk: &str,
    now: &str,
) -> Result<(Vec<TransactWriteItem>, bool), StoreError> {
    let pk = attr_s(item, "pk").unwrap_or_default().to_owned();
    let sk = attr_s(item, "sk").unwrap_or_default().to_owned();
    let mut copy = kept(item, MESSAGE_KEEPS, erased_pk, now);
    // Still pending (accepted after the cancel that preceded the move): never sent now.
    let pending = attr_s(item, "status").is_some_and(|st| {
        [
            PipelineState::Scheduled,
            PipelineState::Deferred,
            PipelineState::Queued,
        ]
        .iter()
        .any(|p| p.as_str() == st)
    });
    if pending {
        copy.insert("status".into(), s(PipelineState::Canceled.as_str()));
        copy.insert("status_reason".into(), s("erased"));
        copy.insert(
            "delivery_status".into(),
            s(DeliveryStatus::Canceled.as_str()),
        );
    }
    let mut items = vec![TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(table)
                .set_item(Some(copy))
                .build()?,
        )
        .build()];
    let mut values = Item::new();
    let mut names = HashMap::new();
    let condition = unchanged(
        &["version", "status_version", "status"],
        item,
        &mut values,
        &mut names,
    );
    items.push(
        TransactWriteItem::builder()
            .delete(
                Delete::builder()
                    .table_name(table)
                    .key("pk", s(&pk))
                    .key("sk", s(&sk))
                    .condition_expression(format!("attribute_exists(pk) AND {condition}"))
                    .set_expression_attribute_names(Some(names))
                    .set_expression_attribute_values(Some(values))
                    .build()?,
            )
            .build(),
    );
    // Its entry in the failed list names the original key (and so the number): gone with it.
    let outbound = attr_s(item, "direction") == Some("outbound");
    if let (true, Some(message_id)) = (outbound, attr_s(item, "message_id")) {
        items.push(
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(table)
                        .key("pk", s(keys::FAILURES_PK))
                        .key("sk", s(keys::failure_sk(message_id)))
                        .build()?,
                )
                .build(),
        );
    }
    if let Some(sid) = attr_s(item, "twilio_sid") {
        let message_id = attr_s(item, "message_id").unwrap_or_default();
        items.push(
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(table)
                        .key("pk", s(format!("SID#{sid}")))
                        .key("sk", s(keys::SID_SK))
                        .update_expression(
                            "SET message_pk = :pk, message_sk = :sk, message_id = :id, \
                             entity = :entity",
                        )
                        .expression_attribute_values(":pk", s(erased_pk))
                        .expression_attribute_values(":sk", s(&sk))
                        .expression_attribute_values(":id", s(message_id))
                        .expression_attribute_values(":entity", s(keys::Entity::SidGuard.as_str()))
                        .build()?,
                )
                .build(),
        );
    }
    Ok((items, pending))
}

impl Store {
    /// Every item of a partition, read consistently.
    async fn partition(&self, pk: &str) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::new();
        let mut start: Option<PageKey> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| aws_error("Query", &e))?;
            found.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return Ok(found);
            }
        }
    }

    /// Erases everything stored about `phone` except its consent record: both channels'
    /// conversations and messages (moved, see the module), its tenant mapping, and the number
    /// on any tenant profile that names it. Idempotent: a second call finds nothing and
    /// returns zero counts. Pending messages should be canceled first (`send::cancel`); any
    /// accepted since are canceled by the move.
    pub async fn erase_contact(
        &self,
        phone: &E164,
        now: Timestamp,
    ) -> Result<ErasureCounts, StoreError> {
        let now = now.to_string();
        let mut counts = ErasureCounts::default();
        let mut tenants = HashSet::new();
        let mut idempotency = Vec::new();
        for channel in [Channel::Sms, Channel::Whatsapp] {
            let (moved, tenant, records) = self.erase_conversation(channel, phone, &now).await?;
            counts.add(moved);
            tenants.extend(tenant);
            idempotency.extend(records);
        }
        for (record, erased_pk) in idempotency {
            if self.erase_idempotency(&record, &erased_pk, &now).await? {
                counts.idempotency_records += 1;
            }
        }
        // After the conversations: the processor writes the mapping only while the
        // conversation exists (`put_phone_tenant`), so none can come back after this delete.
        let old = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(keys::phone_tenant_pk(phone)))
            .key("sk", s(keys::PHONE_TENANT_SK))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| aws_error("DeleteItem", &e))?
            .attributes;
        if let Some(old) = old {
            counts.phone_tenant += 1;
            if let Some(tenant) = attr_s(&old, "tenant_id") {
                tenants.insert(tenant.to_owned());
            }
        }
        // Rules' caps are keyed by the number: one delete per rule (there are tens).
        for rule in self.rules().await? {
            let old = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(keys::rule_cap_pk(&rule.rule_id, phone)))
                .key("sk", s(keys::RULE_CAP_SK))
                .return_values(ReturnValue::AllOld)
                .send()
                .await
                .map_err(|e| aws_error("DeleteItem", &e))?
                .attributes;
            counts.rule_caps += u64::from(old.is_some());
        }
        for tenant in tenants {
            if self.forget_tenant_number(&tenant, phone).await? {
                counts.tenant_profiles += 1;
            }
        }
        Ok(counts)
    }

    /// Moves one conversation; returns what it moved, its tenant, and the idempotency records
    /// of its messages (with the erased partition they now point to).
    async fn erase_conversation(
        &self,
        channel: Channel,
        phone: &E164,
        now: &str,
    ) -> Result<(ErasureCounts, Option<String>, Vec<(String, String)>), StoreError> {
        let pk = keys::conversation_pk(channel, phone);
        let mut counts = ErasureCounts::default();
        let mut tenant = None;
        let mut idempotency = Vec::new();
        // Used only when the conversation item is missing (messages without one).
        let fallback_id = ulid::Ulid::new().to_string();
        let settle_by = Instant::now() + SETTLE_WAIT;
        let sending = |items: &[Item]| {
            items
                .iter()
                .any(|i| attr_s(i, "status") == Some(PipelineState::Sending.as_str()))
        };
        for _ in 0..ROUNDS {
            let mut items = self.partition(&pk).await?;
            // A send in flight is let finish (a worker holds it for one Twilio call); one
            // still `sending` after the wait (a worker that died) is moved as it is.
            while sending(&items) && Instant::now() < settle_by {
                tokio::time::sleep(SETTLE_POLL).await;
                items = self.partition(&pk).await?;
            }
            if items.is_empty() {
                return Ok((counts, tenant, idempotency));
            }
            let meta = items.iter().find(|i| attr_s(i, "sk") == Some(keys::META));
            let conversation_id = meta
                .and_then(|m| attr_s(m, "conversation_id"))
                .unwrap_or(&fallback_id)
                .to_owned();
            if let Some(t) = meta.and_then(|m| attr_s(m, "tenant_id")) {
                tenant = Some(t.to_owned());
            }
            let erased_pk = keys::erased_pk(&conversation_id);
            let messages: Vec<&Item> = items
                .iter()
                .filter(|i| attr_s(i, "sk") != Some(keys::META))
                .collect();
            let mut all_moved = true;
            for chunk in messages.chunks(MESSAGES_PER_TRANSACTION) {
                let mut moves = Vec::with_capacity(chunk.len());
                for item in chunk {
                    moves.push(message_move(&self.table, item, &erased_pk, now)?);
                }
                let batch: Vec<TransactWriteItem> =
                    moves.iter().flat_map(|(m, _)| m.clone()).collect();
                let moved: Vec<bool> = match self.transact(batch).await {
                    Ok(()) => vec![true; chunk.len()],
                    // One changed since the read: move them one by one, and what still fails
                    // is read again in the next round.
                    Err(TxError::ConditionFailed(_)) => {
                        let mut each = Vec::with_capacity(chunk.len());
                        for (items, _) in &moves {
                            each.push(match self.transact(items.clone()).await {
                                Ok(()) => true,
                                Err(TxError::ConditionFailed(_)) => false,
                                Err(e) => return Err(e.into()),
                            });
                        }
                        each
                    }
                    Err(e) => return Err(e.into()),
                };
                for ((item, (writes, canceled)), ok) in chunk.iter().zip(&moves).zip(moved) {
                    if !ok {
                        all_moved = false;
                        continue;
                    }
                    counts.messages += 1;
                    counts.canceled += u64::from(*canceled);
                    counts.sid_guards += u64::from(writes.len() == 3);
                    if let Some(record) = attr_s(item, "idempotency_pk") {
                        idempotency.push((record.to_owned(), erased_pk.clone()));
                    }
                }
            }
            if !all_moved {
                continue;
            }
            let Some(meta) = meta else {
                continue;
            };
            let mut values = Item::new();
            let mut names = HashMap::new();
            // No message added (every one bumps the count) and no tenant linked since the read.
            let condition = unchanged(
                &["message_count", "tenant_id"],
                meta,
                &mut values,
                &mut names,
            );
            let copy = kept(meta, CONVERSATION_KEEPS, &erased_pk, now);
            let result = self
                .transact(vec![
                    // Unconditional: a status callback on a moved message may have touched
                    // the erased conversation (`last_activity_at`) before it moved.
                    TransactWriteItem::builder()
                        .put(
                            Put::builder()
                                .table_name(&self.table)
                                .set_item(Some(copy))
                                .build()?,
                        )
                        .build(),
                    TransactWriteItem::builder()
                        .delete(
                            Delete::builder()
                                .table_name(&self.table)
                                .key("pk", s(&pk))
                                .key("sk", s(keys::META))
                                .condition_expression(format!(
                                    "attribute_exists(pk) AND {condition}"
                                ))
                                .set_expression_attribute_names(Some(names))
                                .set_expression_attribute_values(Some(values))
                                .build()?,
                        )
                        .build(),
                ])
                .await;
            match result {
                Ok(()) => counts.conversations += 1,
                Err(TxError::ConditionFailed(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Cancelled {
            operation: "TransactWriteItems",
            reasons: "the conversation kept changing during its erasure".into(),
        })
    }

    /// Points an idempotency record at the erased message and drops its request hash; the
    /// record itself stays until its TTL, so a retry of the send is answered, not sent again.
    async fn erase_idempotency(
        &self,
        record_pk: &str,
        erased_pk: &str,
        now: &str,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(record_pk))
            .key("sk", s(keys::IDEMPOTENCY_SK))
            .condition_expression("attribute_exists(pk) AND begins_with(message_pk, :conv)")
            .update_expression("SET message_pk = :erased, request_hash = :hash, erased_at = :now")
            .expression_attribute_values(":conv", s("CONV#"))
            .expression_attribute_values(":erased", s(erased_pk))
            .expression_attribute_values(":hash", s(ERASED_REQUEST_HASH))
            .expression_attribute_values(":now", s(now))
            .send()
            .await;
        update_applied(result)
    }

    /// Removes the number from a tenant's profile if it is the one named there.
    async fn forget_tenant_number(
        &self,
        tenant_id: &str,
        phone: &E164,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::tenant_pk(tenant_id)))
            .key("sk", s(keys::TENANT_PROFILE_SK))
            .condition_expression("last_used_phone = :phone")
            .update_expression("REMOVE last_used_phone, last_used_channel")
            .expression_attribute_values(":phone", s(phone.as_str()))
            .send()
            .await;
        update_applied(result)
    }

    pub async fn put_erasure_audit(&self, audit: &ErasureAudit) -> Result<(), StoreError> {
        let mut item: Item = serde_dynamo::to_item(audit)?;
        item.insert("pk".into(), s(keys::erasure_audit_pk(&audit.audit_id)));
        item.insert("sk".into(), s(keys::ERASURE_AUDIT_SK));
        item.insert("entity".into(), s(keys::Entity::ErasureAudit.as_str()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| aws_error("PutItem", &e))?;
        Ok(())
    }

    pub async fn erasure_audit(&self, audit_id: &str) -> Result<Option<ErasureAudit>, StoreError> {
        self.get(keys::erasure_audit_pk(audit_id), keys::ERASURE_AUDIT_SK)
            .await
    }

    /// A message by its id, through the message-id index: live, or what its erasure kept.
    pub async fn lookup_message(
        &self,
        message_id: &str,
    ) -> Result<Option<MessageLookup>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(keys::GSI1)
            .key_condition_expression("gsi1pk = :id")
            .expression_attribute_values(":id", s(keys::message_gsi1pk(message_id)))
            .limit(1)
            .send()
            .await
            .map_err(|e| aws_error("Query", &e))?;
        let Some(item) = out.items.unwrap_or_default().into_iter().next() else {
            return Ok(None);
        };
        let (Some(pk), Some(sk)) = (attr_s(&item, "pk"), attr_s(&item, "sk")) else {
            return Ok(None);
        };
        // The index is eventually consistent and projects everything; read the item itself
        // for the latest status. An index entry of a message moved since is read again.
        if keys::is_erased(pk) {
            let erased: Option<ErasedMessage> = self.get(pk.to_owned(), sk).await?;
            return Ok(erased.map(|m| MessageLookup::Erased(Box::new(m))));
        }
        match self.message(pk, sk).await? {
            Some(m) => Ok(Some(MessageLookup::Live(Box::new(m)))),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, &str)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), s(*v)))
            .collect()
    }

    #[test]
    fn an_erased_copy_keeps_statuses_and_drops_bodies_media_payloads_and_numbers() {
        let original = item(&[
            ("pk", "CONV#sms#+14155552671"),
            ("sk", "MSG#01J"),
            ("entity", "message"),
            ("message_id", "01J"),
            ("direction", "outbound"),
            ("status", "queued"),
            ("version", "3"),
            ("body", "secret"),
            ("raw_payload", "From=%2B14155552671&Body=secret"),
            ("from_e164", "+14155552671"),
            ("to_e164", "+15005550006"),
            ("to_original", "(415) 555-2671"),
            ("error_message", "The 'To' number +14155552671 is not valid"),
            ("gsi2pk", "DUE#2026-12-01T09:00#3"),
            ("idempotency_pk", "IDEM#k#1"),
            ("some_future_attribute", "+14155552671"),
        ]);
        let (writes, canceled) =
            message_move("t", &original, "ERASED#01C", "2026-12-01T09:00:00.000Z").unwrap();
        assert!(canceled, "a pending message is canceled by the move");
        assert_eq!(
            writes.len(),
            3,
            "the copy, the delete, the failed-list entry; no SID: no guard to point"
        );
        let entry = writes[2].delete().unwrap();
        assert_eq!(
            (entry.key()["pk"].clone(), entry.key()["sk"].clone()),
            (s("FAILED"), s("MSG#01J"))
        );
        let copy = writes[0].put().unwrap().item();
        assert_eq!(copy["pk"], s("ERASED#01C"));
        assert_eq!(copy["sk"], s("MSG#01J"));
        assert_eq!(copy["entity"], s("message"));
        assert_eq!(copy["status"], s("canceled"));
        assert_eq!(copy["status_reason"], s("erased"));
        assert!(copy.contains_key("erased_at"));
        let text = format!("{copy:?}");
        for gone in ["secret", "4155552671", "5005550006", "DUE#", "IDEM#"] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        let delete = writes[1].delete().unwrap();
        assert_eq!(delete.key()["pk"], s("CONV#sms#+14155552671"));
        let condition = delete.condition_expression().unwrap_or_default();
        assert!(
            condition.starts_with("attribute_exists(pk) AND"),
            "{condition}"
        );
        assert!(
            condition.contains("attribute_not_exists(#u1)"),
            "{condition}"
        );
    }

    #[test]
    fn an_erased_conversation_keeps_its_counts_and_not_its_number_or_tenant() {
        let meta = item(&[
            ("pk", "CONV#whatsapp#+14155552671"),
            ("sk", "META"),
            ("conversation_id", "01C"),
            ("phone", "+14155552671"),
            ("tenant_id", "t-1"),
            ("message_count", "4"),
        ]);
        let copy = kept(&meta, CONVERSATION_KEEPS, "ERASED#01C", "now");
        let mut names: Vec<&str> = copy.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["conversation_id", "erased_at", "message_count", "pk", "sk"]
        );
    }
}
