//! Lambda's SQS event source, locally: receive a batch, invoke the function with an `SqsEvent`,
//! delete the records it did not report in `batchItemFailures`, and leave those to the
//! visibility timeout (which the function may shorten), so retries and dead-letter redrive
//! behave as deployed.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use futures::future::BoxFuture;
use parley::xray::TraceHeader;
use tracing::Instrument;

use crate::invocation;
use crate::stream_failure::{FailureRecord, StreamBatchInfo};

pub type SqsFunction = Arc<dyn Fn(SqsEvent) -> BoxFuture<'static, SqsBatchResponse> + Send + Sync>;

pub struct SqsPoller {
    pub client: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub queue_arn: String,
    pub batch_size: i32,
    pub region: String,
    pub function: SqsFunction,
}

impl SqsPoller {
    /// Polls until the task is dropped.
    pub async fn run(self) {
        loop {
            if let Err(e) = self.poll_once().await {
                tracing::warn!(error = %e, queue = %self.queue_arn, "SQS poll failed");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
    }

    /// One receive–invoke–delete round; returns how many records were received.
    pub async fn poll_once(&self) -> Result<usize, String> {
        let received = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.batch_size.clamp(1, 10))
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| aws_sdk_sqs::Error::from(e).to_string())?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(0);
        }
        let mut event = SqsEvent::default();
        for m in &messages {
            let mut record = SqsMessage::default();
            record.message_id = m.message_id.clone();
            record.receipt_handle = m.receipt_handle.clone();
            record.body = m.body.clone();
            record.md5_of_body = m.md5_of_body.clone();
            record.attributes = m
                .attributes
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect::<HashMap<_, _>>();
            record.event_source = Some("aws:sqs".into());
            record.event_source_arn = Some(self.queue_arn.clone());
            record.aws_region = Some(self.region.clone());
            event.records.push(record);
        }
        let context = sqs_invocation_context(&event);
        let response = (self.function)(event)
            .instrument(invocation::span(&context))
            .await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        let done: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .filter(|m| !failed.contains(&m.message_id.as_deref().unwrap_or_default()))
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(m.receipt_handle.clone())
                    .build()
                    .ok()
            })
            .collect();
        if !done.is_empty() {
            self.client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(done))
                .send()
                .await
                .map_err(|e| aws_sdk_sqs::Error::from(e).to_string())?;
        }
        Ok(messages.len())
    }
}

/// The context of an SQS batch's invocation: it continues the first record's trace, its
/// `AWSTraceHeader` system attribute (deployed, X-Ray links the invocation to the trace of
/// every record of the batch).
pub fn sqs_invocation_context(event: &SqsEvent) -> lambda_http::Context {
    let trace = event.records.first().and_then(TraceHeader::of_sqs);
    invocation::context(&invocation::request_id(), trace.as_ref())
}

pub type StreamFunction = Arc<
    dyn Fn(
            aws_lambda_events::event::dynamodb::Event,
        ) -> BoxFuture<'static, aws_lambda_events::event::streams::DynamoDbEventResponse>
        + Send
        + Sync,
>;

/// Lambda's DynamoDB stream source, locally: reads each shard from its start, invokes the
/// function with batches, and on a reported failure retries from the failed record (up to
/// `max_retries`, then the rest of the batch goes to the on-failure destination, in Lambda's
/// format, and is skipped).
pub struct StreamPoller {
    pub client: aws_sdk_dynamodbstreams::Client,
    pub stream_arn: String,
    pub batch_size: i32,
    pub max_retries: u32,
    pub region: String,
    pub function: StreamFunction,
    /// The function's name, for the failure record's `functionArn`.
    pub function_name: String,
    pub on_failure: Option<OnFailureQueue>,
}

/// The queue a stream batch goes to when it exhausts its retries.
pub struct OnFailureQueue {
    pub client: aws_sdk_sqs::Client,
    pub queue_url: String,
}

