//! One module per Lambda function: each turns a `lambda_http::Request` into a response using
//! only the domain, the store and Twilio validation. The function binaries and the local
//! gateway run exactly this code.

pub mod api;
pub mod contacts;
pub mod conversations;
pub mod dispatcher;
pub mod event_router;
pub mod health;
pub mod inbound_backfill;
pub mod inbound_processor;
pub mod inbound_sms;
pub mod inbox;
pub mod keys;
pub mod queue;
pub mod rules;
pub mod send_sms;
pub mod send_worker;
pub mod stats;
pub mod status_callback;
pub mod webhook;

use crate::config::ConfigError;
use crate::secrets::SecretsError;

/// Why a function could not start (reported by the Lambda runtime as an init error).
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error("could not start the field envelope: {0}")]
    Envelope(#[from] crate::envelope::EnvelopeError),
}

/// Whether a function writes what people wrote (and so needs a data key of its own), only
/// reads it, or neither. Without `DATA_KEY_ID` nothing is sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealing {
    Writes,
    Reads,
}

/// What every function builds once per cold start: the AWS configuration, the secrets (read
/// once, refreshed on demand) and the store.
pub struct ColdStart {
    pub sdk: crate::aws::SdkConfig,
    pub secrets: std::sync::Arc<crate::secrets::SecretStore>,
    pub store: crate::store::Store,
    pub secret_id: String,
}

impl ColdStart {
    /// For functions that only read sealed fields, or none.
    pub async fn load() -> Result<Self, InitError> {
        Self::load_with(Sealing::Reads, crate::warm::warm).await
    }

    /// For functions that store bodies, media URLs or raw payloads (a KMS data key at start).
    pub async fn load_sealing() -> Result<Self, InitError> {
        Self::load_with(Sealing::Writes, crate::warm::warm).await
    }

    /// For the functions that record received texts (the webhook, the backfill): they seal
    /// bodies and classify texts, but read numbers only as Twilio writes them
    /// ([`crate::phone::Address::from_twilio`]) and never schedule a send. So init warms
    /// [`crate::warm::texts`] only, and the inbound webhook's binary leaves the phone metadata
    /// and the time-zone tables out (docs/benchmarks.md, "binary size").
    pub async fn load_receiving() -> Result<Self, InitError> {
        Self::load_with(Sealing::Writes, crate::warm::texts).await
    }

    /// For the functions that take numbers only as stored (E.164, checked when the send was
    /// accepted or the text received) and read time zones, but classify no text: the send
    /// worker, the dispatcher and the inbound processor. Init warms [`crate::warm::zones`]
    /// only, and their binaries leave the phone metadata (2.3 MB of an arm64 binary) and the
    /// language models out.
    pub async fn load_stored() -> Result<Self, InitError> {
        Self::load_with(Sealing::Reads, crate::warm::zones).await
    }

    /// For the functions that parse no number people wrote, classify no text and schedule
    /// nothing (the health check, the status callbacks, which read `To` as Twilio writes it):
    /// init warms nothing, and their binaries leave the phone metadata, the language models
    /// and the time-zone tables out.
    pub async fn load_bare() -> Result<Self, InitError> {
        Self::load_with(Sealing::Reads, || {}).await
    }

    async fn load_with(sealing: Sealing, warm: fn()) -> Result<Self, InitError> {
        let aws = crate::config::AwsConfig::from_env()?;
        // The one-time CPU work (`warm`, ~10 ms) runs on a blocking thread while this one sets
        // up the SDK and waits on the network; the secrets and the data key are fetched
        // concurrently. Init's wall time is then the longest of the three, not their sum.
        let warming = tokio::task::spawn_blocking(warm);
        let http = crate::aws::http();
        let sdk = crate::aws::builder_on(http.clone()).build();
        let store = crate::store::Store::new(aws_sdk_dynamodb::Client::new(&sdk), aws.table_name)
            .with_direct_writes(&sdk, http);
        let secrets_client = aws_sdk_secretsmanager::Client::new(&sdk);
        let secret_id = aws.secret_id.clone();
        let secrets = async move {
            Ok::<_, InitError>(crate::secrets::SecretStore::load(secrets_client, secret_id).await?)
        };
        let kms = aws_sdk_kms::Client::new(&sdk);
        let store = async move {
            let Some(key_id) = crate::config::optional("DATA_KEY_ID") else {
                return Ok::<_, InitError>(store);
            };
            let envelope = match sealing {
                Sealing::Writes => {
                    crate::envelope::Envelope::start(kms, &key_id, store.clone()).await?
                }
                Sealing::Reads => crate::envelope::Envelope::read_only(kms, store.clone()),
            };
            Ok(store.with_envelope(std::sync::Arc::new(envelope)))
        };
        let (secrets, store) = tokio::try_join!(secrets, store)?;
        if let Err(e) = warming.await {
            std::panic::resume_unwind(e.into_panic());
        }
        Ok(Self {
            sdk,
            secrets: std::sync::Arc::new(secrets),
            store,
            secret_id: aws.secret_id,
        })
    }
}

/// The Lambda request id, for log correlation.
pub fn request_id(req: &lambda_http::Request) -> String {
    use lambda_http::RequestExt;
    req.lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default()
}
