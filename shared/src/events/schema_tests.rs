//! The structs, docs/events.schema.json and docs/events.md held together: a sample of every
//! detail-type (both `EVENT_BODIES` modes, with and without a cause, every enum value) must
//! validate against its definition and read back as itself, and details the schema must
//! refuse are refused.

use serde_json::Value;

use super::*;

const SCHEMA: &str = include_str!("../../../docs/events.schema.json");
const DOC: &str = include_str!("../../../docs/events.md");

fn schema() -> Value {
    serde_json::from_str(SCHEMA).expect("docs/events.schema.json is JSON")
}

/// The validator of one `$defs` entry (the whole document, so its references resolve).
fn validator(definition: &str) -> jsonschema::Validator {
    let mut schema = schema();
    assert!(
        schema["$defs"].get(definition).is_some(),
        "no definition for {definition}"
    );
    let root = schema.as_object_mut().unwrap();
    root.remove("oneOf");
    root.insert("$ref".into(), format!("#/$defs/{definition}").into());
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("a valid draft 2020-12 schema")
}

fn errors(definition: &str, detail: &Value) -> Vec<String> {
    validator(definition)
        .iter_errors(detail)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn assert_valid(event: &DomainEvent) {
    let detail: Value = serde_json::from_str(&event.detail_json().unwrap()).unwrap();
    let found = errors(event.detail_type(), &detail);
    assert!(found.is_empty(), "{detail:#}\n{found:#?}");
    // The root accepts it as exactly one of the detail-types.
    let root = jsonschema::validator_for(&schema()).unwrap();
    assert!(root.is_valid(&detail), "{detail:#}");
    // And it reads back as itself.
    let back = DomainEvent::parse(event.detail_type(), &detail.to_string()).unwrap();
    assert_eq!(&back, event);
}

fn at() -> Timestamp {
    Timestamp::parse("2026-11-21T21:00:00.123Z").unwrap()
}

fn phone(s: &str) -> E164 {
    E164::parse(s).unwrap()
}

fn received(content: Option<Content>) -> SmsReceived {
    SmsReceived {
        message_id: "01JDPROCESSOREVENT0000000A".into(),
        conversation_id: "01JDCONVERSATION0000000000".into(),
        tenant_id: "t-1001".into(),
        channel: Channel::Sms,
        from: phone("+14155550101"),
        to: phone("+15005550006"),
        media_count: content.as_ref().map_or(0, |c| c.media_urls.len()),
        body_included: content.is_some(),
        content,
        language: Language::Es,
        language_confidence: 0.9,
        keyword: None,
        workflow_type: None,
        workflow_id: None,
    }
}

fn cause() -> Cause {
    Cause {
        rule_id: "overdue-reminder".into(),
        rule_version: 3,
        event_id: "invoice.overdue/inv-77".into(),
        source: "collections".into(),
        detail_type: "invoice.overdue".into(),
        dedupe_key: "overdue-reminder/inv-77".into(),
    }
}

fn status_changed(cause: Option<Cause>) -> SmsStatusChanged {
    SmsStatusChanged {
        message_id: "01JDOUTBOUND00000000000000".into(),
        tenant_id: Some("t-1001".into()),
        twilio_sid: Some("SM0123456789abcdef0123456789abcdef".into()),
        status: Status::Delivered,
        state: PipelineState::Submitted,
        reason: None,
        previous_status: Some(Status::Sent),
        error_code: None,
        workflow_type: Some("rent_reminder".into()),
        workflow_id: Some("wf-9".into()),
        cause,
    }
}

fn consent(message_id: Option<&str>) -> ConsentDetail {
    ConsentDetail {
        phone_number: phone("+14155550101"),
        tenant_id: None,
        keyword: "NO MAS MENSAJES".into(),
        message_id: message_id.map(str::to_owned),
    }
}

#[test]
fn every_detail_type_has_a_definition_and_the_envelope() {
    let schema = schema();
    for detail_type in DETAIL_TYPES {
        let definition = &schema["$defs"][detail_type];
        assert_eq!(definition["additionalProperties"], false, "{detail_type}");
        let required: Vec<&str> = definition["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for field in ["event_id", "version", "occurred_at"] {
            assert!(required.contains(&field), "{detail_type} requires {field}");
        }
    }
    assert_eq!(schema["$defs"]["version"]["const"], SCHEMA_VERSION);
}

#[test]
fn sms_received_validates_with_and_without_bodies() {
    let omitted = Event::new(at(), received(None));
    assert_eq!(omitted.event_id, "sms.received/01JDPROCESSOREVENT0000000A");
    assert_valid(&omitted.clone().into());
    let json: Value =
        serde_json::from_str(&DomainEvent::from(omitted).detail_json().unwrap()).unwrap();
    assert!(json.get("body").is_none() && json.get("media_urls").is_none());
    assert_eq!(json["body_included"], false);
    assert_eq!(json["occurred_at"], "2026-11-21T21:00:00.123Z");
    assert_eq!(json["version"], "1");

    for media_urls in [vec![], vec!["https://api.twilio.com/m/ME1".to_owned()]] {
        let included = Event::new(
            at(),
            received(Some(Content {
                body: "Hola".into(),
                media_urls,
            })),
        );
        assert_valid(&included.into());
    }
}

#[test]
fn sms_received_validates_in_every_channel_language_and_keyword() {
    for channel in [Channel::Sms, Channel::Whatsapp] {
        for language in [Language::En, Language::Es, Language::Pt, Language::Unknown] {
            for keyword in [
                None,
                Some(Keyword::OptOut),
                Some(Keyword::OptIn),
                Some(Keyword::Help),
            ] {
                let detail = SmsReceived {
                    channel,
                    language,
                    keyword,
                    workflow_type: Some("maintenance".into()),
                    workflow_id: Some("wf-1".into()),
                    ..received(None)
                };
                assert_valid(&Event::new(at(), detail).into());
            }
        }
    }
}

#[test]
fn sms_status_changed_validates_with_and_without_a_cause() {
    let plain = Event::new(at(), status_changed(None));
    assert_eq!(
        plain.event_id,
        "sms.status_changed/01JDOUTBOUND00000000000000/delivered"
    );
    let plain = DomainEvent::from(plain);
    assert_eq!(plain.cause(), None);
    assert_valid(&plain);
    let json: Value = serde_json::from_str(&plain.detail_json().unwrap()).unwrap();
    assert_eq!(json["cause"], Value::Null, "null, not absent");

    let caused = DomainEvent::from(Event::new(at(), status_changed(Some(cause()))));
    assert_eq!(caused.cause(), Some(&cause()));
    assert_valid(&caused);
}

#[test]
fn sms_status_changed_validates_in_every_status_and_state() {
    for status in Status::ALL {
        for state in PipelineState::ALL {
            let detail = SmsStatusChanged {
                status,
                state,
                previous_status: None,
                tenant_id: None,
                twilio_sid: None,
                reason: Some("opted_out".into()),
                error_code: Some("30003".into()),
                workflow_type: None,
                workflow_id: None,
                ..status_changed(None)
            };
            let event = Event::new(at(), detail);
            assert!(event.event_id.ends_with(&format!("/{}", status.as_str())));
            assert_valid(&event.into());
        }
        let detail = SmsStatusChanged {
            previous_status: Some(status),
            ..status_changed(None)
        };
        assert_valid(&Event::new(at(), detail).into());
    }
}

#[test]
fn published_statuses_are_twilios_names() {
    use crate::delivery::DeliveryStatus::*;
    for delivery in [
        Accepted,
        Scheduled,
        Queued,
        Sending,
        Sent,
        Delivered,
        Read,
        Failed,
        Undelivered,
        Canceled,
    ] {
        let status = Status::from_delivery(delivery).unwrap();
        assert_eq!(status.as_str(), delivery.as_str());
        assert_eq!(
            serde_json::to_value(status).unwrap(),
            serde_json::to_value(delivery).unwrap()
        );
    }
    assert_eq!(Status::from_delivery(Unknown), None);
    assert_eq!(
        Status::Expired.as_str(),
        PipelineState::Expired.as_str(),
        "expired is Parley's state"
    );
}

#[test]
fn consent_events_validate_and_name_their_message() {
    let out = Event::new(at(), SmsOptedOut(consent(Some("01JDSTOP"))));
    assert_eq!(out.event_id, "sms.opted_out/01JDSTOP");
    assert_valid(&out.into());
    let twilio = SmsOptedOut(ConsentDetail {
        keyword: "TWILIO_21610".into(),
        tenant_id: Some("t-1001".into()),
        ..consent(Some("01JDREFUSED"))
    });
    assert_valid(&Event::new(at(), twilio).into());
    // Without the message that changed it, the instant of the change names the fact.
    let back_in = Event::new(at(), SmsOptedIn(consent(None)));
    assert_eq!(back_in.event_id, "sms.opted_in/2026-11-21T21:00:00.123Z");
    assert_valid(&back_in.into());
}

/// A valid detail of each type, as JSON, to break.
fn samples() -> Vec<(&'static str, Value)> {
    let events: [DomainEvent; 4] = [
        Event::new(at(), received(None)).into(),
        Event::new(at(), status_changed(Some(cause()))).into(),
        Event::new(at(), SmsOptedOut(consent(Some("01JDSTOP")))).into(),
        Event::new(at(), SmsOptedIn(consent(Some("01JDSTART")))).into(),
    ];
    events
        .iter()
        .map(|e| {
            (
                e.detail_type(),
                serde_json::from_str(&e.detail_json().unwrap()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_detail_missing_a_required_field_is_refused() {
    for (detail_type, detail) in samples() {
        for field in detail.as_object().unwrap().keys() {
            let mut broken = detail.clone();
            broken.as_object_mut().unwrap().remove(field);
            assert!(
                !errors(detail_type, &broken).is_empty(),
                "{detail_type} without {field} was accepted"
            );
        }
    }
}

#[test]
fn a_detail_with_an_unknown_field_is_refused() {
    for (detail_type, mut detail) in samples() {
        detail["surprise"] = Value::Bool(true);
        assert!(!errors(detail_type, &detail).is_empty(), "{detail_type}");
    }
    let (_, mut status) = samples().swap_remove(1);
    status["cause"]["extra"] = Value::from(1);
    assert!(!errors("sms.status_changed", &status).is_empty());
}

#[test]
fn wrong_types_enums_and_envelopes_are_refused() {
    let samples = samples();
    let received = &samples[0].1;
    let status = &samples[1].1;
    let refused = |definition: &str, base: &Value, field: &str, value: Value| {
        let mut broken = base.clone();
        broken[field] = value.clone();
        assert!(
            !errors(definition, &broken).is_empty(),
            "{definition} accepted {field} = {value}"
        );
    };
    refused("sms.received", received, "conversation_id", Value::Null);
    refused("sms.received", received, "channel", "mms".into());
    refused("sms.received", received, "language", "fr".into());
    refused("sms.received", received, "keyword", "STOP".into());
    refused("sms.received", received, "media_count", Value::from(-1));
    refused("sms.received", received, "from", "4155550101".into());
    refused("sms.received", received, "version", "2".into());
    refused("sms.received", received, "occurred_at", "yesterday".into());
    refused(
        "sms.received",
        received,
        "event_id",
        "sms.status_changed/x/y".into(),
    );
    // Bodies ride only with body_included, and then both do.
    refused("sms.received", received, "body", "Hola".into());
    refused("sms.received", received, "body_included", true.into());
    refused("sms.status_changed", status, "status", "unknown".into());
    refused("sms.status_changed", status, "state", "delivered".into());
    refused("sms.status_changed", status, "cause", "rule".into());
    refused("sms.status_changed", status, "tenant_id", Value::from(7));
    let mut cause = status.clone();
    cause["cause"].as_object_mut().unwrap().remove("dedupe_key");
    assert!(!errors("sms.status_changed", &cause).is_empty());
}

#[test]
fn an_unknown_detail_type_or_shape_does_not_parse() {
    assert!(matches!(
        DomainEvent::parse("sms.sent", "{}"),
        Err(ParseError::DetailType(_))
    ));
    assert!(matches!(
        DomainEvent::parse("sms.received", "{\"event_id\": \"x\"}"),
        Err(ParseError::Shape(_))
    ));
}

#[test]
fn docs_events_md_names_every_field_of_the_schema() {
    let schema = schema();
    for detail_type in DETAIL_TYPES {
        assert!(DOC.contains(&format!("`{detail_type}`")), "{detail_type}");
        for field in schema["$defs"][detail_type]["properties"]
            .as_object()
            .unwrap()
            .keys()
        {
            assert!(
                DOC.contains(&format!("`{field}`")),
                "docs/events.md does not describe {detail_type}'s {field}"
            );
        }
    }
    for field in schema["$defs"]["cause"]["properties"]
        .as_object()
        .unwrap()
        .keys()
    {
        assert!(DOC.contains(&format!("`{field}`")), "cause's {field}");
    }
    assert!(
        DOC.contains("events.schema.json"),
        "the doc links the schema"
    );
}

#[test]
fn the_examples_in_docs_events_md_are_valid_events() {
    let examples: Vec<Value> = DOC
        .split("```json")
        .skip(1)
        .map(|block| serde_json::from_str(block.split("```").next().unwrap()).unwrap())
        .collect();
    assert!(examples.len() >= 2);
    for example in examples {
        let detail_type = example["detail-type"].as_str().unwrap();
        let found = errors(detail_type, &example["detail"]);
        assert!(found.is_empty(), "{detail_type}: {found:#?}");
        assert!(DomainEvent::parse(detail_type, &example["detail"].to_string()).is_ok());
    }
}
