//! The Messages API subset: create, fetch and list, behind HTTP Basic auth.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use http::{HeaderMap, StatusCode, Uri};
use parley::twilio::Form;
use serde_json::json;
use time::macros::format_description;
use time::Date;

use crate::callbacks;
use crate::error::ApiError;
use crate::state::{Call, FaultKind, Message, Shared};
use crate::validate::{self, CreateRequest};

const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;

/// `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    Path(account_sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let request = form
        .as_ref()
        .map(CreateRequest::from_form)
        .unwrap_or_default();
    let mut call = CallGuard::record(&shared, &request, &headers);
    if let Err(e) = authenticate(&shared, &headers, &account_sid) {
        return call.fail(e);
    }
    if form.is_err() {
        return call.fail(ApiError::bad_request(
            20001,
            "Unable to parse the request body as application/x-www-form-urlencoded",
        ));
    }
    let fault = shared.state().take_fault(request.to.as_deref());
    if let Some(fault) = &fault {
        call.set_fault(fault.kind);
        match fault.kind {
            FaultKind::RateLimited => return call.fail(ApiError::rate_limited()),
            FaultKind::ServerError => return call.fail(ApiError::server_error()),
            // If the client gives up first, this future is dropped here and nothing is created.
            FaultKind::Slow => tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await,
            FaultKind::AcceptThenTimeout => {}
        }
    }
    let accepted = match validate::check(&request) {
        Ok(accepted) => accepted,
        Err(e) => return call.fail(e),
    };
    let (message, plan) = shared.create(accepted);
    call.created(&message.sid);
    tracing::info!(message_sid = %message.sid, "message created");
    callbacks::spawn(shared.clone(), message.sid.clone(), plan);
    if let Some(fault) = fault.filter(|f| f.kind == FaultKind::AcceptThenTimeout) {
        tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
    }
    (StatusCode::CREATED, Json(message.resource())).into_response()
}

/// `GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json`
pub(crate) async fn fetch(
    State(shared): State<Arc<Shared>>,
    Path((account_sid, file)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if let Err(e) = authenticate(&shared, &headers, &account_sid) {
        return e.into_response();
    }
    let found = file.strip_suffix(".json").and_then(|sid| {
        shared
            .state()
            .messages
            .iter()
            .find(|m| m.sid == sid)
            .map(Message::resource)
    });
    match found {
        Some(resource) => Json(resource).into_response(),
        None => ApiError::not_found(uri.path()).into_response(),
    }
}

/// `GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}/Media.json`: a received message's
/// media (an empty list for any other message).
pub(crate) async fn media(
    State(shared): State<Arc<Shared>>,
    Path((account_sid, sid)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if let Err(e) = authenticate(&shared, &headers, &account_sid) {
        return e.into_response();
    }
    let found = shared
        .state()
        .messages
        .iter()
        .find(|m| m.sid == sid)
        .map(Message::media_list);
    match found {
        Some(list) => Json(json!({
            "media_list": list,
            "page": 0,
            "page_size": 50,
            "first_page_uri": format!("{}?PageSize=50&Page=0", uri.path()),
            "next_page_uri": null,
            "previous_page_uri": null,
            "uri": format!("{}?PageSize=50&Page=0", uri.path()),
        }))
        .into_response(),
        None => ApiError::not_found(uri.path()).into_response(),
    }
}

/// `GET /2010-04-01/Accounts/{AccountSid}/Messages.json?To=…&From=…&DateSent=…&PageSize=…&Page=…`
///
/// `DateSent>=`/`DateSent<=` arrive as the keys `DateSent>`/`DateSent<` (inclusive bounds).
pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    Path(account_sid): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = authenticate(&shared, &headers, &account_sid) {
        return e.into_response();
    }
    match list_page(&shared, &account_sid, query.as_deref().unwrap_or("")) {
        Ok(page) => Json(page).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Default)]
struct ListFilter {
    to: Option<String>,
    from: Option<String>,
    on: Option<Date>,
    after: Option<Date>,
    before: Option<Date>,
}

impl ListFilter {
    fn matches(&self, m: &Message) -> bool {
        let date = m.date_for_filter();
        let dated = |bound: Option<Date>, ok: fn(Date, Date) -> bool| {
            bound.is_none_or(|b| date.is_some_and(|d| ok(d, b)))
        };
        self.to.as_ref().is_none_or(|to| &m.to == to)
            && self
                .from
                .as_ref()
                .is_none_or(|from| m.from.as_ref() == Some(from))
            && dated(self.on, |d, b| d == b)
            && dated(self.after, |d, b| d >= b)
            && dated(self.before, |d, b| d <= b)
    }
}

fn list_page(
    shared: &Shared,
    account_sid: &str,
    query: &str,
) -> Result<serde_json::Value, ApiError> {
    let form = Form::parse(query.as_bytes())
        .map_err(|_| ApiError::bad_request(20001, "Invalid query string"))?;
    let mut filter = ListFilter::default();
    let mut page_size = DEFAULT_PAGE_SIZE;
    let mut page = 0usize;
    // Kept to rebuild the page URIs: the filters as received, paging aside.
    let mut kept = Vec::new();
    for (key, raw) in form.pairs() {
        let value = match key.as_str() {
            "To" | "From" => lenient_number(raw),
            _ => raw.clone(),
        };
        match key.as_str() {
            "To" => filter.to = Some(value.clone()),
            "From" => filter.from = Some(value.clone()),
            "DateSent" => filter.on = Some(date(&value)?),
            "DateSent>" => filter.after = Some(date(&value)?),
            "DateSent<" => filter.before = Some(date(&value)?),
            "PageSize" => {
                page_size = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(20001, "PageSize must be between 1 and 1000")
                    })?;
                continue;
            }
            "Page" => {
                page = value
                    .parse()
                    .map_err(|_| ApiError::bad_request(20001, "Invalid Page"))?;
                continue;
            }
            _ => continue,
        }
        kept.push((key.clone(), value));
    }
    let state = shared.state();
    // Twilio lists the most recent first.
    let matching: Vec<&Message> = state
        .messages
        .iter()
        .rev()
        .filter(|m| filter.matches(m))
        .collect();
    let start = page.saturating_mul(page_size);
    let messages: Vec<serde_json::Value> = matching
        .iter()
        .skip(start)
        .take(page_size)
        .map(|m| m.resource())
        .collect();
    let base = format!("/2010-04-01/Accounts/{account_sid}/Messages.json");
    let page_uri = |p: usize| {
        let mut params = kept.clone();
        params.push(("PageSize".into(), page_size.to_string()));
        params.push(("Page".into(), p.to_string()));
        format!("{base}?{}", callbacks::encode_form(&params))
    };
    let has_next = matching.len() > start.saturating_add(page_size);
    Ok(json!({
        "messages": messages,
        "page": page,
        "page_size": page_size,
        "start": start,
        "end": start + messages.len().saturating_sub(1),
        "first_page_uri": page_uri(0),
        "next_page_uri": has_next.then(|| page_uri(page + 1)),
        "previous_page_uri": (page > 0).then(|| page_uri(page - 1)),
        "uri": page_uri(page),
    }))
}

