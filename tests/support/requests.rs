//! Talking to the stack over HTTP: Twilio's signed webhooks, the API with its keys, and the
//! answers as [`Reply`]s.

use parley::twilio::signature;

use crate::{unique_sid, Stack, TWILIO_NUMBER};

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
