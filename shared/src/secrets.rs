//! Secrets from Secrets Manager: read once per cold start, cached, and re-read at most once per
//! [`REFRESH_INTERVAL`] when a signature fails (the token may have been rotated since).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::twilio::AccountSid;

/// Bounds how often failing signatures (which anyone can send) can make us call AWS.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Clone, Deserialize)]
pub struct Secrets {
    pub twilio_account_sid: AccountSid,
    pub twilio_auth_token: String,
    #[serde(default)]
    pub twilio_auth_token_previous: Option<String>,
    /// Bearer keys accepted on the authenticated HTTP API.
    #[serde(default)]
    pub api_keys: Vec<String>,
    /// Key for the HMAC pseudonyms that stand for phone numbers in logs.
    pub log_hmac_key: String,
    /// Bearer key for the Collections Monitor API.
    #[serde(default)]
    pub monitor_api_key: Option<String>,
}

impl Secrets {
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
}

pub struct SecretStore {
    client: Client,
    secret_id: String,
    current: RwLock<Arc<Secrets>>,
    last_refresh: Mutex<Instant>,
}

impl SecretStore {
    pub async fn load(client: Client, secret_id: String) -> Result<Self, SecretsError> {
        let secrets = fetch(&client, &secret_id).await?;
        Ok(Self {
            client,
            secret_id,
            current: RwLock::new(Arc::new(secrets)),
            last_refresh: Mutex::new(Instant::now()),
        })
    }

    pub fn current(&self) -> Arc<Secrets> {
        // A poisoned lock still holds a complete value: writers only swap an Arc.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads the secret unless that was done within [`REFRESH_INTERVAL`]. Returns whether a
    /// new value was loaded.
    pub async fn refresh(&self) -> Result<bool, SecretsError> {
        let mut last = self.last_refresh.lock().await;
        if last.elapsed() < REFRESH_INTERVAL {
            return Ok(false);
        }
        *last = Instant::now();
        let fresh = fetch(&self.client, &self.secret_id).await?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        Ok(true)
    }

    /// Lets the next [`SecretStore::refresh`] call AWS at once (tests of rotation).
    pub async fn allow_refresh_now(&self) {
        *self.last_refresh.lock().await = Instant::now() - REFRESH_INTERVAL;
    }
}

async fn fetch(client: &Client, secret_id: &str) -> Result<Secrets, SecretsError> {
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| SecretsError::Fetch(e.into()))?;
    let text = out.secret_string().ok_or(SecretsError::Empty)?;
    serde_json::from_str(text).map_err(SecretsError::Malformed)
}
