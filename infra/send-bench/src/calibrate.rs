//! Where a batch's time goes: the worker's steps for one SQS batch of messages (read, claim,
//! Twilio creates, record), one batch at a time on an otherwise idle stack, through the same
//! public `Store` and `TwilioClient` calls the worker makes. Because the emulator runs DynamoDB
//! requests one at a time, the DynamoDB steps' sum bounds the pipeline's throughput.

use std::time::{Duration, Instant};

use parley::delivery::DeliveryStatus;
use parley::store::{Accepted, ClaimOrder, MessageKey, Store};
use parley::twilio::client::{CreateMessage, Sender, TwilioClient};
use parley::twilio::MessageSid;
use serde_json::Value;

use crate::scenario;
use crate::stack::Stack;
use crate::stats::Summary;
use crate::timing::{self, OpSummary, OpTimer};

/// Lambda's SQS batch, as in template.yaml.
pub const BATCH: usize = 10;

pub struct Calibration {
    pub table: String,
    /// Messages already in the table when the calibration started.
    pub existing: usize,
    pub messages: usize,
    /// (step, its latency per batch of [`BATCH`])
    pub steps: Vec<(&'static str, Summary)>,
    /// Requests by operation, as the SDK saw them.
    pub ops: Vec<OpSummary>,
    /// Sum of the DynamoDB steps per batch.
    pub dynamodb: Summary,
    pub total: Summary,
}

pub const STEPS: [&str; 4] = [
    "read messages + consent: BatchGetItem",
    "claim + consent check: TransactWriteItems",
    "Twilio creates, concurrent (sandbox)",
    "record: TransactWriteItems",
];

/// Calibrates on `table` (created when `existing` is 0, else a table a run left behind with
/// `existing` messages), with recipients from `exchange` on.
pub async fn run(
    stack: &Stack,
    table: &str,
    existing: usize,
    exchange: u32,
    n: usize,
) -> Result<Calibration, String> {
    if existing == 0 {
        stack.table(table).await?;
    }
    let sandbox = stack.sandbox().await?;
    let setup = Store::new(aws_sdk_dynamodb::Client::new(&stack.setup_sdk), table);
    let jobs = scenario::seed_messages(&setup, "calibration", exchange, n).await?;

    let timer = OpTimer::default();
    // Generous timeouts: a step that exceeds the functions' 2 s would be retried and fail its
    // own condition, and its time is what is measured here.
    let store = Store::new(timing::dynamodb(&stack.setup_sdk, &timer), table);
    let twilio = TwilioClient::new(
        &sandbox.url(),
        Sender::Number(stack.from_number.clone()),
        Duration::from_secs(10),
    )
    .map_err(|e| e.to_string())?;
    let secrets = stack.secrets.current();
    let mut samples: [Vec<Duration>; 4] = Default::default();
    let (mut dynamodb, mut total) = (Vec::new(), Vec::new());
    for batch in jobs.chunks(BATCH) {
        let keys = batch
            .iter()
            .map(|job| {
                let job: Value = serde_json::from_str(job).map_err(|e| e.to_string())?;
                Ok((
                    job["pk"].as_str().unwrap_or_default().to_owned(),
                    job["sk"].as_str().unwrap_or_default().to_owned(),
                ))
            })
            .collect::<Result<Vec<MessageKey>, String>>()?;
        let t0 = Instant::now();
        let state = store
            .read_for_sending(&keys)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let messages: Vec<_> = keys.iter().filter_map(|k| state.messages.get(k)).collect();
        if messages.len() != keys.len() || messages.iter().any(|m| state.opted_out(m)) {
            return Err("calibration: fresh messages missing or opted out".into());
        }
        let t1 = Instant::now();
        let orders: Vec<ClaimOrder> = messages
            .iter()
            .map(|message| ClaimOrder {
                message,
                require_consent: true,
            })
            .collect();
        let now = parley::time::now_rfc3339();
        store
            .claim_batch(
                &orders,
                &now,
                "1970-01-01T00:00:00.000Z",
                parley::time::Timestamp::now().plus(std::time::Duration::from_secs(120)),
            )
            .await
            .map_err(|e| format!("claim: {:?}", e))?;
        let t2 = Instant::now();
        let created = futures::future::try_join_all(messages.iter().map(|message| {
            let (twilio, secrets) = (&twilio, &secrets);
            async move {
                let created = twilio
                    .create(
                        secrets,
                        &CreateMessage {
                            to: message.to_e164.as_str(),
                            body: message.body.stored(),
                            media_urls: &[],
                            status_callback: &stack.sink.url,
                            trace: None,
                        },
                    )
                    .await
                    .map_err(|e| format!("Twilio create: {e}"))?;
                let sid = MessageSid::parse(&created.sid).map_err(|e| e.to_string())?;
                Ok::<_, String>((sid, DeliveryStatus::parse(&created.status)))
            }
        }))
        .await?;
        let t3 = Instant::now();
        let accepted: Vec<Accepted> = messages
            .iter()
            .zip(&created)
            .map(|(message, (sid, status))| Accepted {
                message,
                sid,
                status: *status,
            })
            .collect();
        store
            .record_submitted_batch(
                &accepted,
                &parley::time::now_rfc3339(),
                parley::time::Timestamp::now().plus(std::time::Duration::from_secs(86_400)),
            )
            .await
            .map_err(|e| format!("record: {:?}", e))?;
        let t4 = Instant::now();
        samples[0].push(t1 - t0);
        samples[1].push(t2 - t1);
        samples[2].push(t3 - t2);
        samples[3].push(t4 - t3);
        dynamodb.push((t2 - t0) + (t4 - t3));
        total.push(t4 - t0);
    }
    Ok(Calibration {
        table: table.to_owned(),
        existing,
        messages: n,
        steps: STEPS
            .iter()
            .zip(samples.iter())
            .map(|(name, s)| (*name, Summary::of(s)))
            .collect(),
        ops: timer.take_summaries(),
        dynamodb: Summary::of(&dynamodb),
        total: Summary::of(&total),
    })
}
