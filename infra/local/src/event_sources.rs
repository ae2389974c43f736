//! Lambda's SQS event source, locally: receive a batch, invoke the function with an `SqsEvent`,
//! delete the records it did not report in `batchItemFailures`, and leave those to the
//! visibility timeout (which the function may shorten), so retries and dead-letter redrive
//! behave as deployed.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use futures::future::BoxFuture;

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
        let response = (self.function)(event).await;
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
