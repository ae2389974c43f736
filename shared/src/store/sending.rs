//! The send worker's batch operations: one read, one claim and one record per SQS batch, where
//! a message at a time would take four round trips each.
//!
//! A claim is an optimistic one: the worker reads the messages, then claims those it may send
//! on the condition that nobody claimed them since (`attempts`, bumped by every claim, is the
//! version) and, in the same transaction, that their recipients have still not opted out.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, KeysAndAttributes, TransactWriteItem, Update,
};
use serde_dynamo::to_attribute_value;

use super::items::{Consent, Message, StatusChange};
use super::{aws_error, keys, s, Store, StoreError, TxError};
use crate::delivery::DeliveryStatus;
use crate::pipeline::PipelineState;
use crate::twilio::MessageSid;

/// A state as the table stores it.
pub(crate) fn state(state: PipelineState) -> AttributeValue {
    s(state.as_str())
}

/// The condition of every write a worker makes to a message it claimed: still `sending`, and
/// still under *its* claim — the claim bumped the version read before it by one, and a
/// worker that took the claim over after the lease bumped it again, so a late write of a
/// worker presumed dead changes nothing.
pub(crate) const UNDER_OUR_CLAIM: &str = "#status = :sending AND version = :claimed";

/// The version a message has under the claim made on `read` (its state before the claim).
pub(crate) fn claimed_version(read: &Message) -> AttributeValue {
    AttributeValue::N((read.version + 1).to_string())
}

/// BatchGetItem takes at most 100 keys; TransactWriteItems at most 100 items, two per message.
pub const MAX_BATCH: usize = 50;
const UNPROCESSED_ATTEMPTS: u32 = 5;
const UNPROCESSED_BACKOFF: Duration = Duration::from_millis(25);

/// A message's primary key.
pub type MessageKey = (String, String);

/// What the worker needs to decide: the messages, and which of their recipients opted out.
#[derive(Debug, Default)]
pub struct SendState {
    pub messages: HashMap<MessageKey, Message>,
    opted_out: HashSet<String>,
    /// Items that did not read as what they should be (message keys, consent keys): they fail
    /// only their own jobs, never the batch.
    unreadable: HashSet<String>,
}

impl SendState {
    pub fn opted_out(&self, message: &Message) -> bool {
        self.opted_out.contains(&keys::consent_pk(&message.to_e164))
    }

    /// Whether the job's message, or its recipient's consent, could not be read.
    pub fn unreadable(&self, (pk, sk): &MessageKey) -> bool {
        self.unreadable.contains(&format!("{pk}\n{sk}"))
            || keys::consent_pk_of_conversation(pk).is_some_and(|c| self.unreadable.contains(&c))
    }
}

/// One message to claim, as it was read.
pub struct ClaimOrder<'a> {
    pub message: &'a Message,
    /// Claim only while the recipient has not opted out (the canceling of an opted-out
    /// recipient's message claims it without this check).
    pub require_consent: bool,
}

/// One message Twilio accepted.
pub struct Accepted<'a> {
    pub message: &'a Message,
    pub sid: &'a MessageSid,
    pub status: DeliveryStatus,
}

impl Store {
    /// Reads the messages and their recipients' consent in one consistent BatchGetItem.
    /// Job keys must be distinct.
    pub async fn read_for_sending(&self, keys: &[MessageKey]) -> Result<SendState, StoreError> {
        let mut wanted: Vec<HashMap<String, AttributeValue>> = Vec::new();
        let mut consent_keys = HashSet::new();
        for (pk, sk) in keys {
            wanted.push(key(pk, sk));
            if let Some(consent) = keys::consent_pk_of_conversation(pk) {
                if consent_keys.insert(consent.clone()) {
                    wanted.push(key(&consent, keys::CONSENT_SK));
                }
            }
        }
        let mut state = SendState::default();
        for chunk in wanted.chunks(100) {
            for item in self.batch_get(chunk.to_vec()).await? {
                let attr = |name: &str| {
                    item.get(name)
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_default()
                };
                let (pk, sk, id) = (attr("pk"), attr("sk"), attr("message_id"));
                if pk.starts_with("CONSENT#") {
                    match serde_dynamo::from_item::<_, Consent>(item) {
                        Ok(consent) if consent.opted_out => {
                            state.opted_out.insert(pk);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::error!(kind = %kind(&e), "unreadable consent item; its messages wait");
                            state.unreadable.insert(pk);
                        }
                    }
                } else {
                    match serde_dynamo::from_item::<_, Message>(item) {
                        Ok(message) => {
                            state.messages.insert((pk, sk), message);
                        }
                        Err(e) => {
                            tracing::error!(kind = %kind(&e), message_id = %id, "unreadable message item");
                            state.unreadable.insert(format!("{pk}\n{sk}"));
                        }
                    }
                }
            }
        }
        Ok(state)
    }

