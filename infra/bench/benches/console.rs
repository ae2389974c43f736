//! Issue 12's console figure in `docs/benchmarks.md`: the CPU `ConsoleHandler::handle` spends
//! on each page with I/O taken out, and the AWS requests each page makes.
//!
//! I/O is taken out as in `inbound.rs`: the SDK's HTTP client is an in-process function
//! (`infallible_client_fn`) that answers DynamoDB, SQS and Secrets Manager at once, so request
//! serialization, SigV4 signing, the orchestrator and response parsing still run. DynamoDB is
//! answered from a small table held in memory: real `parley` types (`Conversation`, `Message`,
//! `Rule`, `Activity`, hourly counters) written with `serde_dynamo::to_item` and served in
//! DynamoDB's wire JSON for the few key conditions the console's pages use. Each distinct
//! request's answer is computed once and then replayed, so the fake's own JSON work stays out
//! of the handler's process CPU (what is left of it is a hash of the request and a copy of
//! the answer).
//!
//! The store has no envelope: bodies are stored plain (the local stack seals them with a
//! KMS data key; opening 50 sealed bodies is AES-GCM under a cached key, not measured here).
//!
//! Environment: `BENCH_ITERATIONS` (default 2000), `BENCH_WARMUP` (default 200),
//! `BENCH_KEEP_STDOUT=1`, `RUST_LOG` (the handler's tracing filter, as in Lambda).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_http_client::test_util::infallible_client_fn;
use aws_smithy_types::body::SdkBody;
use base64::Engine;
use common::{env_number, micros, process_cpu, Summary};
use http::{HeaderMap, HeaderValue};
use lambda_http::{Body, Request, Response};
use parley::pending::Policy;
use parley::queue::JobQueue;
use parley::rules::activity::{Activity, Outcome};
use parley::rules::rule::{validate, Rule};
use parley::secrets::SecretStore;
use parley::send::SendService;
use parley::store::keys::{self, Entity};
use parley::store::{Conversation, Message, Store};
use parley::time::Timestamp;
use parley_console::ConsoleHandler;
use parley_local::apigw;
use serde_json::{json, Value};

const TABLE: &str = "parley-bench";
const SECRET_ID: &str = "parley/bench";
const QUEUE_URL: &str = "https://sqs.us-east-1.amazonaws.com/000000000000/parley-send";
const HOUR: Duration = Duration::from_secs(3600);

// ---------------------------------------------------------------------------------------------
// The table, in memory.

type Item = HashMap<String, AttributeValue>;

/// DynamoDB's wire JSON of one attribute value.
fn wire(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(wire).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": wire_item(m) }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::B(b) => {
            json!({ "B": base64::engine::general_purpose::STANDARD.encode(b.as_ref()) })
        }
        other => panic!("no wire form for {other:?} in the bench's items"),
    }
}

fn wire_item(item: &Item) -> Value {
    Value::Object(item.iter().map(|(k, v)| (k.clone(), wire(v))).collect())
}

fn attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// The items, and the few reads the console's pages make of them.
struct Table {
    items: Vec<Item>,
}

impl Table {
    fn get(&self, key: &Value) -> Option<&Item> {
        let pk = key["pk"]["S"].as_str()?;
        let sk = key["sk"]["S"].as_str()?;
        self.items
            .iter()
            .find(|i| attr(i, "pk") == Some(pk) && attr(i, "sk") == Some(sk))
    }

