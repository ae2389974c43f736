//! The emulator's transactions against DynamoDB's semantics, each test on a table of its own.
//!
//! moto rolls a cancelled TransactWriteItems back; `infra/emulator.py` does it item by item
//! instead of restoring a copy of every table involved. A cancelled transaction must leave no
//! item and no stream record behind, also for a stream iterator opened before it (as the local
//! stack's stream poller holds one), and the table and its stream must go on normally.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue as Av, ConditionCheck, Put, TransactWriteItem, Update,
};
use aws_sdk_dynamodbstreams::types::{
    AttributeValue as StreamAv, OperationType, Record, ShardIteratorType,
};
use parley_e2e::*;

type Item = HashMap<String, Av>;

/// A table of the template's shape, its stream, and the items the tests write to it.
struct Fixture {
    ddb: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    table: String,
    stream_arn: String,
    shard_id: String,
    /// Stored by the setup, then updated by the transactions.
    existing: Item,
    /// Stored by the setup; the transactions' ConditionCheck reads it.
    guard: Item,
    /// Put by the transactions.
    new: Item,
}

fn s(v: &str) -> Av {
    Av::S(v.to_owned())
}

fn key_of(item: &Item) -> Item {
    item.iter()
        .filter(|(k, _)| *k == "pk" || *k == "sk")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

async fn fixture(label: &str) -> Fixture {
    let stack = stack().await;
    let store = stack.own_table(label).await;
    let table = store.table().to_owned();
    let ddb = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let streams = aws_sdk_dynamodbstreams::Client::new(&stack.sdk);
    let pk = format!("EMU#{}", ulid::Ulid::new());
    let existing: Item = [
        ("pk", s(&pk)),
        ("sk", s("existing")),
        ("gsi1pk", s(&format!("{pk}#index"))),
        ("gsi1sk", s("1")),
        ("status", s("queued")),
        ("attempts", Av::N("7".into())),
        ("tags", Av::Ss(vec!["a".into(), "b".into()])),
        ("history", Av::L(vec![s("created"), Av::N("1".into())])),
        (
            "meta",
            Av::M([("origin".to_owned(), s("api"))].into_iter().collect()),
        ),
        ("flag", Av::Bool(true)),
        ("nothing", Av::Null(true)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let guard: Item = [("pk", s(&pk)), ("sk", s("guard")), ("status", s("here"))]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let new: Item = [
        ("pk", s(&pk)),
        ("sk", s("new")),
        ("gsi1pk", s(&format!("{pk}#index"))),
        ("gsi1sk", s("2")),
        ("status", s("queued")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for item in [&existing, &guard] {
        ddb.put_item()
            .table_name(&table)
            .set_item(Some(item.clone()))
            .send()
            .await
            .expect("setup PutItem");
    }
    let stream_arn = ddb
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .expect("DescribeTable")
        .table
        .and_then(|t| t.latest_stream_arn)
        .expect("the template's table has a stream");
    let shard_id = streams
        .describe_stream()
        .stream_arn(&stream_arn)
        .send()
        .await
        .expect("DescribeStream")
        .stream_description
        .and_then(|d| d.shards)
        .and_then(|shards| shards.into_iter().next())
        .and_then(|shard| shard.shard_id)
        .expect("a shard");
    Fixture {
        ddb,
        streams,
        table,
        stream_arn,
        shard_id,
        existing,
        guard,
        new,
    }
}

impl Fixture {
    /// Put `new` (if absent), update `existing`, and check `guard` with `guard_condition`.
    async fn transact(&self, guard_condition: &str) -> Result<(), TransactWriteItemsError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.new.clone()))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .unwrap();
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(&self.existing)))
            .update_expression(
                "SET #status = :sending, attempts = attempts + :one, \
                 history = list_append(history, :more), meta.origin = :retry, gsi1sk = :gsk \
                 REMOVE flag ADD tags :tag",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":sending", s("sending"))
            .expression_attribute_values(":one", Av::N("1".into()))
            .expression_attribute_values(":more", Av::L(vec![s("sending")]))
            .expression_attribute_values(":retry", s("retry"))
            .expression_attribute_values(":gsk", s("3"))
            .expression_attribute_values(":tag", Av::Ss(vec!["c".into()]))
            .condition_expression("#status = :queued")
            .expression_attribute_values(":queued", s("queued"))
            .build()
            .unwrap();
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(&self.guard)))
            .condition_expression(guard_condition)
            .build()
            .unwrap();
        self.ddb
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(TransactWriteItem::builder().condition_check(check).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| e.into_service_error())
    }

    /// The transaction, cancelled by its ConditionCheck; asserts the cancellation reasons.
    async fn cancelled_transaction(&self) {
        match self.transact("attribute_not_exists(pk)").await {
            Err(TransactWriteItemsError::TransactionCanceledException(e)) => {
                let codes: Vec<_> = e
                    .cancellation_reasons()
                    .iter()
                    .map(|r| r.code().unwrap_or_default().to_owned())
                    .collect();
                assert_eq!(codes, ["None", "None", "ConditionalCheckFailed"]);
            }
            other => panic!("expected TransactionCanceledException, got {other:?}"),
        }
    }

    async fn get(&self, item: &Item) -> Option<Item> {
        self.ddb
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(item)))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem")
            .item
    }

    /// The items of the template's GSI under the fixture's index key.
    async fn indexed(&self) -> Vec<Item> {
        let mut items = self
            .ddb
            .query()
            .table_name(&self.table)
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(":pk", self.existing["gsi1pk"].clone())
            .send()
            .await
            .expect("Query gsi1")
            .items
            .unwrap_or_default();
        items.sort_by_key(|i| format!("{:?}", i.get("sk")));
        items
    }

    async fn iterator(&self) -> String {
        self.streams
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(&self.shard_id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("GetShardIterator")
            .shard_iterator
            .expect("an iterator")
    }

    /// Every record from `iterator` on; returns them and the iterator to read on from.
    async fn read(&self, mut iterator: String) -> (Vec<Record>, String) {
        let mut all = Vec::new();
        loop {
            let out = self
                .streams
                .get_records()
                .shard_iterator(&iterator)
                .limit(100)
                .send()
                .await
                .expect("GetRecords");
            let records = out.records.unwrap_or_default();
            if let Some(next) = out.next_shard_iterator {
                iterator = next;
            }
            if records.is_empty() {
                return (all, iterator);
            }
            all.extend(records);
        }
    }
}

