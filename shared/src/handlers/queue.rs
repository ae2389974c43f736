//! `GET /queue` and `GET /queue/summary`: what is pending, for operators and integrators.
//! Both read the due index, which holds exactly the outbound messages that are not final.

use std::collections::BTreeMap;

use lambda_http::{Request, RequestExt};
use serde::Serialize;

use crate::error::ApiError;
use crate::phone::Address;
use crate::pipeline::PipelineState;
use crate::queue::JobQueue;
use crate::schedule::ZoneSource;
use crate::store::{Message, PageKey, QueueFilter, Store};
use crate::time::Timestamp;

pub const ROUTE: &str = "/queue";
pub const SUMMARY_ROUTE: &str = "/queue/summary";
const DEFAULT_LIMIT: i32 = 50;
const MAX_LIMIT: i32 = 200;

/// One pending message as listed.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueItem {
    pub message_id: String,
    pub to: String,
    pub channel: crate::phone::Channel,
    pub status: PipelineState,
    pub reason: Option<String>,
    pub send_at: Option<Timestamp>,
    pub not_after: Option<Timestamp>,
    pub time_zone: Option<String>,
    pub time_zone_source: Option<ZoneSource>,
    pub urgent: bool,
    pub attempts: u32,
    pub created_at: Timestamp,
    pub workflow_type: Option<String>,
    pub workflow_id: Option<String>,
    /// The event rule, version and event that made it, if a rule did.
    pub cause: Option<crate::rules::Cause>,
}

impl From<&Message> for QueueItem {
    fn from(m: &Message) -> Self {
        Self {
            message_id: m.message_id.clone(),
            to: m.to_e164.as_str().to_owned(),
            channel: m.channel,
            status: m.status,
            reason: m.status_reason.clone(),
            send_at: m.send_at,
            not_after: m.not_after,
            time_zone: m.time_zone.clone(),
            time_zone_source: m.time_zone_source,
            urgent: m.urgent,
            attempts: m.attempts,
            created_at: m.created_at,
            workflow_type: m.workflow_type.clone(),
            workflow_id: m.workflow_id.clone(),
            cause: m.cause.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueuePage {
    pub messages: Vec<QueueItem>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueSummary {
    /// Pending messages per state (`scheduled`, `deferred`, `queued`, `sending`).
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, u64>))]
    pub counts: BTreeMap<&'static str, u64>,
    /// The earliest due time of a scheduled, deferred or queued message.
    pub next_due: Option<Timestamp>,
    /// How long the oldest queued message has been due.
    pub oldest_queued_age_seconds: Option<u64>,
    /// Deferred because of the recipient's quiet hours.
    pub deferred_by_quiet_hours: u64,
    /// Jobs in the send dead-letter queue (none when it is not configured).
    pub dead_letter_depth: Option<u64>,
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message)
}

/// The listing's filter, from the query string.
fn filter(req: &Request) -> Result<(QueueFilter, i32, Option<String>), ApiError> {
    let query = req.query_string_parameters();
    let mut filter = QueueFilter::default();
    if let Some(states) = query.first("status") {
        for name in states.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match PipelineState::parse(name) {
                Some(state) if state.is_pending() || state == PipelineState::Sending => {
                    filter.states.push(state)
                }
                _ => {
                    return Err(bad(
                        "invalid_status",
                        "status must be scheduled, deferred, queued or sending (comma-separated)",
                    ))
                }
            }
        }
    }
    if let Some(phone) = query.first("phone") {
        let address =
            Address::parse(phone).map_err(|e| bad("invalid_phone_number", e.to_string()))?;
        filter.phone = Some(address.e164);
    }
    let instant = |name: &'static str| crate::http::instant_param(query.first(name), name);
    filter.due_from = instant("due_after")?;
    filter.due_to = instant("due_before")?;
    let limit = crate::http::page_limit(query.first("limit"), DEFAULT_LIMIT, MAX_LIMIT)?;
    Ok((filter, limit, query.first("cursor").map(str::to_owned)))
}

/// `GET /queue`.
pub async fn list(store: &Store, cursor_key: &str, req: &Request) -> Result<QueuePage, ApiError> {
    let (filter, limit, cursor) = filter(req)?;
    let start = cursor.map(|c| open_cursor(cursor_key, &c)).transpose()?;
    let (messages, next) = store
        .pending_page(&filter, limit, start)
        .await
        .map_err(|e| ApiError::Unavailable(e.into()))?;
    Ok(QueuePage {
        messages: messages.iter().map(QueueItem::from).collect(),
        next_cursor: next.map(|k| seal_cursor(cursor_key, &k)),
    })
}

/// `GET /queue/summary`: reads the whole index (it holds only what is not final).
pub async fn summary(
    store: &Store,
    dead_letters: Option<&JobQueue>,
    now: Timestamp,
) -> Result<QueueSummary, ApiError> {
    let mut summary = QueueSummary::default();
    let mut oldest_queued: Option<Timestamp> = None;
    let mut start = None;
    loop {
        let (messages, next) = store
            .pending_page(&QueueFilter::default(), 1000, start)
            .await
            .map_err(|e| ApiError::Unavailable(e.into()))?;
        for m in &messages {
            *summary.counts.entry(m.status.as_str()).or_default() += 1;
            let due = m.send_at;
            if m.status.is_pending() {
                summary.next_due = earliest(summary.next_due, due);
            }
            if m.status == PipelineState::Queued {
                oldest_queued = earliest(oldest_queued, due);
            }
            if m.status == PipelineState::Deferred
                && m.status_reason.as_deref() == Some("quiet_hours")
            {
                summary.deferred_by_quiet_hours += 1;
            }
        }
        start = next;
        if start.is_none() {
            break;
        }
    }
    summary.oldest_queued_age_seconds = oldest_queued.map(|at| at.until(now).as_secs());
    if let Some(dlq) = dead_letters {
        summary.dead_letter_depth = Some(
            dlq.depth()
                .await
                .map_err(|e| ApiError::Unavailable(e.into()))?,
        );
    }
    Ok(summary)
}

fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The index position as a cursor of the `queue` listing: opaque and unforgeable.
fn seal_cursor(key: &str, position: &PageKey) -> String {
    crate::cursor::seal_page_key(key, "queue", position)
}

fn open_cursor(key: &str, cursor: &str) -> Result<PageKey, ApiError> {
    crate::cursor::open_page_key(key, "queue", cursor).ok_or_else(|| {
        bad(
            "invalid_cursor",
            "the cursor is not one this listing issued",
        )
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::types::AttributeValue;
    use base64::Engine;

    use super::*;

    #[test]
    fn queue_cursors_round_trip_and_refuse_tampering() {
        let position: PageKey = HashMap::from([
            ("pk".to_owned(), AttributeValue::S("CONV#sms#+1".into())),
            ("gsi2pk".to_owned(), AttributeValue::S("DUE#x#1".into())),
        ]);
        let sealed = seal_cursor("k", &position);
        assert_eq!(open_cursor("k", &sealed).unwrap(), position);
        assert!(open_cursor("other", &sealed).is_err());
        let (_, mac) = sealed.split_once('.').unwrap();
        let forged = format!(
            "{}.{mac}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"pk":"CONV#sms#+2"}"#)
        );
        assert!(open_cursor("k", &forged).is_err());
        assert!(open_cursor("k", "junk").is_err());
    }
}
