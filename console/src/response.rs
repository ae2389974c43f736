//! The console's responses: HTML pages with headers that keep them out of frames and caches,
//! and the redirects that follow every form (POST, then 303 to a page: a reload never resends).

use http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use maud::Markup;

/// No script or style from anywhere but the console itself; no framing; nothing cached.
const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
];

pub fn page(status: StatusCode, markup: Markup) -> Response<Body> {
    let mut response = Response::new(Body::Text(markup.into_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// `303 See Other` to a console path, with cookies to set.
pub fn redirect(location: &str, cookies: &[String]) -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::SEE_OTHER;
    let headers = response.headers_mut();
    // Only console paths: a `back` field can never send an operator elsewhere.
    let location = if location.starts_with("/console") && !location.starts_with("/console//") {
        location
    } else {
        "/console"
    };
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    response
}

/// A static asset the console serves itself (its stylesheet and script).
pub fn asset(content_type: &'static str, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::Text(body.to_owned()));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        "cache-control",
        HeaderValue::from_static("public, max-age=3600"),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}
