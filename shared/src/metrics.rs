//! CloudWatch Embedded Metric Format: one JSON line on stdout per event, which CloudWatch Logs
//! turns into metrics without an API call on the request path.

const NAMESPACE: &str = "Parley";

#[derive(Debug, Clone, Copy)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// A set of metrics sharing dimensions: one EMF directive, emitted as a line of its own or with
/// others in a [`Batch`]. Every metric is recorded under `function` and again under `function`
/// plus each extra dimension.
#[derive(Debug)]
pub struct Metrics {
    function: &'static str,
    dimensions: Vec<(&'static str, String)>,
    values: Vec<(&'static str, f64, Unit)>,
}

impl Metrics {
    pub fn new(function: &'static str) -> Self {
        Self {
            function,
            dimensions: Vec::new(),
            values: Vec::new(),
        }
    }

    pub fn dimension(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.dimensions.push((name, value.into()));
        self
    }

    pub fn count(mut self, name: &'static str, value: u64) -> Self {
        self.values.push((name, value as f64, Unit::Count));
        self
    }

    pub fn millis(mut self, name: &'static str, value: f64) -> Self {
        self.values.push((name, value, Unit::Milliseconds));
        self
    }

    /// This set alone as one EMF line.
    pub fn to_line(&self) -> String {
        line(std::slice::from_ref(self))
    }

    pub fn emit(self) {
        write_line(&line(std::slice::from_ref(&self)));
    }
}

/// Metric sets written together as one EMF line, one directive per set (each keeps its own
/// dimensions): a function that counts several things per invocation pays one write to stdout,
/// not one per set. Sets that cannot share a line (a metric name twice, or a dimension with two
/// values) are written on lines of their own.
#[derive(Debug, Default)]
pub struct Batch {
    sets: Vec<Metrics>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, metrics: Metrics) {
        self.sets.push(metrics);
    }

    /// The lines `emit` writes.
    pub fn to_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut from = 0;
        for to in 1..=self.sets.len() {
            let next = self.sets.get(to);
            if next.is_none_or(|n| !fits(&self.sets[from..to], n)) {
                lines.push(line(&self.sets[from..to]));
                from = to;
            }
        }
        lines
    }

    pub fn emit(self) {
        for line in self.to_lines() {
            write_line(&line);
        }
    }
}

/// Whether `next` can join `sets` on one line: its names are root members of the line.
fn fits(sets: &[Metrics], next: &Metrics) -> bool {
    sets.iter().all(|set| {
        set.function == next.function
            && next.values.iter().all(|(name, ..)| {
                set.values.iter().all(|(other, ..)| other != name)
                    && set.dimensions.iter().all(|(other, _)| other != name)
            })
            && next.dimensions.iter().all(|(name, value)| {
                set.values.iter().all(|(other, ..)| other != name)
                    && set
                        .dimensions
                        .iter()
                        .all(|(other, v)| other != name || v == value)
            })
    })
}

fn write_line(line: &str) {
    use std::io::Write;
    // One write per line (`println!` may split it); a closed stdout is not the caller's concern.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(format!("{line}\n").as_bytes());
}

