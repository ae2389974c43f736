//! A local stand-in for the Twilio Messages API.
//!
//! It speaks the subset Parley uses, with Twilio's paths, JSON shapes and error bodies, answers
//! Twilio's magic test numbers the way Twilio does, fails on demand, and sends signed status
//! callbacks back.
//!
//! # Library
//!
//! - [`SandboxConfig`]: the account SID and auth token it accepts (HTTP Basic) and signs
//!   callbacks with, and the pace of callbacks.
//! - [`spawn`]: serve in the background on a listener; the returned [`RunningSandbox`] stops
//!   the server (and its pending callbacks) when dropped.
//! - [`serve`]: serve on a listener until the task is cancelled.
//! - [`router`]: the bare [`axum::Router`], to mount elsewhere.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! let config = twilio_sandbox::SandboxConfig::new("AC00000000000000000000000000000000", "token");
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let sandbox = twilio_sandbox::spawn(listener, config).await?;
//! let api_base = sandbox.url(); // "http://127.0.0.1:PORT": Twilio's https://api.twilio.com
//! // … point the send worker at `api_base`; dropping `sandbox` stops it.
//! # Ok(()) }
//! ```
//!
//! # Messages API (HTTP Basic `AccountSid:AuthToken`; the path's account must match)
//!
//! - `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` (form: `To`, `From` or
//!   `MessagingServiceSid`, `Body`, `MediaUrl`…, `StatusCallback`) → `201` and the message
//!   resource (`status` `queued`, or `accepted` with a Messaging Service; `MM…` SID with media).
//! - `GET …/Messages/{Sid}.json` → the resource, or `404` code 20404.
//! - `GET …/Messages.json?To=&From=&DateSent=YYYY-MM-DD&DateSent>=&DateSent<=&PageSize=&Page=`
//!   → Twilio's page (`page`, `page_size`, `next_page_uri` while more match), most recent
//!   first. As at Twilio, a message not yet sent (`queued`, `accepted`) has `date_sent: null`
//!   and matches no `DateSent` filter; identical bodies to one number are separate messages.
//!
//! Errors are Twilio's body, `{"code", "message", "more_info", "status"}`: 401/20003 bad
//! credentials; 400/21604 no `To`, 21603 no `From`, 21602 no `Body` nor `MediaUrl`, 21617
//! body over 1600 characters. Magic numbers (also behind `whatsapp:`): `To` +15005550001
//! 21211, …0002 21612, …0003 21408, …0004 21610, …0009 21614; `From` +15005550001 21212,
//! …0007 21606, …0008 21611; anything else well-formed is accepted.
//!
//! # Control API (no auth, JSON)
//!
//! - `POST /_sandbox/faults` `{"to"?, "kind", "count"? (1), "delay_ms"? (5000)}`: the next
//!   `count` create calls to `to` (or to anyone when absent; a recipient's own faults are used
//!   first) fail: `rate_limited` 429/20429, `server_error` 500/20500, `slow` (sleeps, then answers
//!   normally; a client that gives up first leaves nothing created and the call `abandoned`),
//!   `accept_then_timeout` (creates the message, then sleeps before answering).
//!   `GET /_sandbox/faults` lists those not used up.
//! - `POST /_sandbox/callbacks` `{"to"?, "sequence": ["queued","sent","delivered"],
//!   "error_code"?, "delay_ms"?}`: the statuses later messages to `to` (or to anyone) report,
//!   in that order, each after `delay_ms` (default: the sandbox's callback delay); a status
//!   may repeat (duplicated callbacks) and come out of order (default `queued, sent,
//!   delivered`; `failed`/`undelivered` carry `ErrorCode`, default 30003). The stored resource
//!   only moves forward, whatever the order.
//! - `GET /_sandbox/messages[?to=]`: `{"messages": [resource + "create_calls" (requests for
//!   that To+Body, failed ones included) + "status_callback" + "callbacks" sent]}`.
//! - `GET /_sandbox/calls[?to=]`: `{"calls": [{to, from, messaging_service_sid, body,
//!   status_callback, outcome: "created" | "error:21211" | "pending" | "abandoned", fault?,
//!   sid?, trace_header? (the call's `X-Amzn-Trace-Id`)}]}` in arrival order.
//! - `POST /_sandbox/auth-token` `{"auth_token"}` → 204: rotates the account's auth token, as
//!   promoting a secondary token in Twilio's console does (the old one stops working at once).
//! - `POST /_sandbox/api-keys` `{"sid": "SK…", "secret"}` → 204: an API key that may call the
//!   REST API in place of the auth token (a new secret for a known SID replaces the old one).
//! - `POST /_sandbox/reset` (optional `{"to"}`: only that recipient) → 204.
//! - `POST /_sandbox/incoming-numbers` `{"number", "sms_url"}`: a number's "A message comes
//!   in" webhook, connection overrides in its fragment (`#rc=3&rp=ct,rt,5xx`, checked as
//!   Twilio checks them; 400 when invalid). `parley-local up` sets `TWILIO_FROM_NUMBER`'s.
//! - `POST /_sandbox/receive` `{"from", "to", "body"?, "media"?: ["image/jpeg"], "sms_url"?}`:
//!   Twilio receives a text. It is stored (`direction` `inbound`, `status` `received`, a new
//!   `SM…` SID, `MM…` with media, `date_sent` now), listed by the Messages API like any other
//!   (newest first, `To`/`From`/`DateSent` filters, `PageSize`, `next_page_uri`) with its media
//!   under `…/Messages/{Sid}/Media.json`, and its webhook POSTed, signed, to `sms_url` or the
//!   number's: 1 + `rc` attempts at most, a failed one retried only if `rp` names its kind
//!   (`5xx`, `4xx`, `ct` connect failure, `rt` read timeout, `all`), each connecting within
//!   `ct` and answered within `rt`, all within `tt`; without a fragment Twilio's defaults (one
//!   retry, of connection failures only). Answers `201 {"message", "webhook": {"url",
//!   "delivered", "attempts": [{"response_status"} | {"error": "connect"|"timeout"}]}}` when
//!   delivery succeeded or gave up; `/_sandbox/messages` shows the attempts too.
//!
//! # Status callbacks
//!
//! After a create with a `StatusCallback`, each planned status is applied and POSTed (form)
//! every [`SandboxConfig::callback_delay`] with `MessageSid`, `SmsSid`, `MessageStatus`,
//! `SmsStatus`, `AccountSid`, `From`, `To`, `ApiVersion`, `MessagingServiceSid` (when used)
//! and `ErrorCode` (failed/undelivered), signed in `X-Twilio-Signature` over the URL exactly as
//! given. Delivery failures are logged and recorded, never fatal.

