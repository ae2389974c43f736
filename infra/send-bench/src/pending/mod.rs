//! The pending-message engine's benchmarks (`parley-pending-bench`): how fast the dispatcher
//! releases a busy minute and how many requests it makes for it (`dispatch`), and how late a
//! minute's messages reach Twilio through the real pipeline (`precision`).
//!
//! Both start from `scheduled` messages written as the send use case writes them, filed in the
//! due index at `Policy::release_minute`. Seeding is not measured, so it takes a shortcut: the
//! first message goes through `Store::create_outbound`; the others are copies of its two items
//! (the message and its conversation) with their own ids, numbers and keys, written with
//! BatchWriteItem 25 at a time instead of one transaction each.

pub mod dispatch;
pub mod precision;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures::{StreamExt, TryStreamExt};
use parley::pending::Policy;
use parley::phone::Address;
use parley::pipeline::PipelineState;
use parley::schedule;
use parley::store::{keys, CreateOutcome, Message, NewOutbound, Store};
use parley::time::Timestamp;

use crate::scenario::phone;

type Item = HashMap<String, AttributeValue>;

/// Scheduled messages written for one run.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub due: Timestamp,
    /// The due-index minute they are filed under.
    pub index_minute: Timestamp,
    /// (pk, sk) of each message.
    pub keys: Vec<(String, String)>,
    pub elapsed: Duration,
}

fn body(label: &str, i: usize) -> String {
    format!("Parley pending bench ({label}) #{i}: your appointment is confirmed.")
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// What to seed: `n` messages due at `due`, as if accepted at `accepted_at`, to distinct
/// numbers from `exchange` on (see `scenario::phone`).
#[derive(Debug, Clone, Copy)]
pub struct Plan<'a> {
    pub label: &'a str,
    pub exchange: u32,
    pub n: usize,
    pub due: Timestamp,
    pub accepted_at: Timestamp,
}

/// Writes `plan.n` messages in state `scheduled`, filed at
/// `policy.release_minute(due, accepted_at)`, with the zones the send use case would choose
/// for their numbers.
pub async fn seed_scheduled(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    policy: &Policy,
    plan: Plan<'_>,
) -> Result<Seeded, String> {
    let Plan {
        label,
        exchange,
        n,
        due,
        accepted_at,
    } = plan;
    let started = Instant::now();
    let index_minute = policy.release_minute(due, accepted_at);
    let store = Store::new(client.clone(), table);

    // The first one as the store writes it.
    let to = phone(exchange, 0);
    let address = Address::parse(&to).map_err(|e| format!("{to}: {e}"))?;
    let zones = schedule::choose(None, None, address.e164.as_str(), &policy.default_zone);
    let first_body = body(label, 0);
    let first_id = ulid::Ulid::new().to_string();
    let new = NewOutbound {
        state: PipelineState::Scheduled,
        send_at: due,
        time_zone: zones.name(),
        time_zone_source: zones.source,
        index_minute,
        ..NewOutbound::queued(first_id.clone(), &address, &first_body, accepted_at)
    };
    match store.create_outbound(&new).await {
        Ok(CreateOutcome::Created) => {}
        Ok(CreateOutcome::Replay(_) | CreateOutcome::ExtraRefused) => {
            return Err("create_outbound replayed".into())
        }
        Err(e) => return Err(format!("create_outbound: {}", parley::error::chain(&e))),
    }
    let pk = keys::conversation_pk(address.channel, &address.e164);
    let sk = keys::message_sk(&first_id);
    let message_item = get(client, table, &pk, &sk).await?;
    let conversation_item = get(client, table, &pk, keys::META).await?;
    let template: Message = serde_dynamo::from_item(message_item)
        .map_err(|e| format!("the stored message does not read back: {e}"))?;

    let mut all_keys = vec![(pk, sk)];
    let mut items = Vec::with_capacity(2 * n);
    for i in 1..n {
        let to = phone(exchange, i);
        let address = Address::parse(&to).map_err(|e| format!("{to}: {e}"))?;
        let id = ulid::Ulid::new().to_string();
        let pk = keys::conversation_pk(address.channel, &address.e164);
        let sk = keys::message_sk(&id);
        let mut m = template.clone();
        m.pk = pk.clone();
        m.sk = sk.clone();
        m.gsi1pk = keys::message_gsi1pk(&id);
        m.gsi2pk = Some(keys::due_gsi2pk(index_minute, keys::due_shard(&id)));
        m.gsi2sk = Some(keys::due_gsi2sk(due, &id));
        m.message_id = id;
        m.to_original = address.original.clone();
        m.to_e164 = address.e164.clone();
        m.body = parley::envelope::StoredText::plain(&body(label, i));
        items.push(serde_dynamo::to_item(&m).map_err(|e| e.to_string())?);
        let mut conversation = conversation_item.clone();
        conversation.insert("pk".into(), s(pk.clone()));
        conversation.insert("phone".into(), s(address.e164.as_str()));
        conversation.insert("conversation_id".into(), s(ulid::Ulid::new().to_string()));
        items.push(conversation);
        all_keys.push((pk, sk));
    }
    let chunks: Vec<Vec<Item>> = items.chunks(25).map(<[Item]>::to_vec).collect();
    futures::stream::iter(chunks)
        .map(|chunk| batch_write(client, table, chunk))
        .buffer_unordered(2)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(Seeded {
        due,
        index_minute,
        keys: all_keys,
        elapsed: started.elapsed(),
    })
}

