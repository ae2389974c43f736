//! An event as rules see it: EventBridge's envelope (`id`, `source`, `detail-type`, `time`,
//! `detail`), as the bus delivers it to the router's queue, kept whole for matching and
//! templates.

use serde_json::Value;

use super::render::Context;
use super::Cause;
use crate::time::Timestamp;

#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub source: String,
    pub detail_type: String,
    /// When it happened (EventBridge's `time`).
    pub time: Timestamp,
    /// The whole event, as patterns and templates read it.
    pub raw: Value,
    /// `raw` converted for templates, once, on first use.
    template: std::sync::OnceLock<Context>,
    /// The trace it was delivered in (its SQS record's `AWSTraceHeader`): a message a rule
    /// makes for it continues it.
    pub trace: Option<crate::xray::TraceHeader>,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the event is not a JSON object")]
    NotAnObject,
    #[error("the event has no `{0}` string")]
    Missing(&'static str),
    #[error("the event's `detail` must be a JSON object")]
    Detail,
    #[error("the event's `time` is not an RFC 3339 instant")]
    Time,
}

impl Event {
    /// Reads an EventBridge event (the body of a message its SQS target receives).
    pub fn from_json(raw: Value) -> Result<Self, EventError> {
        let object = raw.as_object().ok_or(EventError::NotAnObject)?;
        let string = |name: &'static str| {
            object
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or(EventError::Missing(name))
        };
        let id = string("id")?;
        let source = string("source")?;
        let detail_type = string("detail-type")?;
        let time = Timestamp::parse(&string("time")?).ok_or(EventError::Time)?;
        if !object.get("detail").is_some_and(Value::is_object) {
            return Err(EventError::Detail);
        }
        Ok(Self {
            id,
            source,
            detail_type,
            time,
            raw,
            template: std::sync::OnceLock::new(),
            trace: None,
        })
    }

    /// What templates see (as [`Event::context`]), converted once per event: every rule the
    /// event fires renders from the same conversion.
    pub fn template_context(&self, tenant_id: Option<&str>) -> Context {
        self.template
            .get_or_init(|| Context::of_event(&self.raw))
            .with_tenant(tenant_id)
    }

    pub fn detail(&self) -> &Value {
        &self.raw["detail"]
    }

    /// The loop guard: an event about a message a rule made carries that message's cause.
    pub fn caused_by_rule(&self) -> Option<Cause> {
        self.detail()
            .get("cause")
            .filter(|c| !c.is_null())
            .and_then(|c| serde_json::from_value(c.clone()).ok())
    }

    /// True when the event is about a rule's message, whatever the shape of its cause.
    pub fn has_cause(&self) -> bool {
        self.detail().get("cause").is_some_and(|c| !c.is_null())
    }

    /// What templates see: `event` (all of it), `detail`, and `tenant` (`{"id": …}` when
    /// the recipient is a known tenant, else null).
    pub fn context(&self, tenant_id: Option<&str>) -> Value {
        serde_json::json!({
            "event": self.raw,
            "detail": self.detail(),
            "tenant": tenant_id.map(|id| serde_json::json!({ "id": id })),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "version": "0", "id": "e-1", "source": "billing", "detail-type": "invoice.overdue",
            "time": "2026-12-01T15:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {"invoice_id": "INV-7", "tenant_id": "t-1"}
        })
    }

    #[test]
    fn reads_the_envelope_and_refuses_what_is_not_an_event() {
        let e = Event::from_json(sample()).unwrap();
        assert_eq!(
            (e.id.as_str(), e.source.as_str(), e.detail_type.as_str()),
            ("e-1", "billing", "invoice.overdue")
        );
        assert_eq!(e.time.to_string(), "2026-12-01T15:00:00.000Z");
        assert_eq!(e.detail()["invoice_id"], "INV-7");
        let mut no_id = sample();
        no_id.as_object_mut().unwrap().remove("id");
        assert_eq!(Event::from_json(no_id), Err(EventError::Missing("id")));
        let mut bad_detail = sample();
        bad_detail["detail"] = json!("text");
        assert_eq!(Event::from_json(bad_detail), Err(EventError::Detail));
        assert_eq!(Event::from_json(json!([1])), Err(EventError::NotAnObject));
        let mut bad_time = sample();
        bad_time["time"] = json!("yesterday");
        assert_eq!(Event::from_json(bad_time), Err(EventError::Time));
    }

    #[test]
    fn an_event_about_a_rules_message_carries_its_cause() {
        let mut e = sample();
        assert!(!Event::from_json(e.clone()).unwrap().has_cause());
        e["detail"]["cause"] = Value::Null;
        assert!(!Event::from_json(e.clone()).unwrap().has_cause());
        e["detail"]["cause"] = json!({"rule_id": "r", "rule_version": 2, "event_id": "x",
            "source": "s", "detail_type": "d", "dedupe_key": "k"});
        let e = Event::from_json(e).unwrap();
        assert!(e.has_cause());
        assert_eq!(e.caused_by_rule().unwrap().rule_version, 2);
    }

    #[test]
    fn templates_see_the_event_its_detail_and_the_tenant() {
        let e = Event::from_json(sample()).unwrap();
        let c = e.context(Some("t-1"));
        assert_eq!(c["detail"]["invoice_id"], "INV-7");
        assert_eq!(c["event"]["source"], "billing");
        assert_eq!(c["tenant"]["id"], "t-1");
        assert!(e.context(None)["tenant"].is_null());
    }

    #[test]
    fn the_converted_context_renders_like_the_json_one() {
        use crate::rules::render::Text;
        let e = Event::from_json(sample()).unwrap();
        let text = Text::compile(
            "{{ detail.invoice_id }}/{{ event.source }}/{% if tenant %}{{ tenant.id }}{% else %}none{% endif %}",
        )
        .unwrap();
        for tenant in [None, Some("t-9")] {
            assert_eq!(
                text.render_with(&e.template_context(tenant)).unwrap(),
                text.render(&e.context(tenant)).unwrap()
            );
        }
        assert_eq!(
            text.render_with(&e.template_context(Some("t-9"))).unwrap(),
            "INV-7/billing/t-9"
        );
        assert_eq!(
            text.render_with(&e.template_context(None)).unwrap(),
            "INV-7/billing/none"
        );
    }
}
