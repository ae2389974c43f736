//! Which step a stream record triggers, decided from the record alone: its event name, its
//! keys, the `entity` every item carries (see `store::keys`) and its images. Nothing here
//! reads the table.

use aws_lambda_events::event::dynamodb::EventRecord;
use serde::Deserialize;

use crate::events::Status;
use crate::pipeline::PipelineState;
use crate::store::keys::{self, Entity};
use crate::store::{Consent, Direction, Message};

/// What a stream record asks of the processor.
#[derive(Debug)]
pub(super) enum Route {
    /// An inbound message was stored: its tenant, `sms.received`, the language preference.
    Inbound(Box<Message>),
    /// An outbound message's status moved: `sms.status_changed`.
    StatusChanged(Box<Transition>),
    /// A number's consent flipped: `sms.opted_out` or `sms.opted_in` (and, on an opt-out,
    /// its pending messages canceled).
    ConsentChanged(Box<Consent>),
    Skip(Skip),
}

/// An outbound message's new status, as `sms.status_changed` publishes it.
#[derive(Debug)]
pub(super) struct Transition {
    pub message: Message,
    pub status: Status,
    pub previous: Option<Status>,
}

/// Why a record asks nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Skip {
    /// A removal (an erasure, an expiry): nothing happened worth telling.
    Removed,
    /// An image of keys alone carries nothing to act on (moto emits one before the full
    /// INSERT when UpdateItem creates an item; DynamoDB does not).
    NoImage,
    /// Moved by an erasure (or its audit entry): nobody's to act on, no events, no lookups.
    Erased,
    /// Without an `entity` this version knows (an item kind added later).
    UnknownEntity,
    /// An item the processor has nothing to do for (guards, counters, mappings…).
    NotRouted(Entity),
    /// An outbound message written: its events come with its status changes.
    OutboundWritten,
    /// An inbound message without a sender number to look up.
    NoSender,
    /// A message changed without a new status (a claim, an attempt, a counter).
    SameStatus,
    /// A consent write that leaves the number opted out or in as it was.
    SameConsent,
}

/// The step `record` triggers. An image that is not the item its `entity` says fails the
/// record (it is retried, then dead-lettered), since the table should never hold one.
pub(super) fn route(record: &EventRecord) -> Result<Route, serde_dynamo::Error> {
    let change = &record.change;
    let image = &change.new_image;
    if record.event_name == "REMOVE" {
        return Ok(Route::Skip(Skip::Removed));
    }
    if image.len() <= 2 {
        return Ok(Route::Skip(Skip::NoImage));
    }
    if serde_dynamo::from_item::<_, Keys>(change.keys.clone()).is_ok_and(|k| keys::is_erased(&k.pk))
    {
        return Ok(Route::Skip(Skip::Erased));
    }
    let Some(entity) = entity(image) else {
        return Ok(Route::Skip(Skip::UnknownEntity));
    };
    let inserted = record.event_name == "INSERT";
    Ok(match entity {
        Entity::Message if inserted => {
            let message: Message = serde_dynamo::from_item(image.clone())?;
            if message.direction == Direction::Outbound {
                Route::Skip(Skip::OutboundWritten)
            } else if message.from_e164.is_none() {
                Route::Skip(Skip::NoSender)
            } else {
                Route::Inbound(Box::new(message))
            }
        }
        Entity::Message => {
            let message: Message = serde_dynamo::from_item(image.clone())?;
            let old: Option<Message> = serde_dynamo::from_item(change.old_image.clone()).ok();
            match transition(old.as_ref(), &message) {
                Some((status, previous)) => Route::StatusChanged(Box::new(Transition {
                    message,
                    status,
                    previous,
                })),
                None => Route::Skip(Skip::SameStatus),
            }
        }
        Entity::Consent => {
            let consent: Consent = serde_dynamo::from_item(image.clone())?;
            let old: Option<Consent> = serde_dynamo::from_item(change.old_image.clone()).ok();
            if old.is_some_and(|o| o.opted_out == consent.opted_out) {
                Route::Skip(Skip::SameConsent)
            } else {
                Route::ConsentChanged(Box::new(consent))
            }
        }
        other => Route::Skip(Skip::NotRouted(other)),
    })
}

/// The status to publish for a message that went from `old` to `new`, and the one before
/// it: a Twilio status it did not have (one this version ranks), or `expired` when Parley
/// ended it before Twilio saw it. Without the old image every status is new.
pub(super) fn transition(old: Option<&Message>, new: &Message) -> Option<(Status, Option<Status>)> {
    let before = old.and_then(|m| m.delivery_status);
    let previous = before.and_then(Status::from_delivery);
    let status = new
        .delivery_status
        .filter(|s| Some(*s) != before)
        .and_then(Status::from_delivery);
    match status {
        Some(status) => Some((status, previous)),
        None if new.status == PipelineState::Expired
            && old.is_some_and(|o| o.status != new.status) =>
        {
            Some((Status::Expired, previous))
        }
        None => None,
    }
}

