//! The store's TransactWriteItems, signed and sent without the SDK's orchestrator.
//!
//! Every text the webhook records is one TransactWriteItems. Through the SDK, the request's
//! runtime plugins, config bag, interceptors, endpoint rules, retry and timeout bookkeeping
//! and serializers cost more instructions than the rest of the webhook's warm path together
//! (docs/benchmarks.md, "Issue 13, session 13"). Here the same request is written with serde,
//! signed (`aws::sigv4`) and sent on the SDK configuration's reqwest client, keeping what the
//! SDK gave it: the same endpoint, region and credentials, the same `ClientRequestToken` on
//! every attempt (an attempt that timed out after DynamoDB applied it is then answered without
//! applying it twice), the configuration's retry budget and backoff for throttling, 5xx and
//! transport failures, and its attempt and operation timeouts. The answer is read into the
//! store's own [`Cancel`] by the same `cancellation` as the SDK's.
//!
//! Only the store's transactions go this way; every other request stays with the SDK.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use aws_types::SdkConfig;
use base64::Engine;
use serde::ser::{Error as _, SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};

use super::{cancellation, Cancel, StoreError};
use crate::aws::sigv4;

const OPERATION: &str = "TransactWriteItems";
const TARGET: &str = "DynamoDB_20120810.TransactWriteItems";

/// Error codes the SDK's standard retry strategy retries (throttling and transient faults).
const RETRIED: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "TooManyRequestsException",
    "RequestThrottled",
    "RequestThrottledException",
    "TransactionInProgressException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalServerError",
    "InternalError",
];

/// Credentials are read again this long before they expire (the SDK's identity cache's buffer).
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// Where and how the transactions go: what the store's SDK client was configured with.
pub(crate) struct DirectWrites {
    http: reqwest::Client,
    url: reqwest::Url,
    /// `Host` as reqwest writes it for `url`: signed.
    host: String,
    region: String,
    credentials: SharedCredentialsProvider,
    /// The last credentials read, kept as the SDK's identity cache keeps them.
    cached: std::sync::Mutex<Option<Credentials>>,
    attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    attempt_timeout: Option<Duration>,
    operation_timeout: Option<Duration>,
}

