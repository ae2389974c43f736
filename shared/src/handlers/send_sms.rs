//! `POST /sms/send`: validate, refuse opted-out recipients, write the intent, enqueue, 202.
//! With an `Idempotency-Key`, a retry returns the first answer and creates nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tracing::{field, info, info_span, Instrument};

use super::{request_id, ColdStart, InitError};
use crate::auth::authorize;
use crate::config::required;
use crate::error::ApiError;
use crate::http::{body_bytes, header_str, json_response};
use crate::metrics::Metrics;
use crate::phone::Address;
use crate::secrets::SecretStore;
use crate::segments::{self, Segments};
use crate::store::{CreateOutcome, Idempotency, NewOutbound, Store};
use crate::telemetry::Pseudonymizer;

pub const ROUTE: &str = "/sms/send";
const FUNCTION: &str = "send-sms";
/// Twilio's limit for one message body.
pub const MAX_BODY_CHARS: usize = 1600;
const MAX_MEDIA: usize = 10;
/// How long an idempotency key is remembered.
const IDEMPOTENCY_TTL_SECONDS: i64 = 24 * 3600;
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// What the send worker receives on the queue.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SendJob {
    pub message_id: String,
    pub pk: String,
    pub sk: String,
}

pub struct SendSmsHandler {
    store: Store,
    secrets: Arc<SecretStore>,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    pseudonyms: Pseudonymizer,
}

struct Valid {
    to: Address,
    body: String,
    conversation_id: Option<String>,
    workflow_type: Option<String>,
    workflow_id: Option<String>,
    media_urls: Vec<String>,
    segments: Segments,
}

impl SendSmsHandler {
    pub fn new(
        store: Store,
        secrets: Arc<SecretStore>,
        sqs: aws_sdk_sqs::Client,
        queue_url: String,
    ) -> Self {
        let pseudonyms = Pseudonymizer::new(&secrets.current().log_hmac_key);
        Self {
            store,
            secrets,
            sqs,
            queue_url,
            pseudonyms,
        }
    }

    pub async fn from_env() -> Result<Self, InitError> {
        let queue_url = required("SEND_QUEUE_URL")?;
        let cold = ColdStart::load().await?;
        let sqs = aws_sdk_sqs::Client::new(&cold.sdk);
        Ok(Self::new(cold.store, cold.secrets, sqs, queue_url))
    }

    pub async fn handle(&self, req: Request) -> Response<Body> {
        let span = info_span!("send_sms", request_id = %request_id(&req), message_id = field::Empty, phone = field::Empty);
        async {
            self.process(&req)
                .await
                .unwrap_or_else(ApiError::into_response)
        }
        .instrument(span)
        .await
    }

    async fn process(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        authorize(
            header_str(req, "authorization"),
            &self.secrets.current().api_keys,
        )?;
        let raw = body_bytes(req);
        if raw.len() > MAX_REQUEST_BYTES {
            return Err(ApiError::PayloadTooLarge {
                limit: MAX_REQUEST_BYTES,
            });
        }
        let request: Value = serde_json::from_slice(raw)
            .map_err(|_| ApiError::bad_request("invalid_json", "the body must be a JSON object"))?;
        let key = idempotency_key(req)?;
        let valid = validate(&request)?;
        tracing::Span::current().record("phone", self.pseudonyms.pseudonym(&valid.to.e164));
        let request_hash = hash(&request);

        if let Some(key) = key {
            if let Some(record) = self.store.idempotency(key).await.map_err(unavailable)? {
                return self.replay(record, &request_hash).await;
            }
        }
        if self
            .store
            .consent(&valid.to.e164)
            .await
            .map_err(unavailable)?
            .is_some_and(|c| c.opted_out)
        {
            return Err(ApiError::Conflict {
                code: "recipient_opted_out",
                message:
                    "the recipient has opted out of messages (they must text START to opt back in)"
                        .into(),
            });
        }
        let existing = self
            .store
            .conversation(valid.to.channel, &valid.to.e164)
            .await
            .map_err(unavailable)?;
        let conversation_id = match (&existing, &valid.conversation_id) {
            (Some(c), Some(asked)) if &c.conversation_id != asked => return Err(mismatch()),
            (None, Some(_)) => return Err(mismatch()),
            (Some(c), _) => c.conversation_id.clone(),
            (None, None) => ulid::Ulid::new().to_string(),
        };

        let message_id = ulid::Ulid::new().to_string();
        tracing::Span::current().record("message_id", message_id.as_str());
        let response = json!({
            "message_id": message_id,
            "conversation_id": conversation_id,
            "status": "queued",
            "segments": valid.segments.count,
            "encoding": valid.segments.encoding.as_str(),
        });
        let new = NewOutbound {
            message_id: message_id.clone(),
            conversation_id,
            to: &valid.to,
            body: &valid.body,
            media_urls: &valid.media_urls,
            workflow_type: valid.workflow_type.as_deref(),
            workflow_id: valid.workflow_id.as_deref(),
            segments: valid.segments,
            created_at: crate::time::now_rfc3339(),
            idempotency: key.map(|key| Idempotency {
                key,
                request_hash: request_hash.clone(),
                response: response.to_string(),
                expires_at: time::OffsetDateTime::now_utc().unix_timestamp()
                    + IDEMPOTENCY_TTL_SECONDS,
            }),
        };
        match self
            .store
            .create_outbound(&new)
            .await
            .map_err(unavailable)?
        {
            CreateOutcome::Replay(record) => self.replay(record, &request_hash).await,
            CreateOutcome::Created => {
                let pk = crate::store::keys::conversation_pk(valid.to.channel, &valid.to.e164);
                let job = SendJob {
                    message_id,
                    pk,
                    sk: crate::store::keys::message_sk(&new.message_id),
                };
                self.enqueue(&job).await?;
                info!(
                    segments = valid.segments.count,
                    encoding = valid.segments.encoding.as_str(),
                    "outbound message queued"
                );
                Metrics::new(FUNCTION).count("Queued", 1).emit();
                Ok(json_response(StatusCode::ACCEPTED, &response))
            }
        }
    }

