//! A local stand-in for the Collections Monitor tenant API.
//!
//! The Collections Monitor is the property platform's system of record for tenants. Parley asks
//! it which tenant owns a phone number and pushes tenant language preferences to it. Its
//! database keeps phone numbers as users typed them and its lookup compares the stored string
//! **exactly**, so Parley has to try several spellings of a number; this stub does the same.
//!
//! # Library
//!
//! - [`MonitorConfig`]: the API key it accepts and the tenants it starts with
//!   ([`default_fixtures`] unless changed).
//! - [`spawn`]: serve in the background on a listener; the returned [`RunningMonitor`] stops
//!   the server (and any answer held back by a `slow` fault) when dropped.
//! - [`serve`]: serve on a listener until the future is dropped.
//! - [`router`]: the bare [`axum::Router`], to mount elsewhere.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! let config = monitor_stub::MonitorConfig::new("test-api-key");
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let monitor = monitor_stub::spawn(listener, config).await?;
//! let base_url = monitor.url(); // "http://127.0.0.1:PORT"
//! // … point Parley's Monitor client at `base_url`; dropping `monitor` stops it.
//! # Ok(()) }
//! ```
//!
//! # Tenant API (JSON; `Authorization: Bearer <api_key>` or `401 {"error":"unauthorized"}`)
//!
//! A tenant is `{"tenant_id", "name", "phone_numbers": [stored strings], "preferred_language":
//! "en" | "es" | "pt" | null}`.
//!
//! - `GET /tenants/lookup?phone=<string>` → `200 {"tenant": …}` for the first tenant storing
//!   exactly that string, else `404 {"error":"not_found"}`. The query is form-decoded and
//!   nothing else: `%2B1415…` is `+1415…`, a bare `+` is a space, and `(415) 555-0101` matches
//!   only `(415) 555-0101`. No `phone` parameter → `400`.
//! - `GET /tenants/{tenant_id}` → `200 {"tenant": …}` or `404`.
//! - `PUT /tenants/{tenant_id}/profile` `{"preferred_language": "es", "language_confidence":
//!   0.93, "source": "parley", "reason": "…", …}` → `200 {"tenant": …}` with the new language;
//!   `404` for an unknown tenant (checked first); `400` when the body is not a JSON object or
//!   `preferred_language` is not one of `en`, `es`, `pt`. Other fields are accepted and kept in
//!   the record of updates.
//!
//! Errors are `{"error": "<code>"}`: `unauthorized` 401, `not_found` 404, `method_not_allowed`
//! 405, `internal_error` 500, `unavailable` 503; `bad_request` 400 also has a `message`.
//!
//! Every lookup and every profile update that reaches the stub is recorded on arrival with the
//! status it is answered (401s, 4xxs and faults included), for the control API below.
//!
//! # Control API (`/_stub/…`, no auth, JSON)
//!
//! - `POST /_stub/tenants` `{"tenant_id", "name", "phone_numbers": [...],
//!   "preferred_language"?}` → `201 {"tenant": …}`: adds the tenant, or replaces the one with
//!   that id. `GET /_stub/tenants` → `{"tenants": [...]}`.
//! - `GET /_stub/profile-updates[?tenant_id=]` → `{"updates": [{"tenant_id", "body" (as
//!   received; a string if it was not JSON), "received_at" (RFC 3339), "status", "fault"?}]}`
//!   in arrival order.
//! - `GET /_stub/lookups[?phone=]` → `{"lookups": [{"phone", "status", "fault"?,
//!   "received_at"}]}` in arrival order; `phone` filters by exact string (form-decoded too).
//! - `POST /_stub/faults` `{"kind", "count"? (1), "delay_ms"? (3000), "phone"?}` → `201` and
//!   the fault. Faults apply to the tenant API, never to `/_stub`:
//!   - `server_error`: the next `count` matching requests answer `500`, with nothing looked
//!     up or applied;
//!   - `slow`: the next `count` matching requests are handled on arrival (an update is applied
//!     and recorded) and answered `delay_ms` later, so a client that gives up first has still
//!     changed the tenant;
//!   - `down`: every matching request answers `503` until cleared, even without valid
//!     credentials (`count` is ignored).
//!
//!   With `phone`, a fault matches only lookups of exactly that string; without, it matches
//!   every API request. A request uses at most one counted fault, a phone-scoped one first.
//!   `GET /_stub/faults` → `{"faults": [...]}` still in force.
//! - `POST /_stub/faults/clear` [`{"phone"}`] → `{"cleared": n}`: all faults, or only those
//!   scoped to `phone`.
//! - `POST /_stub/reset` → `204`: the configured tenants again, no updates, lookups or faults.
//!
//! Requests are logged as method, route template and status only: never a phone number, a
//! query string or a body.

mod api;
mod control;
mod error;
mod state;
mod tenant;

use std::sync::Arc;

use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};

use crate::state::Shared;

pub use crate::tenant::{default_fixtures, Language, Tenant};

/// What the stub accepts and whom it knows.
#[derive(Clone)]
pub struct MonitorConfig {
    /// The bearer token every tenant API request must carry.
    pub api_key: String,
    /// The tenants at start and after `POST /_stub/reset`.
    pub tenants: Vec<Tenant>,
}

impl MonitorConfig {
    /// `api_key` with the [`default_fixtures`].
    pub fn new(api_key: impl Into<String>) -> Self {
        Self {
            api_key: api_key.into(),
            tenants: default_fixtures(),
        }
    }
}

impl std::fmt::Debug for MonitorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorConfig")
            .field("api_key", &"<redacted>")
            .field("tenants", &self.tenants.len())
            .finish()
    }
}

/// The stub's routes, with fresh state.
pub fn router(config: MonitorConfig) -> axum::Router {
    app(Arc::new(Shared::new(config)))
}

fn app(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/tenants/lookup", get(api::lookup))
        .route("/tenants/{tenant_id}", get(api::fetch))
        .route("/tenants/{tenant_id}/profile", put(api::update_profile))
        .route(
            "/_stub/tenants",
            post(control::put_tenant).get(control::tenants),
        )
        .route("/_stub/profile-updates", get(control::profile_updates))
        .route("/_stub/lookups", get(control::lookups))
        .route(
            "/_stub/faults",
            post(control::add_fault).get(control::faults),
        )
        .route("/_stub/faults/clear", post(control::clear_faults))
        .route("/_stub/reset", post(control::reset))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(middleware::from_fn(access_log))
        .with_state(shared)
}

/// One log line per request: method, route template, status. Never the URI itself, which may
/// carry a phone number.
async fn access_log(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "<unmatched>".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    tracing::info!(
        method = %method,
        route = %route,
        status = response.status().as_u16(),
        "monitor stub request"
    );
    response
}

/// Serves the stub on `listener` until the returned future is dropped or fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: MonitorConfig,
) -> std::io::Result<()> {
    axum::serve(listener, router(config)).await
}

/// Serves the stub on `listener` in the background.
pub async fn spawn(
    listener: tokio::net::TcpListener,
    config: MonitorConfig,
) -> std::io::Result<RunningMonitor> {
    let shared = Arc::new(Shared::new(config));
    let closing = shared.clone();
    stub_server::spawn("monitor stub", listener, app(shared), move || {
        closing.close()
    })
}

/// A stub serving in the background; dropping it stops the server. `url()` is the Monitor's
/// base URL.
pub type RunningMonitor = stub_server::Running;
