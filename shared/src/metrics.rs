//! CloudWatch Embedded Metric Format: one JSON line on stdout per event, which CloudWatch Logs
//! turns into metrics without an API call on the request path.

use serde_json::{json, Map, Value};

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

/// A set of metrics sharing dimensions, emitted as one EMF line. Every metric is recorded
/// under `function` and again under `function` plus each extra dimension.
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

    pub fn to_line(&self) -> String {
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let mut dimension_sets = vec![json!(["function"])];
        dimension_sets.extend(
            self.dimensions
                .iter()
                .map(|(name, _)| json!(["function", name])),
        );
        let definitions: Vec<Value> = self
            .values
            .iter()
            .map(|(name, _, unit)| json!({ "Name": name, "Unit": unit.as_str() }))
            .collect();
        let mut root = Map::new();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp as i64,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": dimension_sets,
                    "Metrics": definitions,
                }],
            }),
        );
        root.insert("function".into(), json!(self.function));
        // Not a dimension: a plain property, so a metric line is found with its log lines.
        if let Some(trace) = crate::telemetry::current_trace_id() {
            root.insert("trace_id".into(), json!(trace.as_str()));
        }
        for (name, value) in &self.dimensions {
            root.insert((*name).into(), json!(value));
        }
        for (name, value, _) in &self.values {
            root.insert((*name).into(), json!(value));
        }
        Value::Object(root).to_string()
    }

    pub fn emit(self) {
        println!("{}", self.to_line());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
