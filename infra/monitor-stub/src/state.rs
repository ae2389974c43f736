//! The stub's memory: tenants, every profile update and lookup received, pending faults.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use http::{header, HeaderMap};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::tenant::Tenant;
use crate::MonitorConfig;

/// What an injected fault does to the API requests it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FaultKind {
    /// 500 `{"error": "internal_error"}`, nothing looked up or applied.
    ServerError,
    /// Handled on arrival as usual, answered `delay_ms` later.
    Slow,
    /// 503 `{"error": "unavailable"}` until cleared, before authentication.
    Down,
}

/// One injected fault. `phone: Some` scopes it to lookups of exactly that string.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Fault {
    pub kind: FaultKind,
    /// Requests left to fail; `None` for `down`, which lasts until cleared.
    pub count: Option<u32>,
    /// Only for `slow`.
    pub delay_ms: Option<u64>,
    pub phone: Option<String>,
}

impl Fault {
    fn applies_to(&self, phone: Option<&str>) -> bool {
        match &self.phone {
            None => true,
            Some(scope) => phone == Some(scope.as_str()),
        }
    }
}

/// A `PUT /tenants/{id}/profile` as received, with the status it was answered.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ProfileUpdate {
    pub tenant_id: String,
    /// The JSON body as sent (a string when it was not JSON).
    pub body: Value,
    pub received_at: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultKind>,
}

/// A `GET /tenants/lookup` as received, with the status it was answered.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Lookup {
    pub phone: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultKind>,
    pub received_at: String,
}

#[derive(Default)]
pub(crate) struct State {
    pub tenants: Vec<Tenant>,
    pub updates: Vec<ProfileUpdate>,
    pub lookups: Vec<Lookup>,
    pub faults: Vec<Fault>,
}

impl State {
    fn fresh(config: &MonitorConfig) -> Self {
        Self {
            tenants: config.tenants.clone(),
            ..Self::default()
        }
    }

    /// The first tenant (in insertion order) that stores exactly `phone`.
    pub fn tenant_with_number(&self, phone: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.has_number(phone))
    }

    pub fn tenant(&self, tenant_id: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.tenant_id == tenant_id)
    }

    pub fn tenant_mut(&mut self, tenant_id: &str) -> Option<&mut Tenant> {
        self.tenants.iter_mut().find(|t| t.tenant_id == tenant_id)
    }

    /// Adds `tenant`, or replaces the one with the same id in place.
    pub fn upsert(&mut self, tenant: Tenant) {
        match self.tenant_mut(&tenant.tenant_id) {
            Some(existing) => *existing = tenant,
            None => self.tenants.push(tenant),
        }
    }

    /// Takes one use of the first counted fault for this request: one scoped to `phone`
    /// first, then an unscoped one. Used-up faults are removed.
    fn take_counted_fault(&mut self, phone: Option<&str>) -> Option<Fault> {
        let counted = |f: &&Fault| f.kind != FaultKind::Down;
        let index = self
            .faults
            .iter()
            .position(|f| counted(&f) && f.phone.is_some() && f.applies_to(phone))
            .or_else(|| {
                self.faults
                    .iter()
                    .position(|f| counted(&f) && f.phone.is_none())
            })?;
        let fault = &mut self.faults[index];
        let taken = fault.clone();
        let left = fault.count.unwrap_or(1).saturating_sub(1);
        if left == 0 {
            self.faults.remove(index);
        } else {
            fault.count = Some(left);
        }
        Some(taken)
    }
}

/// How an API request is to be handled, decided before the route's own logic.
pub(crate) enum Gate {
    /// Handle it normally.
    Pass,
    /// Handle it on arrival, answer after the delay.
    Slow(Duration),
    /// Answer this error without handling it.
    Refuse(ApiError, Option<FaultKind>),
}

/// State shared by every request of one stub.
pub(crate) struct Shared {
    config: MonitorConfig,
    state: Mutex<State>,
    closed: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    pub fn new(config: MonitorConfig) -> Self {
        Self {
            state: Mutex::new(State::fresh(&config)),
            config,
            closed: tokio::sync::watch::Sender::new(false),
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        stub_server::lock(&self.state)
    }

    /// Back to the configured tenants, with no updates, lookups or faults.
    pub fn reset(&self) {
        *self.state() = State::fresh(&self.config);
    }

    /// `down` (scoped to `phone` or not) first, so a down Monitor refuses even bad
    /// credentials; then the bearer token; then one use of a counted fault.
    pub fn admit(&self, headers: &HeaderMap, phone: Option<&str>) -> Gate {
        let mut state = self.state();
        if state
            .faults
            .iter()
            .any(|f| f.kind == FaultKind::Down && f.applies_to(phone))
        {
            return Gate::Refuse(ApiError::Unavailable, Some(FaultKind::Down));
        }
        if !self.authorized(headers) {
            return Gate::Refuse(ApiError::Unauthorized, None);
        }
        match state.take_counted_fault(phone) {
            None => Gate::Pass,
            Some(Fault {
                kind: FaultKind::ServerError,
                ..
            }) => Gate::Refuse(ApiError::ServerError, Some(FaultKind::ServerError)),
            Some(Fault {
                kind: FaultKind::Slow,
                delay_ms,
                ..
            }) => Gate::Slow(Duration::from_millis(delay_ms.unwrap_or(0))),
            Some(Fault {
                kind: FaultKind::Down,
                ..
            }) => Gate::Refuse(ApiError::Unavailable, Some(FaultKind::Down)),
        }
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some((scheme, token)) = value.split_once(' ') else {
            return false;
        };
        scheme.eq_ignore_ascii_case("bearer")
            && !self.config.api_key.is_empty()
            && token.trim() == self.config.api_key
    }

    /// Sleeps for `delay`; false if the stub was stopped meanwhile.
    pub async fn delay(&self, delay: Duration) -> bool {
        let mut closed = self.closed.subscribe();
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            _ = closed.wait_for(|c| *c) => false,
        }
    }

    /// Ends pending `slow` answers (they answer 503).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }
}

/// Now, as RFC 3339 UTC.
pub(crate) fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}
