//! The events the processor publishes, built from the stored items alone (what the store
//! must still be asked — a tenant, a body — is passed in).

use crate::consent::Keyword;
use crate::events::{
    ConsentDetail, Content, DomainEvent, Event, SmsOptedIn, SmsOptedOut, SmsReceived,
    SmsStatusChanged,
};
use crate::phone::E164;
use crate::store::{Consent, Conversation, Message};
use crate::time::Timestamp;

use super::routing::Transition;

/// `sms.received` for an inbound message from `from`, linked to `tenant_id`; `content` only
/// with `EVENT_BODIES=include`. It occurred when the message was received.
pub(super) fn received(
    message: &Message,
    from: &E164,
    conversation: &Conversation,
    tenant_id: &str,
    content: Option<Content>,
) -> Event<SmsReceived> {
    Event::new(
        message.created_at,
        SmsReceived {
            message_id: message.message_id.clone(),
            conversation_id: conversation.conversation_id.clone(),
            tenant_id: tenant_id.to_owned(),
            channel: message.channel,
            from: from.clone(),
            to: message.to_e164.clone(),
            media_count: message.media_urls.len(),
            body_included: content.is_some(),
            content,
            language: message.language,
            language_confidence: message.language_confidence,
            keyword: message.keyword.as_deref().and_then(Keyword::parse),
            workflow_type: conversation.workflow_type.clone(),
            workflow_id: conversation.workflow_id.clone(),
        },
    )
}

/// `sms.status_changed`, observed `now` (the stream carries no time of its own). A message
/// a rule made carries the rule's cause: the loop guard.
pub(super) fn status_changed(
    transition: &Transition,
    tenant_id: Option<String>,
    now: Timestamp,
) -> Event<SmsStatusChanged> {
    let message = &transition.message;
    Event::new(
        now,
        SmsStatusChanged {
            message_id: message.message_id.clone(),
            tenant_id,
            twilio_sid: message.twilio_sid.clone(),
            status: transition.status,
            state: message.status,
            reason: message.status_reason.clone(),
            previous_status: transition.previous,
            error_code: message.error_code.clone(),
            workflow_type: message.workflow_type.clone(),
            workflow_id: message.workflow_id.clone(),
            cause: message.cause.clone(),
        },
    )
}

