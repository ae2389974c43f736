//! What Lambda sends to a DynamoDB stream event source's on-failure destination when a batch
//! exhausts its retries: not the records, only where they are in the stream
//! (<https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-errors.html>). The local
//! stream source writes these; `parley-local replay-failures` reads them back.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureRecord {
    #[serde(rename = "requestContext")]
    pub request_context: RequestContext,
    pub version: String,
    pub timestamp: String,
    #[serde(rename = "DDBStreamBatchInfo")]
    pub batch: StreamBatchInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestContext {
    pub request_id: String,
    pub function_arn: String,
    /// `RetryAttemptsExhausted`, `MaximumRecordAgeExceeded` or `EventSizeExceeded`.
    pub condition: String,
    pub approximate_invoke_count: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamBatchInfo {
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approximate_arrival_of_first_record: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approximate_arrival_of_last_record: Option<String>,
    pub batch_size: u32,
    pub stream_arn: String,
}

impl FailureRecord {
    /// A batch that exhausted its retries, as the local stream source reports it.
    pub fn exhausted(function_arn: String, invocations: u32, batch: StreamBatchInfo) -> Self {
        Self {
            request_context: RequestContext {
                request_id: ulid::Ulid::new().to_string(),
                function_arn,
                condition: "RetryAttemptsExhausted".into(),
                approximate_invoke_count: invocations,
            },
            version: "1.0".into(),
            timestamp: parley::time::Timestamp::now().to_string(),
            batch,
        }
    }
}

/// Stream sequence numbers are decimal strings of up to 40 digits: compared as numbers.
pub fn sequence_le(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    (a.len(), a) <= (b.len(), b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of Lambda's documentation for a DynamoDB stream's on-failure record.
    const DOCUMENTED: &str = r#"{
        "requestContext": {
            "requestId": "316aa6d0-8154-xmpl-9af7-85d5f4a6bc81",
            "functionArn": "arn:aws:lambda:us-east-2:123456789012:function:myfunction",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 1
        },
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled"
        },
        "version": "1.0",
        "timestamp": "2019-11-14T00:13:49.717Z",
        "DDBStreamBatchInfo": {
            "shardId": "shardId-00000001573689847184-864758bb",
            "startSequenceNumber": "800000000003126276362",
            "endSequenceNumber": "800000000003126276362",
            "approximateArrivalOfFirstRecord": "2019-11-14T00:13:19Z",
            "approximateArrivalOfLastRecord": "2019-11-14T00:13:19Z",
            "batchSize": 1,
            "streamArn": "arn:aws:dynamodb:us-east-2:123456789012:table/mytable/stream/2019-11-14T00:04:06.388"
        }
    }"#;

    #[test]
    fn reads_lambdas_documented_record() {
        let record: FailureRecord = serde_json::from_str(DOCUMENTED).unwrap();
        assert_eq!(
            record.batch.shard_id,
            "shardId-00000001573689847184-864758bb"
        );
        assert_eq!(record.batch.start_sequence_number, "800000000003126276362");
        assert_eq!(record.batch.batch_size, 1);
        assert_eq!(record.request_context.condition, "RetryAttemptsExhausted");
    }

    #[test]
    fn what_the_local_source_writes_reads_back() {
        let batch = StreamBatchInfo {
            shard_id: "shard".into(),
            start_sequence_number: "100".into(),
            end_sequence_number: "200".into(),
            approximate_arrival_of_first_record: None,
            approximate_arrival_of_last_record: None,
            batch_size: 2,
            stream_arn: "arn".into(),
        };
        let record = FailureRecord::exhausted("fn".into(), 6, batch);
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["DDBStreamBatchInfo"]["startSequenceNumber"], "100");
        assert_eq!(json["requestContext"]["approximateInvokeCount"], 6);
        assert_eq!(
            serde_json::from_value::<FailureRecord>(json).unwrap(),
            record
        );
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(sequence_le("99", "100"));
        assert!(!sequence_le("100", "99"));
        assert!(sequence_le("100", "100"));
        assert!(sequence_le("00100", "101"));
        assert!(!sequence_le(
            "800000000003126276363",
            "800000000003126276362"
        ));
    }
}
