//! `POST /sms/send`'s body, typed, and its validation into a [`NewSend`]: every field that is
//! wrong is named in one 400, and nothing past this point sees raw JSON.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::NewSend;
use crate::phone::Address;
use crate::schedule::{self, SendAt};
use crate::segments;
use crate::time::Timestamp;

/// Twilio's limit for one message body.
pub const MAX_BODY_CHARS: usize = 1600;
pub const MAX_MEDIA: usize = 10;

/// The request as sent. Unknown fields are refused: a misspelt `send_at` must not turn a
/// scheduled reminder into an immediate one.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    pub to: Option<String>,
    pub body: Option<String>,
    pub conversation_id: Option<String>,
    pub workflow_type: Option<String>,
    pub workflow_id: Option<String>,
    pub media_urls: Option<Vec<String>>,
    /// RFC 3339 with an offset (an instant), or a local date-time without one (wall-clock
    /// time in the recipient's zone).
    pub send_at: Option<String>,
    pub not_after: Option<String>,
    /// IANA name; overrides the tenant's and the number's zones.
    pub time_zone: Option<String>,
    pub urgent: Option<bool>,
}

/// Field name → what is wrong with it.
pub type FieldErrors = BTreeMap<&'static str, String>;

/// Why a body is not a send request.
#[derive(Debug, PartialEq, Eq)]
pub enum RequestError {
    /// Not JSON, or JSON but not an object.
    InvalidJson,
    Fields(FieldErrors),
}

const FIELDS: [&str; 10] = [
    "to",
    "body",
    "conversation_id",
    "workflow_type",
    "workflow_id",
    "media_urls",
    "send_at",
    "not_after",
    "time_zone",
    "urgent",
];

