//! `POST /sms/send`, the HTTP adapter of the send use case ([`crate::send`]): authenticate,
//! read the typed request, call `send`, and turn the outcome into a 202 or a JSON error.
//! With an `Idempotency-Key`, a retry returns the first answer and creates nothing.

use std::sync::Arc;

use http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use tracing::{field, info_span, Instrument};

use super::{api, request_id, ColdStart, InitError};
use crate::access::{Access, Caller, Scope};
use crate::config::required;
use crate::error::ApiError;
use crate::http::{body_bytes, header_str, json_response};
use crate::metrics::Metrics;
use crate::pending::Policy;
use crate::queue::JobQueue;
use crate::secrets::SecretStore;
use crate::send::cancel::{cancel, CancelError, CancelReason};
use crate::send::{RequestError, SendError, SendRequest, SendService};
use crate::store::IdempotencyKey;
use crate::telemetry::Pseudonymizer;
use crate::time::Timestamp;
use crate::xray::TraceHeader;

pub use crate::send::request::MAX_BODY_CHARS;

pub const ROUTE: &str = "/sms/send";
pub const CANCEL_ROUTE: &str = "/messages/{message_id}/cancel";
const FUNCTION: &str = "send-sms";
const MAX_REQUEST_BYTES: usize = 64 * 1024;

pub struct SendSmsHandler {
    service: SendService,
    access: Access,
    pseudonyms: Pseudonymizer,
}

impl SendSmsHandler {
    pub fn new(service: SendService, secrets: Arc<SecretStore>) -> Self {
        let pseudonyms = Pseudonymizer::new(&secrets.current().log_hmac_key);
        Self {
            access: Access::new(service.store.clone(), secrets),
            service,
            pseudonyms,
        }
    }

    pub async fn from_env() -> Result<Self, InitError> {
        let queue_url = required("SEND_QUEUE_URL")?;
        let policy = Arc::new(Policy::from_env()?);
        let cold = ColdStart::load_sealing().await?;
        let queue = JobQueue::new(aws_sdk_sqs::Client::new(&cold.sdk), queue_url);
        Ok(Self::new(
            SendService::new(cold.store, queue, policy),
            cold.secrets,
        ))
    }

    pub async fn handle(&self, req: Request) -> Response<Body> {
        let trace = TraceHeader::of_request(&req);
        let span = info_span!(
            "send_sms",
            request_id = %request_id(&req),
            message_id = field::Empty,
            phone = field::Empty,
            xrayTraceId = trace.as_ref().map(field::display),
        );
        api::call(&self.access, &req, Some(Scope::Send), |caller| {
            self.process(&req, caller, trace)
        })
        .instrument(span)
        .await
    }

    async fn process(
        &self,
        req: &Request,
        caller: Caller,
        trace: Option<TraceHeader>,
    ) -> Result<Response<Body>, ApiError> {
        if let Some(id) = req.path_parameters().first("message_id") {
            return self.cancel(id).await;
        }
        let raw = body_bytes(req);
        if raw.len() > MAX_REQUEST_BYTES {
            return Err(ApiError::PayloadTooLarge {
                limit: MAX_REQUEST_BYTES,
            });
        }
        let key = idempotency_key(req)?;
        let now = Timestamp::now();
        let request = SendRequest::from_json(raw).map_err(|e| match e {
            RequestError::InvalidJson => {
                ApiError::bad_request("invalid_json", "the body must be a JSON object")
            }
            RequestError::Fields(fields) => ApiError::Validation { fields },
        })?;
        let mut new = request
            .validate(now)
            .map_err(|fields| ApiError::Validation { fields })?;
        new.trace = trace;
        tracing::Span::current().record("phone", self.pseudonyms.pseudonym(&new.to.e164));
        // Counted before the idempotency check: a replayed request uses quota too.
        self.access
            .admit_message(&caller, &new.to.e164, now)
            .await?;
        let key = key.map(|key| IdempotencyKey {
            api_key_id: caller.key_id(),
            key,
        });
        let accepted = self.service.send(&new, key, now).await.map_err(api_error)?;
        let metrics = Metrics::new(FUNCTION).count(
            match accepted.status {
                crate::pipeline::PipelineState::Queued => "Queued",
                crate::pipeline::PipelineState::Deferred => "Deferred",
                _ => "Scheduled",
            },
            1,
        );
        let metrics = if accepted.urgent {
            metrics.count("Urgent", 1)
        } else {
            metrics
        };
        metrics.emit();
        Ok(json_response(StatusCode::ACCEPTED, &accepted))
    }
}

impl SendSmsHandler {
    /// `POST /messages/{id}/cancel`: 200 with the message, canceled (again) or not.
    async fn cancel(&self, id: &str) -> Result<Response<Body>, ApiError> {
        if ulid::Ulid::from_string(id).is_err() {
            return Err(ApiError::bad_request(
                "invalid_message_id",
                "message ids are 26-character ULIDs",
            ));
        }
        tracing::Span::current().record("message_id", id);
        let message = cancel(&self.service.store, id, CancelReason::Api, Timestamp::now())
            .await
            .map_err(|e| match e {
                CancelError::NotFound => ApiError::NotFound {
                    code: "message_not_found",
                    message: e.to_string(),
                },
                CancelError::NotCancelable(state) => ApiError::StateConflict {
                    code: "not_cancelable",
                    message: format!("the message is {state} and can no longer be canceled"),
                    state: state.as_str(),
                },
                CancelError::Store(e) => ApiError::Unavailable(e.into()),
            })?;
        tracing::info!(status = %message.status, "cancel requested");
        Metrics::new(FUNCTION).count("CancelRequests", 1).emit();
        Ok(json_response(
            StatusCode::OK,
            &Canceled {
                message_id: message.message_id,
                status: message.status,
                status_reason: message.status_reason,
                send_at: message.send_at,
            },
        ))
    }
}

/// `POST /messages/{message_id}/cancel`: the message's state after the request.
#[derive(Debug, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Canceled {
    pub message_id: String,
    /// `canceled`, whether by this request or an earlier one.
    pub status: crate::pipeline::PipelineState,
    pub status_reason: Option<String>,
    pub send_at: Option<Timestamp>,
}

fn api_error(e: SendError) -> ApiError {
    match e {
        SendError::OptedOut => ApiError::Conflict {
            code: "recipient_opted_out",
            message: e.to_string(),
        },
        SendError::ConversationMismatch => ApiError::Unprocessable {
            code: "conversation_mismatch",
            message: e.to_string(),
        },
        SendError::IdempotencyKeyReused => ApiError::Unprocessable {
            code: "idempotency_key_reused",
            message: e.to_string(),
        },
        SendError::NotAfterUnreachable { .. } => ApiError::Unprocessable {
            code: "not_after_unreachable",
            message: e.to_string(),
        },
        SendError::InvalidSendAt(message) => ApiError::Validation {
            fields: [("send_at", message)].into(),
        },
        SendError::Store(e) => ApiError::Unavailable(e.into()),
        SendError::Corrupt(e) => ApiError::Internal(e.into()),
    }
}

fn idempotency_key(req: &Request) -> Result<Option<&str>, ApiError> {
    match header_str(req, "idempotency-key") {
        None => Ok(None),
        Some(k) if !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(k))
        }
        Some(_) => Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )),
    }
}
