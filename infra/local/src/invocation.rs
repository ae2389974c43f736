//! What Lambda gives every invocation, locally: a context with a request id and an X-Ray trace
//! header (`Tracing: Active`), and the span `lambda_runtime` opens around the handler with
//! them, so the local stack's log lines carry the same `trace_id` as the deployed functions'.

use lambda_http::Context;
use parley::xray::TraceHeader;

/// A context continuing `trace` (from a new segment, as Lambda's function segment is), or in a
/// trace of its own when the event brings none.
pub fn context(request_id: &str, trace: Option<&TraceHeader>) -> Context {
    let mut context = Context::default();
    context.request_id = request_id.to_owned();
    let header = trace.map_or_else(TraceHeader::start, TraceHeader::child);
    context.xray_trace_id = Some(header.to_string());
    context
}

/// The span `lambda_runtime::run` wraps every invocation in (`requestId`, `xrayTraceId`).
pub fn span(context: &Context) -> tracing::Span {
    lambda_http::lambda_runtime::layers::trace::request_span(context)
}

/// A new request id, as Lambda gives each invocation.
pub fn request_id() -> String {
    ulid::Ulid::new().to_string().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invocation_continues_the_trace_it_is_given_or_starts_one() {
        let given = TraceHeader::parse(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        )
        .unwrap();
        let continued = context("r1", Some(&given));
        let header = TraceHeader::of_context(&continued).unwrap();
        assert_eq!(header.root(), given.root());
        assert_ne!(header, given, "Lambda's own segment is the new parent");
        assert_eq!(continued.request_id, "r1");

        let fresh = TraceHeader::of_context(&context("r2", None)).unwrap();
        assert_ne!(fresh.root(), given.root());
        assert!(fresh.to_string().ends_with(";Sampled=1"));
    }
}