impl std::fmt::Debug for DirectWrites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectWrites")
            .field("url", &self.url.as_str())
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl DirectWrites {
    /// For `sdk`'s DynamoDB: its endpoint (`AWS_ENDPOINT_URL`, else the region's), region,
    /// credentials, retries and timeouts. None when it has no region or credentials provider,
    /// or names an endpoint that is not a URL: the store then stays with the SDK.
    pub(crate) fn new(sdk: &SdkConfig, http: reqwest::Client) -> Option<Self> {
        let region = sdk.region()?.as_ref().to_owned();
        let url = match sdk.endpoint_url() {
            Some(url) => url.to_owned(),
            None => format!("https://dynamodb.{region}.{}", domain(&region)),
        };
        let url = reqwest::Url::parse(&url).ok()?;
        let host = match (url.host_str()?, url.port()) {
            (host, Some(port)) => format!("{host}:{port}"),
            (host, None) => host.to_owned(),
        };
        let retry = sdk.retry_config();
        let timeouts = sdk.timeout_config();
        Some(Self {
            http,
            host,
            url,
            region,
            credentials: sdk.credentials_provider()?,
            cached: std::sync::Mutex::new(None),
            attempts: retry.map_or(1, |r| r.max_attempts()).max(1),
            initial_backoff: retry.map_or(Duration::ZERO, |r| r.initial_backoff()),
            max_backoff: retry.map_or(Duration::ZERO, |r| r.max_backoff()),
            attempt_timeout: timeouts.and_then(|t| t.operation_attempt_timeout()),
            operation_timeout: timeouts.and_then(|t| t.operation_timeout()),
        })
    }

    /// One transaction of `items` under `token`, attempted as the SDK would attempt it.
    pub(super) async fn transact(
        &self,
        items: &[TransactWriteItem],
        token: &str,
    ) -> Result<(), Cancel> {
        let body = serde_json::to_vec(&Request { items, token })
            .map_err(|_| other("construction_failure"))?;
        let attempts = self.attempts(&body);
        match self.operation_timeout {
            Some(limit) => tokio::time::timeout(limit, attempts)
                .await
                .unwrap_or_else(|_| Err(other("timeout"))),
            None => attempts.await,
        }
    }

    async fn attempts(&self, body: &[u8]) -> Result<(), Cancel> {
        let mut attempt = 1;
        loop {
            match self.attempt(body).await {
                Answer::Retry(_) if attempt < self.attempts => {
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                }
                Answer::Retry(cancel) => return Err(cancel),
                Answer::Done(outcome) => return outcome,
            }
        }
    }

    /// The SDK standard strategy's backoff before attempt `attempt + 1`: a random share of
    /// the initial backoff doubled per attempt, at most the maximum.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .initial_backoff
            .saturating_mul(1 << (attempt - 1).min(16))
            .min(self.max_backoff);
        let share = f64::from(getrandom::u32().unwrap_or(u32::MAX / 2)) / f64::from(u32::MAX);
        ceiling.mul_f64(share)
    }

    async fn attempt(&self, body: &[u8]) -> Answer {
        let Some(credentials) = self.credentials().await else {
            return Answer::Done(Err(other("credentials")));
        };
        let signed = sign(&credentials, &self.region, &self.host, body);
        let mut request = self
            .http
            .post(self.url.clone())
            .header(http::header::CONTENT_TYPE, sigv4::CONTENT_TYPE)
            .header("x-amz-target", TARGET)
            .header("x-amz-date", signed.amz_date)
            .header(http::header::AUTHORIZATION, signed.authorization)
            .body(body.to_vec());
        if let Some(token) = credentials.session_token() {
            request = request.header("x-amz-security-token", token);
        }
        if let Some(limit) = self.attempt_timeout {
            request = request.timeout(limit);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return transport(&e),
        };
        let status = response.status();
        let header_code = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(':').next().unwrap_or(v).to_owned());
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(e) => return transport(&e),
        };
        if status.is_success() {
            return Answer::Done(Ok(()));
        }
        let error: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
        let code = error
            .kind
            .as_deref()
            .map(|kind| kind.rsplit('#').next().unwrap_or(kind).to_owned())
            .or(header_code)
            .unwrap_or_else(|| "unknown".to_owned());
        if code == "TransactionCanceledException" {
            return Answer::Done(Err(cancellation(
                &error.reasons,
                |r| r.code.as_deref(),
                |r| {
                    let item = r.item.as_ref()?;
                    item.iter()
                        .map(|(name, value)| Some((name.clone(), attribute(value)?)))
                        .collect()
                },
            )));
        }
        let cancel = match code.as_str() {
            "TransactionInProgressException" => Cancel::Conflict,
            _ => other(&code),
        };
        match status.is_server_error() || RETRIED.contains(&code.as_str()) {
            true => Answer::Retry(cancel),
            false => Answer::Done(Err(cancel)),
        }
    }

    async fn credentials(&self) -> Option<Credentials> {
        let fresh = |c: &Credentials| {
            c.expiry()
                .is_none_or(|expiry| expiry > SystemTime::now() + REFRESH_BEFORE_EXPIRY)
        };
        if let Some(cached) = self.cache().as_ref().filter(|c| fresh(c)) {
            return Some(cached.clone());
        }
        let credentials = self.credentials.provide_credentials().await.ok()?;
        *self.cache() = Some(credentials.clone());
        Some(credentials)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Option<Credentials>> {
        // A panic while holding it cannot leave a half-written `Option`.
        self.cached
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What an attempt came to: the outcome, or a failure worth another attempt while the
/// budget lasts (reported if it does not).
enum Answer {
    Done(Result<(), Cancel>),
    Retry(Cancel),
}

fn other(code: &str) -> Cancel {
    Cancel::Other(StoreError::Aws {
        operation: OPERATION,
        code: code.to_owned(),
    })
}

/// A failure to send or to read the answer: the SDK's `timeout` or `dispatch_failure`, both
/// retried (the token makes a repeat of an applied transaction harmless).
fn transport(e: &reqwest::Error) -> Answer {
    Answer::Retry(other(match e.is_timeout() {
        true => "timeout",
        false => "dispatch_failure",
    }))
}

/// The partition's DNS suffix for a region, for the default endpoint.
fn domain(region: &str) -> &'static str {
    match region.starts_with("cn-") {
        true => "amazonaws.com.cn",
        false => "amazonaws.com",
    }
}

fn sign(credentials: &Credentials, region: &str, host: &str, body: &[u8]) -> sigv4::Signed {
    let identity = sigv4::Identity {
        access_key_id: credentials.access_key_id(),
        secret_access_key: credentials.secret_access_key(),
        session_token: credentials.session_token(),
    };
    let request = sigv4::Request {
        host,
        target: TARGET,
        body,
    };
    sigv4::sign(&identity, region, "dynamodb", &request, SystemTime::now())
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(rename = "__type")]
    kind: Option<String>,
    #[serde(rename = "CancellationReasons", default)]
    reasons: Vec<Reason>,
}

