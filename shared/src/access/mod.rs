//! Who may call the HTTP API, and how much: API keys with an id, scopes, destination countries
//! and quotas (see docs/architecture.md, "Access").
//!
//! Keys live in the table (`POST /keys`, `parley-local keys create`), hashed. The secret's
//! `api_keys` stay valid as bootstrap keys with every scope, so a new deployment has a key
//! that can create the others. A looked-up key is cached for the secrets' TTL, so a revoked
//! key stops working within it.

pub mod key;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use key::{issue, ApiKey, Issued, KeyInfo, NewKey, Quotas, Scope, Token};

use crate::error::ApiError;
use crate::phone::E164;
use crate::secrets::SecretStore;
use crate::store::api_keys::Counted;
use crate::store::{keys, Store};
use crate::time::Timestamp;

/// Lookups kept at most; beyond it the cache starts over (guessed ids cannot grow it forever).
const CACHE_LIMIT: usize = 10_000;

/// The id of a key from the secret's `api_keys`: the prefix and 12 hex digits of its digest.
const BOOTSTRAP_PREFIX: &str = "secret-";

/// Keys by id as last read (`None`: no such key), and when.
type KeyCache = HashMap<String, (Option<Arc<ApiKey>>, Instant)>;

/// The key a request was made with.
#[derive(Debug, Clone)]
pub struct Caller {
    key: Arc<ApiKey>,
}

impl Caller {
    /// The key's id: in logs, metrics and idempotency records, never the key itself.
    pub fn key_id(&self) -> &str {
        &self.key.key_id
    }

    /// Whether the key has `scope` (`admin` includes the others).
    pub fn allows(&self, scope: Scope) -> bool {
        self.key.allows(scope)
    }
}

pub struct Access {
    store: Store,
    secrets: Arc<SecretStore>,
    ttl: Duration,
    /// Where messages may go when a key names no countries; `None`: anywhere.
    default_countries: Option<Vec<String>>,
    cache: Mutex<KeyCache>,
}

impl Access {
    /// `ALLOWED_COUNTRIES` (comma-separated ISO regions, e.g. `US,CA`; empty: any) is the
    /// default destination list.
    pub fn new(store: Store, secrets: Arc<SecretStore>) -> Self {
        let countries = crate::config::optional("ALLOWED_COUNTRIES").map(|v| parse_countries(&v));
        Self::with_countries(store, secrets, countries)
    }

