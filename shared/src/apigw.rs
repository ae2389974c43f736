//! The HTTP functions' runtime loop: an HTTP API event (payload 2.0) in, the handler's
//! response out, on `lambda_runtime` directly.
//!
//! `lambda_http::run` does the same for five kinds of event, and on the way out re-reads every
//! response body: it collects it, parses its `Content-Type` and decodes it again through
//! `encoding_rs` for whatever charset the type names (every legacy encoding's tables, ~150 KB
//! of each binary, linked for UTF-8 JSON and HTML). Here the event is read as the one kind an
//! HTTP API sends, into the same `http::Request` with the same extensions (`RequestExt` reads
//! them), and the response is written as `lambda_http` writes it, text or base64 by the same
//! rules, without the copy. `tests::*_as_lambda_http` hold both to the same request and the
//! same JSON.

use std::future::Future;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::query_map::QueryMap;
use http::header::{HeaderMap, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, COOKIE, SET_COOKIE};
use lambda_http::lambda_runtime::{self, service_fn, LambdaEvent};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};

/// Serves `handler` until the runtime stops, one event at a time.
pub async fn run<H, F>(handler: H) -> Result<(), lambda_runtime::Error>
where
    H: Fn(Request) -> F,
    F: Future<Output = Response<Body>>,
{
    lambda_runtime::run(service_fn(|event: LambdaEvent<ApiGatewayV2httpRequest>| {
        let answer = handler(request(event.payload).with_lambda_context(event.context));
        async move { Ok::<_, lambda_runtime::Error>(response(answer.await)) }
    }))
    .await
}

/// An HTTP API event as the `http::Request` `lambda_http` makes of it: the URI from `Host` (or
/// the domain name), the stage and the raw path and query, the headers with the cookies joined
/// into `Cookie`, the body with API Gateway's base64 undone, and as extensions the raw path,
/// the query parameters (from the raw query), the path parameters, the stage variables and the
/// request context.
pub fn request(event: ApiGatewayV2httpRequest) -> Request {
    let host = event
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or(event.request_context.domain_name.as_deref());
    let raw_path = event.raw_path.unwrap_or_default();
    let path = path_with_stage(event.request_context.stage.as_deref(), &raw_path);
    let mut uri = uri(&path, &event.headers, host);
    let query = match &event.raw_query_string {
        Some(raw) => {
            if !raw.is_empty() {
                uri.push('?');
                uri.push_str(raw);
            }
            raw.parse().unwrap_or_default()
        }
        None => event.query_string_parameters,
    };
    let body = match event.body.as_deref() {
        Some(body) => Body::from_maybe_encoded(event.is_base64_encoded, body),
        None => Body::default(),
    };
    let mut headers = event.headers;
    if let Some(cookies) = event.cookies {
        if let Ok(value) = HeaderValue::from_str(&cookies.join("; ")) {
            headers.insert(COOKIE, value);
        }
    }
    let mut request = http::Request::builder()
        .uri(uri)
        .body(body)
        .expect("an HTTP API's path and query make a URI");
    *request.headers_mut() = headers;
    *request.method_mut() = event.request_context.http.method.clone();
    request
        .with_raw_http_path(raw_path)
        .with_query_string_parameters(query)
        .with_path_parameters(QueryMap::from(event.path_parameters))
        .with_stage_variables(QueryMap::from(event.stage_variables))
        .with_request_context(RequestContext::ApiGatewayV2(event.request_context))
}

/// The stage in front of the path, unless it is `$default`, already there, or turned off
/// (`AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH`, as `lambda_http` reads it).
fn path_with_stage(stage: Option<&str>, path: &str) -> String {
    match stage {
        Some(stage)
            if stage != "$default"
                && std::env::var_os("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH").is_none()
                && !path.starts_with(&format!("/{stage}/")) =>
        {
            format!("/{stage}{path}")
        }
        _ => path.to_owned(),
    }
}

/// The absolute URI (`https://host/path`, normalized by the `url` crate as `lambda_http` does:
/// dot segments resolved, characters a URL cannot hold escaped), or the path alone without a
/// host.
fn uri(path: &str, headers: &HeaderMap, host: Option<&str>) -> String {
    match host {
        None => url::Url::parse(&format!("http://localhost{path}"))
            .map(|url| url.path().to_owned())
            .unwrap_or_else(|_| path.to_owned()),
        Some(host) => {
            let scheme = headers
                .get("x-forwarded-proto")
                .and_then(|s| s.to_str().ok())
                .unwrap_or("https");
            let written = format!("{scheme}://{host}{path}");
            url::Url::parse(&written)
                .map(String::from)
                .unwrap_or(written)
        }
    }
}