/// `sms.opted_out` or `sms.opted_in`, named by the message that changed the consent, and
/// occurring when it was recorded.
pub(super) fn consent_changed(consent: &Consent, tenant_id: Option<String>) -> DomainEvent {
    let occurred_at = Timestamp::parse(&consent.updated_at).unwrap_or_else(Timestamp::now);
    let detail = ConsentDetail {
        phone_number: consent.phone.clone(),
        tenant_id,
        keyword: consent.keyword.clone(),
        message_id: consent.history.last().map(|c| c.message_id.clone()),
    };
    if consent.opted_out {
        Event::new(occurred_at, SmsOptedOut(detail)).into()
    } else {
        Event::new(occurred_at, SmsOptedIn(detail)).into()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::events::Status;
    use crate::language::Language;
    use crate::phone::Channel;
    use crate::pipeline::PipelineState;

    fn message() -> Message {
        serde_json::from_value(json!({
            "pk": "CONV#sms#+14155552671", "sk": "MSG#1", "gsi1pk": "MSG#1", "gsi1sk": "MSG",
            "message_id": "01JDMSG", "direction": "inbound", "channel": "whatsapp",
            "body": "STOP", "from_e164": "+14155552671", "from_original": "whatsapp:+14155552671",
            "to_e164": "+15005550006", "to_original": "+15005550006", "num_media": 1,
            "media_urls": ["https://api.twilio.com/m/ME1"],
            "language": "es", "language_confidence": 0.75, "keyword": "opt_out",
            "status": "received", "created_at": "2026-11-22T10:00:00.250Z"
        }))
        .unwrap()
    }

    fn conversation() -> Conversation {
        serde_json::from_value(json!({
            "conversation_id": "01JDCONV", "channel": "whatsapp", "phone": "+14155552671",
            "created_at": "2026-11-22T09:00:00.000Z", "last_message_at": "2026-11-22T10:00:00.250Z",
            "language": null, "language_confidence": null, "tenant_id": "t-1",
            "workflow_type": "maintenance", "workflow_id": "wf-1"
        }))
        .unwrap()
    }

    #[test]
    fn sms_received_is_the_message_its_conversation_and_tenant() {
        let m = message();
        let from = m.from_e164.clone().unwrap();
        let event = received(&m, &from, &conversation(), "t-1", None);
        assert_eq!(event.event_id, "sms.received/01JDMSG");
        assert_eq!(event.occurred_at.to_string(), "2026-11-22T10:00:00.250Z");
        let d = &event.detail;
        assert_eq!(
            (d.channel, d.language, d.keyword),
            (Channel::Whatsapp, Language::Es, Some(Keyword::OptOut))
        );
        assert_eq!((d.media_count, d.body_included), (1, false));
        assert_eq!(d.content, None);
        assert_eq!(
            (d.workflow_type.as_deref(), d.conversation_id.as_str()),
            (Some("maintenance"), "01JDCONV")
        );
        assert_eq!(d.from.as_str(), "+14155552671");

        let content = Content {
            body: "STOP".into(),
            media_urls: vec!["https://api.twilio.com/m/ME1".into()],
        };
        let with = received(&m, &from, &conversation(), "t-1", Some(content.clone()));
        assert!(with.detail.body_included);
        assert_eq!(with.detail.content, Some(content));
        assert_eq!(with.event_id, event.event_id, "the same fact, the same id");
    }

    #[test]
    fn sms_status_changed_carries_the_message_and_its_cause() {
        let mut m = message();
        m.status = PipelineState::Canceled;
        m.status_reason = Some("opted_out".into());
        m.cause = Some(crate::rules::Cause {
            rule_id: "r".into(),
            rule_version: 2,
            event_id: "invoice.overdue/1".into(),
            source: "collections".into(),
            detail_type: "invoice.overdue".into(),
            dedupe_key: "r/1".into(),
        });
        let transition = Transition {
            message: m,
            status: Status::Canceled,
            previous: Some(Status::Queued),
        };
        let now = Timestamp::parse("2026-11-22T11:00:00Z").unwrap();
        let event = status_changed(&transition, None, now);
        assert_eq!(event.event_id, "sms.status_changed/01JDMSG/canceled");
        assert_eq!(event.occurred_at, now);
        assert_eq!(event.detail.state, PipelineState::Canceled);
        assert_eq!(event.detail.reason.as_deref(), Some("opted_out"));
        assert_eq!(event.detail.previous_status, Some(Status::Queued));
        assert_eq!(
            event.detail.cause.as_ref().map(|c| c.rule_id.as_str()),
            Some("r")
        );
        assert!(DomainEvent::from(event).cause().is_some());
    }

    fn consent(opted_out: bool, history: serde_json::Value) -> Consent {
        serde_json::from_value(json!({
            "phone": "+14155552671", "opted_out": opted_out, "keyword": "PARAR",
            "updated_at": "2026-11-22T10:00:00.250Z", "history": history
        }))
        .unwrap()
    }

    #[test]
    fn consent_events_are_named_by_the_message_that_changed_it() {
        let history = json!([
            {"opted_out": true, "keyword": "STOP", "at": "2026-11-20T10:00:00.000Z", "message_id": "01JDOLD"},
            {"opted_out": true, "keyword": "PARAR", "at": "2026-11-22T10:00:00.250Z", "message_id": "01JDNEW"}
        ]);
        let out = consent_changed(&consent(true, history), Some("t-1".into()));
        assert_eq!(out.detail_type(), "sms.opted_out");
        assert_eq!(out.event_id(), "sms.opted_out/01JDNEW");
        match out {
            DomainEvent::OptedOut(e) => {
                assert_eq!(e.detail.0.keyword, "PARAR");
                assert_eq!(e.detail.0.tenant_id.as_deref(), Some("t-1"));
                assert_eq!(e.detail.0.message_id.as_deref(), Some("01JDNEW"));
            }
            other => panic!("{other:?}"),
        }
        let back_in = consent_changed(&consent(false, json!([])), None);
        assert_eq!(back_in.detail_type(), "sms.opted_in");
        assert_eq!(back_in.event_id(), "sms.opted_in/2026-11-22T10:00:00.250Z");
    }
}
