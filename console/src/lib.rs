//! The operator console under `/console`: server-rendered pages (maud), no build step, no
//! script needed to use it. Sign-in exchanges an API key with the `read` scope (or `admin`)
//! for a signed session cookie; every form carries the session's CSRF token; replies and
//! cancels go through the same `send` use case as the API.
//!
//! `routes` decides what a request asks; `session` seals cookies and CSRF tokens; `pages`
//! renders; `mask` hides numbers; `dashboard` and `charts` draw the traffic counters. Each page reads at most three store items or queries.

mod charts;
mod conversation_ref;
mod dashboard;
mod errors;
mod mask;
mod pages;
mod resend;
mod response;
mod routes;
mod rules;
mod session;

use std::sync::Arc;

use http::StatusCode;
use lambda_http::{Body, Request, Response};
use parley::access::Access;
use parley::handlers::{request_id, ColdStart, InitError};
use parley::monitor::MonitorClient;
use parley::pending::Policy;
use parley::queue::JobQueue;
use parley::rules::engine::Engine;
use parley::secrets::SecretStore;
use parley::send::SendService;
use parley::store::Store;
use tracing::{info_span, Instrument};

pub use session::{Session, COOKIE};

/// Every route the console serves, as `template.yaml` declares them (method, path).
pub const ROUTES: [(&str, &str); 17] = [
    ("GET", "/console"),
    ("GET", "/console/queue"),
    ("GET", "/console/dashboard"),
    ("GET", "/console/login"),
    ("POST", "/console/login"),
    ("POST", "/console/logout"),
    ("GET", "/console/assets/{asset}"),
    ("GET", "/console/conversations/{reference}"),
    ("POST", "/console/conversations/{reference}/reply"),
    ("POST", "/console/conversations/{reference}/reveal"),
    ("POST", "/console/messages/{message_id}/cancel"),
    ("POST", "/console/messages/{message_id}/resend"),
    ("GET", "/console/rules"),
    ("GET", "/console/rules/{rule_id}"),
    ("POST", "/console/rules/{rule_id}/enable"),
    ("POST", "/console/rules/{rule_id}/disable"),
    ("POST", "/console/rules/{rule_id}/preview"),
];

pub struct ConsoleHandler {
    store: Store,
    secrets: Arc<SecretStore>,
    access: Access,
    send: SendService,
    /// The rules engine, for previews (the same evaluation the event router runs).
    engine: Engine,
}

impl ConsoleHandler {
    pub fn new(store: Store, secrets: Arc<SecretStore>, send: SendService) -> Self {
        Self {
            access: Access::new(store.clone(), secrets.clone()),
            engine: Engine::new(send.clone(), None),
            store,
            secrets,
            send,
        }
    }

    /// Previews resolve recipients through the Collections Monitor too.
    pub fn with_monitor(mut self, monitor: Option<Arc<MonitorClient>>) -> Self {
        self.engine = Engine::new(self.send.clone(), monitor);
        self
    }

    pub async fn from_env() -> Result<Self, InitError> {
        let queue_url = parley::config::required("SEND_QUEUE_URL")?;
        let policy = Arc::new(Policy::from_env()?);
        let cold = ColdStart::load_sealing().await?;
        let queue = JobQueue::new(aws_sdk_sqs::Client::new(&cold.sdk), queue_url);
        let monitor = parley::handlers::event_router::monitor(&cold)?;
        let send = SendService::new(cold.store.clone(), queue, policy);
        Ok(Self::new(cold.store, cold.secrets, send).with_monitor(monitor))
    }

    pub async fn handle(&self, req: Request) -> Response<Body> {
        let span = info_span!("console", request_id = %request_id(&req));
        match self.route(&req).instrument(span).await {
            Ok(response) => response,
            Err(e) => response::page(e.status(), pages::error_page(&e)),
        }
    }
}

/// What went wrong, as a page: the status and a sentence for the operator.
#[derive(Debug)]
pub enum ConsoleError {
    NotFound,
    BadRequest(String),
    Forbidden(String),
    Unavailable,
}

impl ConsoleError {
    fn status(&self) -> StatusCode {
        match self {
            ConsoleError::NotFound => StatusCode::NOT_FOUND,
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ConsoleError::Forbidden(_) => StatusCode::FORBIDDEN,
            ConsoleError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// A request's field errors in one sentence for the operator ("body: is required; …").
pub(crate) fn field_errors<'a>(
    fields: impl IntoIterator<Item = (&'a &'static str, &'a String)>,
) -> String {
    fields
        .into_iter()
        .map(|(field, why)| format!("{field}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<parley::store::StoreError> for ConsoleError {
    fn from(e: parley::store::StoreError) -> Self {
        tracing::warn!(error = %parley::error::chain(&e), "the store failed a console request");
        ConsoleError::Unavailable
    }
}