    /// A Query: `<hash> = :v` on the table or GSI1, optionally `begins_with(sk, :prefix)` or
    /// `sk BETWEEN :low AND :high`; ordered by the range key, `Limit` honoured with a
    /// `LastEvaluatedKey` when more remain. Filters and start keys are not needed here.
    fn query(&self, request: &Value) -> Value {
        let (hash, range) = match request["IndexName"].as_str() {
            Some(keys::GSI1) => ("gsi1pk", "gsi1sk"),
            Some(other) => panic!("no Query of index {other} in the console"),
            None => ("pk", "sk"),
        };
        let condition = request["KeyConditionExpression"].as_str().unwrap_or("");
        let values = &request["ExpressionAttributeValues"];
        let value = |name: &str| values[name]["S"].as_str().unwrap_or("").to_owned();
        let name_after = |marker: &str| {
            condition
                .split_once(marker)
                .map(|(_, rest)| rest.split([' ', ')']).next().unwrap_or("").to_owned())
                .unwrap_or_default()
        };
        let wanted = value(&name_after(&format!("{hash} = ")));
        let prefix = condition
            .contains("begins_with")
            .then(|| value(&name_after(", ")));
        let between = condition.contains("BETWEEN").then(|| {
            (
                value(&name_after("BETWEEN ")),
                value(&name_after("BETWEEN :low AND ")),
            )
        });
        let mut found: Vec<&Item> = self
            .items
            .iter()
            .filter(|i| attr(i, hash) == Some(wanted.as_str()))
            .filter(|i| {
                let sk = attr(i, range).unwrap_or("");
                prefix.as_ref().is_none_or(|p| sk.starts_with(p.as_str()))
                    && between
                        .as_ref()
                        .is_none_or(|(low, high)| low.as_str() <= sk && sk <= high.as_str())
            })
            .collect();
        found.sort_by(|a, b| attr(a, range).cmp(&attr(b, range)));
        if request["ScanIndexForward"] == json!(false) {
            found.reverse();
        }
        page(found, request, &[hash, range])
    }

    /// A Scan of the due index: every item with a `gsi2pk`.
    fn scan(&self, request: &Value) -> Value {
        assert_eq!(request["IndexName"], json!(keys::DUE_INDEX));
        let found = self
            .items
            .iter()
            .filter(|i| i.contains_key("gsi2pk"))
            .collect();
        page(found, request, &["gsi2pk", "gsi2sk"])
    }

    fn batch_get(&self, request: &Value) -> Value {
        let found: Vec<Value> = request["RequestItems"][TABLE]["Keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|key| self.get(key))
            .map(wire_item)
            .collect();
        json!({ "Responses": { TABLE: found }, "UnprocessedKeys": {} })
    }
}

/// `Limit` items of `found`, with the last one's key when more remain.
fn page(found: Vec<&Item>, request: &Value, index_keys: &[&str]) -> Value {
    let limit = request["Limit"]
        .as_u64()
        .map_or(found.len(), |l| l as usize);
    let more = found.len() > limit;
    let items: Vec<&Item> = found.into_iter().take(limit).collect();
    let mut out = json!({
        "Items": items.iter().map(|i| wire_item(i)).collect::<Vec<_>>(),
        "Count": items.len(),
        "ScannedCount": items.len(),
    });
    if let (true, Some(last)) = (more, items.last()) {
        let key: Item = ["pk", "sk"]
            .iter()
            .chain(index_keys)
            .filter_map(|k| last.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect();
        out["LastEvaluatedKey"] = wire_item(&key);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The in-process AWS endpoint.

/// A request as the endpoint recognises it again: (operation, body).
type RequestKey = (String, Vec<u8>);
/// What it answered: (status, body).
type Answer = (u16, String);

/// Answers every request from the table (or the secret, or the queue's depth), each distinct
/// request once, and counts what it was asked by operation.
struct Endpoint {
    table: Table,
    secret_response: String,
    answers: Mutex<HashMap<RequestKey, Answer>>,
    counts: Mutex<BTreeMap<String, u64>>,
}

impl Endpoint {
    fn respond(&self, req: http::Request<SdkBody>) -> http::Response<SdkBody> {
        let target = req
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        *self
            .counts
            .lock()
            .unwrap()
            .entry(target.clone())
            .or_default() += 1;
        let body = req.body().bytes().unwrap_or_default().to_vec();
        let key = (target, body);
        let cached = self.answers.lock().unwrap().get(&key).cloned();
        let (status, answer) = cached.unwrap_or_else(|| {
            let answer = self.answer(&key.0, &key.1);
            self.answers
                .lock()
                .unwrap()
                .insert(key.clone(), answer.clone());
            answer
        });
        let content_type = match key.0.starts_with("secretsmanager.") {
            true => "application/x-amz-json-1.1",
            false => "application/x-amz-json-1.0",
        };
        http::Response::builder()
            .status(status)
            .header("content-type", content_type)
            .header("x-amzn-requestid", "00000000-0000-0000-0000-000000000000")
            .body(SdkBody::from(answer))
            .expect("a valid response")
    }

    fn answer(&self, target: &str, body: &[u8]) -> (u16, String) {
        let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let ok = |v: Value| (200, v.to_string());
        match target {
            "DynamoDB_20120810.GetItem" => ok(match self.table.get(&request["Key"]) {
                Some(item) => json!({ "Item": wire_item(item) }),
                None => json!({}),
            }),
            "DynamoDB_20120810.Query" => ok(self.table.query(&request)),
            "DynamoDB_20120810.Scan" => ok(self.table.scan(&request)),
            "DynamoDB_20120810.BatchGetItem" => ok(self.table.batch_get(&request)),
            // The read mark; the table keeps its items as they are, so each view writes it.
            "DynamoDB_20120810.UpdateItem" => ok(json!({})),
            "AmazonSQS.GetQueueAttributes" => {
                ok(json!({ "Attributes": { "ApproximateNumberOfMessages": "37" } }))
            }
            "secretsmanager.GetSecretValue" => (200, self.secret_response.clone()),
            other => (
                400,
                json!({ "__type": "UnknownOperationException", "message": other }).to_string(),
            ),
        }
    }

    fn take_counts(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut self.counts.lock().unwrap())
    }
}

/// The SDK configuration of `parley::aws::sdk_config`, with the in-process HTTP client.
async fn sdk_config(endpoint: Arc<Endpoint>) -> SdkConfig {
    let http = infallible_client_fn(move |req| endpoint.respond(req));
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "bench"))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(5))
                .build(),
        )
        .load()
        .await
}

