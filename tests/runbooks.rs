//! The runbook commands that move queued work (docs/runbooks.md), against the local stack:
//! `parley-local redrive` and `parley-local replay-failures`.

use std::process::Command;
use std::time::Duration;

use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use parley_e2e::*;
use parley_local::redrive::{self, RedrivePair};
use parley_local::stream_failure::{FailureRecord, StreamBatchInfo};
use serde_json::Value;

async fn own_queue(sqs: &aws_sdk_sqs::Client, label: &str) -> String {
    sqs.create_queue()
        .queue_name(format!(
            "test-{label}-{}",
            ulid::Ulid::new().to_string().to_lowercase()
        ))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

async fn bodies(sqs: &aws_sdk_sqs::Client, queue: &str) -> Vec<(String, Option<String>)> {
    let mut all = Vec::new();
    loop {
        let batch = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .visibility_timeout(30)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if batch.is_empty() {
            all.sort();
            return all;
        }
        for m in batch {
            let kind = m
                .message_attributes
                .as_ref()
                .and_then(|a| a.get("kind"))
                .and_then(|v| v.string_value.clone());
            all.push((m.body.unwrap_or_default(), kind));
        }
    }
}

#[tokio::test]
async fn redrive_moves_every_message_back_with_its_attributes_and_respects_max() {
    let stack = stack().await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let pair = RedrivePair {
        source: own_queue(&sqs, "source").await,
        dead_letter: own_queue(&sqs, "dlq").await,
    };
    for i in 0..3 {
        sqs.send_message()
            .queue_url(&pair.dead_letter)
            .message_body(format!("job {i}"))
            .message_attributes(
                "kind",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(format!("k{i}"))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
    assert_eq!(redrive::waiting(&sqs, &pair.dead_letter).await.unwrap(), 3);
    assert_eq!(redrive::redrive(&sqs, &pair, 2).await.unwrap(), 2);
    assert_eq!(redrive::redrive(&sqs, &pair, 10).await.unwrap(), 1);
    assert_eq!(redrive::redrive(&sqs, &pair, 10).await.unwrap(), 0);
    assert_eq!(redrive::waiting(&sqs, &pair.dead_letter).await.unwrap(), 0);
    let moved = bodies(&sqs, &pair.source).await;
    assert_eq!(
        moved,
        (0..3)
            .map(|i| (format!("job {i}"), Some(format!("k{i}"))))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn redrive_of_an_unknown_queue_is_refused_and_a_dry_run_moves_nothing() {
    let out = Command::new(parley_local_bin())
        .args(["redrive", "NoSuchQueue"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NoSuchQueue is not a queue"));
    let dry = parley_local_ok(&["redrive", "--dry-run"]);
    assert!(
        dry.contains("SendDeadLetterQueue → SendQueue:")
            && dry.contains("(dry run: nothing moved)"),
        "{dry}"
    );
    assert!(
        dry.contains("EventRouterDeadLetterQueue → EventRouterQueue:"),
        "{dry}"
    );
}

/// The stream record of the message item that holds `needle` (its Twilio SID), with its shard.
async fn stream_record_with(stack: &Stack, needle: &str) -> (String, String, String) {
    let table = stack.env.get("TABLE_NAME").unwrap();
    let dynamodb = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let streams = aws_sdk_dynamodbstreams::Client::new(&stack.sdk);
    let stream_arn = dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap()
        .latest_stream_arn
        .unwrap();
    eventually(30, "the item's stream record", || async {
        let shards = streams
            .describe_stream()
            .stream_arn(&stream_arn)
            .send()
            .await
            .ok()?
            .stream_description?
            .shards
            .unwrap_or_default();
        for shard in shards {
            let shard_id = shard.shard_id?;
            let mut iterator = streams
                .get_shard_iterator()
                .stream_arn(&stream_arn)
                .shard_id(&shard_id)
                .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
                .send()
                .await
                .ok()?
                .shard_iterator;
            while let Some(it) = iterator {
                let out = streams
                    .get_records()
                    .shard_iterator(it)
                    .limit(1000)
                    .send()
                    .await
                    .ok()?;
                let records = out.records.unwrap_or_default();
                if records.is_empty() {
                    break;
                }
                for r in records {
                    let change = r.dynamodb?;
                    let image = change.new_image.clone().unwrap_or_default();
                    let message = image.get("entity")
                        == Some(&aws_sdk_dynamodbstreams::types::AttributeValue::S(
                            "message".into(),
                        ));
                    if message && format!("{image:?}").contains(needle) {
                        return Some((
                            shard_id.clone(),
                            change.sequence_number?,
                            stream_arn.clone(),
                        ));
                    }
                }
                iterator = out.next_shard_iterator;
            }
        }
        None
    })
    .await
}

fn received_for<'a>(events: &'a [Value], phone: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["detail-type"] == "sms.received" && e["detail"]["from"] == phone)
        .collect()
}

#[tokio::test]
async fn replay_failures_hands_a_failed_batch_to_the_processor_again() {
    let stack = stack().await;
    let events = stack.subscribe_events().await;
    let phone = unique_phone();
    let tenant = format!("T-{}", ulid::Ulid::new());
    stack.add_tenant(&tenant, &[&phone]).await;
    let form = InboundForm::new(&stack, &phone, &unique_body("The hallway light is out"));
    assert_eq!(stack.post_inbound(&form).await.status, 200);
    let mut seen = eventually(60, "sms.received", || async {
        let all = stack.drain_events(&events).await;
        (!received_for(&all, &phone).is_empty()).then_some(all)
    })
    .await;

    // What Lambda's event source would have sent had the processor given up on this record.
    let (shard_id, sequence, stream_arn) = stream_record_with(&stack, form.sid().as_str()).await;
    let failure = FailureRecord::exhausted(
        "arn:aws:lambda:us-east-1:000000000000:function:InboundProcessorFunction".into(),
        6,
        StreamBatchInfo {
            shard_id,
            start_sequence_number: sequence.clone(),
            end_sequence_number: sequence,
            approximate_arrival_of_first_record: None,
            approximate_arrival_of_last_record: None,
            batch_size: 1,
            stream_arn,
        },
    );
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let failures = stack.queue_url("ProcessorFailureQueue").await;
    sqs.send_message()
        .queue_url(&failures)
        .message_body(serde_json::to_string(&failure).unwrap())
        .send()
        .await
        .unwrap();

    let dry = parley_local_ok(&["replay-failures", "--dry-run"]);
    assert!(dry.contains("found (dry run)"), "{dry}");
    let waiting = sqs
        .get_queue_attributes()
        .queue_url(&failures)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::ApproximateNumberOfMessages]
        .parse::<u64>()
        .unwrap();
    assert!(waiting >= 1, "a dry run leaves the record in the queue");

    let replayed = parley_local_ok(&["replay-failures"]);
    assert!(replayed.contains("records replayed"), "{replayed}");
    assert!(replayed.contains(", 0 batches kept"), "{replayed}");
    assert!(!replayed.contains(" 0 records replayed"), "{replayed}");
    // The processor ran on the record again: a second sms.received for the same message.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while received_for(&seen, &phone).len() < 2 && std::time::Instant::now() < deadline {
        seen.extend(stack.drain_events(&events).await);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mine = received_for(&seen, &phone);
    assert_eq!(
        mine.len(),
        2,
        "the replayed record published sms.received again"
    );
    assert_eq!(
        mine[0]["detail"]["message_id"],
        mine[1]["detail"]["message_id"]
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        redrive::waiting(&sqs, &failures).await.unwrap(),
        0,
        "a replayed batch leaves the failure queue"
    );
}

#[tokio::test]
async fn local_keys_commands_create_list_and_revoke_a_working_key() {
    let stack = stack().await;
    let name = format!("runbook-{}", ulid::Ulid::new().to_string().to_lowercase());
    let token = parley_local_ok(&["keys", "create", "--name", &name, "--scopes", "read"]);
    let token = token.trim();
    assert!(token.starts_with("prly_"), "a token, printed once");
    assert_eq!(stack.get("/queue/summary", Some(token)).await.status, 200);

    let listed: Value = serde_json::from_str(&parley_local_ok(&["keys", "list"])).unwrap();
    let key = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == name.as_str())
        .expect("the new key is listed");
    assert_eq!(key["scopes"], serde_json::json!(["read"]));
    let key_id = key["key_id"].as_str().unwrap();

    let revoked = parley_local_ok(&["keys", "revoke", key_id]);
    assert!(
        revoked.starts_with(&format!("revoked {key_id}")),
        "{revoked}"
    );
    let listed: Value = serde_json::from_str(&parley_local_ok(&["keys", "list"])).unwrap();
    let key = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == key_id)
        .unwrap();
    assert!(!key["revoked_at"].is_null(), "{key}");
}