impl StreamPoller {
    pub async fn run(self) {
        tracing::info!(stream = %self.stream_arn, "stream event source started");
        let mut shards: HashMap<String, Option<String>> = HashMap::new();
        let mut last_seen: HashMap<String, String> = HashMap::new();
        let mut discovered = tokio::time::Instant::now() - std::time::Duration::from_secs(60);
        loop {
            // New shards are rare: look for them every few seconds, not on every read.
            if discovered.elapsed() > std::time::Duration::from_secs(5) {
                if let Err(e) = self.discover(&mut shards).await {
                    tracing::warn!(error = %e, "stream describe failed");
                }
                discovered = tokio::time::Instant::now();
            }
            let mut idle = true;
            for (shard, iterator) in shards.iter_mut() {
                let Some(it) = iterator.clone() else { continue };
                match self.poll_shard(shard, &it).await {
                    Ok((next, last)) => {
                        idle &= last.is_none();
                        match last {
                            Some(seq) => {
                                last_seen.insert(shard.clone(), seq);
                                *iterator = next;
                            }
                            // moto replaces a table's stream shard when it rolls a failed
                            // transaction back, stranding open iterators: after an empty read,
                            // continue from a fresh iterator past the last record seen.
                            None => match self.iterator_after(shard, last_seen.get(shard)).await {
                                Ok(fresh) => *iterator = fresh,
                                Err(_) => *iterator = next,
                            },
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, shard = %shard, "stream read failed"),
                }
            }
            if idle {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }

    async fn discover(&self, shards: &mut HashMap<String, Option<String>>) -> Result<(), String> {
        let out = self
            .client
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodbstreams::Error::from(e).to_string())?;
        for shard in out
            .stream_description
            .and_then(|d| d.shards)
            .unwrap_or_default()
        {
            let Some(id) = shard.shard_id else { continue };
            if shards.contains_key(&id) {
                continue;
            }
            let it = self
                .client
                .get_shard_iterator()
                .stream_arn(&self.stream_arn)
                .shard_id(&id)
                .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
                .send()
                .await
                .map_err(|e| aws_sdk_dynamodbstreams::Error::from(e).to_string())?
                .shard_iterator;
            shards.insert(id, it);
        }
        Ok(())
    }

    async fn iterator_after(
        &self,
        shard: &str,
        sequence: Option<&String>,
    ) -> Result<Option<String>, String> {
        let kind = match sequence {
            Some(_) => aws_sdk_dynamodbstreams::types::ShardIteratorType::AfterSequenceNumber,
            None => aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon,
        };
        Ok(self
            .client
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard)
            .shard_iterator_type(kind)
            .set_sequence_number(sequence.cloned())
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodbstreams::Error::from(e).to_string())?
            .shard_iterator)
    }

    /// Delivers one batch of a shard; returns the next iterator and the sequence number of
    /// the batch's last record (`None` when the read was empty).
    async fn poll_shard(
        &self,
        shard: &str,
        iterator: &str,
    ) -> Result<(Option<String>, Option<String>), String> {
        let out = self
            .client
            .get_records()
            .shard_iterator(iterator)
            .limit(self.batch_size)
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodbstreams::Error::from(e).to_string())?;
        let records: Vec<_> = out
            .records
            .unwrap_or_default()
            .into_iter()
            .map(|r| stream_event_record(r, &self.region, &self.stream_arn))
            .collect();
        let last = records
            .last()
            .and_then(|r| r.change.sequence_number.clone());
        let mut pending = records;
        let mut retries = 0;
        while !pending.is_empty() {
            let mut event = aws_lambda_events::event::dynamodb::Event::default();
            event.records = pending.clone();
            // Stream records carry no trace header: each invocation is a trace of its own.
            let context = invocation::context(&invocation::request_id(), None);
            let response = (self.function)(event)
                .instrument(invocation::span(&context))
                .await;
            let Some(failed) = response
                .batch_item_failures
                .first()
                .and_then(|f| f.item_identifier.clone())
            else {
                break;
            };
            retries += 1;
            if retries > self.max_retries {
                tracing::error!(sequence_number = %failed, "stream records exhausted their retries (on-failure destination)");
                self.send_to_on_failure(shard, &pending, retries).await;
                break;
            }
            // Retry from the failed record on, as Lambda does.
            let from = pending
                .iter()
                .position(|r| r.change.sequence_number.as_deref() == Some(failed.as_str()))
                .unwrap_or(0);
            pending.drain(..from);
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        Ok((out.next_shard_iterator, last))
    }

