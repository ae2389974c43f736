//! `GET /conversations`: the inbox — conversations by last activity, newest first, with the
//! flags an operator filters on (tenant known, pending messages, opted out) and unread counts;
//! `q` finds a number's conversations by any written form of it.

use lambda_http::{Request, RequestExt};
use serde::Serialize;

use crate::error::ApiError;
use crate::language::Language;
use crate::phone::{Address, Channel};
use crate::store::{Conversation, InboxFilter, Store};

pub const ROUTE: &str = "/conversations";
const DEFAULT_LIMIT: i32 = 25;
const MAX_LIMIT: i32 = 100;
const CURSOR_SCOPE: &str = "inbox";

/// One conversation as the inbox lists it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Serialize)]
pub struct InboxEntry {
    pub conversation_id: String,
    pub channel: Channel,
    pub phone_number: String,
    /// `None`: not (yet) linked to a tenant.
    pub tenant_id: Option<String>,
    pub language: Option<Language>,
    pub opted_out: bool,
    /// Inbound messages since an operator last read the thread.
    pub unread_count: u64,
    /// Outbound messages not final yet (scheduled, deferred, queued or sending).
    pub pending_count: usize,
    pub message_count: u64,
    pub last_message_at: String,
    pub created_at: String,
}

impl From<Conversation> for InboxEntry {
    fn from(c: Conversation) -> Self {
        Self {
            conversation_id: c.conversation_id,
            channel: c.channel,
            phone_number: c.phone.as_str().to_owned(),
            tenant_id: c.tenant_id,
            language: c.language,
            opted_out: c.opted_out,
            unread_count: c.unread_count,
            pending_count: c.pending_ids.len(),
            message_count: c.message_count,
            last_message_at: c.last_message_at,
            created_at: c.created_at,
        }
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Serialize)]
pub struct InboxListing {
    pub conversations: Vec<InboxEntry>,
    pub next_cursor: Option<String>,
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message)
}

/// `true`/`false`, or the two words a filter names its sides with.
fn flag(value: Option<&str>, name: &str, yes: &str, no: &str) -> Result<Option<bool>, ApiError> {
    match value {
        None | Some("") => Ok(None),
        Some(v) if v == yes || v == "true" => Ok(Some(true)),
        Some(v) if v == no || v == "false" => Ok(Some(false)),
        Some(_) => Err(bad(
            "invalid_filter",
            format!("{name} must be {yes} or {no}"),
        )),
    }
}

/// The inbox's filter, from the query string.
pub fn filter(req: &Request) -> Result<InboxFilter, ApiError> {
    let query = req.query_string_parameters();
    Ok(InboxFilter {
        known_tenant: flag(query.first("tenant"), "tenant", "known", "unknown")?,
        has_pending: flag(query.first("pending"), "pending", "true", "false")?,
        opted_out: flag(query.first("opted_out"), "opted_out", "true", "false")?,
    })
}

/// `GET /conversations`.
pub async fn list(
    store: &Store,
    cursor_key: &str,
    req: &Request,
) -> Result<InboxListing, ApiError> {
    let query = req.query_string_parameters();
    let filter = filter(req)?;
    let limit = crate::http::page_limit(query.first("limit"), DEFAULT_LIMIT, MAX_LIMIT)?;
    let unavailable = |e: crate::store::StoreError| ApiError::Unavailable(e.into());
    if let Some(q) = query.first("q").filter(|q| !q.trim().is_empty()) {
        let address =
            Address::parse(q.trim()).map_err(|e| bad("invalid_phone_number", e.to_string()))?;
        let found = store
            .conversations_of(&address.e164)
            .await
            .map_err(unavailable)?;
        return Ok(InboxListing {
            conversations: found
                .into_iter()
                .filter(|c| matches(&filter, c))
                .map(InboxEntry::from)
                .collect(),
            next_cursor: None,
        });
    }
    let start = query
        .first("cursor")
        .map(|c| {
            crate::cursor::open_page_key(cursor_key, CURSOR_SCOPE, c).ok_or_else(|| {
                bad(
                    "invalid_cursor",
                    "the cursor is not one this listing issued",
                )
            })
        })
        .transpose()?;
    let page = store
        .inbox_page(filter, limit, start)
        .await
        .map_err(unavailable)?;
    Ok(InboxListing {
        conversations: page
            .conversations
            .into_iter()
            .map(InboxEntry::from)
            .collect(),
        next_cursor: page
            .next
            .map(|k| crate::cursor::seal_page_key(cursor_key, CURSOR_SCOPE, &k)),
    })
}

/// The filter applied to a conversation found by number (the index query applies it itself).
pub fn matches(filter: &InboxFilter, c: &Conversation) -> bool {
    filter
        .known_tenant
        .is_none_or(|k| k == c.tenant_id.is_some())
        && filter
            .has_pending
            .is_none_or(|p| p != c.pending_ids.is_empty())
        && filter.opted_out.is_none_or(|o| o == c.opted_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_take_their_own_words_or_booleans_and_refuse_the_rest() {
        assert_eq!(
            flag(Some("known"), "tenant", "known", "unknown").unwrap(),
            Some(true)
        );
        assert_eq!(
            flag(Some("unknown"), "tenant", "known", "unknown").unwrap(),
            Some(false)
        );
        assert_eq!(
            flag(Some("false"), "tenant", "known", "unknown").unwrap(),
            Some(false)
        );
        assert_eq!(flag(None, "tenant", "known", "unknown").unwrap(), None);
        assert!(flag(Some("maybe"), "tenant", "known", "unknown").is_err());
    }
}
