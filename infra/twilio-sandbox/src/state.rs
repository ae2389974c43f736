//! The sandbox's memory: messages, every create call, pending faults and callback plans.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use parley::twilio::overrides::AttemptOutcome;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc2822;
use time::OffsetDateTime;

use crate::validate::{self, Accepted};
use crate::SandboxConfig;

/// The number a Messaging Service sends from, chosen once the message leaves the queue.
pub(crate) const POOL_NUMBER: &str = "+15005550006";

/// Twilio's message statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    Accepted,
    Scheduled,
    Queued,
    Sending,
    Sent,
    Delivered,
    Read,
    Undelivered,
    Failed,
    Canceled,
    /// An inbound message Twilio has received.
    Received,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Scheduled => "scheduled",
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Undelivered => "undelivered",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Received => "received",
        }
    }

    /// Progress order: the stored resource only moves forward, whatever order callbacks go in.
    fn rank(self) -> u8 {
        match self {
            Self::Accepted | Self::Scheduled | Self::Received => 0,
            Self::Queued => 1,
            Self::Sending => 2,
            Self::Sent => 3,
            Self::Delivered => 4,
            Self::Read => 5,
            Self::Undelivered | Self::Failed | Self::Canceled => 6,
        }
    }

    pub fn is_failure(self) -> bool {
        matches!(self, Self::Undelivered | Self::Failed)
    }

    fn has_left_twilio(self) -> bool {
        matches!(
            self,
            Self::Sent | Self::Delivered | Self::Read | Self::Undelivered
        )
    }
}

/// The error code of a failed or undelivered message when the plan names none.
pub(crate) const DEFAULT_DELIVERY_ERROR: u32 = 30003;

/// Twilio's description of its delivery error codes.
pub(crate) fn delivery_error_message(code: u32) -> &'static str {
    match code {
        30001 => "Queue overflow",
        30002 => "Account suspended",
        30003 => "Unreachable destination handset",
        30004 => "Message blocked",
        30005 => "Unknown destination handset",
        30006 => "Landline or unreachable carrier",
        30007 => "Carrier violation",
        30008 => "Unknown error",
        _ => "Message delivery failed",
    }
}

/// What a recipient's messages report after creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CallbackPlan {
    pub sequence: Vec<Status>,
    pub error_code: Option<u32>,
    /// The pause before each callback, when not the sandbox's `callback_delay`: late
    /// callbacks, e.g. one arriving after a store outage began or a worker crashed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
}

impl Default for CallbackPlan {
    fn default() -> Self {
        Self {
            sequence: vec![Status::Queued, Status::Sent, Status::Delivered],
            error_code: None,
            delay_ms: None,
        }
    }
}

/// One status callback attempt (each retry its own), as shown by `/_sandbox/messages`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CallbackAttempt {
    pub status: Status,
    #[serde(flatten)]
    pub outcome: WebhookAttempt,
}

/// Which way a message went, as Twilio's `direction` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Created through the API (`outbound-api`).
    OutboundApi,
    /// Received on one of the account's numbers (`inbound`).
    Inbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OutboundApi => "outbound-api",
            Self::Inbound => "inbound",
        }
    }
}

/// One medium of an inbound message, as its Media subresource lists it.
#[derive(Debug, Clone)]
pub(crate) struct MediaItem {
    pub sid: String,
    pub content_type: String,
}

/// One delivery attempt of a webhook, as `/_sandbox/messages` shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct WebhookAttempt {
    /// The HTTP status Parley answered, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_status: Option<u16>,
    /// `connect` or `timeout` when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
}