async fn get(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: &str,
    sk: &str,
) -> Result<Item, String> {
    client
        .get_item()
        .table_name(table)
        .key("pk", s(pk))
        .key("sk", s(sk))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| format!("GetItem: {}", aws_sdk_dynamodb::Error::from(e)))?
        .item
        .ok_or_else(|| format!("{pk} {sk} was not written"))
}

/// One BatchWriteItem of up to 25 puts, retrying what comes back unprocessed.
async fn batch_write(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    items: Vec<Item>,
) -> Result<(), String> {
    let mut requests: Vec<WriteRequest> = items
        .into_iter()
        .map(|item| {
            PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map(|put| WriteRequest::builder().put_request(put).build())
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    for attempt in 0..10u32 {
        let out = client
            .batch_write_item()
            .request_items(table, requests)
            .send()
            .await
            .map_err(|e| format!("BatchWriteItem: {}", aws_sdk_dynamodb::Error::from(e)))?;
        requests = out
            .unprocessed_items
            .and_then(|mut u| u.remove(table))
            .unwrap_or_default();
        if requests.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50) * (attempt + 1)).await;
    }
    Err("BatchWriteItem: items left unprocessed".into())
}

/// Every message of `table`, with the attributes the checks need.
pub async fn scan_messages(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Vec<Item>, String> {
    let items: Vec<Item> = client
        .scan()
        .table_name(table)
        .projection_expression(
            "pk, sk, message_id, to_e164, #status, send_at, claimed_at, submitted_at, gsi2pk",
        )
        .expression_attribute_names("#status", "status")
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| format!("Scan: {}", aws_sdk_dynamodb::Error::from(e)))?;
    Ok(items
        .into_iter()
        .filter(|i| text(i, "sk").starts_with(keys::MESSAGE_PREFIX))
        .collect())
}

/// A string attribute, or "".
pub fn text(item: &Item, name: &str) -> String {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

/// Messages by status.
pub fn statuses(items: &[Item]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(text(item, "status")).or_insert(0) += 1;
    }
    counts
}

/// Visible, in flight and delayed messages of a queue (moto counts them exactly).
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<[u64; 3], String> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::All)
        .send()
        .await
        .map_err(|e| format!("GetQueueAttributes: {}", aws_sdk_sqs::Error::from(e)))?;
    let attributes = out.attributes.unwrap_or_default();
    let get = |k: A| attributes.get(&k).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok([
        get(A::ApproximateNumberOfMessages),
        get(A::ApproximateNumberOfMessagesNotVisible),
        get(A::ApproximateNumberOfMessagesDelayed),
    ])
}

/// Nearest-rank percentiles of signed values (seconds): lateness can be negative.
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    pub n: usize,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            sorted[i.clamp(1, sorted.len()) - 1]
        };
        Some(Self {
            n: sorted.len(),
            min: sorted[0],
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
            p50: rank(50.0),
            p90: rank(90.0),
            p99: rank(99.0),
            max: sorted[sorted.len() - 1],
        })
    }
}

/// Unix seconds (millisecond precision) of a stored timestamp.
pub fn unix_seconds(at: &str) -> Option<f64> {
    Timestamp::parse(at).map(|t| t.unix_millis() as f64 / 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_nearest_rank_and_keeps_the_sign() {
        let values: Vec<f64> = (1..=100).map(|i| f64::from(i) - 2.0).collect();
        let s = Spread::of(&values).unwrap();
        assert_eq!(s.n, 100);
        assert_eq!(s.min, -1.0);
        assert_eq!(s.p50, 48.0);
        assert_eq!(s.p99, 97.0);
        assert_eq!(s.max, 98.0);
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(unix_seconds("1970-01-01T00:00:01.500Z"), Some(1.5));
    }
}
