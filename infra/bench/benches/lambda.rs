//! Figure 4 of `docs/benchmarks.md`: each release function binary run the way Lambda runs it,
//! against a fake Lambda Runtime API served here that answers `invocation/next` with the
//! function's sample event from `events/`, and accepts `/response` and `/error`.
//!
//! Per function and per cold start, it records:
//! - init: spawn -> the first `GET .../invocation/next`, and the process CPU spent by then;
//! - the first invocation: `next` answered -> `/response` read (latency), and the process CPU
//!   from that answer to the following `next` (the whole cycle of the runtime loop);
//! - warm invocations: the same, for each following invocation;
//! - peak RSS (`VmHWM` of `/proc/<pid>/status`) at the first `next` and at the end;
//! - AWS requests per invocation, counted by a relay in front of the emulator that parses the
//!   HTTP/1.1 requests going through it (by `X-Amz-Target`) and keeps the function's
//!   connections open, as AWS endpoints do (the emulator closes each one after its answer);
//! - TCP connections the runtime opened to the Runtime API, and to AWS (the relay).
//!
//! CPUs: on a machine with two or more, the function runs alone on the last CPU and everything
//! else (this harness, its relay and fake Runtime API, the emulator, the sandbox) on the others
//! (`sched_setaffinity`), as on Lambda, where DynamoDB does not share the function's CPU and its
//! caches; `BENCH_LAMBDA_PIN=0` turns that off (everything shares every CPU).
//!
//! Process CPU is the child's CPU-time clock (`clock_getcpuclockid`: utime + stime of every
//! thread, live or exited, in ns; `/proc/<pid>/stat` has the same in 10 ms ticks, printed as a
//! cross-check of the warm mean).
//!
//! The AWS side is the local stack's emulator (`infra/emulator.py`, moto), with the table,
//! queues, bus, secret, KMS alias and dev API keys created by `parley_local::bootstrap` from
//! `template.yaml`, and the Twilio sandbox and the Collections Monitor stub on free ports. Each
//! function gets `infra/local.env`'s values (with `!Ref` queue URLs and bus names resolved as the
//! local stack does), the Lambda variables and `AWS_ENDPOINT_URL` pointing at the counting relay.
//!
//! Events: `inbound-sms` gets a new MessageSid per invocation, re-signed with the dev auth
//! token, so every invocation stores a new message (never the duplicate path); events signed by
//! Twilio (`status-callback`) are re-signed; the others are sent as they are.
//!
//! Build the binaries first (`make bench` does):
//! `CARGO_TARGET_DIR=target/bench cargo build --release -p inbound-sms [-p ...]`.
//! Environment: `BENCH_LAMBDA_RUNS` (cold starts per function, default 10),
//! `BENCH_LAMBDA_WARM` (warm invocations per cold start, default 100), `BENCH_FUNCTIONS`
//! (comma-separated; default: every function whose binary is built), `BENCH_FUNCTIONS_DIR`
//! (default: this benchmark's `target/release`), `BENCH_LAMBDA_PIN` (default 1, see CPUs).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use base64::Engine;
use common::{env_number, millis, Summary};
use parley::twilio::signature;
use parley::twilio::Form;
use parley_local::env::{repo_root, LocalEnv};
use parley_local::template::Template;
use serde_json::Value;

const RUN_TIMEOUT: Duration = Duration::from_secs(60);
const API: &str = "/2018-06-01/runtime";

/// Every function, in the order of the report: (binary, sample event).
const FUNCTIONS: &[(&str, &str)] = &[
    ("inbound-sms", "events/inbound-sms.json"),
    ("status-callback", "events/status-callback.json"),
    ("send-sms", "events/send-sms.json"),
    ("send-worker", "events/send-worker.json"),
    ("conversations", "events/conversations.json"),
    ("console", "events/console.json"),
    ("health", "events/health.json"),
    ("rules", "events/rules.json"),
    ("event-router", "events/event-router.json"),
    ("dispatcher", "events/dispatcher.json"),
    ("inbound-processor", "events/inbound-processor.json"),
    ("inbound-backfill", "events/inbound-backfill.json"),
];

/// A child process that is killed (by its own handle) and reaped when dropped.
struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The counting relay in front of the emulator.

/// The AWS operations requested through the relay, in order (`X-Amz-Target`, or method and path).
type Ops = Arc<Mutex<Vec<Op>>>;

/// One AWS request through the relay: its operation, and how long the emulator took to answer
/// it (the relay's own forwarding included: a connection to the emulator and two copies).
#[derive(Clone)]
struct Op {
    name: String,
    upstream: Duration,
}

