//! `GET /conversations/{phone_number}` and `GET /messages/{message_id}`: the read side for
//! integrating services. Any written form of a number finds its conversation; pages are
//! newest first behind opaque cursors that are signed and bound to their conversation, so a
//! forged, altered or foreign cursor is a 400, never a confusing page.

use std::sync::Arc;

use http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use tracing::{info_span, Instrument};

use super::{api, request_id, ColdStart, InitError};
use crate::access::{Access, Caller, Scope};
use crate::delivery::DeliveryStatus;
use crate::error::ApiError;
use crate::http::json_response;
use crate::language::Language;
use crate::phone::{Address, Channel};
use crate::pipeline::PipelineState;
use crate::queue::JobQueue;
use crate::schedule::ZoneSource;
use crate::secrets::SecretStore;
use crate::store::{
    keys, Conversation, Direction, ErasedMessage, Message, MessageLookup, StatusChange, Store,
};
use crate::telemetry::Pseudonymizer;
use crate::time::Timestamp;

pub const CONVERSATION_ROUTE: &str = "/conversations/{phone_number}";
pub const MESSAGE_ROUTE: &str = "/messages/{message_id}";
pub const DEFAULT_LIMIT: i32 = 20;
pub const MAX_LIMIT: i32 = 100;

pub struct ConversationsHandler {
    store: Store,
    secrets: Arc<SecretStore>,
    access: Access,
    /// The send dead-letter queue, for the queue summary's depth.
    dead_letters: Option<JobQueue>,
}

impl ConversationsHandler {
    pub fn new(store: Store, secrets: Arc<SecretStore>) -> Self {
        Self {
            access: Access::new(store.clone(), secrets.clone()),
            store,
            secrets,
            dead_letters: None,
        }
    }

    pub fn with_dead_letters(mut self, queue: JobQueue) -> Self {
        self.dead_letters = Some(queue);
        self
    }

    pub async fn from_env() -> Result<Self, InitError> {
        let dlq_url = crate::config::optional("SEND_DLQ_URL");
        let cold = ColdStart::load().await?;
        let handler = Self::new(cold.store, cold.secrets);
        Ok(match dlq_url {
            Some(url) => {
                handler.with_dead_letters(JobQueue::new(aws_sdk_sqs::Client::new(&cold.sdk), url))
            }
            None => handler,
        })
    }

    pub async fn handle(&self, req: Request) -> Response<Body> {
        let span = info_span!("conversations", request_id = %request_id(&req));
        let path = req.raw_http_path().trim_end_matches('/');
        let scope = if super::keys::serves(path) || path.starts_with(super::contacts::PREFIX) {
            Scope::Admin
        } else {
            Scope::Read
        };
        api::call(&self.access, &req, Some(scope), |caller| {
            self.process(&req, caller)
        })
        .instrument(span)
        .await
    }

    async fn process(&self, req: &Request, caller: Caller) -> Result<Response<Body>, ApiError> {
        let path = req.raw_http_path();
        if super::keys::serves(path) {
            return super::keys::route(&self.store, req).await;
        }
        if path.starts_with(super::contacts::PREFIX) {
            let pseudonyms = Pseudonymizer::new(&self.secrets.current().log_hmac_key);
            return super::contacts::route(&self.store, &pseudonyms, &caller, req).await;
        }
        match path.trim_end_matches('/') {
            super::queue::ROUTE => {
                let key = self.secrets.current().cursor_key().to_owned();
                let page = super::queue::list(&self.store, &key, req).await?;
                return Ok(json_response(StatusCode::OK, &page));
            }
            super::inbox::ROUTE => {
                let key = self.secrets.current().cursor_key().to_owned();
                let listing = super::inbox::list(&self.store, &key, req).await?;
                return Ok(json_response(StatusCode::OK, &listing));
            }
            super::stats::ROUTE => {
                let stats =
                    super::stats::stats(&self.store, req, crate::time::Timestamp::now()).await?;
                return Ok(json_response(StatusCode::OK, &stats));
            }
            super::queue::SUMMARY_ROUTE => {
                let summary = super::queue::summary(
                    &self.store,
                    self.dead_letters.as_ref(),
                    crate::time::Timestamp::now(),
                )
                .await?;
                return Ok(json_response(StatusCode::OK, &summary));
            }
            _ => {}
        }
        let params = req.path_parameters();
        if let Some(phone) = params.first("phone_number") {
            return self.conversation(req, phone).await;
        }
        if let Some(id) = params.first("message_id") {
            return self.message(id).await;
        }
        Err(ApiError::NotFound {
            code: "not_found",
            message: "no such resource".into(),
        })
    }

