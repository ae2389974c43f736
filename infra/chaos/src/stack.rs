//! The chaos run's own local stack: `parley-local up` as a child process on the run's ports,
//! with settings that make recovery fit in a run of minutes instead of hours.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The four ports of a stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub gateway: u16,
    pub aws: u16,
    pub twilio: u16,
    pub monitor: u16,
}

impl Default for Ports {
    /// `make chaos`'s: clear of `make run` (3000…), the test suite's and the benchmarks'.
    fn default() -> Self {
        Self {
            gateway: 3550,
            aws: 5050,
            twilio: 3551,
            monitor: 3552,
        }
    }
}

impl Ports {
    /// Four ports free right now (for a test's own stack).
    pub fn free() -> std::io::Result<Self> {
        let listeners = (0..4)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<Vec<_>, _>>()?;
        let port = |i: usize| listeners[i].local_addr().map(|a| a.port());
        Ok(Self {
            gateway: port(0)?,
            aws: port(1)?,
            twilio: port(2)?,
            monitor: port(3)?,
        })
    }

    pub fn gateway_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.gateway)
    }

    pub fn aws_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.aws)
    }

    pub fn sandbox_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.twilio)
    }
}

/// The environment of the stack and of the commands run against it (`parley-local
/// backfill`). Every value derived from a port is set here, so nothing of the caller's own
/// environment (a test suite's stack) leaks in.
pub fn environment(ports: Ports) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = [
        ("LOCAL_GATEWAY_PORT", ports.gateway.to_string()),
        ("LOCAL_AWS_PORT", ports.aws.to_string()),
        ("LOCAL_TWILIO_PORT", ports.twilio.to_string()),
        ("LOCAL_MONITOR_PORT", ports.monitor.to_string()),
        ("AWS_ENDPOINT_URL", ports.aws_url()),
        ("PUBLIC_BASE_URL", ports.gateway_url()),
        ("TWILIO_API_BASE", ports.sandbox_url()),
        (
            "MONITOR_API_URL",
            format!("http://127.0.0.1:{}", ports.monitor),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in [
        // What is sent must not depend on the hour the run starts at.
        ("QUIET_HOURS_START", "00:00"),
        ("QUIET_HOURS_END", "24:00"),
        // A crashed worker's claim is taken over after 10 s instead of a minute.
        ("SEND_CLAIM_LEASE_SECONDS", "10"),
        // A lost job is swept again, and a submitted message whose callbacks were refused
        // while the store was down is polled at Twilio, at the dispatcher's next minutes
        // instead of after 30 s and an hour.
        ("SWEEP_GRACE_SECONDS", "5"),
        ("STATUS_POLL_AFTER_SECONDS", "20"),
        ("LOCAL_SCHEDULE_DISPATCH_SECONDS", "3"),
        // The inbound backfill's own schedule stays out of the run: the audit runs it, so
        // the report can say what the webhook alone stored.
        ("LOCAL_SCHEDULE_BACKFILL_SECONDS", "86400"),
        // Warm functions re-read the secret every few seconds, so a Secrets Manager outage
        // is felt (deployed: five minutes).
        ("SECRETS_TTL_SECONDS", "4"),
        ("RUST_LOG", "info"),
    ] {
        env.insert(k.to_owned(), v.to_owned());
    }
    env
}

/// The local stack as a child process; stopped (SIGTERM, then waited for) when dropped.
pub struct StackProcess {
    child: Child,
    pub log: PathBuf,
}

impl Drop for StackProcess {
    fn drop(&mut self) {
        // SIGTERM, so the stack stops the emulator it started (a kill would orphan it).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Starts `parley-local up` with `env` and waits for its `ready:` line. Its output (stdout
/// and stderr) goes to `log`.
pub fn start(
    parley_local: &Path,
    env: &BTreeMap<String, String>,
    log: &Path,
) -> Result<StackProcess, String> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let child = Command::new(parley_local)
        .arg("up")
        .envs(env)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| {
            format!(
                "{}: {e} (build it: cargo build -p parley-local)",
                parley_local.display()
            )
        })?;
    let mut stack = StackProcess {
        child,
        log: log.to_owned(),
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.lines().any(|l| l.starts_with("ready: ")) {
            return Ok(stack);
        }
        if let Ok(Some(status)) = stack.child.try_wait() {
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            return Err(format!(
                "the local stack exited ({status}); the end of {}:\n{}",
                log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err(format!(
        "the local stack was not ready in 120 s; see {}",
        log.display()
    ))
}