impl WebhookAttempt {
    pub fn of(outcome: AttemptOutcome) -> Self {
        match outcome {
            AttemptOutcome::Status(code) => Self {
                response_status: Some(code),
                error: None,
            },
            AttemptOutcome::ReadTimedOut => Self {
                response_status: None,
                error: Some("timeout"),
            },
            AttemptOutcome::ConnectFailed => Self {
                response_status: None,
                error: Some("connect"),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub sid: String,
    pub direction: Direction,
    pub account_sid: String,
    pub to: String,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub body: String,
    pub num_media: usize,
    pub num_segments: usize,
    pub status: Status,
    pub error_code: Option<u32>,
    pub date_created: OffsetDateTime,
    pub date_updated: OffsetDateTime,
    pub date_sent: Option<OffsetDateTime>,
    pub status_callback: Option<String>,
    pub callbacks: Vec<CallbackAttempt>,
    pub media: Vec<MediaItem>,
    pub webhook_attempts: Vec<WebhookAttempt>,
}

impl Message {
    pub fn uri(&self) -> String {
        format!(
            "/2010-04-01/Accounts/{}/Messages/{}.json",
            self.account_sid, self.sid
        )
    }

    /// Twilio's message resource JSON.
    pub fn resource(&self) -> Value {
        let base = format!(
            "/2010-04-01/Accounts/{}/Messages/{}",
            self.account_sid, self.sid
        );
        json!({
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": self.body,
            "date_created": rfc2822(self.date_created),
            "date_sent": self.date_sent.map(rfc2822),
            "date_updated": rfc2822(self.date_updated),
            "direction": self.direction.as_str(),
            "error_code": self.error_code,
            "error_message": self.error_code.map(delivery_error_message),
            "from": self.from,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": self.num_media.to_string(),
            "num_segments": self.num_segments.to_string(),
            "price": null,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status.as_str(),
            "to": self.to,
            "subresource_uris": {
                "media": format!("{base}/Media.json"),
                "feedback": format!("{base}/Feedback.json"),
            },
            "uri": self.uri(),
        })
    }

    /// The date Twilio's `DateSent` filters compare: the send date. A message still queued
    /// (or accepted by a Messaging Service) has none, as at Twilio, and matches no `DateSent`
    /// filter at all: whoever looks for it must not filter on `DateSent`.
    pub fn date_for_filter(&self) -> Option<time::Date> {
        self.date_sent.map(OffsetDateTime::date)
    }

    /// The Media subresource's entries: `{sid, parent_sid, content_type, uri, …}`.
    pub fn media_list(&self) -> Vec<Value> {
        self.media
            .iter()
            .map(|m| {
                json!({
                    "sid": m.sid,
                    "account_sid": self.account_sid,
                    "parent_sid": self.sid,
                    "content_type": m.content_type,
                    "date_created": rfc2822(self.date_created),
                    "date_updated": rfc2822(self.date_created),
                    "uri": self.media_uri(&m.sid),
                })
            })
            .collect()
    }

    /// `/2010-04-01/Accounts/{AC}/Messages/{MM}/Media/{ME}.json`; the medium's URL is this
    /// without `.json`, under the API's base.
    pub fn media_uri(&self, media_sid: &str) -> String {
        format!(
            "/2010-04-01/Accounts/{}/Messages/{}/Media/{media_sid}.json",
            self.account_sid, self.sid
        )
    }
}

pub(crate) fn rfc2822(t: OffsetDateTime) -> String {
    t.format(&Rfc2822).unwrap_or_else(|_| t.to_string())
}

/// Fault kinds of `POST /_sandbox/faults`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FaultKind {
    RateLimited,
    ServerError,
    Slow,
    AcceptThenTimeout,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::ServerError => "server_error",
            Self::Slow => "slow",
            Self::AcceptThenTimeout => "accept_then_timeout",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Fault {
    pub to: Option<String>,
    pub kind: FaultKind,
    pub count: u32,
    pub delay_ms: u64,
}

/// One `POST …/Messages.json` as it arrived, and what became of it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Call {
    #[serde(skip)]
    pub id: u64,
    pub to: Option<String>,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub body: Option<String>,
    pub status_callback: Option<String>,
    /// When the call arrived: Unix seconds, with the clock's precision (for pacing checks).
    pub received_at: f64,
    /// `pending` while in flight, `created`, `error:<code>`, or `abandoned` when the client
    /// went away before an injected delay ended (nothing was created).
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The call's `X-Amzn-Trace-Id` header, when it had one (Twilio ignores it; the sandbox
    /// shows it so a test can follow a trace to Twilio's door).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_header: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub messages: Vec<Message>,
    pub calls: Vec<Call>,
    pub faults: Vec<Fault>,
    /// Keyed by recipient; `None` is the plan for every recipient without its own.
    pub plans: HashMap<Option<String>, CallbackPlan>,
}

impl State {
    /// Create requests that arrived for this `To` and `Body`, whatever became of them.
    pub fn create_calls(&self, to: &str, body: &str) -> usize {
        self.calls
            .iter()
            .filter(|c| c.to.as_deref() == Some(to) && c.body.as_deref().unwrap_or("") == body)
            .count()
    }

    /// Takes one use of the first fault for this recipient, else of the first global fault.
    pub fn take_fault(&mut self, to: Option<&str>) -> Option<Fault> {
        let index = self
            .faults
            .iter()
            .position(|f| f.to.is_some() && f.to.as_deref() == to)
            .or_else(|| self.faults.iter().position(|f| f.to.is_none()))?;
        let fault = &mut self.faults[index];
        fault.count = fault.count.saturating_sub(1);
        let taken = fault.clone();
        if fault.count == 0 {
            self.faults.remove(index);
        }
        Some(taken)
    }

    pub fn plan_for(&self, to: &str) -> CallbackPlan {
        self.plans
            .get(&Some(to.to_owned()))
            .or_else(|| self.plans.get(&None))
            .cloned()
            .unwrap_or_default()
    }

    /// Forgets everything, or only what concerns one recipient.
    pub fn reset(&mut self, to: Option<&str>) {
        match to {
            None => *self = Self::default(),
            Some(to) => {
                self.messages.retain(|m| m.to != to);
                self.calls.retain(|c| c.to.as_deref() != Some(to));
                self.faults.retain(|f| f.to.as_deref() != Some(to));
                self.plans.remove(&Some(to.to_owned()));
            }
        }
    }
}

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: SandboxConfig,
    pub http: reqwest::Client,
    /// The auth token in force: the configured one until a rotation replaces it.
    auth_token: std::sync::RwLock<String>,
    /// API keys (`SK…` SID → secret) that may stand in for the account's auth token.
    api_keys: Mutex<std::collections::HashMap<String, String>>,
    state: Mutex<State>,
    closed: AtomicBool,
    call_ids: AtomicU64,
    /// Each number's "A message comes in" webhook (Twilio's IncomingPhoneNumber `SmsUrl`).
    incoming: Mutex<HashMap<String, String>>,
    api_base: std::sync::OnceLock<String>,
}

/// A status change made on a stored message, with what its callback must carry.
pub(crate) struct Progress {
    pub url: Option<String>,
    pub params: Vec<(String, String)>,
}

impl Shared {
    pub fn new(config: SandboxConfig) -> std::io::Result<Arc<Self>> {
        let http = reqwest::Client::builder()
            .timeout(config.callback_timeout)
            .user_agent("TwilioProxy/1.1")
            .build()
            .map_err(std::io::Error::other)?;
        let incoming = Mutex::new(config.incoming.iter().cloned().collect());
        Ok(Arc::new(Self {
            auth_token: std::sync::RwLock::new(config.auth_token.clone()),
            api_keys: Mutex::new(std::collections::HashMap::new()),
            config,
            http,
            state: Mutex::new(State::default()),
            closed: AtomicBool::new(false),
            call_ids: AtomicU64::new(0),
            incoming,
            api_base: std::sync::OnceLock::new(),
        }))
    }