impl SendRequest {
    /// Reads the JSON body; every field of the wrong type, and every unknown field, is named.
    pub fn from_json(raw: &[u8]) -> Result<Self, RequestError> {
        let value: serde_json::Value =
            serde_json::from_slice(raw).map_err(|_| RequestError::InvalidJson)?;
        let serde_json::Value::Object(mut object) = value else {
            return Err(RequestError::InvalidJson);
        };
        let mut fields = FieldErrors::new();
        if let Some(unknown) = object.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            fields.insert("request", format!("unknown field `{unknown}`"));
        }
        let mut take = |name: &'static str, what: &str| -> Option<serde_json::Value> {
            match object.remove(name) {
                None | Some(serde_json::Value::Null) => None,
                Some(v) if matches!(what, "string") && v.is_string() => Some(v),
                Some(v) if matches!(what, "bool") && v.is_boolean() => Some(v),
                Some(v)
                    if matches!(what, "list")
                        && v.as_array()
                            .is_some_and(|a| a.iter().all(|i| i.is_string())) =>
                {
                    Some(v)
                }
                Some(_) => {
                    let message = match what {
                        "string" => "must be a string",
                        "bool" => "must be true or false",
                        _ => "must be a list of https:// URLs",
                    };
                    fields.insert(name, message.into());
                    None
                }
            }
        };
        let text = |v: Option<serde_json::Value>| v.and_then(|v| v.as_str().map(str::to_owned));
        let request = SendRequest {
            to: text(take("to", "string")),
            body: text(take("body", "string")),
            conversation_id: text(take("conversation_id", "string")),
            workflow_type: text(take("workflow_type", "string")),
            workflow_id: text(take("workflow_id", "string")),
            media_urls: take("media_urls", "list").and_then(|v| serde_json::from_value(v).ok()),
            send_at: text(take("send_at", "string")),
            not_after: text(take("not_after", "string")),
            time_zone: text(take("time_zone", "string")),
            urgent: take("urgent", "bool").and_then(|v| v.as_bool()),
        };
        if fields.is_empty() {
            Ok(request)
        } else {
            Err(RequestError::Fields(fields))
        }
    }

    /// Validates every field at once; `now` bounds `send_at` and `not_after`.
    pub fn validate(self, now: Timestamp) -> Result<NewSend, FieldErrors> {
        let mut fields = FieldErrors::new();
        let to = match self.to.as_deref() {
            Some(t) => Address::parse(t)
                .map_err(|e| fields.insert("to", e.to_string()))
                .ok(),
            None => {
                fields.insert("to", "required".into());
                None
            }
        };
        match self.body.as_deref() {
            Some(b) if b.trim().is_empty() => {
                fields.insert("body", "must not be empty".into());
            }
            Some(b) if b.chars().count() > MAX_BODY_CHARS => {
                fields.insert(
                    "body",
                    format!("must be at most {MAX_BODY_CHARS} characters"),
                );
            }
            None => {
                fields.insert("body", "required".into());
            }
            _ => {}
        }
        let short =
            |name: &'static str, value: &Option<String>, max: usize, fields: &mut FieldErrors| {
                if value
                    .as_ref()
                    .is_some_and(|v| v.is_empty() || v.len() > max)
                {
                    fields.insert(name, format!("must be 1 to {max} characters"));
                }
            };
        short("conversation_id", &self.conversation_id, 64, &mut fields);
        short("workflow_type", &self.workflow_type, 64, &mut fields);
        short("workflow_id", &self.workflow_id, 128, &mut fields);
        let media_urls = self.media_urls.unwrap_or_default();
        if media_urls.iter().any(|u| !u.starts_with("https://")) {
            fields.insert("media_urls", "must be a list of https:// URLs".into());
        } else if media_urls.len() > MAX_MEDIA {
            fields.insert("media_urls", format!("at most {MAX_MEDIA} items"));
        }
        let send_at = self.send_at.as_deref().and_then(|raw| {
            SendAt::parse(raw)
                .map_err(|e| fields.insert("send_at", e.to_string()))
                .ok()
        });
        // Bounds are checked in UTC here; a zone moves a local time by hours, not years.
        if let Some(at) = &send_at {
            if let Err(e) = schedule::resolve(at, &jiff::tz::TimeZone::UTC, now.jiff()) {
                fields.insert("send_at", e.to_string());
            }
        }
        let not_after = self
            .not_after
            .as_deref()
            .and_then(|raw| match SendAt::parse(raw) {
                Ok(SendAt::Instant(at)) => match schedule::resolve(
                    &SendAt::Instant(at),
                    &jiff::tz::TimeZone::UTC,
                    now.jiff(),
                ) {
                    Ok(_) if at <= now.jiff() => {
                        fields.insert("not_after", "must be in the future".into());
                        None
                    }
                    Ok(_) => Some(Timestamp::from_jiff(at)),
                    Err(e) => {
                        fields.insert("not_after", e.to_string());
                        None
                    }
                },
                Ok(SendAt::Local(_)) | Err(_) => {
                    fields.insert(
                        "not_after",
                        "must be an RFC 3339 instant with an offset (e.g. 2026-12-01T21:00:00Z)"
                            .into(),
                    );
                    None
                }
            });
        let time_zone = self.time_zone.as_deref().and_then(|name| {
            schedule::parse_zone(name)
                .map_err(|e| fields.insert("time_zone", e.to_string()))
                .ok()
        });
        match (to, self.body) {
            (Some(to), Some(body)) if fields.is_empty() => Ok(NewSend {
                segments: segments::count(&body),
                to,
                body,
                conversation_id: self.conversation_id,
                workflow_type: self.workflow_type,
                workflow_id: self.workflow_id,
                media_urls,
                send_at,
                not_after,
                time_zone,
                urgent: self.urgent.unwrap_or(false),
                cause: None,
                trace: None,
            }),
            _ => Err(fields),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::parse("2026-11-30T12:00:00Z").unwrap()
    }

    fn fields(json: &str) -> FieldErrors {
        match SendRequest::from_json(json.as_bytes()) {
            Err(RequestError::Fields(fields)) => fields,
            Err(RequestError::InvalidJson) => panic!("{json} is JSON"),
            Ok(request) => match request.validate(now()) {
                Err(fields) => fields,
                Ok(_) => panic!("expected field errors for {json}"),
            },
        }
    }

    #[test]
    fn each_invalid_field_is_named() {
        let f = fields(r#"{"to": "nope", "body": ""}"#);
        assert!(f.contains_key("to") && f.contains_key("body"), "{f:?}");
        let long = format!(r#"{{"body": "{}"}}"#, "x".repeat(1601));
        let f = fields(&long);
        assert_eq!(f["to"], "required");
        assert!(f["body"].contains("1600"));
        let f = fields(r#"{"to": "+14155552671", "body": "hi", "media_urls": ["http://x"]}"#);
        assert!(f.contains_key("media_urls"), "{f:?}");
        let f = fields(r#"{"to": 14155552671, "body": 7}"#);
        assert_eq!(f["to"], "must be a string");
        assert_eq!(f["body"], "must be a string");
        let f = fields(r#"{"to": "+14155552671", "body": "hi", "sendAt": "2026-12-01T09:00"}"#);
        assert!(f["request"].contains("sendAt"), "{f:?}");
        for not_an_object in ["[1]", "not json", "", "\"text\""] {
            assert_eq!(
                SendRequest::from_json(not_an_object.as_bytes()).unwrap_err(),
                RequestError::InvalidJson
            );
        }
        let f = fields(r#"{"to": "+14155552671", "body": "hi", "urgent": "yes"}"#);
        assert!(f.contains_key("urgent"), "{f:?}");
    }

    #[test]
    fn scheduling_fields_are_checked() {
        let f = fields(
            r#"{"to": "+14155552671", "body": "hi", "send_at": "tomorrow", "time_zone": "Mars/Olympus", "not_after": "2026-11-30T11:00:00Z"}"#,
        );
        assert!(f.contains_key("send_at"), "{f:?}");
        assert!(f["time_zone"].contains("Mars/Olympus"), "{f:?}");
        assert_eq!(f["not_after"], "must be in the future");
        let f =
            fields(r#"{"to": "+14155552671", "body": "hi", "send_at": "2099-01-01T00:00:00Z"}"#);
        assert!(f["send_at"].contains("10 years"), "{f:?}");
        let f = fields(r#"{"to": "+14155552671", "body": "hi", "not_after": "2026-12-01T09:00"}"#);
        assert!(f["not_after"].contains("offset"), "{f:?}");
    }

    #[test]
    fn a_valid_request_is_normalized_and_counted() {
        let json = format!(
            r#"{{"to": "whatsapp:(415) 555-2671", "body": "{}", "send_at": "2026-12-01T09:00", "time_zone": "Europe/Lisbon", "urgent": true}}"#,
            "x".repeat(1600)
        );
        let v = SendRequest::from_json(json.as_bytes())
            .unwrap()
            .validate(now())
            .unwrap();
        assert_eq!(v.to.e164.as_str(), "+14155552671");
        assert_eq!(v.to.channel, crate::phone::Channel::Whatsapp);
        assert_eq!(v.segments.count, 11);
        assert!(matches!(v.send_at, Some(SendAt::Local(_))));
        assert!(v.urgent && v.time_zone.is_some());
    }
}
