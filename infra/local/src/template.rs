//! Reads `template.yaml`, the single source of truth for the table's shape and the HTTP routes,
//! so the local stack and the tests build exactly what SAM deploys.

use std::path::Path;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
};
use serde::Deserialize;
use serde_yaml::Value;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("could not read the template: {0}")]
    Read(#[from] std::io::Error),
    #[error("the template is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("the template has no resource {0}")]
    MissingResource(String),
    #[error("resource {0} does not have the expected shape: {1}")]
    Shape(String, String),
}

pub struct Template {
    root: Value,
}

/// An HTTP API route and the function behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: String,
    pub path: String,
    pub function: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TableProperties {
    pub attribute_definitions: Vec<AttributeDef>,
    pub key_schema: Vec<KeyDef>,
    #[serde(default)]
    pub global_secondary_indexes: Vec<IndexDef>,
    pub stream_specification: Option<StreamDef>,
    pub time_to_live_specification: Option<TtlDef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeDef {
    pub attribute_name: String,
    pub attribute_type: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyDef {
    pub attribute_name: String,
    pub key_type: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IndexDef {
    pub index_name: String,
    pub key_schema: Vec<KeyDef>,
    pub projection: ProjectionDef,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProjectionDef {
    pub projection_type: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamDef {
    pub stream_view_type: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TtlDef {
    pub attribute_name: String,
    pub enabled: bool,
}

/// An SQS event source of a function: Lambda polls `queue` and invokes `function` with batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsSource {
    pub function: String,
    pub queue: String,
    pub batch_size: i32,
}

/// An SQS queue resource and the attributes the local stack applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDef {
    pub logical_id: String,
    pub visibility_timeout: Option<i64>,
    pub retention: Option<i64>,
    /// (dead-letter queue's logical id, maxReceiveCount)
    pub redrive: Option<(String, i64)>,
}

/// A function's `DynamoDB` stream event.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSource {
    /// The function's logical id.
    pub function: String,
    /// The table's logical id.
    pub table: String,
    pub batch_size: i32,
    pub max_retries: u32,
    /// The logical id of the queue a batch goes to once its retries are exhausted.
    pub on_failure: Option<String>,
}

/// An `AWS::Events::Rule` on one of the template's buses, with queue targets.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRuleDef {
    pub logical_id: String,
    /// The bus's logical id.
    pub bus: String,
    pub pattern: serde_json::Value,
    /// Logical ids of the target queues.
    pub queues: Vec<String>,
}

/// A `Schedule` event of a function: EventBridge invokes it at `rate` with `input` (or the
/// scheduled-event JSON when there is none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleSource {
    pub function: String,
    /// The event's name in the template (`Dispatch`, `Reconcile`).
    pub event: String,
    pub rate: std::time::Duration,
    pub input: Option<String>,
}

/// `rate(1 minute)`, `rate(15 minutes)`, `rate(2 hours)`, `rate(1 day)`.
pub fn parse_rate(expression: &str) -> Option<std::time::Duration> {
    let inner = expression.trim().strip_prefix("rate(")?.strip_suffix(')')?;
    let (n, unit) = inner.trim().split_once(' ')?;
    let n: u64 = n.parse().ok().filter(|n| *n > 0)?;
    let seconds = match unit.trim() {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(n * seconds))
}

/// `!GetAtt X.Arn` / `!Ref X` → `X`.
fn referenced(value: &Value) -> Option<String> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "!GetAtt" || tagged.tag == "GetAtt" => tagged
            .value
            .as_str()
            .map(|v| v.split('.').next().unwrap_or(v).to_owned()),
        Value::Tagged(tagged) if tagged.tag == "!Ref" || tagged.tag == "Ref" => {
            tagged.value.as_str().map(str::to_owned)
        }
        _ => None,
    }
}

