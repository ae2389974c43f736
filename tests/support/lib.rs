//! What the end-to-end tests share: the local stack's settings, unique test data, signed
//! Twilio requests, direct store access, and the record of sensitive values for the log audit.
//!
//! The suite runs against one stack started by `infra/scripts/test.sh` (`make test`), or
//! against a running `make run` stack when invoked by hand with `cargo nextest run`.

use std::io::Write;
use std::sync::{Arc, Once};

use parley::config::{Replies, ReplyTexts, WebhookConfig};
use parley::secrets::SecretStore;
use parley::store::Store;
use parley::twilio::signature;
use parley_local::env::LocalEnv;

pub use parley;
pub use parley_local;

pub mod webdriver;

pub const TWILIO_NUMBER: &str = "+15005550006";

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
    // Seals what tests write and opens what the running stack sealed, as its functions do.
    let store = match env.get("DATA_KEY_ID").filter(|k| !k.is_empty()) {
        Some(key_id) => {
            let envelope = parley::envelope::Envelope::start(
                aws_sdk_kms::Client::new(&sdk),
                key_id,
                store.clone(),
            )
            .await
            .expect("a data key from the emulator's KMS");
            store.with_envelope(Arc::new(envelope))
        }
        None => store,
    };
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

fn random_u64() -> u64 {
    (ulid::Ulid::new().random() & u128::from(u64::MAX)) as u64
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

/// A fresh, valid US mobile-style number no other test uses (area code 628, San Francisco),
/// recorded for the log audit.
pub fn unique_phone() -> String {
    let n = random_u64();
    let exchange = 200 + n % 800;
    let line = (n / 800) % 10_000;
    let phone = format!("+1628{exchange:03}{line:04}");
    record_sensitive("phone", &phone);
    phone
}

/// A fresh Twilio message SID.
pub fn unique_sid() -> String {
    format!("SM{:032x}", ulid::Ulid::new().0)
}

/// A body no other test uses, recorded for the log audit.
/// `+14155550123` as a person might type it: `415 555-0123`.
pub fn spaced(phone: &str) -> String {
    let national = &phone[2..];
    format!("{} {}-{}", &national[..3], &national[3..6], &national[6..])
}

pub fn unique_body(text: &str) -> String {
    // Digits only: language detection ignores them, while a ULID's random letters could tip
    // a short sentence into another language or below the confidence threshold.
    let body = format!("{text} [{}]", random_u64());
    record_sensitive("body", &body);
    body
}

/// Records a value the logs must never contain (checked after the run by `audit-logs`).
pub fn record_sensitive(kind: &str, value: &str) {
    let Some(path) = std::env::var_os("PARLEY_E2E_MANIFEST") else {
        return;
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(format!("{kind}\t{}\n", value.replace('\n', " ")).as_bytes());
    }
}

/// An inbound message webhook as Twilio sends it.
#[derive(Clone, Debug)]
pub struct InboundForm {
    pub pairs: Vec<(String, String)>,
}

impl InboundForm {
    pub fn new(stack: &Stack, from: &str, body: &str) -> Self {
        let sid = unique_sid();
        Self {
            pairs: vec![
                ("ToCountry".into(), "US".into()),
                ("SmsMessageSid".into(), sid.clone()),
                ("NumMedia".into(), "0".into()),
                ("SmsSid".into(), sid.clone()),
                ("SmsStatus".into(), "received".into()),
                ("Body".into(), body.into()),
                ("To".into(), TWILIO_NUMBER.into()),
                ("NumSegments".into(), "1".into()),
                ("MessageSid".into(), sid),
                ("AccountSid".into(), stack.account_sid.clone()),
                ("From".into(), from.into()),
                ("ApiVersion".into(), "2010-04-01".into()),
            ],
        }
    }

    pub fn get(&self, key: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    pub fn sid(&self) -> parley::twilio::MessageSid {
        parley::twilio::MessageSid::parse(self.get("MessageSid")).expect("sid")
    }

    pub fn set(mut self, key: &str, value: &str) -> Self {
        match self.pairs.iter_mut().find(|(k, _)| k == key) {
            Some(pair) => pair.1 = value.into(),
            None => self.pairs.push((key.into(), value.into())),
        }
        self
    }

    pub fn without(mut self, key: &str) -> Self {
        self.pairs.retain(|(k, _)| k != key);
        self
    }

    pub fn encode(&self) -> String {
        parley::twilio::form::encode_pairs(&self.pairs)
    }

    pub fn signature(&self, token: &str, url: &str) -> String {
        signature::compute(token, url, &self.pairs)
    }
}

/// `application/x-www-form-urlencoded` encoding, as Twilio sends it (space as `+`).
pub use parley::twilio::form::form_encode as encode;

pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

impl Stack {
    pub fn inbound_url(&self) -> String {
        format!(
            "{}{}",
            self.public_base_url,
            parley::handlers::inbound_sms::ROUTE
        )
    }

    /// Posts a raw body to the inbound webhook with an optional signature header.
    pub async fn post_inbound_raw(
        &self,
        body: impl Into<reqwest::Body>,
        signature: Option<&str>,
    ) -> Reply {
        let mut req = self
            .http
            .post(format!(
                "{}{}",
                self.gateway,
                parley::handlers::inbound_sms::ROUTE
            ))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(sig) = signature {
            req = req.header("x-twilio-signature", sig);
        }
        read(req.send().await.expect("gateway reachable")).await
    }

    /// Posts the form signed with the current dev token.
    pub async fn post_inbound(&self, form: &InboundForm) -> Reply {
        let sig = form.signature(&self.token, &self.inbound_url());
        self.post_inbound_raw(form.encode(), Some(&sig)).await
    }

    pub async fn get(&self, path: &str, api_key: Option<&str>) -> Reply {
        let mut req = self.http.get(format!("{}{path}", self.gateway));
        if let Some(key) = api_key {
            req = req.bearer_auth(key);
        }
        read(req.send().await.expect("gateway reachable")).await
    }

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
}

/// A response as a [`Reply`].
pub async fn read(resp: reqwest::Response) -> Reply {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = resp.text().await.unwrap_or_default();
    Reply {
        status,
        content_type,
        body,
        headers,
    }
}

/// Waits until `check` returns `Some`, polling every 100 ms, or panics after `seconds`.
pub async fn eventually<T, F, Fut>(seconds: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {seconds} s waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

impl Stack {
    pub fn sandbox(&self) -> String {
        format!(
            "http://127.0.0.1:{}",
            self.env
                .get("LOCAL_TWILIO_PORT")
                .expect("LOCAL_TWILIO_PORT")
        )
    }

    /// `POST /sms/send` with the dev API key (and an optional Idempotency-Key).
    pub async fn send(&self, request: &serde_json::Value, idempotency_key: Option<&str>) -> Reply {
        let mut req = self
            .http
            .post(format!(
                "{}{}",
                self.gateway,
                parley::handlers::send_sms::ROUTE
            ))
            .bearer_auth(&self.api_key)
            .json(request);
        if let Some(key) = idempotency_key {
            req = req.header("idempotency-key", key);
        }
        read(req.send().await.expect("gateway reachable")).await
    }

    pub async fn send_raw(&self, body: &str, api_key: Option<&str>) -> Reply {
        let mut req = self
            .http
            .post(format!(
                "{}{}",
                self.gateway,
                parley::handlers::send_sms::ROUTE
            ))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(key) = api_key {
            req = req.bearer_auth(key);
        }
        read(req.send().await.expect("gateway reachable")).await
    }

    /// The messages the sandbox holds for `to`, each with its `create_calls`.
    pub async fn sandbox_messages(&self, to: &str) -> Vec<serde_json::Value> {
        let resp = self
            .http
            .get(format!("{}/_sandbox/messages", self.sandbox()))
            .query(&[("to", to)])
            .send()
            .await
            .expect("sandbox reachable");
        let json: serde_json::Value = resp.json().await.expect("sandbox JSON");
        json["messages"].as_array().cloned().unwrap_or_default()
    }

    /// The sandbox's messages for `to` with this exact body.
    pub async fn sandbox_messages_with(&self, to: &str, body: &str) -> Vec<serde_json::Value> {
        self.sandbox_messages(to)
            .await
            .into_iter()
            .filter(|m| m["body"] == body)
            .collect()
    }

    pub async fn sandbox_calls(&self, to: &str) -> Vec<serde_json::Value> {
        let resp = self
            .http
            .get(format!("{}/_sandbox/calls", self.sandbox()))
            .query(&[("to", to)])
            .send()
            .await
            .expect("sandbox reachable");
        let json: serde_json::Value = resp.json().await.expect("sandbox JSON");
        json["calls"].as_array().cloned().unwrap_or_default()
    }

    pub async fn sandbox_control(&self, path: &str, body: serde_json::Value) {
        let resp = self
            .http
            .post(format!("{}/_sandbox/{path}", self.sandbox()))
            .json(&body)
            .send()
            .await
            .expect("sandbox reachable");
        assert!(
            resp.status().is_success(),
            "sandbox {path}: {}",
            resp.status()
        );
    }

    /// The stored message a send answered with.
    pub async fn outbound(&self, to: &str, message_id: &str) -> Option<parley::store::Message> {
        let address = parley::phone::Address::parse(to).expect("valid number");
        let pk = parley::store::keys::conversation_pk(address.channel, &address.e164);
        self.store
            .message(&pk, &parley::store::keys::message_sk(message_id))
            .await
            .expect("store reachable")
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

impl Stack {
    pub fn monitor(&self) -> String {
        format!(
            "http://127.0.0.1:{}",
            self.env
                .get("LOCAL_MONITOR_PORT")
                .expect("LOCAL_MONITOR_PORT")
        )
    }

    /// Registers a tenant at the Collections Monitor stub with numbers stored as given.
    pub async fn add_tenant(&self, tenant_id: &str, numbers: &[&str]) {
        let resp = self
            .http
            .post(format!("{}/_stub/tenants", self.monitor()))
            .json(&serde_json::json!({"tenant_id": tenant_id, "name": "Test Tenant", "phone_numbers": numbers}))
            .send()
            .await
            .expect("monitor stub reachable");
        assert!(resp.status().is_success());
    }

    pub async fn monitor_control(&self, path: &str, body: serde_json::Value) {
        let resp = self
            .http
            .post(format!("{}/_stub/{path}", self.monitor()))
            .json(&body)
            .send()
            .await
            .expect("monitor stub reachable");
        assert!(
            resp.status().is_success(),
            "monitor {path}: {}",
            resp.status()
        );
    }

    pub async fn monitor_get(&self, path: &str, query: &[(&str, &str)]) -> serde_json::Value {
        self.http
            .get(format!("{}/_stub/{path}", self.monitor()))
            .query(query)
            .send()
            .await
            .expect("monitor stub reachable")
            .json()
            .await
            .expect("monitor JSON")
    }

    /// A queue of its own subscribed to every Parley event on the local bus.
    pub async fn subscribe_events(&self) -> String {
        let prefix = self
            .env
            .get("LOCAL_QUEUE_PREFIX")
            .expect("LOCAL_QUEUE_PREFIX");
        let bus = format!("{prefix}EventBus");
        let name = format!(
            "test-events-{}",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let url = sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
            .clone();
        let events = aws_sdk_eventbridge::Client::new(&self.sdk);
        events
            .put_rule()
            .name(&name)
            .event_bus_name(&bus)
            .event_pattern(r#"{"source": ["parley"]}"#)
            .send()
            .await
            .unwrap();
        events
            .put_targets()
            .rule(&name)
            .event_bus_name(&bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("q")
                    .arn(arn)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        url
    }

    /// Every event delivered to `queue` so far (each an EventBridge envelope).
    pub async fn drain_events(&self, queue: &str) -> Vec<serde_json::Value> {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let mut all = Vec::new();
        loop {
            let out = sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            let batch = out.messages.unwrap_or_default();
            if batch.is_empty() {
                return all;
            }
            for m in batch {
                all.extend(m.body.as_deref().and_then(|b| serde_json::from_str(b).ok()));
                sqs.delete_message()
                    .queue_url(queue)
                    .set_receipt_handle(m.receipt_handle)
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}

/// An inbound message from `phone` recorded in `store` (a table of the test's own, or the
/// stack's), and its stream record: the sample event's, about this number and message.
pub async fn recorded_message(
    stack: &Stack,
    store: &parley::store::Store,
    phone: &str,
) -> (String, aws_lambda_events::event::dynamodb::Event) {
    use parley::store::InboundRecord;
    let message_id = ulid::Ulid::new().to_string();
    let body = "Hola, ya pagué la renta de este mes. ¿Pueden confirmar?";
    let raw = InboundForm::new(stack, phone, body).encode();
    let sms = parley::twilio::InboundSms::from_form(
        &parley::twilio::Form::parse(raw.as_bytes()).unwrap(),
    )
    .unwrap();
    store
        .record_inbound(&InboundRecord {
            sms: &sms,
            raw_payload: &raw,
            message_id: message_id.clone(),
            new_conversation_id: ulid::Ulid::new().to_string(),
            received_at: parley::time::now_rfc3339(),
            detection: parley::language::detect(body),
            keyword: None,
            trace: None,
        })
        .await
        .unwrap();
    let record = include_str!("../../events/inbound-processor.json")
        .replace("+14155550101", phone)
        .replace("01JDPROCESSOREVENT0000000A", &message_id);
    (message_id, serde_json::from_str(&record).unwrap())
}
