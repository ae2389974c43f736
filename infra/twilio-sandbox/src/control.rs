//! The `/_sandbox/` control API: inject faults, plan callbacks, inspect and reset.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use parley::twilio::Form;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::lenient_number;
use crate::error::ControlError;
use crate::state::{CallbackPlan, Fault, FaultKind, Shared, Status};
use parley::twilio::overrides::ConnectionOverrides;

/// The delay of `slow` and `accept_then_timeout` when `delay_ms` is not given.
const DEFAULT_FAULT_DELAY_MS: u64 = 5_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    to: Option<String>,
    kind: FaultKind,
    count: Option<u32>,
    delay_ms: Option<u64>,
}

/// `POST /_sandbox/faults`
pub(crate) async fn add_fault(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: FaultRequest = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let count = request.count.unwrap_or(1);
    if count == 0 {
        return ControlError("count must be at least 1".into()).into_response();
    }
    let delay_ms = match request.kind {
        FaultKind::Slow | FaultKind::AcceptThenTimeout => {
            request.delay_ms.unwrap_or(DEFAULT_FAULT_DELAY_MS)
        }
        FaultKind::RateLimited | FaultKind::ServerError => 0,
    };
    let fault = Fault {
        to: request.to,
        kind: request.kind,
        count,
        delay_ms,
    };
    tracing::info!(
        kind = fault.kind.as_str(),
        count,
        delay_ms,
        "fault injected"
    );
    shared.state().faults.push(fault.clone());
    (StatusCode::CREATED, Json(fault)).into_response()
}