    pub(crate) async fn batch_get(
        &self,
        mut keys: Vec<HashMap<String, AttributeValue>>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut items = Vec::new();
        for attempt in 1..=UNPROCESSED_ATTEMPTS {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| aws_error("BatchGetItem", &e))?;
            items.extend(
                out.responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default(),
            );
            keys = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.table))
                .map(|k| k.keys)
                .unwrap_or_default();
            if keys.is_empty() {
                return Ok(items);
            }
            tokio::time::sleep(UNPROCESSED_BACKOFF * attempt).await;
        }
        Err(StoreError::Cancelled {
            operation: "BatchGetItem",
            reasons: "keys left unprocessed".into(),
        })
    }

    /// Claims every message in `orders` or none: each still as it was read (queued, or a
    /// `sending` claim older than `stale_before`, with no claim since) and, where required,
    /// its recipient not opted out. At most [`MAX_BATCH`] orders.
    pub async fn claim_batch(
        &self,
        orders: &[ClaimOrder<'_>],
        now: &str,
        stale_before: &str,
        sweep_minute: crate::time::Timestamp,
    ) -> Result<(), TxError> {
        let mut items = Vec::new();
        let mut checked = HashSet::new();
        for order in orders {
            let m = order.message;
            let claim = Update::builder()
                .table_name(&self.table)
                .key("pk", s(&m.pk))
                .key("sk", s(&m.sk))
                .condition_expression(format!(
                    "(#status = :queued OR (#status = :sending AND claimed_at < :stale)) \
                     AND (attribute_not_exists(attempts) OR attempts = :attempts) AND {}",
                    super::pending::version_condition(m.version)
                ))
                // Filed for the end of the lease: if this worker dies and its job is lost,
                // the dispatcher's sweep finds the claim there.
                .update_expression(
                    "SET #status = :sending, claimed_at = :now, \
                     attempts = if_not_exists(attempts, :zero) + :one, \
                     version = if_not_exists(version, :zero) + :one, \
                     gsi2pk = :gsi2pk, gsi2sk = :gsi2sk",
                )
                .expression_attribute_values(":version", AttributeValue::N(m.version.to_string()))
                .expression_attribute_values(
                    ":gsi2pk",
                    s(keys::due_gsi2pk(
                        sweep_minute,
                        keys::due_shard(&m.message_id),
                    )),
                )
                .expression_attribute_values(
                    ":gsi2sk",
                    s(keys::due_gsi2sk(
                        m.send_at.unwrap_or(sweep_minute),
                        &m.message_id,
                    )),
                )
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":queued", state(PipelineState::Queued))
                .expression_attribute_values(":sending", state(PipelineState::Sending))
                .expression_attribute_values(":stale", s(stale_before))
                .expression_attribute_values(":attempts", number(m.attempts))
                .expression_attribute_values(":now", s(now))
                .expression_attribute_values(":zero", number(0))
                .expression_attribute_values(":one", number(1))
                .build()
                .map_err(|e| TxError::Failed(e.into()))?;
            items.push(TransactWriteItem::builder().update(claim).build());
            let consent = keys::consent_pk(&m.to_e164);
            // One check per recipient: a transaction may name an item only once.
            if order.require_consent && checked.insert(consent.clone()) {
                let check = ConditionCheck::builder()
                    .table_name(&self.table)
                    .key("pk", s(consent))
                    .key("sk", s(keys::CONSENT_SK))
                    .condition_expression("attribute_not_exists(opted_out) OR opted_out = :no")
                    .expression_attribute_values(":no", AttributeValue::Bool(false))
                    .build()
                    .map_err(|e| TxError::Failed(e.into()))?;
                items.push(TransactWriteItem::builder().condition_check(check).build());
            }
        }
        self.transact(items).await
    }

    /// Records Twilio's acceptance of every message in `accepted` at once: SID, status and the
    /// SID guard pointing to the message. Only where no callback was parked on a guard: a
    /// parked callback, or any other failed condition, cancels the whole batch, and the
    /// caller records those messages one by one with [`Store::record_submitted`], which
    /// merges parked callbacks. At most [`MAX_BATCH`] messages.
    pub async fn record_submitted_batch(
        &self,
        accepted: &[Accepted<'_>],
        now: &str,
        poll_minute: crate::time::Timestamp,
    ) -> Result<(), TxError> {
        let mut items = Vec::new();
        for a in accepted {
            let message = submitted_update(
                &self.table,
                a.message,
                a.sid,
                a.status,
                true,
                now,
                poll_minute,
            )
            .and_then(|u| Ok(u.build()?))
            .map_err(TxError::Failed)?;
            let guard = guard_update(&self.table, a.message, a.sid, now, true)
                .build()
                .map_err(|e| TxError::Failed(e.into()))?;
            items.push(TransactWriteItem::builder().update(message).build());
            items.push(TransactWriteItem::builder().update(guard).build());
        }
        self.transact(items).await
    }
}

