//! Figures 1 and 2 of `docs/benchmarks.md`: the CPU `InboundSmsHandler::handle` spends on one
//! signed API Gateway v2 event with I/O taken out, its pure pieces, and the DynamoDB requests
//! each inbound message makes.
//!
//! I/O is taken out by giving the SDK an in-process HTTP client (`infallible_client_fn`) that
//! answers `TransactWriteItems` with `200 {}` and `GetSecretValue` with the dev secret at once;
//! everything above the socket (request serialization, SigV4 signing, the SDK's orchestrator,
//! timeouts and retry bookkeeping, response parsing) still runs.
//!
//! Environment: `BENCH_ITERATIONS` (default 20000), `BENCH_WARMUP` (default 2000),
//! `BENCH_ONLY=handler` (only the handler timings), `BENCH_KEEP_STDOUT=1` (do not send the
//! handler's stdout to /dev/null), `RUST_LOG` (the handler's tracing filter, as in Lambda).

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::{Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_dynamodb::config::Credentials;
use aws_smithy_http_client::test_util::infallible_client_fn;
use aws_smithy_types::body::SdkBody;
use base64::Engine;
use common::{env_number, micros, process_cpu, Summary};
use http::{HeaderMap, HeaderName, HeaderValue};
use lambda_http::{Body, Request, Response};
use parley::config::{Replies, ReplyTexts, WebhookConfig};
use parley::consent::Keyword;
use parley::handlers::inbound_sms::{InboundSmsHandler, ROUTE};
use parley::language;
use parley::metrics::Metrics;
use parley::secrets::SecretStore;
use parley::store::{InboundRecord, Store};
use parley::telemetry::Pseudonymizer;
use parley::twilio::form::form_encode;
use parley::twilio::signature::{self, Payload};
use parley::twilio::{Form, InboundSms};
use parley_local::apigw;
use parley_local::env::{repo_root, LocalEnv};
use serde_json::{json, Value};

const TABLE: &str = "parley-bench";
const SECRET_ID: &str = "parley/bench";
const STOP_BODY: &str = "STOP";

// ---------------------------------------------------------------------------------------------
// The in-process AWS endpoint.

const ANSWER_OK: u8 = 0;
const ANSWER_DUPLICATE: u8 = 1;
const ANSWER_CONFLICT: u8 = 2;

/// What the in-process HTTP client was asked, and how it answers `TransactWriteItems`.
#[derive(Default)]
struct Endpoint {
    transact_write_items: AtomicU64,
    other_dynamodb: AtomicU64,
    get_secret_value: AtomicU64,
    other: AtomicU64,
    answer: AtomicU8,
    /// When set, the last TransactWriteItems body is kept (outside the timed loops only).
    capture: AtomicBool,
    last_transaction: Mutex<Option<Vec<u8>>>,
}

impl Endpoint {
    fn respond(
        &self,
        secret_response: &str,
        req: http::Request<SdkBody>,
    ) -> http::Response<SdkBody> {
        let target = req
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let (status, content_type, body): (u16, &str, String) = match target {
            "DynamoDB_20120810.TransactWriteItems" => {
                self.transact_write_items.fetch_add(1, Relaxed);
                if self.capture.load(Relaxed) {
                    *self.last_transaction.lock().unwrap() = req.body().bytes().map(<[u8]>::to_vec);
                }
                match self.answer.load(Relaxed) {
                    ANSWER_OK => (200, "application/x-amz-json-1.0", "{}".into()),
                    ANSWER_DUPLICATE => (
                        400,
                        "application/x-amz-json-1.0",
                        cancelled("ConditionalCheckFailed"),
                    ),
                    _ => (
                        400,
                        "application/x-amz-json-1.0",
                        cancelled("TransactionConflict"),
                    ),
                }
            }
            // An opt-out or opt-in reads the number's consent item first: none here.
            "DynamoDB_20120810.GetItem" => {
                self.other_dynamodb.fetch_add(1, Relaxed);
                (200, "application/x-amz-json-1.0", "{}".into())
            }
            "secretsmanager.GetSecretValue" => {
                self.get_secret_value.fetch_add(1, Relaxed);
                (
                    200,
                    "application/x-amz-json-1.1",
                    secret_response.to_owned(),
                )
            }
            t if t.starts_with("DynamoDB_20120810.") => {
                self.other_dynamodb.fetch_add(1, Relaxed);
                (
                    400,
                    "application/x-amz-json-1.0",
                    r#"{"__type":"com.amazon.coral.service#UnknownOperationException"}"#.into(),
                )
            }
            _ => {
                self.other.fetch_add(1, Relaxed);
                (
                    400,
                    "application/x-amz-json-1.1",
                    r#"{"__type":"UnknownOperationException"}"#.into(),
                )
            }
        };
        http::Response::builder()
            .status(status)
            .header("content-type", content_type)
            .header("x-amzn-requestid", "00000000-0000-0000-0000-000000000000")
            .body(SdkBody::from(body))
            .expect("a valid response")
    }

    fn counts(&self) -> [u64; 4] {
        [
            self.transact_write_items.load(Relaxed),
            self.other_dynamodb.load(Relaxed),
            self.get_secret_value.load(Relaxed),
            self.other.load(Relaxed),
        ]
    }
}

/// A `TransactionCanceledException` whose first item failed with `first` (the SID guard).
fn cancelled(first: &str) -> String {
    json!({
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "Message": format!("Transaction cancelled, please refer cancellation reasons for specific reasons [{first}, None, None]"),
        "CancellationReasons": [{"Code": first}, {"Code": "None"}, {"Code": "None"}],
    })
    .to_string()
}

/// The functions' SDK configuration (`parley::aws::builder`: timeouts, retries, behavior
/// version, stalled-stream protection), with the in-process HTTP client, static credentials as
/// Lambda's environment gives, and no endpoint override.
async fn sdk_config(endpoint: Arc<Endpoint>, secret_json: &str) -> SdkConfig {
    let secret_response = json!({
        "ARN": format!("arn:aws:secretsmanager:us-east-1:000000000000:secret:{SECRET_ID}-AbCdEf"),
        "Name": SECRET_ID,
        "SecretString": secret_json,
        "VersionId": "v1",
        "VersionStages": ["AWSCURRENT"],
        "CreatedDate": 1.7e9,
    })
    .to_string();
    let http = infallible_client_fn(move |req| endpoint.respond(&secret_response, req));
    let mut config = parley::aws::builder()
        .http_client(http)
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "bench",
        )));
    config.set_endpoint_url(None);
    config.build()
}