// ---------------------------------------------------------------------------------------------
// The data: what a busy property manager's table holds.

const CONVERSATIONS: usize = 40;
const THREAD_MESSAGES: usize = 60;
const PENDING: usize = 60;
const FAILED: usize = 60;
const RULES: usize = 12;
const ACTIVITY: usize = 30;

const BODIES: [&str; 4] = [
    "Hola, ya pagué la renta de este mes. ¿Pueden confirmar que la recibieron? Gracias.",
    "Reminder: your rent of $1,450.00 is due on the 1st. Reply HELP for help or STOP to opt out.",
    "The kitchen sink is leaking again since this morning, can someone come by this week?",
    "Thanks! A technician will visit on Thursday between 9 and 12. Reply if that does not suit you.",
];

fn phone(i: usize) -> String {
    format!("+1415555{:04}", 1000 + i)
}

fn to_item<T: serde::Serialize>(value: &T) -> Item {
    serde_dynamo::to_item(value).expect("a parley type maps to an item")
}

fn conversation(i: usize, now: Timestamp, unread: u64) -> Item {
    let last = now.minus(Duration::from_secs(600 * i as u64)).to_string();
    let conversation: Conversation = serde_json::from_value(json!({
        "conversation_id": ulid::Ulid::new().to_string(),
        "channel": "sms",
        "phone": phone(i),
        "created_at": now.minus(Duration::from_secs(86_400 * 90)).to_string(),
        "last_message_at": last,
        "last_activity_at": last,
        "message_count": 120, "inbound_count": 50, "outbound_count": 70,
        "language": if i % 3 == 0 { "es" } else { "en" },
        "language_confidence": 0.97,
        "tenant_id": (i % 4 != 0).then(|| format!("T-{:05}", 20_000 + i)),
        "tenant_time_zone": "America/Los_Angeles",
        "workflow_type": "rent_reminder",
        "workflow_id": format!("WF-{i}"),
        "unread_count": unread,
        "pending_ids": if i % 5 == 0 { vec![ulid::Ulid::new().to_string()] } else { vec![] },
        "opted_out": i % 11 == 0,
    }))
    .expect("a conversation");
    let mut item = to_item(&conversation);
    // `pending_ids` is a string set in the table (kept by `ADD`/`DELETE`), absent when empty.
    match conversation.pending_ids.is_empty() {
        true => item.remove("pending_ids"),
        false => item.insert(
            "pending_ids".into(),
            AttributeValue::Ss(conversation.pending_ids.clone()),
        ),
    };
    let pk = keys::conversation_pk(conversation.channel, &conversation.phone);
    item.insert("pk".into(), AttributeValue::S(pk));
    item.insert("sk".into(), AttributeValue::S(keys::META.into()));
    item.insert(
        "entity".into(),
        AttributeValue::S(Entity::Conversation.as_str().into()),
    );
    item.insert(
        "gsi1pk".into(),
        AttributeValue::S(keys::CONVERSATIONS_GSI1PK.into()),
    );
    item.insert("gsi1sk".into(), AttributeValue::S(last));
    item
}