    /// Reports the batch from the failed record on, as Lambda does; a send that fails is
    /// logged (Lambda would retry it).
    async fn send_to_on_failure(
        &self,
        shard: &str,
        pending: &[aws_lambda_events::event::dynamodb::EventRecord],
        invocations: u32,
    ) {
        let (Some(queue), Some(first), Some(last)) =
            (&self.on_failure, pending.first(), pending.last())
        else {
            return;
        };
        let arrival = |r: &aws_lambda_events::event::dynamodb::EventRecord| {
            r.change.approximate_creation_date_time.to_rfc3339()
        };
        let record = FailureRecord::exhausted(
            format!(
                "arn:aws:lambda:{}:000000000000:function:{}",
                self.region, self.function_name
            ),
            invocations,
            StreamBatchInfo {
                shard_id: shard.to_owned(),
                start_sequence_number: first.change.sequence_number.clone().unwrap_or_default(),
                end_sequence_number: last.change.sequence_number.clone().unwrap_or_default(),
                approximate_arrival_of_first_record: Some(arrival(first)),
                approximate_arrival_of_last_record: Some(arrival(last)),
                batch_size: pending.len() as u32,
                stream_arn: self.stream_arn.clone(),
            },
        );
        let body = serde_json::to_string(&record).unwrap_or_default();
        if let Err(e) = queue
            .client
            .send_message()
            .queue_url(&queue.queue_url)
            .message_body(body)
            .send()
            .await
        {
            tracing::error!(error = %aws_sdk_sqs::Error::from(e), "the on-failure destination refused a record");
        }
    }
}

/// A stream record as Lambda hands it to the function.
pub fn stream_event_record(
    r: aws_sdk_dynamodbstreams::types::Record,
    region: &str,
    stream_arn: &str,
) -> aws_lambda_events::event::dynamodb::EventRecord {
    let mut record = aws_lambda_events::event::dynamodb::EventRecord::default();
    record.aws_region = region.to_owned();
    record.event_id = r.event_id.unwrap_or_default();
    record.event_name = r
        .event_name
        .map(|n| n.as_str().to_owned())
        .unwrap_or_default();
    record.event_source = Some("aws:dynamodb".into());
    record.event_version = r.event_version;
    record.event_source_arn = Some(stream_arn.to_owned());
    if let Some(change) = r.dynamodb {
        if let Some(at) = change.approximate_creation_date_time {
            record.change.approximate_creation_date_time =
                chrono::DateTime::from_timestamp(at.secs(), at.subsec_nanos()).unwrap_or_default();
        }
        record.change.keys = serde_dynamo::Item::from(change.keys.unwrap_or_default());
        record.change.new_image = serde_dynamo::Item::from(change.new_image.unwrap_or_default());
        record.change.old_image = serde_dynamo::Item::from(change.old_image.unwrap_or_default());
        record.change.sequence_number = change.sequence_number;
        record.change.size_bytes = change.size_bytes.unwrap_or_default();
    }
    record
}

pub type ScheduleFunction =
    Arc<dyn Fn(serde_json::Value) -> BoxFuture<'static, serde_json::Value> + Send + Sync>;

/// EventBridge's `Schedule` event source, locally: invokes the function every `every` with the
/// event's `Input` (or a scheduled-event JSON like EventBridge's), one invocation at a time.
pub struct SchedulePoller {
    pub name: String,
    pub every: std::time::Duration,
    pub input: Option<String>,
    pub region: String,
    pub function: ScheduleFunction,
}

impl SchedulePoller {
    pub async fn run(self) {
        tracing::info!(schedule = %self.name, every_ms = self.every.as_millis() as u64, "schedule event source started");
        let mut ticks = tokio::time::interval(self.every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // `interval` fires at once; a schedule first fires one period after it is created.
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let event = self
                .input
                .as_deref()
                .and_then(|i| serde_json::from_str(i).ok())
                .unwrap_or_else(|| self.scheduled_event());
            let context = invocation::context(&invocation::request_id(), None);
            let result = (self.function)(event)
                .instrument(invocation::span(&context))
                .await;
            if result.get("error").is_some() {
                tracing::warn!(schedule = %self.name, "scheduled invocation reported an error");
            }
        }
    }

    fn scheduled_event(&self) -> serde_json::Value {
        serde_json::json!({
            "version": "0",
            "id": ulid::Ulid::new().to_string(),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "000000000000",
            "time": parley::time::Timestamp::now().to_string(),
            "region": self.region,
            "resources": [format!("arn:aws:events:{}:000000000000:rule/{}", self.region, self.name)],
            "detail": {}
        })
    }
}
