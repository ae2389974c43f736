//! The stub's error answers, `{"error": "<code>"}` plus a `message` for 400s.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ApiError {
    /// 400 `{"error": "bad_request", "message": …}`
    BadRequest(String),
    /// 401 `{"error": "unauthorized"}`
    Unauthorized,
    /// 404 `{"error": "not_found"}`
    NotFound,
    /// 405 `{"error": "method_not_allowed"}`
    MethodNotAllowed,
    /// 500 `{"error": "internal_error"}` (the `server_error` fault)
    ServerError,
    /// 503 `{"error": "unavailable"}` (the `down` fault, or the stub shutting down)
    Unavailable,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::ServerError => "internal_error",
            Self::Unavailable => "unavailable",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match &self {
            Self::BadRequest(message) => json!({ "error": self.code(), "message": message }),
            _ => json!({ "error": self.code() }),
        };
        let mut response = (self.status(), axum::Json(body)).into_response();
        if self == Self::Unauthorized {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
