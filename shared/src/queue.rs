//! The send queue's contract: what a job says, and the one way jobs are put on the queue.
//! A job names a message; the message in the table is the truth, so a job that is lost,
//! delivered twice or early changes nothing that the worker's conditional claim and the
//! dispatcher's sweep do not put right.

use std::time::Duration;

use aws_lambda_events::event::sqs::SqsMessage;
use aws_sdk_sqs::types::{
    MessageSystemAttributeNameForSends, MessageSystemAttributeValue, SendMessageBatchRequestEntry,
};
use serde::{Deserialize, Serialize};

use crate::xray::TraceHeader;

/// SQS's largest per-message delay: later sends wait in the table for the dispatcher.
pub const MAX_DELAY: Duration = Duration::from_secs(900);
/// SendMessageBatch takes at most ten entries.
const SQS_BATCH: usize = 10;

/// What the send worker receives on the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendJob {
    pub message_id: String,
    pub pk: String,
    pub sk: String,
    /// How often the worker has put a fresh copy of this job back after a fault that was not
    /// a delivery attempt; past a bound the copy is retried as received instead, so a job the
    /// store keeps refusing still reaches the dead-letter queue.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub requeues: u32,
    /// The trace the job belongs to. It travels as SQS's `AWSTraceHeader` system attribute, not
    /// in the body: Lambda reads it there to link the worker's invocation to the trace.
    #[serde(skip)]
    pub trace: Option<TraceHeader>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl SendJob {
    pub fn new(
        message_id: impl Into<String>,
        pk: impl Into<String>,
        sk: impl Into<String>,
    ) -> Self {
        Self {
            message_id: message_id.into(),
            pk: pk.into(),
            sk: sk.into(),
            requeues: 0,
            trace: None,
        }
    }

    pub fn traced(mut self, trace: Option<TraceHeader>) -> Self {
        self.trace = trace;
        self
    }

    /// The job an SQS record carries, with the record's trace; `None` when the body is not a
    /// job.
    pub fn from_record(record: &SqsMessage) -> Option<Self> {
        let job: Self = serde_json::from_str(record.body.as_deref()?).ok()?;
        Some(job.traced(TraceHeader::of_sqs(record)))
    }

    /// The job's trace as an SQS message system attribute.
    fn trace_attribute(&self) -> Option<MessageSystemAttributeValue> {
        let trace = self.trace.as_ref()?;
        MessageSystemAttributeValue::builder()
            .data_type("String")
            .string_value(trace.to_string())
            .build()
            .ok()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("SQS {operation} failed: {code}")]
pub struct QueueError {
    operation: &'static str,
    code: String,
}

fn queue_error<E: aws_sdk_sqs::error::ProvideErrorMetadata, R>(
    operation: &'static str,
    err: &aws_sdk_sqs::error::SdkError<E, R>,
) -> QueueError {
    let code = match err {
        aws_sdk_sqs::error::SdkError::ServiceError(e) => e.err().code().unwrap_or("unknown"),
        aws_sdk_sqs::error::SdkError::TimeoutError(_) => "timeout",
        aws_sdk_sqs::error::SdkError::DispatchFailure(_) => "dispatch_failure",
        _ => "response_error",
    };
    QueueError {
        operation,
        code: code.to_owned(),
    }
}

/// The send queue.
#[derive(Clone, Debug)]
pub struct JobQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

/// Seconds of delay as SQS takes them: rounded up (never early), at most [`MAX_DELAY`].
fn delay_seconds(delay: Duration) -> i32 {
    let millis = delay.min(MAX_DELAY).as_millis();
    millis.div_ceil(1000) as i32
}

fn trace_attributes(
    job: &SendJob,
) -> Option<
    std::collections::HashMap<MessageSystemAttributeNameForSends, MessageSystemAttributeValue>,
> {
    let value = job.trace_attribute()?;
    Some([(MessageSystemAttributeNameForSends::AwsTraceHeader, value)].into())
}

impl JobQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }

    /// Puts one job on the queue, visible after `delay` (at most 15 minutes).
    pub async fn enqueue(&self, job: &SendJob, delay: Duration) -> Result<(), QueueError> {
        let body = serde_json::to_string(job).unwrap_or_default();
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(delay_seconds(delay))
            .set_message_system_attributes(trace_attributes(job))
            .send()
            .await
            .map_err(|e| queue_error("SendMessage", &e))?;
        Ok(())
    }

    /// Puts many jobs on the queue, ten to a request; returns the jobs that did not get on.
    pub async fn enqueue_many<'a>(&self, jobs: &[(&'a SendJob, Duration)]) -> Vec<&'a SendJob> {
        let mut failed = Vec::new();
        for chunk in jobs.chunks(SQS_BATCH) {
            let entries: Vec<SendMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, (job, delay))| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(serde_json::to_string(job).unwrap_or_default())
                        .delay_seconds(delay_seconds(*delay))
                        .set_message_system_attributes(trace_attributes(job))
                        .build()
                        .ok()
                })
                .collect();
            match self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => failed.extend(
                    out.failed
                        .iter()
                        .filter_map(|f| f.id.parse::<usize>().ok())
                        .filter_map(|i| chunk.get(i).map(|(job, _)| *job)),
                ),
                Err(e) => {
                    tracing::warn!(error = %queue_error("SendMessageBatch", &e), "could not enqueue a batch");
                    failed.extend(chunk.iter().map(|(job, _)| *job));
                }
            }
        }
        failed
    }

    /// Messages waiting in a queue (for the dead-letter queue's depth).
    pub async fn depth(&self) -> Result<u64, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(|e| queue_error("GetQueueAttributes", &e))?;
        Ok(out
            .attributes
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_round_up_and_stop_at_fifteen_minutes() {
        assert_eq!(delay_seconds(Duration::ZERO), 0);
        assert_eq!(delay_seconds(Duration::from_millis(1)), 1);
        assert_eq!(delay_seconds(Duration::from_millis(4_001)), 5);
        assert_eq!(delay_seconds(Duration::from_secs(3600)), 900);
    }

    #[test]
    fn a_job_is_three_named_strings() {
        let job = SendJob::new("01J", "CONV#sms#+14155552671", "MSG#01J");
        let json = serde_json::to_value(&job).unwrap();
        assert_eq!(json["message_id"], "01J");
        assert_eq!(json.get("requeues"), None, "absent until a requeue");
        assert_eq!(serde_json::from_value::<SendJob>(json).unwrap(), job);
    }

    #[test]
    fn a_job_s_trace_travels_beside_its_body_as_aws_trace_header() {
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let job = SendJob::new("01J", "CONV#sms#+14155552671", "MSG#01J")
            .traced(TraceHeader::parse(header));
        let body = serde_json::to_string(&job).unwrap();
        assert!(!body.contains("Root"), "the trace is not in the body");
        let attributes = trace_attributes(&job).unwrap();
        let value = &attributes[&MessageSystemAttributeNameForSends::AwsTraceHeader];
        assert_eq!(value.string_value(), Some(header));
        assert_eq!(value.data_type(), "String");
        assert!(trace_attributes(&SendJob::new("01J", "pk", "sk")).is_none());

        let mut record = SqsMessage::default();
        record.body = Some(body);
        record
            .attributes
            .insert("AWSTraceHeader".into(), header.into());
        let received = SendJob::from_record(&record).unwrap();
        assert_eq!(received, job);
        assert_eq!(received.trace.unwrap().to_string(), header);
    }
}