    async fn conversation(&self, req: &Request, phone: &str) -> Result<Response<Body>, ApiError> {
        // Decoded again when still encoded (`%2B1415…`): callers and proxies differ on it.
        let decoded = match phone.contains('%') {
            true => crate::twilio::form::percent_decode(phone)
                .map_err(|e| ApiError::bad_request("invalid_phone_number", e.to_string()))?,
            false => phone.to_owned(),
        };
        let address = Address::parse(&decoded)
            .map_err(|e| ApiError::bad_request("invalid_phone_number", e.to_string()))?;
        let query = req.query_string_parameters();
        let limit = crate::http::page_limit(query.first("limit"), DEFAULT_LIMIT, MAX_LIMIT)?;
        let pk = keys::conversation_pk(address.channel, &address.e164);
        let key = self.secrets.current().cursor_key().to_owned();
        let after = query
            .first("cursor")
            .map(|c| open_cursor(&key, &pk, c))
            .transpose()?;

        let unavailable = |e: crate::store::StoreError| ApiError::Unavailable(e.into());
        let conversation = self
            .store
            .conversation(address.channel, &address.e164)
            .await
            .map_err(unavailable)?;
        let Some(conversation) = conversation else {
            return Err(ApiError::NotFound {
                code: "conversation_not_found",
                message: "there is no conversation with this number".into(),
            });
        };
        let consent = self
            .store
            .consent(&address.e164)
            .await
            .map_err(unavailable)?;
        let (messages, next) = self
            .store
            .messages_page(address.channel, &address.e164, limit, after.as_deref())
            .await
            .map_err(unavailable)?;
        let page = ConversationPage {
            conversation: ConversationView::of(&conversation, consent.as_ref()),
            messages: self.message_views(&messages).await?,
            next_cursor: next.map(|sk| seal_cursor(&key, &pk, &sk)),
        };
        Ok(json_response(StatusCode::OK, &page))
    }

    async fn message(&self, id: &str) -> Result<Response<Body>, ApiError> {
        if ulid::Ulid::from_string(id).is_err() {
            return Err(ApiError::bad_request(
                "invalid_message_id",
                "message ids are 26-character ULIDs",
            ));
        }
        let message = self
            .store
            .lookup_message(id)
            .await
            .map_err(|e| ApiError::Unavailable(e.into()))?
            .ok_or_else(|| ApiError::NotFound {
                code: "message_not_found",
                message: "there is no message with this id".into(),
            })?;
        let answer = match message {
            MessageLookup::Live(m) => MessageAnswer::Live(MessageDetail {
                message: self.message_view(&m).await?,
                erased: false,
                status_history: m.status_history,
                error_message: m.error_message,
                attempts: m.attempts,
            }),
            MessageLookup::Erased(m) => MessageAnswer::Erased(ErasedMessageView::of(&m)),
        };
        Ok(json_response(StatusCode::OK, &answer))
    }
}

/// A conversation as `GET /conversations/{phone_number}` shows it.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationView {
    pub conversation_id: String,
    pub channel: Channel,
    /// E.164.
    pub phone_number: String,
    pub tenant_id: Option<String>,
    pub workflow_type: Option<String>,
    pub workflow_id: Option<String>,
    pub language: Option<Language>,
    pub language_confidence: Option<f64>,
    pub created_at: String,
    pub last_message_at: String,
    pub last_activity_at: Option<String>,
    pub message_count: u64,
    pub inbound_count: u64,
    pub outbound_count: u64,
    /// The number's consent record; `null` when it never texted a keyword.
    pub consent: Option<ConsentView>,
}

