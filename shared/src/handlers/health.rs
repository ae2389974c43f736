//! `GET /health`: version and a probe of each dependency, run in parallel under a short timeout
//! so the whole call stays under a second. Authenticated like every non-webhook route; the
//! answer names dependencies and their state, never an endpoint, a message or a secret.
//!
//! `GET /openapi.json`, the API's contract, is served here too, unauthenticated: it is public,
//! and this is the lightest HTTP function. It is docs/openapi.json as committed, compiled in as
//! a string, so no function carries the generator (see `crate::openapi`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use tracing::{info_span, Instrument};

use super::{api, request_id, ColdStart, InitError};
use crate::access::Access;
use crate::http::json_response;
use crate::secrets::SecretStore;
use crate::store::Store;

/// Per-probe budget; probes run in parallel, so this bounds the whole call.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(800);
pub const ROUTE: &str = "/health";
pub const OPENAPI_ROUTE: &str = "/openapi.json";
/// The committed contract; a test fails when it differs from what the types generate.
pub const OPENAPI_DOCUMENT: &str = include_str!("../../../docs/openapi.json");

pub struct HealthHandler {
    store: Store,
    access: Access,
    secrets_client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

/// One dependency's probe.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Probe {
    pub ok: bool,
    pub latency_ms: u64,
    /// `unreachable` or `timeout`, when not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
}

#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Checks {
    pub store: Probe,
    pub secrets: Probe,
}

/// `ok` is the store's probe: without the table nothing works; the secrets were read at start.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthBody {
    pub ok: bool,
    pub version: &'static str,
    pub checks: Checks,
}

impl HealthHandler {
    pub fn new(
        store: Store,
        secrets: Arc<SecretStore>,
        secrets_client: aws_sdk_secretsmanager::Client,
        secret_id: String,
    ) -> Self {
        Self {
            access: Access::new(store.clone(), secrets),
            store,
            secrets_client,
            secret_id,
        }
    }

    pub async fn from_env() -> Result<Self, InitError> {
        let cold = ColdStart::load_bare().await?;
        let probes = crate::aws::probe(&cold.sdk);
        let store = Store::new(aws_sdk_dynamodb::Client::new(&probes), cold.store.table());
        let secrets_client = aws_sdk_secretsmanager::Client::new(&probes);
        Ok(Self::new(
            store,
            cold.secrets,
            secrets_client,
            cold.secret_id,
        ))
    }

    pub async fn handle(&self, req: Request) -> Response<Body> {
        if req.uri().path().trim_end_matches('/') == OPENAPI_ROUTE {
            return crate::http::json_text(StatusCode::OK, OPENAPI_DOCUMENT);
        }
        let span = info_span!("health", request_id = %request_id(&req));
        api::call(&self.access, &req, None, |_| async {
            let (store, secrets) = futures::join!(
                probe(self.store.ping()),
                probe(
                    self.secrets_client
                        .describe_secret()
                        .secret_id(self.secret_id.split(',').next().unwrap_or_default().trim())
                        .send()
                ),
            );
            let ok = store.ok;
            let status = if ok {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            if !(store.ok && secrets.ok) {
                tracing::warn!(
                    store = store.ok,
                    secrets = secrets.ok,
                    "dependency check failed"
                );
            }
            Ok(json_response(
                status,
                &HealthBody {
                    ok,
                    version: env!("CARGO_PKG_VERSION"),
                    checks: Checks { store, secrets },
                },
            ))
        })
        .instrument(span)
        .await
    }
}

async fn probe<T, E>(call: impl std::future::Future<Output = Result<T, E>>) -> Probe {
    let started = Instant::now();
    let error = match tokio::time::timeout(PROBE_TIMEOUT, call).await {
        Ok(Ok(_)) => None,
        Ok(Err(_)) => Some("unreachable"),
        Err(_) => Some("timeout"),
    };
    Probe {
        ok: error.is_none(),
        latency_ms: started.elapsed().as_millis() as u64,
        error,
    }
}
