//! Logging set-up and the keyed pseudonyms that stand for phone numbers in logs.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::phone::E164;
use crate::xray::{TraceHeader, TraceId, SPAN_FIELD};

/// JSON logs on stdout (what CloudWatch and `AWS_LAMBDA_LOG_FORMAT=JSON` expect), filtered by
/// `RUST_LOG` (default `info`), each line with the `trace_id` of the span it was written in.
/// Safe to call more than once.
pub fn init() {
    init_with(std::io::stdout);
}

/// [`init`] writing to `writer` (the test suite's log files).
pub fn init_with<W>(writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let _ = tracing_subscriber::registry()
        .with(filter(std::env::var("RUST_LOG").ok().as_deref()))
        .with(json_layer(writer))
        .try_init();
}

/// `RUST_LOG` as levels per target (`info`, `warn,parley=debug`; unset, empty or unreadable:
/// `info`). `Targets`' syntax is env-filter's without span and field directives, which no
/// function uses; env-filter would bring a regular-expression engine (regex-automata's DFAs,
/// through `matchers`) into every binary (docs/benchmarks.md, "binary size").
fn filter(rust_log: Option<&str>) -> Targets {
    rust_log
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

/// The log format: one JSON object per event with its fields, the current span's fields, and
/// `trace_id`, the `Root` of the innermost span's X-Ray header ([`SPAN_FIELD`]): the Lambda
/// invocation's (`lambda_runtime`'s span), or the message's that Parley continues inside it.
pub fn json_layer<S, W>(writer: W) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let format = tracing_subscriber::fmt::format()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time();
    TraceIds.and_then(
        tracing_subscriber::fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(WithTraceId(format))
            .with_writer(writer),
    )
}

/// The `trace_id` a log line written here would carry, for lines written outside `tracing`
/// (the EMF metric lines). `None` outside traced spans or under another subscriber.
pub fn current_trace_id() -> Option<TraceId> {
    tracing::dispatcher::get_default(|dispatch| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let current = dispatch.current_span();
        let span = registry.span(current.id()?)?;
        span.scope()
            .find_map(|s| s.extensions().get::<TraceId>().cloned())
    })
}

/// Keeps, in each span that has an X-Ray header field, the header's `Root`, so formatting a
/// line is a lookup, not a parse.
struct TraceIds;

impl<S> Layer<S> for TraceIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut header = HeaderField(None);
        attrs.record(&mut header);
        if let (Some(root), Some(span)) = (header.0, ctx.span(id)) {
            span.extensions_mut().insert(root);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let mut header = HeaderField(None);
        values.record(&mut header);
        if let (Some(root), Some(span)) = (header.0, ctx.span(id)) {
            span.extensions_mut().replace(root);
        }
    }
}

struct HeaderField(Option<TraceId>);

impl Visit for HeaderField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == SPAN_FIELD {
            self.0 = TraceHeader::parse(value).map(|h| h.root().clone());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == SPAN_FIELD {
            let text = format!("{value:?}");
            self.0 = TraceHeader::parse(text.trim_matches('"')).map(|h| h.root().clone());
        }
    }
}

/// The JSON format with `"trace_id"` first in the object when the event is inside a traced
/// span. A `TraceId` is `1-` and hex digits only: nothing in it needs escaping.
struct WithTraceId<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let root = ctx.event_scope().and_then(|scope| {
            scope
                .into_iter()
                .find_map(|span| span.extensions().get::<TraceId>().cloned())
        });
        let Some(root) = root else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) if rest.starts_with('}') => {
                write!(writer, "{{\"trace_id\":\"{root}\"{rest}")
            }
            Some(rest) => write!(writer, "{{\"trace_id\":\"{root}\",{rest}"),
            None => writer.write_str(&line),
        }
    }
}

/// Turns a phone number into a stable, non-reversible token for logs: the same number gives the
/// same pseudonym under the same key, so a thread can be followed without the number.
#[derive(Clone)]
pub struct Pseudonymizer {
    key: Vec<u8>,
}

impl Pseudonymizer {
    pub fn new(key: &str) -> Self {
        Self {
            key: key.as_bytes().to_vec(),
        }
    }

    /// `p_` and 16 base32 letters (80 bits). Base32 keeps long digit runs out of the logs, so a
    /// pseudonym can never be mistaken for (or audited as) a phone number.
    pub fn pseudonym(&self, number: &E164) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts keys of any length");
        mac.update(number.as_str().as_bytes());
        let digest = mac.finalize().into_bytes();
        format!("p_{}", base32(&digest[..10]))
    }
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer(<redacted>)")
    }
}

fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_sets_levels_per_target_and_defaults_to_info() {
        use tracing::Level;
        let info = filter(None);
        assert!(info.would_enable("parley", &Level::INFO));
        assert!(!info.would_enable("parley", &Level::DEBUG));
        for unreadable in ["", "  ", "parley=loud"] {
            let f = filter(Some(unreadable));
            assert!(f.would_enable("parley", &Level::INFO), "{unreadable:?}");
            assert!(!f.would_enable("parley", &Level::DEBUG), "{unreadable:?}");
        }
        let f = filter(Some("warn,parley=debug"));
        assert!(f.would_enable("parley::store", &Level::DEBUG));
        assert!(!f.would_enable("hyper", &Level::INFO));
        assert!(f.would_enable("hyper", &Level::WARN));
        assert!(!filter(Some("off")).would_enable("parley", &Level::ERROR));
    }

    /// Lines written under a test subscriber, as JSON values.
    fn logged(f: impl FnOnce()) -> Vec<serde_json::Value> {
        #[derive(Clone, Default)]
        struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry().with(json_layer(move || writer.clone()));
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("every line is one JSON object"))
            .collect()
    }

    #[test]
    fn metric_lines_carry_the_trace_of_the_span_they_are_emitted_in() {
        let (mut outside, mut inside) = (String::new(), String::new());
        logged(|| {
            outside = crate::metrics::Metrics::new("f").count("Sent", 1).to_line();
            let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1";
            let _span = tracing::info_span!("send", xrayTraceId = header).entered();
            inside = crate::metrics::Metrics::new("f").count("Sent", 1).to_line();
        });
        let value = |line: &str| serde_json::from_str::<serde_json::Value>(line).unwrap();
        assert_eq!(
            value(&inside)["trace_id"],
            "1-5759e988-bd862e3fe1be46a994272793"
        );
        assert_eq!(value(&inside)["Sent"], 1.0);
        assert!(value(&outside).get("trace_id").is_none());
    }

    #[test]
    fn every_line_in_a_traced_span_carries_the_innermost_trace_root() {
        let invocation =
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let message = "Root=1-67891233-abcdef012345678912345678;Parent=1111111111111111;Sampled=1";
        let lines = logged(|| {
            tracing::info!("before any invocation");
            // What lambda_runtime's TracingLayer opens around every invocation.
            let mut context = lambda_http::Context::default();
            context.request_id = "req-1".into();
            context.xray_trace_id = Some(invocation.into());
            let _invocation =
                lambda_http::lambda_runtime::layers::trace::request_span(&context).entered();
            tracing::info!(answer = 42, "in the invocation");
            {
                let _send = tracing::info_span!("send", message_id = "01J", xrayTraceId = message)
                    .entered();
                tracing::warn!("in the message's span");
                let _inner = tracing::info_span!("attempt", n = 1).entered();
                tracing::info!("deeper inside it");
            }
            let later = tracing::info_span!("callback", xrayTraceId = tracing::field::Empty);
            later.record("xrayTraceId", message);
            later.in_scope(|| tracing::info!("recorded after the span opened"));
            let bad = tracing::info_span!("bad", xrayTraceId = "Root=nope");
            bad.in_scope(|| tracing::info!("an invalid header is no trace"));
        });
        let ids: Vec<Option<&str>> = lines.iter().map(|l| l["trace_id"].as_str()).collect();
        assert_eq!(
            ids,
            vec![
                None,
                Some("1-5759e988-bd862e3fe1be46a994272793"),
                Some("1-67891233-abcdef012345678912345678"),
                Some("1-67891233-abcdef012345678912345678"),
                Some("1-67891233-abcdef012345678912345678"),
                Some("1-5759e988-bd862e3fe1be46a994272793"),
            ]
        );
        // The rest of the shape is the JSON formatter's: level, fields, the current span.
        assert_eq!(lines[1]["level"], "INFO");
        assert_eq!(lines[1]["fields"]["answer"], 42);
        assert_eq!(lines[1]["span"]["requestId"], "req-1");
        assert_eq!(lines[3]["span"]["name"], "attempt");
    }

    #[test]
    fn pseudonyms_are_stable_keyed_and_contain_no_digits_of_the_number() {
        let n = E164::parse("+14155552671").unwrap();
        let m = E164::parse("+14155552672").unwrap();
        let a = Pseudonymizer::new("key-a");
        let p = a.pseudonym(&n);
        assert_eq!(p, a.pseudonym(&n));
        assert_ne!(p, a.pseudonym(&m));
        assert_ne!(p, Pseudonymizer::new("key-b").pseudonym(&n));
        assert_eq!(p.len(), 18);
        assert!(!p.contains("555"));
    }
}
