//! Small helpers around `lambda_http` requests and responses.

use http::{header, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

pub fn json_response(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    let body = serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned());
    response(status, "application/json", body)
}

/// A body that is JSON already (a document compiled in).
pub fn json_text(status: StatusCode, json: &'static str) -> Response<Body> {
    response(status, "application/json", json.to_owned())
}

/// A `200 text/xml` TwiML document.
pub fn twiml(document: String) -> Response<Body> {
    response(StatusCode::OK, "text/xml", document)
}

fn response(status: StatusCode, content_type: &str, body: String) -> Response<Body> {
    let mut response = Response::new(Body::Text(body));
    *response.status_mut() = status;
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

/// The request body as bytes; `lambda_http` has already undone API Gateway's base64.
pub fn body_bytes(req: &Request) -> &[u8] {
    match req.body() {
        Body::Empty => &[],
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

pub fn header_str<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The request's media type without parameters, lower-cased (`application/json`).
pub fn media_type(req: &Request) -> String {
    header_str(req, "content-type")
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// XML-escapes text for a TwiML `<Message>`.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// An optional instant query parameter `name`: RFC 3339 with an offset, else 400
/// `invalid_time`.
pub fn instant_param(
    value: Option<&str>,
    name: &str,
) -> Result<Option<crate::time::Timestamp>, crate::error::ApiError> {
    value
        .map(|v| {
            crate::time::Timestamp::parse(v).ok_or_else(|| {
                crate::error::ApiError::bad_request(
                    "invalid_time",
                    format!("{name} must be an RFC 3339 instant with an offset"),
                )
            })
        })
        .transpose()
}

/// A `limit` query parameter: `default` when absent, else a whole number from 1 to `max`.
pub fn page_limit(
    value: Option<&str>,
    default: i32,
    max: i32,
) -> Result<i32, crate::error::ApiError> {
    match value {
        None => Ok(default),
        Some(l) => l
            .parse::<i32>()
            .ok()
            .filter(|l| (1..=max).contains(l))
            .ok_or_else(|| {
                crate::error::ApiError::bad_request(
                    "invalid_limit",
                    format!("limit must be a whole number from 1 to {max}"),
                )
            }),
    }
}
