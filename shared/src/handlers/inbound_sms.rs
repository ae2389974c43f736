//! `POST /webhook/twilio/sms`: verify, parse, classify, then one durable write and a TwiML
//! answer. Everything slow happens later, off this path.

use std::sync::Arc;
use std::time::Instant;

use lambda_http::{Body, Request, Response};
use tracing::{field, info, info_span, Instrument};

use super::{request_id, webhook, ColdStart, InitError};
use crate::config::{Replies, WebhookConfig};
use crate::consent::{self, Classification, Keyword};
use crate::error::ApiError;
use crate::http::{twiml, xml_escape};
use crate::language;
use crate::metrics::{Batch, Metrics};
use crate::secrets::SecretStore;
use crate::store::{ConsentOutcome, InboundOutcome, InboundRecord, Store, WriteOutcome};
use crate::telemetry::Pseudonymizer;
use crate::twilio::InboundSms;
use crate::xray::TraceHeader;

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
        let cold = ColdStart::load_receiving().await?;
        Ok(Self::new(cold.store, cold.secrets, config))
    }

    pub async fn handle(&self, req: Request) -> Response<Body> {
        let started = Instant::now();
        let trace = TraceHeader::of_request(&req);
        let span = info_span!(
            "inbound_sms",
            request_id = %request_id(&req),
            message_sid = field::Empty,
            phone = field::Empty,
            xrayTraceId = trace.as_ref().map(tracing::field::display),
        );
        async {
            // Everything this invocation counts goes out as one EMF line.
            let mut metrics = Batch::new();
            let response = self
                .process(&req, trace.as_ref(), &mut metrics)
                .await
                .unwrap_or_else(ApiError::into_response);
            // ServerErrors is watched by WebhookServerErrorsAlarm: a 5xx is a text Twilio may not
            // retry (the backfill catches it up).
            metrics.push(
                Metrics::new(FUNCTION)
                    .millis("HandlerLatency", started.elapsed().as_secs_f64() * 1e3)
                    .count(
                        "ServerErrors",
                        u64::from(response.status().is_server_error()),
                    ),
            );
            metrics.emit();
            response
        }
        .instrument(span)
        .await
    }

    async fn process(
        &self,
        req: &Request,
        trace: Option<&TraceHeader>,
        metrics: &mut Batch,
    ) -> Result<Response<Body>, ApiError> {
        let verified = webhook::verify(req, ROUTE, &self.config, &self.secrets).await?;
        let sms = InboundSms::from_form(&verified.form)
            .map_err(|e| ApiError::bad_request("invalid_webhook", e.to_string()))?;
        if Some(&sms.account_sid) != self.secrets.current().twilio_account_sid.as_ref() {
            return Err(ApiError::forbidden(
                "account_mismatch",
                "the webhook is for another Twilio account",
            ));
        }
        let span = tracing::Span::current();
        span.record("message_sid", sms.message_sid.as_str());
        span.record("phone", self.pseudonyms.pseudonym(&sms.from.e164));

        let text = Received {
            sms: &sms,
            raw_payload: &verified.raw,
            message_id: ulid::Ulid::new().to_string(),
            received_at: crate::time::now_rfc3339(),
            trace: trace.cloned(),
        };
        let recorded = record(&self.store, &text, FUNCTION, metrics)
            .await
            .map_err(|e| ApiError::Unavailable(e.into()))?;
        // A duplicate is answered like the first delivery: the store says whether that one
        // changed consent.
        Ok(twiml(reply(
            recorded.classification,
            recorded.outcome.consent,
            &self.config.replies,
        )))
    }
}

/// A received text as the webhook or the inbound backfill has it, before it is classified.
pub(crate) struct Received<'a> {
    pub sms: &'a InboundSms,
    /// What Twilio sent, verbatim: the webhook's form body, or the backfill's list entry.
    pub raw_payload: &'a str,
    pub message_id: String,
    pub received_at: String,
    /// The webhook's trace, stored with the text (none for a backfilled one).
    pub trace: Option<TraceHeader>,
}

/// What recording a received text found and did.
pub(crate) struct Recorded {
    pub outcome: InboundOutcome,
    pub classification: Option<Classification>,
}

