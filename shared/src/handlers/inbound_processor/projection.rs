//! The read models kept from the stream, beside the steps `routing` asks for: the inbox's
//! flags on each conversation (has a pending message, the number opted out) and the hourly
//! traffic counters behind `GET /stats`. What a record changes is decided from the record
//! alone (`of`); applying it is two idempotent flag updates, the failed list's entry (a put
//! of the same key) and one counter update, counted last so that a failure before it leaves
//! nothing counted.

use aws_lambda_events::event::dynamodb::EventRecord;

use super::routing::{entity, Keys};
use super::{InboundProcessor, ProcessorError};
use crate::delivery::DeliveryStatus;
use crate::phone::E164;
use crate::pipeline::PipelineState;
use crate::store::failures::Failed;
use crate::store::keys::{self, Entity};
use crate::store::{Consent, Count, Direction, Message};
use crate::time::Timestamp;

/// What one record changes in the read models.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Projection {
    /// `(conversation pk, message id, pending)`: the message entered or left the pending set.
    pub pending: Option<(String, String, bool)>,
    /// The number's consent flipped.
    pub opted_out: Option<(E164, bool)>,
    pub counts: Vec<Count>,
    /// An outbound message failed: list it with the failed ones.
    pub failed: Option<Failed>,
}

/// An outbound message that Parley has yet to hand to Twilio or finish.
fn is_pending(m: &Message) -> bool {
    m.direction == Direction::Outbound && !m.status.is_final()
}

/// What `record` changes, from its images alone.
pub(super) fn of(record: &EventRecord) -> Projection {
    let change = &record.change;
    let mut projection = Projection::default();
    let erased = serde_dynamo::from_item::<_, Keys>(change.keys.clone())
        .is_ok_and(|k| keys::is_erased(&k.pk));
    if record.event_name == "REMOVE" || change.new_image.len() <= 2 || erased {
        return projection;
    }
    match entity(&change.new_image) {
        Some(Entity::Message) => {
            let Ok(new) = serde_dynamo::from_item::<_, Message>(change.new_image.clone()) else {
                return projection;
            };
            let old: Option<Message> = serde_dynamo::from_item(change.old_image.clone()).ok();
            message(&mut projection, old.as_ref(), &new);
        }
        Some(Entity::Consent) => {
            let Ok(new) = serde_dynamo::from_item::<_, Consent>(change.new_image.clone()) else {
                return projection;
            };
            let old: Option<Consent> = serde_dynamo::from_item(change.old_image.clone()).ok();
            if old.is_none_or(|o| o.opted_out != new.opted_out) {
                projection.counts.push(match new.opted_out {
                    true => Count::OptOut,
                    false => Count::OptIn,
                });
                projection.opted_out = Some((new.phone, new.opted_out));
            }
        }
        _ => {}
    }
    projection
}

fn message(projection: &mut Projection, old: Option<&Message>, new: &Message) {
    if old.is_none() {
        projection.counts.push(match new.direction {
            Direction::Inbound => Count::Inbound {
                language: new.language,
            },
            Direction::Outbound => Count::Outbound,
        });
    }
    let was_pending = old.is_some_and(is_pending);
    if is_pending(new) != was_pending {
        projection.pending = Some((new.pk.clone(), new.message_id.clone(), is_pending(new)));
    }
    let before = old.and_then(|m| m.delivery_status);
    let failed = Count::Failed {
        error_code: new.error_code.clone(),
    };
    match new.delivery_status.filter(|s| Some(*s) != before) {
        Some(DeliveryStatus::Sent) => projection.counts.push(Count::Sent),
        Some(DeliveryStatus::Delivered) => projection.counts.push(Count::Delivered),
        Some(DeliveryStatus::Failed | DeliveryStatus::Undelivered) => {
            projection.counts.push(failed);
            projection.failed = Some(Failed::of(new));
        }
        // Failed by Parley itself (Twilio refused it), with no delivery status to say so.
        _ if new.status == PipelineState::Failed
            && old.is_some_and(|o| o.status != PipelineState::Failed)
            && !matches!(
                new.delivery_status,
                Some(DeliveryStatus::Failed | DeliveryStatus::Undelivered)
            ) =>
        {
            projection.counts.push(failed);
            projection.failed = Some(Failed::of(new));
        }
        _ => {}
    }
}

