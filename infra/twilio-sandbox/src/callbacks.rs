//! Signed status callbacks: after a message is created, each status of its recipient's plan is
//! applied to the stored message and POSTed to its `StatusCallback`, one every
//! `callback_delay` (or the plan's own `delay_ms`), signed the way Twilio signs them, and
//! retried as the URL's connection overrides say (`crate::webhook`; Parley's ask for retries
//! of 5xx, so a callback refused during a store outage comes again). A plan may repeat
//! statuses (duplicated callbacks) or list them out of order (reordered ones), as Twilio may
//! deliver them.

use std::sync::Arc;

use parley::twilio::overrides::ConnectionOverrides;

use crate::state::{CallbackAttempt, CallbackPlan, Shared, WebhookAttempt};
use crate::webhook::{self, Signed, Webhook};

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
            let mut overrides = match ConnectionOverrides::of_url(&url) {
                Ok(o) => o,
                Err(e) => {
                    // Twilio reports a bad override (errors 11237–11243) instead of calling.
                    tracing::warn!(message_sid = %sid, error = %e, "status callback overrides");
                    continue;
                }
            };
            // The sandbox's own bound on an answer, whatever the URL allows.
            overrides.read_timeout = overrides.read_timeout.min(shared.callback_timeout());
            let hook = Webhook {
                url: &url,
                signed: Signed::AsGiven,
                params: &progress.params,
                overrides,
            };
            webhook::deliver(&shared, &shared.http, &hook, |outcome| {
                tracing::info!(message_sid = %sid, status = status.as_str(), outcome = ?outcome, "status callback");
                shared.record_callback(
                    &sid,
                    CallbackAttempt {
                        status,
                        outcome: WebhookAttempt::of(outcome),
                    },
                );
            })
            .await;
        }
    });
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
