//! X-Ray trace headers: the one value that ties the log lines of one text together, from the
//! request that made it through the queue, the worker and Twilio back to its status callbacks.
//!
//! Lambda (with `Tracing: Active`) gives every invocation a header in its context
//! (`Context::xray_trace_id`); `lambda_runtime`'s own invocation span carries
//! it as `xrayTraceId`. Parley does not emit segments itself: it carries the header along
//! (SQS's `AWSTraceHeader`, the stored message, the `StatusCallback` URL, EventBridge's
//! `TraceHeader`), continues it in a span with the same `xrayTraceId` field where the work of
//! one message happens, and [`crate::telemetry`] writes the header's `Root` as `trace_id` on
//! every log line inside. See docs/architecture.md, "Tracing".

use std::fmt;

use serde::{Deserialize, Serialize};

/// The span field that holds a trace header: `lambda_runtime`'s name for it, used by Parley's
/// own spans too, so one rule finds the trace of any log line.
pub const SPAN_FIELD: &str = "xrayTraceId";
/// The HTTP header X-Ray, API Gateway and load balancers use.
pub const HTTP_HEADER: &str = "x-amzn-trace-id";
/// SQS's message system attribute for the header.
pub const SQS_ATTRIBUTE: &str = "AWSTraceHeader";
/// Far longer than any header AWS writes (Root, Parent, Sampled, Lineage); a longer value is
/// not one, and is not worth carrying.
const MAX_LEN: usize = 256;

/// A trace's id, the header's `Root`: `1-` + 8 hex digits of epoch seconds + `-` + 24 hex
/// digits of randomness. Nothing else is ever held, so it can be logged and put in URLs as is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceId(String);

impl TraceId {
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let ok = b.len() == 35
            && b.starts_with(b"1-")
            && b[10] == b'-'
            && b[2..10].iter().chain(&b[11..]).all(|&c| is_lower_hex(c));
        ok.then(|| Self(s.to_owned()))
    }

    /// A new trace started now, as X-Ray makes them.
    pub fn new() -> Self {
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        Self(format!("1-{:08x}-{}", seconds as u32, random_hex::<12>()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TraceId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// An X-Ray trace header, `Root=1-…;Parent=…;Sampled=1`, as AWS passes it between services.
/// Parsed at the boundary (an HTTP header, an SQS attribute, a stored message): it has a valid
/// `Root`, and only fields of plain `Key=value` characters are kept, so it is safe in logs,
/// attributes and URLs. Stored on messages as the header string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TraceHeader {
    root: TraceId,
    /// The fields after `Root` (`Parent`, `Sampled`, `Lineage`, …) in their order.
    rest: Vec<(String, String)>,
}

impl TraceHeader {
    /// `None` when `s` is not a header with a valid `Root` (field names are case-insensitive,
    /// as X-Ray reads them).
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() > MAX_LEN {
            return None;
        }
        let mut root = None;
        let mut rest = Vec::new();
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=')?;
            if key.eq_ignore_ascii_case("root") {
                root = Some(TraceId::parse(value)?);
            } else if !key.is_empty()
                && key.bytes().all(|b| b.is_ascii_alphanumeric())
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b":._-?".contains(&b))
            {
                rest.push((canonical_key(key), value.to_owned()));
            }
        }
        Some(Self { root: root?, rest })
    }

    /// A new sampled trace, as Lambda or API Gateway start one for a request that has none.
    pub fn start() -> Self {
        Self {
            root: TraceId::new(),
            rest: vec![
                ("Parent".into(), segment_id()),
                ("Sampled".into(), "1".into()),
            ],
        }
    }

    /// The same trace seen from a new segment (a new `Parent`, the sampling decision kept, or
    /// made: sampled): what a service that continues a trace hands on.
    pub fn child(&self) -> Self {
        let mut rest: Vec<(String, String)> = vec![("Parent".into(), segment_id())];
        let sampled = self.field("Sampled").filter(|s| *s != "?").unwrap_or("1");
        rest.push(("Sampled".into(), sampled.to_owned()));
        rest.extend(
            self.rest
                .iter()
                .filter(|(k, _)| k != "Parent" && k != "Sampled")
                .cloned(),
        );
        Self {
            root: self.root.clone(),
            rest,
        }
    }

    pub fn root(&self) -> &TraceId {
        &self.root
    }

    fn field(&self, key: &str) -> Option<&str> {
        self.rest
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The header of a Lambda invocation: its context's (`Lambda-Runtime-Trace-Id`). Read from
    /// the context, never from `_X_AMZN_TRACE_ID`: `lambda_runtime` sets that variable only
    /// when it handles one invocation at a time, and several handlers share one process in the
    /// local stack.
    pub fn of_context(context: &lambda_http::Context) -> Option<Self> {
        context.xray_trace_id.as_deref().and_then(Self::parse)
    }

    /// The trace an HTTP request belongs to: its `X-Amzn-Trace-Id` (a traced caller's, or the
    /// one API Gateway adds to every request), else the invocation's own. An HTTP API does not
    /// hand its trace to Lambda (only REST APIs are traced), so the header is what joins Parley's
    /// work to the request that asked for it.
    pub fn of_request(req: &lambda_http::Request) -> Option<Self> {
        use lambda_http::RequestExt;
        req.headers()
            .get(HTTP_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(Self::parse)
            .or_else(|| req.lambda_context_ref().and_then(Self::of_context))
    }

    /// The header of an SQS record (`AWSTraceHeader`), when its sender gave one.
    pub fn of_sqs(record: &aws_lambda_events::event::sqs::SqsMessage) -> Option<Self> {
        record
            .attributes
            .get(SQS_ATTRIBUTE)
            .and_then(|h| Self::parse(h))
    }
}

fn canonical_key(key: &str) -> String {
    match key.to_ascii_lowercase().as_str() {
        "parent" => "Parent".into(),
        "sampled" => "Sampled".into(),
        "lineage" => "Lineage".into(),
        _ => key.to_owned(),
    }
}

/// A segment id: 16 hex digits.
fn segment_id() -> String {
    random_hex::<8>()
}

/// `N` random bytes in lowercase hex.
fn random_hex<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl fmt::Display for TraceHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Root={}", self.root)?;
        for (k, v) in &self.rest {
            write!(f, ";{k}={v}")?;
        }
        Ok(())
    }
}

