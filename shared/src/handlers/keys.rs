//! `POST /keys`, `GET /keys`, `DELETE /keys/{key_id}` (admin): API keys are created with a
//! token shown once, listed without it, and revoked (kept for audit). Served by the
//! conversations function, which checks the `admin` scope first.

use http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;

use crate::access::{KeyInfo, NewKey};
use crate::error::ApiError;
use crate::http::{body_bytes, json_response};
use crate::store::Store;
use crate::time::Timestamp;

pub const ROUTE: &str = "/keys";
pub const KEY_ROUTE: &str = "/keys/{key_id}";
const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// `POST /keys`: the new key, and its token, shown this once.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyCreated<'a> {
    pub key: KeyInfo<'a>,
    /// `prly_<key_id>_<secret>`: only its digest is stored.
    pub token: String,
}

/// `GET /keys`: every key, revoked ones too (for audit).
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyList<'a> {
    pub keys: Vec<KeyInfo<'a>>,
}

/// `DELETE /keys/{key_id}`: the key, with its `revoked_at`.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyRevoked<'a> {
    pub key: KeyInfo<'a>,
}

/// Whether `path` is one of these routes.
pub fn serves(path: &str) -> bool {
    path.trim_end_matches('/') == ROUTE || path.starts_with("/keys/")
}

pub async fn route(store: &Store, req: &Request) -> Result<Response<Body>, ApiError> {
    let unavailable = |e: crate::store::StoreError| ApiError::Unavailable(e.into());
    let key_id = req.path_parameters().first("key_id").map(str::to_owned);
    match (req.method(), key_id) {
        (&Method::POST, None) => {
            let raw = body_bytes(req);
            if raw.len() > MAX_REQUEST_BYTES {
                return Err(ApiError::PayloadTooLarge {
                    limit: MAX_REQUEST_BYTES,
                });
            }
            let new: NewKey = serde_json::from_slice(raw).map_err(|e| {
                ApiError::bad_request(
                    "invalid_json",
                    format!("the body must be a key: {{name, scopes, countries?, quotas?}} ({e})"),
                )
            })?;
            let (key, token) = new
                .validate(Timestamp::now())
                .map_err(|fields| ApiError::Validation { fields })?;
            store.put_api_key(&key).await.map_err(unavailable)?;
            tracing::info!(created_key_id = %key.key_id, scopes = ?key.scopes, "API key created");
            Ok(json_response(
                StatusCode::CREATED,
                &KeyCreated {
                    key: key.info(),
                    token,
                },
            ))
        }
        (&Method::GET, None) => {
            let keys = store.api_keys().await.map_err(unavailable)?;
            let keys = keys.iter().map(|k| k.info()).collect();
            Ok(json_response(StatusCode::OK, &KeyList { keys }))
        }
        (&Method::DELETE, Some(id)) => {
            let revoked = store
                .revoke_api_key(&id, Timestamp::now())
                .await
                .map_err(unavailable)?
                .ok_or_else(|| ApiError::NotFound {
                    code: "key_not_found",
                    message: "there is no API key with this id".into(),
                })?;
            tracing::info!(revoked_key_id = %revoked.key_id, "API key revoked");
            Ok(json_response(
                StatusCode::OK,
                &KeyRevoked {
                    key: revoked.info(),
                },
            ))
        }
        _ => Err(ApiError::NotFound {
            code: "not_found",
            message: "no such resource".into(),
        }),
    }
}
