//! Parley's DynamoDB store: one table, typed items, conditional writes for every invariant.

pub mod api_keys;
pub mod backfill;
pub mod consent;
pub mod data_keys;
mod direct;
pub mod erasure;
pub mod failures;
pub mod inbound;
pub mod inbox;
pub mod items;
pub mod keys;
pub mod outbound;
pub mod pending;
pub mod rules;

pub mod sending;
pub mod stats;
pub mod tenants;

use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use serde::de::DeserializeOwned;

use crate::phone::{Channel, E164};
use crate::twilio::MessageSid;
pub use backfill::{BackfillCheckpoint, BackfillResume};
pub use consent::{ConsentOutcome, HISTORY_CAP};
pub use erasure::{ErasedMessage, ErasureAudit, ErasureCounts, MessageLookup, ERASED_REQUEST_HASH};
pub use inbound::{InboundOutcome, InboundRecord, WriteOutcome};
pub use inbox::{InboxFilter, InboxPage};
pub use items::{
    Consent, ConsentChange, Conversation, Direction, Message, ParkedCallback, SidGuard,
    StatusChange,
};
pub use outbound::{
    CreateOutcome, Idempotency, IdempotencyKey, IdempotencyRecord, NewOutbound, StatusOutcome,
    StatusSource,
};
pub use pending::{IndexChange, PageKey, QueueFilter, Transition};
pub use sending::{Accepted, ClaimOrder, MessageKey, SendState};
pub use stats::{Count, HourStats};

/// Concurrent transactions on one item can be cancelled with `TransactionConflict`; it is safe
/// to try again a few times before reporting a failure (and so a retry by our caller).
const CONFLICT_ATTEMPTS: u32 = 4;
const CONFLICT_BACKOFF: Duration = Duration::from_millis(20);

/// How a transaction failed.
#[derive(Debug)]
pub enum TxError {
    /// The condition of the item at this index failed; nothing was written.
    ConditionFailed(usize),
    Failed(StoreError),
}

impl From<TxError> for StoreError {
    fn from(e: TxError) -> Self {
        match e {
            TxError::ConditionFailed(i) => StoreError::Cancelled {
                operation: "TransactWriteItems",
                reasons: format!("ConditionalCheckFailed on item {i}"),
            },
            TxError::Failed(e) => e,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Only the operation and the error code are kept: AWS messages can quote key values, and
    /// our keys contain phone numbers.
    #[error("DynamoDB {operation} failed: {code}")]
    Aws {
        operation: &'static str,
        code: String,
    },
    #[error("DynamoDB {operation} was cancelled: {reasons}")]
    Cancelled {
        operation: &'static str,
        reasons: String,
    },
    #[error("could not build the DynamoDB request")]
    Build(#[from] aws_sdk_dynamodb::error::BuildError),
    #[error("an item in the table does not have the expected shape")]
    Shape(#[from] serde_dynamo::Error),
    /// A sealed field could not be opened (see [`crate::envelope`]).
    #[error("a sealed field could not be opened")]
    Sealed(#[source] Box<crate::envelope::EnvelopeError>),
    /// An item whose JSON attribute does not read back (a stored rule).
    #[error("an item in the table could not be read: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// A sealed field that will never open (tampered, unknown key, no envelope), as opposed
    /// to a fault that may pass (KMS or the table unreachable).
    pub fn unreadable(&self) -> bool {
        use crate::envelope::EnvelopeError as E;
        matches!(self, StoreError::Sealed(e)
            if matches!(**e, E::Forged | E::Malformed | E::NoEnvelope | E::ReadOnly | E::UnknownKey(_)))
    }
}

/// Whether a conditional `UpdateItem` was applied: `false` when its condition did not hold.
pub(crate) fn update_applied<R>(
    result: Result<
        aws_sdk_dynamodb::operation::update_item::UpdateItemOutput,
        SdkError<aws_sdk_dynamodb::operation::update_item::UpdateItemError, R>,
    >,
) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(aws_error("UpdateItem", &e)),
    }
}

pub(crate) fn aws_error<E: ProvideErrorMetadata, R>(
    operation: &'static str,
    err: &SdkError<E, R>,
) -> StoreError {
    let code = match err {
        SdkError::ServiceError(e) => e.err().code().unwrap_or("unknown").to_owned(),
        SdkError::TimeoutError(_) => "timeout".to_owned(),
        SdkError::DispatchFailure(_) => "dispatch_failure".to_owned(),
        SdkError::ConstructionFailure(_) => "construction_failure".to_owned(),
        _ => "response_error".to_owned(),
    };
    StoreError::Aws { operation, code }
}

#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    /// The transactions' own client (`direct`), when the store was given one: else the SDK's.
    direct: Option<std::sync::Arc<direct::DirectWrites>>,
    table: String,
    /// Seals what people wrote on write and opens it on read; none: stored as it is.
    envelope: Option<std::sync::Arc<crate::envelope::Envelope>>,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            direct: None,
            table: table.into(),
            envelope: None,
        }
    }

