//! Secrets from Secrets Manager, cached for a time to live so a rotation reaches warm instances.
//!
//! [`SecretStore::fresh`] is what a request reads: a value younger than three quarters of the
//! TTL is used as is; an older one is still used while a background task re-reads it (so busy
//! instances never wait on AWS); one past the TTL is re-read before it is used (so a revoked
//! key or a rotated token is not trusted for longer than the TTL after an idle spell). If AWS
//! cannot be read the cached value stays in use, and the next try waits [`RETRY_AFTER`].
//! Signature failures (which anyone can send) may force a re-read at most once per
//! [`REFRESH_INTERVAL`]; Twilio refusing our credentials may force one at most once per
//! [`RETRY_AFTER`], and not at all when another caller already replaced the value it used.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::twilio::AccountSid;

/// Bounds how often failing signatures (which anyone can send) can make us call AWS.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// The least time between two reads of the secret that are not due to its age.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);
/// How long a read secret is trusted unless `SECRETS_TTL_SECONDS` says otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// What a function's secrets hold, merged: a deployment keeps them in one secret per purpose
/// (Twilio, API keys, cursor key, log key, monitor key) and gives each function the ids of
/// those it uses (`SECRET_ID`, comma-separated), so most fields are optional.
#[derive(Clone, Deserialize)]
pub struct Secrets {
    /// The Twilio account; functions that neither call Twilio nor check its webhooks lack it.
    #[serde(default)]
    pub twilio_account_sid: Option<AccountSid>,
    #[serde(default)]
    pub twilio_auth_token: String,
    /// A Twilio API key (`SK…`) and its secret for REST calls, so the functions that send need
    /// not hold the auth token that validates webhooks; without them REST uses the auth token.
    #[serde(default)]
    pub twilio_api_key_sid: Option<String>,
    #[serde(default)]
    pub twilio_api_key_secret: Option<String>,
    #[serde(default)]
    pub twilio_auth_token_previous: Option<String>,
    /// Bearer keys accepted on the authenticated HTTP API.
    #[serde(default)]
    pub api_keys: Vec<String>,
    /// Key for the HMAC pseudonyms that stand for phone numbers in logs.
    pub log_hmac_key: String,
    /// Key of the MACs that seal pagination cursors; when absent, `log_hmac_key` (deployments
    /// from before it existed keep working, but the two should differ).
    #[serde(default)]
    pub cursor_hmac_key: Option<String>,
    /// Bearer key for the Collections Monitor API.
    #[serde(default)]
    pub monitor_api_key: Option<String>,
}

impl Secrets {
    /// The key pagination cursors are signed with.
    pub fn cursor_key(&self) -> &str {
        self.cursor_hmac_key
            .as_deref()
            .filter(|k| !k.is_empty())
            .unwrap_or(&self.log_hmac_key)
    }

    /// The HTTP Basic user and password of Twilio's REST API: the API key when there is one,
    /// else the account and its auth token.
    pub fn twilio_rest_credentials(&self) -> Option<(&str, &str)> {
        let account = self.twilio_account_sid.as_ref()?.as_str();
        match (
            self.twilio_api_key_sid.as_deref().filter(|s| !s.is_empty()),
            self.twilio_api_key_secret
                .as_deref()
                .filter(|s| !s.is_empty()),
        ) {
            (Some(sid), Some(secret)) => Some((sid, secret)),
            _ => Some((account, self.twilio_auth_token.as_str())),
        }
    }

