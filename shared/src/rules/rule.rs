//! A rule as operators write it (`POST /rules`, `PUT /rules/{id}`), validated field by field
//! into a [`RuleSpec`] whose parts are compiled (pattern, paths, templates), and the stored
//! [`Rule`]: the spec plus its id, version and whether it is enabled.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::path::JsonPath;
use super::pattern::Pattern;
use super::render::{Templates, Text};
use super::timing::{Timing, Window};
use crate::time::Timestamp;

pub const MAX_CANCEL_ON: usize = 10;
pub const MAX_CAP: u32 = 1000;
const MAX_NAME_CHARS: usize = 200;

/// Where a rule's message goes: a number in the event, or a tenant whose number Parley (or
/// the Collections Monitor) knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Recipient {
    /// A JSON path to a phone number in any written form (`(415) 555-2671`, `+1…`,
    /// `whatsapp:+1…`).
    Phone(JsonPath),
    /// A JSON path to a `tenant_id`: the tenant's most recently used number.
    TenantId(JsonPath),
}

impl Recipient {
    pub fn path(&self) -> &JsonPath {
        match self {
            Self::Phone(p) | Self::TenantId(p) => p,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum QuietHours {
    /// Never at night in the recipient's zone (deferred to the morning).
    #[default]
    Respect,
    /// Urgent notices: sent at the resolved time whatever the hour.
    Bypass,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Live,
    /// Records what it would send (activity `shadow`), sends nothing.
    Shadow,
}

/// At most `max` messages from this rule to one recipient in any rolling `per`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Cap {
    pub max: u32,
    pub per: Window,
}

/// A validated rule: every part compiled, so evaluating it never fails on its own syntax.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(rename = "match")]
    pub pattern: Pattern,
    pub recipient: Recipient,
    pub template: Templates,
    pub timing: Timing,
    pub quiet_hours: QuietHours,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Window>,
    /// The business key's template; `None` is the event's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe: Option<Text>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cancel_on: Vec<Pattern>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<Cap>,
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_type: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<Text>,
    pub enabled: bool,
}

/// A stored rule at one version. Every change is a new version; messages record the one
/// that made them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rule {
    pub rule_id: String,
    pub version: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[serde(flatten)]
    pub spec: RuleSpec,
}

/// Field name → what is wrong with it (the 400's `fields`).
pub type FieldErrors = BTreeMap<&'static str, String>;

/// The fields a rule may have; anything else is refused (a misspelt `cancel_on` must not
/// silently leave a reminder uncancelable).
const FIELDS: [&str; 15] = [
    "name",
    "description",
    "match",
    "recipient",
    "template",
    "timing",
    "quiet_hours",
    "not_after",
    "dedupe",
    "cancel_on",
    "cap",
    "mode",
    "workflow_type",
    "workflow_id",
    "enabled",
];