#[derive(Deserialize)]
pub(super) struct Keys {
    pub pk: String,
    pub sk: String,
}

/// What an image is, from its `entity`.
pub(super) fn entity(image: &serde_dynamo::Item) -> Option<Entity> {
    #[derive(Deserialize)]
    struct Kind {
        entity: Option<Entity>,
    }
    serde_dynamo::from_item::<_, Kind>(image.clone())
        .ok()
        .and_then(|k| k.entity)
}

/// `INSERT consent (6 attributes)`: what a record is about, without the number in its key.
pub(super) fn record_kind(record: &EventRecord) -> String {
    let kind = entity(&record.change.new_image).map_or("unknown", Entity::as_str);
    format!(
        "{} {kind} ({} attributes)",
        record.event_name,
        record.change.new_image.len()
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::delivery::DeliveryStatus;

    fn message(direction: &str, delivery_status: Option<&str>, status: &str) -> Message {
        serde_json::from_value(json!({
            "pk": "CONV#sms#+14155552671", "sk": "MSG#1", "gsi1pk": "MSG#1", "gsi1sk": "MSG",
            "entity": "message", "message_id": "1", "direction": direction, "channel": "sms",
            "body": "hi", "from_e164": "+14155552671", "from_original": "+14155552671",
            "to_e164": "+15005550006", "to_original": "+15005550006", "num_media": 0,
            "language": "en", "language_confidence": 0.9, "status": status,
            "delivery_status": delivery_status, "created_at": "2026-11-22T10:00:00Z"
        }))
        .unwrap()
    }

    fn consent(opted_out: bool) -> Consent {
        serde_json::from_value(json!({
            "phone": "+14155552671", "opted_out": opted_out, "keyword": "STOP",
            "updated_at": "2026-11-22T10:00:00.000Z"
        }))
        .unwrap()
    }

    fn item(value: &impl serde::Serialize) -> serde_dynamo::Item {
        serde_dynamo::to_item(value).unwrap()
    }

    /// A consent item as stored: its keys and `entity` beside the record's fields.
    fn consent_item(opted_out: bool) -> serde_dynamo::Item {
        let mut value = serde_json::to_value(consent(opted_out)).unwrap();
        value["pk"] = json!("CONSENT#+14155552671");
        value["sk"] = json!("CONSENT");
        value["entity"] = json!("consent");
        item(&value)
    }

    fn record(
        name: &str,
        pk: &str,
        new: serde_dynamo::Item,
        old: serde_dynamo::Item,
    ) -> EventRecord {
        let mut record = EventRecord::default();
        record.event_name = name.into();
        record.change.keys = item(&json!({"pk": pk, "sk": "MSG#1"}));
        record.change.new_image = new;
        record.change.old_image = old;
        record
    }

    fn empty() -> serde_dynamo::Item {
        serde_dynamo::Item::default()
    }

    const PK: &str = "CONV#sms#+14155552671";

    fn skip(route: Route) -> Skip {
        match route {
            Route::Skip(skip) => skip,
            other => panic!("expected a skip, got {other:?}"),
        }
    }

    #[test]
    fn an_inbound_insert_is_looked_up() {
        let new = item(&message("inbound", None, "received"));
        match route(&record("INSERT", PK, new, empty())).unwrap() {
            Route::Inbound(m) => assert_eq!(m.message_id, "1"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_outbound_insert_or_one_without_a_sender_asks_nothing() {
        let outbound = item(&message("outbound", None, "queued"));
        assert_eq!(
            skip(route(&record("INSERT", PK, outbound, empty())).unwrap()),
            Skip::OutboundWritten
        );
        let mut anonymous = message("inbound", None, "received");
        anonymous.from_e164 = None;
        assert_eq!(
            skip(route(&record("INSERT", PK, item(&anonymous), empty())).unwrap()),
            Skip::NoSender
        );
    }

    #[test]
    fn an_outbound_modify_with_a_new_delivery_status_is_published() {
        let old = item(&message("outbound", Some("sent"), "submitted"));
        let new = item(&message("outbound", Some("delivered"), "submitted"));
        match route(&record("MODIFY", PK, new, old)).unwrap() {
            Route::StatusChanged(t) => {
                assert_eq!(
                    (t.status, t.previous),
                    (Status::Delivered, Some(Status::Sent))
                );
                assert_eq!(t.message.message_id, "1");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_modify_with_the_same_status_asks_nothing() {
        let old = item(&message("outbound", Some("sent"), "submitted"));
        let new = item(&message("outbound", Some("sent"), "submitted"));
        assert_eq!(
            skip(route(&record("MODIFY", PK, new, old)).unwrap()),
            Skip::SameStatus
        );
        // A claim: the pipeline state moves, Twilio's status does not exist yet.
        let old = item(&message("outbound", None, "queued"));
        let new = item(&message("outbound", None, "sending"));
        assert_eq!(
            skip(route(&record("MODIFY", PK, new, old)).unwrap()),
            Skip::SameStatus
        );
    }

    #[test]
    fn transitions_publish_new_known_statuses_and_parleys_expiry() {
        let at = |d: Option<&str>, s: &str| message("outbound", d, s);
        // No old image: every status is new.
        assert_eq!(
            transition(None, &at(Some("queued"), "submitted")),
            Some((Status::Queued, None))
        );
        assert_eq!(
            transition(
                Some(&at(None, "sending")),
                &at(Some("canceled"), "canceled")
            ),
            Some((Status::Canceled, None))
        );
        // Expired before Twilio saw it: Parley's own final state.
        assert_eq!(
            transition(Some(&at(None, "scheduled")), &at(None, "expired")),
            Some((Status::Expired, None))
        );
        assert_eq!(
            transition(Some(&at(None, "expired")), &at(None, "expired")),
            None,
            "already expired"
        );
        assert_eq!(transition(None, &at(None, "expired")), None);
        // A status this version does not rank is never published.
        let mut unknown = at(Some("sent"), "submitted");
        unknown.delivery_status = Some(DeliveryStatus::Unknown);
        assert_eq!(
            transition(Some(&at(Some("sent"), "submitted")), &unknown),
            None
        );
        assert_eq!(
            transition(Some(&unknown), &at(Some("delivered"), "submitted")),
            Some((Status::Delivered, None))
        );
    }

    #[test]
    fn a_consent_change_is_published_and_a_rewrite_is_not() {
        match route(&record(
            "INSERT",
            "CONSENT#+14155552671",
            consent_item(true),
            empty(),
        ))
        .unwrap()
        {
            Route::ConsentChanged(c) => assert!(c.opted_out),
            other => panic!("{other:?}"),
        }
        match route(&record(
            "MODIFY",
            "CONSENT#+14155552671",
            consent_item(false),
            consent_item(true),
        ))
        .unwrap()
        {
            Route::ConsentChanged(c) => assert!(!c.opted_out),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            skip(
                route(&record(
                    "MODIFY",
                    "CONSENT#+14155552671",
                    consent_item(true),
                    consent_item(true)
                ))
                .unwrap()
            ),
            Skip::SameConsent
        );
    }

    #[test]
    fn a_remove_asks_nothing() {
        let old = item(&message("inbound", None, "received"));
        assert_eq!(
            skip(route(&record("REMOVE", PK, empty(), old)).unwrap()),
            Skip::Removed
        );
    }

    #[test]
    fn a_missing_or_keys_only_image_asks_nothing() {
        assert_eq!(
            skip(route(&record("INSERT", PK, empty(), empty())).unwrap()),
            Skip::NoImage
        );
        let keys_only = item(&json!({"pk": PK, "sk": "MSG#1"}));
        assert_eq!(
            skip(route(&record("INSERT", PK, keys_only, empty())).unwrap()),
            Skip::NoImage
        );
    }

    #[test]
    fn an_unknown_entity_or_another_item_asks_nothing() {
        let unknown = item(&json!({"pk": "RULE#r1", "sk": "RULE", "entity": "a_future_kind"}));
        assert_eq!(
            skip(route(&record("INSERT", "RULE#r1", unknown, empty())).unwrap()),
            Skip::UnknownEntity
        );
        let none = item(&json!({"pk": "X#1", "sk": "X", "other": 1}));
        assert_eq!(
            skip(route(&record("INSERT", "X#1", none, empty())).unwrap()),
            Skip::UnknownEntity
        );
        let mapping = item(&json!({"pk": "PHONE#+1415", "sk": "TENANT", "entity": "phone_tenant"}));
        assert_eq!(
            skip(route(&record("INSERT", "PHONE#+1415", mapping, empty())).unwrap()),
            Skip::NotRouted(Entity::PhoneTenant)
        );
    }

    #[test]
    fn erased_items_ask_nothing() {
        let pk = format!("{}{PK}", keys::ERASED_PREFIX);
        let new = item(&message("inbound", None, "received"));
        assert_eq!(
            skip(route(&record("INSERT", &pk, new, empty())).unwrap()),
            Skip::Erased
        );
    }

    #[test]
    fn an_image_not_shaped_as_its_entity_fails_the_record() {
        let broken = item(&json!({"pk": PK, "sk": "MSG#1", "entity": "message", "body": 1}));
        assert!(route(&record("INSERT", PK, broken, empty())).is_err());
    }

    #[test]
    fn the_record_kind_names_no_number() {
        let r = record(
            "INSERT",
            "CONSENT#+14155552671",
            consent_item(true),
            empty(),
        );
        let kind = record_kind(&r);
        assert!(kind.starts_with("INSERT consent ("), "{kind}");
        assert!(!kind.contains("+1415"));
    }
}