    /// The auth tokens a Twilio signature may be made with: current, then previous.
    pub fn twilio_tokens(&self) -> Vec<&str> {
        std::iter::once(self.twilio_auth_token.as_str())
            .chain(self.twilio_auth_token_previous.as_deref())
            .filter(|t| !t.is_empty())
            .collect()
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("could not read the secret from Secrets Manager")]
    Fetch(#[source] aws_sdk_secretsmanager::Error),
    #[error("the secret has no string value")]
    Empty,
    #[error("the secret's JSON does not have the expected fields")]
    Malformed(#[source] serde_json::Error),
    #[error("a secret is not a JSON object")]
    NotAnObject,
}

/// When AWS was last asked, for the rate limits.
struct Tries {
    /// The last re-read for age or for Twilio's 401 (none yet after the first load).
    last: Option<Instant>,
    /// The last re-read forced by a failing signature (the first load counts).
    last_forced: Instant,
}

/// The value in use and when it was read.
struct Loaded {
    secrets: Arc<Secrets>,
    read_at: Instant,
}

pub struct SecretStore {
    client: Client,
    secret_id: String,
    ttl: Duration,
    loaded: RwLock<Loaded>,
    /// Held while AWS is read, so concurrent callers make one call.
    tries: Mutex<Tries>,
    background: AtomicBool,
}

impl SecretStore {
    pub async fn load(client: Client, secret_id: String) -> Result<Self, SecretsError> {
        Self::load_with_ttl(client, secret_id, ttl_from_env()).await
    }

    pub async fn load_with_ttl(
        client: Client,
        secret_id: String,
        ttl: Duration,
    ) -> Result<Self, SecretsError> {
        let secrets = fetch(&client, &secret_id).await?;
        let now = Instant::now();
        Ok(Self {
            client,
            secret_id,
            ttl,
            loaded: RwLock::new(Loaded {
                secrets: Arc::new(secrets),
                read_at: now,
            }),
            tries: Mutex::new(Tries {
                last: None,
                last_forced: now,
            }),
            background: AtomicBool::new(false),
        })
    }

    /// How long a read value is trusted.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The value in use, whatever its age: for start-up and for what does not authorize.
    pub fn current(&self) -> Arc<Secrets> {
        self.read().secrets.clone()
    }

    /// The value a request may trust: never older than the TTL (see the module's doc).
    pub async fn fresh(self: &Arc<Self>) -> Arc<Secrets> {
        let (secrets, age) = {
            let loaded = self.read();
            (loaded.secrets.clone(), loaded.read_at.elapsed())
        };
        if age >= self.ttl {
            return self.reload(|_| true, RETRY_AFTER).await;
        }
        if age >= self.ttl / 4 * 3 && !self.background.swap(true, Ordering::AcqRel) {
            let store = Arc::clone(self);
            tokio::spawn(async move {
                store
                    .reload(|age| age >= store.ttl / 4 * 3, RETRY_AFTER)
                    .await;
                store.background.store(false, Ordering::Release);
            });
        }
        secrets
    }

    /// Re-reads the secret unless that was done within [`REFRESH_INTERVAL`] (a signature did
    /// not match). Returns whether a new value was loaded.
    pub async fn refresh(&self) -> Result<bool, SecretsError> {
        let mut tries = self.tries.lock().await;
        if tries.last_forced.elapsed() < REFRESH_INTERVAL {
            return Ok(false);
        }
        let now = Instant::now();
        tries.last_forced = now;
        tries.last = Some(now);
        let fresh = fetch(&self.client, &self.secret_id).await?;
        self.replace(fresh);
        Ok(true)
    }

    /// After Twilio refused the credentials in `used`: the value to try again with. AWS is read
    /// only if no other caller has replaced `used` already, and not within [`RETRY_AFTER`] of
    /// the last read.
    pub async fn refresh_replacing(&self, used: &Arc<Secrets>) -> Arc<Secrets> {
        self.reload(|_| Arc::ptr_eq(&self.read().secrets, used), RETRY_AFTER)
            .await
    }

    /// Lets the next re-read call AWS at once, and makes the cached value count as expired
    /// (tests of rotation).
    pub async fn allow_refresh_now(&self) {
        let past = Instant::now() - REFRESH_INTERVAL.max(self.ttl);
        *self.tries.lock().await = Tries {
            last: None,
            last_forced: past,
        };
        self.write().read_at = past;
    }

    /// Reads AWS if `still_needed` (given the value's age, checked once the read lock is held,
    /// as another caller may have just read it) and no read started within `min_gap`. A failed
    /// read keeps the value in use.
    async fn reload(
        &self,
        still_needed: impl Fn(Duration) -> bool,
        min_gap: Duration,
    ) -> Arc<Secrets> {
        let mut tries = self.tries.lock().await;
        let age = self.read().read_at.elapsed();
        if still_needed(age) && tries.last.is_none_or(|t| t.elapsed() >= min_gap) {
            tries.last = Some(Instant::now());
            match fetch(&self.client, &self.secret_id).await {
                Ok(fresh) => self.replace(fresh),
                Err(e) => tracing::warn!(
                    error = %crate::error::chain(&e),
                    age_s = age.as_secs(),
                    "could not re-read the secret; the cached value stays in use"
                ),
            }
        }
        self.current()
    }

    fn replace(&self, secrets: Secrets) {
        *self.write() = Loaded {
            secrets: Arc::new(secrets),
            read_at: Instant::now(),
        };
    }

    // A poisoned lock still holds a complete value: writers only swap it whole.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Loaded> {
        self.loaded.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Loaded> {
        self.loaded.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// `SECRETS_TTL_SECONDS`, else [`DEFAULT_TTL`]; an unreadable value falls back to the default.
fn ttl_from_env() -> Duration {
    std::env::var("SECRETS_TTL_SECONDS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TTL)
}

/// Reads every secret in `secret_ids` (comma-separated) at once and merges their JSON objects
/// (a later one's fields win).
async fn fetch(client: &Client, secret_ids: &str) -> Result<Secrets, SecretsError> {
    let ids = secret_ids
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty());
    let reads = ids.map(|id| async move {
        let out = client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| SecretsError::Fetch(e.into()))?;
        let text = out.secret_string().ok_or(SecretsError::Empty)?;
        match serde_json::from_str(text).map_err(SecretsError::Malformed)? {
            serde_json::Value::Object(fields) => Ok(fields),
            _ => Err(SecretsError::NotAnObject),
        }
    });
    let mut merged = serde_json::Map::new();
    for fields in futures::future::try_join_all(reads).await? {
        merged.extend(fields);
    }
    serde_json::from_value(serde_json::Value::Object(merged)).map_err(SecretsError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(cursor: Option<&str>) -> Secrets {
        serde_json::from_value(serde_json::json!({
            "twilio_account_sid": "AC00000000000000000000000000000000",
            "twilio_auth_token": "t",
            "log_hmac_key": "log-key",
            "cursor_hmac_key": cursor,
        }))
        .unwrap()
    }

    #[test]
    fn cursors_have_their_own_key_and_fall_back_to_the_log_key() {
        assert_eq!(secrets(Some("cursor-key")).cursor_key(), "cursor-key");
        assert_eq!(secrets(None).cursor_key(), "log-key");
        assert_eq!(secrets(Some("")).cursor_key(), "log-key");
    }
}
