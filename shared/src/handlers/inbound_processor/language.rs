//! A tenant's language preference (`TENANT#…/LANGUAGE`), moved by each inbound message's
//! detected language (`language::decide`), and pushed to the tenant's profile at the
//! Collections Monitor when it changes.

use tracing::info;

use super::{InboundProcessor, ProcessorError, FUNCTION};
use crate::language::{self, Decision, Detection, Preference};
use crate::metrics::Metrics;
use crate::monitor::MonitorError;
use crate::store::Message;

impl InboundProcessor {
    pub(super) async fn update_language(
        &self,
        tenant_id: &str,
        message: &Message,
    ) -> Result<(), ProcessorError> {
        let current = self.store.language_preference(tenant_id).await?;
        if already_counted(current.as_ref(), message) {
            return Ok(());
        }
        Metrics::new(FUNCTION)
            .dimension("language", message.language.as_str())
            .count("LanguageSignals", 1)
            .emit();
        let signal = Detection {
            language: message.language,
            confidence: message.language_confidence,
        };
        match language::decide(current.as_ref(), signal) {
            Decision::Keep(reason) => {
                info!(
                    signal = message.language.as_str(),
                    kept = current.as_ref().map(|p| p.language.as_str()),
                    reason,
                    "language preference kept"
                );
            }
            Decision::Adopt { changed, reason } => {
                if let (true, Some(monitor)) = (changed, &self.monitor) {
                    // Pushed before it is stored: if the monitor fails, or its circuit breaker
                    // is open, the record is retried and pushes again.
                    let _permit = self
                        .monitor_breaker
                        .admit()
                        .map_err(|_| MonitorError::CircuitOpen)?;
                    let pushed = monitor
                        .update_language(
                            tenant_id,
                            message.language,
                            message.language_confidence,
                            reason,
                        )
                        .await;
                    self.monitor_breaker.record(MonitorError::outcome(&pushed));
                    pushed?;
                }
                self.store
                    .put_language_preference(tenant_id, &preference(message))
                    .await?;
                info!(
                    language = message.language.as_str(),
                    changed, reason, "language preference updated"
                );
            }
        }
        Ok(())
    }
}

/// Whether `message` already moved the preference, or a later message did: a redelivered
/// record must not count its own signal twice, nor an old one overrule a newer.
fn already_counted(current: Option<&Preference>, message: &Message) -> bool {
    current.is_some_and(|p| {
        p.message_id == message.message_id || p.at > message.created_at.to_string()
    })
}

fn preference(message: &Message) -> Preference {
    Preference {
        language: message.language,
        confidence: message.language_confidence,
        at: message.created_at.to_string(),
        message_id: message.message_id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::language::Language;

    fn message(id: &str, at: &str) -> Message {
        serde_json::from_value(serde_json::json!({
            "pk": "CONV#sms#+14155552671", "sk": "MSG#1", "gsi1pk": "MSG#1", "gsi1sk": "MSG",
            "message_id": id, "direction": "inbound", "channel": "sms", "body": "hola",
            "from_e164": "+14155552671", "to_e164": "+15005550006",
            "to_original": "+15005550006", "num_media": 0, "language": "es",
            "language_confidence": 0.8, "status": "received", "created_at": at
        }))
        .unwrap()
    }

    #[test]
    fn a_signal_is_counted_once_and_never_after_a_newer_one() {
        let first = message("01JDA", "2026-11-22T10:00:00.000Z");
        let stored = preference(&first);
        assert_eq!(
            (stored.language, stored.at.as_str()),
            (Language::Es, "2026-11-22T10:00:00.000Z")
        );
        assert!(!already_counted(None, &first));
        assert!(already_counted(Some(&stored), &first), "a redelivery");
        let later = message("01JDB", "2026-11-22T10:05:00.000Z");
        assert!(!already_counted(Some(&stored), &later));
        let earlier = message("01JD0", "2026-11-22T09:55:00.000Z");
        assert!(
            already_counted(Some(&stored), &earlier),
            "processed out of order"
        );
    }
}