/// When the change happened, as the stream says (DynamoDB gives it to the second).
fn happened_at(record: &EventRecord) -> Timestamp {
    let at = record
        .change
        .approximate_creation_date_time
        .timestamp_millis();
    // An emulator may leave it unset (the epoch): then the record is counted as it is read.
    match at > 0 {
        true => Timestamp::from_unix_millis(at).unwrap_or_else(Timestamp::now),
        false => Timestamp::now(),
    }
}

impl InboundProcessor {
    /// Applies what `record` changes in the read models.
    pub(super) async fn project(&self, record: &EventRecord) -> Result<(), ProcessorError> {
        let projection = of(record);
        if let Some((pk, message_id, pending)) = &projection.pending {
            self.store.set_pending(pk, message_id, *pending).await?;
        }
        if let Some((phone, opted_out)) = &projection.opted_out {
            self.store
                .set_conversation_opted_out(phone, *opted_out)
                .await?;
        }
        let at = happened_at(record);
        if let Some(message) = &projection.failed {
            self.store.record_failure(message, at).await?;
        }
        self.store.add_counts(at, &projection.counts).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn outbound(status: &str, delivery: Option<&str>, error_code: Option<&str>) -> Message {
        serde_json::from_value(json!({
            "pk": "CONV#sms#+14155552671", "sk": "MSG#1", "gsi1pk": "MSG#1", "gsi1sk": "MSG",
            "entity": "message",
            "message_id": "1", "direction": "outbound", "channel": "sms", "body": "hi",
            "to_e164": "+14155552671", "to_original": "+14155552671", "num_media": 0,
            "language": "en", "language_confidence": 0.9, "status": status,
            "delivery_status": delivery, "error_code": error_code,
            "created_at": "2026-11-22T10:00:00Z"
        }))
        .unwrap()
    }

    fn project(old: Option<&Message>, new: &Message) -> Projection {
        let mut p = Projection::default();
        message(&mut p, old, new);
        p
    }

    #[test]
    fn an_accepted_send_is_counted_and_pending_until_final() {
        let scheduled = outbound("scheduled", None, None);
        let p = project(None, &scheduled);
        assert_eq!(p.counts, [Count::Outbound]);
        assert_eq!(
            p.pending,
            Some(("CONV#sms#+14155552671".into(), "1".into(), true))
        );

        let queued = outbound("queued", None, None);
        assert_eq!(project(Some(&scheduled), &queued), Projection::default());

        let submitted = outbound("submitted", Some("queued"), None);
        let p = project(Some(&queued), &submitted);
        assert!(!p.pending.unwrap().2);
        assert!(p.counts.is_empty());
    }

    #[test]
    fn delivery_statuses_are_counted_once_each() {
        let queued = outbound("submitted", Some("queued"), None);
        let sent = outbound("submitted", Some("sent"), None);
        let delivered = outbound("submitted", Some("delivered"), None);
        assert_eq!(project(Some(&queued), &sent).counts, [Count::Sent]);
        assert_eq!(project(Some(&sent), &delivered).counts, [Count::Delivered]);
        assert!(project(Some(&delivered), &delivered).counts.is_empty());
        let undelivered = outbound("submitted", Some("undelivered"), Some("30003"));
        assert_eq!(
            project(Some(&sent), &undelivered).counts,
            [Count::Failed {
                error_code: Some("30003".into())
            }]
        );
    }

    #[test]
    fn a_refusal_by_twilio_counts_as_a_failure_once() {
        let sending = outbound("sending", None, None);
        let failed = outbound("failed", None, Some("21211"));
        let p = project(Some(&sending), &failed);
        assert_eq!(
            p.counts,
            [Count::Failed {
                error_code: Some("21211".into())
            }]
        );
        assert!(!p.pending.unwrap().2);
        assert_eq!(
            p.failed.unwrap().message_id,
            failed.message_id,
            "listed as failed"
        );
        let again = project(Some(&failed), &failed);
        assert!(again.counts.is_empty() && again.failed.is_none());
    }
}
