//! Turns a plain HTTP request into the API Gateway HTTP API (payload v2) event Lambda receives,
//! and a handler's response back into HTTP, so local requests take the very path they take in
//! AWS: `parley::apigw`, every HTTP function's runtime loop, decodes the same JSON, including
//! API Gateway's base64 bodies.

use base64::Engine;
use http::HeaderMap;
use lambda_http::{Body, Context, Request, RequestExt, Response};
use serde_json::{json, Map, Value};

pub struct Incoming<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub route_key: &'a str,
    pub path_parameters: &'a [(String, String)],
    pub source_ip: &'a str,
    pub request_id: &'a str,
}

/// The event JSON exactly as API Gateway would send it.
pub fn event(req: &Incoming<'_>) -> Value {
    let mut headers = Map::new();
    for name in req.headers.keys() {
        let values: Vec<&str> = req
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        headers.insert(name.as_str().to_owned(), json!(values.join(",")));
    }
    // API Gateway adds a trace header to every request that has none (a traced caller's is
    // passed on as it came).
    let trace = parley::xray::HTTP_HEADER;
    if !headers.contains_key(trace) {
        let root = parley::xray::TraceId::new();
        headers.insert(trace.to_owned(), json!(format!("Root={root}")));
    }
    let content_type = req
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // HTTP APIs pass JSON and text through and base64-encode everything else, forms included.
    let textual = content_type.starts_with("application/json") || content_type.starts_with("text/");
    let (body, encoded) = match (req.body.is_empty(), textual, std::str::from_utf8(req.body)) {
        (true, _, _) => (Value::Null, false),
        (false, true, Ok(text)) => (json!(text), false),
        _ => (
            json!(base64::engine::general_purpose::STANDARD.encode(req.body)),
            true,
        ),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let mut event = json!({
        "version": "2.0",
        "routeKey": req.route_key,
        "rawPath": req.path,
        "rawQueryString": req.raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": req.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost"),
            "domainPrefix": "local",
            "http": {
                "method": req.method,
                "path": req.path,
                "protocol": "HTTP/1.1",
                "sourceIp": req.source_ip,
                "userAgent": req.headers.get("user-agent").and_then(|h| h.to_str().ok()).unwrap_or(""),
            },
            "requestId": req.request_id,
            "routeKey": req.route_key,
            "stage": "$default",
            "time": "",
            "timeEpoch": now,
        },
        "isBase64Encoded": encoded,
    });
    if !body.is_null() {
        event["body"] = body;
    }
    if !req.path_parameters.is_empty() {
        event["pathParameters"] = req
            .path_parameters
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect::<Map<_, _>>()
            .into();
    }
    if !req.raw_query.is_empty() {
        let mut params = Map::new();
        for (k, v) in form_pairs(req.raw_query) {
            let joined = match params.get(&k).and_then(Value::as_str) {
                Some(prev) => format!("{prev},{v}"),
                None => v,
            };
            params.insert(k, json!(joined));
        }
        event["queryStringParameters"] = params.into();
    }
    event
}

fn form_pairs(query: &str) -> Vec<(String, String)> {
    parley::twilio::Form::parse(query.as_bytes())
        .map(|f| f.pairs().to_vec())
        .unwrap_or_default()
}

/// Parses an event as the Lambda runtime does and attaches an invocation context. Its trace
/// is one of its own: an HTTP API does not pass its trace to Lambda (only REST APIs are
/// traced), so Lambda starts one for each invocation.
pub fn request(event: &Value, request_id: &str) -> Result<Request, serde_json::Error> {
    let context: Context = crate::invocation::context(request_id, None);
    let event = serde::Deserialize::deserialize(event)?;
    Ok(parley::apigw::request(event).with_lambda_context(context))
}

/// A handler's response as status, headers and body bytes.
pub fn response_parts(response: Response<Body>) -> (http::response::Parts, Vec<u8>) {
    let (parts, body) = response.into_parts();
    let bytes = match body {
        Body::Empty => Vec::new(),
        Body::Text(t) => t.into_bytes(),
        Body::Binary(b) => b,
        _ => Vec::new(),
    };
    (parts, bytes)
}
