//! Figure 3 of `docs/benchmarks.md`: cold-start init of the release `inbound-sms` binary, from
//! the exec of the process to its first `GET /2018-06-01/runtime/invocation/next` on a fake
//! Lambda Runtime API served here on 127.0.0.1. Init includes reading the secret from Secrets
//! Manager, here a local moto server (started and stopped by this benchmark).
//!
//! A second series sends the SDK's Secrets Manager traffic through a timestamping TCP relay to
//! split init into: exec -> first byte of GetSecretValue, the round trip, and the rest.
//!
//! Build the binary first (`make bench` does):
//! `CARGO_TARGET_DIR=target/bench cargo build --release -p inbound-sms`.
//! Environment: `BENCH_COLD_RUNS` (default 20), `INBOUND_SMS_BIN` (default: the `inbound-sms`
//! beside this benchmark's build directory), `MOTO_SERVER` (default
//! `.venv/moto/bin/moto_server`, which `make deps` installs).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_secretsmanager::config::Credentials;
use common::{env_number, millis, Summary};
use parley_local::env::repo_root;

const SECRET_ID: &str = "parley/bench";
const NEXT: &str = "GET /2018-06-01/runtime/invocation/next";
const RUN_TIMEOUT: Duration = Duration::from_secs(20);

/// What the fake Runtime API and the relay saw, and when.
enum Seen {
    Next(Instant),
    InitError(String),
    SecretRequest(Instant),
    SecretResponse(Instant),
}

/// A child process that is killed (by its own handle) and reaped when dropped.
struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

// ---------------------------------------------------------------------------------------------
// The fake Lambda Runtime API: records the first `invocation/next` and never answers it.

fn fake_runtime_api(listener: TcpListener, seen: Sender<Seen>) {
    for stream in listener.incoming().flatten() {
        let seen = seen.clone();
        thread::spawn(move || {
            let _ = serve_runtime(stream, &seen);
        });
    }
}

fn serve_runtime(stream: TcpStream, seen: &Sender<Seen>) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let at = Instant::now();
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
        if line.starts_with(NEXT) {
            let _ = seen.send(Seen::Next(at));
            // Held open until the process is killed.
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
            return Ok(());
        }
        if line.contains("/runtime/init/error") {
            let _ = seen.send(Seen::InitError(String::from_utf8_lossy(&body).into_owned()));
        }
        writer.write_all(
            b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
        )?;
    }
}

// ---------------------------------------------------------------------------------------------
// The timestamping relay in front of moto (second series only).

fn relay(listener: TcpListener, upstream: SocketAddr, seen: Sender<Seen>) {
    for client in listener.incoming().flatten() {
        let Ok(server) = TcpStream::connect(upstream) else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (c2, s2) = match (client.try_clone(), server.try_clone()) {
            (Ok(c), Ok(s)) => (c, s),
            _ => continue,
        };
        let up = seen.clone();
        thread::spawn(move || pipe(client, server, &up, Seen::SecretRequest));
        let down = seen.clone();
        thread::spawn(move || pipe(s2, c2, &down, Seen::SecretResponse));
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, seen: &Sender<Seen>, event: fn(Instant) -> Seen) {
    let mut buf = [0u8; 16 * 1024];
    let mut first = true;
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if first {
                    let _ = seen.send(event(Instant::now()));
                    first = false;
                }
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

fn inbound_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("INBOUND_SMS_BIN") {
        return PathBuf::from(path);
    }
    // This benchmark runs from <target>/release/deps/; the binary is <target>/release/inbound-sms.
    let exe = std::env::current_exe().expect("the benchmark's own path");
    exe.parent()
        .and_then(Path::parent)
        .map(|release| release.join("inbound-sms"))
        .expect("a build directory")
}

fn wait_for_port(port: u16, child: &mut Owned, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!(
                "moto_server exited ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
    panic!("moto_server did not listen on {port} within 60 s");
}

fn create_secret(endpoint: &str, secret_json: String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("test", "test", None, None, "bench"))
            .build();
        let client = aws_sdk_secretsmanager::Client::from_conf(config);
        client
            .create_secret()
            .name(SECRET_ID)
            .secret_string(secret_json)
            .send()
            .await
            .expect("the secret is created in moto");
        // Once more, so moto's first GetSecretValue is not the one timed.
        client
            .get_secret_value()
            .secret_id(SECRET_ID)
            .send()
            .await
            .expect("the secret reads back");
    });
}