/// A stream record as (event, keys, old image, new image), in the DynamoDB API's types.
type Change = (String, Item, Option<Item>, Option<Item>);

fn change(record: &Record) -> Change {
    let data = record.dynamodb.as_ref().expect("stream record data");
    (
        record
            .event_name
            .as_ref()
            .map(OperationType::as_str)
            .unwrap_or_default()
            .to_owned(),
        image(data.keys.as_ref().expect("keys")),
        data.old_image.as_ref().map(image),
        data.new_image.as_ref().map(image),
    )
}

fn image(attrs: &HashMap<String, StreamAv>) -> Item {
    attrs.iter().map(|(k, v)| (k.clone(), value(v))).collect()
}

fn value(v: &StreamAv) -> Av {
    match v {
        StreamAv::S(s) => Av::S(s.clone()),
        StreamAv::N(n) => Av::N(n.clone()),
        StreamAv::B(b) => Av::B(b.clone()),
        StreamAv::Ss(v) => Av::Ss(v.clone()),
        StreamAv::Ns(v) => Av::Ns(v.clone()),
        StreamAv::Bs(v) => Av::Bs(v.clone()),
        StreamAv::M(m) => Av::M(image(m)),
        StreamAv::L(l) => Av::L(l.iter().map(value).collect()),
        StreamAv::Null(n) => Av::Null(*n),
        StreamAv::Bool(b) => Av::Bool(*b),
        other => panic!("unexpected attribute value in a stream record: {other:?}"),
    }
}

fn sequence(record: &Record) -> u128 {
    record
        .dynamodb
        .as_ref()
        .and_then(|d| d.sequence_number.as_deref())
        .expect("sequence number")
        .parse()
        .expect("numeric sequence number")
}

