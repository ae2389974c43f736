//! Signed status callbacks: after a message is created, each status of its recipient's plan is
//! applied to the stored message and POSTed to its `StatusCallback`, one every
//! `callback_delay` (or the plan's own `delay_ms`), signed the way Twilio signs them. A plan
//! may repeat statuses (duplicated callbacks) or list them out of order (reordered ones), as
//! Twilio may deliver them.

use std::sync::Arc;

use parley::twilio::signature;

use crate::state::{CallbackAttempt, CallbackPlan, Shared};

/// Runs a message's plan in the background. Delivery failures are logged and recorded on the
/// message, never fatal.
pub(crate) fn spawn(shared: Arc<Shared>, sid: String, plan: CallbackPlan) {
    tokio::spawn(async move {
        let delay = plan
            .delay_ms
            .map_or_else(|| shared.callback_delay(), std::time::Duration::from_millis);
        for status in plan.sequence {
            tokio::time::sleep(delay).await;
            let Some(progress) = shared.advance(&sid, status, plan.error_code) else {
                return;
            };
            let Some(url) = progress.url else {
                continue;
            };
            let attempt = match post(&shared, &url, &progress.params).await {
                Ok(code) => {
                    tracing::info!(message_sid = %sid, status = status.as_str(), response_status = code, "status callback");
                    CallbackAttempt {
                        status,
                        response_status: Some(code),
                        error: None,
                    }
                }
                Err(e) => {
                    tracing::warn!(message_sid = %sid, status = status.as_str(), error = %e, "status callback failed");
                    CallbackAttempt {
                        status,
                        response_status: None,
                        error: Some(e.to_string()),
                    }
                }
            };
            shared.record_callback(&sid, attempt);
        }
    });
}

async fn post(shared: &Shared, url: &str, params: &[(String, String)]) -> reqwest::Result<u16> {
    let signature = signature::compute(&shared.auth_token(), url, params);
    let response = shared
        .http
        .post(url)
        .header("X-Twilio-Signature", signature)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(encode_form(params))
        .send()
        .await?;
    Ok(response.status().as_u16())
}

/// `application/x-www-form-urlencoded`, as Twilio sends its forms.
pub(crate) fn encode_form(params: &[(String, String)]) -> String {
    parley::twilio::form::encode_pairs(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley::twilio::Form;

    #[test]
    fn encoded_forms_parse_back_to_the_same_pairs() {
        let pairs: Vec<(String, String)> = [
            ("To", "+14155552671"),
            ("Body", "Hola mundo! ¿qué? a&b=c 100%"),
            ("Empty", ""),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let encoded = encode_form(&pairs);
        assert!(encoded.starts_with("To=%2B14155552671&Body=Hola+mundo%21+"));
        let parsed = Form::parse(encoded.as_bytes()).unwrap();
        assert_eq!(parsed.pairs(), &pairs[..]);
    }
}