/// Classifies a received text (consent keyword, language) and records it in the one
/// idempotent write of the inbound path: the webhook and the backfill share it, so a text they
/// both see is stored once and the stream (and the processor) sees it once. Logs and counts
/// the outcome under `function`, in `metrics` (the caller emits them).
pub(crate) async fn record(
    store: &Store,
    text: &Received<'_>,
    function: &'static str,
    metrics: &mut Batch,
) -> Result<Recorded, crate::store::StoreError> {
    let sms = text.sms;
    let classification = consent::classify(&sms.body);
    let keyword = classification.map(|c| c.keyword);
    let detection = language::detect(&sms.body);
    let record = InboundRecord {
        sms,
        raw_payload: text.raw_payload,
        message_id: text.message_id.clone(),
        new_conversation_id: ulid::Ulid::new().to_string(),
        received_at: text.received_at.clone(),
        detection,
        keyword: classification,
        trace: text.trace.clone(),
    };
    let outcome = store.record_inbound_consent(&record).await?;

    let counts = Metrics::new(function).dimension("channel", sms.channel().as_str());
    match outcome.write {
        WriteOutcome::Recorded => {
            info!(
                message_id = %record.message_id,
                keyword = keyword.map(Keyword::as_str),
                keyword_language = classification.map(|c| c.language.as_str()),
                consent = ?outcome.consent,
                language = detection.language.as_str(),
                confidence = detection.confidence,
                media = sms.media.len(),
                "inbound message recorded"
            );
            metrics.push(
                Metrics::new(function)
                    .dimension("language", detection.language.as_str())
                    .count("LanguageDetected", 1),
            );
            metrics.push(
                counts
                    .count("Received", 1)
                    .count("OptOuts", u64::from(keyword == Some(Keyword::OptOut)))
                    .count("OptIns", u64::from(keyword == Some(Keyword::OptIn)))
                    .count(
                        "ConsentUnchanged",
                        u64::from(outcome.consent == ConsentOutcome::Unchanged),
                    ),
            );
        }
        WriteOutcome::Duplicate => {
            info!("duplicate MessageSid skipped");
            metrics.push(counts.count("DuplicateSkipped", 1));
        }
    }
    Ok(Recorded {
        outcome,
        classification,
    })
}

/// The TwiML answer: for HELP, and for an opt-out or opt-in that changed the number's consent,
/// the text of the keyword's family in the keyword's language; otherwise (no keyword, or a
/// second STOP from a number already opted out) an empty `<Response/>`.
pub fn reply(
    keyword: Option<Classification>,
    consent: ConsentOutcome,
    replies: &Replies,
) -> String {
    let text = keyword.and_then(|c| {
        let texts = replies.of(c.language);
        match (c.keyword, consent) {
            (Keyword::Help, _) => texts.help.as_deref(),
            (_, ConsentOutcome::Unchanged | ConsentOutcome::Untouched) => None,
            (Keyword::OptOut, ConsentOutcome::Changed) => texts.opt_out.as_deref(),
            (Keyword::OptIn, ConsentOutcome::Changed) => texts.opt_in.as_deref(),
        }
    });
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
    use crate::config::ReplyTexts;
    use crate::language::Language;

    fn replies() -> Replies {
        Replies::with_english(ReplyTexts {
            help: Some("Reply STOP to stop. <Acme & Co>".into()),
            opt_out: None,
            opt_in: Some("Welcome back".into()),
        })
    }

    fn answer(body: &str, consent: ConsentOutcome) -> String {
        reply(consent::classify(body), consent, &replies())
    }

    const EMPTY: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#;

    #[test]
    fn replies_follow_the_keyword_and_can_be_switched_off() {
        use ConsentOutcome::*;
        assert!(answer("HELP", Untouched)
            .contains("<Message>Reply STOP to stop. &lt;Acme &amp; Co&gt;</Message>"));
        assert_eq!(answer("STOP", Changed), EMPTY, "English opt-out text off");
        assert!(answer("START", Changed).contains("Welcome back"));
        assert_eq!(answer("Thanks!", Untouched), EMPTY);
    }

    #[test]
    fn the_reply_is_in_the_language_of_the_keyword() {
        use ConsentOutcome::*;
        let es = ReplyTexts::builtin(Language::Es);
        let pt = ReplyTexts::builtin(Language::Pt);
        let has = |xml: String, text: &Option<String>| {
            xml.contains(&xml_escape(text.as_deref().unwrap()))
        };
        assert!(has(answer("PARAR", Changed), &es.opt_out));
        assert!(has(answer("no más mensajes", Changed), &es.opt_out));
        assert!(has(answer("COMENZAR", Changed), &es.opt_in));
        assert!(has(answer("ayuda", Untouched), &es.help));
        assert!(has(answer("Sair", Changed), &pt.opt_out));
        assert!(has(
            answer("não me mandem mais mensagens", Changed),
            &pt.opt_out
        ));
        assert!(has(answer("VOLTAR", Changed), &pt.opt_in));
        assert!(has(answer("Ajuda", Untouched), &pt.help));
        assert!(answer("START", Changed).contains("Welcome back"));
    }

    #[test]
    fn an_opt_out_or_opt_in_that_changes_nothing_gets_no_second_confirmation() {
        use ConsentOutcome::*;
        for body in ["STOP", "PARAR", "SAIR", "START", "COMENZAR"] {
            assert_eq!(answer(body, Unchanged), EMPTY, "{body}");
        }
        assert!(
            answer("HELP", Unchanged).contains("<Message>"),
            "help always answers"
        );
    }
}
