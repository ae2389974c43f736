//! What each console request does. Pages are GETs; every change is a POST that checks the
//! session's CSRF token and answers with a 303 to a page.

use http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use parley::access::Scope;
use parley::http::{body_bytes, header_str};
use parley::phone::{Address, Channel, E164};
use parley::pipeline::PipelineState;
use parley::send::cancel::{cancel, CancelError, CancelReason};
use parley::send::{SendError, SendRequest};
use parley::store::{Conversation, IdempotencyKey, Message, QueueFilter};
use parley::time::Timestamp;
use parley::twilio::form::{percent_encode, Form};
use tracing::info;

use crate::pages::{
    self, Chrome, InboxRow, InboxView, MessageRow, QueueRow, QueueView, ThreadView,
};
use crate::response::{asset, page, redirect};
use crate::session::{self, Session};
use crate::{conversation_ref, errors, mask, ConsoleError, ConsoleHandler};

const INBOX_PAGE: i32 = 25;
const THREAD_PAGE: i32 = 50;
const INBOX_CURSOR_SCOPE: &str = "console-inbox";
const QUEUE_PAGE: i32 = 50;
const QUEUE_CURSOR_SCOPE: &str = "console-queue";

/// Notices a redirect may ask a page to show: a fixed set, so nothing is reflected.
const NOTICES: [(&str, &str); 7] = [
    ("sent", "Sent: it is on its way."),
    ("scheduled", "Scheduled: it will go at the time shown."),
    (
        "deferred",
        "Deferred: the recipient's quiet hours hold it until morning.",
    ),
    ("canceled", "Canceled."),
    (
        "resent",
        "Re-sent: a new message, linked to the failed one, is on its way.",
    ),
    (
        "enabled",
        "Enabled: events that match it make messages again.",
    ),
    (
        "disabled",
        "Disabled: events no longer make messages from it.",
    ),
];

impl ConsoleHandler {
    pub(crate) async fn route(&self, req: &Request) -> Result<Response<Body>, ConsoleError> {
        let path = req.raw_http_path().trim_end_matches('/').to_owned();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let method = req.method().clone();
        match (&method, segments.as_slice()) {
            (&Method::GET, ["console", "assets", "console.css"]) => {
                return Ok(asset("text/css; charset=utf-8", pages::CSS))
            }
            (&Method::GET, ["console", "assets", "console.js"]) => {
                return Ok(asset("text/javascript; charset=utf-8", pages::JS))
            }
            (&Method::GET, ["console", "login"]) => {
                return Ok(page(StatusCode::OK, pages::login(None)))
            }
            (&Method::POST, ["console", "login"]) => return self.sign_in(req).await,
            _ => {}
        }
        let Some(session) = self.session(req).await? else {
            return Ok(match method {
                Method::GET => redirect("/console/login", &[]),
                _ => page(
                    StatusCode::UNAUTHORIZED,
                    pages::login(Some("Your session has ended; sign in again.")),
                ),
            });
        };
        let key = self.secrets.current().cursor_key().to_owned();
        let csrf = session.csrf_token(&key);
        let chrome = |current| Chrome {
            key_id: &session.key_id,
            csrf: &csrf,
            admin: session.admin,
            current,
        };
        if method == Method::POST {
            let form = Form::parse(body_bytes(req))
                .map_err(|_| ConsoleError::BadRequest("the form could not be read".into()))?;
            if !session.accepts_csrf(&key, form.get("csrf").unwrap_or_default()) {
                return Err(ConsoleError::Forbidden(
                    "The form has expired or did not come from this console; reload the page and try again."
                        .into(),
                ));
            }
            return match segments.as_slice() {
                ["console", "logout"] => Ok(redirect(
                    "/console/login",
                    &[session::clear_cookie(is_secure(req))],
                )),
                ["console", "conversations", reference, "reply"] => {
                    self.reply(&chrome("inbox"), &session, &key, reference, &form)
                        .await
                }
                ["console", "conversations", reference, "reveal"] => {
                    if !session.admin {
                        return Err(ConsoleError::Forbidden(
                            "Only an admin key may reveal a number.".into(),
                        ));
                    }
                    self.thread(&chrome("inbox"), &session, &key, reference, true, None)
                        .await
                }
                ["console", "messages", id, "cancel"] => self.cancel(id, &form).await,
                ["console", "messages", id, "resend"] => self.resend(&session, id, &form).await,
                ["console", "rules", id, "enable"] => {
                    self.set_enabled(&chrome("rules"), id, true).await
                }
                ["console", "rules", id, "disable"] => {
                    self.set_enabled(&chrome("rules"), id, false).await
                }
                ["console", "rules", id, "preview"] => {
                    self.preview(&chrome("rules"), id, &form).await
                }
                _ => Err(ConsoleError::NotFound),
            };
        }
        match segments.as_slice() {
            ["console"] => self.inbox(&chrome("inbox"), &key, req).await,
            ["console", "queue"] => self.queue(&chrome("queue"), &key, req).await,
            ["console", "dashboard"] => self.dashboard(&chrome("dashboard"), req).await,
            ["console", "rules"] => self.rules(&chrome("rules")).await,
            ["console", "rules", id] => {
                let notice = req
                    .query_string_parameters()
                    .first("notice")
                    .and_then(notice);
                self.rule(&chrome("rules"), id, notice).await
            }
            ["console", "conversations", reference] => {
                let notice = req
                    .query_string_parameters()
                    .first("notice")
                    .and_then(notice);
                self.thread(&chrome("inbox"), &session, &key, reference, false, notice)
                    .await
            }
            _ => Err(ConsoleError::NotFound),
        }
    }