#[derive(Deserialize)]
struct Reason {
    #[serde(rename = "Code")]
    code: Option<String>,
    #[serde(rename = "Item")]
    item: Option<HashMap<String, serde_json::Value>>,
}

/// An attribute value in DynamoDB's JSON (`{"S": "…"}`), or none when it is not one.
fn attribute(value: &serde_json::Value) -> Option<AttributeValue> {
    let (kind, inner) = value.as_object()?.iter().next()?;
    let strings = || -> Option<Vec<String>> {
        inner
            .as_array()?
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let blob = |v: &serde_json::Value| -> Option<Blob> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v.as_str()?)
            .ok()?;
        Some(Blob::new(bytes))
    };
    Some(match kind.as_str() {
        "S" => AttributeValue::S(inner.as_str()?.to_owned()),
        "N" => AttributeValue::N(inner.as_str()?.to_owned()),
        "B" => AttributeValue::B(blob(inner)?),
        "BOOL" => AttributeValue::Bool(inner.as_bool()?),
        "NULL" => AttributeValue::Null(inner.as_bool()?),
        "SS" => AttributeValue::Ss(strings()?),
        "NS" => AttributeValue::Ns(strings()?),
        "BS" => AttributeValue::Bs(inner.as_array()?.iter().map(blob).collect::<Option<_>>()?),
        "L" => AttributeValue::L(
            inner
                .as_array()?
                .iter()
                .map(attribute)
                .collect::<Option<_>>()?,
        ),
        "M" => AttributeValue::M(
            inner
                .as_object()?
                .iter()
                .map(|(k, v)| Some((k.clone(), attribute(v)?)))
                .collect::<Option<_>>()?,
        ),
        _ => return None,
    })
}

/// The request as DynamoDB's JSON protocol writes it.
#[derive(Serialize)]
struct Request<'a> {
    #[serde(rename = "TransactItems", serialize_with = "entries")]
    items: &'a [TransactWriteItem],
    #[serde(rename = "ClientRequestToken")]
    token: &'a str,
}

fn entries<S: Serializer>(items: &&[TransactWriteItem], s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(items.len()))?;
    for item in *items {
        seq.serialize_element(&Entry::of(item).ok_or_else(|| {
            S::Error::custom("a transaction entry with no Put, Update, Delete or ConditionCheck")
        })?)?;
    }
    seq.end()
}