// ---------------------------------------------------------------------------------------------
// Signed API Gateway v2 events.

/// The Twilio request every event is made from: `events/inbound-sms.json` when it exists (its
/// headers, source IP and form body), otherwise the same request built in.
struct Template {
    source: String,
    headers: Vec<(String, String)>,
    source_ip: String,
    body: String,
    sid: String,
}

const BUILT_IN_BODY: &str = "ToCountry=US&ToState=CA&SmsMessageSid=SM5f0c3ad1b2e94c7d8a6f1e2d3c4b5a69&NumMedia=0&ToCity=SAN+FRANCISCO&FromZip=94105&SmsSid=SM5f0c3ad1b2e94c7d8a6f1e2d3c4b5a69&FromState=CA&SmsStatus=received&FromCity=SAN+FRANCISCO&Body=Hola%2C+ya+pagu%C3%A9+la+renta+de+este+mes.+%C2%BFPueden+confirmar%3F&FromCountry=US&To=%2B15005550006&ToZip=94105&NumSegments=1&MessageSid=SM5f0c3ad1b2e94c7d8a6f1e2d3c4b5a69&AccountSid=AC00000000000000000000000000000000&From=%2B14155552671&ApiVersion=2010-04-01";

impl Template {
    fn load() -> Self {
        let path = repo_root().join("events/inbound-sms.json");
        let (source, headers, source_ip, body) = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let event: Value =
                    serde_json::from_str(&text).expect("events/inbound-sms.json is JSON");
                let headers = event["headers"]
                    .as_object()
                    .expect("the event has headers")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect();
                let raw = event["body"].as_str().expect("the event has a body");
                let body = if event["isBase64Encoded"].as_bool().unwrap_or(false) {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(raw)
                        .expect("the body is base64");
                    String::from_utf8(bytes).expect("the body is UTF-8")
                } else {
                    raw.to_owned()
                };
                let ip = event["requestContext"]["http"]["sourceIp"]
                    .as_str()
                    .unwrap_or("54.172.60.0")
                    .to_owned();
                ("events/inbound-sms.json".to_owned(), headers, ip, body)
            }
            Err(_) => (
                "built-in copy of a Twilio inbound SMS".to_owned(),
                [
                    ("accept", "*/*"),
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("host", "127.0.0.1:3000"),
                    (
                        "i-twilio-idempotency-token",
                        "5f0c3ad1-b2e9-4c7d-8a6f-1e2d3c4b5a69",
                    ),
                    ("user-agent", "TwilioProxy/1.1"),
                    ("x-forwarded-proto", "https"),
                    ("x-home-region", "us1"),
                ]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
                "54.172.60.0".to_owned(),
                BUILT_IN_BODY.to_owned(),
            ),
        };
        let sid = Form::parse(body.as_bytes())
            .expect("the template body is a form")
            .get("MessageSid")
            .expect("the template has a MessageSid")
            .to_owned();
        Self {
            source,
            headers,
            source_ip,
            body,
            sid,
        }
    }

    /// The form body with `sid` for its MessageSid (and SmsSid, SmsMessageSid) and, when given,
    /// `text` (already form-encoded) as its Body.
    fn body(&self, sid: &str, text: Option<&str>) -> String {
        let body = self.body.replace(&self.sid, sid);
        match text {
            None => body,
            Some(text) => body
                .split('&')
                .map(|pair| {
                    if pair.starts_with("Body=") {
                        format!("Body={text}")
                    } else {
                        pair.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("&"),
        }
    }
}

/// Signs form bodies as Twilio does and wraps them in API Gateway v2 events built by the local
/// gateway's own `apigw::event`, decoded by `lambda_http` as the Lambda runtime does.
struct Signer {
    template: Template,
    token: String,
    url: String,
}

impl Signer {
    fn event(&self, body: &str, request_id: &str) -> Value {
        let form = Form::parse(body.as_bytes()).expect("a form body");
        let signature = signature::compute(&self.token, &self.url, form.pairs());
        let mut headers = HeaderMap::new();
        for (k, v) in &self.template.headers {
            if k == "x-twilio-signature" || k == "content-length" {
                continue;
            }
            headers.append(
                HeaderName::from_bytes(k.as_bytes()).expect("a header name"),
                HeaderValue::from_str(v).expect("a header value"),
            );
        }
        headers.insert(
            "x-twilio-signature",
            HeaderValue::from_str(&signature).unwrap(),
        );
        headers.insert("content-length", HeaderValue::from(body.len()));
        apigw::event(&apigw::Incoming {
            method: "POST",
            path: ROUTE,
            raw_query: "",
            headers: &headers,
            body: body.as_bytes(),
            route_key: &format!("POST {ROUTE}"),
            path_parameters: &[],
            source_ip: &self.template.source_ip,
            request_id,
        })
    }

    /// Characters in the template's message body.
    fn plain_chars(&self) -> usize {
        Form::parse(self.template.body.as_bytes())
            .ok()
            .and_then(|f| f.get("Body").map(|b| b.chars().count()))
            .unwrap_or(0)
    }

    fn request(&self, body: &str) -> Request {
        let request_id = ulid::Ulid::new().to_string();
        apigw::request(&self.event(body, &request_id), &request_id)
            .expect("lambda_http decodes the event")
    }
}

// ---------------------------------------------------------------------------------------------
// Timing.

fn time_sync<T>(warmup: usize, n: usize, mut f: impl FnMut() -> T) -> Summary {
    for _ in 0..warmup {
        drop(black_box(f()));
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        drop(black_box(f()));
        samples.push(started.elapsed());
    }
    Summary::of(&samples)
}

fn row(name: &str, s: &Summary) {
    eprintln!(
        "| {name} | {} | {} | {} | {} | {} |",
        micros(s.mean),
        micros(s.p50),
        micros(s.p99),
        micros(s.max),
        s.n
    );
}

fn header(first: &str) {
    eprintln!("| {first} | mean µs | p50 µs | p99 µs | max µs | n |");
    eprintln!("|---|---:|---:|---:|---:|---:|");
}

/// Handler timings for one kind of message; each request is checked to have answered 200 and to
/// have made exactly one TransactWriteItems request, `reads` other DynamoDB requests (the
/// consent item's GetItem) and nothing else.
async fn time_handler(
    handler: &InboundSmsHandler,
    signer: &Signer,
    endpoint: &Endpoint,
    text: Option<&str>,
    reads: u64,
    warmup: usize,
    n: usize,
) -> (Summary, Summary, [u64; 4]) {
    let base = ulid::Ulid::new().0;
    let mut samples = Vec::with_capacity(n);
    let mut cpu = Vec::with_capacity(n);
    let start_counts = endpoint.counts();
    for i in 0..warmup + n {
        let sid = format!("SM{:032x}", base.wrapping_add(i as u128));
        let req = signer.request(&signer.template.body(&sid, text));
        let before = endpoint.counts();
        let cpu_started = process_cpu();
        let started = Instant::now();
        let response = handler.handle(req).await;
        let elapsed = started.elapsed();
        let cpu_elapsed = process_cpu().saturating_sub(cpu_started);
        let after = endpoint.counts();
        check_twiml(&response);
        assert_eq!(
            [
                after[0] - before[0],
                after[1] - before[1],
                after[2] - before[2],
                after[3] - before[3]
            ],
            [1, reads, 0, 0],
            "one TransactWriteItems, the expected reads and nothing else per request"
        );
        if i >= warmup {
            samples.push(elapsed);
            cpu.push(cpu_elapsed);
        }
    }
    let end = endpoint.counts();
    let total = [0, 1, 2, 3].map(|k| end[k] - start_counts[k]);
    (Summary::of(&samples), Summary::of(&cpu), total)
}

/// The record the handler would build for `sms` (ids, time and classification as it does).
fn record<'a>(sms: &'a InboundSms, raw_payload: &'a str) -> InboundRecord<'a> {
    InboundRecord {
        sms,
        raw_payload,
        message_id: ulid::Ulid::new().to_string(),
        new_conversation_id: ulid::Ulid::new().to_string(),
        received_at: parley::time::now_rfc3339(),
        detection: language::detect(&sms.body),
        keyword: parley::consent::classify(&sms.body),
        trace: None,
    }
}

/// Handles one message with the endpoint keeping the transaction it receives; returns the
/// number of items in that transaction.
async fn transaction_items(
    handler: &InboundSmsHandler,
    signer: &Signer,
    endpoint: &Endpoint,
    text: Option<&str>,
) -> usize {
    endpoint.capture.store(true, Relaxed);
    let sid = format!("SM{:032x}", ulid::Ulid::new().0);
    let response = handler
        .handle(signer.request(&signer.template.body(&sid, text)))
        .await;
    endpoint.capture.store(false, Relaxed);
    check_twiml(&response);
    let last = endpoint
        .last_transaction
        .lock()
        .unwrap()
        .take()
        .expect("a transaction was sent");
    let v: Value = serde_json::from_slice(&last).unwrap();
    v["TransactItems"].as_array().map_or(0, Vec::len)
}

fn check_twiml(response: &Response<Body>) {
    assert_eq!(response.status(), 200, "the handler answered {response:?}");
    match response.body() {
        Body::Text(t) => assert!(t.contains("<Response"), "not TwiML: {t}"),
        other => panic!("not TwiML: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------

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
    let iterations = env_number("BENCH_ITERATIONS", 20_000);
    let warmup = env_number("BENCH_WARMUP", 2_000);
    let only_handler = std::env::var("BENCH_ONLY").is_ok_and(|v| v == "handler");
    let rust_log = std::env::var("RUST_LOG").unwrap_or_else(|_| "(unset: info)".into());

    let env: LocalEnv = common::local_env();
    let secret_json = common::secret_json(&env);
    let secrets: parley::secrets::Secrets = serde_json::from_str(&secret_json).unwrap();
    let public_base_url = env
        .require("PUBLIC_BASE_URL")
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let config = WebhookConfig {
        public_base_url: public_base_url.clone(),
        replies: Replies::with_english(ReplyTexts {
            help: env
                .get("HELP_REPLY_TEXT")
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
            opt_out: env
                .get("OPT_OUT_REPLY_TEXT")
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
            opt_in: env
                .get("OPT_IN_REPLY_TEXT")
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
        }),
    };
    let signer = Signer {
        template: Template::load(),
        token: secrets.twilio_auth_token.clone(),
        url: config.public_url(ROUTE, None),
    };
    let stop = form_encode(STOP_BODY);

    // As `#[tokio::main]` in functions/inbound-sms builds it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let endpoint = Arc::new(Endpoint::default());

    runtime.block_on(run(Setup {
        iterations,
        warmup,
        only_handler,
        rust_log,
        secret_json,
        secrets,
        config,
        signer,
        stop,
        endpoint,
    }));
}

/// Everything the benchmark needs, decided before the runtime starts.
struct Setup {
    iterations: usize,
    warmup: usize,
    only_handler: bool,
    rust_log: String,
    secret_json: String,
    secrets: parley::secrets::Secrets,
    config: WebhookConfig,
    signer: Signer,
    stop: String,
    endpoint: Arc<Endpoint>,
}

async fn run(setup: Setup) {
    let Setup {
        iterations,
        warmup,
        only_handler,
        rust_log,
        secret_json,
        secrets,
        config,
        signer,
        stop,
        endpoint,
    } = setup;
    let sdk = sdk_config(endpoint.clone(), &secret_json).await;
    let secret_store =
        SecretStore::load(aws_sdk_secretsmanager::Client::new(&sdk), SECRET_ID.into())
            .await
            .expect("the secret loads from the in-process endpoint");
    assert_eq!(
        endpoint.counts(),
        [0, 0, 1, 0],
        "one GetSecretValue at init"
    );
    let store = Store::new(aws_sdk_dynamodb::Client::new(&sdk), TABLE);
    let handler = InboundSmsHandler::new(store.clone(), Arc::new(secret_store), config.clone());

    eprintln!("## inbound-sms handler benchmark");
    eprintln!();
    eprintln!("- machine: {}", common::machine());
    eprintln!(
        "- event: {} re-signed per request with a unique MessageSid; url {}",
        signer.template.source, signer.url
    );
    eprintln!("- secret: two auth tokens (current and previous), so verify computes 4 HMAC-SHA1 (2 tokens x 2 URL forms)");
    eprintln!(
        "- RUST_LOG={rust_log}; handler stdout (EMF lines{}) -> {}",
        if rust_log == "off" {
            ""
        } else {
            ", JSON log lines"
        },
        if std::env::var_os("BENCH_KEEP_STDOUT").is_some() {
            "kept"
        } else {
            "/dev/null"
        }
    );
    eprintln!("- load average at the start: {}", common::load_average());
    eprintln!("- {warmup} warm-up + {iterations} timed requests each; tokio multi-thread runtime as #[tokio::main]");
    eprintln!();

    // Figure 1: the whole handler.
    header("InboundSmsHandler::handle (I/O stubbed in-process)");
    let plain_name = format!(
        "plain message (Spanish, {} chars), Recorded",
        signer.plain_chars()
    );
    let stop_name = "STOP keyword (consent record added), Recorded";
    let (plain, plain_cpu, plain_counts) =
        time_handler(&handler, &signer, &endpoint, None, 0, warmup, iterations).await;
    let (keyword, keyword_cpu, stop_counts) = time_handler(
        &handler,
        &signer,
        &endpoint,
        Some(&stop),
        0,
        warmup,
        iterations,
    )
    .await;
    row(&format!("{plain_name}: wall time"), &plain);
    row(&format!("{plain_name}: process CPU time"), &plain_cpu);
    row(&format!("{stop_name}: wall time"), &keyword);
    row(&format!("{stop_name}: process CPU time"), &keyword_cpu);
    row(
        "(clock overhead: Instant pair + process CPU clock pair)",
        &time_sync(warmup, iterations, || {
            let c = process_cpu();
            let t = Instant::now();
            (t.elapsed(), process_cpu().saturating_sub(c))
        }),
    );
    eprintln!();
    let verdict = |s: &Summary| {
        let limit = Duration::from_micros(100);
        match (s.p50 < limit, s.p99 < limit) {
            (true, true) => "PASS",
            (true, false) => "PASS at p50, FAIL at p99",
            _ => "FAIL",
        }
    };
    for (name, s) in [("wall", &plain), ("process CPU", &plain_cpu)] {
        eprintln!(
            "handler target < 100 µs warm, plain message, {name}: mean {} µs, p50 {} µs, p99 {} µs -> {}",
            micros(s.mean),
            micros(s.p50),
            micros(s.p99),
            verdict(s)
        );
    }
    eprintln!("load average at the end: {}", common::load_average());
    eprintln!();
    if only_handler {
        return;
    }

    // Where the time goes.
    let pieces = 2_000;
    let n = iterations;
    let body = signer
        .template
        .body(&format!("SM{:032x}", ulid::Ulid::new().0), None);
    let stop_body = signer
        .template
        .body(&format!("SM{:032x}", ulid::Ulid::new().0), Some(&stop));
    let request_id = ulid::Ulid::new().to_string();
    let event_json = signer.event(&body, &request_id).to_string();
    let form = Form::parse(body.as_bytes()).unwrap();
    let stop_form = Form::parse(stop_body.as_bytes()).unwrap();
    let sig = signature::compute(&signer.token, &signer.url, form.pairs());
    let sms = InboundSms::from_form(&form).unwrap();
    let stop_sms = InboundSms::from_form(&stop_form).unwrap();
    let plain_record = record(&sms, &body);
    let stop_record = record(&stop_sms, &body);
    let pseudonyms = Pseudonymizer::new(&secrets.log_hmac_key);

    eprintln!("### Pieces (each timed per call; the timer itself costs the first row)");
    eprintln!();
    header("piece");
    row(
        "(timer overhead: Instant::now + elapsed)",
        &time_sync(pieces, n, || ()),
    );
    row(
        "lambda_http::request::from_str (event JSON -> Request; runtime, before handle)",
        &time_sync(pieces, n, || {
            lambda_http::request::from_str(&event_json).unwrap()
        }),
    );
    row(
        "Form::parse",
        &time_sync(pieces, n, || Form::parse(body.as_bytes()).unwrap()),
    );
    row(
        "signature::verify (2 tokens x 2 URL forms)",
        &time_sync(pieces, n, || {
            assert!(signature::verify(
                &secrets.twilio_tokens(),
                &signer.url,
                Payload::Form(form.pairs()),
                &sig
            ));
        }),
    );
    row(
        "InboundSms::from_form",
        &time_sync(pieces, n, || InboundSms::from_form(&form).unwrap()),
    );
    let from = form.get("From").unwrap();
    row(
        "  of which phone::Address::parse (From; from_form parses From and To)",
        &time_sync(pieces, n, || {
            parley::phone::Address::parse(black_box(from)).unwrap()
        }),
    );
    row(
        "Keyword::classify (plain)",
        &time_sync(pieces, n, || Keyword::classify(black_box(&sms.body))),
    );
    row(
        "Keyword::classify (STOP)",
        &time_sync(pieces, n, || Keyword::classify(black_box(&stop_sms.body))),
    );
    row(
        "language::detect (plain, whatlang)",
        &time_sync(pieces, n, || language::detect(black_box(&sms.body))),
    );
    row(
        "language::detect (STOP)",
        &time_sync(pieces, n, || language::detect(black_box(&stop_sms.body))),
    );
    row(
        "Store::inbound_write_items (plain: 3 items)",
        &time_sync(pieces, n, || {
            store.inbound_write_items(&plain_record).unwrap()
        }),
    );
    row(
        "Store::inbound_write_items (STOP: 4 items)",
        &time_sync(pieces, n, || {
            store.inbound_write_items(&stop_record).unwrap()
        }),
    );
    row(
        "Pseudonymizer::pseudonym",
        &time_sync(pieces, n, || pseudonyms.pseudonym(&sms.from.e164)),
    );
    row(
        "ids and time (2 x Ulid::new + now_rfc3339)",
        &time_sync(pieces, n, || {
            (
                ulid::Ulid::new().to_string(),
                ulid::Ulid::new().to_string(),
                parley::time::now_rfc3339(),
            )
        }),
    );
    row(
        "Metrics::to_line (Received/OptOuts/OptIns line)",
        &time_sync(pieces, n, || {
            Metrics::new("inbound-sms")
                .dimension("channel", "sms")
                .count("Received", 1)
                .count("OptOuts", 0)
                .count("OptIns", 0)
                .to_line()
        }),
    );
    let mut samples = Vec::with_capacity(n);
    for i in 0..pieces + n {
        let started = Instant::now();
        let outcome = store.record_inbound(&plain_record).await.unwrap();
        let elapsed = started.elapsed();
        black_box(outcome);
        if i >= pieces {
            samples.push(elapsed);
        }
    }
    row(
        "Store::record_inbound (items + SDK serialize, SigV4, in-process HTTP, parse)",
        &Summary::of(&samples),
    );
    eprintln!();

    // Figure 2: DynamoDB round trips per message.
    eprintln!("### DynamoDB requests per handled request (counted by the in-process HTTP client)");
    eprintln!();
    eprintln!("| message | handled | TransactWriteItems | other DynamoDB | GetSecretValue | other | items in the transaction | answer |");
    eprintln!("|---|---:|---:|---:|---:|---:|---:|---|");
    let per =
        |total: [u64; 4], handled: usize| total.map(|c| format!("{}", c as f64 / handled as f64));
    let handled = warmup + iterations;
    let [t, d, s, o] = per(plain_counts, handled);
    eprintln!(
        "| plain | {handled} | {t} | {d} | {s} | {o} | {} | 200 TwiML |",
        transaction_items(&handler, &signer, &endpoint, None).await
    );
    let [t, d, s, o] = per(stop_counts, handled);
    eprintln!(
        "| STOP | {handled} | {t} | {d} | {s} | {o} | {} | 200 TwiML |",
        transaction_items(&handler, &signer, &endpoint, Some(&stop)).await
    );

    // A duplicate: the SID guard's condition fails and DynamoDB cancels the transaction.
    endpoint.answer.store(ANSWER_DUPLICATE, Relaxed);
    let duplicates = 1_000;
    let sid = format!("SM{:032x}", ulid::Ulid::new().0);
    let before = endpoint.counts();
    for _ in 0..duplicates {
        let response = handler
            .handle(signer.request(&signer.template.body(&sid, None)))
            .await;
        check_twiml(&response);
    }
    let after = endpoint.counts();
    let duplicate_counts = [0, 1, 2, 3].map(|k| after[k] - before[k]);
    let [t, d, s, o] = per(duplicate_counts, duplicates);
    eprintln!("| duplicate MessageSid (TransactionCanceledException, ConditionalCheckFailed first) | {duplicates} | {t} | {d} | {s} | {o} | 3 (cancelled) | 200 TwiML |");

    // Not asked for, but the bound matters: a conflict is retried by the store.
    endpoint.answer.store(ANSWER_CONFLICT, Relaxed);
    let before = endpoint.counts();
    let started = Instant::now();
    let response = handler
        .handle(
            signer.request(
                &signer
                    .template
                    .body(&format!("SM{:032x}", ulid::Ulid::new().0), None),
            ),
        )
        .await;
    let elapsed = started.elapsed();
    let after = endpoint.counts();
    let [t, d, s, o] = per([0, 1, 2, 3].map(|k| after[k] - before[k]), 1);
    eprintln!(
        "| TransactionConflict on every attempt (worst case) | 1 | {t} | {d} | {s} | {o} | 3 (cancelled) | {} after {} ms (backoff sleeps) |",
        response.status().as_u16(),
        common::millis(elapsed)
    );
    endpoint.answer.store(ANSWER_OK, Relaxed);
    eprintln!();
    let per_request = |c: [u64; 4], handled: usize| (c[0] + c[1]) as f64 / handled as f64;
    let (p, k, u) = (
        per_request(plain_counts, handled),
        per_request(stop_counts, handled),
        per_request(duplicate_counts, duplicates),
    );
    eprintln!(
        "DynamoDB round trips per inbound message, target 1: plain {p}, STOP {k}, duplicate {u} -> {}",
        if [p, k, u] == [1.0, 1.0, 1.0] { "PASS" } else { "FAIL" }
    );
}
