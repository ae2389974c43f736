//! The OpenAPI 3.1 document of every HTTP route (docs/openapi.json), generated from the types
//! the handlers really serialize and parse: each one derives `utoipa::ToSchema` behind this
//! crate's `openapi` feature. The handlers dispatch on a `lambda_http::Request` rather than
//! taking typed extractors, so each operation is declared here, on a stub, naming those types.
//!
//! Only the generator (`parley-local openapi`) and the tests build this; the `health` function
//! serves the committed file, and a test fails when it differs from [`document`].

mod paths;
mod schemas;

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, Ref, RefOr, Response, ResponseBuilder, Responses,
};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::error::ErrorBody;

/// The document, as committed: pretty JSON and a final newline.
pub fn document() -> String {
    let mut json = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    json.push('\n');
    json
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Parley",
        description = "Two-way SMS for a property-management platform, over Twilio: send and \
                       schedule texts, read conversations, manage API keys, event rules and \
                       erasure. Twilio calls the two webhooks; everything else takes an API \
                       key (`Authorization: Bearer …`) with a scope: `send`, `read` or `admin` \
                       (which includes the others). Every 4xx and 5xx has the `ErrorBody` shape.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        paths::inbound_sms,
        paths::status_callback,
        paths::send_sms,
        paths::cancel_message,
        paths::get_conversation,
        paths::get_message,
        paths::list_conversations,
        paths::stats,
        paths::list_queue,
        paths::queue_summary,
        paths::create_key,
        paths::list_keys,
        paths::revoke_key,
        paths::erase_contact,
        paths::health,
        paths::openapi_document,
        paths::create_rule,
        paths::list_rules,
        paths::preview_unsaved_rule,
        paths::get_rule,
        paths::update_rule,
        paths::disable_rule,
        paths::preview_rule,
        paths::rule_activity,
        paths::put_events,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Security, &CommonResponses),
    tags(
        (name = "webhooks", description = "Called by Twilio, signed with `X-Twilio-Signature`."),
        (name = "messages", description = "Send, schedule and cancel texts (`send` scope)."),
        (name = "conversations", description = "Read threads and messages (`read` scope)."),
        (name = "queue", description = "What is scheduled, deferred or queued (`read` scope)."),
        (name = "keys", description = "API keys (`admin` scope)."),
        (name = "contacts", description = "Erasure of a person's data (`admin` scope)."),
        (name = "rules", description = "Event rules (`admin` scope) and `POST /events` (`send`)."),
        (name = "operations", description = "Health and this document."),
    )
)]
struct ApiDoc;

/// The names the paths use in `security(...)`.
pub const BEARER: &str = "bearer";
pub const TWILIO_SIGNATURE: &str = "twilio_signature";

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key: `prly_<key_id>_<secret>` (POST /keys, `parley-local keys \
                         create`), or a bootstrap key from the deployment's secret.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            TWILIO_SIGNATURE,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Twilio-Signature",
                "Twilio's HMAC-SHA1 of the URL it called and the sorted form parameters, keyed \
                 with the account's auth token (docs/architecture.md, \"Webhook verification\").",
            ))),
        );
    }
}

/// The answers every operation of a kind can give, added where the operation does not
/// describe them itself: `ApiError`s from authentication, quotas and dependencies, and the
/// webhooks' checks of body and signature.
struct CommonResponses;

/// (status, component name, description) shared by every authenticated operation.
const API_KEY_RESPONSES: [(&str, &str, &str); 5] = [
    (
        "401",
        "Unauthorized",
        "`unauthorized`: no `Authorization: Bearer` header, or an unknown or revoked key.",
    ),
    (
        "403",
        "Forbidden",
        "`insufficient_scope`: the key lacks the operation's scope.",
    ),
    (
        "429",
        "TooManyRequests",
        "`rate_limited` (the key's requests per second) or `daily_quota_exceeded`; \
         `Retry-After` says when to try again.",
    ),
    (
        "500",
        "InternalError",
        "`internal`: a failure of ours (logged; the answer says no more).",
    ),
    (
        "503",
        "Unavailable",
        "`unavailable`: a dependency (the table, the queue, the bus) failed; retry later.",
    ),
];

/// Those of the two Twilio webhooks.
const WEBHOOK_RESPONSES: [(&str, &str, &str); 5] = [
    (
        "400",
        "MalformedWebhook",
        "`malformed_body` (not UTF-8, or not a form) or `invalid_webhook` (a field Twilio \
         always sends is missing or invalid).",
    ),
    (
        "403",
        "InvalidSignature",
        "`missing_signature`, `invalid_signature`, or `account_mismatch` (another account).",
    ),
    (
        "413",
        "WebhookTooLarge",
        "`payload_too_large`: over 64 KiB, which Twilio never sends.",
    ),
    ("500", "InternalError", ""),
    ("503", "Unavailable", ""),
];

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (status, name, description) in API_KEY_RESPONSES.iter().chain(&WEBHOOK_RESPONSES) {
            if description.is_empty() {
                continue;
            }
            components.responses.insert(
                (*name).to_owned(),
                RefOr::T(error_response(status, description)),
            );
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            let common: &[(&str, &str, &str)] = match path.as_str() {
                "/openapi.json" => &[],
                p if p.starts_with("/webhook/") => &WEBHOOK_RESPONSES,
                _ => &API_KEY_RESPONSES,
            };
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                add_missing(operation, common);
            }
        }
    }
}

fn add_missing(operation: &mut Operation, common: &[(&str, &str, &str)]) {
    let Responses { responses, .. } = &mut operation.responses;
    for (status, name, _) in common {
        responses
            .entry((*status).to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*name)));
    }
}

fn error_response(status: &str, description: &str) -> Response {
    let content = ContentBuilder::new()
        .schema(Some(RefOr::Ref(Ref::from_schema_name(ErrorBody::name()))))
        .build();
    let response = ResponseBuilder::new()
        .description(description)
        .content("application/json", content);
    match status {
        "429" => response
            .header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(<u64 as utoipa::PartialSchema>::schema())
                    .description(Some("Seconds until the quota has room again."))
                    .build(),
            )
            .build(),
        _ => response.build(),
    }
}
