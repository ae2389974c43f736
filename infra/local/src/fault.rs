//! Fault windows in the AWS emulator (`POST /_chaos/faults`, infra/emulator.py): the typed
//! request, a client for its control route, and `parley-local fault …`, the switch a person
//! flips against a running `make run` stack (README, "Make the store fail").

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The AWS services the emulator can fault, by the name it gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Dynamodb,
    Dynamodbstreams,
    Sqs,
    Events,
    Secretsmanager,
    Kms,
}

impl Service {
    pub const ALL: [Service; 6] = [
        Self::Dynamodb,
        Self::Dynamodbstreams,
        Self::Sqs,
        Self::Events,
        Self::Secretsmanager,
        Self::Kms,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dynamodb => "dynamodb",
            Self::Dynamodbstreams => "dynamodbstreams",
            Self::Sqs => "sqs",
            Self::Events => "events",
            Self::Secretsmanager => "secretsmanager",
            Self::Kms => "kms",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// What a matching request gets during the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// 503 ServiceUnavailable.
    Unavailable,
    /// The service's own throttling error (the SDK retries it as throttling).
    Throttle,
    /// The real answer, `delay_ms` late.
    Slow,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Throttle => "throttle",
            Self::Slow => "slow",
        }
    }
}

/// One fault window, as `POST /_chaos/faults` takes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultSpec {
    pub service: Service,
    pub kind: FaultKind,
    pub seconds: f64,
    /// Only this operation (`TransactWriteItems`), else every one of the service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// Only requests naming a resource (table, queue, bus, secret) whose name starts with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// The share of matching requests faulted (default all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
}

impl FaultSpec {
    pub fn new(service: Service, kind: FaultKind, duration: Duration) -> Self {
        Self {
            service,
            kind,
            seconds: duration.as_secs_f64(),
            operation: None,
            resource: None,
            delay_ms: None,
            probability: None,
        }
    }
}

/// A window as the emulator reports it, with the requests it faulted so far.
#[derive(Debug, Clone, Deserialize)]
pub struct FaultWindow {
    pub id: u64,
    pub service: Service,
    pub kind: FaultKind,
    pub seconds: f64,
    pub operation: Option<String>,
    pub resource: Option<String>,
    pub hits: u64,
    pub remaining_s: f64,
}

#[derive(Deserialize)]
struct Windows {
    windows: Vec<FaultWindow>,
}

/// The emulator's fault control route.
#[derive(Clone)]
pub struct EmulatorFaults {
    http: reqwest::Client,
    url: String,
}

impl EmulatorFaults {
    /// `endpoint`: the emulator's URL (`AWS_ENDPOINT_URL`).
    pub fn new(endpoint: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: format!("{}/_chaos/faults", endpoint.trim_end_matches('/')),
        }
    }

    pub async fn open(&self, spec: &FaultSpec) -> Result<FaultWindow, String> {
        let response = self
            .http
            .post(&self.url)
            .json(spec)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("the emulator refused the fault: {status} {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("the emulator's answer: {e}: {body}"))
    }

    /// Every window opened so far, open or ended.
    pub async fn list(&self) -> Result<Vec<FaultWindow>, String> {
        let response = self
            .http
            .get(&self.url)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let windows: Windows = response.json().await.map_err(|e| e.to_string())?;
        Ok(windows.windows)
    }

    /// Ends every open window now.
    pub async fn clear(&self) -> Result<Vec<FaultWindow>, String> {
        let response = self
            .http
            .delete(&self.url)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let windows: Windows = response.json().await.map_err(|e| e.to_string())?;
        Ok(windows.windows)
    }

    fn unreachable(&self, e: reqwest::Error) -> String {
        format!(
            "the emulator is not reachable at {} (is `make run` up?): {e}",
            self.url
        )
    }
}

pub const USAGE: &str = "usage: parley-local fault store-down [--for 60s] \
    | fault (down|throttle|slow) SERVICE [--for 60s] [--operation OP] [--resource PREFIX] \
    [--delay-ms MS] [--probability P] | fault list | fault clear \
    (SERVICE: dynamodb, dynamodbstreams, sqs, events, secretsmanager, kms)";