    /// The state, even if a panic elsewhere poisoned the lock (the data stays usable).
    pub fn state(&self) -> MutexGuard<'_, State> {
        stub_server::lock(&self.state)
    }

    /// The token API requests must carry and callbacks are signed with.
    pub fn auth_token(&self) -> String {
        self.auth_token
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Rotates the auth token as Twilio's console does when a secondary token is promoted:
    /// the old one stops working at once.
    pub fn rotate_auth_token(&self, token: String) {
        *self
            .auth_token
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = token;
    }

    /// Registers an API key (a new secret for a known SID replaces the old one).
    pub fn add_api_key(&self, sid: String, secret: String) {
        stub_server::lock(&self.api_keys).insert(sid, secret);
    }

    pub fn api_key_matches(&self, sid: &str, secret: &str) -> bool {
        stub_server::lock(&self.api_keys)
            .get(sid)
            .is_some_and(|s| s == secret)
    }

    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub fn next_call_id(&self) -> u64 {
        self.call_ids.fetch_add(1, Ordering::Relaxed)
    }

    pub fn callback_delay(&self) -> Duration {
        self.config.callback_delay
    }

    /// How long a callback attempt may take before it counts as timed out.
    pub fn callback_timeout(&self) -> Duration {
        self.config.callback_timeout
    }

    /// Stores a new message for an accepted request and returns it with its callback plan.
    pub fn create(&self, accepted: Accepted) -> (Message, CallbackPlan) {
        let now = OffsetDateTime::now_utc();
        let prefix = if accepted.media_urls.is_empty() {
            "SM"
        } else {
            "MM"
        };
        let message = Message {
            sid: format!("{prefix}{:032x}", ulid::Ulid::new().0),
            direction: Direction::OutboundApi,
            media: Vec::new(),
            webhook_attempts: Vec::new(),
            account_sid: self.config.account_sid.clone(),
            num_segments: validate::segments(&accepted.body),
            num_media: accepted.media_urls.len(),
            status: if accepted.messaging_service_sid.is_some() {
                Status::Accepted
            } else {
                Status::Queued
            },
            to: accepted.to,
            from: accepted.from,
            messaging_service_sid: accepted.messaging_service_sid,
            body: accepted.body,
            error_code: None,
            date_created: now,
            date_updated: now,
            date_sent: None,
            status_callback: accepted.status_callback,
            callbacks: Vec::new(),
        };
        let mut state = self.state();
        let plan = state.plan_for(&message.to);
        state.messages.push(message.clone());
        (message, plan)
    }

    /// Moves a message to `status` (never backwards) and returns the callback to send for it;
    /// `None` once the message is gone (reset) or the sandbox has stopped.
    pub fn advance(&self, sid: &str, status: Status, error_code: Option<u32>) -> Option<Progress> {
        if self.is_closed() {
            return None;
        }
        let mut state = self.state();
        let message = state.messages.iter_mut().find(|m| m.sid == sid)?;
        let now = OffsetDateTime::now_utc();
        if message.from.is_none() && status.rank() >= Status::Queued.rank() {
            message.from = Some(POOL_NUMBER.to_owned());
        }
        let error_code = status
            .is_failure()
            .then(|| error_code.unwrap_or(DEFAULT_DELIVERY_ERROR));
        if status.rank() > message.status.rank() {
            message.status = status;
            message.date_updated = now;
            if error_code.is_some() {
                message.error_code = error_code;
            }
            if status.has_left_twilio() && message.date_sent.is_none() {
                message.date_sent = Some(now);
            }
        }
        let mut params = vec![
            ("MessageSid", message.sid.clone()),
            ("SmsSid", message.sid.clone()),
            ("MessageStatus", status.as_str().to_owned()),
            ("SmsStatus", status.as_str().to_owned()),
            ("AccountSid", message.account_sid.clone()),
            ("From", message.from.clone().unwrap_or_default()),
            ("To", message.to.clone()),
            ("ApiVersion", "2010-04-01".to_owned()),
        ];
        if let Some(service) = &message.messaging_service_sid {
            params.push(("MessagingServiceSid", service.clone()));
        }
        if let Some(code) = error_code {
            params.push(("ErrorCode", code.to_string()));
        }
        Some(Progress {
            url: message.status_callback.clone(),
            params: params.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        })
    }

    /// Stores a message received on `to` (status `received`, sent and created now) and returns
    /// it.
    pub fn receive(&self, from: String, to: String, body: String, media: Vec<String>) -> Message {
        let now = OffsetDateTime::now_utc();
        let prefix = if media.is_empty() { "SM" } else { "MM" };
        let message = Message {
            sid: format!("{prefix}{:032x}", ulid::Ulid::new().0),
            direction: Direction::Inbound,
            account_sid: self.config.account_sid.clone(),
            num_segments: validate::segments(&body),
            num_media: media.len(),
            status: Status::Received,
            to,
            from: Some(from),
            messaging_service_sid: None,
            body,
            error_code: None,
            date_created: now,
            date_updated: now,
            date_sent: Some(now),
            status_callback: None,
            callbacks: Vec::new(),
            media: media
                .into_iter()
                .map(|content_type| MediaItem {
                    sid: format!("ME{:032x}", ulid::Ulid::new().0),
                    content_type,
                })
                .collect(),
            webhook_attempts: Vec::new(),
        };
        self.state().messages.push(message.clone());
        message
    }

    pub fn record_webhook(&self, sid: &str, attempt: WebhookAttempt) {
        let mut state = self.state();
        if let Some(message) = state.messages.iter_mut().find(|m| m.sid == sid) {
            message.webhook_attempts.push(attempt);
        }
    }

    /// The "A message comes in" webhook configured for one of the account's numbers.
    pub fn incoming_url(&self, number: &str) -> Option<String> {
        stub_server::lock(&self.incoming).get(number).cloned()
    }

    pub fn set_incoming_url(&self, number: String, url: String) {
        stub_server::lock(&self.incoming).insert(number, url);
    }

    /// Where the API is reached (the base of media URLs): the listener's address once served,
    /// else Twilio's own.
    pub fn api_base(&self) -> String {
        self.api_base
            .get()
            .cloned()
            .unwrap_or_else(|| "https://api.twilio.com".to_owned())
    }

    pub fn set_api_base(&self, base: String) {
        let _ = self.api_base.set(base);
    }

    pub fn record_callback(&self, sid: &str, attempt: CallbackAttempt) {
        let mut state = self.state();
        if let Some(message) = state.messages.iter_mut().find(|m| m.sid == sid) {
            message.callbacks.push(attempt);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(to: Option<&str>, kind: FaultKind, count: u32) -> Fault {
        Fault {
            to: to.map(str::to_owned),
            kind,
            count,
            delay_ms: 0,
        }
    }

    #[test]
    fn recipient_faults_win_over_global_ones_and_run_out() {
        let mut state = State::default();
        state.faults.push(fault(None, FaultKind::ServerError, 1));
        state
            .faults
            .push(fault(Some("+14155550100"), FaultKind::RateLimited, 2));
        let kind = |s: &mut State, to| s.take_fault(Some(to)).map(|f| f.kind);
        assert_eq!(
            kind(&mut state, "+14155550100"),
            Some(FaultKind::RateLimited)
        );
        assert_eq!(
            kind(&mut state, "+14155550100"),
            Some(FaultKind::RateLimited)
        );
        assert_eq!(
            kind(&mut state, "+14155550100"),
            Some(FaultKind::ServerError)
        );
        assert_eq!(kind(&mut state, "+14155550100"), None);
        assert!(state.faults.is_empty());
    }

    #[test]
    fn another_recipients_fault_is_left_alone() {
        let mut state = State::default();
        state
            .faults
            .push(fault(Some("+14155550100"), FaultKind::Slow, 1));
        assert!(state.take_fault(Some("+14155550199")).is_none());
        assert!(state.take_fault(None).is_none());
        assert_eq!(state.faults.len(), 1);
    }

    #[test]
    fn status_ranks_only_move_forward() {
        assert!(Status::Sent.rank() > Status::Queued.rank());
        assert!(Status::Failed.rank() > Status::Delivered.rank());
        assert!(Status::Queued.rank() > Status::Accepted.rank());
    }
}
