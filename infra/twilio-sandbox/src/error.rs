//! Twilio's REST error body, exactly as Twilio sends it:
//! `{"code": 21211, "message": "…", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}`.

use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use serde_json::json;

/// One Twilio REST API error: the HTTP status and Twilio's numeric code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: u32,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthenticated() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, 20003, "Authenticate")
    }

    pub fn not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            20404,
            format!("The requested resource {path} was not found"),
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, 20004, "Method not allowed")
    }

    pub fn rate_limited() -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests")
    }

    pub fn server_error() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            20500,
            "An internal server error has occurred",
        )
    }

    /// The outcome recorded for this error in `/_sandbox/calls`.
    pub fn outcome(&self) -> String {
        format!("error:{}", self.code)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "code": self.code,
            "message": self.message,
            "more_info": format!("https://www.twilio.com/docs/errors/{}", self.code),
            "status": self.status.as_u16(),
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Basic realm=\"Twilio API\""),
            );
        }
        response
    }
}

/// A refused `/_sandbox/` control request: `400 {"error": "…"}`.
#[derive(Debug)]
pub(crate) struct ControlError(pub String);

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": self.0 })),
        )
            .into_response()
    }
}