/// What `parley-local fault …` asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultCommand {
    Open(FaultSpec),
    List,
    Clear,
}

/// `60s`, `2m`, `500ms` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (60s, 2m, 500ms)"))?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("`{s}` is not a duration (60s, 2m, 500ms)")),
    };
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("`{s}` must be a positive duration"))
}

pub fn parse_command(args: &[String]) -> Result<FaultCommand, String> {
    let (service, kind, rest) = match args {
        [c] if c == "list" => return Ok(FaultCommand::List),
        [c] if c == "clear" => return Ok(FaultCommand::Clear),
        [c, rest @ ..] if c == "store-down" => (Service::Dynamodb, FaultKind::Unavailable, rest),
        [c, service, rest @ ..] => {
            let kind = match c.as_str() {
                "down" => FaultKind::Unavailable,
                "throttle" => FaultKind::Throttle,
                "slow" => FaultKind::Slow,
                other => return Err(format!("unknown fault `{other}`")),
            };
            let service =
                Service::parse(service).ok_or_else(|| format!("unknown service `{service}`"))?;
            (service, kind, rest)
        }
        _ => return Err("which fault?".into()),
    };
    let mut spec = FaultSpec::new(service, kind, Duration::from_secs(60));
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--for" => spec.seconds = parse_duration(value)?.as_secs_f64(),
            "--operation" => spec.operation = Some(value.clone()),
            "--resource" => spec.resource = Some(value.clone()),
            "--delay-ms" => {
                spec.delay_ms = Some(value.parse().map_err(|_| format!("--delay-ms {value}"))?)
            }
            "--probability" => {
                spec.probability = Some(
                    value
                        .parse()
                        .map_err(|_| format!("--probability {value}"))?,
                )
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(FaultCommand::Open(spec))
}

/// One line per window, for people.
pub fn describe(w: &FaultWindow) -> String {
    let state = if w.remaining_s > 0.0 {
        format!("{:.0} s left", w.remaining_s)
    } else {
        "ended".to_owned()
    };
    format!(
        "#{} {} {}{}{} for {:.0} s ({state}): {} requests faulted",
        w.id,
        w.service.as_str(),
        w.kind.as_str(),
        w.operation
            .as_deref()
            .map(|o| format!(" {o}"))
            .unwrap_or_default(),
        w.resource
            .as_deref()
            .map(|r| format!(" on {r}*"))
            .unwrap_or_default(),
        w.seconds,
        w.hits
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn store_down_is_dynamodb_unavailable_for_a_minute_by_default() {
        let FaultCommand::Open(spec) = parse_command(&args("store-down")).unwrap() else {
            panic!("not a fault window");
        };
        assert_eq!(spec.service, Service::Dynamodb);
        assert_eq!(spec.kind, FaultKind::Unavailable);
        assert_eq!(spec.seconds, 60.0);
        let FaultCommand::Open(spec) = parse_command(&args("store-down --for 90s")).unwrap() else {
            panic!("not a fault window");
        };
        assert_eq!(spec.seconds, 90.0);
    }

    #[test]
    fn other_faults_name_their_service_and_options() {
        let command = parse_command(&args(
            "throttle sqs --for 2m --operation SendMessage --probability 0.5",
        ))
        .unwrap();
        let FaultCommand::Open(spec) = command else {
            panic!("not a fault window");
        };
        assert_eq!(
            (spec.service, spec.kind, spec.seconds),
            (Service::Sqs, FaultKind::Throttle, 120.0)
        );
        assert_eq!(spec.operation.as_deref(), Some("SendMessage"));
        assert_eq!(spec.probability, Some(0.5));
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            serde_json::json!({"service": "sqs", "kind": "throttle", "seconds": 120.0,
                               "operation": "SendMessage", "probability": 0.5})
        );
        assert_eq!(parse_command(&args("clear")).unwrap(), FaultCommand::Clear);
        assert!(parse_command(&args("down s3")).is_err());
        assert!(parse_command(&args("explode dynamodb")).is_err());
        assert!(parse_command(&args("store-down --for")).is_err());
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
