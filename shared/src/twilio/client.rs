//! The Twilio Messages API, as much of it as sending needs: create, and a lookup to reconcile
//! an attempt whose answer was lost.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;

use crate::secrets::{SecretStore, Secrets};

/// Who a message is sent from: a number, or a Messaging Service that picks one.
#[derive(Debug, Clone)]
pub enum Sender {
    Number(String),
    MessagingService(String),
}

pub struct CreateMessage<'a> {
    pub to: &'a str,
    pub body: &'a str,
    pub media_urls: &'a [String],
    pub status_callback: &'a str,
}

/// The fields of Twilio's message resource that Parley reads.
#[derive(Debug, Clone, Deserialize)]
pub struct TwilioMessage {
    pub sid: String,
    pub status: String,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub date_created: Option<String>,
    /// Twilio's delivery error, when the message failed.
    #[serde(default)]
    pub error_code: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    code: Option<i64>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct MessageList {
    #[serde(default)]
    messages: Vec<TwilioMessage>,
}

/// What a failed call means for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Twilio refused the message itself (invalid number, opted out, …): never retry.
    Permanent,
    /// Twilio is busy or unreachable and did not take the message: retry with backoff.
    Transient,
    /// The request may have reached Twilio and been accepted: look it up before retrying.
    Ambiguous,
    /// Twilio refused our credentials (HTTP 401, error 20003): ours to fix, never the
    /// message's fault, so never a reason to fail it (see [`with_credentials`]).
    Unauthorized,
}

#[derive(Debug, thiserror::Error)]
pub enum TwilioError {
    /// `message` is Twilio's text, which can quote the number: store it, never log it.
    #[error("Twilio answered HTTP {status} with error {code:?}")]
    Api {
        status: u16,
        code: Option<i64>,
        message: String,
    },
    #[error("could not connect to Twilio")]
    Connect,
    #[error("Twilio did not answer in time")]
    Timeout,
    #[error("the request to Twilio failed after it was sent")]
    Interrupted,
    #[error("Twilio's answer could not be read")]
    Decode,
    #[error("no Twilio credentials are configured for this function")]
    NoCredentials,
}

impl TwilioError {
    pub fn failure(&self) -> Failure {
        match self {
            TwilioError::Api { status, .. } if *status == 429 || *status >= 500 => {
                Failure::Transient
            }
            TwilioError::Api { status: 401, .. }
            | TwilioError::Api {
                code: Some(20003), ..
            } => Failure::Unauthorized,
            TwilioError::NoCredentials => Failure::Unauthorized,
            TwilioError::Api { .. } => Failure::Permanent,
            TwilioError::Connect => Failure::Transient,
            TwilioError::Timeout | TwilioError::Interrupted | TwilioError::Decode => {
                Failure::Ambiguous
            }
        }
    }

    /// Twilio's error code, or a short name of the transport failure, for storage and logs.
    pub fn code(&self) -> String {
        match self {
            TwilioError::Api {
                code: Some(code), ..
            } => code.to_string(),
            TwilioError::Api { status, .. } => format!("http_{status}"),
            TwilioError::Connect => "connect".into(),
            TwilioError::Timeout => "timeout".into(),
            TwilioError::Interrupted => "interrupted".into(),
            TwilioError::Decode => "decode".into(),
            TwilioError::NoCredentials => "no_credentials".into(),
        }
    }

