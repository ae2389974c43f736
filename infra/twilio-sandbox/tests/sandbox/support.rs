//! A sandbox per test, an HTTP client speaking Twilio's wire format, and a callback receiver.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use http::{HeaderMap, StatusCode, Uri};
pub use parley::twilio::form::percent_encode as encode;
use serde_json::Value;
use twilio_sandbox::{RunningSandbox, SandboxConfig};

pub const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
pub const TOKEN: &str = "sandbox-test-token";
pub const FROM: &str = "+15005550006";

pub struct Sandbox {
    pub running: RunningSandbox,
    pub http: reqwest::Client,
}

impl Sandbox {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut SandboxConfig)) -> Self {
        let mut config = SandboxConfig::new(ACCOUNT, TOKEN);
        config.callback_delay = Duration::from_millis(10);
        adjust(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = twilio_sandbox::spawn(listener, config).await.unwrap();
        Self {
            running,
            http: reqwest::Client::new(),
        }
    }

    pub fn messages_url(&self) -> String {
        format!(
            "{}/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
            self.running.url()
        )
    }

    /// A create request with the right credentials, through `client`.
    pub fn create_request(
        &self,
        client: &reqwest::Client,
        params: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        client
            .post(self.messages_url())
            .basic_auth(ACCOUNT, Some(TOKEN))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(params))
    }

    pub async fn create(&self, params: &[(&str, &str)]) -> (StatusCode, Value) {
        json(
            self.create_request(&self.http, params)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// A GET on the Messages API (path under the account, query already encoded).
    pub async fn api_get(&self, path_and_query: &str) -> (StatusCode, Value) {
        let url = format!(
            "{}/2010-04-01/Accounts/{ACCOUNT}/{path_and_query}",
            self.running.url()
        );
        json(
            self.http
                .get(url)
                .basic_auth(ACCOUNT, Some(TOKEN))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn control_post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/_sandbox/{path}", self.running.url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        json(response).await
    }

    pub async fn control_get(&self, path_and_query: &str) -> Value {
        let response = self
            .http
            .get(format!("{}/_sandbox/{path_and_query}", self.running.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// `/_sandbox/messages` for one recipient.
    pub async fn messages_to(&self, to: &str) -> Vec<Value> {
        let listed = self
            .control_get(&format!("messages?to={}", encode(to)))
            .await;
        listed["messages"].as_array().unwrap().clone()
    }

    /// `/_sandbox/calls` for one recipient.
    pub async fn calls_to(&self, to: &str) -> Vec<Value> {
        let listed = self.control_get(&format!("calls?to={}", encode(to))).await;
        listed["calls"].as_array().unwrap().clone()
    }
}

pub async fn json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    (status, value)
}

pub fn form(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Today's UTC date as `YYYY-MM-DD`, shifted by `days`.
pub fn utc_date(days: i64) -> String {
    let date = time::OffsetDateTime::now_utc().date() + time::Duration::days(days);
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// Polls `check` until it returns `Some`, for up to five seconds.
pub async fn eventually<T, F, Fut>(mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One status callback as it reached the receiver.
#[derive(Debug, Clone)]
pub struct Received {
    pub path_and_query: String,
    pub signature: Option<String>,
    pub content_type: Option<String>,
    pub body: Bytes,
}

impl Received {
    pub fn form(&self) -> parley::twilio::Form {
        parley::twilio::Form::parse(&self.body).unwrap()
    }

    pub fn param(&self, key: &str) -> Option<String> {
        self.form().get(key).map(str::to_owned)
    }
}

/// A tiny web app that records every request it gets and answers `status`.
pub struct Receiver {
    pub base: String,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start(status: StatusCode) -> Self {
        Self::start_sequence(&[status]).await
    }

    /// Answers `statuses` in turn, the last one from then on.
    pub async fn start_sequence(statuses: &[StatusCode]) -> Self {
        let answers: Vec<_> = statuses.iter().map(|s| (Duration::ZERO, *s)).collect();
        Self::start_answers(&answers).await
    }

    /// Answers each request after its pause, in turn, the last one from then on.
    pub async fn start_answers(answers: &[(Duration, StatusCode)]) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .fallback(record)
            .with_state((received.clone(), Arc::new(Mutex::new(answers.to_vec()))));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base,
            received,
            task,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `n` callbacks have arrived and returns them in arrival order.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        eventually(|| async {
            let got = self.received();
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type ReceiverState = (
    Arc<Mutex<Vec<Received>>>,
    Arc<Mutex<Vec<(Duration, StatusCode)>>>,
);

async fn record(
    State((received, statuses)): State<ReceiverState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    received.lock().unwrap().push(Received {
        path_and_query: uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        signature: header("x-twilio-signature"),
        content_type: header("content-type"),
        body,
    });
    let (pause, status) = {
        let mut answers = statuses.lock().unwrap();
        if answers.len() > 1 {
            answers.remove(0)
        } else {
            answers[0]
        }
    };
    tokio::time::sleep(pause).await;
    status
}
