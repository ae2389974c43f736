//! `DELETE /contacts/{phone}` (admin): erasure of a person's data. Any written form of the
//! number is accepted, and both its channels (SMS and WhatsApp) are erased: pending messages
//! to it are canceled first (nothing is sent after), then `Store::erase_contact` moves its
//! conversations out of the number's keys, keeping counts and statuses, and drops its tenant
//! mapping. The consent record stays (the law requires the opt-out to be kept). Every call
//! leaves an audit entry with a keyed pseudonym of the number, never the number; erasing
//! again answers with zero counts. Served by the conversations function.

use http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;

use crate::access::Caller;
use crate::error::ApiError;
use crate::http::json_response;
use crate::phone::Address;
use crate::send::cancel::{cancel_pending_to, CancelReason};
use crate::store::{ErasureAudit, ErasureCounts, Store};
use crate::telemetry::Pseudonymizer;
use crate::time::Timestamp;

pub const ROUTE: &str = "/contacts/{phone}";
pub const PREFIX: &str = "/contacts/";

/// What an erasure removed (all zeros when there was nothing left), and its audit entry.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactErased {
    pub erased: ErasureCounts,
    pub audit_id: String,
}

pub async fn route(
    store: &Store,
    pseudonyms: &Pseudonymizer,
    caller: &Caller,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let raw = req
        .path_parameters()
        .first("phone")
        .map(str::to_owned)
        .or_else(|| {
            req.raw_http_path()
                .strip_prefix(PREFIX)
                .map(|p| p.trim_end_matches('/').to_owned())
        })
        .filter(|p| !p.is_empty());
    let (&Method::DELETE, Some(raw)) = (req.method(), raw) else {
        return Err(ApiError::NotFound {
            code: "not_found",
            message: "no such resource".into(),
        });
    };
    // Decoded again when still encoded (`%2B1415…`): callers and proxies differ on it.
    let decoded = match raw.contains('%') {
        true => crate::twilio::form::percent_decode(&raw)
            .map_err(|e| ApiError::bad_request("invalid_phone_number", e.to_string()))?,
        false => raw,
    };
    let phone = Address::parse(&decoded)
        .map_err(|e| ApiError::bad_request("invalid_phone_number", e.to_string()))?
        .e164;
    let unavailable = |e: crate::store::StoreError| ApiError::Unavailable(e.into());
    let now = Timestamp::now();
    let canceled = cancel_pending_to(store, &phone, CancelReason::Erased, now, now)
        .await
        .map_err(unavailable)?;
    let mut counts = store
        .erase_contact(&phone, now)
        .await
        .map_err(unavailable)?;
    counts.canceled += canceled as u64;
    let audit = ErasureAudit {
        audit_id: ulid::Ulid::new().to_string(),
        erased_at: now.to_string(),
        key_id: caller.key_id().to_owned(),
        phone_pseudonym: pseudonyms.pseudonym(&phone),
        counts,
    };
    store.put_erasure_audit(&audit).await.map_err(unavailable)?;
    tracing::info!(
        audit_id = %audit.audit_id,
        phone = %audit.phone_pseudonym,
        conversations = counts.conversations,
        messages = counts.messages,
        canceled = counts.canceled,
        "contact erased"
    );
    Ok(json_response(
        StatusCode::OK,
        &ContactErased {
            erased: counts,
            audit_id: audit.audit_id,
        },
    ))
}
