//! What every Twilio webhook does before its own work: bound the body, parse it strictly and
//! verify `X-Twilio-Signature` against the configured public URL.

use lambda_http::Request;

use crate::config::WebhookConfig;
use crate::error::ApiError;
use crate::http::{body_bytes, header_str, media_type};
use crate::secrets::{SecretStore, Secrets};
use crate::twilio::signature::{self, Payload};
use crate::twilio::Form;

/// Twilio's webhooks are a few KiB; anything near this is not from Twilio.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A webhook whose signature checked out.
pub struct Verified {
    pub form: Form,
    /// The body exactly as received (after API Gateway's base64 was undone).
    pub raw: String,
}

pub async fn verify(
    req: &Request,
    route: &str,
    config: &WebhookConfig,
    secrets: &std::sync::Arc<SecretStore>,
) -> Result<Verified, ApiError> {
    let body = body_bytes(req);
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let signature = header_str(req, "x-twilio-signature")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::forbidden(
                "missing_signature",
                "the X-Twilio-Signature header is required",
            )
        })?;
    let raw = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("malformed_body", "the body is not valid UTF-8"))?
        .to_owned();
    let is_json = media_type(req) == "application/json";
    let form = if is_json {
        Form::default()
    } else {
        Form::parse(body).map_err(|e| ApiError::bad_request("malformed_body", e.to_string()))?
    };
    let payload = if is_json {
        Payload::Json(body)
    } else {
        Payload::Form(form.pairs())
    };
    let url = config.public_url(route, req.uri().query());
    let matches = |s: &Secrets| signature::verify(&s.twilio_tokens(), &url, payload, signature);

    if !matches(secrets.fresh().await.as_ref()) {
        // The auth token may have been rotated since this instance started.
        let refreshed = match secrets.refresh().await {
            Ok(refreshed) => refreshed,
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "secret refresh failed");
                false
            }
        };
        if !(refreshed && matches(&secrets.current())) {
            return Err(ApiError::forbidden(
                "invalid_signature",
                "the X-Twilio-Signature header does not match this request",
            ));
        }
    }
    Ok(Verified { form, raw })
}