    /// This store, sending its transactions itself ([`direct`]) on `http` to `sdk`'s DynamoDB,
    /// with `sdk`'s region, credentials, retries and timeouts: what every function's store
    /// does (`ColdStart`). Unchanged when `sdk` names no region or credentials, or `http` could
    /// not be built.
    pub fn with_direct_writes(
        mut self,
        sdk: &aws_types::SdkConfig,
        http: Result<reqwest::Client, String>,
    ) -> Self {
        if let Ok(http) = http {
            self.direct = direct::DirectWrites::new(sdk, http).map(std::sync::Arc::new);
        }
        self
    }

    /// This store, sealing bodies, media URLs and raw payloads with `envelope`.
    pub fn with_envelope(mut self, envelope: std::sync::Arc<crate::envelope::Envelope>) -> Self {
        self.envelope = Some(envelope);
        self
    }

    /// `text` as this store keeps it for the item `bound_to` names: sealed when it has an
    /// envelope.
    pub fn seal(
        &self,
        text: &str,
        bound_to: &str,
    ) -> Result<crate::envelope::StoredText, StoreError> {
        match &self.envelope {
            Some(envelope) => envelope
                .seal(text, bound_to)
                .map(crate::envelope::StoredText::sealed)
                .map_err(|e| StoreError::Sealed(Box::new(e))),
            None => Ok(crate::envelope::StoredText::plain(text)),
        }
    }

    /// The text of a stored field of the item `bound_to` names.
    pub async fn open(
        &self,
        text: &crate::envelope::StoredText,
        bound_to: &str,
    ) -> Result<String, StoreError> {
        match (text.sealed_value(), &self.envelope) {
            (None, _) => Ok(text.stored().to_owned()),
            (Some(sealed), Some(envelope)) => envelope
                .open(sealed, bound_to)
                .await
                .map_err(|e| StoreError::Sealed(Box::new(e))),
            (Some(_), None) => Err(StoreError::Sealed(Box::new(
                crate::envelope::EnvelopeError::NoEnvelope,
            ))),
        }
    }

    /// A message's body, opened.
    pub async fn body_of(&self, m: &Message) -> Result<String, StoreError> {
        self.open(&m.body, &m.message_id).await
    }

    /// A message's media URLs, opened.
    pub async fn media_of(&self, m: &Message) -> Result<Vec<String>, StoreError> {
        let mut urls = Vec::with_capacity(m.media_urls.len());
        for url in &m.media_urls {
            urls.push(self.open(url, &m.message_id).await?);
        }
        Ok(urls)
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Runs a transaction, retrying conflicts with other transactions a few times.
    ///
    /// Each call carries a `ClientRequestToken`: when an attempt times out after DynamoDB
    /// applied it, the SDK's retry of the same request then succeeds without applying it
    /// again, instead of failing on the transaction's own conditions.
    pub(crate) async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), TxError> {
        self.transact_built(|| Ok(items.clone())).await
    }

    /// [`Store::transact`] of items built for each attempt (see
    /// [`Store::transact_reasons_built`]).
    pub(crate) async fn transact_built<F>(&self, build: F) -> Result<(), TxError>
    where
        F: Fn() -> Result<Vec<TransactWriteItem>, StoreError>,
    {
        match self.transact_reasons_built(build).await {
            Ok(()) => Ok(()),
            Err(Ok(failed)) => Err(TxError::ConditionFailed(failed[0].index)),
            Err(Err(e)) => Err(TxError::Failed(e)),
        }
    }