    /// The first answer for a reused key — after re-enqueueing the message if it has not been
    /// picked up yet, which mends a first attempt that stored the message but failed to enqueue
    /// it (the worker's claim makes a second enqueue harmless).
    async fn replay(
        &self,
        record: crate::store::IdempotencyRecord,
        request_hash: &str,
    ) -> Result<Response<Body>, ApiError> {
        if record.request_hash != request_hash {
            return Err(ApiError::Unprocessable {
                code: "idempotency_key_reused",
                message: "this Idempotency-Key was used with a different request body".into(),
            });
        }
        let message = self
            .store
            .message(&record.message_pk, &record.message_sk)
            .await
            .map_err(unavailable)?;
        if let Some(m) = message.filter(|m| m.status == "queued") {
            self.enqueue(&SendJob {
                message_id: m.message_id,
                pk: record.message_pk,
                sk: record.message_sk,
            })
            .await?;
        }
        info!("idempotent replay");
        let body: Value =
            serde_json::from_str(&record.response).map_err(|e| ApiError::Internal(e.into()))?;
        Ok(json_response(StatusCode::ACCEPTED, &body))
    }

    async fn enqueue(&self, job: &SendJob) -> Result<(), ApiError> {
        let body = serde_json::to_string(job).map_err(|e| ApiError::Internal(e.into()))?;
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| ApiError::Unavailable(Box::new(aws_sdk_sqs::Error::from(e))))?;
        Ok(())
    }
}

fn unavailable(e: crate::store::StoreError) -> ApiError {
    ApiError::Unavailable(e.into())
}

fn mismatch() -> ApiError {
    ApiError::Unprocessable {
        code: "conversation_mismatch",
        message: "conversation_id is not the conversation of this recipient".into(),
    }
}

fn idempotency_key(req: &Request) -> Result<Option<&str>, ApiError> {
    match header_str(req, "idempotency-key") {
        None => Ok(None),
        Some(k) if !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(k))
        }
        Some(_) => Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )),
    }
}