/// Reads a request body into a spec, naming every field that is wrong.
pub fn validate(raw: &[u8]) -> Result<RuleSpec, FieldErrors> {
    let mut fields = FieldErrors::new();
    let object = match serde_json::from_slice::<Value>(raw) {
        Ok(Value::Object(o)) => o,
        _ => {
            fields.insert("request", "the body must be a JSON object (a rule)".into());
            return Err(fields);
        }
    };
    if let Some(unknown) = object.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        fields.insert("request", format!("unknown field `{unknown}`"));
    }
    let field = |name: &'static str| object.get(name).filter(|v| !v.is_null()).cloned();
    let name = field("name");
    let description = field("description");
    let pattern = field("match");
    let recipient = field("recipient");
    let template = field("template");
    let timing = field("timing");
    let quiet_hours = field("quiet_hours");
    let not_after = field("not_after");
    let dedupe = field("dedupe");
    let cancel_on = field("cancel_on");
    let cap = field("cap");
    let mode = field("mode");
    let workflow_type = field("workflow_type");
    let workflow_id = field("workflow_id");
    let enabled = field("enabled");

    let name = match name {
        Some(Value::String(n)) if !n.trim().is_empty() && n.chars().count() <= MAX_NAME_CHARS => {
            Some(n)
        }
        Some(_) => bad(
            &mut fields,
            "name",
            "a non-empty string of at most 200 characters",
        ),
        None => bad(&mut fields, "name", "required"),
    };
    let description = match description {
        None => None,
        Some(Value::String(d)) if d.chars().count() <= 2000 => Some(d),
        Some(_) => bad(
            &mut fields,
            "description",
            "a string of at most 2000 characters",
        ),
    };
    let pattern = match pattern {
        Some(p) => Pattern::parse(&p)
            .map_err(|e| fields.insert("match", e.to_string()))
            .ok(),
        None => bad(
            &mut fields,
            "match",
            "required: an EventBridge event pattern",
        ),
    };
    let recipient = match recipient {
        Some(r) => serde_json::from_value::<Recipient>(r)
            .map_err(|e| {
                fields.insert(
                    "recipient",
                    format!(
                        "{{\"phone\": \"$.detail.…\"}} or {{\"tenant_id\": \"$.detail.…\"}}: {}",
                        first_line(&e)
                    ),
                )
            })
            .ok(),
        None => bad(&mut fields, "recipient", "required"),
    };
    let template = match template {
        Some(Value::Object(texts)) => {
            let mut map = BTreeMap::new();
            let mut ok = true;
            for (language, text) in texts {
                match text {
                    Value::String(t) => {
                        map.insert(language, t);
                    }
                    _ => ok = false,
                }
            }
            if !ok {
                bad::<()>(&mut fields, "template", "every text must be a string");
                None
            } else {
                Templates::compile(&map)
                    .map_err(|e| fields.insert("template", e.to_string()))
                    .ok()
            }
        }
        Some(_) => bad(
            &mut fields,
            "template",
            "an object of texts by language: {\"en\": …, \"es\": …, \"pt\": …, \"default\": …}",
        ),
        None => bad(&mut fields, "template", "required"),
    };
    let timing = match timing {
        None => Some(Timing::Now),
        Some(t) => serde_json::from_value::<Timing>(t)
            .map_err(|e| fields.insert("timing", first_line(&e)))
            .ok(),
    };
    let quiet_hours = typed(&mut fields, "quiet_hours", quiet_hours, "respect or bypass");
    let mode = typed(&mut fields, "mode", mode, "live or shadow");
    let not_after = match not_after {
        None => None,
        Some(Value::String(w)) => Window::parse(&w)
            .map_err(|e| fields.insert("not_after", e.to_string()))
            .ok(),
        Some(_) => bad(&mut fields, "not_after", "an ISO 8601 duration such as P1D"),
    };
    let dedupe = text(&mut fields, "dedupe", dedupe);
    let workflow_type = text(&mut fields, "workflow_type", workflow_type);
    let workflow_id = text(&mut fields, "workflow_id", workflow_id);
    let cancel_on = match cancel_on {
        None => Some(Vec::new()),
        Some(Value::Array(patterns)) if patterns.len() <= MAX_CANCEL_ON => patterns
            .iter()
            .enumerate()
            .map(|(i, p)| Pattern::parse(p).map_err(|e| format!("[{i}] {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fields.insert("cancel_on", e))
            .ok(),
        Some(_) => bad(
            &mut fields,
            "cancel_on",
            "an array of at most 10 event patterns",
        ),
    };
    if cancel_on.as_ref().is_some_and(|c| !c.is_empty()) && dedupe.is_none() {
        fields.insert(
            "cancel_on",
            "needs `dedupe`: a canceling event finds the message by the business key \
             (e.g. \"invoice-{{ detail.invoice_id }}\"), which both events must render"
                .into(),
        );
    }
    let cap = match cap {
        None => None,
        Some(c) => match serde_json::from_value::<Cap>(c) {
            Ok(cap) if (1..=MAX_CAP).contains(&cap.max) => Some(cap),
            Ok(_) => bad(&mut fields, "cap", "max must be 1 to 1000"),
            Err(e) => bad(
                &mut fields,
                "cap",
                &format!("{{\"max\": N, \"per\": \"P1D\"}}: {}", first_line(&e)),
            ),
        },
    };
    let enabled = match enabled {
        None => Some(true),
        Some(Value::Bool(b)) => Some(b),
        Some(_) => bad(&mut fields, "enabled", "true or false"),
    };
    match (
        name,
        pattern,
        recipient,
        template,
        timing,
        quiet_hours,
        mode,
        cancel_on,
        enabled,
    ) {
        (
            Some(name),
            Some(pattern),
            Some(recipient),
            Some(template),
            Some(timing),
            Some(quiet_hours),
            Some(mode),
            Some(cancel_on),
            Some(enabled),
        ) if fields.is_empty() => Ok(RuleSpec {
            name,
            description,
            pattern,
            recipient,
            template,
            timing,
            quiet_hours: quiet_hours.unwrap_or_default(),
            not_after,
            dedupe,
            cancel_on,
            cap,
            mode: mode.unwrap_or_default(),
            workflow_type,
            workflow_id,
            enabled,
        }),
        _ => Err(fields),
    }
}

fn bad<T>(fields: &mut FieldErrors, name: &'static str, message: &str) -> Option<T> {
    fields.insert(name, message.to_owned());
    None
}

/// `Some(None)` when absent, `Some(Some(v))` when valid, `None` (and the error) otherwise.
fn typed<T: serde::de::DeserializeOwned>(
    fields: &mut FieldErrors,
    name: &'static str,
    value: Option<Value>,
    expected: &str,
) -> Option<Option<T>> {
    match value {
        None => Some(None),
        Some(v) => match serde_json::from_value(v) {
            Ok(t) => Some(Some(t)),
            Err(_) => bad(fields, name, expected),
        },
    }
}

fn text(fields: &mut FieldErrors, name: &'static str, value: Option<Value>) -> Option<Text> {
    match value {
        None => None,
        Some(Value::String(source)) => Text::compile(&source)
            .map_err(|e| fields.insert(name, e.to_string()))
            .ok(),
        Some(_) => bad(fields, name, "a template string"),
    }
}

/// serde's message without its " at line 1 column 40" tail, which means nothing to a caller
/// who sent a field, not a document.
fn first_line(e: &serde_json::Error) -> String {
    let message = e.to_string();
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message,
    }
}
