//! `parley-cost-bench`: what one inbound text and one sent message ask of AWS (docs/cost.md).
//!
//! Starts the local stack (`parley-local up`, from the same target directory) on its own ports
//! with the emulator's request counter on (`PARLEY_EMULATOR_COUNTS=1`, infra/emulator.py), the
//! dispatcher's and the reconciliation's schedules pushed out of the run (they cost per minute,
//! not per message) and quiet hours open. Then two phases, each from zeroed counters:
//!
//! - `inbound`: N signed webhooks from the numbers of one tenant registered at the Collections
//!   Monitor stub (`--texts-per-number` texts each), until every text is stored, the stream
//!   processor has run, `sms.received` is on the bus and the event router's queue is drained;
//! - `send`: N `POST /sms/send` to the same numbers with the dev send key, until every message
//!   is `delivered` in the table (the Twilio sandbox's signed status callbacks included).
//!
//! A phase ends when every message has arrived and the counters (idle polls aside) have not
//! moved for `--settle-s` seconds. For each phase the report gives the AWS requests by service
//! and operation, DynamoDB request units, the event sources' batches (Lambda invocations), the
//! gateway's invocations by route and the log bytes each function wrote (JSON lines and EMF),
//! each per message; the whole snapshot goes to `cost-bench.json` next to this binary.
//!
//! The benchmark's own reads (is it delivered yet?) carry the user agent `app/parley-cost-bench`,
//! which the counter skips. Options: `--texts N` (200), `--sends N` (200),
//! `--texts-per-number K` (4), `--settle-s S` (3), `--gateway-port`, `--aws-port`,
//! `--twilio-port`, `--monitor-port` (3600, 5100, 3601, 3602).

use std::collections::BTreeMap;
use std::io::{BufRead, Seek};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use parley::delivery::DeliveryStatus;
use parley::phone::Address;
use parley::store::{keys, Store};
use parley::twilio::signature;
use parley_local::env::LocalEnv;
use serde_json::{json, Value};

const BODY: &str = "Hola, ya pagué la renta de este mes, gracias";
const SEND_BODY: &str = "Your payment for this month was received. Thank you!";