    /// Applies as many of `items` as can be: a transaction of all of them, and on cancellation
    /// again without those whose condition failed. Says which were applied. For independent
    /// conditional writes batched only to save round trips (the dispatcher's releases).
    pub(crate) async fn transact_each(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Vec<bool>, StoreError> {
        let mut applied = vec![true; items.len()];
        let mut remaining: Vec<(usize, TransactWriteItem)> =
            items.into_iter().enumerate().collect();
        while !remaining.is_empty() {
            let batch: Vec<TransactWriteItem> =
                remaining.iter().map(|(_, item)| item.clone()).collect();
            match self.transact_reasons(batch).await {
                Ok(()) => break,
                Err(Ok(failed)) => {
                    let mut kept = Vec::with_capacity(remaining.len());
                    for (position, (index, item)) in remaining.into_iter().enumerate() {
                        if failed.iter().any(|f| f.index == position) {
                            applied[index] = false;
                        } else {
                            kept.push((index, item));
                        }
                    }
                    remaining = kept;
                }
                Err(Err(e)) => return Err(e),
            }
        }
        Ok(applied)
    }

    /// A transaction; on cancellation by conditions, the entries whose condition failed (with
    /// the item as it was, for those that asked for it).
    pub(crate) async fn transact_reasons(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), Result<Vec<Failed>, StoreError>> {
        self.transact_reasons_built(|| Ok(items.clone())).await
    }

    /// [`Store::transact_reasons`] of items `build` makes for each attempt, so none is kept for
    /// a retry that rarely comes: where the items can be built again (the inbound write, on
    /// every text the webhook records), that spares a copy of every item per transaction.
    pub(crate) async fn transact_reasons_built<F>(
        &self,
        build: F,
    ) -> Result<(), Result<Vec<Failed>, StoreError>>
    where
        F: Fn() -> Result<Vec<TransactWriteItem>, StoreError>,
    {
        let mut attempt = 1;
        loop {
            let items = build().map_err(Err)?;
            let token = ulid::Ulid::new().to_string();
            let result = match &self.direct {
                Some(direct) => direct.transact(&items, &token).await,
                None => self
                    .client
                    .transact_write_items()
                    .set_transact_items(Some(items))
                    .client_request_token(token)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(classify),
            };
            match result {
                Ok(_) => return Ok(()),
                Err(Cancel::Conflict) if attempt < CONFLICT_ATTEMPTS => {
                    tokio::time::sleep(CONFLICT_BACKOFF * attempt).await;
                    attempt += 1;
                }
                Err(Cancel::Conflict) => {
                    return Err(Err(StoreError::Cancelled {
                        operation: "TransactWriteItems",
                        reasons: "TransactionConflict".into(),
                    }))
                }
                Err(Cancel::Condition(failed)) => return Err(Ok(failed)),
                Err(Cancel::Other(e)) => return Err(Err(e)),
            }
        }
    }

    /// Cheap reachability probe: describes the table.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| aws_error("DescribeTable", &e))?;
        Ok(())
    }

