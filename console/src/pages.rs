//! The console's pages, rendered on the server with maud (escaped by construction). Every
//! control has a label and is a native element, so keyboard and screen readers work without
//! script; `console.js` only adds the live segment counter.

use maud::{html, Markup, DOCTYPE};

use crate::ConsoleError;

/// The pages in the header's navigation: (name, label, path, admin only).
const NAV: [(&str, &str, &str, bool); 4] = [
    ("inbox", "Inbox", "/console", false),
    ("queue", "Queue", "/console/queue", false),
    ("rules", "Rules", "/console/rules", true),
    ("dashboard", "Dashboard", "/console/dashboard", false),
];

/// What every signed-in page shows in its header: who, and the sign-out form.
pub struct Chrome<'a> {
    pub key_id: &'a str,
    pub csrf: &'a str,
    /// An admin session: sees the rules and may reveal numbers.
    pub admin: bool,
    /// The nav entry of this page (a name in `NAV`).
    pub current: &'a str,
}

pub fn layout(title: &str, chrome: Option<&Chrome<'_>>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Parley" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                @if let Some(chrome) = chrome {
                    header {
                        nav aria-label="Console" {
                            span.brand { "Parley" }
                            @for (name, label, href, admin_only) in NAV {
                                @if admin_only && !chrome.admin {
                                } @else if chrome.current == name {
                                    a href=(href) aria-current="page" { (label) }
                                } @else {
                                    a href=(href) { (label) }
                                }
                            }
                        }
                        form.signout method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(chrome.csrf);
                            span.who { "Signed in with key " code { (chrome.key_id) } }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

pub fn login(error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            h1 { "Sign in to Parley" }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            form.login method="post" action="/console/login" {
                label for="api_key" { "API key (read or admin scope)" }
                input #api_key type="password" name="api_key" autocomplete="current-password" required autofocus;
                button type="submit" { "Sign in" }
            }
            p.hint { "The key is checked once and never stored in the browser: a signed session cookie names it for 12 hours." }
        },
    )
}

pub fn error_page(e: &ConsoleError) -> Markup {
    let message = match e {
        ConsoleError::NotFound => "There is nothing here.".to_owned(),
        ConsoleError::BadRequest(m) | ConsoleError::Forbidden(m) => m.clone(),
        ConsoleError::Unavailable => {
            "The store did not answer; nothing was changed. Try again in a moment.".to_owned()
        }
    };
    layout(
        "Error",
        None,
        html! {
            h1 { "Something went wrong" }
            p role="alert" { (message) }
            p { a href="/console" { "Back to the inbox" } }
        },
    )
}

/// One conversation as the inbox lists it.
pub struct InboxRow {
    pub reference: String,
    pub number: String,
    pub channel: &'static str,
    pub tenant: Option<String>,
    pub language: Option<&'static str>,
    pub opted_out: bool,
    pub unread: u64,
    pub pending: usize,
    pub last_message_at: String,
}

pub struct InboxView {
    pub rows: Vec<InboxRow>,
    pub q: String,
    pub tenant: String,
    pub pending: String,
    pub opted_out: String,
    /// The query string of the next page, if any.
    pub next: Option<String>,
    pub error: Option<String>,
}

fn select(name: &str, label: &str, current: &str, options: &[(&str, &str)]) -> Markup {
    html! {
        label for=(name) { (label) }
        select #(name) name=(name) {
            @for (value, text) in options {
                option value=(value) selected[*value == current] { (text) }
            }
        }
    }
}

