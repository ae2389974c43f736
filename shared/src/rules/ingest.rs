//! `POST /events`: producers that are not on AWS put events on Parley's bus through the API,
//! in PutEvents' entry shape (`{"Entries": [{"Source", "DetailType", "Detail", …}]}`), and the
//! bus's rule brings them to the router like any other event.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::events::EventError;
use crate::time::Timestamp;

pub const MAX_ENTRIES: usize = 10;
/// EventBridge's limit for a whole PutEvents request.
const MAX_DETAIL_BYTES: usize = 256 * 1024;

/// Parley's own events: nobody else may put them on the bus (its resource policy says the
/// same for AWS principals).
pub const RESERVED_SOURCE: &str = crate::events::SOURCE;

/// One entry of `POST /events`, as PutEvents takes it but without `EventBusName` (the bus is
/// always Parley's).
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct RawEntry {
    source: Option<String>,
    detail_type: Option<String>,
    /// A JSON object, or (as PutEvents takes it) a string holding one.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    detail: Option<Value>,
    #[serde(default)]
    resources: Vec<String>,
    time: Option<String>,
}

/// The body of `POST /events`: 1 to 10 entries.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct RawEntries {
    entries: Vec<RawEntry>,
}

/// One entry, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub source: String,
    pub detail_type: String,
    /// The detail as JSON text.
    pub detail: String,
    pub resources: Vec<String>,
    pub time: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entries(pub Vec<Entry>);

/// Parley's bus, for publishing.
pub struct Bus {
    pub client: aws_sdk_eventbridge::Client,
    pub name: String,
}

impl Entries {
    /// Reads the body, naming every entry that is wrong (`entries[2].Source`).
    pub fn from_json(raw: &[u8]) -> Result<Self, BTreeMap<&'static str, String>> {
        let mut fields = BTreeMap::new();
        let body: RawEntries = match serde_json::from_slice(raw) {
            Ok(b) => b,
            Err(e) => {
                fields.insert(
                    "Entries",
                    format!(
                        "the body must be {{\"Entries\": [{{\"Source\", \"DetailType\", \"Detail\"}}]}}: {}",
                        e.to_string().split(" at line ").next().unwrap_or_default()
                    ),
                );
                return Err(fields);
            }
        };
        if body.entries.is_empty() || body.entries.len() > MAX_ENTRIES {
            fields.insert("Entries", format!("1 to {MAX_ENTRIES} entries"));
            return Err(fields);
        }
        let mut entries = Vec::new();
        let mut problems = Vec::new();
        for (i, raw) in body.entries.into_iter().enumerate() {
            match entry(raw) {
                Ok(e) => entries.push(e),
                Err(problem) => problems.push(format!("[{i}] {problem}")),
            }
        }
        if !problems.is_empty() {
            fields.insert("Entries", problems.join("; "));
            return Err(fields);
        }
        let size: usize = entries.iter().map(|e| e.detail.len()).sum();
        if size > MAX_DETAIL_BYTES {
            fields.insert("Entries", "the details exceed 256 KiB in total".into());
            return Err(fields);
        }
        Ok(Self(entries))
    }

    /// Puts the entries on the bus; the ids EventBridge gave them, in order.
    pub async fn publish(&self, bus: &Bus) -> Result<Vec<String>, EventError> {
        let entries = self
            .0
            .iter()
            .map(|e| {
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .event_bus_name(&bus.name)
                    .source(&e.source)
                    .detail_type(&e.detail_type)
                    .detail(&e.detail)
                    .set_resources((!e.resources.is_empty()).then(|| e.resources.clone()))
                    .set_time(
                        e.time
                            .map(|t| aws_smithy_types::DateTime::from_secs(t.unix_seconds())),
                    )
                    .build()
            })
            .collect();
        let out = bus
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| EventError::Put(aws_sdk_eventbridge::Error::from(e).to_string()))?;
        if out.failed_entry_count > 0 {
            return Err(EventError::Refused(out.failed_entry_count));
        }
        Ok(out
            .entries
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.event_id.unwrap_or_default())
            .collect())
    }
}