#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentView {
    pub opted_out: bool,
    /// The keyword that made the current state (`STOP`, `START`…).
    pub keyword: String,
    pub updated_at: String,
}

impl ConversationView {
    fn of(c: &Conversation, consent: Option<&crate::store::Consent>) -> Self {
        Self {
            conversation_id: c.conversation_id.clone(),
            channel: c.channel,
            phone_number: c.phone.as_str().to_owned(),
            tenant_id: c.tenant_id.clone(),
            workflow_type: c.workflow_type.clone(),
            workflow_id: c.workflow_id.clone(),
            language: c.language,
            language_confidence: c.language_confidence,
            created_at: c.created_at.clone(),
            last_message_at: c.last_message_at.clone(),
            last_activity_at: c.last_activity_at.clone(),
            message_count: c.message_count,
            inbound_count: c.inbound_count,
            outbound_count: c.outbound_count,
            consent: consent.map(|c| ConsentView {
                opted_out: c.opted_out,
                keyword: c.keyword.clone(),
                updated_at: c.updated_at.clone(),
            }),
        }
    }
}

/// One page of a conversation, newest message first.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationPage {
    pub conversation: ConversationView,
    pub messages: Vec<MessageView>,
    /// The next (older) page's `cursor`; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A message as the API shows it, its body and media opened.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageView {
    pub message_id: String,
    pub direction: Direction,
    pub channel: Channel,
    pub body: String,
    pub media_urls: Vec<String>,
    pub twilio_sid: Option<String>,
    /// Parley's pipeline state (Twilio's is `delivery_status`).
    pub status: PipelineState,
    /// Why it is in its state, when that needs saying (`quiet_hours`, `api`, `not_after`…).
    pub status_reason: Option<String>,
    pub send_at: Option<Timestamp>,
    pub time_zone: Option<String>,
    pub time_zone_source: Option<ZoneSource>,
    pub urgent: bool,
    pub delivery_status: Option<DeliveryStatus>,
    /// Twilio's error code, when it failed.
    pub error_code: Option<String>,
    pub language: Language,
    pub created_at: Timestamp,
    pub workflow_type: Option<String>,
    pub workflow_id: Option<String>,
    /// The event rule that made it, if one did.
    pub cause: Option<crate::rules::Cause>,
}

impl MessageView {
    fn of(m: &Message, body: String, media_urls: Vec<String>) -> Self {
        Self {
            message_id: m.message_id.clone(),
            direction: m.direction,
            channel: m.channel,
            body,
            media_urls,
            twilio_sid: m.twilio_sid.clone(),
            status: m.status,
            status_reason: m.status_reason.clone(),
            send_at: m.send_at,
            time_zone: m.time_zone.clone(),
            time_zone_source: m.time_zone_source,
            urgent: m.urgent,
            delivery_status: m.delivery_status,
            error_code: m.error_code.clone(),
            language: m.language,
            created_at: m.created_at,
            workflow_type: m.workflow_type.clone(),
            workflow_id: m.workflow_id.clone(),
            cause: m.cause.clone(),
        }
    }
}

/// `GET /messages/{message_id}`: the message with its history.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageDetail {
    #[serde(flatten)]
    pub message: MessageView,
    /// Always `false` here; an erased message is an [`ErasedMessageView`].
    pub erased: bool,
    pub status_history: Vec<StatusChange>,
    pub error_message: Option<String>,
    pub attempts: u32,
}

/// What an erasure kept of a message: no body, media or number, flagged `erased`.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
// Closed, so that a live message can never also read as an erased one (and back).
#[serde(deny_unknown_fields)]
pub struct ErasedMessageView {
    pub message_id: String,
    pub direction: Direction,
    pub channel: Channel,
    /// Always `null`: the body was erased.
    pub body: Option<String>,
    /// Always empty.
    pub media_urls: Vec<String>,
    pub twilio_sid: Option<String>,
    pub status: PipelineState,
    pub status_reason: Option<String>,
    pub send_at: Option<Timestamp>,
    pub delivery_status: Option<DeliveryStatus>,
    pub error_code: Option<String>,
    pub language: Option<Language>,
    pub created_at: Timestamp,
    pub status_history: Vec<StatusChange>,
    pub attempts: u32,
    /// Always `true`.
    pub erased: bool,
    pub erased_at: String,
}