/// One message in conversation `c`'s partition; `state` is its pipeline state.
fn message(c: usize, at: Timestamp, inbound: bool, state: &str, n: usize) -> Message {
    let id = ulid::Ulid::from_parts(at.unix_millis() as u64, n as u128).to_string();
    let phone = phone(c);
    let ours = "+15005550006";
    let failed = state == "failed";
    let final_outbound = !inbound && matches!(state, "submitted" | "failed");
    serde_json::from_value(json!({
        "pk": format!("CONV#sms#{phone}"),
        "sk": keys::message_sk(&id),
        "entity": "message",
        "gsi1pk": keys::message_gsi1pk(&id),
        "gsi1sk": keys::message_gsi1pk(&id),
        "message_id": id,
        "direction": if inbound { "inbound" } else { "outbound" },
        "channel": "sms",
        "body": BODIES[n % BODIES.len()],
        "twilio_sid": format!("SM{:032x}", n),
        "account_sid": "AC00000000000000000000000000000000",
        "from_e164": if inbound { phone.as_str() } else { ours },
        "from_original": if inbound { phone.as_str() } else { ours },
        "to_e164": if inbound { ours } else { phone.as_str() },
        "to_original": if inbound { ours } else { phone.as_str() },
        "num_media": 0,
        "language": "en",
        "language_confidence": 0.95,
        "keyword": null,
        "status": state,
        "version": 3,
        "created_at": at.to_string(),
        "send_at": (!inbound).then(|| at.plus(HOUR).to_string()),
        "time_zone": "America/Los_Angeles",
        "raw_payload": null,
        "delivery_status": match (inbound, state) {
            (false, "submitted") => Some("delivered"),
            (false, "failed") => Some("undelivered"),
            _ => None,
        },
        "status_history": if final_outbound {
            json!([
                {"status": "queued", "at": at.to_string(), "source": "worker"},
                {"status": "sent", "at": at.to_string(), "source": "callback"},
                {"status": if failed { "undelivered" } else { "delivered" }, "at": at.to_string(),
                 "error_code": failed.then_some("30003"), "source": "callback"},
            ])
        } else {
            json!([])
        },
        "error_code": failed.then_some("30003"),
        "error_message": failed.then_some("Unreachable destination handset"),
        "attempts": u32::from(!inbound),
        "segments": 1,
        "encoding": "GSM-7",
        "workflow_type": "rent_reminder",
    }))
    .expect("a message")
}

