//! One stub per operation: the route as template.yaml declares it, with the types its handler
//! parses and answers. Statuses are those the handler returns itself; the ones every
//! authenticated operation (or every webhook) shares are added by `CommonResponses`.
//! Examples are the README's.

#![allow(dead_code)]

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::access::NewKey;
use crate::error::ErrorBody;
use crate::handlers::contacts::ContactErased;
use crate::handlers::conversations::{ConversationPage, MessageAnswer};
use crate::handlers::health::HealthBody;
use crate::handlers::inbox::InboxListing;
use crate::handlers::keys::{KeyCreated, KeyList, KeyRevoked};
use crate::handlers::queue::{QueuePage, QueueSummary};
use crate::handlers::rules::{ActivityPage, EventsAccepted, Preview, RuleList};
use crate::handlers::send_sms::Canceled;
use crate::handlers::stats::Stats;
use crate::rules::ingest::RawEntries;
use crate::rules::rule::{Rule, RuleSpec};
use crate::send::{Accepted, SendRequest};

/// The form Twilio posts for an incoming text (the fields Parley reads; Twilio sends more,
/// and every field it sends is part of the signature). Documentation only: the handler reads
/// the form by name (`InboundSms::from_form`).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
struct InboundSmsForm {
    message_sid: String,
    account_sid: String,
    /// The sender, as Twilio writes it (`+14155552671`, `whatsapp:+1…`).
    from: String,
    to: String,
    body: Option<String>,
    num_media: Option<String>,
    /// `MediaUrl0`, `MediaUrl1`…, one per medium.
    #[serde(rename = "MediaUrl0")]
    media_url0: Option<String>,
}

/// The form Twilio posts when an outbound message's status changes. Documentation only, like
/// [`InboundSmsForm`].
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
struct StatusCallbackForm {
    message_sid: String,
    /// `queued`, `sent`, `delivered`, `undelivered`, `failed`…
    message_status: String,
    account_sid: String,
    to: Option<String>,
    from: Option<String>,
    /// Twilio's error code, when it failed.
    error_code: Option<String>,
}

/// `POST /rules/preview`: an unsaved rule and a sample event. The handler reads `rule` as a
/// [`RuleSpec`] and `event` as an event (fields it lacks, such as `id` and `time`, are filled).
#[derive(Deserialize, ToSchema)]
struct PreviewUnsaved {
    rule: RuleSpec,
    #[schema(value_type = Object)]
    event: Value,
}

/// `POST /rules/{rule_id}/preview`: a sample event.
#[derive(Deserialize, ToSchema)]
struct PreviewSaved {
    /// An EventBridge event (`source`, `detail-type`, `detail`; `id` and `time` are filled in).
    #[schema(value_type = Object)]
    event: Value,
}

#[utoipa::path(
    post,
    path = "/webhook/twilio/sms",
    tag = "webhooks",
    operation_id = "inbound_sms",
    summary = "An incoming text (Twilio's messaging webhook)",
    description = "Stored once per MessageSid (a redelivery gets the same answer and writes \
                   nothing); STOP, START and HELP change consent and are confirmed in TwiML.",
    request_body(
        content = InboundSmsForm,
        content_type = "application/x-www-form-urlencoded",
        example = json!({
            "MessageSid": "SM0123456789abcdef0123456789abcdef",
            "AccountSid": "AC00000000000000000000000000000000",
            "From": "+14155552671",
            "To": "+15005550006",
            "Body": "Hola, ya pagué la renta"
        })
    ),
    responses(
        (status = 200, description = "TwiML: empty, or a consent confirmation.",
         content_type = "text/xml", body = String,
         example = json!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>")),
    ),
    security(("twilio_signature" = []))
)]
fn inbound_sms() {}

