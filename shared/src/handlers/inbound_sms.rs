//! `POST /webhook/twilio/sms`: verify, parse, classify, then one durable write and a TwiML
//! answer. Everything slow happens later, off this path.

use std::sync::Arc;
use std::time::Instant;

use lambda_http::{Body, Request, Response};
use tracing::{field, info, info_span, Instrument};

use super::{request_id, webhook, ColdStart, InitError};
use crate::config::{Replies, WebhookConfig};
use crate::consent::Keyword;
use crate::error::ApiError;
use crate::http::{twiml, xml_escape};
use crate::language;
use crate::metrics::Metrics;
use crate::secrets::SecretStore;
use crate::store::{InboundRecord, Store, WriteOutcome};
use crate::telemetry::Pseudonymizer;
use crate::twilio::InboundSms;

pub const ROUTE: &str = "/webhook/twilio/sms";
const FUNCTION: &str = "inbound-sms";

pub struct InboundSmsHandler {
    store: Store,
    secrets: Arc<SecretStore>,
    config: WebhookConfig,
    pseudonyms: Pseudonymizer,
}

impl InboundSmsHandler {
    pub fn new(store: Store, secrets: Arc<SecretStore>, config: WebhookConfig) -> Self {
        let pseudonyms = Pseudonymizer::new(&secrets.current().log_hmac_key);
        Self {
            store,
            secrets,
            config,
            pseudonyms,
        }
    }

    pub async fn from_env() -> Result<Self, InitError> {
        let config = WebhookConfig::from_env()?;
        let cold = ColdStart::load().await?;
        Ok(Self::new(cold.store, cold.secrets, config))
    }

    pub async fn handle(&self, req: Request) -> Response<Body> {
        let started = Instant::now();
        let span = info_span!(
            "inbound_sms",
            request_id = %request_id(&req),
            message_sid = field::Empty,
            phone = field::Empty,
        );
        async {
            let response = self
                .process(&req)
                .await
                .unwrap_or_else(ApiError::into_response);
            Metrics::new(FUNCTION)
                .millis("HandlerLatency", started.elapsed().as_secs_f64() * 1e3)
                .emit();
            response
        }
        .instrument(span)
        .await
    }

    async fn process(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let verified = webhook::verify(req, ROUTE, &self.config, &self.secrets).await?;
        let sms = InboundSms::from_form(&verified.form)
            .map_err(|e| ApiError::bad_request("invalid_webhook", e.to_string()))?;
        if sms.account_sid != self.secrets.current().twilio_account_sid {
            return Err(ApiError::forbidden(
                "account_mismatch",
                "the webhook is for another Twilio account",
            ));
        }
        let span = tracing::Span::current();
        span.record("message_sid", sms.message_sid.as_str());
        span.record("phone", self.pseudonyms.pseudonym(&sms.from.e164));

        let keyword = Keyword::classify(&sms.body);
        let detection = language::detect(&sms.body);
        let record = InboundRecord {
            sms: &sms,
            raw_payload: &verified.raw,
            message_id: ulid::Ulid::new().to_string(),
            new_conversation_id: ulid::Ulid::new().to_string(),
            received_at: crate::time::now_rfc3339(),
            detection,
            keyword,
        };
        let outcome = self
            .store
            .record_inbound(&record)
            .await
            .map_err(|e| ApiError::Unavailable(e.into()))?;

        let metrics = Metrics::new(FUNCTION).dimension("channel", sms.channel().as_str());
        match outcome {
            WriteOutcome::Recorded => {
                info!(
                    message_id = %record.message_id,
                    keyword = keyword.map(Keyword::as_str),
                    language = detection.language.as_str(),
                    confidence = detection.confidence,
                    media = sms.media.len(),
                    "inbound message recorded"
                );
                Metrics::new(FUNCTION)
                    .dimension("language", detection.language.as_str())
                    .count("LanguageDetected", 1)
                    .emit();
                metrics
                    .count("Received", 1)
                    .count("OptOuts", u64::from(keyword == Some(Keyword::OptOut)))
                    .count("OptIns", u64::from(keyword == Some(Keyword::OptIn)))
                    .emit();
            }
            WriteOutcome::Duplicate => {
                info!("duplicate MessageSid skipped");
                metrics.count("DuplicateSkipped", 1).emit();
            }
        }
        // The same body always gives the same answer, so a duplicate is answered like the first.
        Ok(twiml(reply(keyword, &self.config.replies)))
    }
}

/// The TwiML answer: the configured text for a keyword, otherwise an empty `<Response/>`.
pub fn reply(keyword: Option<Keyword>, replies: &Replies) -> String {
    let text = match keyword {
        Some(Keyword::Help) => replies.help.as_deref(),
        Some(Keyword::OptOut) => replies.opt_out.as_deref(),
        Some(Keyword::OptIn) => replies.opt_in.as_deref(),
        None => None,
    };
    match text {
        Some(text) => format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>{}</Message></Response>"#,
            xml_escape(text)
        ),
        None => r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_follow_the_keyword_and_can_be_switched_off() {
        let replies = Replies {
            help: Some("Reply STOP to stop. <Acme & Co>".into()),
            opt_out: None,
            opt_in: Some("Welcome back".into()),
        };
        assert!(reply(Some(Keyword::Help), &replies)
            .contains("<Message>Reply STOP to stop. &lt;Acme &amp; Co&gt;</Message>"));
        assert!(reply(Some(Keyword::OptOut), &replies).ends_with("<Response/>"));
        assert!(reply(Some(Keyword::OptIn), &replies).contains("Welcome back"));
        assert!(reply(None, &replies).ends_with("<Response/>"));
    }
}
