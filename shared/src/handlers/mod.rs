//! One module per Lambda function: each turns a `lambda_http::Request` into a response using
//! only the domain, the store and Twilio validation. The function binaries and the local
//! gateway run exactly this code.

pub mod conversations;
pub mod health;
pub mod inbound_processor;
pub mod inbound_sms;
pub mod send_sms;
pub mod send_worker;
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
}

/// The Lambda request id, for log correlation.
pub fn request_id(req: &lambda_http::Request) -> String {
    use lambda_http::RequestExt;
    req.lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default()
}
