//! What every authenticated API call shares: the key is checked (and its scope and rate), the
//! call runs, and one access-log line records who called which route with what result.

use std::future::Future;
use std::time::Instant;

use lambda_http::{Body, Request, RequestExt, Response};

use crate::access::{Access, Caller, Scope};
use crate::error::ApiError;
use crate::http::header_str;
use crate::metrics::Metrics;

/// Runs `call` for the caller behind the request's key, if the key has `scope` (any valid
/// key when `None`). The access log names the route's template (`GET /conversations/{…}`),
/// never its path: paths carry phone numbers.
pub async fn call<F, Fut>(
    access: &Access,
    req: &Request,
    scope: Option<Scope>,
    call: F,
) -> Response<Body>
where
    F: FnOnce(Caller) -> Fut,
    Fut: Future<Output = Result<Response<Body>, ApiError>>,
{
    let started = Instant::now();
    let mut key_id = None;
    let result = async {
        let caller = access
            .authenticate(header_str(req, "authorization"))
            .await?;
        key_id = Some(caller.key_id().to_owned());
        access.admit(&caller, scope).await?;
        call(caller).await
    }
    .await;
    let response = result.unwrap_or_else(ApiError::into_response);
    let route = route_key(req);
    let latency_ms = started.elapsed().as_secs_f64() * 1e3;
    tracing::info!(
        target: "access",
        key_id = key_id.as_deref().unwrap_or("-"),
        route = %route,
        status = response.status().as_u16(),
        latency_ms,
        "api call"
    );
    // ServerErrors (by route: a template, never a path) is watched by ApiHandlerErrorsAlarm.
    Metrics::new("api")
        .dimension("key_id", key_id.as_deref().unwrap_or("none"))
        .dimension("route", route)
        .count("ApiCalls", 1)
        .count(
            "ServerErrors",
            u64::from(response.status().is_server_error()),
        )
        .emit();
    response
}

/// API Gateway's route key (`POST /sms/send`), or the method alone when there is none.
pub fn route_key(req: &Request) -> String {
    match req.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => ctx
            .route_key
            .clone()
            .unwrap_or_else(|| req.method().to_string()),
        _ => req.method().to_string(),
    }
}