fn entry(raw: RawEntry) -> Result<Entry, String> {
    let source = raw
        .source
        .filter(|s| !s.trim().is_empty() && s.len() <= 256)
        .ok_or("Source: required, at most 256 characters")?;
    if source == RESERVED_SOURCE || source.starts_with("aws.") {
        return Err(format!("Source `{source}` is reserved"));
    }
    let detail_type = raw
        .detail_type
        .filter(|s| !s.trim().is_empty() && s.len() <= 128)
        .ok_or("DetailType: required, at most 128 characters")?;
    let detail = match raw.detail {
        Some(Value::String(text)) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(_)) => text,
            _ => return Err("Detail: a JSON object (or a string holding one)".into()),
        },
        Some(v @ Value::Object(_)) => v.to_string(),
        _ => return Err("Detail: a JSON object (or a string holding one)".into()),
    };
    let time = raw
        .time
        .map(|t| Timestamp::parse(&t).ok_or_else(|| "Time: an RFC 3339 instant".to_owned()))
        .transpose()?;
    Ok(Entry {
        source,
        detail_type,
        detail,
        resources: raw.resources,
        time,
    })
}

/// A sample event for a preview, completed with what EventBridge would add: a caller may
/// give only `source`, `detail-type` and `detail`.
pub fn complete_sample(mut sample: Value, now: Timestamp) -> Value {
    if let Value::Object(object) = &mut sample {
        let defaults = [
            ("version", Value::from("0")),
            ("id", Value::from(format!("preview-{}", ulid::Ulid::new()))),
            ("time", Value::from(now.to_string())),
            ("account", Value::from("000000000000")),
            ("region", Value::from("us-east-1")),
            ("resources", Value::Array(Vec::new())),
        ];
        for (name, value) in defaults {
            object.entry(name).or_insert(value);
        }
    }
    sample
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_in_putevents_shape_are_read_and_checked() {
        let ok = br#"{"Entries": [
            {"Source": "billing", "DetailType": "invoice.overdue", "Detail": "{\"invoice_id\": \"INV-1\"}"},
            {"Source": "billing", "DetailType": "payment.received", "Detail": {"invoice_id": "INV-1"}, "Time": "2026-12-01T10:00:00Z"}
        ]}"#;
        let entries = Entries::from_json(ok).unwrap();
        assert_eq!(entries.0.len(), 2);
        assert_eq!(entries.0[0].detail, r#"{"invoice_id": "INV-1"}"#);
        assert_eq!(entries.0[1].detail, r#"{"invoice_id":"INV-1"}"#);
        assert!(entries.0[1].time.is_some());

        let refused =
            |body: &str| Entries::from_json(body.as_bytes()).unwrap_err()["Entries"].clone();
        assert!(refused(r#"{"Entries": []}"#).contains("1 to 10"));
        assert!(refused(
            r#"{"Entries": [{"Source": "parley", "DetailType": "sms.received", "Detail": {}}]}"#
        )
        .contains("reserved"));
        assert!(
            refused(r#"{"Entries": [{"Source": "aws.s3", "DetailType": "x", "Detail": {}}]}"#)
                .contains("reserved")
        );
        assert!(
            refused(r#"{"Entries": [{"Source": "b", "DetailType": "x", "Detail": "[1]"}]}"#)
                .contains("[0] Detail")
        );
        assert!(refused(r#"{"Entries": [{"Source": "b", "Detail": {}}]}"#).contains("DetailType"));
        assert!(refused(r#"{"Entries": [{"Source": "b", "DetailType": "x", "Detail": {}, "EventBusName": "other"}]}"#)
            .contains("unknown field"));
        let eleven = format!(
            r#"{{"Entries": [{}]}}"#,
            [r#"{"Source": "b", "DetailType": "x", "Detail": {}}"#; 11].join(",")
        );
        assert!(refused(&eleven).contains("1 to 10"));
    }

    #[test]
    fn a_sample_event_is_completed_like_eventbridge_would() {
        let now = Timestamp::parse("2026-12-01T10:00:00Z").unwrap();
        let sample = serde_json::json!({"source": "billing", "detail-type": "x", "detail": {}, "id": "mine"});
        let full = complete_sample(sample, now);
        assert_eq!(full["id"], "mine");
        assert_eq!(full["time"], "2026-12-01T10:00:00.000Z");
        assert_eq!(full["version"], "0");
    }
}