    async fn get<T: DeserializeOwned>(
        &self,
        pk: String,
        sk: &str,
    ) -> Result<Option<T>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws_error("GetItem", &e))?;
        out.item
            .map(serde_dynamo::from_item)
            .transpose()
            .map_err(StoreError::from)
    }

    pub async fn conversation(
        &self,
        channel: Channel,
        phone: &E164,
    ) -> Result<Option<Conversation>, StoreError> {
        self.get(keys::conversation_pk(channel, phone), keys::META)
            .await
    }

    pub async fn consent(&self, phone: &E164) -> Result<Option<Consent>, StoreError> {
        self.get(keys::consent_pk(phone), keys::CONSENT_SK).await
    }

    pub async fn sid_guard(&self, sid: &MessageSid) -> Result<Option<SidGuard>, StoreError> {
        self.get(keys::sid_pk(sid), keys::SID_SK).await
    }

    /// One page of a conversation's messages, newest first, after `after` (the `sk` of the
    /// last message of the previous page); also the `sk` to continue from, if more remain.
    pub async fn messages_page(
        &self,
        channel: Channel,
        phone: &E164,
        limit: i32,
        after: Option<&str>,
    ) -> Result<(Vec<Message>, Option<String>), StoreError> {
        let pk = keys::conversation_pk(channel, phone);
        self.page(pk, Some(keys::MESSAGE_PREFIX), limit, after)
            .await
    }

    /// One page of a partition's items (those whose `sk` starts with `prefix`, if given),
    /// highest `sk` first, after `after`; and the `sk` to continue from, if more remain.
    pub(crate) async fn page<T: DeserializeOwned>(
        &self,
        pk: String,
        prefix: Option<&str>,
        limit: i32,
        after: Option<&str>,
    ) -> Result<(Vec<T>, Option<String>), StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", s(pk.clone()))
            .scan_index_forward(false)
            .limit(limit);
        query = match prefix {
            Some(prefix) => query
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":prefix", s(prefix)),
            None => query.key_condition_expression("pk = :pk"),
        };
        if let Some(sk) = after {
            query = query
                .exclusive_start_key("pk", s(pk))
                .exclusive_start_key("sk", s(sk));
        }
        let out = query.send().await.map_err(|e| aws_error("Query", &e))?;
        let next = out
            .last_evaluated_key
            .as_ref()
            .and_then(|k| k.get("sk"))
            .and_then(|v| v.as_s().ok())
            .cloned();
        Ok((
            serde_dynamo::from_items(out.items.unwrap_or_default())?,
            next,
        ))
    }

    /// A message by its id, through the message-id index; `None` for an erased one too (see
    /// [`Store::lookup_message`]).
    pub async fn message_by_id(&self, message_id: &str) -> Result<Option<Message>, StoreError> {
        Ok(match self.lookup_message(message_id).await? {
            Some(MessageLookup::Live(m)) => Some(*m),
            _ => None,
        })
    }

    /// A conversation's messages, newest first, `limit` at most (one page).
    pub async fn messages(
        &self,
        channel: Channel,
        phone: &E164,
        limit: i32,
    ) -> Result<Vec<Message>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(keys::conversation_pk(channel, phone)))
            .expression_attribute_values(":prefix", s(keys::MESSAGE_PREFIX))
            .scan_index_forward(false)
            .limit(limit)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws_error("Query", &e))?;
        serde_dynamo::from_items(out.items.unwrap_or_default()).map_err(StoreError::from)
    }
}

/// A transaction entry whose condition failed.
#[derive(Debug)]
pub(crate) struct Failed {
    pub index: usize,
    /// The item as it was, when the entry asked for `ReturnValuesOnConditionCheckFailure`
    /// `ALL_OLD` and the item existed.
    pub item: Option<std::collections::HashMap<String, AttributeValue>>,
}

enum Cancel {
    /// Every entry whose condition failed (at least one).
    Condition(Vec<Failed>),
    Conflict,
    Other(StoreError),
}

/// A cancelled transaction's reasons, one per entry in order, read the one way for the SDK's
/// answer ([`classify`]) and `direct`'s: the entries whose condition failed (with the item, when
/// asked for and returned), else a conflict, else the codes. `code` and `item` read a reason.
fn cancellation<R>(
    reasons: &[R],
    code: fn(&R) -> Option<&str>,
    item: fn(&R) -> Option<Item>,
) -> Cancel {
    let failed: Vec<Failed> = reasons
        .iter()
        .enumerate()
        .filter(|(_, r)| code(r) == Some("ConditionalCheckFailed"))
        .map(|(index, r)| Failed {
            index,
            item: item(r),
        })
        .collect();
    if !failed.is_empty() {
        return Cancel::Condition(failed);
    }
    let codes: Vec<&str> = reasons.iter().map(|r| code(r).unwrap_or("None")).collect();
    if codes.contains(&"TransactionConflict") {
        return Cancel::Conflict;
    }
    Cancel::Other(StoreError::Cancelled {
        operation: "TransactWriteItems",
        reasons: codes.join(","),
    })
}

fn classify<R>(err: SdkError<TransactWriteItemsError, R>) -> Cancel {
    if let SdkError::ServiceError(service) = &err {
        match service.err() {
            TransactWriteItemsError::TransactionCanceledException(cancel) => {
                return cancellation(
                    cancel.cancellation_reasons(),
                    |r| r.code(),
                    |r| r.item().cloned(),
                );
            }
            TransactWriteItemsError::TransactionInProgressException(_) => return Cancel::Conflict,
            _ => {}
        }
    }
    Cancel::Other(aws_error("TransactWriteItems", &err))
}

/// An item's key: `(pk, sk)`.
pub type ItemKey = (String, String);
pub type Item = std::collections::HashMap<String, AttributeValue>;

