//! The Twilio sandbox's and the Collections Monitor stub's control APIs.

use crate::Stack;

impl Stack {
    pub fn sandbox(&self) -> String {
        format!(
            "http://127.0.0.1:{}",
            self.env
                .get("LOCAL_TWILIO_PORT")
                .expect("LOCAL_TWILIO_PORT")
        )
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
}