/// Serves the function's AWS requests on connections it keeps open, as AWS endpoints do, each
/// forwarded to the emulator on a connection of its own: the emulator's server (Werkzeug)
/// answers every request with `Connection: close`, which would make the function open a TCP
/// connection per AWS request, work Lambda never sees. `connections` counts the function's.
fn relay(listener: TcpListener, upstream: SocketAddr, ops: Ops, connections: Arc<AtomicUsize>) {
    for client in listener.incoming().flatten() {
        connections.fetch_add(1, Ordering::Relaxed);
        let ops = ops.clone();
        thread::spawn(move || {
            let _ = client.set_nodelay(true);
            let Ok(writer) = client.try_clone() else {
                return;
            };
            let (mut reader, mut writer) = (BufReader::new(client), writer);
            while let Some(request) = Message::read(&mut reader) {
                let sent = Instant::now();
                let response = forward(upstream, &request);
                // Recorded before the answer goes back, so before the function can respond.
                ops.lock().unwrap().push(Op {
                    name: request.operation(),
                    upstream: sent.elapsed(),
                });
                let Some(response) = response else {
                    return;
                };
                if writer.write_all(&response.keep_alive()).is_err() {
                    return;
                }
            }
        });
    }
}

/// Sends one request to the emulator on a new connection and reads its whole response.
fn forward(upstream: SocketAddr, request: &Message) -> Option<Message> {
    let mut server = TcpStream::connect(upstream).ok()?;
    let _ = server.set_nodelay(true);
    server.write_all(&request.head).ok()?;
    server.write_all(&request.body).ok()?;
    Message::read(&mut BufReader::new(server))
}

/// One HTTP/1.1 message framed by `Content-Length` (the SDK's JSON and query protocols never
/// chunk a request, and the emulator's responses carry a length).
struct Message {
    /// Start line and headers, with the blank line that ends them.
    head: Vec<u8>,
    body: Vec<u8>,
}

impl Message {
    /// The next message on `stream`; `None` at the end of the stream or on a malformed one.
    fn read(stream: &mut impl BufRead) -> Option<Message> {
        let mut head = Vec::new();
        loop {
            let before = head.len();
            if stream.read_until(b'\n', &mut head).ok()? == 0 {
                return None;
            }
            if head[before..] == *b"\r\n" {
                break;
            }
        }
        let length = match Self::header(&head, "content-length") {
            Some(value) => value.parse().ok()?,
            None => 0,
        };
        let mut body = vec![0; length];
        stream.read_exact(&mut body).ok()?;
        Some(Message { head, body })
    }

    fn header<'a>(head: &'a [u8], name: &str) -> Option<&'a str> {
        std::str::from_utf8(head)
            .ok()?
            .lines()
            .skip(1)
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.eq_ignore_ascii_case(name).then(|| value.trim())
            })
    }

    /// `X-Amz-Target`, or the method and path.
    fn operation(&self) -> String {
        Self::header(&self.head, "x-amz-target")
            .filter(|target| !target.is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| {
                let request_line = String::from_utf8_lossy(&self.head);
                let request_line = request_line.lines().next().unwrap_or_default();
                request_line
                    .rsplit_once(' ')
                    .map_or(request_line, |(l, _)| l)
                    .to_owned()
            })
    }

    /// The message without its `Connection` header (HTTP/1.1's default is to keep the
    /// connection).
    fn keep_alive(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + self.body.len());
        for line in self.head.split_inclusive(|b| *b == b'\n') {
            if !line.to_ascii_lowercase().starts_with(b"connection:") {
                out.extend_from_slice(line);
            }
        }
        out.extend_from_slice(&self.body);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The fake Lambda Runtime API.

/// One request to the Runtime API, and where its answer goes (`None`: hold it until the
/// process is killed).
struct Call {
    method_path: String,
    body: Vec<u8>,
    at: Instant,
    reply: Sender<Option<Vec<u8>>>,
}

fn runtime_api(listener: TcpListener, calls: Sender<Call>, connections: Arc<AtomicUsize>) {
    for stream in listener.incoming().flatten() {
        connections.fetch_add(1, Ordering::SeqCst);
        let calls = calls.clone();
        thread::spawn(move || {
            let _ = serve_runtime(stream, &calls);
        });
    }
}

fn serve_runtime(stream: TcpStream, calls: &Sender<Call>) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut content_length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 {
                return Ok(());
            }
            if header == "\r\n" || header == "\n" {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; content_length];
        reader.read_exact(&mut body)?;
        let at = Instant::now();
        let method_path = line
            .rsplit_once(' ')
            .map_or(line.trim(), |(l, _)| l)
            .to_owned();
        let (reply, answer) = mpsc::channel();
        if calls
            .send(Call {
                method_path,
                body,
                at,
                reply,
            })
            .is_err()
        {
            return Ok(());
        }
        match answer.recv() {
            Ok(Some(bytes)) => writer.write_all(&bytes)?,
            _ => {
                // Held open until the process is killed.
                let mut sink = Vec::new();
                let _ = reader.read_to_end(&mut sink);
                return Ok(());
            }
        }
    }
}

