//! The steady mixed load: texts Twilio (the sandbox) receives and delivers to Parley's webhook,
//! and sends through `POST /sms/send`, whose status callbacks the sandbox then makes. Every
//! text and send carries a body unique to the run, so the audit can find each one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::plan::Callbacks;

/// A send's recipient group: its callbacks' behaviour (`None`: the default plan).
pub const GROUPS: [Option<Callbacks>; 4] = [
    None,
    Some(Callbacks::Duplicated),
    Some(Callbacks::Reordered),
    Some(Callbacks::Delayed),
];
/// Recipients per group.
const NUMBERS_PER_GROUP: usize = 4;
/// Numbers texting Parley.
const SENDERS: usize = 8;
/// How long a send refused by the API (the store down) is retried, as a careful client
/// would, with the same `Idempotency-Key`.
const SEND_RETRY_FOR: Duration = Duration::from_secs(120);

/// Recipient `i` of `group` (fictional 555 numbers, never Twilio's magic ones).
pub fn recipient(group: usize, i: usize) -> String {
    format!("+1415555{}{:03}", 5 + group, i)
}

pub fn sender(i: usize) -> String {
    format!("+1415555{:04}", 6000 + i)
}

/// Every number the load uses (for the log audit's manifest).
pub fn numbers() -> Vec<String> {
    (0..GROUPS.len())
        .flat_map(|g| (0..NUMBERS_PER_GROUP).map(move |i| recipient(g, i)))
        .chain((0..SENDERS).map(sender))
        .collect()
}

/// One send the API accepted (202).
#[derive(Debug, Clone)]
pub struct Accepted {
    pub message_id: String,
    pub to: String,
    pub body: String,
    pub callbacks: Option<Callbacks>,
    /// Answers other than 202 before it was accepted (the store down, throttled…).
    pub refusals: u32,
}

/// One text the sandbox received and delivered (or tried to) to Parley's webhook.
#[derive(Debug, Clone)]
pub struct Text {
    pub sid: String,
    pub from: String,
    pub body: String,
    /// Whether a webhook attempt got a 2xx from Parley.
    pub delivered: bool,
    pub attempts: usize,
}

#[derive(Debug, Default)]
pub struct LoadLog {
    pub accepted: Vec<Accepted>,
    /// Sends the API never accepted within the retry budget: the client was told (no loss).
    pub refused: Vec<(String, String)>,
    pub texts: Vec<Text>,
    /// `/_sandbox/receive` calls that failed outright (the sandbox never had the text).
    pub receive_errors: Vec<String>,
}

#[derive(Clone)]
pub struct Load {
    pub http: reqwest::Client,
    pub gateway: String,
    pub sandbox: String,
    pub send_key: String,
    pub parley_number: String,
    /// Unique to the run, in every body.
    pub run_id: String,
    pub log: Arc<Mutex<LoadLog>>,
}

impl Load {
    fn log(&self) -> std::sync::MutexGuard<'_, LoadLog> {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The callback plans of the misbehaving groups, set before the load.
    pub async fn plan_callbacks(&self) -> Result<(), String> {
        for (g, callbacks) in GROUPS.iter().enumerate() {
            let Some(callbacks) = callbacks else { continue };
            for i in 0..NUMBERS_PER_GROUP {
                let body = callbacks.plan(&recipient(g, i));
                let response = self
                    .http
                    .post(format!("{}/_sandbox/callbacks", self.sandbox))
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| format!("sandbox: {e}"))?;
                if !response.status().is_success() {
                    return Err(format!("sandbox callbacks: {}", response.status()));
                }
            }
        }
        Ok(())
    }

    /// Registers every sender as one tenant's at the Collections Monitor stub.
    pub async fn register_senders(&self, monitor_port: u16) -> Result<(), String> {
        let senders: Vec<String> = (0..SENDERS).map(sender).collect();
        let response = self
            .http
            .post(format!("http://127.0.0.1:{monitor_port}/_stub/tenants"))
            .json(&json!({"tenant_id": "chaos", "name": "Chaos", "phone_numbers": senders}))
            .send()
            .await
            .map_err(|e| format!("monitor stub: {e}"))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("monitor stub: {}", response.status()))
        }
    }

    /// `rate` operations a second for `duration`, alternating sends and texts; returns once
    /// every operation has an outcome.
    pub async fn run(&self, rate: f64, duration: Duration) {
        let started = Instant::now();
        let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tasks = Vec::new();
        let mut n = 0usize;
        while started.elapsed() < duration {
            ticks.tick().await;
            let load = self.clone();
            let i = n / 2;
            tasks.push(if n % 2 == 0 {
                tokio::spawn(async move { load.send(i).await })
            } else {
                tokio::spawn(async move { load.text(i).await })
            });
            n += 1;
        }
        futures::future::join_all(tasks).await;
    }

    async fn send(&self, i: usize) {
        let group = i % GROUPS.len();
        let to = recipient(group, (i / GROUPS.len()) % NUMBERS_PER_GROUP);
        let body = format!("Chaos {} send {i}: your payment was received.", self.run_id);
        let key = format!("chaos-{}-{i}", self.run_id);
        let started = Instant::now();
        let mut refusals = 0;
        loop {
            let answer = self
                .http
                .post(format!(
                    "{}{}",
                    self.gateway,
                    parley::handlers::send_sms::ROUTE
                ))
                .bearer_auth(&self.send_key)
                .header("Idempotency-Key", &key)
                .json(&json!({"to": to, "body": body}))
                .send()
                .await;
            if let Ok(response) = answer {
                let status = response.status().as_u16();
                let value: Value = response.json().await.unwrap_or(Value::Null);
                if status == 202 {
                    if let Some(id) = value["message_id"].as_str() {
                        self.log().accepted.push(Accepted {
                            message_id: id.to_owned(),
                            to,
                            body,
                            callbacks: GROUPS[group],
                            refusals,
                        });
                        return;
                    }
                }
                // A refusal that retrying cannot change (a bug in the load): no retry.
                if (400..500).contains(&status) && status != 429 && status != 409 {
                    self.log().refused.push((to, format!("HTTP {status}")));
                    return;
                }
            }
            refusals += 1;
            if started.elapsed() > SEND_RETRY_FOR {
                self.log().refused.push((to, "retries exhausted".into()));
                return;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    async fn text(&self, i: usize) {
        let from = sender(i % SENDERS);
        let body = format!("Chaos {} text {i}: I paid this month's rent.", self.run_id);
        let answer = self
            .http
            .post(format!("{}/_sandbox/receive", self.sandbox))
            .json(&json!({"from": from, "to": self.parley_number, "body": body}))
            .send()
            .await;
        let value: Value = match answer {
            Ok(response) if response.status().as_u16() == 201 => {
                response.json().await.unwrap_or(Value::Null)
            }
            Ok(response) => {
                self.log()
                    .receive_errors
                    .push(format!("HTTP {}", response.status()));
                return;
            }
            Err(e) => {
                self.log().receive_errors.push(e.to_string());
                return;
            }
        };
        let Some(sid) = value["message"]["sid"].as_str() else {
            self.log()
                .receive_errors
                .push("no SID in the sandbox's answer".into());
            return;
        };
        let attempts = value["webhook"]["attempts"].as_array().map_or(0, Vec::len);
        self.log().texts.push(Text {
            sid: sid.to_owned(),
            from,
            body,
            delivered: value["webhook"]["delivered"] == true,
            attempts,
        });
    }
}