    pub fn with_countries(
        store: Store,
        secrets: Arc<SecretStore>,
        default_countries: Option<Vec<String>>,
    ) -> Self {
        Self {
            ttl: secrets.ttl(),
            store,
            secrets,
            default_countries: default_countries.filter(|c| !c.is_empty()),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The caller behind `Authorization: Bearer <key>`; 401 for a missing, unknown or revoked
    /// key (one answer for all three: nothing tells a guesser which it hit).
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, ApiError> {
        let presented = bearer(authorization).ok_or(ApiError::Unauthorized)?;
        let key = match Token::parse(presented) {
            Some(token) => self
                .stored(token.key_id)
                .await?
                .filter(|k| !k.is_revoked() && k.matches(token.secret)),
            None => self.bootstrap(presented).await,
        };
        key.map(|key| Caller { key }).ok_or(ApiError::Unauthorized)
    }

    /// The caller behind a key id a console session names, if the key is still valid: a
    /// stored key not revoked, or a bootstrap key still in the secret.
    pub async fn caller(&self, key_id: &str) -> Result<Option<Caller>, ApiError> {
        if let Some(digest) = key_id.strip_prefix(BOOTSTRAP_PREFIX) {
            let secrets = self.secrets.fresh().await;
            let still_there = secrets
                .api_keys
                .iter()
                .find(|k| key::sha256_hex(k).starts_with(digest));
            return Ok(match still_there {
                Some(presented) => self.bootstrap(presented).await.map(|key| Caller { key }),
                None => None,
            });
        }
        Ok(self
            .stored(key_id)
            .await?
            .filter(|k| !k.is_revoked())
            .map(|key| Caller { key }))
    }

    /// 403 `insufficient_scope` unless the key has `scope` (any key when `None`); 429 past its
    /// requests per second.
    pub async fn admit(&self, caller: &Caller, scope: Option<Scope>) -> Result<(), ApiError> {
        if let Some(scope) = scope.filter(|s| !caller.key.allows(*s)) {
            return Err(ApiError::forbidden(
                "insufficient_scope",
                format!("this API key lacks the `{}` scope", scope.as_str()),
            ));
        }
        let Some(limit) = caller.key.quotas.requests_per_second else {
            return Ok(());
        };
        let second = Timestamp::now().unix_seconds();
        let window = keys::quota_second_sk(second);
        self.count(caller, &window, limit, second + 120, || {
            ApiError::TooManyRequests {
                code: "rate_limited",
                message: format!("this API key may make {limit} requests per second"),
                retry_after: 1,
            }
        })
        .await
    }

    /// Whether the caller may send one more message to `to`: 403 `destination_not_allowed`
    /// outside its countries, 429 `daily_quota_exceeded` past its messages per day.
    pub async fn admit_message(
        &self,
        caller: &Caller,
        to: &E164,
        now: Timestamp,
    ) -> Result<(), ApiError> {
        let allowed = caller
            .key
            .countries
            .as_ref()
            .or(self.default_countries.as_ref());
        if let Some(allowed) = allowed {
            let region = to.region();
            if !region.is_some_and(|r| allowed.iter().any(|a| a.eq_ignore_ascii_case(&r))) {
                return Err(ApiError::forbidden(
                    "destination_not_allowed",
                    format!(
                        "this API key may send only to numbers of {}",
                        allowed.join(", ")
                    ),
                ));
            }
        }
        let Some(limit) = caller.key.quotas.messages_per_day else {
            return Ok(());
        };
        let (date, next_midnight) = now.utc_day();
        let window = keys::quota_day_sk(&date);
        let expires = next_midnight.unix_seconds() + 86_400;
        self.count(caller, &window, limit, expires, || {
            ApiError::TooManyRequests {
                code: "daily_quota_exceeded",
                message: format!("this API key may send {limit} messages per UTC day"),
                retry_after: (next_midnight.unix_seconds() - now.unix_seconds()).max(1) as u64,
            }
        })
        .await
    }

    /// One more use of the caller's quota window, or `over_limit` when it is used up.
    async fn count(
        &self,
        caller: &Caller,
        window_sk: &str,
        limit: u32,
        expires_at: i64,
        over_limit: impl FnOnce() -> ApiError,
    ) -> Result<(), ApiError> {
        let counted = self
            .store
            .count_use(caller.key_id(), window_sk, limit, expires_at)
            .await
            .map_err(|e| ApiError::Unavailable(e.into()))?;
        match counted {
            Counted::Within => Ok(()),
            Counted::OverLimit => Err(over_limit()),
        }
    }

    /// A stored key by id, from the cache while it is younger than the TTL.
    async fn stored(&self, key_id: &str) -> Result<Option<Arc<ApiKey>>, ApiError> {
        if let Some((key, at)) = self.cache().get(key_id) {
            if at.elapsed() < self.ttl {
                return Ok(key.clone());
            }
        }
        let key = self
            .store
            .api_key(key_id)
            .await
            .map_err(|e| ApiError::Unavailable(e.into()))?
            .map(Arc::new);
        let mut cache = self.cache();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key_id.to_owned(), (key.clone(), Instant::now()));
        Ok(key)
    }

    /// A key from the secret's `api_keys`: every scope, the deployment's countries, no quota.
    /// Compared as SHA-256 digests in constant time against every configured key.
    async fn bootstrap(&self, presented: &str) -> Option<Arc<ApiKey>> {
        let secrets = self.secrets.fresh().await;
        matches_any(presented, &secrets.api_keys).then(|| {
            let hex = key::sha256_hex(presented);
            Arc::new(ApiKey {
                key_id: format!("{BOOTSTRAP_PREFIX}{}", &hex[..12]),
                name: "bootstrap key from the secret".into(),
                scopes: Scope::ALL.into_iter().collect(),
                countries: None,
                quotas: Quotas::default(),
                created_at: Timestamp::from_unix_millis(0).unwrap_or_else(Timestamp::now),
                revoked_at: None,
                secret_sha256: hex,
            })
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, KeyCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The key in `Authorization: Bearer <key>`.
fn bearer(authorization: Option<&str>) -> Option<&str> {
    authorization
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// Whether `presented` is one of `keys`. Keys are compared as SHA-256 digests in constant
/// time, so neither a key's content nor its length leaks through timing, and every key is
/// always checked.
fn matches_any(presented: &str, keys: &[String]) -> bool {
    let digest = Sha256::digest(presented.as_bytes());
    let mut matched = subtle::Choice::from(0);
    for key in keys.iter().filter(|k| !k.is_empty()) {
        matched |= Sha256::digest(key.as_bytes()).ct_eq(&digest);
    }
    bool::from(matched)
}

/// `US, ca` → `["US", "CA"]`.
pub fn parse_countries(list: &str) -> Vec<String> {
    list.split(',')
        .map(|c| c.trim().to_ascii_uppercase())
        .filter(|c| !c.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<String> {
        vec!["old-key".into(), "new-key".into()]
    }

    #[test]
    fn any_configured_bootstrap_key_is_accepted() {
        assert!(matches_any(
            bearer(Some("Bearer new-key")).unwrap(),
            &keys()
        ));
        assert!(matches_any(
            bearer(Some("bearer old-key")).unwrap(),
            &keys()
        ));
    }

    #[test]
    fn everything_else_is_refused() {
        for header in [
            None,
            Some(""),
            Some("Bearer "),
            Some("new-key"),
            Some("Basic bmV3LWtleQ=="),
        ] {
            assert!(
                bearer(header).is_none_or(|k| !matches_any(k, &keys())),
                "{header:?}"
            );
        }
        for key in ["new-key2", "NEW-KEY", "new-ke"] {
            assert!(!matches_any(key, &keys()), "{key}");
        }
        assert!(
            !matches_any("", &[String::new()]),
            "an empty key never matches"
        );
    }

    #[test]
    fn countries_are_read_in_any_case_and_spacing() {
        assert_eq!(parse_countries(" us, ca ,,PT"), ["US", "CA", "PT"]);
        assert!(parse_countries("").is_empty());
    }
}
