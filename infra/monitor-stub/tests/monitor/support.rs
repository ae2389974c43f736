//! A stub per test and an HTTP client that speaks to it like Parley would.

use http::StatusCode;
use monitor_stub::{MonitorConfig, RunningMonitor};
pub use parley::twilio::form::percent_encode as encode;
use serde_json::Value;

pub const API_KEY: &str = "monitor-test-key";

pub struct Monitor {
    pub running: RunningMonitor,
    pub http: reqwest::Client,
}

impl Monitor {
    pub async fn start() -> Self {
        Self::start_with(MonitorConfig::new(API_KEY)).await
    }

    pub async fn start_with(config: MonitorConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = monitor_stub::spawn(listener, config).await.unwrap();
        Self {
            running,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.running.url())
    }

    /// `GET /tenants/lookup?phone=…`, `phone` percent-encoded, with the right key.
    pub async fn lookup(&self, phone: &str) -> (StatusCode, Value) {
        self.api_get(&format!("/tenants/lookup?phone={}", encode(phone)))
            .await
    }

    pub async fn api_get(&self, path_and_query: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(self.url(path_and_query))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        json(response).await
    }

    pub async fn update_profile(&self, tenant_id: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .put(self.url(&format!("/tenants/{tenant_id}/profile")))
            .bearer_auth(API_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        json(response).await
    }

    pub async fn control_post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url(&format!("/_stub/{path}")))
            .json(&body)
            .send()
            .await
            .unwrap();
        json(response).await
    }

    pub async fn control_get(&self, path_and_query: &str) -> Value {
        let response = self
            .http
            .get(self.url(&format!("/_stub/{path_and_query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// The statuses of the lookups of exactly `phone`, in order.
    pub async fn lookup_statuses(&self, phone: &str) -> Vec<u64> {
        let listed = self
            .control_get(&format!("lookups?phone={}", encode(phone)))
            .await;
        listed["lookups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                assert_eq!(l["phone"], phone);
                l["status"].as_u64().unwrap()
            })
            .collect()
    }

    pub async fn updates_for(&self, tenant_id: &str) -> Vec<Value> {
        let listed = self
            .control_get(&format!("profile-updates?tenant_id={}", encode(tenant_id)))
            .await;
        listed["updates"].as_array().unwrap().clone()
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
