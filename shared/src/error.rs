//! The one place errors become HTTP responses: `{"error":{"code","message"}}`, 4xx for the
//! caller's mistakes, a generic 5xx for ours (logged here, once, with its source chain).

use std::collections::BTreeMap;
use std::error::Error as StdError;

use http::StatusCode;
use lambda_http::{Body, Response};
use serde::Serialize;

use crate::http::json_response;

pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The body of every 4xx and 5xx answer (the local gateway's own 404 and 413 too).
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable and machine-readable (`validation_failed`, `insufficient_scope`, `internal`…).
    pub code: String,
    /// For people; a 5xx says only that it failed, never why.
    pub message: String,
    /// `validation_failed` only: what is wrong with each field, by field name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, String>>,
    /// `not_cancelable` only: the state the message is in (`sending`, `sent`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("a valid `Authorization: Bearer <key>` header is required")]
    Unauthorized,
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// Input that fails validation, with a message per field.
    #[error("the request has invalid fields")]
    Validation {
        fields: std::collections::BTreeMap<&'static str, String>,
    },
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// The request is valid but conflicts with the resource's state (e.g. an opted-out number).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A conflict with a message's state, which the answer names (`"state": "submitted"`).
    #[error("{message}")]
    StateConflict {
        code: &'static str,
        message: String,
        state: &'static str,
    },
    /// The request is well-formed but cannot be processed as sent (e.g. a reused key).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// A quota is used up; `retry_after` seconds until it has room (the `Retry-After` header).
    #[error("{message}")]
    TooManyRequests {
        code: &'static str,
        message: String,
        retry_after: u64,
    },
    #[error("a dependency is unavailable; retry later")]
    Unavailable(#[source] BoxError),
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::Validation { .. } => StatusCode::BAD_REQUEST,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Conflict { .. } | Self::StateConflict { .. } => StatusCode::CONFLICT,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::Forbidden { code, .. }
            | Self::NotFound { code, .. }
            | Self::Conflict { code, .. }
            | Self::StateConflict { code, .. }
            | Self::Unprocessable { code, .. }
            | Self::TooManyRequests { code, .. } => code,
            Self::Validation { .. } => "validation_failed",
            Self::Unauthorized => "unauthorized",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// The response for this error. Server-side failures are logged with their chain; the
    /// caller sees only the generic message.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(code = self.code(), error = %chain(&self), "request failed");
        } else {
            tracing::info!(
                code = self.code(),
                status = status.as_u16(),
                "request refused"
            );
        }
        let error = ErrorDetail {
            code: self.code().to_owned(),
            message: self.to_string(),
            fields: match &self {
                Self::Validation { fields } => Some(
                    fields
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), v.clone()))
                        .collect(),
                ),
                _ => None,
            },
            state: match &self {
                Self::StateConflict { state, .. } => Some((*state).to_owned()),
                _ => None,
            },
        };
        let mut response = json_response(status, &ErrorBody { error });
        if let Self::TooManyRequests { retry_after, .. } = &self {
            response.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from(retry_after.max(&1).to_owned()),
            );
        }
        response
    }
}

/// `outer: inner: root`, for one log field.
pub fn chain(error: &dyn StdError) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}