/// SHA-256 of the request in canonical form (object keys sorted at every depth), so equal
/// requests hash equal whatever their key order. serde_json's map order cannot be relied on:
/// a dependency in the workspace turns on `preserve_order`.
fn hash(request: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(request, &mut canonical);
    Sha256::digest(canonical.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn validate(request: &Value) -> Result<Valid, ApiError> {
    let Some(obj) = request.as_object() else {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the body must be a JSON object",
        ));
    };
    let mut fields = BTreeMap::new();
    const KNOWN: [&str; 6] = [
        "to",
        "body",
        "conversation_id",
        "workflow_type",
        "workflow_id",
        "media_urls",
    ];
    for key in obj.keys().filter(|k| !KNOWN.contains(&k.as_str())) {
        fields.insert("request", format!("unknown field `{key}`"));
    }
    let to = match text(obj, "to", &mut fields) {
        Some(t) => Address::parse(t)
            .map_err(|e| fields.insert("to", e.to_string()))
            .ok(),
        None => {
            fields.entry("to").or_insert_with(|| "required".into());
            None
        }
    };
    let body = text(obj, "body", &mut fields).map(str::to_owned);
    match &body {
        Some(b) if b.trim().is_empty() => {
            fields.insert("body", "must not be empty".into());
        }
        Some(b) if b.chars().count() > MAX_BODY_CHARS => {
            fields.insert(
                "body",
                format!("must be at most {MAX_BODY_CHARS} characters"),
            );
        }
        None => {
            fields.entry("body").or_insert_with(|| "required".into());
        }
        _ => {}
    }
    let short = |name: &'static str, max: usize, fields: &mut BTreeMap<&'static str, String>| {
        let value = text(obj, name, fields).map(str::to_owned);
        if value
            .as_ref()
            .is_some_and(|v| v.is_empty() || v.len() > max)
        {
            fields.insert(name, format!("must be 1 to {max} characters"));
        }
        value
    };
    let conversation_id = short("conversation_id", 64, &mut fields);
    let workflow_type = short("workflow_type", 64, &mut fields);
    let workflow_id = short("workflow_id", 128, &mut fields);
    let media_urls = match obj.get("media_urls") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let urls: Vec<String> = items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            if urls.len() != items.len() || urls.iter().any(|u| !u.starts_with("https://")) {
                fields.insert("media_urls", "must be a list of https:// URLs".into());
            } else if urls.len() > MAX_MEDIA {
                fields.insert("media_urls", format!("at most {MAX_MEDIA} items"));
            }
            urls
        }
        Some(_) => {
            fields.insert("media_urls", "must be a list of https:// URLs".into());
            Vec::new()
        }
    };
    match (to, body) {
        (Some(to), Some(body)) if fields.is_empty() => Ok(Valid {
            segments: segments::count(&body),
            to,
            body,
            conversation_id,
            workflow_type,
            workflow_id,
            media_urls,
        }),
        _ => Err(ApiError::Validation { fields }),
    }
}

/// A string field; any other JSON type is a field error.
fn text<'a>(
    obj: &'a Map<String, Value>,
    name: &'static str,
    fields: &mut BTreeMap<&'static str, String>,
) -> Option<&'a str> {
    match obj.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            fields.insert(name, "must be a string".into());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(request: Value) -> BTreeMap<&'static str, String> {
        match validate(&request) {
            Err(ApiError::Validation { fields }) => fields,
            other => panic!("expected a validation error, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn each_invalid_field_is_named() {
        let f = fields(json!({"to": "nope", "body": ""}));
        assert!(f.contains_key("to") && f.contains_key("body"), "{f:?}");
        let f = fields(json!({"body": "x".repeat(1601)}));
        assert_eq!(f["to"], "required");
        assert!(f["body"].contains("1600"));
        let f = fields(
            json!({"to": "+14155552671", "body": "hi", "media_urls": ["http://x"], "extra": 1}),
        );
        assert!(
            f.contains_key("media_urls") && f.contains_key("request"),
            "{f:?}"
        );
        let f = fields(json!({"to": 14155552671u64, "body": "hi"}));
        assert_eq!(f["to"], "must be a string");
    }

    #[test]
    fn a_valid_request_is_normalized_and_counted() {
        let v = validate(&json!({"to": "whatsapp:(415) 555-2671", "body": "x".repeat(1600)}))
            .ok()
            .unwrap();
        assert_eq!(v.to.e164.as_str(), "+14155552671");
        assert_eq!(v.to.channel, crate::phone::Channel::Whatsapp);
        assert_eq!(v.segments.count, 11);
    }

    #[test]
    fn the_request_hash_ignores_key_order() {
        let a: Value = serde_json::from_str(r#"{"to":"+14155552671","body":"hi"}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"body":"hi","to":"+14155552671"}"#).unwrap();
        assert_eq!(hash(&a), hash(&b));
        assert_ne!(
            hash(&a),
            hash(&json!({"to": "+14155552671", "body": "hi!"}))
        );
        let nested_a: Value = serde_json::from_str(r#"{"m":[{"x":1,"y":2}],"to":"1"}"#).unwrap();
        let nested_b: Value = serde_json::from_str(r#"{"to":"1","m":[{"y":2,"x":1}]}"#).unwrap();
        assert_eq!(hash(&nested_a), hash(&nested_b));
    }
}
