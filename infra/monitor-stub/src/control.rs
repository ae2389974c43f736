//! The `/_stub/` control API (no auth): tenants, recorded requests, faults, reset.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use crate::api::query_param;
use crate::error::ApiError;
use crate::state::{Fault, FaultKind, Shared};
use crate::tenant::Tenant;

/// How long `slow` holds an answer when `delay_ms` is not given.
const DEFAULT_SLOW_MS: u64 = 3_000;

/// `POST /_stub/tenants`: adds the tenant, or replaces the one with its id.
pub(crate) async fn put_tenant(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let tenant: Tenant = match parse_json(&body) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    if tenant.tenant_id.trim().is_empty() {
        return ApiError::bad_request("tenant_id must not be empty").into_response();
    }
    shared.state().upsert(tenant.clone());
    (StatusCode::CREATED, Json(json!({ "tenant": tenant }))).into_response()
}

/// `GET /_stub/tenants`: every tenant as stored now.
pub(crate) async fn tenants(State(shared): State<Arc<Shared>>) -> Response {
    Json(json!({ "tenants": shared.state().tenants })).into_response()
}

/// `GET /_stub/profile-updates[?tenant_id=…]`, in arrival order.
pub(crate) async fn profile_updates(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Response {
    let tenant_id = match query_param(query.as_deref(), "tenant_id") {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let state = shared.state();
    let updates: Vec<_> = state
        .updates
        .iter()
        .filter(|u| tenant_id.as_ref().is_none_or(|id| &u.tenant_id == id))
        .collect();
    Json(json!({ "updates": updates })).into_response()
}

/// `GET /_stub/lookups[?phone=…]`, in arrival order; `phone` is compared exactly.
pub(crate) async fn lookups(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Response {
    let phone = match query_param(query.as_deref(), "phone") {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let state = shared.state();
    let lookups: Vec<_> = state
        .lookups
        .iter()
        .filter(|l| phone.as_ref().is_none_or(|p| &l.phone == p))
        .collect();
    Json(json!({ "lookups": lookups })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    kind: FaultKind,
    count: Option<u32>,
    delay_ms: Option<u64>,
    phone: Option<String>,
}

/// `POST /_stub/faults` → 201 and the fault.
pub(crate) async fn add_fault(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: FaultRequest = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let count = match request.kind {
        FaultKind::Down => None,
        FaultKind::ServerError | FaultKind::Slow => Some(request.count.unwrap_or(1)),
    };
    if count == Some(0) {
        return ApiError::bad_request("count must be at least 1").into_response();
    }
    let delay_ms = match request.kind {
        FaultKind::Slow => Some(request.delay_ms.unwrap_or(DEFAULT_SLOW_MS)),
        FaultKind::ServerError | FaultKind::Down => None,
    };
    let fault = Fault {
        kind: request.kind,
        count,
        delay_ms,
        phone: request.phone,
    };
    tracing::info!(kind = ?fault.kind, count, delay_ms, scoped = fault.phone.is_some(), "fault injected");
    shared.state().faults.push(fault.clone());
    (StatusCode::CREATED, Json(fault)).into_response()
}

/// `GET /_stub/faults`: the faults still in force.
pub(crate) async fn faults(State(shared): State<Arc<Shared>>) -> Response {
    Json(json!({ "faults": shared.state().faults })).into_response()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ClearRequest {
    phone: Option<String>,
}

/// `POST /_stub/faults/clear` [`{"phone"}`]: every fault, or only those scoped to `phone`.
pub(crate) async fn clear_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: ClearRequest = match parse_optional_json(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let mut state = shared.state();
    let before = state.faults.len();
    match &request.phone {
        None => state.faults.clear(),
        Some(phone) => state
            .faults
            .retain(|f| f.phone.as_deref() != Some(phone.as_str())),
    }
    let cleared = before - state.faults.len();
    Json(json!({ "cleared": cleared })).into_response()
}

/// `POST /_stub/reset` → 204: fixtures back, no updates, lookups or faults.
pub(crate) async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    shared.reset();
    StatusCode::NO_CONTENT.into_response()
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    stub_server::json_body(body).map_err(ApiError::bad_request)
}

fn parse_optional_json<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse_json(body)
    }
}