/// The message's side of recording Twilio's acceptance.
///
/// `set_status`: also set `delivery_status` to Twilio's answer, on the condition that it has
/// none yet (absent, or the `NULL` a new message is written with). A callback that names the
/// message by id can set one before the SID is recorded, and Twilio's answer to the create
/// (`queued`, `accepted`) ranks below every status it brings: when that condition fails, the
/// record is made again without it.
pub(super) fn submitted_update(
    table: &str,
    message: &Message,
    sid: &MessageSid,
    status: DeliveryStatus,
    set_status: bool,
    now: &str,
    poll_minute: crate::time::Timestamp,
) -> Result<aws_sdk_dynamodb::types::builders::UpdateBuilder, StoreError> {
    let entry = StatusChange {
        status: status.as_str().into(),
        at: now.into(),
        error_code: None,
        source: "worker".into(),
    };
    let mut update = Update::builder()
        .table_name(table)
        .key("pk", s(&message.pk))
        .key("sk", s(&message.sk))
        .expression_attribute_values(":claimed", claimed_version(message));
    let (condition, delivery) = if set_status {
        update = update
            .expression_attribute_values(":delivery", s(status.as_str()))
            .expression_attribute_values(":null", s("NULL"));
        (
            format!(
                "{UNDER_OUR_CLAIM} AND (attribute_not_exists(delivery_status) OR \
                 attribute_type(delivery_status, :null))"
            ),
            "delivery_status = :delivery, ",
        )
    } else {
        (UNDER_OUR_CLAIM.to_owned(), "")
    };
    Ok(update
        .condition_expression(condition)
        .update_expression(format!(
            "SET #status = :submitted, twilio_sid = :sid, submitted_at = :now, \
             ambiguous = :false, {delivery}\
             version = if_not_exists(version, :zero) + :one, \
             status_history = list_append(if_not_exists(status_history, :empty), :entry), \
             gsi2pk = :poll_pk, gsi2sk = :poll_sk \
             REMOVE status_reason"
        ))
        // Filed for a status poll: a final callback takes it out of the index before then.
        .expression_attribute_values(
            ":poll_pk",
            s(keys::due_gsi2pk(
                poll_minute,
                keys::due_shard(&message.message_id),
            )),
        )
        .expression_attribute_values(
            ":poll_sk",
            s(keys::due_gsi2sk(poll_minute, &message.message_id)),
        )
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":sending", state(PipelineState::Sending))
        .expression_attribute_values(":submitted", state(PipelineState::Submitted))
        .expression_attribute_values(":zero", number(0))
        .expression_attribute_values(":one", number(1))
        .expression_attribute_values(":sid", s(sid.as_str()))
        .expression_attribute_values(":now", s(now))
        .expression_attribute_values(":false", AttributeValue::Bool(false))
        .expression_attribute_values(":empty", AttributeValue::L(vec![]))
        .expression_attribute_values(
            ":entry",
            AttributeValue::L(vec![to_attribute_value(&entry)?]),
        ))
}

/// The SID guard's side: it names the message from now on, so callbacks stop parking.
/// `unparked_only` adds the condition that no callback is parked on it.
pub(super) fn guard_update(
    table: &str,
    message: &Message,
    sid: &MessageSid,
    now: &str,
    unparked_only: bool,
) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
    let names = "(attribute_not_exists(message_id) OR message_id = :id)";
    let condition = if unparked_only {
        format!("{names} AND attribute_not_exists(parked)")
    } else {
        names.to_owned()
    };
    Update::builder()
        .table_name(table)
        .key("pk", s(keys::sid_pk(sid)))
        .key("sk", s(keys::SID_SK))
        .condition_expression(condition)
        .update_expression(
            "SET message_pk = :pk, message_sk = :sk, message_id = :id, direction = :outbound, \
             entity = :entity, created_at = if_not_exists(created_at, :now)",
        )
        .expression_attribute_values(":pk", s(&message.pk))
        .expression_attribute_values(":sk", s(&message.sk))
        .expression_attribute_values(":id", s(&message.message_id))
        .expression_attribute_values(":outbound", s("outbound"))
        .expression_attribute_values(":entity", s(keys::Entity::SidGuard.as_str()))
        .expression_attribute_values(":now", s(now))
}

fn key(pk: &str, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

fn number(n: u32) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

/// What kind of shape error an item had, without the values serde would quote (a number, a
/// name): the log says what to look for, the item says the rest.
fn kind(e: &serde_dynamo::Error) -> &'static str {
    let text = e.to_string();
    if text.contains("missing field") {
        "missing field"
    } else if text.contains("unknown variant") {
        "unknown variant"
    } else if text.contains("invalid type") {
        "invalid type"
    } else {
        "invalid value"
    }
}