/// `GET /_sandbox/faults`: the faults not used up yet.
pub(crate) async fn faults(State(shared): State<Arc<Shared>>) -> Response {
    Json(json!({ "faults": shared.state().faults })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallbacksRequest {
    to: Option<String>,
    sequence: Vec<Status>,
    error_code: Option<u32>,
    delay_ms: Option<u64>,
}

/// `POST /_sandbox/callbacks`: the statuses later messages (to `to`, or to anyone) report, and
/// optionally the pause before each (`delay_ms`).
pub(crate) async fn set_callbacks(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: CallbacksRequest = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let plan = CallbackPlan {
        sequence: request.sequence,
        error_code: request.error_code,
        delay_ms: request.delay_ms,
    };
    shared
        .state()
        .plans
        .insert(request.to.clone(), plan.clone());
    Json(json!({
        "to": request.to,
        "sequence": plan.sequence,
        "error_code": plan.error_code,
        "delay_ms": plan.delay_ms,
    }))
    .into_response()
}

/// `GET /_sandbox/messages[?to=…]`: every created message (oldest first) with its resource,
/// `create_calls` for its To+Body, its `status_callback` and the callbacks sent so far.
pub(crate) async fn messages(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Response {
    let to = match to_filter(query.as_deref()) {
        Ok(to) => to,
        Err(e) => return e.into_response(),
    };
    let state = shared.state();
    let messages: Vec<Value> = state
        .messages
        .iter()
        .filter(|m| to.as_ref().is_none_or(|to| &m.to == to))
        .map(|m| {
            let mut resource = m.resource();
            if let Value::Object(fields) = &mut resource {
                fields.insert(
                    "create_calls".into(),
                    json!(state.create_calls(&m.to, &m.body)),
                );
                fields.insert("status_callback".into(), json!(m.status_callback));
                fields.insert("callbacks".into(), json!(m.callbacks));
                fields.insert("webhook_attempts".into(), json!(m.webhook_attempts));
            }
            resource
        })
        .collect();
    Json(json!({ "messages": messages })).into_response()
}

/// `GET /_sandbox/calls[?to=…]`: every create call in arrival order.
pub(crate) async fn calls(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Response {
    let to = match to_filter(query.as_deref()) {
        Ok(to) => to,
        Err(e) => return e.into_response(),
    };
    let state = shared.state();
    let calls: Vec<_> = state
        .calls
        .iter()
        .filter(|c| to.is_none() || c.to == to)
        .collect();
    Json(json!({ "calls": calls })).into_response()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    to: Option<String>,
}

/// `POST /_sandbox/reset`: forgets everything, or with `{"to": …}` only that recipient's
/// messages, calls, faults and callback plan.
pub(crate) async fn reset(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: ResetRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ResetRequest::default()
    } else {
        match parse_json(&body) {
            Ok(r) => r,
            Err(e) => return e.into_response(),
        }
    };
    shared.state().reset(request.to.as_deref());
    StatusCode::NO_CONTENT.into_response()
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ControlError> {
    stub_server::json_body(body).map_err(ControlError)
}

fn to_filter(query: Option<&str>) -> Result<Option<String>, ControlError> {
    let form = Form::parse(query.unwrap_or("").as_bytes())
        .map_err(|e| ControlError(format!("invalid query string: {e}")))?;
    Ok(form.get("to").map(lenient_number))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rotation {
    auth_token: String,
}

/// `POST /_sandbox/auth-token`
pub(crate) async fn rotate_auth_token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let rotation: Rotation = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if rotation.auth_token.trim().is_empty() {
        return ControlError("auth_token must not be empty".into()).into_response();
    }
    shared.rotate_auth_token(rotation.auth_token);
    tracing::info!("auth token rotated");
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewApiKey {
    sid: String,
    secret: String,
}

/// `POST /_sandbox/api-keys`
pub(crate) async fn add_api_key(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let key: NewApiKey = match parse_json(&body) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    if !key.sid.starts_with("SK") || key.secret.is_empty() {
        return ControlError("sid must start with SK and secret must not be empty".into())
            .into_response();
    }
    shared.add_api_key(key.sid, key.secret);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncomingNumber {
    number: String,
    sms_url: String,
}

/// `POST /_sandbox/incoming-numbers` `{"number", "sms_url"}`: the number's "A message comes
/// in" webhook, as set in Twilio's console; its fragment's connection overrides are checked
/// as Twilio checks them.
pub(crate) async fn set_incoming_number(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Response {
    let request: IncomingNumber = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = check_url(&request.sms_url) {
        return e.into_response();
    }
    let number = lenient_number(&request.number);
    shared.set_incoming_url(number.clone(), request.sms_url.clone());
    Json(json!({"number": number, "sms_url": request.sms_url})).into_response()
}

fn check_url(url: &str) -> Result<ConnectionOverrides, ControlError> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ControlError("sms_url must be an http(s) URL".into()));
    }
    ConnectionOverrides::of_url(url).map_err(|e| ControlError(format!("sms_url: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiveRequest {
    from: String,
    to: String,
    #[serde(default)]
    body: String,
    /// Content types of the media the text carries (`["image/jpeg"]`).
    #[serde(default)]
    media: Vec<String>,
    /// The webhook to deliver to; default: the number's (`/_sandbox/incoming-numbers`).
    sms_url: Option<String>,
}

/// `POST /_sandbox/receive` `{"from", "to", "body"?, "media"?, "sms_url"?}`: Twilio receives a
/// text on `to`. It is stored (`inbound`, `received`, a new `SM…`/`MM…` SID, listed by the
/// Messages API) and its signed webhook delivered with the URL's retry behaviour. Answers
/// `201 {"message": resource, "webhook": {"url", "delivered", "attempts"}}` once delivery
/// succeeded or gave up.
pub(crate) async fn receive(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: ReceiveRequest = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let (from, to) = (lenient_number(&request.from), lenient_number(&request.to));
    if from.trim().is_empty() || to.trim().is_empty() {
        return ControlError("from and to are required".into()).into_response();
    }
    if request.media.len() > 10 {
        return ControlError("at most 10 media".into()).into_response();
    }
    let Some(url) = request.sms_url.clone().or_else(|| shared.incoming_url(&to)) else {
        return ControlError(format!(
            "no webhook for {to}: set one with POST /_sandbox/incoming-numbers or give sms_url"
        ))
        .into_response();
    };
    let overrides = match check_url(&url) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let message = shared.receive(from, to, request.body, request.media);
    tracing::info!(message_sid = %message.sid, "message received");
    let delivered = crate::inbound::deliver(&shared, &message, &url, overrides).await;
    let attempts = shared
        .state()
        .messages
        .iter()
        .find(|m| m.sid == message.sid)
        .map(|m| json!(m.webhook_attempts))
        .unwrap_or_else(|| json!([]));
    (
        StatusCode::CREATED,
        Json(json!({
            "message": message.resource(),
            "webhook": {"url": url, "delivered": delivered, "attempts": attempts},
        })),
    )
        .into_response()
}