    /// `POST /console/login`: the key is checked like an API call's, and must read.
    async fn sign_in(&self, req: &Request) -> Result<Response<Body>, ConsoleError> {
        let form = Form::parse(body_bytes(req))
            .map_err(|_| ConsoleError::BadRequest("the form could not be read".into()))?;
        let presented = form.get("api_key").unwrap_or_default().trim();
        let refused = || {
            Ok(page(
                StatusCode::UNAUTHORIZED,
                pages::login(Some("That key is not valid, or lacks the read scope.")),
            ))
        };
        let Ok(caller) = self
            .access
            .authenticate(Some(&format!("Bearer {presented}")))
            .await
        else {
            return refused();
        };
        if !caller.allows(Scope::Read) {
            return refused();
        }
        let session = Session::new(
            caller.key_id(),
            caller.allows(Scope::Admin),
            Timestamp::now(),
        );
        info!(target: "access", key_id = caller.key_id(), "console sign-in");
        let key = self.secrets.current().cursor_key().to_owned();
        Ok(redirect(
            "/console",
            &[session::set_cookie(&session.seal(&key), is_secure(req))],
        ))
    }

    /// The request's session, if its cookie is genuine, unexpired, and its key still valid
    /// (not revoked, still able to read).
    async fn session(&self, req: &Request) -> Result<Option<Session>, ConsoleError> {
        let Some(value) = header_str(req, "cookie").and_then(session::cookie_value) else {
            return Ok(None);
        };
        let key = self.secrets.current().cursor_key().to_owned();
        let Some(session) = Session::open(&key, value, Timestamp::now()) else {
            return Ok(None);
        };
        let caller = self
            .access
            .caller(&session.key_id)
            .await
            .map_err(|_| ConsoleError::Unavailable)?;
        Ok(caller
            .filter(|c| c.allows(session.scope()))
            .map(|_| session))
    }