#[utoipa::path(
    post,
    path = "/webhook/twilio/status",
    tag = "webhooks",
    operation_id = "status_callback",
    summary = "An outbound message's status (Twilio's status callback)",
    description = "Statuses only move forward; a callback that arrives before the message is \
                   known is parked and applied when it is.",
    request_body(
        content = StatusCallbackForm,
        content_type = "application/x-www-form-urlencoded",
        example = json!({
            "MessageSid": "SM0123456789abcdef0123456789abcdef",
            "MessageStatus": "delivered",
            "AccountSid": "AC00000000000000000000000000000000",
            "To": "+14155552671"
        })
    ),
    responses((status = 204, description = "Recorded (or already known).")),
    security(("twilio_signature" = []))
)]
fn status_callback() {}

#[utoipa::path(
    post,
    path = "/sms/send",
    tag = "messages",
    operation_id = "send_sms",
    summary = "Send a text now, at a time, or at a local time in the recipient's zone",
    description = "Without `send_at` it is queued now (unless quiet hours defer it). With an \
                   `Idempotency-Key`, a retry answers as the first call did and creates nothing.",
    params(
        ("Idempotency-Key" = Option<String>, Header,
         description = "1 to 255 visible ASCII characters, scoped to the API key.")
    ),
    request_body(
        content = SendRequest,
        example = json!({
            "to": "(415) 555-2671",
            "body": "Your maintenance visit is confirmed for 9am.",
            "workflow_type": "maintenance",
            "workflow_id": "wo-1"
        })
    ),
    responses(
        (status = 202, description = "Accepted: queued, scheduled or deferred.", body = Accepted,
         example = json!({
             "message_id": "01JD0000000000000000000000",
             "conversation_id": "01JD0000000000000000000001",
             "status": "queued",
             "send_at": "2026-12-01T14:00:00.000Z",
             "time_zone": "America/Los_Angeles",
             "time_zone_source": "number",
             "urgent": false,
             "segments": 1,
             "encoding": "GSM-7"
         })),
        (status = 400, description = "`invalid_json`, `invalid_idempotency_key`, or \
                                      `validation_failed` with a message per field.",
         body = ErrorBody),
        (status = 403, description = "`insufficient_scope`, or `destination_not_allowed` (the \
                                      key's countries).", body = ErrorBody),
        (status = 409, description = "`recipient_opted_out`.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: over 64 KiB.", body = ErrorBody),
        (status = 422, description = "`conversation_mismatch`, `idempotency_key_reused` or \
                                      `not_after_unreachable`.", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
fn send_sms() {}

#[utoipa::path(
    post,
    path = "/messages/{message_id}/cancel",
    tag = "messages",
    operation_id = "cancel_message",
    summary = "Cancel a scheduled, deferred or queued message",
    description = "Canceling a canceled message is a 200 too.",
    params(("message_id" = String, Path, description = "The message's ULID.",
            pattern = "^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$")),
    responses(
        (status = 200, description = "Canceled.", body = Canceled,
         example = json!({
             "message_id": "01JD0000000000000000000000",
             "status": "canceled",
             "status_reason": "api",
             "send_at": "2026-12-01T14:00:00.000Z"
         })),
        (status = 400, description = "`invalid_message_id`: not a ULID.", body = ErrorBody),
        (status = 404, description = "`message_not_found`.", body = ErrorBody),
        (status = 409, description = "`not_cancelable`: already on its way or final; `state` \
                                      says which.", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
fn cancel_message() {}

#[utoipa::path(
    get,
    path = "/conversations/{phone_number}",
    tag = "conversations",
    operation_id = "get_conversation",
    summary = "A conversation and one page of its messages, newest first",
    params(
        ("phone_number" = String, Path,
         description = "Any written form of the number (`+14155552671`, `(415) 555-2671`, \
                        `whatsapp:+1…`), URL-encoded.", example = "+14155552671"),
        ("limit" = Option<i32>, Query, description = "1 to 100 (default 20).",
         minimum = 1, maximum = 100),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."),
    ),
    responses(
        (status = 200, description = "The conversation.", body = ConversationPage),
        (status = 400, description = "`invalid_phone_number`, `invalid_limit` or \
                                      `invalid_cursor`.", body = ErrorBody),
        (status = 404, description = "`conversation_not_found`.", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
fn get_conversation() {}

#[utoipa::path(
    get,
    path = "/messages/{message_id}",
    tag = "conversations",
    operation_id = "get_message",
    summary = "One message with its status history (or what its erasure kept)",
    params(("message_id" = String, Path, description = "The message's ULID.",
            pattern = "^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$")),
    responses(
        (status = 200, description = "The message.", body = MessageAnswer),
        (status = 400, description = "`invalid_message_id`: not a ULID.", body = ErrorBody),
        (status = 404, description = "`message_not_found`.", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
fn get_message() {}

#[utoipa::path(
    get,
    path = "/conversations",
    tag = "conversations",
    operation_id = "list_conversations",
    summary = "The inbox: conversations by last message, newest first",
    params(
        ("tenant" = Option<String>, Query, description = "`known` or `unknown`."),
        ("pending" = Option<bool>, Query,
         description = "With (`true`) or without (`false`) messages not final yet."),
        ("opted_out" = Option<bool>, Query, description = "The number's consent."),
        ("q" = Option<String>, Query,
         description = "A number in any written form: its conversations (SMS, WhatsApp)."),
        ("limit" = Option<i32>, Query, description = "1 to 100 (default 25).",
         minimum = 1, maximum = 100),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."),
    ),
    responses(
        (status = 200, description = "One page; a filtered page may be short and still have a \
                                      next one.", body = InboxListing),
        (status = 400, description = "`invalid_filter`, `invalid_phone_number`, \
                                      `invalid_limit` or `invalid_cursor`.", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
fn list_conversations() {}

#[utoipa::path(
    get,
    path = "/stats",
    tag = "conversations",
    operation_id = "stats",
    summary = "Traffic by hour or by day, from the hourly counters",
    params(
        ("from" = Option<String>, Query, description = "RFC 3339 (default: `to` minus 24 hours)."),
        ("to" = Option<String>, Query, description = "RFC 3339, exclusive (default: now)."),
        ("granularity" = Option<String>, Query, description = "`hour` (default) or `day`."),
    ),
    responses(
        (status = 200, description = "Buckets with traffic, oldest first, and the totals.",
         body = Stats),
        (status = 400, description = "`invalid_time`, `invalid_range` (at most 92 days) or \
                                      `invalid_granularity`.", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
fn stats() {}

#[utoipa::path(
    get,
    path = "/queue",
    tag = "queue",
    operation_id = "list_queue",
    summary = "Pending messages, by due time",
    params(
        ("status" = Option<String>, Query,
         description = "Comma-separated: `scheduled`, `deferred`, `queued`, `sending`."),
        ("phone" = Option<String>, Query, description = "Any written form of the number."),
        ("due_after" = Option<String>, Query, description = "RFC 3339 instant."),
        ("due_before" = Option<String>, Query, description = "RFC 3339 instant."),
        ("limit" = Option<i32>, Query, description = "1 to 200 (default 50).",
         minimum = 1, maximum = 200),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."),
    ),
    responses(
        (status = 200, description = "One page.", body = QueuePage),
        (status = 400, description = "`invalid_status`, `invalid_phone_number`, \
                                      `invalid_time`, `invalid_limit` or `invalid_cursor`.",
         body = ErrorBody),
    ),
    security(("bearer" = []))
)]
fn list_queue() {}

#[utoipa::path(
    get,
    path = "/queue/summary",
    tag = "queue",
    operation_id = "queue_summary",
    summary = "Counts per state, the next due time, the dead-letter depth",
    responses(
        (status = 200, description = "The summary.", body = QueueSummary,
         example = json!({
             "counts": {"scheduled": 1},
             "next_due": "2026-12-01T14:00:00.000Z",
             "oldest_queued_age_seconds": null,
             "deferred_by_quiet_hours": 0,
             "dead_letter_depth": 0
         })),
    ),
    security(("bearer" = []))
)]
fn queue_summary() {}

#[utoipa::path(
    post,
    path = "/keys",
    tag = "keys",
    operation_id = "create_key",
    summary = "Create an API key (its token is shown once)",
    request_body(
        content = NewKey,
        example = json!({"name": "collections", "scopes": ["send"], "countries": ["US", "CA"]})
    ),
    responses(
        (status = 201, description = "Created.", body = KeyCreated),
        (status = 400, description = "`invalid_json` or `validation_failed`.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: over 16 KiB.", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
fn create_key() {}

#[utoipa::path(
    get,
    path = "/keys",
    tag = "keys",
    operation_id = "list_keys",
    summary = "Every API key, revoked ones too (never a token or digest)",
    responses((status = 200, description = "The keys.", body = KeyList)),
    security(("bearer" = []))
)]
fn list_keys() {}

#[utoipa::path(
    delete,
    path = "/keys/{key_id}",
    tag = "keys",
    operation_id = "revoke_key",
    summary = "Revoke an API key (kept for audit)",
    params(("key_id" = String, Path)),
    responses(
        (status = 200, description = "Revoked: `revoked_at` is set.", body = KeyRevoked),
        (status = 404, description = "`key_not_found`.", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
fn revoke_key() {}

#[utoipa::path(
    delete,
    path = "/contacts/{phone}",
    tag = "contacts",
    operation_id = "erase_contact",
    summary = "Erase a person's data, both channels",
    description = "Cancels the number's pending messages, then removes bodies, media, raw \
                   payloads and the number itself; keeps counts, statuses and consent. \
                   Erasing again answers with zero counts.",
    params(("phone" = String, Path, description = "Any written form of the number, URL-encoded.",
            example = "+14155552671")),
    responses(
        (status = 200, description = "Erased.", body = ContactErased,
         example = json!({
             "erased": {"conversations": 1, "messages": 12, "canceled": 1, "sid_guards": 10,
                        "idempotency_records": 1, "phone_tenant": 1, "tenant_profiles": 1,
                        "rule_caps": 0},
             "audit_id": "01JD0000000000000000000000"
         })),
        (status = 400, description = "`invalid_phone_number`.", body = ErrorBody),
        (status = 404, description = "`not_found`: no number in the path.", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
fn erase_contact() {}

#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    operation_id = "health",
    summary = "Version and a probe of each dependency",
    responses(
        (status = 200, description = "Healthy.", body = HealthBody,
         example = json!({"ok": true, "version": "0.1.0",
                          "checks": {"store": {"ok": true, "latency_ms": 3},
                                     "secrets": {"ok": true, "latency_ms": 2}}})),
        (status = 503, description = "The table is unreachable.", body = HealthBody),
    ),
    security(("bearer" = []))
)]
fn health() {}

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "openapi_document",
    summary = "This document (no key needed)",
    responses((status = 200, description = "OpenAPI 3.1.", body = Value)),
)]
fn openapi_document() {}

#[utoipa::path(
    post,
    path = "/rules",
    tag = "rules",
    operation_id = "create_rule",
    summary = "Create an event rule (version 1)",
    request_body(content = RuleSpec, description = "docs/rules.md; example: \
                 docs/examples/invoice-overdue-rule.json."),
    responses(
        (status = 201, description = "Created.", body = Rule),
        (status = 400, description = "`invalid_json`, or `validation_failed` naming every wrong \
                                      field (a template's line and column).", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: over 64 KiB.", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
fn create_rule() {}

#[utoipa::path(
    get,
    path = "/rules",
    tag = "rules",
    operation_id = "list_rules",
    summary = "Every rule at its current version",
    responses((status = 200, description = "The rules.", body = RuleList)),
    security(("bearer" = []))
)]
fn list_rules() {}

#[utoipa::path(
    post,
    path = "/rules/preview",
    tag = "rules",
    operation_id = "preview_unsaved_rule",
    summary = "What an unsaved rule would do with a sample event (writes nothing)",
    request_body(content = PreviewUnsaved),
    responses(
        (status = 200, description = "The decision.", body = Preview),
        (status = 400, description = "`invalid_json` or `validation_failed`.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: over 64 KiB.", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
fn preview_unsaved_rule() {}

#[utoipa::path(
    get,
    path = "/rules/{rule_id}",
    tag = "rules",
    operation_id = "get_rule",
    summary = "A rule, at its current version or `?version=N`",
    params(
        ("rule_id" = String, Path),
        ("version" = Option<u32>, Query, description = "An earlier version."),
    ),
    responses(
        (status = 200, description = "The rule.", body = Rule),
        (status = 400, description = "`invalid_version`.", body = ErrorBody),
        (status = 404, description = "`rule_not_found`.", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
fn get_rule() {}

#[utoipa::path(
    put,
    path = "/rules/{rule_id}",
    tag = "rules",
    operation_id = "update_rule",
    summary = "Replace a rule's spec (a new version)",
    params(("rule_id" = String, Path)),
    request_body(content = RuleSpec),
    responses(
        (status = 200, description = "The new version.", body = Rule),
        (status = 400, description = "`invalid_json` or `validation_failed`.", body = ErrorBody),
        (status = 404, description = "`rule_not_found`.", body = ErrorBody),
        (status = 409, description = "`rule_changed`: changed by another request meanwhile.",
         body = ErrorBody),
        (status = 413, description = "`payload_too_large`: over 64 KiB.", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
fn update_rule() {}

#[utoipa::path(
    delete,
    path = "/rules/{rule_id}",
    tag = "rules",
    operation_id = "disable_rule",
    summary = "Disable a rule (a new version; every version is kept)",
    params(("rule_id" = String, Path)),
    responses(
        (status = 200, description = "The new, disabled version.", body = Rule),
        (status = 404, description = "`rule_not_found`.", body = ErrorBody),
        (status = 409, description = "`rule_changed`.", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
fn disable_rule() {}

#[utoipa::path(
    post,
    path = "/rules/{rule_id}/preview",
    tag = "rules",
    operation_id = "preview_rule",
    summary = "What a saved rule would do with a sample event (writes nothing)",
    params(("rule_id" = String, Path)),
    request_body(
        content = PreviewSaved,
        example = json!({"event": {"source": "billing", "detail-type": "invoice.overdue",
                         "detail": {"tenant_id": "t-1005", "invoice_id": "INV-1001",
                                    "amount": "$1,250.00", "due_date": "2026-12-15"}}})
    ),
    responses(
        (status = 200, description = "The decision.", body = Preview),
        (status = 400, description = "`invalid_json` or `validation_failed`.", body = ErrorBody),
        (status = 404, description = "`rule_not_found`.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: over 64 KiB.", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
fn preview_rule() {}

#[utoipa::path(
    get,
    path = "/rules/{rule_id}/activity",
    tag = "rules",
    operation_id = "rule_activity",
    summary = "What the rule did with each event, newest first",
    params(
        ("rule_id" = String, Path),
        ("limit" = Option<i32>, Query, description = "1 to 100 (default 20).",
         minimum = 1, maximum = 100),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."),
    ),
    responses(
        (status = 200, description = "One page.", body = ActivityPage),
        (status = 400, description = "`invalid_limit` or `invalid_cursor`.", body = ErrorBody),
        (status = 404, description = "`rule_not_found`.", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
fn rule_activity() {}

#[utoipa::path(
    post,
    path = "/events",
    tag = "rules",
    operation_id = "put_events",
    summary = "Put 1 to 10 events on Parley's bus (PutEvents' entry shape)",
    request_body(
        content = RawEntries,
        example = json!({"Entries": [{"Source": "billing", "DetailType": "payment.received",
                                      "Detail": {"invoice_id": "INV-1001"}}]})
    ),
    responses(
        (status = 202, description = "Published.", body = EventsAccepted),
        (status = 400, description = "`validation_failed`.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: over 64 KiB.", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
fn put_events() {}