pub fn inbox(chrome: &Chrome<'_>, view: &InboxView) -> Markup {
    layout(
        "Inbox",
        Some(chrome),
        html! {
            h1 { "Inbox" }
            form.filters method="get" action="/console" role="search" {
                label for="q" { "Number" }
                input #q type="search" name="q" value=(view.q) placeholder="any form: (415) 555-2671";
                (select("tenant", "Tenant", &view.tenant, &[("", "any"), ("known", "known"), ("unknown", "unknown")]))
                (select("pending", "Pending messages", &view.pending, &[("", "any"), ("true", "has pending"), ("false", "none pending")]))
                (select("opted_out", "Consent", &view.opted_out, &[("", "any"), ("false", "subscribed"), ("true", "opted out")]))
                button type="submit" { "Filter" }
            }
            @if let Some(error) = &view.error {
                p.error role="alert" { (error) }
            }
            @if view.rows.is_empty() {
                p.empty { "No conversations match." }
            } @else {
                table.inbox {
                    caption.visually-hidden { "Conversations, most recent first" }
                    thead { tr {
                        th scope="col" { "Number" } th scope="col" { "Tenant" } th scope="col" { "Language" }
                        th scope="col" { "Consent" } th scope="col" { "Unread" } th scope="col" { "Pending" }
                        th scope="col" { "Last message" }
                    } }
                    tbody {
                        @for row in &view.rows {
                            tr {
                                td { a href={ "/console/conversations/" (row.reference) } { (row.number) } " " small { (row.channel) } }
                                td { (row.tenant.as_deref().unwrap_or("unknown")) }
                                td { (row.language.unwrap_or("—")) }
                                td { @if row.opted_out { span.badge.out { "opted out" } } @else { span.badge.ok { "subscribed" } } }
                                td { @if row.unread > 0 { strong { (row.unread) } } @else { "0" } }
                                td { (row.pending) }
                                td { time datetime=(row.last_message_at) { (row.last_message_at) } }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = &view.next {
                p { a href={ "/console?" (next) } rel="next" { "Older conversations" } }
            }
        },
    )
}

/// One message of a thread.
pub struct MessageRow {
    pub message_id: String,
    pub inbound: bool,
    pub body: String,
    pub media_urls: Vec<String>,
    /// Parley's state, or Twilio's delivery status once it has one.
    pub state: String,
    pub error_code: Option<String>,
    pub error_meaning: Option<&'static str>,
    pub error_url: Option<String>,
    pub created_at: String,
    pub send_at: Option<String>,
    pub cancelable: bool,
    /// Failed and not re-sent yet.
    pub resendable: bool,
    /// A re-send of an earlier failed message.
    pub resend_of: bool,
}

pub struct ThreadView {
    pub reference: String,
    pub number: String,
    pub revealed: bool,
    pub admin: bool,
    pub channel: &'static str,
    pub tenant: Option<String>,
    pub language: Option<&'static str>,
    pub opted_out: bool,
    pub time_zone: Option<String>,
    pub messages: Vec<MessageRow>,
    pub idempotency_key: String,
    pub notice: Option<String>,
    pub error: Option<String>,
}

pub fn thread(chrome: &Chrome<'_>, view: &ThreadView) -> Markup {
    let here = format!("/console/conversations/{}", view.reference);
    layout(
        "Conversation",
        Some(chrome),
        html! {
            h1 { "Conversation with " span.number { (view.number) } }
            p.meta {
                (view.channel) " · tenant " (view.tenant.as_deref().unwrap_or("unknown"))
                " · language " (view.language.unwrap_or("—"))
                @if view.opted_out { " · " span.badge.out { "opted out" } }
            }
            @if view.admin && !view.revealed {
                form.inline method="post" action={ (here) "/reveal" } {
                    input type="hidden" name="csrf" value=(chrome.csrf);
                    button type="submit" { "Reveal number" }
                    small { " (logged with your key id)" }
                }
            }
            @if let Some(notice) = &view.notice { p.notice role="status" { (notice) } }
            @if let Some(error) = &view.error { p.error role="alert" { (error) } }
            ol.thread aria-label="Messages, oldest first" {
                @for m in &view.messages {
                    li class=(if m.inbound { "in" } else { "out" }) {
                        p.body { (m.body) }
                        @for url in &m.media_urls {
                            p.media { a href=(url) rel="noopener noreferrer" target="_blank" { "Attachment" } }
                        }
                        p.status {
                            @if m.inbound { "received " } @else { span class={ "state " (m.state) } data-state=(m.state) { (m.state) } " · " }
                            time datetime=(m.created_at) { (m.created_at) }
                            @if let Some(at) = &m.send_at { " · due " time datetime=(at) { (at) } }
                            @if let Some(code) = &m.error_code {
                                " · error " a href=(m.error_url.clone().unwrap_or_default()) { (code) }
                                @if let Some(meaning) = m.error_meaning { ": " (meaning) }
                            }
                            @if m.resend_of { " · re-send of a failed message" }
                        }
                        @if m.resendable {
                            form.inline method="post" action={ "/console/messages/" (m.message_id) "/resend" } {
                                input type="hidden" name="csrf" value=(chrome.csrf);
                                input type="hidden" name="back" value=(here);
                                button type="submit" aria-label={ "Re-send the message of " (m.created_at) } { "Re-send" }
                            }
                        }
                        @if m.cancelable {
                            form.inline method="post" action={ "/console/messages/" (m.message_id) "/cancel" } {
                                input type="hidden" name="csrf" value=(chrome.csrf);
                                input type="hidden" name="back" value=(here);
                                button type="submit" aria-label={ "Cancel the message due " (m.send_at.clone().unwrap_or_default()) } { "Cancel" }
                            }
                        }
                    }
                }
            }
            @if view.opted_out {
                p.hint { "This number opted out: Parley will not text it until it texts START." }
            } @else {
                form.reply method="post" action={ (here) "/reply" } {
                    input type="hidden" name="csrf" value=(chrome.csrf);
                    input type="hidden" name="idempotency_key" value=(view.idempotency_key);
                    label for="body" { "Reply" }
                    textarea #body name="body" rows="3" maxlength="1600" required aria-describedby="segments" {}
                    p #segments.hint aria-live="polite" { "Segments are counted when you send (and live, with script)." }
                    label for="send_at" {
                        "Schedule for (the recipient's local time"
                        @if let Some(zone) = &view.time_zone { ", " (zone) }
                        "; empty: now)"
                    }
                    input #send_at type="datetime-local" name="send_at";
                    button type="submit" { "Send" }
                }
            }
        },
    )
}

/// One pending message as the queue lists it.
pub struct QueueRow {
    pub message_id: String,
    pub reference: String,
    pub number: String,
    pub state: &'static str,
    pub reason: Option<String>,
    pub error_code: Option<String>,
    pub error_meaning: Option<&'static str>,
    /// Failed and not re-sent yet.
    pub resendable: bool,
    /// Failed and re-sent as a new message.
    pub resent: bool,
    /// Still pending (not being sent): a cancel can stop it.
    pub cancelable: bool,
    /// UTC, RFC 3339 (the script shows it in the operator's own zone too).
    pub due: Option<String>,
    /// The same instant on the recipient's clock, with the zone's name.
    pub due_local: Option<String>,
    pub attempts: u32,
}

pub struct QueueView {
    pub rows: Vec<QueueRow>,
    pub status: String,
    pub next: Option<String>,
    pub notice: Option<&'static str>,
}

pub fn queue(chrome: &Chrome<'_>, view: &QueueView) -> Markup {
    layout(
        "Queue",
        Some(chrome),
        html! {
            h1 { "Queue" }
            form.filters method="get" action="/console/queue" {
                (select("status", "State", &view.status, &[("", "any pending"), ("scheduled", "scheduled"), ("deferred", "deferred"), ("queued", "queued"), ("sending", "sending"), ("failed", "failed (last 30 days)")]))
                button type="submit" { "Filter" }
            }
            @if let Some(notice) = view.notice { p.notice role="status" { (notice) } }
            @if view.rows.is_empty() {
                p.empty { (if view.status == "failed" { "Nothing has failed." } else { "Nothing is pending." }) }
            } @else {
                table.queue {
                    caption.visually-hidden { "Messages not sent yet" }
                    thead { tr {
                        th scope="col" { "To" } th scope="col" { "State" } th scope="col" { "Due (recipient's time)" }
                        th scope="col" { "Due (UTC; yours with script)" } th scope="col" { "Attempts" } th scope="col" { span.visually-hidden { "Actions" } }
                    } }
                    tbody {
                        @for row in &view.rows {
                            tr {
                                td { a href={ "/console/conversations/" (row.reference) } { (row.number) } }
                                td { span class={ "state " (row.state) } data-state=(row.state) { (row.state) }
                                     @if let Some(reason) = &row.reason { " " small { "(" (reason) ")" } }
                                     @if let Some(code) = &row.error_code {
                                         " " small.error-code { "error " (code) @if let Some(meaning) = row.error_meaning { ": " (meaning) } }
                                     }
                                     @if row.resent { " " small { "(re-sent)" } } }
                                td { (row.due_local.as_deref().unwrap_or("—")) }
                                td { @if let Some(due) = &row.due { time.local datetime=(due) { (due) } } @else { "—" } }
                                td { (row.attempts) }
                                td {
                                    @if row.resendable {
                                        form.inline method="post" action={ "/console/messages/" (row.message_id) "/resend" } {
                                            input type="hidden" name="csrf" value=(chrome.csrf);
                                            input type="hidden" name="back" value="/console/queue?status=failed";
                                            button type="submit" aria-label={ "Re-send the failed message to " (row.number) } { "Re-send" }
                                        }
                                    } @else if row.cancelable {
                                        form.inline method="post" action={ "/console/messages/" (row.message_id) "/cancel" } {
                                            input type="hidden" name="csrf" value=(chrome.csrf);
                                            input type="hidden" name="back" value="/console/queue";
                                            button type="submit" aria-label={ "Cancel the message to " (row.number) } { "Cancel" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = &view.next {
                p { a href={ "/console/queue?" (next) } rel="next" { "More" } }
            }
        },
    )
}

/// The script and style the pages link (served by the console itself, never from elsewhere).
pub const CSS: &str = include_str!("assets/console.css");
pub const JS: &str = include_str!("assets/console.js");