    async fn inbox(
        &self,
        chrome: &Chrome<'_>,
        key: &str,
        req: &Request,
    ) -> Result<Response<Body>, ConsoleError> {
        let query = req.query_string_parameters();
        let value = |name: &str| query.first(name).unwrap_or_default().to_owned();
        let mut view = InboxView {
            rows: Vec::new(),
            q: value("q"),
            tenant: value("tenant"),
            pending: value("pending"),
            opted_out: value("opted_out"),
            next: None,
            error: None,
        };
        let filter = parley::handlers::inbox::filter(req)
            .map_err(|e| ConsoleError::BadRequest(e.to_string()))?;
        let conversations = if view.q.trim().is_empty() {
            let start = query
                .first("cursor")
                .and_then(|c| parley::cursor::open_page_key(key, INBOX_CURSOR_SCOPE, c));
            let page = self.store.inbox_page(filter, INBOX_PAGE, start).await?;
            view.next = page.next.map(|k| {
                let cursor = parley::cursor::seal_page_key(key, INBOX_CURSOR_SCOPE, &k);
                next_query(&view, &cursor)
            });
            page.conversations
        } else {
            match Address::parse(view.q.trim()) {
                Ok(address) => self
                    .store
                    .conversations_of(&address.e164)
                    .await?
                    .into_iter()
                    .filter(|c| parley::handlers::inbox::matches(&filter, c))
                    .collect(),
                Err(_) => {
                    view.error = Some("That is not a phone number Parley can read.".into());
                    Vec::new()
                }
            }
        };
        view.rows = conversations.iter().map(|c| inbox_row(key, c)).collect();
        let status = match view.error {
            Some(_) => StatusCode::BAD_REQUEST,
            None => StatusCode::OK,
        };
        Ok(page(status, pages::inbox(chrome, &view)))
    }

    /// The due index, one page: what is scheduled, deferred, queued or being sent.
    async fn queue(
        &self,
        chrome: &Chrome<'_>,
        key: &str,
        req: &Request,
    ) -> Result<Response<Body>, ConsoleError> {
        let query = req.query_string_parameters();
        let status = query.first("status").unwrap_or_default().to_owned();
        let mut filter = QueueFilter::default();
        let failed = status == "failed";
        if !status.is_empty() && !failed {
            match PipelineState::parse(&status) {
                Some(state) if state.is_pending() || state == PipelineState::Sending => {
                    filter.states.push(state)
                }
                _ => return Err(ConsoleError::BadRequest("No such state to list.".into())),
            }
        }
        let start = query
            .first("cursor")
            .and_then(|c| parley::cursor::open_page_key(key, QUEUE_CURSOR_SCOPE, c));
        let (messages, next) = match failed {
            true => self.store.failures_page(QUEUE_PAGE, start).await?,
            false => self.store.pending_page(&filter, QUEUE_PAGE, start).await?,
        };
        let view = QueueView {
            rows: messages.iter().map(|m| queue_row(key, m)).collect(),
            next: next.map(|k| {
                let cursor = parley::cursor::seal_page_key(key, QUEUE_CURSOR_SCOPE, &k);
                match status.is_empty() {
                    true => format!("cursor={}", percent_encode(&cursor)),
                    false => format!(
                        "status={}&cursor={}",
                        percent_encode(&status),
                        percent_encode(&cursor)
                    ),
                }
            }),
            status,
            notice: query.first("notice").and_then(notice),
        };
        Ok(page(StatusCode::OK, pages::queue(chrome, &view)))
    }

    /// A thread, oldest first: the conversation, its latest messages, and (when it has
    /// unread messages) the read mark. At most three store requests.
    async fn thread(
        &self,
        chrome: &Chrome<'_>,
        session: &Session,
        key: &str,
        reference: &str,
        reveal: bool,
        notice: Option<&'static str>,
    ) -> Result<Response<Body>, ConsoleError> {
        let (channel, phone) =
            conversation_ref::open(key, reference).ok_or(ConsoleError::NotFound)?;
        let mut view = self
            .thread_view(session, key, channel, &phone, reveal)
            .await?;
        view.notice = notice.map(str::to_owned);
        Ok(page(StatusCode::OK, pages::thread(chrome, &view)))
    }

