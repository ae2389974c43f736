//! What every Twilio webhook does before its own work: bound the body, parse it strictly and
//! verify `X-Twilio-Signature` against the URL Twilio called: the configured public URL, or
//! without one the API's own invoke URL (docs/architecture.md, "Webhook verification").

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

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

/// The URL Twilio signed for this request: `PUBLIC_BASE_URL` + the route when it is set, else
/// the API's own invoke URL from the request context API Gateway wrote (never the Host header).
pub fn signed_url(req: &Request, route: &str, config: &WebhookConfig) -> Option<String> {
    let (domain, stage) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => {
            (ctx.domain_name.as_deref(), ctx.stage.as_deref())
        }
        _ => (None, None),
    };
    config.signed_url(domain, stage, route, req.uri().query())
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
    let url = signed_url(req, route, config).ok_or_else(|| {
        tracing::warn!("no PUBLIC_BASE_URL and no API Gateway domain in the request context");
        ApiError::forbidden(
            "invalid_signature",
            "the X-Twilio-Signature header does not match this request",
        )
    })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Replies;

    fn request(domain: &str, host: &str) -> Request {
        let event = serde_json::json!({
            "version": "2.0",
            "routeKey": "POST /webhook/twilio/sms",
            "rawPath": "/webhook/twilio/sms",
            "rawQueryString": "",
            "headers": {"host": host, "content-type": "application/x-www-form-urlencoded"},
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abc123defg",
                "domainName": domain,
                "domainPrefix": "abc123defg",
                "http": {"method": "POST", "path": "/webhook/twilio/sms", "protocol": "HTTP/1.1",
                         "sourceIp": "54.172.60.0", "userAgent": "TwilioProxy/1.1"},
                "requestId": "r", "routeKey": "POST /webhook/twilio/sms", "stage": "$default",
                "time": "21/Nov/2026:21:00:00 +0000", "timeEpoch": 1795294800000u64
            },
            "body": "",
            "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    fn config(public_base_url: &str) -> WebhookConfig {
        WebhookConfig {
            public_base_url: public_base_url.into(),
            replies: Replies::from_env().unwrap(),
        }
    }

    #[test]
    fn the_invoke_url_comes_from_the_request_context_not_the_host_header() {
        let req = request(
            "abc123defg.execute-api.us-east-1.amazonaws.com",
            "evil.example.com",
        );
        assert_eq!(
            signed_url(&req, "/webhook/twilio/sms", &config("")).as_deref(),
            Some("https://abc123defg.execute-api.us-east-1.amazonaws.com/webhook/twilio/sms")
        );
        assert_eq!(
            signed_url(
                &req,
                "/webhook/twilio/sms",
                &config("https://sms.example.com")
            )
            .as_deref(),
            Some("https://sms.example.com/webhook/twilio/sms")
        );
    }
}