impl Template {
    fn resources_of_type<'a>(
        &'a self,
        kind: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        self.root["Resources"]
            .as_mapping()
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(move |(_, r)| r["Type"].as_str() == Some(kind))
            .filter_map(|(id, r)| id.as_str().map(|id| (id, r)))
    }

    pub fn queues(&self) -> Vec<QueueDef> {
        self.resources_of_type("AWS::SQS::Queue")
            .map(|(id, r)| {
                let p = &r["Properties"];
                QueueDef {
                    logical_id: id.to_owned(),
                    visibility_timeout: p["VisibilityTimeout"].as_i64(),
                    retention: p["MessageRetentionPeriod"].as_i64(),
                    redrive: referenced(&p["RedrivePolicy"]["deadLetterTargetArn"])
                        .zip(p["RedrivePolicy"]["maxReceiveCount"].as_i64()),
                }
            })
            .collect()
    }

    pub fn sqs_sources(&self) -> Vec<SqsSource> {
        let mut sources = Vec::new();
        for (id, r) in self.resources_of_type("AWS::Serverless::Function") {
            for event in r["Properties"]["Events"]
                .as_mapping()
                .into_iter()
                .flat_map(|m| m.values())
            {
                if event["Type"].as_str() != Some("SQS") {
                    continue;
                }
                if let Some(queue) = referenced(&event["Properties"]["Queue"]) {
                    sources.push(SqsSource {
                        function: id.to_owned(),
                        queue,
                        batch_size: event["Properties"]["BatchSize"].as_i64().unwrap_or(10) as i32,
                    });
                }
            }
        }
        sources
    }

    /// DynamoDB stream sources: (function, table logical id, batch size, maximum retries).
    pub fn stream_sources(&self) -> Vec<StreamSource> {
        let mut sources = Vec::new();
        for (id, r) in self.resources_of_type("AWS::Serverless::Function") {
            for event in r["Properties"]["Events"]
                .as_mapping()
                .into_iter()
                .flat_map(|m| m.values())
            {
                if event["Type"].as_str() != Some("DynamoDB") {
                    continue;
                }
                let props = &event["Properties"];
                if let Some(table) = referenced(&props["Stream"]) {
                    let on_failure = &props["DestinationConfig"]["OnFailure"];
                    sources.push(StreamSource {
                        function: id.to_owned(),
                        table,
                        batch_size: props["BatchSize"].as_i64().unwrap_or(100) as i32,
                        max_retries: props["MaximumRetryAttempts"].as_i64().unwrap_or(3) as u32,
                        on_failure: (on_failure["Type"].as_str() == Some("SQS"))
                            .then(|| referenced(&on_failure["Destination"]))
                            .flatten(),
                    });
                }
            }
        }
        sources
    }

    /// Every `(metric, function)` an alarm watches in Parley's EMF namespace, directly or in a
    /// metric-math alarm's `Metrics`, sorted and without repeats.
    pub fn emf_alarm_metrics(&self) -> Vec<(String, String)> {
        let mut found = Vec::new();
        let mut take = |metric: &Value| {
            if metric["Namespace"].as_str() != Some("Parley") {
                return;
            }
            let function = metric["Dimensions"]
                .as_sequence()
                .into_iter()
                .flatten()
                .find(|d| d["Name"].as_str() == Some("function"))
                .and_then(|d| d["Value"].as_str());
            if let (Some(name), Some(function)) = (metric["MetricName"].as_str(), function) {
                found.push((name.to_owned(), function.to_owned()));
            }
        };
        for (_, alarm) in self.resources_of_type("AWS::CloudWatch::Alarm") {
            let props = &alarm["Properties"];
            take(props);
            for m in props["Metrics"].as_sequence().into_iter().flatten() {
                take(&m["MetricStat"]["Metric"]);
            }
        }
        found.sort();
        found.dedup();
        found
    }

    /// Every `Schedule` event of every function whose expression is a `rate(...)`.
    pub fn schedule_sources(&self) -> Vec<ScheduleSource> {
        let mut sources = Vec::new();
        for (id, r) in self.resources_of_type("AWS::Serverless::Function") {
            for (name, event) in r["Properties"]["Events"]
                .as_mapping()
                .into_iter()
                .flat_map(|m| m.iter())
            {
                if event["Type"].as_str() != Some("Schedule") {
                    continue;
                }
                let props = &event["Properties"];
                if let (Some(name), Some(rate)) = (
                    name.as_str(),
                    props["Schedule"].as_str().and_then(parse_rate),
                ) {
                    sources.push(ScheduleSource {
                        function: id.to_owned(),
                        event: name.to_owned(),
                        rate,
                        input: props["Input"].as_str().map(str::to_owned),
                    });
                }
            }
        }
        sources
    }

    /// The template's EventBridge rules that deliver to its queues.
    pub fn event_rules(&self) -> Vec<EventRuleDef> {
        self.resources_of_type("AWS::Events::Rule")
            .filter_map(|(id, r)| {
                let p = &r["Properties"];
                let pattern: serde_json::Value =
                    serde_yaml::from_value(p["EventPattern"].clone()).ok()?;
                Some(EventRuleDef {
                    logical_id: id.to_owned(),
                    bus: referenced(&p["EventBusName"])?,
                    pattern,
                    queues: p["Targets"]
                        .as_sequence()
                        .into_iter()
                        .flatten()
                        .filter_map(|t| referenced(&t["Arn"]))
                        .collect(),
                })
            })
            .collect()
    }

    /// Logical ids of the template's event buses.
    pub fn event_buses(&self) -> Vec<String> {
        self.resources_of_type("AWS::Events::EventBus")
            .map(|(id, _)| id.to_owned())
            .collect()
    }

    /// Environment variables of every function whose value is `!Ref <resource>`, as
    /// (variable, resource logical id): locally, they point at the local resources.
    pub fn env_refs(&self) -> Vec<(String, String)> {
        let mut refs = Vec::new();
        for (_, r) in self.resources_of_type("AWS::Serverless::Function") {
            if let Some(vars) = r["Properties"]["Environment"]["Variables"].as_mapping() {
                for (k, v) in vars {
                    if let (Some(k), Some(target)) = (k.as_str(), referenced(v)) {
                        refs.push((k.to_owned(), target));
                    }
                }
            }
        }
        refs
    }

    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        Self::parse(&std::fs::read_to_string(path)?)
    }

    pub fn load_default() -> Result<Self, TemplateError> {
        Self::load(&crate::env::repo_root().join("template.yaml"))
    }

    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        Ok(Self {
            root: serde_yaml::from_str(text)?,
        })
    }

    fn resource(&self, logical_id: &str) -> Result<&Value, TemplateError> {
        self.root["Resources"]
            .get(logical_id)
            .ok_or_else(|| TemplateError::MissingResource(logical_id.to_owned()))
    }

    pub fn table(&self, logical_id: &str) -> Result<TableProperties, TemplateError> {
        let props = self.resource(logical_id)?["Properties"].clone();
        serde_yaml::from_value(props)
            .map_err(|e| TemplateError::Shape(logical_id.to_owned(), e.to_string()))
    }

    /// Every `HttpApi` event of every function, in template order.
    pub fn http_routes(&self) -> Vec<Route> {
        let Some(resources) = self.root["Resources"].as_mapping() else {
            return Vec::new();
        };
        let mut routes = Vec::new();
        for (id, resource) in resources {
            if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
                continue;
            }
            let Some(events) = resource["Properties"]["Events"].as_mapping() else {
                continue;
            };
            for event in events.values() {
                if event["Type"].as_str() != Some("HttpApi") {
                    continue;
                }
                let props = &event["Properties"];
                if let (Some(id), Some(method), Some(path)) = (
                    id.as_str(),
                    props["Method"].as_str(),
                    props["Path"].as_str(),
                ) {
                    routes.push(Route {
                        method: method.to_ascii_uppercase(),
                        path: path.to_owned(),
                        function: id.to_owned(),
                    });
                }
            }
        }
        routes
    }

    /// The logical ids of every function, in template order.
    pub fn functions(&self) -> Vec<String> {
        self.resources_of_type("AWS::Serverless::Function")
            .map(|(id, _)| id.to_owned())
            .collect()
    }

    /// The `Binary` a function is built as (its crate name), from its cargo-lambda metadata.
    pub fn binary(&self, logical_id: &str) -> Option<String> {
        self.resource(logical_id).ok()?["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .map(str::to_owned)
    }
}

