//! The enabled rules, held in memory for a short time: the router matches every event against
//! them without reading the table (a non-matching event costs no DynamoDB request), and a
//! change reaches every instance within the TTL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::rule::Rule;
use crate::store::{Store, StoreError};

pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

pub struct RuleCache {
    store: Store,
    ttl: Duration,
    loaded: Mutex<Option<(Instant, Arc<Vec<Rule>>)>>,
}

impl RuleCache {
    pub fn new(store: Store, ttl: Duration) -> Self {
        Self {
            store,
            ttl,
            loaded: Mutex::new(None),
        }
    }

    /// `RULES_CACHE_SECONDS` (default 30).
    pub fn from_env(store: Store) -> Result<Self, crate::config::ConfigError> {
        let ttl = match crate::config::optional("RULES_CACHE_SECONDS") {
            None => DEFAULT_TTL,
            Some(v) => {
                Duration::from_secs(v.parse().map_err(|_| crate::config::ConfigError::Invalid {
                    name: "RULES_CACHE_SECONDS",
                    reason: "a whole number of seconds".into(),
                })?)
            }
        };
        Ok(Self::new(store, ttl))
    }

    /// The enabled rules, read again once the copy is older than the TTL. A failed read keeps
    /// serving the copy it has (rules change rarely; events must not wait on a brownout).
    pub async fn enabled(&self) -> Result<Arc<Vec<Rule>>, StoreError> {
        let mut loaded = self.loaded.lock().await;
        if let Some((at, rules)) = loaded.as_ref() {
            if at.elapsed() < self.ttl {
                return Ok(rules.clone());
            }
        }
        match self.store.rules().await {
            Ok(mut rules) => {
                rules.retain(|r| r.spec.enabled);
                let rules = Arc::new(rules);
                *loaded = Some((Instant::now(), rules.clone()));
                Ok(rules)
            }
            Err(e) => match loaded.as_ref() {
                Some((_, rules)) => {
                    tracing::warn!(error = %e, "could not reload the rules; using the cached copy");
                    Ok(rules.clone())
                }
                None => Err(e),
            },
        }
    }
}