    async fn thread_view(
        &self,
        session: &Session,
        key: &str,
        channel: Channel,
        phone: &E164,
        reveal: bool,
    ) -> Result<ThreadView, ConsoleError> {
        let conversation = self
            .store
            .conversation(channel, phone)
            .await?
            .ok_or(ConsoleError::NotFound)?;
        let (mut messages, _) = self
            .store
            .messages_page(channel, phone, THREAD_PAGE, None)
            .await?;
        messages.reverse();
        if conversation.unread_count > 0 {
            self.store.mark_read(channel, phone).await?;
        }
        if reveal {
            info!(
                target: "access",
                key_id = %session.key_id,
                conversation_id = %conversation.conversation_id,
                "console: number revealed"
            );
        }
        let mut rows = Vec::with_capacity(messages.len());
        for m in &messages {
            rows.push(self.message_row(m).await?);
        }
        Ok(ThreadView {
            reference: conversation_ref::seal(key, channel, phone),
            number: match reveal {
                true => phone.as_str().to_owned(),
                false => mask::masked(phone),
            },
            revealed: reveal,
            admin: session.admin,
            channel: channel.as_str(),
            tenant: conversation.tenant_id.clone(),
            language: conversation.language.map(|l| l.as_str()),
            opted_out: conversation.opted_out,
            time_zone: time_zone(&conversation, phone),
            messages: rows,
            idempotency_key: ulid::Ulid::new().to_string(),
            notice: None,
            error: None,
        })
    }

    async fn message_row(&self, m: &Message) -> Result<MessageRow, ConsoleError> {
        let body = self.store.body_of(m).await?;
        let media_urls = self.store.media_of(m).await?;
        let state = match m.delivery_status {
            Some(status) => status.as_str().to_owned(),
            None => m.status.as_str().to_owned(),
        };
        Ok(MessageRow {
            message_id: m.message_id.clone(),
            inbound: m.direction == parley::store::Direction::Inbound,
            body,
            media_urls,
            state,
            error_meaning: m.error_code.as_deref().and_then(errors::meaning),
            error_url: m.error_code.as_deref().map(errors::docs_url),
            error_code: m.error_code.clone(),
            created_at: m.created_at.to_string(),
            send_at: m
                .send_at
                .filter(|_| m.status.is_waiting())
                .map(|t| t.to_string()),
            cancelable: m.status.is_pending(),
            resendable: crate::resend::is_failed(m) && m.resent_as.is_none(),
            resend_of: m.resend_of.is_some(),
        })
    }

    /// `POST …/reply`: through the send use case, under an idempotency key the form was
    /// rendered with, so a double submit sends once.
    async fn reply(
        &self,
        chrome: &Chrome<'_>,
        session: &Session,
        key: &str,
        reference: &str,
        form: &Form,
    ) -> Result<Response<Body>, ConsoleError> {
        let (channel, phone) =
            conversation_ref::open(key, reference).ok_or(ConsoleError::NotFound)?;
        let to = match channel {
            Channel::Sms => phone.as_str().to_owned(),
            Channel::Whatsapp => format!("whatsapp:{}", phone.as_str()),
        };
        let request = SendRequest {
            to: Some(to),
            body: form.get("body").map(str::to_owned),
            send_at: form
                .get("send_at")
                .filter(|s| !s.trim().is_empty())
                .map(|s| local_date_time(s.trim())),
            ..Default::default()
        };
        let now = Timestamp::now();
        let failed = |error: String| async move {
            let mut view = self
                .thread_view(session, key, channel, &phone, false)
                .await?;
            view.error = Some(error);
            Ok::<_, ConsoleError>(page(StatusCode::BAD_REQUEST, pages::thread(chrome, &view)))
        };
        let new = match request.validate(now) {
            Ok(new) => new,
            Err(fields) => {
                let error = crate::field_errors(&fields);
                return failed(error).await;
            }
        };
        let idempotency = form
            .get("idempotency_key")
            .filter(|k| ulid::Ulid::from_string(k).is_ok());
        let key_of = idempotency.map(|k| IdempotencyKey {
            api_key_id: &session.key_id,
            key: k,
        });
        match self.send.send(&new, key_of, now).await {
            Ok(accepted) => {
                info!(target: "access", key_id = %session.key_id, message_id = %accepted.message_id, "console: reply accepted");
                let notice = match accepted.status.as_str() {
                    "scheduled" => "scheduled",
                    "deferred" => "deferred",
                    _ => "sent",
                };
                Ok(redirect(
                    &format!("/console/conversations/{reference}?notice={notice}"),
                    &[],
                ))
            }
            Err(SendError::Store(e)) => Err(e.into()),
            Err(e) => failed(e.to_string()).await,
        }
    }