/// A handler's response as the HTTP API payload 2.0 response `lambda_http` writes: `Set-Cookie`
/// moved to `cookies`, the body as text when its type is text (or unnamed) and base64
/// otherwise, or when it has a `Content-Encoding`.
pub fn response(response: Response<Body>) -> ApiGatewayV2httpResponse {
    let (parts, body) = response.into_parts();
    let mut headers = parts.headers;
    let body = match (body, as_text(&headers)) {
        (Body::Text(text), true) => Body::Text(text),
        (Body::Binary(bytes), true) => Body::Text(String::from_utf8_lossy(&bytes).into_owned()),
        (Body::Text(text), false) => Body::Binary(text.into_bytes()),
        (Body::Binary(bytes), false) => Body::Binary(bytes),
        (_, true) => Body::Text(String::new()),
        (_, false) => Body::Binary(Vec::new()),
    };
    let cookies = headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .collect();
    headers.remove(SET_COOKIE);
    let mut out = ApiGatewayV2httpResponse::default();
    out.is_base64_encoded = matches!(body, Body::Binary(_));
    out.body = Some(body);
    out.status_code = i64::from(parts.status.as_u16());
    out.cookies = cookies;
    out.headers = headers;
    out
}

/// `lambda_http`'s rule: text unless there is a `Content-Encoding`, or a `Content-Type` that is
/// not `text/*`, JSON, JavaScript, XML or YAML (nor `+xml`, `+yaml`, `+json`) and no
/// `x-lambda-http-content-encoding: text`.
fn as_text(headers: &HeaderMap) -> bool {
    if headers.contains_key(CONTENT_ENCODING) {
        return false;
    }
    let Some(content_type) = headers.get(CONTENT_TYPE) else {
        return true;
    };
    let content_type = content_type.to_str().unwrap_or_default();
    let mime = content_type.trim().split(';').next().unwrap_or_default();
    const PREFIXES: [&str; 5] = [
        "text",
        "application/json",
        "application/javascript",
        "application/xml",
        "application/yaml",
    ];
    PREFIXES.iter().any(|p| content_type.starts_with(p))
        || ["+xml", "+yaml", "+json"].iter().any(|s| mime.ends_with(s))
        || headers
            .get("x-lambda-http-content-encoding")
            .is_some_and(|v| v == "text")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use serde_json::{json, Value};

    fn event(overrides: Value) -> Value {
        let mut event = json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": "/conversations/%2B14155552671",
            "rawQueryString": "limit=20&cursor=a%2Bb&tag=x&tag=y",
            "cookies": ["session=1", "theme=dark"],
            "headers": {
                "host": "api.example.com",
                "content-type": "application/json",
                "x-forwarded-proto": "https",
                "authorization": "Bearer k"
            },
            "queryStringParameters": {"limit": "20", "cursor": "a+b", "tag": "x,y"},
            "pathParameters": {"phone": "+14155552671"},
            "stageVariables": {"v": "1"},
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "api",
                "domainName": "api.example.com",
                "domainPrefix": "api",
                "http": {
                    "method": "POST",
                    "path": "/conversations/%2B14155552671",
                    "protocol": "HTTP/1.1",
                    "sourceIp": "192.0.2.1",
                    "userAgent": "test"
                },
                "requestId": "r-1",
                "routeKey": "$default",
                "stage": "$default",
                "time": "01/Dec/2026:00:00:00 +0000",
                "timeEpoch": 1_796_083_200_000u64
            },
            "body": "{\"to\":\"+14155552671\"}",
            "isBase64Encoded": false
        });
        if let (Some(event), Value::Object(changes)) = (event.as_object_mut(), overrides) {
            for (key, value) in changes {
                match value {
                    Value::Null => event.remove(&key),
                    value => event.insert(key, value),
                };
            }
        }
        event
    }

    fn both(event: &Value) -> (Request, Request) {
        let ours = request(serde_json::from_value(event.clone()).unwrap());
        let theirs = lambda_http::request::from_str(&event.to_string()).unwrap();
        (ours, theirs)
    }

    fn assert_same(ours: &Request, theirs: &Request) {
        assert_eq!(ours.method(), theirs.method());
        assert_eq!(ours.uri(), theirs.uri());
        assert_eq!(ours.headers(), theirs.headers());
        assert_eq!(
            crate::http::body_bytes(ours),
            crate::http::body_bytes(theirs)
        );
        assert_eq!(
            ours.query_string_parameters_ref(),
            theirs.query_string_parameters_ref()
        );
        assert_eq!(ours.path_parameters_ref(), theirs.path_parameters_ref());
        assert_eq!(ours.stage_variables_ref(), theirs.stage_variables_ref());
        assert_eq!(ours.raw_http_path(), theirs.raw_http_path());
        assert_eq!(
            format!("{:?}", ours.request_context_ref()),
            format!("{:?}", theirs.request_context_ref())
        );
    }

    #[test]
    fn events_read_as_lambda_http() {
        let variants = [
            json!({}),
            json!({"rawQueryString": ""}),
            json!({"rawQueryString": null}),
            json!({"cookies": null}),
            json!({"body": null}),
            json!({"body": "aGVsbG8=", "isBase64Encoded": true}),
            json!({"rawPath": "/a/../keys/./b%20c"}),
            json!({"rawPath": "/with space/é"}),
            json!({"headers": {"content-type": "text/plain"}}),
            json!({"headers": {"host": "h", "x-forwarded-proto": "http"}}),
        ];
        for variant in variants {
            let event = event(variant.clone());
            let (ours, theirs) = both(&event);
            assert_same(&ours, &theirs);
        }
        // Without a Host header the domain name is the host; with neither, the path alone.
        let mut no_host = event(json!({"headers": {"content-type": "application/json"}}));
        let (ours, theirs) = both(&no_host);
        assert_same(&ours, &theirs);
        assert_eq!(ours.uri().host(), Some("api.example.com"));
        no_host["requestContext"]
            .as_object_mut()
            .unwrap()
            .remove("domainName");
        let (ours, theirs) = both(&no_host);
        assert_same(&ours, &theirs);
        assert_eq!(ours.uri().host(), None);
        // A named stage goes in front of the path, once.
        for path in ["/conversations", "/prod/conversations"] {
            let mut staged = event(json!({ "rawPath": path }));
            staged["requestContext"]["stage"] = json!("prod");
            let (ours, theirs) = both(&staged);
            assert_same(&ours, &theirs);
            assert_eq!(ours.uri().path(), "/prod/conversations");
        }
    }

    async fn lambda_http_json(response: Response<Body>) -> Value {
        use lambda_http::IntoResponse;
        use lambda_http::Service;
        // `lambda_http`'s own loop, on one event and this response.
        let mut adapter = lambda_http::Adapter::from(lambda_http::service_fn(move |_: Request| {
            let response = response.clone();
            async move { Ok::<_, lambda_http::Error>(response.into_response().await) }
        }));
        let event = serde_json::from_value(event(json!({}))).unwrap();
        let answer = adapter
            .call(LambdaEvent::new(event, lambda_runtime::Context::default()))
            .await
            .unwrap();
        serde_json::to_value(answer).unwrap()
    }

    #[tokio::test]
    async fn responses_are_written_as_lambda_http() {
        let with = |status: StatusCode, headers: &[(&str, &str)], body: Body| {
            let mut response = Response::new(body);
            *response.status_mut() = status;
            for (name, value) in headers {
                response.headers_mut().append(
                    http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            response
        };
        let cases = [
            with(
                StatusCode::OK,
                &[("content-type", "application/json")],
                Body::Text("{\"ok\":true}".into()),
            ),
            with(
                StatusCode::OK,
                &[("content-type", "text/html; charset=utf-8")],
                Body::Text("<p>é</p>".into()),
            ),
            with(StatusCode::NO_CONTENT, &[], Body::Empty),
            with(
                StatusCode::OK,
                &[("content-type", "image/png")],
                Body::Binary(vec![0, 159, 146, 150]),
            ),
            with(
                StatusCode::OK,
                &[("content-type", "application/octet-stream")],
                Body::Text("abc".into()),
            ),
            with(
                StatusCode::OK,
                &[("content-type", "image/svg+xml")],
                Body::Binary(b"<svg/>".to_vec()),
            ),
            with(
                StatusCode::OK,
                &[("content-type", "text/plain"), ("content-encoding", "gzip")],
                Body::Binary(vec![31, 139]),
            ),
            with(
                StatusCode::FOUND,
                &[
                    ("location", "/console"),
                    ("set-cookie", "a=1; HttpOnly"),
                    ("set-cookie", "b=2"),
                    ("cache-control", "no-store"),
                ],
                Body::Empty,
            ),
            with(
                StatusCode::BAD_REQUEST,
                &[("x-lambda-http-content-encoding", "text")],
                Body::Binary(b"plain".to_vec()),
            ),
        ];
        for case in cases {
            let ours = serde_json::to_value(response(case.clone())).unwrap();
            assert_eq!(ours, lambda_http_json(case).await, "{ours}");
        }
    }
}