fn date(value: &str) -> Result<Date, ApiError> {
    Date::parse(value, format_description!("[year]-[month]-[day]"))
        .map_err(|_| ApiError::bad_request(20001, format!("Invalid date {value}: use YYYY-MM-DD")))
}

/// A query value whose leading `+` arrived unencoded (and so decoded to a space) gets it back:
/// `?To=+1415…` from curl means `+1415…`.
pub(crate) fn lenient_number(value: &str) -> String {
    match value.strip_prefix(' ') {
        Some(rest) if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) => {
            format!("+{rest}")
        }
        _ => value.to_owned(),
    }
}

/// HTTP Basic `AccountSid:AuthToken`, or `ApiKeySid:ApiKeySecret` of a key the sandbox was
/// given, for the account in the path.
fn authenticate(shared: &Shared, headers: &HeaderMap, account_sid: &str) -> Result<(), ApiError> {
    let credentials = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let Some((user, password)) = credentials.as_deref().and_then(|c| c.split_once(':')) else {
        return Err(ApiError::unauthenticated());
    };
    let config = &shared.config;
    let by_token = user == config.account_sid && password == shared.auth_token();
    let by_api_key = shared.api_key_matches(user, password);
    if account_sid == config.account_sid && (by_token || by_api_key) {
        Ok(())
    } else {
        Err(ApiError::unauthenticated())
    }
}

/// Any other path: Twilio's 404.
pub(crate) async fn not_found(uri: Uri) -> Response {
    ApiError::not_found(uri.path()).into_response()
}

pub(crate) async fn method_not_allowed() -> Response {
    ApiError::method_not_allowed().into_response()
}

/// The create call's entry in `/_sandbox/calls`. Recorded on arrival as `pending`; if the
/// handler is dropped before it finishes (the client went away during an injected delay), the
/// entry becomes `abandoned`.
struct CallGuard<'a> {
    shared: &'a Shared,
    id: u64,
    done: bool,
}

impl<'a> CallGuard<'a> {
    fn record(shared: &'a Shared, request: &CreateRequest, headers: &HeaderMap) -> Self {
        let id = shared.next_call_id();
        let mut state = shared.state();
        state.calls.push(Call {
            id,
            to: request.to.clone(),
            from: request.from.clone(),
            messaging_service_sid: request.messaging_service_sid.clone(),
            body: request.body.clone(),
            status_callback: request.status_callback.clone(),
            received_at: time::OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9,
            outcome: "pending".into(),
            fault: None,
            sid: None,
            trace_header: headers
                .get("x-amzn-trace-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        });
        Self {
            shared,
            id,
            done: false,
        }
    }

    /// Calls can be cleared by a reset while in flight; updates then go nowhere.
    fn update(&self, f: impl FnOnce(&mut Call)) {
        if let Some(call) = self
            .shared
            .state()
            .calls
            .iter_mut()
            .find(|c| c.id == self.id)
        {
            f(call);
        }
    }

    fn set_fault(&self, kind: FaultKind) {
        self.update(|c| c.fault = Some(kind));
    }

    fn fail(&mut self, error: ApiError) -> Response {
        self.done = true;
        let outcome = error.outcome();
        self.update(|c| c.outcome = outcome);
        tracing::info!(
            code = error.code,
            status = error.status.as_u16(),
            "create refused"
        );
        error.into_response()
    }

    fn created(&mut self, sid: &str) {
        self.done = true;
        self.update(|c| {
            c.outcome = "created".into();
            c.sid = Some(sid.to_owned());
        });
    }
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.update(|c| c.outcome = "abandoned".into());
        }
    }
}