mod api;
mod callbacks;
mod control;
mod error;
mod inbound;
mod state;
mod validate;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};

use crate::state::Shared;

/// What the sandbox accepts and how it paces callbacks.
#[derive(Clone)]
pub struct SandboxConfig {
    /// The account in the API paths and the HTTP Basic user.
    pub account_sid: String,
    /// The HTTP Basic password and the key callbacks are signed with.
    pub auth_token: String,
    /// The pause before each status callback (default 50 ms).
    pub callback_delay: Duration,
    /// How long a callback POST may take before it counts as failed (default 5 s).
    pub callback_timeout: Duration,
    /// The account's numbers and their "A message comes in" webhooks (number, URL with any
    /// connection-override fragment).
    pub incoming: Vec<(String, String)>,
}

impl SandboxConfig {
    pub fn new(account_sid: impl Into<String>, auth_token: impl Into<String>) -> Self {
        Self {
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
            callback_delay: Duration::from_millis(50),
            callback_timeout: Duration::from_secs(5),
            incoming: Vec::new(),
        }
    }

    /// Configures `number`'s "A message comes in" webhook, as Twilio's console does.
    pub fn with_incoming_number(
        mut self,
        number: impl Into<String>,
        sms_url: impl Into<String>,
    ) -> Self {
        self.incoming.push((number.into(), sms_url.into()));
        self
    }
}

impl std::fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .field("callback_delay", &self.callback_delay)
            .field("callback_timeout", &self.callback_timeout)
            .field("incoming", &self.incoming)
            .finish()
    }
}

/// The sandbox's routes, with fresh state. Fails only if the callback HTTP client cannot be
/// built.
pub fn router(config: SandboxConfig) -> std::io::Result<axum::Router> {
    Ok(app(Shared::new(config)?))
}

fn app(shared: Arc<Shared>) -> axum::Router {
    let messages = "/2010-04-01/Accounts/{account_sid}/Messages.json";
    let message = "/2010-04-01/Accounts/{account_sid}/Messages/{file}";
    let media = "/2010-04-01/Accounts/{account_sid}/Messages/{sid}/Media.json";
    axum::Router::new()
        .route(messages, post(api::create).get(api::list))
        .route(message, get(api::fetch))
        .route(media, get(api::media))
        .route("/_sandbox/receive", post(control::receive))
        .route(
            "/_sandbox/incoming-numbers",
            post(control::set_incoming_number),
        )
        .route(
            "/_sandbox/faults",
            post(control::add_fault).get(control::faults),
        )
        .route("/_sandbox/callbacks", post(control::set_callbacks))
        .route("/_sandbox/messages", get(control::messages))
        .route("/_sandbox/calls", get(control::calls))
        .route("/_sandbox/reset", post(control::reset))
        .route("/_sandbox/auth-token", post(control::rotate_auth_token))
        .route("/_sandbox/api-keys", post(control::add_api_key))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .with_state(shared)
}

/// Serves the sandbox on `listener` until the returned future is dropped or fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: SandboxConfig,
) -> std::io::Result<()> {
    axum::serve(listener, router(config)?).await
}

/// Serves the sandbox on `listener` in the background.
pub async fn spawn(
    listener: tokio::net::TcpListener,
    config: SandboxConfig,
) -> std::io::Result<RunningSandbox> {
    let addr = listener.local_addr()?;
    let shared = Shared::new(config)?;
    shared.set_api_base(format!("http://{addr}"));
    let closing = shared.clone();
    stub_server::spawn("twilio sandbox", listener, app(shared), move || {
        closing.close()
    })
}

/// A sandbox serving in the background; dropping it stops the server and pending callbacks.
/// `url()` is where `https://api.twilio.com` would be.
pub type RunningSandbox = stub_server::Running;
