//! The running local stack: its settings, the clients tests reach it with, resources of a
//! test's own (a table, a secret), and the `parley-local` binary.

use std::sync::{Arc, Once};

use parley::config::{Replies, ReplyTexts, WebhookConfig};
use parley::secrets::SecretStore;
use parley::store::Store;
use parley_local::env::LocalEnv;

/// Settings of the running local stack.
pub struct Stack {
    pub env: LocalEnv,
    pub gateway: String,
    pub public_base_url: String,
    pub token: String,
    pub previous_token: String,
    pub account_sid: String,
    pub api_key: String,
    pub sdk: aws_config::SdkConfig,
    pub store: Store,
    pub http: reqwest::Client,
}

static INIT: Once = Once::new();

pub async fn stack() -> Stack {
    let env = LocalEnv::load().expect("infra/local.env");
    INIT.call_once(|| {
        // SAFETY of intent: tests set the same values in every thread, before AWS clients read them.
        env.export();
        init_logs();
    });
    let get = |k: &str| env.require(k).expect("local setting").to_owned();
    let sdk = parley::aws::sdk_config().await;
    let store = Store::new(aws_sdk_dynamodb::Client::new(&sdk), get("TABLE_NAME"));
    let store = sealing(&sdk, &env, store.clone(), store).await;
    Stack {
        gateway: format!("http://127.0.0.1:{}", get("LOCAL_GATEWAY_PORT")),
        public_base_url: get("PUBLIC_BASE_URL"),
        token: get("LOCAL_TWILIO_AUTH_TOKEN"),
        previous_token: get("LOCAL_TWILIO_AUTH_TOKEN_PREVIOUS"),
        account_sid: get("LOCAL_TWILIO_ACCOUNT_SID"),
        api_key: get("LOCAL_API_KEY"),
        sdk,
        store,
        http: reqwest::Client::new(),
        env,
    }
}

/// `store`, sealing what tests write and opening what the running stack sealed, as its
/// functions do (when the stack has a data key), with data keys read through `keys`.
async fn sealing(sdk: &aws_config::SdkConfig, env: &LocalEnv, store: Store, keys: Store) -> Store {
    match env.get("DATA_KEY_ID").filter(|k| !k.is_empty()) {
        Some(key_id) => {
            let envelope =
                parley::envelope::Envelope::start(aws_sdk_kms::Client::new(sdk), key_id, keys)
                    .await
                    .expect("a data key from the emulator's KMS");
            store.with_envelope(Arc::new(envelope))
        }
        None => store,
    }
}

impl Stack {
    /// The stack's store through a DynamoDB client with `interceptor` (to count or fail
    /// requests), sealing as the stack does; its data keys are read past the interceptor.
    pub async fn store_with(
        &self,
        interceptor: impl aws_sdk_dynamodb::config::Intercept + 'static,
    ) -> Store {
        let config = aws_sdk_dynamodb::config::Builder::from(&self.sdk)
            .interceptor(interceptor)
            .build();
        let store = Store::new(
            aws_sdk_dynamodb::Client::from_conf(config),
            self.store.table(),
        );
        sealing(&self.sdk, &self.env, store, self.store.clone()).await
    }
}

/// Logs of handlers run inside a test process go to a file the log audit reads, in the
/// functions' own format (with `trace_id`).
fn init_logs() {
    let Some(dir) = std::env::var_os("PARLEY_E2E_LOG_DIR") else {
        return;
    };
    let path = std::path::Path::new(&dir).join(format!("inproc-{}.log", std::process::id()));
    if let Ok(file) = std::fs::File::create(path) {
        parley::telemetry::init_with(std::sync::Mutex::new(file));
    }
}

/// The `parley-local` binary the suite built (the runbooks' commands).
pub fn parley_local_bin() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| parley_local::env::repo_root().join("target"))
        .join("debug/parley-local")
}

/// Runs `parley-local ARGS…` and returns its stdout; panics with its stderr if it fails.
pub fn parley_local_ok(args: &[&str]) -> String {
    let out = std::process::Command::new(parley_local_bin())
        .args(args)
        .output()
        .expect("target/debug/parley-local (cargo build -p parley-local)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "parley-local {args:?} failed:\n{stderr}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Stack {
    /// A webhook config like the gateway's, for handlers built inside a test.
    pub fn webhook_config(&self) -> WebhookConfig {
        WebhookConfig {
            public_base_url: self.public_base_url.clone(),
            replies: Replies::with_english(ReplyTexts {
                help: self.env.get("HELP_REPLY_TEXT").map(str::to_owned),
                opt_out: self.env.get("OPT_OUT_REPLY_TEXT").map(str::to_owned),
                opt_in: self.env.get("OPT_IN_REPLY_TEXT").map(str::to_owned),
            }),
        }
    }

    /// A table of the template's shape under a unique name, for tests that need their own.
    pub async fn own_table(&self, label: &str) -> Store {
        let name = format!(
            "test-{label}-{}",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        let template = parley_local::template::Template::load_default().expect("template");
        let table = template.table("Table").expect("table in template");
        let client = aws_sdk_dynamodb::Client::new(&self.sdk);
        parley_local::bootstrap::create_table(&client, &table, &name)
            .await
            .expect("create table");
        Store::new(client, name)
    }

    /// A secret of its own (dev values, optionally other tokens), loaded into a SecretStore.
    pub async fn own_secrets(
        &self,
        token: &str,
        previous: Option<&str>,
    ) -> (String, Arc<SecretStore>) {
        let id = format!("test/{}", ulid::Ulid::new());
        self.put_secret(&id, token, previous).await;
        let client = aws_sdk_secretsmanager::Client::new(&self.sdk);
        let store = SecretStore::load(client, id.clone())
            .await
            .expect("load secret");
        (id, Arc::new(store))
    }

    pub async fn put_secret(&self, id: &str, token: &str, previous: Option<&str>) {
        let value = serde_json::json!({
            "twilio_account_sid": self.account_sid,
            "twilio_auth_token": token,
            "twilio_auth_token_previous": previous,
            "api_keys": [self.api_key],
            "log_hmac_key": "test-pseudonym-key",
        })
        .to_string();
        let client = aws_sdk_secretsmanager::Client::new(&self.sdk);
        parley_local::bootstrap::put_secret(&client, id, &value)
            .await
            .expect("put secret");
    }

    pub async fn queue_url(&self, logical_id: &str) -> String {
        let prefix = self
            .env
            .get("LOCAL_QUEUE_PREFIX")
            .expect("LOCAL_QUEUE_PREFIX");
        let client = aws_sdk_sqs::Client::new(&self.sdk);
        client
            .get_queue_url()
            .queue_name(parley_local::bootstrap::queue_name(prefix, logical_id))
            .send()
            .await
            .expect("queue exists")
            .queue_url
            .expect("queue URL")
    }
}