    pub fn message(&self) -> String {
        match self {
            TwilioError::Api { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

/// Calls Twilio with the credentials in use and, if Twilio refuses them, once more with the
/// secret re-read: the auth token may have been rotated since this instance cached it.
pub async fn with_credentials<T, F, Fut>(
    secrets: &Arc<SecretStore>,
    call: F,
) -> Result<T, TwilioError>
where
    F: Fn(Arc<Secrets>) -> Fut,
    Fut: std::future::Future<Output = Result<T, TwilioError>>,
{
    let used = secrets.fresh().await;
    match call(Arc::clone(&used)).await {
        Err(e) if e.failure() == Failure::Unauthorized => {
            tracing::warn!(
                "Twilio refused the cached credentials; trying once more with the secret re-read"
            );
            call(secrets.refresh_replacing(&used).await).await
        }
        other => other,
    }
}

/// The account and the REST credentials; a function given no Twilio secret has none, which
/// counts as refused credentials (the message waits, it is not failed).
pub(super) fn credentials(secrets: &Secrets) -> Result<(&str, (&str, &str)), TwilioError> {
    let account = secrets
        .twilio_account_sid
        .as_ref()
        .map(crate::twilio::AccountSid::as_str)
        .ok_or(TwilioError::NoCredentials)?;
    let rest = secrets
        .twilio_rest_credentials()
        .ok_or(TwilioError::NoCredentials)?;
    Ok((account, rest))
}

pub(super) fn transport(e: reqwest::Error) -> TwilioError {
    if e.is_connect() {
        TwilioError::Connect
    } else if e.is_timeout() {
        TwilioError::Timeout
    } else {
        TwilioError::Interrupted
    }
}

pub struct TwilioClient {
    pub(super) http: reqwest::Client,
    pub(super) api_base: String,
    sender: Sender,
}

impl TwilioClient {
    /// `timeout` bounds each whole call; connecting gets at most two seconds of it.
    pub fn new(api_base: &str, sender: Sender, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .timeout(timeout)
            .build()?;
        Ok(Self {
            http,
            api_base: api_base.trim_end_matches('/').to_owned(),
            sender,
        })
    }

    fn messages_url(&self, account: &str) -> String {
        format!(
            "{}/2010-04-01/Accounts/{account}/Messages.json",
            self.api_base
        )
    }

    pub async fn create(
        &self,
        secrets: &Secrets,
        message: &CreateMessage<'_>,
    ) -> Result<TwilioMessage, TwilioError> {
        let mut form: Vec<(&str, &str)> = vec![
            ("To", message.to),
            ("Body", message.body),
            ("StatusCallback", message.status_callback),
        ];
        match &self.sender {
            Sender::Number(n) => form.push(("From", n)),
            Sender::MessagingService(s) => form.push(("MessagingServiceSid", s)),
        }
        form.extend(message.media_urls.iter().map(|u| ("MediaUrl", u.as_str())));
        let (account, (user, password)) = credentials(secrets)?;
        let response = self
            .http
            .post(self.messages_url(account))
            .basic_auth(user, Some(password))
            .form(&form)
            .send()
            .await
            .map_err(transport)?;
        read(response).await
    }

    /// A message by its SID, as Twilio has it now (for a status no callback brought).
    pub async fn fetch(
        &self,
        secrets: &Secrets,
        sid: &crate::twilio::MessageSid,
    ) -> Result<TwilioMessage, TwilioError> {
        let (account, (user, password)) = credentials(secrets)?;
        let url = format!(
            "{}/2010-04-01/Accounts/{account}/Messages/{}.json",
            self.api_base,
            sid.as_str()
        );
        let response = self
            .http
            .get(url)
            .basic_auth(user, Some(password))
            .send()
            .await
            .map_err(transport)?;
        read(response).await
    }

    /// A message Twilio already accepted for `to` with this `body`, created at or after
    /// `since`: how an attempt whose answer was lost is recognised instead of sent twice.
    pub async fn find_accepted(
        &self,
        secrets: &Secrets,
        to: &str,
        body: &str,
        since: OffsetDateTime,
    ) -> Result<Option<TwilioMessage>, TwilioError> {
        let day = since.date();
        let date = format!(
            "{:04}-{:02}-{:02}",
            day.year(),
            u8::from(day.month()),
            day.day()
        );
        let (account, (user, password)) = credentials(secrets)?;
        let response = self
            .http
            .get(self.messages_url(account))
            .basic_auth(user, Some(password))
            .query(&[
                ("To", to),
                ("DateSent>", date.as_str()),
                ("PageSize", "100"),
            ])
            .send()
            .await
            .map_err(transport)?;
        let list: MessageList = read(response).await?;
        Ok(list.messages.into_iter().find(|m| {
            m.body.as_deref() == Some(body)
                && m.date_created
                    .as_deref()
                    .and_then(|d| {
                        OffsetDateTime::parse(d, &time::format_description::well_known::Rfc2822)
                            .ok()
                    })
                    .is_some_and(|created| created >= since)
        }))
    }
}

pub(super) async fn read<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, TwilioError> {
    let status = response.status();
    let bytes = response.bytes().await.map_err(transport)?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|_| TwilioError::Decode);
    }
    let body: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
    Err(TwilioError::Api {
        status: status.as_u16(),
        code: body.as_ref().and_then(|b| b.code),
        message: body.and_then(|b| b.message).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_classified_as_twilio_documents_them() {
        let api = |status, code| TwilioError::Api {
            status,
            code,
            message: String::new(),
        };
        assert_eq!(api(400, Some(21211)).failure(), Failure::Permanent);
        assert_eq!(api(400, Some(21610)).failure(), Failure::Permanent);
        assert_eq!(api(400, Some(21614)).failure(), Failure::Permanent);
        assert_eq!(api(401, Some(20003)).failure(), Failure::Unauthorized);
        assert_eq!(api(401, None).failure(), Failure::Unauthorized);
        assert_eq!(api(429, Some(20429)).failure(), Failure::Transient);
        assert_eq!(api(500, None).failure(), Failure::Transient);
        assert_eq!(api(503, None).failure(), Failure::Transient);
        assert_eq!(TwilioError::Connect.failure(), Failure::Transient);
        assert_eq!(TwilioError::Timeout.failure(), Failure::Ambiguous);
        assert_eq!(api(400, Some(21211)).code(), "21211");
        assert_eq!(api(502, None).code(), "http_502");
    }
}