/// A stored message's header, read leniently: one unreadable header costs its trace, never the
/// message (`#[serde(deserialize_with)]`).
pub fn lenient<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<TraceHeader>, D::Error> {
    let raw = Option::<String>::deserialize(d)?;
    Ok(raw.as_deref().and_then(TraceHeader::parse))
}

/// A header naming only its trace (`Root=…`): a trace known by its id alone, as the
/// `StatusCallback` URL carries it.
impl From<TraceId> for TraceHeader {
    fn from(root: TraceId) -> Self {
        Self {
            root,
            rest: Vec::new(),
        }
    }
}

impl TryFrom<String> for TraceHeader {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s).ok_or_else(|| "not an X-Ray trace header".to_owned())
    }
}

impl From<TraceHeader> for String {
    fn from(h: TraceHeader) -> Self {
        h.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";

    #[test]
    fn headers_parse_with_any_field_order_and_case_and_keep_their_fields() {
        let h = TraceHeader::parse(&format!(
            "Sampled=1; root={ROOT};Parent=53995c3f42cd8ad8;Lineage=a87bd80c:0"
        ))
        .unwrap();
        assert_eq!(h.root().as_str(), ROOT);
        assert_eq!(
            h.to_string(),
            format!("Root={ROOT};Sampled=1;Parent=53995c3f42cd8ad8;Lineage=a87bd80c:0")
        );
        assert_eq!(
            TraceHeader::parse(&format!("Root={ROOT}"))
                .unwrap()
                .to_string(),
            format!("Root={ROOT}")
        );
    }

    #[test]
    fn anything_without_a_valid_root_or_with_unsafe_characters_is_refused_or_dropped() {
        for bad in [
            "",
            "Parent=53995c3f42cd8ad8;Sampled=1",
            "Root=1-5759e988-bd862e3fe1be46a99427279",
            "Root=1-5759E988-bd862e3fe1be46a994272793",
            "Root=2-5759e988-bd862e3fe1be46a994272793",
            "Root=1-5759e988-bd862e3fe1be46a994272793x",
            "garbage",
        ] {
            assert_eq!(TraceHeader::parse(bad), None, "{bad:?}");
        }
        let h = TraceHeader::parse(&format!("Root={ROOT};Evil=\"a b\";Parent=1")).unwrap();
        assert_eq!(h.to_string(), format!("Root={ROOT};Parent=1"));
        assert_eq!(
            TraceHeader::parse(&format!("Root={ROOT};{}", "x".repeat(300))),
            None
        );
    }

    #[test]
    fn a_child_keeps_the_root_and_the_sampling_with_a_new_parent() {
        let h =
            TraceHeader::parse(&format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=0")).unwrap();
        let child = h.child();
        assert_eq!(child.root(), h.root());
        assert_eq!(child.field("Sampled"), Some("0"));
        let parent = child.field("Parent").unwrap();
        assert_ne!(parent, "53995c3f42cd8ad8");
        assert_eq!(parent.len(), 16);
        let undecided = TraceHeader::parse(&format!("Root={ROOT}")).unwrap().child();
        assert_eq!(undecided.field("Sampled"), Some("1"));
    }

    #[test]
    fn new_traces_are_well_formed_and_distinct() {
        let (a, b) = (TraceHeader::start(), TraceHeader::start());
        assert_ne!(a.root(), b.root());
        assert_eq!(TraceHeader::parse(&a.to_string()), Some(a.clone()));
        assert!(TraceId::parse(a.root().as_str()).is_some());
    }

    #[test]
    fn a_root_with_multibyte_characters_is_refused_not_a_panic() {
        assert_eq!(TraceId::parse("1-5759e988-bd862e3fe1be46a99427279é"), None);
        assert_eq!(TraceId::parse("1-5759e9é-bd862e3fe1be46a9942727931"), None);
    }

    #[test]
    fn a_header_is_stored_as_its_string() {
        let h = TraceHeader::parse(&format!("Root={ROOT};Sampled=1")).unwrap();
        let json = serde_json::to_value(&h).unwrap();
        assert_eq!(json, serde_json::json!(format!("Root={ROOT};Sampled=1")));
        assert_eq!(serde_json::from_value::<TraceHeader>(json).unwrap(), h);
        assert!(serde_json::from_value::<TraceHeader>(serde_json::json!("Root=x")).is_err());
    }
}
