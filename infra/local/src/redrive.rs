//! Moves a dead-letter queue's messages back to the queue whose redrive policy names it, as
//! the SQS console's "Start DLQ redrive" does (the emulator has no `StartMessageMoveTask`).
//! Each message is sent to the source before it is deleted from the dead-letter queue: a crash
//! in between leaves a copy in both, which the consumers tolerate (the send worker's claim, the
//! rules' business keys).

use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};

/// A source queue and its dead-letter queue, by URL.
#[derive(Debug, Clone)]
pub struct RedrivePair {
    pub source: String,
    pub dead_letter: String,
}

/// Messages waiting in the dead-letter queue (SQS's approximate count).
pub async fn waiting(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<u64, String> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .map_err(|e| format!("GetQueueAttributes: {}", aws_sdk_sqs::Error::from(e)))?
        .attributes
        .unwrap_or_default();
    Ok(attributes
        .get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}

/// Moves up to `max` messages; returns how many moved. Stops at the first empty receive.
pub async fn redrive(
    sqs: &aws_sdk_sqs::Client,
    pair: &RedrivePair,
    max: usize,
) -> Result<usize, String> {
    let mut moved = 0;
    while moved < max {
        let received = sqs
            .receive_message()
            .queue_url(&pair.dead_letter)
            .max_number_of_messages((max - moved).clamp(1, 10) as i32)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .visibility_timeout(60)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| format!("ReceiveMessage: {}", aws_sdk_sqs::Error::from(e)))?
            .messages
            .unwrap_or_default();
        if received.is_empty() {
            break;
        }
        for message in received {
            let attributes: std::collections::HashMap<String, MessageAttributeValue> =
                message.message_attributes.clone().unwrap_or_default();
            sqs.send_message()
                .queue_url(&pair.source)
                .message_body(message.body.clone().unwrap_or_default())
                .set_message_attributes((!attributes.is_empty()).then_some(attributes))
                .send()
                .await
                .map_err(|e| format!("SendMessage: {}", aws_sdk_sqs::Error::from(e)))?;
            sqs.delete_message()
                .queue_url(&pair.dead_letter)
                .receipt_handle(message.receipt_handle.unwrap_or_default())
                .send()
                .await
                .map_err(|e| format!("DeleteMessage: {}", aws_sdk_sqs::Error::from(e)))?;
            moved += 1;
        }
    }
    Ok(moved)
}
