//! What every run shares: the emulator child process, the SDK configuration pointing at it, the
//! dev secret, a Twilio sandbox per run, and a sink answering the sandbox's status callbacks.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use parley::secrets::SecretStore;
use parley_local::env::LocalEnv;
use parley_local::template::Template;

/// `infra/emulator.py` (moto, DynamoDB serialised) on a free port; killed by `stop` (or drop).
pub struct Emulator {
    child: tokio::process::Child,
    pub port: u16,
    pub log: PathBuf,
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

impl Emulator {
    pub async fn start(python: &Path) -> Result<Self, String> {
        Self::start_on(python, 0).await
    }

    /// On `port`, or a free one when it is 0.
    pub async fn start_on(python: &Path, port: u16) -> Result<Self, String> {
        let port = if port == 0 { free_port()? } else { port };
        let log = std::env::temp_dir().join(format!(
            "parley-send-bench-emulator-{}.log",
            std::process::id()
        ));
        let child = parley_local::emulator::start(python, port, &log).await?;
        Ok(Self { child, port, log })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub async fn stop(mut self) {
        // kill() also reaps the child.
        let _ = self.child.kill().await;
    }
}

/// The moto interpreter named by `MOTO_PYTHON` (relative to the repository root).
pub fn python(env: &LocalEnv) -> PathBuf {
    let configured = Path::new(env.get("MOTO_PYTHON").unwrap_or(".venv/moto/bin/python"));
    if configured.is_absolute() {
        configured.to_owned()
    } else {
        parley_local::env::repo_root().join(configured)
    }
}

/// Shared configuration of every run.
pub struct Stack {
    /// As the functions configure it (`parley::aws::loader`: 2 s per attempt, 5 s per call).
    pub sdk: SdkConfig,
    /// For the untimed setup and checks: generous timeouts, so that seeding a few thousand
    /// messages never races the SDK's retries.
    pub setup_sdk: SdkConfig,
    pub template: Template,
    pub secrets: Arc<SecretStore>,
    pub account_sid: String,
    pub auth_token: String,
    pub from_number: String,
    pub sink: CallbackSink,
    pub callback_delay: Duration,
    pub emulator_pid: Option<u32>,
    /// Where `sandbox` listens (0: a free port).
    pub sandbox_port: u16,
}

/// Fixed local ports for the in-process servers (0: a free one each time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ports {
    pub sandbox: u16,
    pub callback_sink: u16,
}

impl Stack {
    /// Points the SDK at the emulator (with the functions' own timeouts, `parley::aws::loader`)
    /// and seeds the dev secret.
    pub async fn new(
        env: &LocalEnv,
        emulator: &Emulator,
        callback_delay: Duration,
    ) -> Result<Self, String> {
        Self::with_ports(env, emulator, callback_delay, Ports::default()).await
    }

    /// As [`Stack::new`], with the sandbox and the callback sink on the given ports.
    pub async fn with_ports(
        env: &LocalEnv,
        emulator: &Emulator,
        callback_delay: Duration,
        ports: Ports,
    ) -> Result<Self, String> {
        let loader = || {
            parley::aws::loader()
                .endpoint_url(format!("http://127.0.0.1:{}", emulator.port))
                .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                    "test",
                    "test",
                    None,
                    None,
                    "parley-send-bench",
                ))
        };
        let sdk = loader().load().await;
        let setup_sdk = loader()
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(120))
                    .operation_timeout(Duration::from_secs(300))
                    .build(),
            )
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        let template = Template::load_default().map_err(|e| e.to_string())?;
        let secret_id = "parley/send-bench";
        let secrets_client = aws_sdk_secretsmanager::Client::new(&setup_sdk);
        parley_local::bootstrap::put_secret(
            &secrets_client,
            secret_id,
            &parley_local::bootstrap::dev_secret(env)?,
        )
        .await?;
        let secrets = SecretStore::load(secrets_client, secret_id.into())
            .await
            .map_err(|e| format!("loading the secret: {e}"))?;
        Ok(Self {
            sdk,
            setup_sdk,
            template,
            secrets: Arc::new(secrets),
            account_sid: env.require("LOCAL_TWILIO_ACCOUNT_SID")?.to_owned(),
            auth_token: env.require("LOCAL_TWILIO_AUTH_TOKEN")?.to_owned(),
            from_number: env.require("TWILIO_FROM_NUMBER")?.to_owned(),
            sink: CallbackSink::spawn(ports.callback_sink).await?,
            callback_delay,
            emulator_pid: emulator.pid(),
            sandbox_port: ports.sandbox,
        })
    }

    /// A fresh Twilio sandbox (its own calls and messages) for one run.
    pub async fn sandbox(&self) -> Result<twilio_sandbox::RunningSandbox, String> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.sandbox_port))
            .await
            .map_err(|e| format!("sandbox port {}: {e}", self.sandbox_port))?;
        let mut config = twilio_sandbox::SandboxConfig::new(&self.account_sid, &self.auth_token);
        config.callback_delay = self.callback_delay;
        config.callback_timeout = Duration::from_secs(2);
        twilio_sandbox::spawn(listener, config)
            .await
            .map_err(|e| format!("starting the Twilio sandbox: {e}"))
    }

    /// A table of the template's shape, created under `name`.
    pub async fn table(&self, name: &str) -> Result<(), String> {
        let table = self.template.table("Table").map_err(|e| e.to_string())?;
        let client = aws_sdk_dynamodb::Client::new(&self.setup_sdk);
        parley_local::bootstrap::create_table(&client, &table, name).await
    }

    /// The template's queues under `prefix`; returns the send queue's (URL, ARN).
    pub async fn send_queue(&self, prefix: &str) -> Result<(String, String), String> {
        let client = aws_sdk_sqs::Client::new(&self.setup_sdk);
        let mut queues =
            parley_local::bootstrap::create_queues(&client, &self.template.queues(), prefix)
                .await?;
        queues
            .remove("SendQueue")
            .ok_or_else(|| "the template has no SendQueue".to_owned())
    }
}

/// Answers every request with 204 and counts them: where the worker's `StatusCallback` points.
pub struct CallbackSink {
    pub url: String,
    pub received: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CallbackSink {
    async fn spawn(port: u16) -> Result<Self, String> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| format!("callback sink port {port}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let received = Arc::new(AtomicUsize::new(0));
        let counter = received.clone();
        let app = axum::Router::new().fallback(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::NO_CONTENT
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url: format!(
                "http://{addr}{}",
                parley::handlers::send_worker::STATUS_ROUTE
            ),
            received,
            task,
        })
    }
}

impl Drop for CallbackSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}
