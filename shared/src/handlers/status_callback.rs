//! `POST /webhook/twilio/status`: Twilio's delivery status callbacks. Verified like every
//! webhook; the status only moves forward, every callback lands in the history, duplicates
//! change nothing. A callback names its message (`?m=<message_id>` in the URL the worker gave
//! Twilio) and is applied to it directly, before the worker recorded the SID too; one without
//! an id (a message sent before ids were given) is found by SID, and parked, never dropped,
//! if it beats the worker.

use std::sync::Arc;

use http::StatusCode;
use lambda_http::{Body, Request, Response};
use tracing::{field, info, info_span, Instrument};

use super::{request_id, webhook, ColdStart, InitError};
use crate::config::WebhookConfig;
use crate::delivery::DeliveryStatus;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::phone::Address;
use crate::secrets::SecretStore;
use crate::store::{StatusOutcome, Store};
use crate::twilio::{AccountSid, MessageSid};
use crate::xray::{TraceHeader, TraceId};

pub const ROUTE: &str = super::send_worker::STATUS_ROUTE;
use super::send_worker::{MESSAGE_ID_PARAM, TRACE_PARAM};
const FUNCTION: &str = "status-callback";
const UNSUBSCRIBED: &str = "21610";

pub struct StatusCallbackHandler {
    store: Store,
    secrets: Arc<SecretStore>,
    config: WebhookConfig,
}

impl StatusCallbackHandler {
    pub fn new(store: Store, secrets: Arc<SecretStore>, config: WebhookConfig) -> Self {
        Self {
            store,
            secrets,
            config,
        }
    }

    pub async fn from_env() -> Result<Self, InitError> {
        let config = WebhookConfig::from_env()?;
        let cold = ColdStart::load_bare().await?;
        Ok(Self::new(cold.store, cold.secrets, config))
    }

    pub async fn handle(&self, req: Request) -> Response<Body> {
        // The message's trace, from the URL the worker gave Twilio. Read before the signature is
        // checked, so a forged request could name any trace: only a well-formed id is taken,
        // and it labels that request's own log lines, nothing more.
        let trace = query_param(&req, TRACE_PARAM)
            .and_then(|t| TraceId::parse(&t))
            .map(TraceHeader::from)
            .or_else(|| TraceHeader::of_request(&req));
        let span = info_span!(
            "status_callback",
            request_id = %request_id(&req),
            message_sid = field::Empty,
            xrayTraceId = trace.as_ref().map(tracing::field::display),
        );
        async {
            let response = self
                .process(&req)
                .await
                .unwrap_or_else(ApiError::into_response);
            // Watched by WebhookServerErrorsAlarm: a 5xx here is a callback Twilio may not retry.
            Metrics::new(FUNCTION)
                .count(
                    "ServerErrors",
                    u64::from(response.status().is_server_error()),
                )
                .emit();
            response
        }
        .instrument(span)
        .await
    }

    async fn process(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let verified = webhook::verify(req, ROUTE, &self.config, &self.secrets).await?;
        let form = &verified.form;
        let invalid = |field: &str| {
            ApiError::bad_request(
                "invalid_webhook",
                format!("the webhook's `{field}` parameter is missing or invalid"),
            )
        };
        let sid = form
            .get("MessageSid")
            .or_else(|| form.get("SmsSid"))
            .and_then(|s| MessageSid::parse(s).ok())
            .ok_or_else(|| invalid("MessageSid"))?;
        let account = form
            .get("AccountSid")
            .and_then(|s| AccountSid::parse(s).ok())
            .ok_or_else(|| invalid("AccountSid"))?;
        if Some(&account) != self.secrets.current().twilio_account_sid.as_ref() {
            return Err(ApiError::forbidden(
                "account_mismatch",
                "the webhook is for another Twilio account",
            ));
        }
        let status_text = form
            .get("MessageStatus")
            .or_else(|| form.get("SmsStatus"))
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("MessageStatus"))?;
        let status = DeliveryStatus::parse(status_text);
        let error_code = form.get("ErrorCode").filter(|c| !c.is_empty());
        tracing::Span::current().record("message_sid", sid.as_str());

        let now = crate::time::now_rfc3339();
        // The URL is signed: an id in it is the one the worker put there for this message.
        let outcome = match message_id(req) {
            Some(id) => {
                self.store
                    .apply_status_by_id(&id, &sid, status, error_code, &now)
                    .await
            }
            None => {
                self.store
                    .apply_status(&sid, status, error_code, &now)
                    .await
            }
        }
        .map_err(|e| ApiError::Unavailable(e.into()))?;
        info!(status = status.as_str(), error_code, outcome = ?outcome, "status callback");
        if error_code == Some(UNSUBSCRIBED) {
            if let Some(to) = form.get("To").and_then(|t| Address::from_twilio(t).ok()) {
                self.store
                    .record_opt_out(&to.e164, "TWILIO_21610", sid.as_str(), &now)
                    .await
                    .map_err(|e| ApiError::Unavailable(e.into()))?;
            }
        }
        let metrics = Metrics::new(FUNCTION).dimension("status", status.as_str());
        match outcome {
            StatusOutcome::Duplicate => metrics.count("DuplicateCallbacks", 1).emit(),
            StatusOutcome::Parked => metrics.count("ParkedCallbacks", 1).emit(),
            StatusOutcome::Applied { .. } => match error_code {
                Some(code) => metrics
                    .dimension("error_code", code)
                    .count("StatusCallbacks", 1)
                    .emit(),
                None => metrics.count("StatusCallbacks", 1).emit(),
            },
        }
        let mut response = Response::new(Body::Empty);
        *response.status_mut() = StatusCode::NO_CONTENT;
        Ok(response)
    }
}

/// Parley's message id from the `StatusCallback` URL's query (`?m=<message_id>`), when the
/// worker put one there (callbacks of messages sent before it did have none).
fn message_id(req: &Request) -> Option<String> {
    query_param(req, MESSAGE_ID_PARAM).filter(|id| {
        (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
    })
}

/// One parameter of the `StatusCallback` URL's query.
fn query_param(req: &Request, name: &str) -> Option<String> {
    let query = req.uri().query()?;
    let form = crate::twilio::Form::parse(query.as_bytes()).ok()?;
    form.get(name).map(str::to_owned)
}