fn inserted(item: &Item) -> Change {
    ("INSERT".into(), key_of(item), None, Some(item.clone()))
}

#[tokio::test]
async fn a_cancelled_transaction_leaves_no_items_and_no_stream_records() {
    let f = fixture("tx-cancel").await;
    // Opened before the transaction, as the stack's stream poller holds one.
    let (setup, open) = f.read(f.iterator().await).await;
    let setup: Vec<_> = setup.iter().map(change).collect();
    assert_eq!(setup, [inserted(&f.existing), inserted(&f.guard)]);
    let indexed_before = f.indexed().await;
    assert_eq!(indexed_before, std::slice::from_ref(&f.existing));

    f.cancelled_transaction().await;

    assert_eq!(f.get(&f.new).await, None, "the cancelled Put's item");
    assert_eq!(
        f.get(&f.existing).await.as_ref(),
        Some(&f.existing),
        "the cancelled Update's item, every attribute"
    );
    assert_eq!(f.get(&f.guard).await.as_ref(), Some(&f.guard));
    assert_eq!(f.indexed().await, indexed_before, "the GSI");
    let (after, _) = f.read(open).await;
    assert!(
        after.is_empty(),
        "an iterator opened before the cancelled transaction read {:?}",
        after.iter().map(change).collect::<Vec<_>>()
    );
    let (all, _) = f.read(f.iterator().await).await;
    assert_eq!(
        all.iter().map(change).collect::<Vec<_>>(),
        setup,
        "a fresh iterator reads only the setup's records"
    );
}

#[tokio::test]
async fn after_a_cancelled_transaction_the_next_one_applies_and_streams() {
    let f = fixture("tx-after").await;
    let (setup, open) = f.read(f.iterator().await).await;
    assert_eq!(setup.len(), 2);
    let last_setup = setup.iter().map(sequence).max().unwrap();

    f.cancelled_transaction().await;
    f.transact("attribute_exists(pk)")
        .await
        .expect("the same transaction with a passing check");

    assert_eq!(f.get(&f.new).await.as_ref(), Some(&f.new));
    let updated = f.get(&f.existing).await.expect("the updated item");
    let mut expected = f.existing.clone();
    expected.remove("flag");
    expected.insert("status".into(), s("sending"));
    expected.insert("attempts".into(), Av::N("8".into()));
    expected.insert("gsi1sk".into(), s("3"));
    expected.insert(
        "history".into(),
        Av::L(vec![s("created"), Av::N("1".into()), s("sending")]),
    );
    expected.insert(
        "meta".into(),
        Av::M([("origin".to_owned(), s("retry"))].into_iter().collect()),
    );
    let mut tags = match updated.get("tags") {
        Some(Av::Ss(tags)) => tags.clone(),
        other => panic!("tags: {other:?}"),
    };
    tags.sort();
    assert_eq!(tags, ["a", "b", "c"]);
    expected.insert("tags".into(), updated["tags"].clone());
    assert_eq!(updated, expected);
    assert_eq!(f.indexed().await, [updated.clone(), f.new.clone()]);

    // The iterator opened before the cancelled transaction reads the applied one's records.
    let (after, _) = f.read(open).await;
    let mut changes: Vec<_> = after.iter().map(change).collect();
    changes.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        changes,
        [
            inserted(&f.new),
            (
                "MODIFY".into(),
                key_of(&f.existing),
                Some(f.existing.clone()),
                Some(updated.clone()),
            ),
        ]
    );
    let sequences: Vec<_> = after.iter().map(sequence).collect();
    assert!(
        sequences.iter().all(|&n| n > last_setup) && sequences.is_sorted(),
        "sequence numbers {sequences:?} after {last_setup}"
    );
    let (all, _) = f.read(f.iterator().await).await;
    assert_eq!(all.len(), 4, "a fresh iterator reads setup and transaction");
    assert_eq!(
        all.iter().map(change).skip(2).collect::<Vec<_>>(),
        after.iter().map(change).collect::<Vec<_>>()
    );
}