impl TableProperties {
    /// A CreateTable request for this shape under `name`, as on-demand like the template.
    pub fn create_table(
        &self,
        client: &aws_sdk_dynamodb::Client,
        name: &str,
    ) -> Result<
        aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder,
        aws_sdk_dynamodb::error::BuildError,
    > {
        let mut req = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest);
        for a in &self.attribute_definitions {
            req = req.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(&a.attribute_name)
                    .attribute_type(ScalarAttributeType::from(a.attribute_type.as_str()))
                    .build()?,
            );
        }
        for k in keys(&self.key_schema)? {
            req = req.key_schema(k);
        }
        for index in &self.global_secondary_indexes {
            req = req.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(&index.index_name)
                    .set_key_schema(Some(keys(&index.key_schema)?))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::from(
                                index.projection.projection_type.as_str(),
                            ))
                            .build(),
                    )
                    .build()?,
            );
        }
        if let Some(stream) = &self.stream_specification {
            req = req.stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::from(stream.stream_view_type.as_str()))
                    .build()?,
            );
        }
        Ok(req)
    }
}

fn keys(defs: &[KeyDef]) -> Result<Vec<KeySchemaElement>, aws_sdk_dynamodb::error::BuildError> {
    defs.iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(&k.attribute_name)
                .key_type(KeyType::from(k.key_type.as_str()))
                .build()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_template_declares_the_table_and_routes_the_gateway_serves() {
        let t = Template::load_default().unwrap();
        let table = t.table("Table").unwrap();
        assert!(table
            .key_schema
            .iter()
            .any(|k| k.attribute_name == "pk" && k.key_type == "HASH"));
        assert!(table.stream_specification.is_some());
        let routes = t.http_routes();
        assert!(routes.contains(&Route {
            method: "POST".into(),
            path: parley::handlers::inbound_sms::ROUTE.into(),
            function: "InboundSmsFunction".into(),
        }));
        assert!(routes
            .iter()
            .any(|r| r.path == parley::handlers::health::ROUTE));
        assert_eq!(
            t.binary("InboundSmsFunction").as_deref(),
            Some("inbound-sms")
        );
        let schedules = t.schedule_sources();
        assert!(schedules
            .iter()
            .any(|s| s.function == "DispatcherFunction"
                && s.rate == std::time::Duration::from_secs(60)));
        assert!(schedules
            .iter()
            .any(|s| s.function == "InboundProcessorFunction" && s.input.is_some()));
        assert!(schedules
            .iter()
            .any(|s| s.function == "InboundBackfillFunction"
                && s.event == "Backfill"
                && s.rate == std::time::Duration::from_secs(900)));
    }

    /// The inbound webhook URL the deploy prints carries exactly the connection overrides the
    /// code documents and verifies signatures with.
    #[test]
    fn the_webhook_output_carries_the_connection_overrides() {
        let t = Template::load_default().unwrap();
        let outputs = t.root["Outputs"]["TwilioSmsWebhookUrl"]["Value"].clone();
        let text = serde_json::to_string(&outputs).unwrap();
        assert!(
            text.contains(&format!(
                "{}#{}",
                parley::handlers::inbound_sms::ROUTE,
                parley::twilio::overrides::WEBHOOK_OVERRIDES
            )),
            "{text}"
        );
    }

    /// Every function is a crate under functions/ named as its `Binary`, with a sample event,
    /// and no crate is left out of the template.
    #[test]
    fn every_function_has_its_crate_binary_and_sample_event() {
        let t = Template::load_default().unwrap();
        let root = crate::env::repo_root();
        let functions = t.functions();
        assert_eq!(functions.len(), 12, "{functions:?}");
        let mut binaries = Vec::new();
        for id in &functions {
            let binary = t
                .binary(id)
                .unwrap_or_else(|| panic!("{id} has no Metadata.BuildProperties.Binary"));
            let resource = t.resource(id).unwrap();
            assert_eq!(
                resource["Metadata"]["BuildMethod"].as_str(),
                Some("rust-cargolambda"),
                "{id}"
            );
            let manifest =
                std::fs::read_to_string(root.join("functions").join(&binary).join("Cargo.toml"))
                    .unwrap_or_else(|e| panic!("{id}: functions/{binary}/Cargo.toml: {e}"));
            assert!(
                manifest.contains(&format!("name = \"{binary}\"")),
                "{id}: functions/{binary} is not the crate {binary}"
            );
            let event = std::fs::read_to_string(root.join("events").join(format!("{binary}.json")))
                .unwrap_or_else(|e| panic!("{id}: events/{binary}.json: {e}"));
            serde_json::from_str::<serde_json::Value>(&event)
                .unwrap_or_else(|e| panic!("events/{binary}.json: {e}"));
            binaries.push(binary);
        }
        let mut crates: Vec<String> = std::fs::read_dir(root.join("functions"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        crates.sort();
        binaries.sort();
        assert_eq!(
            crates, binaries,
            "a crate under functions/ that the template does not deploy"
        );
    }

    /// Every HTTP route of the template is one the handlers name by a constant, and the other
    /// way round, so a renamed route cannot leave the template (or the code) behind.
    #[test]
    fn every_template_route_is_a_route_constant_of_its_handler() {
        use parley::handlers::{
            contacts, conversations, health, inbound_sms, inbox, keys, queue, rules, send_sms,
            stats, status_callback,
        };
        let expected = [
            ("POST", inbound_sms::ROUTE, "InboundSmsFunction"),
            ("POST", status_callback::ROUTE, "StatusCallbackFunction"),
            ("POST", send_sms::ROUTE, "SendSmsFunction"),
            ("POST", send_sms::CANCEL_ROUTE, "SendSmsFunction"),
            (
                "GET",
                conversations::CONVERSATION_ROUTE,
                "ConversationsFunction",
            ),
            ("GET", conversations::MESSAGE_ROUTE, "ConversationsFunction"),
            ("GET", inbox::ROUTE, "ConversationsFunction"),
            ("GET", stats::ROUTE, "ConversationsFunction"),
            ("GET", queue::ROUTE, "ConversationsFunction"),
            ("GET", queue::SUMMARY_ROUTE, "ConversationsFunction"),
            ("POST", keys::ROUTE, "ConversationsFunction"),
            ("GET", keys::ROUTE, "ConversationsFunction"),
            ("DELETE", keys::KEY_ROUTE, "ConversationsFunction"),
            ("DELETE", contacts::ROUTE, "ConversationsFunction"),
            ("GET", health::ROUTE, "HealthFunction"),
            ("GET", health::OPENAPI_ROUTE, "HealthFunction"),
            ("POST", rules::RULES_ROUTE, "RulesFunction"),
            ("GET", rules::RULES_ROUTE, "RulesFunction"),
            ("POST", rules::PREVIEW_ROUTE, "RulesFunction"),
            ("GET", rules::RULE_ROUTE, "RulesFunction"),
            ("PUT", rules::RULE_ROUTE, "RulesFunction"),
            ("DELETE", rules::RULE_ROUTE, "RulesFunction"),
            ("POST", rules::RULE_PREVIEW_ROUTE, "RulesFunction"),
            ("GET", rules::RULE_ACTIVITY_ROUTE, "RulesFunction"),
            ("POST", rules::EVENTS_ROUTE, "RulesFunction"),
        ];
        let console = parley_console::ROUTES
            .iter()
            .map(|(method, path)| (*method, *path, "ConsoleFunction"));
        let expected: Vec<_> = expected.into_iter().chain(console).collect();
        let mut expected: Vec<Route> = expected
            .iter()
            .map(|(method, path, function)| Route {
                method: (*method).into(),
                path: (*path).into(),
                function: (*function).into(),
            })
            .collect();
        let mut routes = Template::load_default().unwrap().http_routes();
        let key = |r: &Route| (r.path.clone(), r.method.clone());
        expected.sort_by_key(key);
        routes.sort_by_key(key);
        assert_eq!(routes, expected);
    }

    #[test]
    fn rates_in_every_unit() {
        use std::time::Duration;
        assert_eq!(parse_rate("rate(1 minute)"), Some(Duration::from_secs(60)));
        assert_eq!(
            parse_rate("rate(15 minutes)"),
            Some(Duration::from_secs(900))
        );
        assert_eq!(parse_rate("rate(2 hours)"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_rate("rate(1 day)"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_rate("cron(0 9 * * ? *)"), None);
        assert_eq!(parse_rate("rate(0 minutes)"), None);
    }
}
