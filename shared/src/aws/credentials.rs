//! The credentials Lambda gives a function: its execution role's, in environment variables.

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials};
use aws_credential_types::Credentials;

/// Reads `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` each time the
/// SDK asks; its identity cache keeps the answer, so that is once per cold start in practice.
#[derive(Debug, Clone, Copy, Default)]
pub struct Environment;

impl Environment {
    fn read() -> Result<Credentials, CredentialsError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(key_id), Some(secret)) => Ok(Credentials::new(
                key_id,
                secret,
                var("AWS_SESSION_TOKEN"),
                None,
                "Environment",
            )),
            _ => Err(CredentialsError::not_loaded(
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not both set",
            )),
        }
    }
}

impl ProvideCredentials for Environment {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(Self::read())
    }
}