struct Run {
    init: Duration,
    /// exec -> first GetSecretValue byte, and its first response byte (relay series only).
    secret: Option<(Duration, Duration)>,
    peak_rss_kib: Option<u64>,
}

/// Peak resident memory so far, from /proc (the process is alive, blocked on `next`).
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

fn one_run(binary: &Path, envs: &[(String, String)], seen: &Receiver<Seen>, log: &Path) -> Run {
    while seen.try_recv().is_ok() {}
    let log_file = std::fs::File::create(log).expect("a log file");
    let mut command = Command::new(binary);
    command
        .env_clear()
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file);
    let started = Instant::now();
    let mut child = Owned(command.spawn().expect("inbound-sms starts"));
    let (mut request, mut response) = (None, None);
    loop {
        match seen.recv_timeout(Duration::from_millis(20)) {
            Ok(Seen::Next(at)) => {
                let rss = peak_rss_kib(child.0.id());
                return Run {
                    init: at - started,
                    secret: request.zip(response),
                    peak_rss_kib: rss,
                };
            }
            Ok(Seen::SecretRequest(at)) => request = request.or(Some(at - started)),
            Ok(Seen::SecretResponse(at)) => response = response.or(Some(at - started)),
            Ok(Seen::InitError(body)) => panic!(
                "inbound-sms reported an init error: {body}\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ),
            Err(RecvTimeoutError::Timeout) => {
                if let Ok(Some(status)) = child.0.try_wait() {
                    panic!(
                        "inbound-sms exited ({status}) before asking for an invocation:\n{}",
                        std::fs::read_to_string(log).unwrap_or_default()
                    );
                }
                assert!(
                    started.elapsed() < RUN_TIMEOUT,
                    "inbound-sms did not ask for an invocation within {RUN_TIMEOUT:?}"
                );
            }
            Err(RecvTimeoutError::Disconnected) => panic!("the fake Runtime API stopped"),
        }
    }
}