struct Args {
    texts: usize,
    sends: usize,
    per_number: usize,
    settle: Duration,
    ports: [(&'static str, u16); 4],
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        texts: 200,
        sends: 200,
        per_number: 4,
        settle: Duration::from_secs(3),
        ports: [
            ("LOCAL_GATEWAY_PORT", 3600),
            ("LOCAL_AWS_PORT", 5100),
            ("LOCAL_TWILIO_PORT", 3601),
            ("LOCAL_MONITOR_PORT", 3602),
        ],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let n = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
        let port = match flag.as_str() {
            "--texts" => {
                args.texts = n(&value)? as usize;
                continue;
            }
            "--sends" => {
                args.sends = n(&value)? as usize;
                continue;
            }
            "--texts-per-number" => {
                args.per_number = (n(&value)? as usize).max(1);
                continue;
            }
            "--settle-s" => {
                args.settle = Duration::from_secs(n(&value)?);
                continue;
            }
            "--gateway-port" => 0,
            "--aws-port" => 1,
            "--twilio-port" => 2,
            "--monitor-port" => 3,
            other => return Err(format!("unknown option {other} (see the source's header)")),
        };
        args.ports[port].1 = n(&value)? as u16;
    }
    Ok(args)
}

/// The local stack as a child process; stopped (SIGTERM, then waited for) when dropped.
struct StackProcess(Child);

impl Drop for StackProcess {
    fn drop(&mut self) {
        // SIGTERM, so the stack stops the emulator it started (a kill would orphan it).
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn start_stack(dir: &Path, log: &Path, err: &Path) -> Result<StackProcess, String> {
    let binary = dir.join("parley-local");
    let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let errors = std::fs::File::create(err).map_err(|e| format!("{}: {e}", err.display()))?;
    let child = Command::new(&binary)
        .arg("up")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(errors)
        .spawn()
        .map_err(|e| {
            format!(
                "{}: {e} (build it: cargo build -p parley-local)",
                binary.display()
            )
        })?;
    let mut stack = StackProcess(child);
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = stack.0.try_wait() {
            let why = std::fs::read_to_string(err).unwrap_or_default();
            return Err(format!("the local stack exited ({status}): {why}"));
        }
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.lines().any(|l| l.starts_with("ready: ")) {
            return Ok(stack);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err(format!(
        "the local stack was not ready in 120 s; see {} and {}",
        log.display(),
        err.display()
    ))
}

struct Bench {
    http: reqwest::Client,
    env: LocalEnv,
    gateway: String,
    aws: String,
    store: Store,
    numbers: Vec<String>,
    per_number: usize,
    settle: Duration,
}

impl Bench {
    async fn counts(&self) -> Result<Value, String> {
        let resp = self
            .http
            .get(format!("{}/_parley/counts", self.aws))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        resp.json().await.map_err(|e| e.to_string())
    }

    async fn reset(&self) -> Result<(), String> {
        self.http
            .post(format!("{}/_parley/counts/reset", self.aws))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Waits until `done` holds and the counters, idle polls aside, stop moving.
    async fn settle<F>(&self, what: &str, mut done: F) -> Result<Value, String>
    where
        F: FnMut(&Value) -> bool,
    {
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut last = String::new();
        let mut since = Instant::now();
        loop {
            let counts = self.counts().await?;
            let busy = busy_fingerprint(&counts);
            if busy != last {
                last = busy;
                since = Instant::now();
            } else if done(&counts) && since.elapsed() >= self.settle {
                return Ok(counts);
            }
            if Instant::now() > deadline {
                return Err(format!("{what}: not settled within 600 s"));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn inbound(&self, n: usize) -> Result<Value, String> {
        let url = format!(
            "{}{}",
            self.env.require("PUBLIC_BASE_URL")?,
            parley::handlers::inbound_sms::ROUTE
        );
        let token = self.env.require("LOCAL_TWILIO_AUTH_TOKEN")?;
        for i in 0..n {
            let from = &self.numbers[(i / self.per_number) % self.numbers.len()];
            let sid = format!("SM{}", &format!("{:032x}", ulid::Ulid::new().0)[..32]);
            let params: Vec<(String, String)> = [
                ("MessageSid", sid.as_str()),
                ("AccountSid", self.env.require("LOCAL_TWILIO_ACCOUNT_SID")?),
                ("From", from.as_str()),
                ("To", self.env.require("TWILIO_FROM_NUMBER")?),
                ("Body", BODY),
                ("NumMedia", "0"),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
            let sig = signature::compute(token, &url, &params);
            let resp = self
                .http
                .post(format!(
                    "{}{}",
                    self.gateway,
                    parley::handlers::inbound_sms::ROUTE
                ))
                .header("X-Twilio-Signature", sig)
                .form(&params)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("webhook {i}: {}", resp.status()));
            }
        }
        self.settle("inbound", |c| {
            let events = entries(c, "events", "PutEvents");
            let stored = dynamodb_ok(c, "TransactWriteItems");
            events >= n as f64 && stored >= n as f64 && queues_drained(c)
        })
        .await
    }

    async fn send(&self, n: usize) -> Result<Value, String> {
        let key = self.env.require("LOCAL_SEND_API_KEY")?;
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let to = self.numbers[(i / self.per_number) % self.numbers.len()].clone();
            let resp = self
                .http
                .post(format!(
                    "{}{}",
                    self.gateway,
                    parley::handlers::send_sms::ROUTE
                ))
                .bearer_auth(key)
                .json(&json!({"to": to, "body": SEND_BODY}))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if status.as_u16() != 202 {
                return Err(format!("send {i}: {status} {body}"));
            }
            let id = body["message_id"]
                .as_str()
                .ok_or_else(|| format!("send {i}: no message_id in {body}"))?;
            ids.push((to, id.to_owned()));
        }
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut pending = ids;
        while !pending.is_empty() {
            let mut still = Vec::new();
            for (to, id) in pending {
                let address = Address::parse(&to).map_err(|e| e.to_string())?;
                let pk = keys::conversation_pk(address.channel, &address.e164);
                let message = self
                    .store
                    .message(&pk, &keys::message_sk(&id))
                    .await
                    .map_err(|e| e.to_string())?;
                if message.and_then(|m| m.delivery_status) != Some(DeliveryStatus::Delivered) {
                    still.push((to, id));
                }
            }
            pending = still;
            if Instant::now() > deadline {
                return Err(format!(
                    "{} sends not delivered within 600 s",
                    pending.len()
                ));
            }
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        self.settle("send", queues_drained).await
    }
}

/// Everything but the idle polls (empty receives, empty stream reads, describe calls).
fn busy_fingerprint(counts: &Value) -> String {
    let requests: Vec<String> = counts["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            let op = r["operation"].as_str().unwrap_or("");
            !matches!(
                op,
                "ReceiveMessage"
                    | "GetRecords"
                    | "GetRecords (empty)"
                    | "GetShardIterator"
                    | "DescribeStream"
            )
        })
        .map(|r| format!("{}{}{}", r["service"], r["operation"], r["count"]))
        .collect();
    let records = entries(counts, "dynamodbstreams", "GetRecords records");
    format!("{requests:?}{records}")
}

fn entries(counts: &Value, service: &str, operation: &str) -> f64 {
    counts["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["service"] == service && e["operation"] == operation)
        .filter_map(|e| e["entries"].as_f64())
        .sum()
}

fn dynamodb_ok(counts: &Value, operation: &str) -> f64 {
    counts["dynamodb"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["operation"] == operation)
        .map(|r| r["requests"].as_f64().unwrap_or(0.0) - r["failed"].as_f64().unwrap_or(0.0))
        .sum()
}

/// Every message received from a queue has been deleted (handled) again.
fn queues_drained(counts: &Value) -> bool {
    counts["sqs"].as_array().into_iter().flatten().all(|q| {
        let n = |k: &str| q[k].as_f64().unwrap_or(0.0);
        n("received") <= n("DeleteMessage") + n("DeleteMessageBatch entries")
    })
}

/// Log lines written since `from`: bytes and lines per function (by the handler's span or the
/// EMF line's `function` dimension), and the gateway's invocations per route.
fn logs_since(path: &Path, from: u64) -> Result<Value, String> {
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    file.seek(std::io::SeekFrom::Start(from))
        .map_err(|e| e.to_string())?;
    let mut per_function: BTreeMap<String, (u64, u64, u64, u64)> = BTreeMap::new();
    let mut routes: BTreeMap<String, u64> = BTreeMap::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|e| e.to_string())?;
        let bytes = line.len() as u64 + 1;
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            let row = per_function.entry("(not JSON)".into()).or_default();
            row.0 += 1;
            row.1 += bytes;
            continue;
        };
        if v["fields"]["message"] == "gateway" {
            let route = v["fields"]["route"].as_str().unwrap_or("?").to_owned();
            *routes.entry(route).or_default() += 1;
            continue;
        }
        if v.get("_aws").is_some() {
            let function = v["function"].as_str().unwrap_or("?").to_owned();
            let row = per_function.entry(function).or_default();
            row.2 += 1;
            row.3 += bytes;
            continue;
        }
        let function = match v["span"]["name"].as_str() {
            Some("inbound_sms") => "inbound-sms".to_owned(),
            Some("status_callback") => "status-callback".to_owned(),
            Some("send_sms") => "send-sms".to_owned(),
            Some("send") => "send-worker".to_owned(),
            Some("route") => "event-router".to_owned(),
            Some("inbound_processor" | "inbound") => "inbound-processor".to_owned(),
            Some(other) => format!("span {other}"),
            // The local stand-ins (Twilio sandbox, monitor stub) log outside any handler span.
            None => format!(
                "(no span: local stand-in) {}",
                v["fields"]["message"].as_str().unwrap_or("?")
            ),
        };
        let row = per_function.entry(function).or_default();
        row.0 += 1;
        row.1 += bytes;
    }
    Ok(json!({
        "functions": per_function
            .into_iter()
            .map(|(f, (lines, bytes, emf_lines, emf_bytes))| {
                json!({"function": f, "lines": lines, "bytes": bytes,
                       "emf_lines": emf_lines, "emf_bytes": emf_bytes})
            })
            .collect::<Vec<_>>(),
        "gateway_routes": routes,
    }))
}

fn report(phase: &str, n: usize, counts: &Value, logs: &Value) {
    let per = |x: f64| x / n as f64;
    eprintln!("\n== {phase}: {n} messages; per message ==");
    eprintln!("AWS requests (service operation: per message, total)");
    for r in counts["requests"].as_array().into_iter().flatten() {
        let c = r["count"].as_f64().unwrap_or(0.0);
        eprintln!(
            "  {} {}: {:.3} ({c})",
            r["service"].as_str().unwrap_or("?"),
            r["operation"].as_str().unwrap_or("?"),
            per(c)
        );
    }
    for e in counts["entries"].as_array().into_iter().flatten() {
        let c = e["entries"].as_f64().unwrap_or(0.0);
        eprintln!(
            "  {} {} entries: {:.3} ({c})",
            e["service"].as_str().unwrap_or("?"),
            e["operation"].as_str().unwrap_or("?"),
            per(c)
        );
    }
    eprintln!(
        "DynamoDB (operation: requests, failed, items, item bytes, WRU, GSI WRU, RRU per message)"
    );
    let (mut wru, mut gsi, mut rru) = (0.0, 0.0, 0.0);
    for r in counts["dynamodb"].as_array().into_iter().flatten() {
        let f = |k: &str| r[k].as_f64().unwrap_or(0.0);
        wru += f("wru");
        gsi += f("gsi_wru");
        rru += f("rru");
        eprintln!(
            "  {}: {:.3}, {:.3}, {:.3}, {:.1}, {:.3}, {:.3}, {:.3}",
            r["operation"].as_str().unwrap_or("?"),
            per(f("requests")),
            per(f("failed")),
            per(f("items")),
            per(f("item_bytes")),
            per(f("wru")),
            per(f("gsi_wru")),
            per(f("rru"))
        );
    }
    eprintln!(
        "  total: WRU {:.3} + GSI WRU {:.3} = {:.3}; RRU {:.3}",
        per(wru),
        per(gsi),
        per(wru + gsi),
        per(rru)
    );
    eprintln!("SQS by queue (per message)");
    for q in counts["sqs"].as_array().into_iter().flatten() {
        let fields: Vec<String> = q
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| *k != "queue")
            .map(|(k, v)| format!("{k} {:.3}", per(v.as_f64().unwrap_or(0.0))))
            .collect();
        eprintln!(
            "  {}: {}",
            q["queue"].as_str().unwrap_or("?"),
            fields.join(", ")
        );
    }
    eprintln!("Gateway invocations by route (per message)");
    for (route, c) in logs["gateway_routes"].as_object().into_iter().flatten() {
        eprintln!("  {route}: {:.3}", per(c.as_f64().unwrap_or(0.0)));
    }
    eprintln!("Log bytes by function (per message: JSON lines, bytes; EMF lines, bytes)");
    for f in logs["functions"].as_array().into_iter().flatten() {
        let g = |k: &str| per(f[k].as_f64().unwrap_or(0.0));
        eprintln!(
            "  {}: {:.2}, {:.1}; {:.2}, {:.1}",
            f["function"].as_str().unwrap_or("?"),
            g("lines"),
            g("bytes"),
            g("emf_lines"),
            g("emf_bytes")
        );
    }
}

async fn run(args: Args) -> Result<(), String> {
    for (name, port) in args.ports {
        std::env::set_var(name, port.to_string());
    }
    // What the stack needs for this run: counted emulator, open quiet hours, no schedules.
    for (name, value) in [
        ("PARLEY_EMULATOR_COUNTS", "1"),
        ("QUIET_HOURS_START", "00:00"),
        ("QUIET_HOURS_END", "24:00"),
        ("LOCAL_SCHEDULE_DISPATCH_SECONDS", "86400"),
        ("LOCAL_SCHEDULE_RECONCILE_SECONDS", "86400"),
        ("RUST_LOG", "info"),
    ] {
        std::env::set_var(name, value);
    }
    let env = LocalEnv::load().map_err(|e| e.to_string())?;
    // The benchmark's own SDK client reaches the same emulator.
    for key in [
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        std::env::set_var(key, env.require(key)?);
    }
    let dir: PathBuf = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .parent()
        .ok_or("no directory for this binary")?
        .to_owned();
    let log = dir.join("cost-bench-stack.log");
    let _stack = start_stack(&dir, &log, &dir.join("cost-bench-stack.err"))?;

    let sdk = parley::aws::loader()
        .app_name(aws_config::AppName::new("parley-cost-bench").map_err(|e| e.to_string())?)
        .load()
        .await;
    let table = env.require("TABLE_NAME")?.to_owned();
    let numbers_needed = args.texts.max(args.sends).div_ceil(args.per_number).max(1);
    let numbers: Vec<String> = (0..numbers_needed)
        .map(|i| format!("+1415555{:04}", 2000 + i))
        .collect();
    let bench = Bench {
        http: reqwest::Client::new(),
        gateway: format!("http://127.0.0.1:{}", args.ports[0].1),
        aws: format!("http://127.0.0.1:{}", args.ports[1].1),
        store: Store::new(aws_sdk_dynamodb::Client::new(&sdk), table),
        numbers,
        per_number: args.per_number,
        settle: args.settle,
        env,
    };
    let monitor = format!("http://127.0.0.1:{}", args.ports[3].1);
    let resp = bench
        .http
        .post(format!("{monitor}/_stub/tenants"))
        .json(&json!({"tenant_id": "cost-bench", "name": "Cost Bench", "phone_numbers": bench.numbers}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("monitor stub: {}", resp.status()));
    }
    let startup = bench.counts().await?;

    let mut snapshot = json!({"startup": startup, "texts": args.texts, "sends": args.sends,
        "texts_per_number": args.per_number, "numbers": bench.numbers.len()});
    if args.texts > 0 {
        let started = Instant::now();
        bench.reset().await?;
        let from = std::fs::metadata(&log).map_err(|e| e.to_string())?.len();
        let counts = bench.inbound(args.texts).await?;
        let logs = logs_since(&log, from)?;
        report("inbound", args.texts, &counts, &logs);
        eprintln!("  (phase took {:.1} s)", started.elapsed().as_secs_f64());
        snapshot["inbound"] = json!({"counts": counts, "logs": logs});
    }
    if args.sends > 0 {
        let started = Instant::now();
        bench.reset().await?;
        let from = std::fs::metadata(&log).map_err(|e| e.to_string())?.len();
        let counts = bench.send(args.sends).await?;
        let logs = logs_since(&log, from)?;
        report("send", args.sends, &counts, &logs);
        eprintln!("  (phase took {:.1} s)", started.elapsed().as_secs_f64());
        snapshot["send"] = json!({"counts": counts, "logs": logs});
    }
    let out = dir.join("cost-bench.json");
    std::fs::write(
        &out,
        serde_json::to_vec_pretty(&snapshot).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!("\nsnapshot: {}", out.display());
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("parley-cost-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("parley-cost-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("parley-cost-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
