//! Parley's domain events, caught on a queue of the test's own.

use crate::Stack;

impl Stack {
    /// A queue of its own subscribed to every Parley event on the local bus.
    pub async fn subscribe_events(&self) -> String {
        let prefix = self
            .env
            .get("LOCAL_QUEUE_PREFIX")
            .expect("LOCAL_QUEUE_PREFIX");
        let bus = format!("{prefix}EventBus");
        let name = format!(
            "test-events-{}",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let url = sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
            .clone();
        let events = aws_sdk_eventbridge::Client::new(&self.sdk);
        events
            .put_rule()
            .name(&name)
            .event_bus_name(&bus)
            .event_pattern(r#"{"source": ["parley"]}"#)
            .send()
            .await
            .unwrap();
        events
            .put_targets()
            .rule(&name)
            .event_bus_name(&bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("q")
                    .arn(arn)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        url
    }

    /// Every event delivered to `queue` so far (each an EventBridge envelope).
    pub async fn drain_events(&self, queue: &str) -> Vec<serde_json::Value> {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let mut all = Vec::new();
        loop {
            let out = sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            let batch = out.messages.unwrap_or_default();
            if batch.is_empty() {
                return all;
            }
            for m in batch {
                all.extend(m.body.as_deref().and_then(|b| serde_json::from_str(b).ok()));
                sqs.delete_message()
                    .queue_url(queue)
                    .set_receipt_handle(m.receipt_handle)
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}