    /// `POST /console/messages/{id}/cancel`, back to the page it came from.
    async fn cancel(&self, id: &str, form: &Form) -> Result<Response<Body>, ConsoleError> {
        if ulid::Ulid::from_string(id).is_err() {
            return Err(ConsoleError::NotFound);
        }
        let back = form.get("back").unwrap_or("/console");
        match cancel(&self.store, id, CancelReason::Api, Timestamp::now()).await {
            Ok(_) => Ok(redirect(&with_notice(back, "canceled"), &[])),
            Err(CancelError::NotFound) => Err(ConsoleError::NotFound),
            Err(CancelError::NotCancelable(state)) => Err(ConsoleError::BadRequest(format!(
                "The message is {state} and can no longer be canceled."
            ))),
            Err(CancelError::Store(e)) => Err(e.into()),
        }
    }
}

fn notice(code: &str) -> Option<&'static str> {
    NOTICES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, text)| *text)
}

pub(crate) fn with_notice(path: &str, notice: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    format!("{path}?notice={notice}")
}

/// `<input type="datetime-local">` sends `2026-12-01T09:00`; the send API reads a local
/// date-time with seconds.
fn local_date_time(value: &str) -> String {
    match value.len() {
        16 => format!("{value}:00"),
        _ => value.to_owned(),
    }
}

/// The zone a reply's local time is read in, as the send use case will choose it: the
/// tenant's, else the number's.
fn time_zone(conversation: &Conversation, phone: &E164) -> Option<String> {
    conversation.tenant_time_zone.clone().or_else(|| {
        parley::schedule::zones_for_number(phone.as_str())
            .first()
            .map(|tz| parley::schedule::zone_name(tz).into_owned())
    })
}

/// Secure cookies except on the local stack, which is plain HTTP on localhost.
fn is_secure(req: &Request) -> bool {
    let host = header_str(req, "host").unwrap_or_default();
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    !matches!(name, "localhost" | "127.0.0.1" | "[::1]")
}

fn queue_row(key: &str, m: &Message) -> QueueRow {
    let zone = m
        .time_zone
        .as_deref()
        .and_then(|names| names.split(',').next())
        .and_then(|name| parley::schedule::parse_zone(name).ok());
    let due_local = m.send_at.zip(zone).map(|(at, zone)| {
        let local = at.jiff().to_zoned_datetime(zone.clone());
        format!(
            "{} {}",
            local.strftime("%Y-%m-%d %H:%M"),
            parley::schedule::zone_name(&zone)
        )
    });
    QueueRow {
        message_id: m.message_id.clone(),
        reference: conversation_ref::seal(key, m.channel, &m.to_e164),
        number: mask::masked(&m.to_e164),
        state: match (m.status, m.delivery_status) {
            (PipelineState::Submitted, Some(delivery)) => delivery.as_str(),
            (state, _) => state.as_str(),
        },
        reason: m.status_reason.clone(),
        error_code: m.error_code.clone(),
        error_meaning: m.error_code.as_deref().and_then(errors::meaning),
        resendable: crate::resend::is_failed(m) && m.resent_as.is_none(),
        resent: m.resent_as.is_some(),
        cancelable: m.status.is_pending(),
        due: m.send_at.map(|t| t.to_string()),
        due_local,
        attempts: m.attempts,
    }
}

fn inbox_row(key: &str, c: &Conversation) -> InboxRow {
    InboxRow {
        reference: conversation_ref::seal(key, c.channel, &c.phone),
        number: mask::masked(&c.phone),
        channel: c.channel.as_str(),
        tenant: c.tenant_id.clone(),
        language: c.language.map(|l| l.as_str()),
        opted_out: c.opted_out,
        unread: c.unread_count,
        pending: c.pending_ids.len(),
        last_message_at: c.last_message_at.clone(),
    }
}

/// The next page's query string: the filters as they are, and the cursor.
fn next_query(view: &InboxView, cursor: &str) -> String {
    let mut pairs = vec![];
    for (name, value) in [
        ("tenant", &view.tenant),
        ("pending", &view.pending),
        ("opted_out", &view.opted_out),
    ] {
        if !value.is_empty() {
            pairs.push(format!("{name}={}", percent_encode(value)));
        }
    }
    pairs.push(format!("cursor={}", percent_encode(cursor)));
    pairs.join("&")
}