/// The EMF line of `sets` (all of one function), written directly: no `serde_json::Value` tree.
fn line(sets: &[Metrics]) -> String {
    use std::io::Write;
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let mut out = Vec::with_capacity(512);
    let _ = write!(
        out,
        r#"{{"_aws":{{"Timestamp":{timestamp},"CloudWatchMetrics":["#
    );
    for (i, set) in sets.iter().enumerate() {
        out.extend_from_slice((if i == 0 { "{" } else { ",{" }).as_bytes());
        out.extend_from_slice(br#""Namespace":"#);
        push_json(&mut out, NAMESPACE);
        out.extend_from_slice(br#","Dimensions":[["function"]"#);
        for (name, _) in &set.dimensions {
            out.extend_from_slice(br#",["function","#);
            push_json(&mut out, name);
            out.push(b']');
        }
        out.extend_from_slice(br#"],"Metrics":["#);
        for (j, (name, _, unit)) in set.values.iter().enumerate() {
            out.extend_from_slice(
                (if j == 0 {
                    r#"{"Name":"#
                } else {
                    r#",{"Name":"#
                })
                .as_bytes(),
            );
            push_json(&mut out, name);
            let _ = write!(out, r#","Unit":"{}"}}"#, unit.as_str());
        }
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"]}");
    member(
        &mut out,
        "function",
        sets.first().map_or("", |s| s.function),
    );
    // Not a dimension: a plain property, so a metric line is found with its log lines.
    if let Some(trace) = crate::telemetry::current_trace_id() {
        member(&mut out, "trace_id", trace.as_str());
    }
    let mut seen: Vec<&str> = Vec::new();
    for set in sets {
        for (name, value) in &set.dimensions {
            if !seen.contains(name) {
                seen.push(name);
                member(&mut out, name, value);
            }
        }
        for (name, value, _) in &set.values {
            member(&mut out, name, value);
        }
    }
    out.push(b'}');
    // Every piece is UTF-8: literals, and what serde_json wrote.
    String::from_utf8(out).unwrap_or_default()
}

/// `,"name":value` appended to `out` (after the `_aws` member, which always comes first).
fn member<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, name: &str, value: &T) {
    out.push(b',');
    push_json(out, name);
    out.push(b':');
    push_json(out, value);
}

/// `value` as JSON (strings escaped, a non-finite number as `null`), appended to `out`.
fn push_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Serializing a string or a number into a Vec cannot fail.
    let _ = serde_json::to_writer(out, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn the_line_is_valid_emf() {
        let line = Metrics::new("inbound-sms")
            .dimension("language", "es")
            .count("Received", 1)
            .millis("HandlerLatency", 2.5)
            .to_line();
        let v: Value = serde_json::from_str(&line).unwrap();
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Parley");
        assert_eq!(
            directive["Dimensions"],
            json!([["function"], ["function", "language"]])
        );
        assert_eq!(
            directive["Metrics"][1],
            json!({"Name": "HandlerLatency", "Unit": "Milliseconds"})
        );
        assert_eq!(v["Received"], 1.0);
        assert_eq!(v["language"], "es");
        assert!(v["_aws"]["Timestamp"].as_i64().unwrap() > 1_600_000_000_000);
        assert_eq!(v["function"], "inbound-sms");
    }

    #[test]
    fn names_and_values_are_escaped_and_a_non_finite_value_is_null() {
        let line = Metrics::new("f")
            .dimension("language", "a\"b\\c\n")
            .millis("Latency", f64::NAN)
            .to_line();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["language"], "a\"b\\c\n");
        assert_eq!(v["Latency"], Value::Null);
    }

    #[test]
    fn a_batch_is_one_line_with_a_directive_per_set() {
        let mut batch = Batch::new();
        batch.push(Metrics::new("f").count("Sent", 1));
        batch.push(
            Metrics::new("f")
                .dimension("language", "es")
                .count("Detected", 2),
        );
        batch.push(
            Metrics::new("f")
                .dimension("channel", "sms")
                .count("Received", 3),
        );
        let lines = batch.to_lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let v: Value = serde_json::from_str(&lines[0]).unwrap();
        let directives = v["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 3);
        assert_eq!(directives[0]["Dimensions"], json!([["function"]]));
        assert_eq!(
            directives[1]["Dimensions"],
            json!([["function"], ["function", "language"]])
        );
        assert_eq!(
            directives[2]["Metrics"],
            json!([{"Name": "Received", "Unit": "Count"}])
        );
        assert_eq!(
            (v["Sent"].as_f64(), v["Detected"].as_f64()),
            (Some(1.0), Some(2.0))
        );
        assert_eq!(
            (v["language"].as_str(), v["channel"].as_str()),
            (Some("es"), Some("sms"))
        );
    }

    #[test]
    fn sets_that_would_clash_on_one_line_get_lines_of_their_own() {
        let mut batch = Batch::new();
        batch.push(
            Metrics::new("f")
                .dimension("language", "es")
                .count("Detected", 1),
        );
        // The same dimension with another value, then the same metric name again.
        batch.push(
            Metrics::new("f")
                .dimension("language", "pt")
                .count("Other", 1),
        );
        batch.push(Metrics::new("f").count("Other", 2));
        batch.push(Metrics::new("g").count("Sent", 1));
        let lines: Vec<Value> = batch
            .to_lines()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["language"], "es");
        assert_eq!(lines[1]["language"], "pt");
        assert_eq!(lines[2]["Other"], 2.0);
        assert_eq!(lines[3]["function"], "g");
        assert!(Batch::new().to_lines().is_empty());
    }
}