fn main() {
    let runs = env_number("BENCH_COLD_RUNS", 20);
    let env = common::local_env();
    let binary = inbound_binary();
    let size = std::fs::metadata(&binary)
        .unwrap_or_else(|_| {
            panic!(
                "{} not found: build it first with \
                 `CARGO_TARGET_DIR=target/bench cargo build --release -p inbound-sms` \
                 or set INBOUND_SMS_BIN",
                binary.display()
            )
        })
        .len();
    let moto = std::env::var_os("MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/moto/bin/moto_server"));
    assert!(
        moto.exists(),
        "{} not found: `make deps` installs it",
        moto.display()
    );
    let scratch = std::env::temp_dir().join(format!("parley-cold-start-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let moto_log = scratch.join("moto.log");
    let run_log = scratch.join("inbound-sms.log");

    // moto, with the secret.
    let moto_port = free_port();
    let mut moto_child = Owned(
        Command::new(&moto)
            .args(["-H", "127.0.0.1", "-p", &moto_port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&moto_log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", moto.display())),
    );
    wait_for_port(moto_port, &mut moto_child, &moto_log);
    let moto_url = format!("http://127.0.0.1:{moto_port}");
    create_secret(&moto_url, common::secret_json(&env));

    // The fake Runtime API and the relay, on their own ports.
    let (tx, rx) = mpsc::channel();
    let runtime_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let runtime_api = runtime_listener.local_addr().unwrap();
    let to_runtime = tx.clone();
    thread::spawn(move || fake_runtime_api(runtime_listener, to_runtime));
    let relay_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let relay_addr = relay_listener.local_addr().unwrap();
    let upstream: SocketAddr = ([127, 0, 0, 1], moto_port).into();
    thread::spawn(move || relay(relay_listener, upstream, tx));

    let envs = |endpoint: &str| -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = [
            ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", "inbound-sms".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "1".into()),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/01/01/[1]bench".into()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                "/aws/lambda/inbound-sms".into(),
            ),
            ("AWS_ENDPOINT_URL", endpoint.to_owned()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("TABLE_NAME", "parley-bench".into()),
            ("SECRET_ID", SECRET_ID.into()),
            ("PUBLIC_BASE_URL", "http://127.0.0.1:3000".into()),
            ("RUST_LOG", "info".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for key in ["HELP_REPLY_TEXT", "OPT_OUT_REPLY_TEXT", "OPT_IN_REPLY_TEXT"] {
            if let Some(v) = env.get(key) {
                vars.push((key.to_owned(), v.to_owned()));
            }
        }
        vars
    };

    eprintln!("## inbound-sms cold start");
    eprintln!();
    eprintln!("- machine: {}", common::machine());
    eprintln!(
        "- binary: {} ({size} bytes, {:.1} MiB)",
        binary.display(),
        size as f64 / (1024.0 * 1024.0)
    );
    eprintln!("- Secrets Manager: moto_server on 127.0.0.1:{moto_port}; Runtime API: fake, on {runtime_api}");
    eprintln!("- load average at the start: {}", common::load_average());
    eprintln!("- 1 untimed warm-up run, then {runs} timed runs per series; RUST_LOG=info as in template.yaml");
    eprintln!();

    let direct = envs(&moto_url);
    let warm = one_run(&binary, &direct, &rx, &run_log);
    let series: Vec<Run> = (0..runs)
        .map(|_| one_run(&binary, &direct, &rx, &run_log))
        .collect();
    let inits: Vec<Duration> = series.iter().map(|r| r.init).collect();
    let s = Summary::of(&inits);
    eprintln!("exec -> first GET /2018-06-01/runtime/invocation/next (moto direct):");
    eprintln!(
        "  median {} ms, min {} ms, max {} ms, mean {} ms (n={}; warm-up run {} ms)",
        millis(s.p50),
        millis(s.min),
        millis(s.max),
        millis(s.mean),
        s.n,
        millis(warm.init)
    );
    eprintln!(
        "  runs (ms): {}",
        inits
            .iter()
            .map(|d| millis(*d))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let rss: Vec<u64> = series.iter().filter_map(|r| r.peak_rss_kib).collect();
    if let (Some(lo), Some(hi)) = (rss.iter().min(), rss.iter().max()) {
        eprintln!("  peak RSS at the first `next` (VmHWM): {lo}-{hi} KiB");
    }
    eprintln!();

    // Second series: the same, through the relay, to split the time.
    let relayed_env = envs(&format!("http://{relay_addr}"));
    let _ = one_run(&binary, &relayed_env, &rx, &run_log);
    let relayed: Vec<Run> = (0..runs)
        .map(|_| one_run(&binary, &relayed_env, &rx, &run_log))
        .collect();
    let parts: Vec<(Duration, Duration, Duration, Duration)> = relayed
        .iter()
        .filter_map(|r| {
            r.secret.map(|(req, resp)| {
                (
                    r.init,
                    req,
                    resp.saturating_sub(req),
                    r.init.saturating_sub(resp),
                )
            })
        })
        .collect();
    assert_eq!(
        parts.len(),
        relayed.len(),
        "every run read the secret through the relay"
    );
    let median = |f: fn(&(Duration, Duration, Duration, Duration)) -> Duration| {
        Summary::of(&parts.iter().map(f).collect::<Vec<_>>())
    };
    let (total, before, secret, after) = (
        median(|p| p.0),
        median(|p| p.1),
        median(|p| p.2),
        median(|p| p.3),
    );
    eprintln!(
        "split (Secrets Manager through a timestamping relay; medians of {} runs):",
        parts.len()
    );
    eprintln!(
        "  exec -> first byte of GetSecretValue at the relay: {} ms (max {})",
        millis(before.p50),
        millis(before.max)
    );
    eprintln!(
        "  GetSecretValue, request -> first response byte (moto, loopback): {} ms (max {})",
        millis(secret.p50),
        millis(secret.max)
    );
    eprintln!(
        "  response -> first invocation/next: {} ms (max {})",
        millis(after.p50),
        millis(after.max)
    );
    eprintln!(
        "  total with the relay: median {} ms, max {} ms",
        millis(total.p50),
        millis(total.max)
    );

    eprintln!("load average at the end: {}", common::load_average());

    drop(moto_child);
    let _ = std::fs::remove_dir_all(&scratch);
}