/// One entry: `{"Put": {...}}` and so on.
#[derive(Serialize)]
enum Entry<'a> {
    Put(Write<'a>),
    Update(Write<'a>),
    Delete(Write<'a>),
    ConditionCheck(Write<'a>),
}

/// The fields of the four kinds of entry (each kind sets its own).
#[derive(Serialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Write<'a> {
    table_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    item: Option<Item<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<Item<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    update_expression: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    condition_expression: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expression_attribute_names: Option<&'a HashMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expression_attribute_values: Option<Item<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    return_values_on_condition_check_failure: Option<&'a str>,
}

impl<'a> Entry<'a> {
    fn of(item: &'a TransactWriteItem) -> Option<Self> {
        if let Some(put) = item.put() {
            return Some(Entry::Put(Write {
                table_name: put.table_name(),
                item: Some(Item(put.item())),
                condition_expression: put.condition_expression(),
                expression_attribute_names: put.expression_attribute_names(),
                expression_attribute_values: put.expression_attribute_values().map(Item),
                return_values_on_condition_check_failure: put
                    .return_values_on_condition_check_failure()
                    .map(|r| r.as_str()),
                ..Write::default()
            }));
        }
        if let Some(update) = item.update() {
            return Some(Entry::Update(Write {
                table_name: update.table_name(),
                key: Some(Item(update.key())),
                update_expression: Some(update.update_expression()),
                condition_expression: update.condition_expression(),
                expression_attribute_names: update.expression_attribute_names(),
                expression_attribute_values: update.expression_attribute_values().map(Item),
                return_values_on_condition_check_failure: update
                    .return_values_on_condition_check_failure()
                    .map(|r| r.as_str()),
                ..Write::default()
            }));
        }
        if let Some(delete) = item.delete() {
            return Some(Entry::Delete(Write {
                table_name: delete.table_name(),
                key: Some(Item(delete.key())),
                condition_expression: delete.condition_expression(),
                expression_attribute_names: delete.expression_attribute_names(),
                expression_attribute_values: delete.expression_attribute_values().map(Item),
                return_values_on_condition_check_failure: delete
                    .return_values_on_condition_check_failure()
                    .map(|r| r.as_str()),
                ..Write::default()
            }));
        }
        let check = item.condition_check()?;
        Some(Entry::ConditionCheck(Write {
            table_name: check.table_name(),
            key: Some(Item(check.key())),
            condition_expression: Some(check.condition_expression()),
            expression_attribute_names: check.expression_attribute_names(),
            expression_attribute_values: check.expression_attribute_values().map(Item),
            return_values_on_condition_check_failure: check
                .return_values_on_condition_check_failure()
                .map(|r| r.as_str()),
            ..Write::default()
        }))
    }
}

/// An item (or a key, or expression values): attribute name → value.
struct Item<'a>(&'a HashMap<String, AttributeValue>);

impl Serialize for Item<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, &Value(value))?;
        }
        map.end()
    }
}

struct Value<'a>(&'a AttributeValue);
struct Values<'a>(&'a [AttributeValue]);
struct Binary<'a>(&'a Blob);
struct Binaries<'a>(&'a [Blob]);

impl Serialize for Value<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        match self.0 {
            AttributeValue::S(v) => map.serialize_entry("S", v)?,
            AttributeValue::N(v) => map.serialize_entry("N", v)?,
            AttributeValue::B(v) => map.serialize_entry("B", &Binary(v))?,
            AttributeValue::Bool(v) => map.serialize_entry("BOOL", v)?,
            AttributeValue::Null(v) => map.serialize_entry("NULL", v)?,
            AttributeValue::Ss(v) => map.serialize_entry("SS", v)?,
            AttributeValue::Ns(v) => map.serialize_entry("NS", v)?,
            AttributeValue::Bs(v) => map.serialize_entry("BS", &Binaries(v))?,
            AttributeValue::L(v) => map.serialize_entry("L", &Values(v))?,
            AttributeValue::M(v) => map.serialize_entry("M", &Item(v))?,
            _ => return Err(S::Error::custom("an attribute value of an unknown type")),
        }
        map.end()
    }
}

impl Serialize for Values<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(Value))
    }
}

impl Serialize for Binary<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(self.0.as_ref()))
    }
}

impl Serialize for Binaries<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(Binary))
    }
}