impl ErasedMessageView {
    fn of(m: &ErasedMessage) -> Self {
        Self {
            message_id: m.message_id.clone(),
            direction: m.direction,
            channel: m.channel,
            body: None,
            media_urls: Vec::new(),
            twilio_sid: m.twilio_sid.clone(),
            status: m.status,
            status_reason: m.status_reason.clone(),
            send_at: m.send_at,
            delivery_status: m.delivery_status,
            error_code: m.error_code.clone(),
            language: m.language,
            created_at: m.created_at,
            status_history: m.status_history.clone(),
            attempts: m.attempts,
            erased: true,
            erased_at: m.erased_at.clone(),
        }
    }
}

/// `GET /messages/{message_id}`: a live message, or what its erasure kept.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum MessageAnswer {
    Live(MessageDetail),
    Erased(ErasedMessageView),
}

impl ConversationsHandler {
    async fn message_views(&self, messages: &[Message]) -> Result<Vec<MessageView>, ApiError> {
        let mut out = Vec::with_capacity(messages.len());
        for m in messages {
            out.push(self.message_view(m).await?);
        }
        Ok(out)
    }

    /// A message as the API shows it, its body and media opened.
    async fn message_view(&self, m: &Message) -> Result<MessageView, ApiError> {
        let opened = async {
            Ok::<_, crate::store::StoreError>((
                self.store.body_of(m).await?,
                self.store.media_of(m).await?,
            ))
        };
        let (body, media_urls) = opened.await.map_err(|e| match e.unreadable() {
            true => ApiError::Internal(e.into()),
            false => ApiError::Unavailable(e.into()),
        })?;
        Ok(MessageView::of(m, body, media_urls))
    }
}

/// `base64url(sk).base64url(mac)`: opaque, and bound to the partition it pages.
pub(crate) fn seal_cursor(key: &str, pk: &str, sk: &str) -> String {
    crate::cursor::seal(key, pk, sk.as_bytes())
}

fn open_cursor(key: &str, pk: &str, cursor: &str) -> Result<String, ApiError> {
    open_cursor_of(key, pk, cursor, |sk| sk.starts_with(keys::MESSAGE_PREFIX))
}

/// The `sk` a cursor sealed for `pk`, if it is genuine and `accepts` it.
pub(crate) fn open_cursor_of(
    key: &str,
    pk: &str,
    cursor: &str,
    accepts: impl Fn(&str) -> bool,
) -> Result<String, ApiError> {
    crate::cursor::open(key, pk, cursor)
        .and_then(|sk| String::from_utf8(sk).ok())
        .filter(|sk| accepts(sk))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_cursor",
                "the cursor is not one this resource issued",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn cursors_round_trip_and_refuse_tampering_and_other_conversations() {
        let sealed = seal_cursor("k", "CONV#sms#+1", "MSG#01ABC");
        assert_eq!(
            open_cursor("k", "CONV#sms#+1", &sealed).unwrap(),
            "MSG#01ABC"
        );
        assert!(
            open_cursor("k", "CONV#sms#+2", &sealed).is_err(),
            "bound to its conversation"
        );
        assert!(open_cursor("other-key", "CONV#sms#+1", &sealed).is_err());
        let forged = format!(
            "{}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("MSG#01ZZZ"),
            sealed.split_once('.').unwrap().1
        );
        assert!(open_cursor("k", "CONV#sms#+1", &forged).is_err());
        for junk in ["", ".", "abc", "!!!.???", "TVNHIzAx"] {
            assert!(open_cursor("k", "CONV#sms#+1", junk).is_err(), "{junk}");
        }
    }
}