impl Store {
    /// The items at `keys` that exist, by key: one consistent BatchGetItem for up to 100 keys
    /// (so a decision that needs several items costs one round trip).
    pub async fn items(
        &self,
        keys: &[ItemKey],
    ) -> Result<std::collections::HashMap<ItemKey, Item>, StoreError> {
        let mut unique: Vec<&ItemKey> = keys.iter().collect();
        unique.sort();
        unique.dedup();
        let mut found = std::collections::HashMap::new();
        for chunk in unique.chunks(100) {
            let request = chunk
                .iter()
                .map(|(pk, sk)| Item::from([("pk".into(), s(pk)), ("sk".into(), s(sk))]))
                .collect();
            for item in self.batch_get(request).await? {
                let key = |name: &str| {
                    item.get(name)
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_default()
                };
                found.insert((key("pk"), key("sk")), item);
            }
        }
        Ok(found)
    }
}

/// The item at `key` among `items`, read as `T`.
pub fn item_of<T: DeserializeOwned>(
    items: &std::collections::HashMap<ItemKey, Item>,
    pk: &str,
    sk: &str,
) -> Result<Option<T>, StoreError> {
    items
        .get(&(pk.to_owned(), sk.to_owned()))
        .map(|item| serde_dynamo::from_item(item.clone()))
        .transpose()
        .map_err(StoreError::from)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::aws::loopback::Loopback;

    /// A store on a loopback DynamoDB giving `answers` in turn; its count of requests.
    async fn dynamodb(answers: Vec<(u16, String)>) -> (Store, Arc<AtomicUsize>) {
        let server = Loopback::answering(answers).await;
        (Store::new(Client::new(&server.sdk()), "t"), server.requests)
    }

    /// The functions' store (its transactions sent by [`direct`]) on a loopback DynamoDB
    /// giving `answers` in turn, with backoffs of a millisecond; the server.
    async fn direct_store(answers: Vec<(u16, String)>) -> (Store, Loopback) {
        let server = Loopback::answering(answers).await;
        let sdk = server
            .sdk()
            .to_builder()
            .retry_config(
                aws_smithy_types::retry::RetryConfig::standard()
                    .with_initial_backoff(std::time::Duration::from_millis(1)),
            )
            .build();
        let store = Store::new(Client::new(&sdk), "t").with_direct_writes(&sdk, crate::aws::http());
        assert!(store.direct.is_some());
        (store, server)
    }

    /// Every kind of entry and attribute value, every optional field set.
    fn every_kind() -> Vec<TransactWriteItem> {
        use aws_sdk_dynamodb::primitives::Blob;
        use aws_sdk_dynamodb::types::{
            ConditionCheck, Delete, Put, ReturnValuesOnConditionCheckFailure as R, Update,
        };
        let key = HashMap::from([("pk".to_owned(), s("a")), ("sk".to_owned(), s("b"))]);
        let names = HashMap::from([("#n".to_owned(), "name".to_owned())]);
        let values = HashMap::from([
            (":n".to_owned(), AttributeValue::N("1.5".into())),
            (":u".to_owned(), s("ünïcode \"quoted\" \\ \n")),
        ]);
        let item = HashMap::from([
            ("pk".to_owned(), s("a")),
            ("n".to_owned(), AttributeValue::N("-12".into())),
            (
                "b".to_owned(),
                AttributeValue::B(Blob::new(vec![0, 1, 254, 255])),
            ),
            ("t".to_owned(), AttributeValue::Bool(true)),
            ("z".to_owned(), AttributeValue::Null(true)),
            (
                "ss".to_owned(),
                AttributeValue::Ss(vec!["x".into(), "y".into()]),
            ),
            (
                "ns".to_owned(),
                AttributeValue::Ns(vec!["1".into(), "2".into()]),
            ),
            (
                "bs".to_owned(),
                AttributeValue::Bs(vec![Blob::new(*b"ab"), Blob::new(*b"")]),
            ),
            (
                "l".to_owned(),
                AttributeValue::L(vec![s("x"), AttributeValue::N("3".into())]),
            ),
            (
                "m".to_owned(),
                AttributeValue::M(HashMap::from([(
                    "inner".to_owned(),
                    AttributeValue::M(HashMap::from([("deep".to_owned(), s("v"))])),
                )])),
            ),
        ]);
        vec![
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name("t")
                        .set_item(Some(item))
                        .condition_expression("attribute_not_exists(#n)")
                        .set_expression_attribute_names(Some(names.clone()))
                        .return_values_on_condition_check_failure(R::AllOld)
                        .build()
                        .unwrap(),
                )
                .build(),
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name("t")
                        .set_key(Some(key.clone()))
                        .update_expression("SET #n = :n, u = :u")
                        .condition_expression("attribute_exists(pk)")
                        .set_expression_attribute_names(Some(names.clone()))
                        .set_expression_attribute_values(Some(values.clone()))
                        .return_values_on_condition_check_failure(R::None)
                        .build()
                        .unwrap(),
                )
                .build(),
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name("t")
                        .set_key(Some(key.clone()))
                        .build()
                        .unwrap(),
                )
                .build(),
            TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name("t")
                        .set_key(Some(key))
                        .condition_expression("#n < :n")
                        .set_expression_attribute_names(Some(names))
                        .set_expression_attribute_values(Some(values))
                        .build()
                        .unwrap(),
                )
                .build(),
        ]
    }

    fn json(body: &[u8]) -> serde_json::Value {
        serde_json::from_slice(body).unwrap()
    }

    #[tokio::test]
    async fn a_direct_transaction_sends_what_the_sdk_sends() {
        let sdk_server = Loopback::answering(vec![(200, "{}".into())]).await;
        let token = "01JDIRECTTOKEN0000000000000";
        Client::new(&sdk_server.sdk())
            .transact_write_items()
            .set_transact_items(Some(every_kind()))
            .client_request_token(token)
            .send()
            .await
            .unwrap();
        let (store, direct_server) = direct_store(vec![(200, "{}".into())]).await;
        let sent = store
            .direct
            .as_ref()
            .unwrap()
            .transact(&every_kind(), token)
            .await;
        assert!(sent.is_ok());
        let (by_sdk, direct) = (
            sdk_server.received.lock().unwrap(),
            direct_server.received.lock().unwrap(),
        );
        assert_eq!(json(&direct[0].body), json(&by_sdk[0].body));
        for header in ["content-type", "x-amz-target"] {
            assert_eq!(
                direct[0].header(header),
                by_sdk[0].header(header),
                "{header}"
            );
        }
        let authorization = direct[0].header("authorization").unwrap();
        assert!(
            authorization.starts_with("AWS4-HMAC-SHA256 Credential=test/")
                && authorization.contains("/us-east-1/dynamodb/aws4_request"),
            "{authorization}"
        );
        assert_eq!(
            direct[0].header("host"),
            Some(direct_server.url.trim_start_matches("http://"))
        );
    }

    #[tokio::test]
    async fn a_direct_transaction_retries_faults_with_the_same_token_and_not_mistakes() {
        let throttled = serde_json::json!({
            "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "message": "slow down",
        });
        let (store, server) = direct_store(vec![
            (500, "{}".into()),
            (400, throttled.to_string()),
            (200, "{}".into()),
        ])
        .await;
        assert!(store.transact_built(item).await.is_ok());
        let tokens: Vec<_> = server
            .received
            .lock()
            .unwrap()
            .iter()
            .map(|r| json(&r.body)["ClientRequestToken"].clone())
            .collect();
        assert_eq!(tokens.len(), 3);
        assert!(tokens[0].is_string());
        assert_eq!(
            tokens,
            vec![tokens[0].clone(); 3],
            "one token for every attempt"
        );

        let invalid = serde_json::json!({
            "__type": "com.amazon.coral.validate#ValidationException",
            "message": "the key quotes +14155550100",
        });
        let (store, server) = direct_store(vec![(400, invalid.to_string())]).await;
        let outcome = store.transact_built(item).await;
        assert!(
            matches!(
                outcome,
                Err(TxError::Failed(StoreError::Aws { ref code, .. })) if code == "ValidationException"
            ),
            "{outcome:?}"
        );
        assert!(
            !format!("{outcome:?}").contains("+1415"),
            "the message is not kept"
        );
        assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_direct_transaction_gives_up_after_the_configured_attempts() {
        let (store, server) = direct_store(vec![(503, "{}".into())]).await;
        let outcome = store.transact_built(item).await;
        assert!(
            matches!(
                outcome,
                Err(TxError::Failed(StoreError::Aws { ref code, .. })) if code == "unknown"
            ),
            "{outcome:?}"
        );
        assert_eq!(server.requests.load(Ordering::SeqCst), 3, "the standard 3");
    }

    #[tokio::test]
    async fn a_direct_transaction_reads_its_cancellation_as_the_sdks() {
        let body = serde_json::json!({
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "Message": "Transaction cancelled [None, ConditionalCheckFailed]",
            "CancellationReasons": [
                {"Code": "None"},
                {"Code": "ConditionalCheckFailed", "Item": {
                    "pk": {"S": "a"}, "n": {"N": "7"}, "l": {"L": [{"BOOL": false}]},
                    "m": {"M": {"b": {"B": "AAH+/w=="}}}, "ss": {"SS": ["x"]}
                }},
            ],
        });
        let answers = vec![(400, body.to_string())];
        let (direct, _server) = direct_store(answers.clone()).await;
        let (by_sdk, _) = dynamodb(answers).await;
        let read = |outcome: Result<(), Result<Vec<Failed>, StoreError>>| match outcome {
            Err(Ok(failed)) => failed
                .into_iter()
                .map(|f| (f.index, f.item))
                .collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        let ours = read(direct.transact_reasons_built(item).await);
        assert_eq!(ours, read(by_sdk.transact_reasons_built(item).await));
        assert_eq!(ours[0].0, 1);
        assert_eq!(
            ours[0].1.as_ref().and_then(|i| i.get("n")),
            Some(&AttributeValue::N("7".into()))
        );

        let (direct, server) =
            direct_store(vec![cancelled("TransactionConflict"), (200, "{}".into())]).await;
        let built = AtomicUsize::new(0);
        assert!(direct.transact_built(counted(&built)).await.is_ok());
        let received = server.received.lock().unwrap();
        assert_ne!(
            json(&received[0].body)["ClientRequestToken"],
            json(&received[1].body)["ClientRequestToken"],
            "a conflict is a new transaction"
        );
        assert_eq!(built.load(Ordering::SeqCst), 2);
    }

    fn cancelled(first: &str) -> (u16, String) {
        let body = serde_json::json!({
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "Message": format!("Transaction cancelled [{first}]"),
            "CancellationReasons": [{"Code": first}],
        });
        (400, body.to_string())
    }

    fn item() -> Result<Vec<TransactWriteItem>, StoreError> {
        Ok(vec![super::inbound::put(
            "t",
            HashMap::from([("pk".to_owned(), s("a"))]),
        )?])
    }

    /// [`item`], counting the builds in `built`.
    fn counted(
        built: &AtomicUsize,
    ) -> impl Fn() -> Result<Vec<TransactWriteItem>, StoreError> + '_ {
        move || {
            built.fetch_add(1, Ordering::SeqCst);
            item()
        }
    }

    #[tokio::test]
    async fn a_conflict_is_retried_with_the_items_built_again() {
        let (store, requests) =
            dynamodb(vec![cancelled("TransactionConflict"), (200, "{}".into())]).await;
        let built = AtomicUsize::new(0);
        let outcome = store.transact_built(counted(&built)).await;
        assert!(outcome.is_ok(), "{outcome:?}");
        assert_eq!(requests.load(Ordering::SeqCst), 2);
        assert_eq!(built.load(Ordering::SeqCst), 2, "built once per attempt");
    }

    #[tokio::test]
    async fn a_failed_condition_is_not_retried_and_names_its_item() {
        let (store, requests) = dynamodb(vec![cancelled("ConditionalCheckFailed")]).await;
        let built = AtomicUsize::new(0);
        let outcome = store.transact_built(counted(&built)).await;
        assert!(
            matches!(outcome, Err(TxError::ConditionFailed(0))),
            "{outcome:?}"
        );
        assert_eq!(
            (
                requests.load(Ordering::SeqCst),
                built.load(Ordering::SeqCst)
            ),
            (1, 1)
        );
    }

    #[tokio::test]
    async fn items_that_cannot_be_built_send_nothing() {
        let (store, requests) = dynamodb(vec![(200, "{}".into())]).await;
        let outcome = store
            .transact_built(|| Err(StoreError::Corrupt("not built".into())))
            .await;
        assert!(matches!(outcome, Err(TxError::Failed(_))), "{outcome:?}");
        assert_eq!(requests.load(Ordering::SeqCst), 0);
    }
}
