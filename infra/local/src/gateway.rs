//! The local API Gateway: serves the template's HTTP routes by calling the same handler code
//! the Lambda functions run, through the same API Gateway v2 event decoding.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::response::IntoResponse;
use futures::future::BoxFuture;
use http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use tracing::Instrument;

use crate::apigw;
use crate::template::Route;

/// API Gateway's own payload limit; larger bodies never reach a function.
pub const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;

/// A function as the gateway sees it: a request in, a response out.
pub type HttpFunction = Arc<dyn Fn(Request) -> BoxFuture<'static, Response<Body>> + Send + Sync>;

pub struct Gateway {
    routes: Vec<Route>,
    functions: HashMap<String, HttpFunction>,
}

impl Gateway {
    /// Fails when a route names a function the gateway cannot run, so the template and the
    /// gateway cannot drift apart silently.
    pub fn new(
        routes: Vec<Route>,
        functions: HashMap<String, HttpFunction>,
    ) -> Result<Self, String> {
        if let Some(route) = routes.iter().find(|r| !functions.contains_key(&r.function)) {
            return Err(format!(
                "template route {} {} uses {}, which the local gateway does not know",
                route.method, route.path, route.function
            ));
        }
        Ok(Self { routes, functions })
    }

    pub fn router(self) -> axum::Router {
        axum::Router::new()
            .fallback(dispatch)
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(Arc::new(self))
    }

    fn find(&self, method: &str, path: &str) -> Option<(&Route, Vec<(String, String)>)> {
        self.routes.iter().find_map(|route| {
            (route.method == method || route.method == "ANY")
                .then(|| match_path(&route.path, path))
                .flatten()
                .map(|params| (route, params))
        })
    }
}

/// Matches `/conversations/{phone}` against a request path, returning the path parameters.
fn match_path(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
    let pattern: Vec<&str> = pattern.trim_matches('/').split('/').collect();
    let actual: Vec<&str> = path.trim_matches('/').split('/').collect();
    if pattern.len() != actual.len() {
        return None;
    }
    let mut params = Vec::new();
    for (p, a) in pattern.iter().zip(&actual) {
        match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) => params.push((name.to_owned(), percent_decode(a))),
            None if p == a => {}
            None => return None,
        }
    }
    Some(params)
}

/// API Gateway hands path parameters to functions decoded.
fn percent_decode(segment: &str) -> String {
    parley::twilio::form::percent_decode(segment).unwrap_or_else(|_| segment.to_owned())
}

/// The gateway's own refusals, in the body every other error has (documented in
/// docs/openapi.json as `ErrorBody`).
fn error(status: StatusCode, code: &str, message: &str) -> axum::response::Response {
    let body = parley::error::ErrorBody {
        error: parley::error::ErrorDetail {
            code: code.to_owned(),
            message: message.to_owned(),
            fields: None,
            state: None,
        },
    };
    (
        status,
        [("content-type", "application/json")],
        serde_json::to_string(&body).unwrap_or_default(),
    )
        .into_response()
}

async fn dispatch(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    let Some((route, params)) = gateway.find(&method, &path) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no route matches this request",
        );
    };
    let Ok(body) = axum::body::to_bytes(body, MAX_PAYLOAD_BYTES).await else {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request is larger than API Gateway accepts",
        );
    };
    let request_id = ulid::Ulid::new().to_string();
    let route_key = format!("{} {}", route.method, route.path);
    let event = apigw::event(&apigw::Incoming {
        method: &method,
        path: &path,
        raw_query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &body,
        route_key: &route_key,
        path_parameters: &params,
        source_ip: &peer.ip().to_string(),
        request_id: &request_id,
    });
    let request = match apigw::request(&event, &request_id) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "could not build the Lambda event");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            );
        }
    };
    let function = gateway.functions[&route.function].clone();
    let span = request
        .lambda_context_ref()
        .map(crate::invocation::span)
        .unwrap_or_else(tracing::Span::none);
    let started = std::time::Instant::now();
    let response = function(request).instrument(span).await;
    // The route key, never the path: paths can carry phone numbers.
    tracing::info!(
        route = %route_key,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "gateway"
    );
    let (parts, bytes) = apigw::response_parts(response);
    axum::response::Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// Serves `gateway` on `listener` until the task is dropped (as `parley-local up` does, with
/// each request's peer address).
pub async fn serve(listener: tokio::net::TcpListener, gateway: Gateway) -> std::io::Result<()> {
    axum::serve(
        listener,
        gateway
            .router()
            .into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_patterns_match_and_decode_parameters() {
        assert_eq!(match_path("/health", "/health"), Some(vec![]));
        assert_eq!(match_path("/health", "/healthz"), None);
        assert_eq!(
            match_path("/conversations/{phone}", "/conversations/%2B14155552671"),
            Some(vec![("phone".into(), "+14155552671".into())])
        );
        assert_eq!(
            match_path("/conversations/{phone}", "/conversations/+14155552671"),
            Some(vec![("phone".into(), "+14155552671".into())])
        );
        assert_eq!(match_path("/conversations/{phone}", "/conversations"), None);
    }
}