fn next_answer(function: &str, request_id: &str, event: &[u8]) -> Vec<u8> {
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 30_000;
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
         lambda-runtime-aws-request-id: {request_id}\r\n\
         lambda-runtime-deadline-ms: {deadline}\r\n\
         lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:{function}\r\n\
         lambda-runtime-trace-id: Root=1-673f8a2b-1c2d3e4f5a6b7c8d9e0f1a2b;Parent=53995c3f42cd8ad8;Sampled=0\r\n\
         content-length: {}\r\n\r\n",
        event.len()
    )
    .into_bytes();
    out.extend_from_slice(event);
    out
}

const ACCEPTED: &[u8] =
    b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 16\r\n\r\n{\"status\":\"OK\"}\n";

// ---------------------------------------------------------------------------------------------
// Process figures.

/// The child's CPU time so far (all threads, live or exited), from its CPU-time clock.
struct CpuClock(libc::clockid_t);

impl CpuClock {
    fn of(pid: u32) -> Self {
        let mut id: libc::clockid_t = 0;
        // SAFETY: a valid out-pointer; the pid is our live child.
        let rc = unsafe { libc::clock_getcpuclockid(pid as libc::pid_t, &mut id) };
        assert_eq!(rc, 0, "clock_getcpuclockid");
        Self(id)
    }

    fn now(&self) -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a clock id from clock_getcpuclockid and a valid out-pointer.
        let rc = unsafe { libc::clock_gettime(self.0, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime on the child's CPU clock");
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}

/// utime + stime from `/proc/<pid>/stat`, in clock ticks.
fn stat_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command's closing parenthesis; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------------------------
// Events.

/// A function's sample event, and how each invocation's copy is made.
struct Events {
    sample: Value,
    /// Twilio signing: (auth token, public base URL); `None` for unsigned events.
    signing: Option<(String, String)>,
    /// Replace the MessageSid (inbound-sms: every invocation a new message).
    new_sid: bool,
    sid: Option<String>,
}

impl Events {
    fn load(path: &str, env: &LocalEnv, function: &str) -> Self {
        let text = std::fs::read_to_string(repo_root().join(path))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let sample: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        let signed = sample["headers"]["x-twilio-signature"].is_string();
        let signing = signed.then(|| {
            (
                env.require("LOCAL_TWILIO_AUTH_TOKEN").unwrap().to_owned(),
                env.require("PUBLIC_BASE_URL").unwrap().to_owned(),
            )
        });
        let mut events = Self {
            sample,
            signing,
            new_sid: function == "inbound-sms",
            sid: None,
        };
        if signed {
            let body = events.body();
            events.sid = Form::parse(body.as_bytes())
                .ok()
                .and_then(|f| f.get("MessageSid").map(str::to_owned));
        }
        events
    }

    fn body(&self) -> String {
        let raw = self.sample["body"].as_str().unwrap_or_default();
        if self.sample["isBase64Encoded"].as_bool().unwrap_or(false) {
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(raw)
                    .expect("a base64 body"),
            )
            .expect("a UTF-8 body")
        } else {
            raw.to_owned()
        }
    }

    /// The event for invocation `n` of run `run`.
    fn event(&self, run: usize, n: usize) -> Vec<u8> {
        let Some((token, base)) = &self.signing else {
            return serde_json::to_vec(&self.sample).unwrap();
        };
        let mut event = self.sample.clone();
        let mut body = self.body();
        if let (true, Some(sid)) = (self.new_sid, &self.sid) {
            let unique = format!(
                "SM{:08x}{:08x}{:016x}",
                std::process::id(),
                run,
                (n as u64) << 8 | 0xbe
            );
            assert_eq!(unique.len(), sid.len(), "a MessageSid of the same shape");
            body = body.replace(sid.as_str(), &unique);
        }
        let form = Form::parse(body.as_bytes()).expect("a form body");
        // Twilio signs the whole URL it called, query included (the status callback's `m=`).
        let path = event["rawPath"].as_str().unwrap_or_default();
        let query = match event["rawQueryString"].as_str() {
            Some(q) if !q.is_empty() => format!("?{q}"),
            _ => String::new(),
        };
        let url = format!("{}{path}{query}", base.trim_end_matches('/'));
        let signature = signature::compute(token, &url, form.pairs());
        event["headers"]["x-twilio-signature"] = Value::String(signature);
        event["headers"]["content-length"] = Value::String(body.len().to_string());
        event["body"] = Value::String(if event["isBase64Encoded"].as_bool().unwrap_or(false) {
            base64::engine::general_purpose::STANDARD.encode(&body)
        } else {
            body
        });
        event["requestContext"]["requestId"] = Value::String(format!("bench-{run}-{n}"));
        serde_json::to_vec(&event).unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// One cold start and its invocations.

struct Invocation {
    latency: Duration,
    /// The latency less the time the emulator took to answer its AWS requests (sequential in
    /// every function measured here): the function's own share of it.
    own: Duration,
    /// From `next` answered to the following `next` (the runtime loop's whole cycle).
    cpu: Duration,
    aws: Vec<String>,
    /// `statusCode` of an HTTP response, `ok` for another response, `error: …` for `/error`.
    outcome: String,
}

struct Run {
    init: Duration,
    init_cpu: Duration,
    init_aws: usize,
    rss_init_kib: u64,
    rss_end_kib: u64,
    invocations: Vec<Invocation>,
    /// utime + stime ticks over the warm invocations.
    warm_ticks: Option<u64>,
    connections: usize,
    aws_connections: usize,
}

/// The invocation in flight: answered at, the child's CPU then, AWS requests then, and its
/// response (latency, outcome) once read.
type InFlight = (Instant, Duration, usize, Option<(Duration, String)>);

struct Harness {
    calls: Receiver<Call>,
    connections: Arc<AtomicUsize>,
    aws_connections: Arc<AtomicUsize>,
    ops: Ops,
    scratch: PathBuf,
    /// The CPU the function runs on alone, when pinned.
    function_cpu: Option<usize>,
}

fn outcome(path: &str, body: &[u8]) -> String {
    if path.ends_with("/error") {
        let text = String::from_utf8_lossy(body);
        return format!("error: {}", text.chars().take(200).collect::<String>());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v["statusCode"].is_number() => v["statusCode"].to_string(),
        _ => "ok".to_owned(),
    }
}

fn one_run(
    h: &Harness,
    function: &str,
    binary: &Path,
    envs: &[(String, String)],
    events: &Events,
    run: usize,
    warm: usize,
) -> Run {
    while h.calls.try_recv().is_ok() {}
    h.ops.lock().unwrap().clear();
    h.connections.store(0, Ordering::SeqCst);
    h.aws_connections.store(0, Ordering::SeqCst);
    let log = h.scratch.join(format!("{function}.log"));
    let log_file = std::fs::File::create(&log).expect("a log file");
    let mut command = Command::new(binary);
    command
        .env_clear()
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file);
    if let Some(cpu) = h.function_cpu {
        // SAFETY: between fork and exec only `pin_to` runs: a stack cpu_set_t and one system
        // call, no allocation or lock.
        unsafe {
            command.pre_exec(move || pin_to([cpu]));
        }
    }
    let started = Instant::now();
    let mut child = Owned(command.spawn().expect("the function starts"));
    let pid = child.0.id();
    let cpu = CpuClock::of(pid);
    let total = 1 + warm;
    let fail = |what: String| -> ! {
        panic!(
            "{function}: {what}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    };

    let mut init = None;
    let mut invocations: Vec<Invocation> = Vec::with_capacity(total);
    // The invocation in flight: (answered at, CPU then, AWS requests then, its response).
    let mut in_flight: Option<InFlight> = None;
    let mut ticks_at_warm = None;
    loop {
        let call = match h.calls.recv_timeout(Duration::from_millis(50)) {
            Ok(call) => call,
            Err(RecvTimeoutError::Timeout) => {
                if let Ok(Some(status)) = child.0.try_wait() {
                    fail(format!("exited ({status})"));
                }
                if started.elapsed() > RUN_TIMEOUT {
                    fail(format!("no progress within {RUN_TIMEOUT:?}"));
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => panic!("the fake Runtime API stopped"),
        };
        let path = call.method_path.as_str();
        if path == format!("GET {API}/invocation/next") {
            let cpu_now = cpu.now();
            let aws_now = h.ops.lock().unwrap().len();
            match in_flight.take() {
                None => {
                    init = Some((call.at - started, cpu_now, aws_now, peak_rss_kib(pid)));
                }
                Some((_, cpu_then, aws_then, response)) => {
                    let (latency, outcome) = response
                        .unwrap_or_else(|| fail("asked for `next` without answering".into()));
                    let ops = h.ops.lock().unwrap()[aws_then..aws_now].to_vec();
                    let upstream: Duration = ops.iter().map(|op| op.upstream).sum();
                    invocations.push(Invocation {
                        latency,
                        own: latency.saturating_sub(upstream),
                        cpu: cpu_now - cpu_then,
                        aws: ops.into_iter().map(|op| op.name).collect(),
                        outcome,
                    });
                }
            }
            if invocations.len() == 1 && ticks_at_warm.is_none() {
                ticks_at_warm = stat_ticks(pid);
            }
            if invocations.len() == total {
                let rss_end = peak_rss_kib(pid).unwrap_or(0);
                let warm_ticks = stat_ticks(pid)
                    .zip(ticks_at_warm)
                    .map(|(end, start)| end - start);
                let _ = call.reply.send(None);
                let (init, init_cpu, init_aws, rss_init) = init.unwrap();
                return Run {
                    init,
                    init_cpu,
                    init_aws,
                    rss_init_kib: rss_init.unwrap_or(0),
                    rss_end_kib: rss_end,
                    invocations,
                    warm_ticks,
                    connections: h.connections.load(Ordering::SeqCst),
                    aws_connections: h.aws_connections.load(Ordering::SeqCst),
                };
            }
            let request_id = format!("bench-{run}-{}", invocations.len());
            let answer = next_answer(function, &request_id, &events.event(run, invocations.len()));
            let cpu_then = cpu.now();
            let aws_then = h.ops.lock().unwrap().len();
            in_flight = Some((Instant::now(), cpu_then, aws_then, None));
            let _ = call.reply.send(Some(answer));
        } else if path.starts_with(&format!("POST {API}/invocation/")) {
            let Some((answered, _, _, response)) = in_flight.as_mut() else {
                fail(format!("{path} with no invocation in flight"));
            };
            *response = Some((call.at - *answered, outcome(path, &call.body)));
            let _ = call.reply.send(Some(ACCEPTED.to_vec()));
        } else if path.starts_with(&format!("POST {API}/init/error")) {
            fail(format!(
                "init error: {}",
                String::from_utf8_lossy(&call.body)
            ));
        } else {
            let _ = call.reply.send(Some(ACCEPTED.to_vec()));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The report.

fn ms(d: Duration) -> String {
    millis(d)
}

fn us(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

fn outcomes(invocations: &[&Invocation]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for i in invocations {
        *counts.entry(i.outcome.as_str()).or_default() += 1;
    }
    counts
        .iter()
        .map(|(k, n)| format!("{k} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn aws_breakdown(invocations: &[&Invocation]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for i in invocations {
        for op in &i.aws {
            *counts.entry(op.clone()).or_default() += 1;
        }
    }
    let n = invocations.len().max(1) as f64;
    counts
        .iter()
        .map(|(k, c)| format!("{k} {:.2}", *c as f64 / n))
        .collect::<Vec<_>>()
        .join(", ")
}

struct Figures {
    init: Summary,
    first_latency: Summary,
    first_own: Summary,
    first_cpu: Summary,
    warm_latency: Summary,
    warm_cpu: Summary,
}

fn report(function: &str, runs: &[Run], warm: usize) -> Figures {
    let init = Summary::of(&runs.iter().map(|r| r.init).collect::<Vec<_>>());
    let init_cpu = Summary::of(&runs.iter().map(|r| r.init_cpu).collect::<Vec<_>>());
    let firsts: Vec<&Invocation> = runs.iter().map(|r| &r.invocations[0]).collect();
    let warms: Vec<&Invocation> = runs.iter().flat_map(|r| &r.invocations[1..]).collect();
    let first_latency = Summary::of(&firsts.iter().map(|i| i.latency).collect::<Vec<_>>());
    let first_own = Summary::of(&firsts.iter().map(|i| i.own).collect::<Vec<_>>());
    let first_cpu = Summary::of(&firsts.iter().map(|i| i.cpu).collect::<Vec<_>>());
    let warm_latency = Summary::of(&warms.iter().map(|i| i.latency).collect::<Vec<_>>());
    let warm_own = Summary::of(&warms.iter().map(|i| i.own).collect::<Vec<_>>());
    let warm_cpu = Summary::of(&warms.iter().map(|i| i.cpu).collect::<Vec<_>>());
    let rss_init = runs.iter().map(|r| r.rss_init_kib).max().unwrap_or(0);
    let rss_end = runs.iter().map(|r| r.rss_end_kib).max().unwrap_or(0);
    let init_aws: Vec<usize> = runs.iter().map(|r| r.init_aws).collect();
    let tick = Duration::from_secs(1) / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u32;
    let ticks: u64 = runs.iter().filter_map(|r| r.warm_ticks).sum();
    let connections: usize = runs.iter().map(|r| r.connections).sum();
    let aws_connections: usize = runs.iter().map(|r| r.aws_connections).sum();
    let invocations: usize = runs.iter().map(|r| r.invocations.len()).sum();

    eprintln!("### {function}");
    eprintln!();
    eprintln!("| | median | p90 | min | max | mean |");
    eprintln!("|---|---:|---:|---:|---:|---:|");
    let row = |name: &str, s: &Summary, f: fn(Duration) -> String| {
        eprintln!(
            "| {name} | {} | {} | {} | {} | {} |",
            f(s.p50),
            f(s.p90),
            f(s.min),
            f(s.max),
            f(s.mean)
        );
    };
    row("init: spawn → first `next` (ms)", &init, ms);
    row("init: process CPU (ms)", &init_cpu, ms);
    row("first invocation: latency (ms)", &first_latency, ms);
    row(
        "first invocation: less the emulator's time (ms)",
        &first_own,
        ms,
    );
    row("first invocation: process CPU (ms)", &first_cpu, ms);
    row("warm invocation: latency (µs)", &warm_latency, us);
    row(
        "warm invocation: less the emulator's time (µs)",
        &warm_own,
        us,
    );
    row("warm invocation: process CPU (µs)", &warm_cpu, us);
    eprintln!();
    eprintln!(
        "- {} cold starts × (1 + {warm}) invocations; first − warm latency (medians): {} ms",
        runs.len(),
        ms(first_latency.p50.saturating_sub(warm_latency.p50))
    );
    eprintln!(
        "- warm process CPU from /proc/<pid>/stat (utime+stime, {} ms ticks): mean {} µs",
        tick.as_millis(),
        us(tick * ticks as u32 / warms.len().max(1) as u32)
    );
    eprintln!("- peak RSS (VmHWM): {rss_init} KiB at the first `next`, {rss_end} KiB at the end (max over runs)");
    eprintln!(
        "- AWS requests: init {:?}; first invocation: {}; warm, per invocation: {}",
        init_aws,
        aws_breakdown(&firsts),
        aws_breakdown(&warms)
    );
    eprintln!(
        "- Runtime API TCP connections: {connections} for {invocations} invocations ({:.2} per invocation)",
        connections as f64 / invocations.max(1) as f64
    );
    eprintln!("- AWS TCP connections (to the relay, kept open): {aws_connections} for {invocations} invocations");
    eprintln!(
        "- responses: first {}; warm {}",
        outcomes(&firsts),
        outcomes(&warms)
    );
    eprintln!();
    Figures {
        init,
        first_latency,
        first_own,
        first_cpu,
        warm_latency,
        warm_cpu,
    }
}

/// The Python peer's interpreter, relative to the repository (the Makefile's `PEER_PYTHON`).
const PEER_PYTHON: &str = ".venv/peer/bin/python";
/// What starts it, beside its handler (`inbound_sms.py`).
const PEER_LAUNCHER: &str = "infra/bench/peer/inbound-sms";

/// The Python peer's launcher (`BENCH_PEER`, default `infra/bench/peer/inbound-sms`), when it
/// and the environment it runs in are installed.
fn peer() -> Option<PathBuf> {
    let launcher = std::env::var_os("BENCH_PEER")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(PEER_LAUNCHER));
    (launcher.exists() && repo_root().join(PEER_PYTHON).exists()).then_some(launcher)
}

/// Issue 13's targets relative to the Python equivalent, measured in the same run on the same
/// events, emulator and CPU: the host's speed cancels out of both ratios.
fn against_peer(ours: &Figures, peer: &Figures) {
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    // Latency less the emulator's answers: moto takes several times longer over one
    // TransactWriteItems (Parley's) than over one PutItem (the peer makes three), which says
    // nothing about either function.
    let first = ratio(peer.first_own.p50, ours.first_own.p50);
    eprintln!(
        "- first invocation at least 2× faster than the Python peer's (latency less the emulator's time, medians): {} ms against {} ms, {first:.1}× → {}",
        ms(ours.first_own.p50),
        ms(peer.first_own.p50),
        verdict(first >= 2.0)
    );
    eprintln!(
        "  (with the emulator's time: {} ms against {} ms, {:.1}×; process CPU: {} ms against {} ms, {:.1}×)",
        ms(ours.first_latency.p50),
        ms(peer.first_latency.p50),
        ratio(peer.first_latency.p50, ours.first_latency.p50),
        ms(ours.first_cpu.p50),
        ms(peer.first_cpu.p50),
        ratio(peer.first_cpu.p50, ours.first_cpu.p50)
    );
    let warm = ratio(ours.warm_cpu.p50, peer.warm_cpu.p50) * 100.0;
    eprintln!(
        "- warm process CPU ≤ 10 % of the Python peer's (medians): {} µs against {} µs, {warm:.1} % → {}",
        us(ours.warm_cpu.p50),
        us(peer.warm_cpu.p50),
        verdict(warm <= 10.0)
    );
}

fn verdict(pass: bool) -> &'static str {
    if pass {
        "PASS"
    } else {
        "FAIL"
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// Where the function runs, apart from everything else: `Some(cpu)` when pinning is on and the
/// machine has a CPU to spare.
fn function_cpu() -> Option<usize> {
    let cpus = thread::available_parallelism().map_or(1, usize::from);
    (env_number("BENCH_LAMBDA_PIN", 1) != 0 && cpus >= 2).then(|| cpus - 1)
}

/// Restricts the calling thread (and what it starts afterwards: threads, processes) to `cpus`.
fn pin_to(cpus: impl IntoIterator<Item = usize>) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes within it (every index given
    // here is below the machine's CPU count, far below CPU_SETSIZE).
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn main() {
    // Read before pinning narrows what this process may use.
    let machine = common::machine();
    // First, before any thread or process starts: they inherit the mask.
    let function_cpu = function_cpu();
    if let Some(cpu) = function_cpu {
        pin_to(0..cpu).expect("the harness keeps to the other CPUs");
    }
    let runs = env_number("BENCH_LAMBDA_RUNS", 10).max(1);
    let warm = env_number("BENCH_LAMBDA_WARM", 100).max(1);
    let env = common::local_env();
    let dir = std::env::var_os("BENCH_FUNCTIONS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // This benchmark runs from <target>/release/deps/.
            let exe = std::env::current_exe().expect("the benchmark's own path");
            exe.parent()
                .and_then(Path::parent)
                .expect("a build directory")
                .to_path_buf()
        });
    let only: Option<Vec<String>> = std::env::var("BENCH_FUNCTIONS")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect());
    let selected: Vec<(&str, &str, PathBuf)> = FUNCTIONS
        .iter()
        .filter(|(f, _)| only.as_ref().is_none_or(|o| o.iter().any(|x| x == f)))
        .map(|(f, e)| (*f, *e, dir.join(f)))
        .collect();
    let (present, missing): (Vec<_>, Vec<_>) =
        selected.into_iter().partition(|(_, _, b)| b.exists());
    assert!(
        !present.is_empty(),
        "no function binary in {}: build them first (`make bench` does), e.g. \
         `CARGO_TARGET_DIR=target/bench cargo build --release -p inbound-sms`",
        dir.display()
    );

    let scratch = std::env::temp_dir().join(format!("parley-lambda-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();

    // The emulator, the resources, the Twilio sandbox and the Monitor stub.
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let aws_port = free_port();
    let twilio_port = free_port();
    let monitor_port = free_port();
    let region = env.get("AWS_REGION").unwrap_or("us-east-1").to_owned();
    let (emulator, function_env, _sandbox, _monitor) = tokio.block_on(async {
        let python = env.path("MOTO_PYTHON").unwrap_or_else(|e| panic!("{e}"));
        let emulator =
            parley_local::emulator::start(&python, aws_port, &scratch.join("emulator.log"))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.clone()))
            .endpoint_url(format!("http://127.0.0.1:{aws_port}"))
            .credentials_provider(Credentials::new("test", "test", None, None, "bench"))
            .load()
            .await;
        let template = Template::load_default().unwrap_or_else(|e| panic!("{e}"));
        let resources = parley_local::bootstrap::bootstrap(&sdk, &template, &env)
            .await
            .unwrap_or_else(|e| panic!("bootstrap: {e}"));
        let mut vars: BTreeMap<String, String> = env
            .vars()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        for (var, target) in template.env_refs() {
            let local = resources
                .queues
                .get(&target)
                .map(|(url, _)| url.clone())
                .or_else(|| resources.buses.get(&target).cloned());
            if let Some(value) = local {
                vars.entry(var).or_insert(value);
            }
        }
        let twilio = tokio::net::TcpListener::bind(("127.0.0.1", twilio_port))
            .await
            .unwrap();
        let sandbox = twilio_sandbox::spawn(
            twilio,
            twilio_sandbox::SandboxConfig::new(
                env.require("LOCAL_TWILIO_ACCOUNT_SID").unwrap(),
                env.require("LOCAL_TWILIO_AUTH_TOKEN").unwrap(),
            ),
        )
        .await
        .unwrap();
        let monitor = tokio::net::TcpListener::bind(("127.0.0.1", monitor_port))
            .await
            .unwrap();
        let monitor = monitor_stub::spawn(
            monitor,
            monitor_stub::MonitorConfig::new(env.require("LOCAL_MONITOR_API_KEY").unwrap()),
        )
        .await
        .unwrap();
        vars.insert(
            "TWILIO_API_BASE".into(),
            format!("http://127.0.0.1:{twilio_port}"),
        );
        vars.insert(
            "MONITOR_API_URL".into(),
            format!("http://127.0.0.1:{monitor_port}"),
        );
        (emulator, vars, sandbox, monitor)
    });

    // The counting relay and the fake Runtime API.
    let ops: Ops = Arc::default();
    let relay_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let relay_addr = relay_listener.local_addr().unwrap();
    let upstream: SocketAddr = ([127, 0, 0, 1], aws_port).into();
    let relay_ops = ops.clone();
    let aws_connections = Arc::new(AtomicUsize::new(0));
    let relay_connections = aws_connections.clone();
    thread::spawn(move || relay(relay_listener, upstream, relay_ops, relay_connections));
    let (calls_tx, calls) = mpsc::channel();
    let connections = Arc::new(AtomicUsize::new(0));
    let runtime_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let runtime_addr = runtime_listener.local_addr().unwrap();
    let counted = connections.clone();
    thread::spawn(move || runtime_api(runtime_listener, calls_tx, counted));
    let harness = Harness {
        calls,
        connections,
        aws_connections,
        ops,
        scratch: scratch.clone(),
        function_cpu,
    };

    eprintln!("## Each function through a fake Lambda Runtime API");
    eprintln!();
    eprintln!("- machine: {machine}");
    eprintln!(
        "- AWS: infra/emulator.py (moto) on 127.0.0.1:{aws_port}, resources from template.yaml, through a counting relay that keeps the function's connections open (as AWS endpoints do; the emulator closes each); Runtime API: fake, on {runtime_addr}"
    );
    eprintln!("- load average at the start: {}", common::load_average());
    match function_cpu {
        Some(cpu) => eprintln!(
            "- CPUs: the function alone on CPU {cpu}; the harness, relay and emulator on {}",
            if cpu == 1 {
                "CPU 0".to_owned()
            } else {
                format!("CPUs 0-{}", cpu - 1)
            }
        ),
        None => eprintln!("- CPUs: not pinned; the function shares them with the emulator"),
    }
    eprintln!(
        "- per function: 1 untimed cold start, then {runs} cold starts × (1 first + {warm} warm) invocations, back to back; RUST_LOG from infra/local.env ({})",
        function_env.get("RUST_LOG").map_or("unset", String::as_str)
    );
    for (f, _, _) in &missing {
        eprintln!("- {f}: no binary in {}, skipped", dir.display());
    }
    eprintln!();

    // What every function (and the Python peer) is started with.
    let envs_for = |function: &str| -> Vec<(String, String)> {
        let mut envs: Vec<(String, String)> = function_env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        envs.extend(
            [
                ("AWS_LAMBDA_RUNTIME_API", runtime_addr.to_string()),
                ("AWS_LAMBDA_FUNCTION_NAME", function.to_string()),
                ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
                ("AWS_LAMBDA_FUNCTION_VERSION", "1".into()),
                ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/01/01/[1]bench".into()),
                (
                    "AWS_LAMBDA_LOG_GROUP_NAME",
                    format!("/aws/lambda/{function}"),
                ),
                ("AWS_ENDPOINT_URL", format!("http://{relay_addr}")),
                // Lambda sets both; botocore reads only this one.
                ("AWS_DEFAULT_REGION", region.clone()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v)),
        );
        envs
    };
    // One untimed cold start, then `runs` timed ones.
    let measure = |function: &str, binary: &Path, events: &Events| -> Vec<Run> {
        let envs = envs_for(function);
        let _ = one_run(&harness, function, binary, &envs, events, 0, warm.min(10));
        (1..=runs)
            .map(|run| one_run(&harness, function, binary, &envs, events, run, warm))
            .collect()
    };

    let mut inbound = None;
    for (function, event_path, binary) in &present {
        let size = std::fs::metadata(binary).map(|m| m.len()).unwrap_or(0);
        let events = Events::load(event_path, &env, function);
        let results = measure(function, binary, &events);
        eprintln!(
            "binary: {} ({size} bytes, {:.1} MiB, as built)",
            binary.display(),
            size as f64 / (1024.0 * 1024.0)
        );
        let figures = report(function, &results, warm);
        let rss = results.iter().map(|r| r.rss_end_kib).max().unwrap_or(0);
        if *function == "inbound-sms" {
            let peer = peer().map(|launcher| {
                eprintln!("peer: {} (Python 3, awslambdaric)", launcher.display());
                report(
                    "inbound-sms, the Python peer",
                    &measure(function, &launcher, &events),
                    warm,
                )
            });
            inbound = Some((figures, peer, rss, size));
        }
    }

    if let Some((f, peer, rss, size)) = inbound {
        eprintln!("### inbound-sms against the targets");
        eprintln!();
        let gap = f.first_latency.p50.saturating_sub(f.warm_latency.p50);
        eprintln!(
            "- first invocation within 5 ms of warm (medians): {} ms → {}",
            ms(gap),
            verdict(gap <= Duration::from_millis(5))
        );
        eprintln!(
            "- warm process CPU ≤ 400 µs (median): {} µs → {}",
            us(f.warm_cpu.p50),
            verdict(f.warm_cpu.p50 <= Duration::from_micros(400))
        );
        eprintln!(
            "- init ≤ 30 ms (median): {} ms → {}",
            ms(f.init.p50),
            verdict(f.init.p50 <= Duration::from_millis(30))
        );
        eprintln!(
            "- peak RSS ≤ 32 MiB: {rss} KiB → {}",
            verdict(rss <= 32 * 1024)
        );
        eprintln!(
            "- binary ≤ 6 MB (x86_64 here, as built; the target is arm64 stripped): {size} bytes → {}",
            verdict(size <= 6_000_000)
        );
        match peer {
            Some(p) => against_peer(&f, &p),
            None => eprintln!(
                "- against the Python peer: not run (its environment, {PEER_PYTHON}, is missing: `make {PEER_PYTHON}`)"
            ),
        }
        eprintln!();
    }
    eprintln!("load average at the end: {}", common::load_average());
    drop(emulator);
    let _ = std::fs::remove_dir_all(&scratch);
}
