//! The tenant API: lookup by exact phone string, fetch, profile update; behind a bearer token.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{HeaderMap, StatusCode};
use parley::twilio::Form;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::state::{now, FaultKind, Gate, Lookup, ProfileUpdate, Shared};
use crate::tenant::{Language, Tenant};

type Answer = Result<Value, ApiError>;

/// `GET /tenants/lookup?phone=…`: the tenant storing exactly that string.
pub(crate) async fn lookup(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let phone = query_param(query.as_deref(), "phone");
    let scope = phone.as_ref().ok().and_then(Option::as_deref);
    let gate = shared.admit(&headers, scope);
    let phone = match phone {
        Ok(Some(phone)) => phone,
        // Without a phone there is nothing to record: answer the refusal, else the 400.
        unusable => {
            let error = match (gate, unusable) {
                (Gate::Refuse(e, _), _) | (_, Err(e)) => e,
                _ => ApiError::bad_request("the phone query parameter is required"),
            };
            return error.into_response();
        }
    };
    let (answer, delay) = record_lookup(&shared, gate, phone);
    respond(&shared, delay, answer).await
}

/// `GET /tenants/{tenant_id}`
pub(crate) async fn fetch(
    State(shared): State<Arc<Shared>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let delay = match shared.admit(&headers, None) {
        Gate::Refuse(e, _) => return e.into_response(),
        Gate::Pass => None,
        Gate::Slow(delay) => Some(delay),
    };
    let answer = match path {
        Ok(Path(tenant_id)) => found(shared.state().tenant(&tenant_id)),
        Err(_) => Err(ApiError::NotFound),
    };
    respond(&shared, delay, answer).await
}

/// `PUT /tenants/{tenant_id}/profile`: sets `preferred_language`; every request is recorded.
pub(crate) async fn update_profile(
    State(shared): State<Arc<Shared>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(Path(tenant_id)) = path else {
        return ApiError::NotFound.into_response();
    };
    let parsed: Result<Value, _> = serde_json::from_slice(&body);
    let gate = shared.admit(&headers, None);
    let (answer, delay) = record_update(&shared, gate, tenant_id, parsed, &body);
    respond(&shared, delay, answer).await
}

/// Looks `phone` up (unless refused) and records the lookup, under one lock.
fn record_lookup(shared: &Shared, gate: Gate, phone: String) -> (Answer, Option<Duration>) {
    let mut state = shared.state();
    let (answer, fault, delay) = match gate {
        Gate::Refuse(e, fault) => (Err(e), fault, None),
        Gate::Pass => (found(state.tenant_with_number(&phone)), None, None),
        Gate::Slow(delay) => (
            found(state.tenant_with_number(&phone)),
            Some(FaultKind::Slow),
            Some(delay),
        ),
    };
    state.lookups.push(Lookup {
        phone,
        status: status_of(&answer).as_u16(),
        fault,
        received_at: now(),
    });
    (answer, delay)
}

/// Applies the update (unless refused) and records it, under one lock.
fn record_update(
    shared: &Shared,
    gate: Gate,
    tenant_id: String,
    parsed: Result<Value, serde_json::Error>,
    raw: &[u8],
) -> (Answer, Option<Duration>) {
    let mut state = shared.state();
    let (answer, fault, delay) = match gate {
        Gate::Refuse(e, fault) => (Err(e), fault, None),
        Gate::Pass => (apply(state.tenant_mut(&tenant_id), &parsed), None, None),
        Gate::Slow(delay) => (
            apply(state.tenant_mut(&tenant_id), &parsed),
            Some(FaultKind::Slow),
            Some(delay),
        ),
    };
    let body = parsed.unwrap_or_else(|_| Value::String(String::from_utf8_lossy(raw).into()));
    state.updates.push(ProfileUpdate {
        tenant_id,
        body,
        received_at: now(),
        status: status_of(&answer).as_u16(),
        fault,
    });
    (answer, delay)
}

fn apply(tenant: Option<&mut Tenant>, body: &Result<Value, serde_json::Error>) -> Answer {
    let tenant = tenant.ok_or(ApiError::NotFound)?;
    let body = body
        .as_ref()
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    let fields = body
        .as_object()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    let language = fields
        .get("preferred_language")
        .and_then(Value::as_str)
        .and_then(Language::parse)
        .ok_or_else(|| ApiError::bad_request("preferred_language must be one of en, es, pt"))?;
    tenant.preferred_language = Some(language);
    Ok(json!({ "tenant": tenant }))
}

fn found(tenant: Option<&Tenant>) -> Answer {
    tenant
        .map(|t| json!({ "tenant": t }))
        .ok_or(ApiError::NotFound)
}

fn status_of(answer: &Answer) -> StatusCode {
    match answer {
        Ok(_) => StatusCode::OK,
        Err(e) => e.status(),
    }
}

/// Answers now, or after `delay` (a `slow` fault); 503 if the stub stops meanwhile.
async fn respond(shared: &Shared, delay: Option<Duration>, answer: Answer) -> Response {
    if let Some(delay) = delay {
        if !shared.delay(delay).await {
            return ApiError::Unavailable.into_response();
        }
    }
    match answer {
        Ok(body) => Json(body).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The first value of `key` in a query string, form-decoded (`%2B` is `+`, a bare `+` is a
/// space), exactly as a web framework would hand it to the Monitor.
pub(crate) fn query_param(query: Option<&str>, key: &str) -> Result<Option<String>, ApiError> {
    let form = Form::parse(query.unwrap_or("").as_bytes())
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
    Ok(form.get(key).map(str::to_owned))
}

/// Unknown paths.
pub(crate) async fn not_found() -> Response {
    ApiError::NotFound.into_response()
}

/// Known paths, wrong method.
pub(crate) async fn method_not_allowed() -> Response {
    ApiError::MethodNotAllowed.into_response()
}