fn data(now: Timestamp) -> (Vec<Item>, String) {
    let mut items = Vec::new();
    for i in 0..CONVERSATIONS {
        items.push(conversation(i, now, u64::from(i == 1) * 3));
    }
    // Conversations 0 (read) and 1 (three unread): a thread of inbound and delivered texts,
    // with one that failed.
    for c in [0, 1] {
        for n in 0..THREAD_MESSAGES {
            let at = now.minus(HOUR * (THREAD_MESSAGES - n) as u32);
            let inbound = n % 2 == 0;
            let state = match (inbound, n % 17 == 1) {
                (true, _) => "received",
                (false, true) => "failed",
                (false, false) => "submitted",
            };
            items.push(to_item(&message(c, at, inbound, state, n)));
        }
    }
    // The due index: scheduled, deferred and queued sends across conversations.
    for n in 0..PENDING {
        let at = now.minus(Duration::from_secs(60 * n as u64));
        let state = ["scheduled", "deferred", "queued"][n % 3];
        let mut m = message(n % CONVERSATIONS, at, false, state, 1_000 + n);
        let due = at.plus(HOUR);
        m.gsi2pk = Some(keys::due_gsi2pk(due, keys::due_shard(&m.message_id)));
        m.gsi2sk = Some(keys::due_gsi2sk(due, &m.message_id));
        items.push(to_item(&m));
    }
    // Failed sends and their FAILED entries.
    for n in 0..FAILED {
        let at = now.minus(Duration::from_secs(3_000 * n as u64));
        let m = message(n % CONVERSATIONS, at, false, "failed", 2_000 + n);
        items.push(
            [
                ("pk", AttributeValue::S(keys::FAILURES_PK.into())),
                ("sk", AttributeValue::S(keys::failure_sk(&m.message_id))),
                ("entity", AttributeValue::S(Entity::Failure.as_str().into())),
                ("message_pk", AttributeValue::S(m.pk.clone())),
                ("message_sk", AttributeValue::S(m.sk.clone())),
                ("failed_at", AttributeValue::S(at.to_string())),
                (
                    "expires_at",
                    AttributeValue::N((at.unix_seconds() + 30 * 86_400).to_string()),
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        );
        items.push(to_item(&m));
    }
    // Traffic in every hour of the last 31 days, in each month's partition.
    for h in 0..=31 * 24 {
        let text = now.minus(HOUR * h).to_string();
        let (month, day, hour) = (&text[..7], &text[8..10], text[11..13].parse().unwrap());
        let mut item: Item = [
            ("pk", AttributeValue::S(keys::stats_pk(month))),
            ("sk", AttributeValue::S(keys::stats_sk(day, hour))),
            ("entity", AttributeValue::S(Entity::Stats.as_str().into())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let n = |base: u32| AttributeValue::N((base + h % 7).to_string());
        for (name, value) in [
            ("inbound", n(40)),
            ("outbound", n(60)),
            ("sent", n(58)),
            ("delivered", n(55)),
            ("failed", n(3)),
            ("opt_outs", n(1)),
            ("opt_ins", n(0)),
            ("lang_en", n(25)),
            ("lang_es", n(12)),
            ("lang_unknown", n(3)),
            ("error_30003", n(2)),
            ("error_30005", n(1)),
        ] {
            item.insert(name.into(), value);
        }
        items.push(item);
    }
    // Rules; the first has a page of activity.
    let mut first = String::new();
    for r in 0..RULES {
        let spec = validate(
            json!({
                "name": format!("Rent reminder {r}"),
                "description": "Three days before rent is due, in the tenant's language.",
                "match": {"source": ["collections.monitor"], "detail-type": ["RentDue"],
                          "detail": {"days_before": [3], "status": ["unpaid"]}},
                "recipient": {"phone": "$.detail.phone"},
                "template": {"default": "Hi {{detail.first_name}}, your rent of {{detail.amount}} is due on {{detail.due_date}}.",
                             "es": "Hola {{detail.first_name}}, su renta de {{detail.amount}} vence el {{detail.due_date}}."},
                "dedupe": "rent-{{detail.lease_id}}",
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap_or_else(|e| panic!("the bench's rule is valid: {e:?}"));
        let rule = Rule {
            rule_id: ulid::Ulid::new().to_string(),
            version: 3,
            created_at: now.minus(HOUR * 24 * 30),
            updated_at: now.minus(HOUR * 24),
            spec,
        };
        let mut item: Item = [
            ("pk", keys::rule_pk(&rule.rule_id)),
            ("sk", keys::RULE_CURRENT_SK.to_owned()),
            ("entity", Entity::Rule.as_str().to_owned()),
            ("gsi1pk", keys::RULES_GSI1PK.to_owned()),
            ("gsi1sk", rule.rule_id.clone()),
            ("rule_id", rule.rule_id.clone()),
            ("rule", serde_json::to_string(&rule).unwrap()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), AttributeValue::S(v)))
        .collect();
        item.insert(
            "version".into(),
            AttributeValue::N(rule.version.to_string()),
        );
        items.push(item);
        if r == 0 {
            first = rule.rule_id.clone();
        }
    }
    for a in 0..ACTIVITY {
        let at = now.minus(HOUR * a as u32);
        let scheduled = a % 4 != 3;
        let activity = Activity {
            rule_id: first.clone(),
            rule_version: 3,
            at,
            event_time: at,
            event_id: ulid::Ulid::new().to_string(),
            source: "collections.monitor".into(),
            detail_type: "RentDue".into(),
            outcome: if scheduled {
                Outcome::Scheduled
            } else {
                Outcome::Deduplicated
            },
            dedupe_key: Some(format!("lease-{a}")),
            message_id: scheduled.then(|| ulid::Ulid::new().to_string()),
            state: scheduled.then_some(parley::pipeline::PipelineState::Scheduled),
            send_at: scheduled.then(|| at.plus(HOUR)),
            reason: None,
        };
        let mut item = to_item(&activity);
        item.insert(
            "pk".into(),
            AttributeValue::S(keys::rule_activity_pk(&first)),
        );
        item.insert(
            "sk".into(),
            AttributeValue::S(keys::rule_activity_sk(
                at,
                &activity.event_id,
                activity.outcome.as_str(),
            )),
        );
        item.insert(
            "entity".into(),
            AttributeValue::S(Entity::RuleActivity.as_str().into()),
        );
        items.push(item);
    }
    (items, first)
}

// ---------------------------------------------------------------------------------------------
// Requests, as API Gateway sends them.

fn request(method: &str, path_and_query: &str, cookie: &str, body: &str) -> Request {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("console.example.com"));
    headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    if !cookie.is_empty() {
        headers.insert("cookie", HeaderValue::from_str(cookie).unwrap());
    }
    if !body.is_empty() {
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
    }
    let request_id = ulid::Ulid::new().to_string();
    let event = apigw::event(&apigw::Incoming {
        method,
        path,
        raw_query: query,
        headers: &headers,
        body: body.as_bytes(),
        route_key: "$default",
        path_parameters: &[],
        source_ip: "203.0.113.7",
        request_id: &request_id,
    });
    apigw::request(&event, &request_id).expect("lambda_http decodes the event")
}

fn html(response: &Response<Body>) -> &str {
    match response.body() {
        Body::Text(t) => t,
        other => panic!("not a page: {other:?}"),
    }
}

fn silence_stdout() {
    if std::env::var_os("BENCH_KEEP_STDOUT").is_some() {
        return;
    }
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let _ = std::io::stdout().flush();
    let devnull = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .expect("/dev/null");
    // SAFETY: dup2 on two valid descriptors; fd 1 is replaced atomically.
    let rc = unsafe { libc::dup2(devnull.as_raw_fd(), libc::STDOUT_FILENO) };
    assert!(rc >= 0, "dup2 failed");
}

fn main() {
    silence_stdout();
    parley::telemetry::init();
    // As `#[tokio::main(flavor = "current_thread")]` in functions/console builds it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

/// One page's figures.
struct PageFigures {
    name: String,
    wall: Summary,
    cpu: Duration,
    requests: BTreeMap<String, u64>,
    bytes: usize,
}

async fn run() {
    let iterations = env_number("BENCH_ITERATIONS", 2_000);
    let warmup = env_number("BENCH_WARMUP", 200);
    let rust_log = std::env::var("RUST_LOG").unwrap_or_else(|_| "(unset: info)".into());
    let env = common::local_env();
    let api_key = env.require("LOCAL_API_KEY").unwrap().to_owned();
    let now = Timestamp::now();
    let (items, rule_id) = data(now);
    let item_count = items.len();
    let endpoint = Arc::new(Endpoint {
        table: Table { items },
        secret_response: json!({
            "ARN": format!("arn:aws:secretsmanager:us-east-1:000000000000:secret:{SECRET_ID}-AbCdEf"),
            "Name": SECRET_ID,
            "SecretString": common::secret_json(&env),
            "VersionId": "v1",
            "VersionStages": ["AWSCURRENT"],
            "CreatedDate": 1.7e9,
        })
        .to_string(),
        answers: Mutex::default(),
        counts: Mutex::default(),
    });
    let sdk = sdk_config(endpoint.clone()).await;
    let secrets = SecretStore::load(aws_sdk_secretsmanager::Client::new(&sdk), SECRET_ID.into())
        .await
        .expect("the secret loads from the in-process endpoint");
    let store = Store::new(aws_sdk_dynamodb::Client::new(&sdk), TABLE);
    let queue = JobQueue::new(aws_sdk_sqs::Client::new(&sdk), QUEUE_URL);
    let send = SendService::new(store.clone(), queue, Arc::new(Policy::default()));
    let handler = ConsoleHandler::new(store, Arc::new(secrets), send);

    // Sign in as an operator would, with the dev API key.
    let form = format!("api_key={}", parley::twilio::form::percent_encode(&api_key));
    let signed_in = handler
        .handle(request("POST", "/console/login", "", &form))
        .await;
    assert_eq!(signed_in.status(), 303, "sign-in: {:?}", signed_in.body());
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let inbox = handler
        .handle(request("GET", "/console", &cookie, ""))
        .await;
    // The inbox masks numbers: its rows are newest first, so conversations 0 and 1 lead.
    let references: Vec<String> = html(&inbox)
        .split("href=\"/console/conversations/")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect();
    assert_eq!(references.len(), 25, "an inbox page of 25 conversations");
    endpoint.take_counts();

    let pages: Vec<(String, String)> = vec![
        ("inbox (25 conversations)".into(), "/console".into()),
        (
            "search by number (1 conversation)".into(),
            format!(
                "/console?q={}",
                parley::twilio::form::percent_encode(&phone(7))
            ),
        ),
        (
            "thread (50 of 60 messages, read)".into(),
            format!("/console/conversations/{}", references[0]),
        ),
        (
            "thread (50 of 60 messages, 3 unread: + read mark)".into(),
            format!("/console/conversations/{}", references[1]),
        ),
        ("queue (50 pending)".into(), "/console/queue".into()),
        ("failed (50)".into(), "/console/queue?status=failed".into()),
        ("dashboard, 24 hours".into(), "/console/dashboard".into()),
        (
            "dashboard, 30 days".into(),
            "/console/dashboard?range=30d".into(),
        ),
        (format!("rules ({RULES})"), "/console/rules".into()),
        (
            "a rule with 20 activity entries".into(),
            format!("/console/rules/{rule_id}"),
        ),
    ];

    eprintln!("## console page benchmark");
    eprintln!();
    eprintln!("- machine: {}", common::machine());
    eprintln!("- table in memory: {item_count} items ({CONVERSATIONS} conversations, 2 x {THREAD_MESSAGES} thread messages, {PENDING} pending, {FAILED} failed + entries, {} hourly counters, {RULES} rules, {ACTIVITY} activity entries); bodies plain (no envelope)", 31 * 24 + 1);
    eprintln!(
        "- signed in with the dev API key (LOCAL_API_KEY); session checks read it through the access cache"
    );
    eprintln!("- RUST_LOG={rust_log}; handler stdout -> /dev/null unless BENCH_KEEP_STDOUT");
    eprintln!("- load average at the start: {}", common::load_average());
    eprintln!("- {warmup} warm-up + {iterations} timed requests per page (Instant), then {iterations} more for process CPU; tokio current-thread runtime as functions/console");
    eprintln!();

    let mut figures = Vec::new();
    for (name, path) in &pages {
        let call = || request("GET", path, &cookie, "");
        for _ in 0..warmup {
            let response = handler.handle(call()).await;
            assert_eq!(response.status(), 200, "{name}: {}", html(&response));
        }
        endpoint.take_counts();
        let mut samples = Vec::with_capacity(iterations);
        let mut bytes = 0;
        for _ in 0..iterations {
            let req = call();
            let started = Instant::now();
            let response = handler.handle(req).await;
            samples.push(started.elapsed());
            bytes = html(&response).len();
            black_box(response);
        }
        let requests = endpoint
            .take_counts()
            .into_iter()
            .map(|(op, n)| (op, n / iterations as u64))
            .collect();
        // Requests are built before the CPU clock starts, so only `handle` is on it.
        let reqs: Vec<Request> = (0..iterations).map(|_| call()).collect();
        let cpu_started = process_cpu();
        for req in reqs {
            black_box(handler.handle(req).await);
        }
        let cpu = (process_cpu() - cpu_started) / iterations as u32;
        endpoint.take_counts();
        figures.push(PageFigures {
            name: name.clone(),
            wall: Summary::of(&samples),
            cpu,
            requests,
            bytes,
        });
    }

    eprintln!(
        "| page | p50 µs | p99 µs | mean process CPU µs | AWS requests | HTML bytes | ≤ 5 ms CPU |"
    );
    eprintln!("|---|---:|---:|---:|---|---:|---|");
    let limit = Duration::from_millis(5);
    for f in &figures {
        let requests: Vec<String> = f
            .requests
            .iter()
            .map(|(op, n)| format!("{n} {}", op.rsplit('.').next().unwrap_or(op)))
            .collect();
        eprintln!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            f.name,
            micros(f.wall.p50),
            micros(f.wall.p99),
            micros(f.cpu),
            requests.join(", "),
            f.bytes,
            if f.cpu <= limit { "PASS" } else { "FAIL" }
        );
    }
    eprintln!();
    let worst = figures.iter().max_by_key(|f| f.cpu).unwrap();
    eprintln!(
        "console target ≤ 5 ms server CPU per page, I/O excluded: worst {} at {} µs -> {}",
        worst.name,
        micros(worst.cpu),
        if figures.iter().all(|f| f.cpu <= limit) {
            "PASS"
        } else {
            "FAIL"
        }
    );
    eprintln!("load average at the end: {}", common::load_average());
}
