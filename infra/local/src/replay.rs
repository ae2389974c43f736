//! Replays the batches a stream's event source gave up on: each on-failure record names a
//! shard and a sequence range; the records are read back from the stream (kept 24 hours) and
//! handed to the processor again, which is idempotent per record (the events it publishes carry
//! the message's id; linking a tenant is a conditional write). A record is deleted from the
//! failure queue only once its whole batch went through.

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::types::ShardIteratorType;

use crate::event_sources::{stream_event_record, StreamFunction};
use crate::stream_failure::{sequence_le, FailureRecord, StreamBatchInfo};

/// Who handles the replayed records.
pub enum Processor {
    /// The local stack's processor, run in this process with the shipping handler code.
    InProcess(StreamFunction),
    /// A deployed function, invoked synchronously.
    Deployed {
        client: aws_sdk_lambda::Client,
        function: String,
    },
}

impl Processor {
    /// The sequence numbers the processor reported failed (empty: all handled).
    async fn invoke(&self, event: Event) -> Result<Vec<String>, String> {
        let response: DynamoDbEventResponse = match self {
            Self::InProcess(function) => function(event).await,
            Self::Deployed { client, function } => {
                let payload = serde_json::to_vec(&event).map_err(|e| e.to_string())?;
                let out = client
                    .invoke()
                    .function_name(function)
                    .payload(aws_sdk_lambda::primitives::Blob::new(payload))
                    .send()
                    .await
                    .map_err(|e| format!("Invoke: {}", aws_sdk_lambda::Error::from(e)))?;
                if let Some(error) = out.function_error {
                    return Err(format!("{function} failed: {error}"));
                }
                let body = out.payload.map(|p| p.into_inner()).unwrap_or_default();
                serde_json::from_slice(&body)
                    .map_err(|e| format!("{function} answered something else: {e}"))?
            }
        };
        Ok(response
            .batch_item_failures
            .into_iter()
            .filter_map(|f| f.item_identifier)
            .collect())
    }
}

/// What a replay found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// Failure records read from the queue.
    pub batches: usize,
    /// Stream records handed to the processor (or, in a dry run, found).
    pub records: usize,
    /// Records a failure record counts but the stream no longer has (older than 24 hours).
    pub missing: usize,
    /// Batches left in the queue: the processor failed again, or the record is unreadable.
    pub kept: usize,
}

pub struct Replay<'a> {
    pub sqs: &'a aws_sdk_sqs::Client,
    pub streams: &'a aws_sdk_dynamodbstreams::Client,
    pub failure_queue: &'a str,
    pub region: &'a str,
    pub processor: Processor,
    pub dry_run: bool,
}

impl Replay<'_> {
    pub async fn run(&self) -> Result<ReplayReport, String> {
        let mut report = ReplayReport::default();
        let mut seen = std::collections::HashSet::new();
        let mut release = Vec::new();
        loop {
            let messages = self
                .sqs
                .receive_message()
                .queue_url(self.failure_queue)
                .max_number_of_messages(10)
                .visibility_timeout(300)
                .wait_time_seconds(1)
                .send()
                .await
                .map_err(|e| format!("ReceiveMessage: {}", aws_sdk_sqs::Error::from(e)))?
                .messages
                .unwrap_or_default();
            let fresh: Vec<_> = messages
                .into_iter()
                .filter(|m| seen.insert(m.message_id.clone().unwrap_or_default()))
                .collect();
            if fresh.is_empty() {
                break;
            }
            for message in fresh {
                let handle = message.receipt_handle.unwrap_or_default();
                report.batches += 1;
                let Ok(failure) =
                    serde_json::from_str::<FailureRecord>(message.body.as_deref().unwrap_or(""))
                else {
                    report.kept += 1;
                    continue;
                };
                let records = self.records(&failure.batch).await?;
                report.records += records.len();
                report.missing += (failure.batch.batch_size as usize).saturating_sub(records.len());
                if self.dry_run {
                    release.push(handle);
                    continue;
                }
                let handled = records.is_empty() || {
                    let mut event = Event::default();
                    event.records = records;
                    self.processor.invoke(event).await?.is_empty()
                };
                if handled {
                    self.sqs
                        .delete_message()
                        .queue_url(self.failure_queue)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .map_err(|e| format!("DeleteMessage: {}", aws_sdk_sqs::Error::from(e)))?;
                } else {
                    report.kept += 1;
                }
            }
        }
        // A dry run leaves every record as it found it, visible at once.
        for handle in release {
            self.sqs
                .change_message_visibility()
                .queue_url(self.failure_queue)
                .receipt_handle(handle)
                .visibility_timeout(0)
                .send()
                .await
                .map_err(|e| format!("ChangeMessageVisibility: {}", aws_sdk_sqs::Error::from(e)))?;
        }
        Ok(report)
    }

    /// The batch's records still in the stream, in order.
    async fn records(&self, batch: &StreamBatchInfo) -> Result<Vec<EventRecord>, String> {
        let iterator = self
            .streams
            .get_shard_iterator()
            .stream_arn(&batch.stream_arn)
            .shard_id(&batch.shard_id)
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .sequence_number(&batch.start_sequence_number)
            .send()
            .await;
        let mut iterator = match iterator {
            Ok(out) => out.shard_iterator,
            // Trimmed (older than 24 hours) or a shard that no longer exists: nothing to replay.
            Err(e) => {
                let e = aws_sdk_dynamodbstreams::Error::from(e);
                if matches!(
                    e,
                    aws_sdk_dynamodbstreams::Error::TrimmedDataAccessException(_)
                        | aws_sdk_dynamodbstreams::Error::ResourceNotFoundException(_)
                ) {
                    return Ok(Vec::new());
                }
                return Err(format!("GetShardIterator: {e}"));
            }
        };
        let mut records = Vec::new();
        let mut empty_reads = 0;
        while let Some(it) = iterator {
            let out = self
                .streams
                .get_records()
                .shard_iterator(it)
                .limit(100)
                .send()
                .await
                .map_err(|e| format!("GetRecords: {}", aws_sdk_dynamodbstreams::Error::from(e)))?;
            let page = out.records.unwrap_or_default();
            if page.is_empty() {
                // An open shard can answer empty before the next records; the range is in the
                // past, so a few empty reads in a row mean the rest is gone.
                empty_reads += 1;
                if empty_reads == 5 {
                    break;
                }
            } else {
                empty_reads = 0;
            }
            for record in page {
                let sequence = record
                    .dynamodb
                    .as_ref()
                    .and_then(|d| d.sequence_number.clone())
                    .unwrap_or_default();
                if !sequence_le(&sequence, &batch.end_sequence_number) {
                    return Ok(records);
                }
                records.push(stream_event_record(record, self.region, &batch.stream_arn));
            }
            iterator = out.next_shard_iterator;
        }
        Ok(records)
    }
}
