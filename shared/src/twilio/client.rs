//! The Twilio Messages API, as much of it as sending needs: create, and a lookup to reconcile
//! an attempt whose answer was lost.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use time::format_description::well_known::Rfc2822;
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
    /// Sent as `X-Amzn-Trace-Id`: Twilio ignores it, but a proxy or a test double in between
    /// can log the call in the message's trace. A trace id says nothing about the message.
    pub trace: Option<&'a crate::xray::TraceHeader>,
}

/// The fields of Twilio's message resource that Parley reads.
#[derive(Debug, Clone, Deserialize)]
pub struct TwilioMessage {
    pub sid: String,
    pub status: String,
    #[serde(default)]
    pub to: Option<String>,
    /// The number Twilio sends from: ours, or the one a Messaging Service picked (`null` while
    /// the service has not picked one yet).
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub date_created: Option<String>,
    /// `null` until the message leaves Twilio (`queued` and `accepted` messages have none).
    #[serde(default)]
    pub date_sent: Option<String>,
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
    #[serde(default)]
    next_page_uri: Option<String>,
}

/// How many list pages reconciliation reads at most before it gives up (and retries later):
/// 100 pages of [`LIST_PAGE_SIZE`] is far more than one sender ever sent one number.
const MAX_LIST_PAGES: usize = 100;
/// Twilio's largest page.
const LIST_PAGE_SIZE: u32 = 1000;

/// What an earlier attempt of one message looks like at Twilio: the message reconciliation
/// looks for (see [`is_candidate`]).
#[derive(Debug, Clone, Copy)]
pub struct Attempted<'a> {
    pub to: &'a str,
    pub body: &'a str,
    /// The claim under which the attempt was made, less a small skew for clocks and for
    /// Twilio's whole-second `date_created`.
    pub since: OffsetDateTime,
}

/// Whether `m` may be the message an attempt made: sent by us (our number, or our Messaging
/// Service whatever number it picked), to the same recipient, with exactly the same body,
/// created at or after the attempt's claim. Its status and `date_sent` do not matter: a
/// message still queued at Twilio has no `date_sent` yet.
pub fn is_candidate(m: &TwilioMessage, sender: &Sender, attempt: &Attempted<'_>) -> bool {
    let ours = match sender {
        Sender::Number(number) => m.from.as_deref() == Some(number.as_str()),
        Sender::MessagingService(service) => {
            m.messaging_service_sid.as_deref() == Some(service.as_str())
        }
    };
    ours && m.to.as_deref() == Some(attempt.to)
        && m.body.as_deref() == Some(attempt.body)
        && m.date_created
            .as_deref()
            .and_then(|d| OffsetDateTime::parse(d, &Rfc2822).ok())
            .is_some_and(|created| created >= attempt.since)
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

    /// Whether the failure is Twilio's as a service (5xx, 429, no connection, no answer in
    /// time), the kind the worker's circuit breaker counts; a refusal of one message (4xx),
    /// of our credentials, or an answer we could not read says Twilio is up.
    ///
    /// 429 counts: Twilio throttles the whole account (its concurrency limit), so more calls
    /// from every message only prolong it; the breaker backs the whole instance off at once.
    pub fn is_outage(&self) -> bool {
        match self {
            TwilioError::Api { status, .. } => *status == 429 || *status >= 500,
            TwilioError::Connect | TwilioError::Timeout | TwilioError::Interrupted => true,
            TwilioError::Decode | TwilioError::NoCredentials => false,
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
    list_page_size: u32,
}

impl TwilioClient {
    /// `timeout` bounds each whole call; connecting gets at most two seconds of it.
    pub fn new(api_base: &str, sender: Sender, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = crate::tls::client_builder()
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .timeout(timeout)
            .build()?;
        Ok(Self {
            http,
            api_base: api_base.trim_end_matches('/').to_owned(),
            sender,
            list_page_size: LIST_PAGE_SIZE,
        })
    }

    /// Reads the Messages list `page_size` at a time (Twilio's default is 50, its maximum
    /// 1000): smaller pages make paging testable with a handful of messages.
    pub fn with_list_page_size(mut self, page_size: u32) -> Self {
        self.list_page_size = page_size.clamp(1, LIST_PAGE_SIZE);
        self
    }

    pub fn sender(&self) -> &Sender {
        &self.sender
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
        let mut request = self
            .http
            .post(self.messages_url(account))
            .basic_auth(user, Some(password))
            .form(&form);
        if let Some(trace) = message.trace {
            request = request.header(crate::xray::HTTP_HEADER, trace.to_string());
        }
        let response = request.send().await.map_err(transport)?;
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

    /// Every message at Twilio that may be the attempt's, oldest first (see
    /// [`is_candidate`]): how an attempt whose answer was lost is recognised instead of sent
    /// twice. The list is filtered by `To` (and `From` when we send from one number) and read
    /// to its last page; not by `DateSent`, which has the granularity of a day and which a
    /// message still queued at Twilio does not have. Which of them, if any, is this message's
    /// is the caller's to decide (it skips SIDs already recorded for other messages).
    pub async fn find_attempts(
        &self,
        secrets: &Secrets,
        attempt: &Attempted<'_>,
    ) -> Result<Vec<TwilioMessage>, TwilioError> {
        let (account, (user, password)) = credentials(secrets)?;
        let list_path = format!("/2010-04-01/Accounts/{account}/Messages.json");
        let page_size = self.list_page_size.to_string();
        let mut query = vec![("To", attempt.to), ("PageSize", page_size.as_str())];
        if let Sender::Number(number) = &self.sender {
            query.push(("From", number.as_str()));
        }
        let mut request = self
            .http
            .get(format!("{}{list_path}", self.api_base))
            .query(&query);
        let mut found = Vec::new();
        for _ in 0..MAX_LIST_PAGES {
            let response = request
                .basic_auth(user, Some(password))
                .send()
                .await
                .map_err(transport)?;
            let page: MessageList = read(response).await?;
            found.extend(
                page.messages
                    .into_iter()
                    .filter(|m| is_candidate(m, &self.sender, attempt)),
            );
            let Some(next) = page.next_page_uri else {
                found.sort_by_key(|m| {
                    m.date_created
                        .as_deref()
                        .and_then(|d| OffsetDateTime::parse(d, &Rfc2822).ok())
                });
                return Ok(found);
            };
            // Only pages of this account's list are followed with our credentials.
            if !next.starts_with(&format!("{list_path}?")) {
                return Err(TwilioError::Decode);
            }
            request = self.http.get(format!("{}{next}", self.api_base));
        }
        // Not read to the end: an answer we cannot be sure of, tried again later.
        Err(TwilioError::Decode)
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
        for outage in [api(429, Some(20429)), api(500, None), api(503, None)] {
            assert!(outage.is_outage(), "{outage}");
        }
        assert!(TwilioError::Connect.is_outage());
        assert!(TwilioError::Timeout.is_outage());
        assert!(TwilioError::Interrupted.is_outage());
        for answered in [api(400, Some(21211)), api(401, Some(20003)), api(404, None)] {
            assert!(!answered.is_outage(), "{answered}");
        }
        assert!(!TwilioError::Decode.is_outage());
        assert!(!TwilioError::NoCredentials.is_outage());
        assert_eq!(api(400, Some(21211)).code(), "21211");
        assert_eq!(api(502, None).code(), "http_502");
    }

    fn listed(
        from: Option<&str>,
        service: Option<&str>,
        body: &str,
        created: &str,
    ) -> TwilioMessage {
        TwilioMessage {
            sid: "SM00000000000000000000000000000001".into(),
            status: "queued".into(),
            to: Some("+14155550100".into()),
            from: from.map(str::to_owned),
            messaging_service_sid: service.map(str::to_owned),
            body: Some(body.into()),
            date_created: Some(created.into()),
            date_sent: None,
            error_code: None,
        }
    }

    #[test]
    fn a_candidate_is_ours_to_the_recipient_with_the_body_created_since_the_claim() {
        let since = OffsetDateTime::parse("Mon, 30 Nov 2026 11:00:00 +0000", &Rfc2822).unwrap();
        let attempt = Attempted {
            to: "+14155550100",
            body: "Your visit is at 3",
            since,
        };
        let number = Sender::Number("+15005550006".into());
        let service = Sender::MessagingService("MG00000000000000000000000000000001".into());
        let at = "Mon, 30 Nov 2026 11:00:00 +0000";
        let ours = listed(Some("+15005550006"), None, "Your visit is at 3", at);
        assert!(
            is_candidate(&ours, &number, &attempt),
            "queued: no date_sent needed"
        );
        // Earlier the same day, identical body: not this attempt.
        let earlier = listed(
            Some("+15005550006"),
            None,
            "Your visit is at 3",
            "Mon, 30 Nov 2026 10:59:59 +0000",
        );
        assert!(!is_candidate(&earlier, &number, &attempt));
        let other_sender = listed(Some("+15005550007"), None, "Your visit is at 3", at);
        assert!(!is_candidate(&other_sender, &number, &attempt));
        let other_body = listed(Some("+15005550006"), None, "Your visit is at 3 ", at);
        assert!(
            !is_candidate(&other_body, &number, &attempt),
            "bodies compare exactly"
        );
        let mut other_to = ours.clone();
        other_to.to = Some("+14155550101".into());
        assert!(!is_candidate(&other_to, &number, &attempt));
        let mut undated = ours.clone();
        undated.date_created = None;
        assert!(!is_candidate(&undated, &number, &attempt));
        // A Messaging Service's message is recognised by the service, before and after it
        // picked a number.
        let picking = listed(
            None,
            Some("MG00000000000000000000000000000001"),
            "Your visit is at 3",
            at,
        );
        assert!(is_candidate(&picking, &service, &attempt));
        let picked = listed(
            Some("+15005550009"),
            Some("MG00000000000000000000000000000001"),
            "Your visit is at 3",
            at,
        );
        assert!(is_candidate(&picked, &service, &attempt));
        assert!(!is_candidate(&picked, &number, &attempt));
        let other_service = listed(
            None,
            Some("MG00000000000000000000000000000002"),
            "Your visit is at 3",
            at,
        );
        assert!(!is_candidate(&other_service, &service, &attempt));
    }
}
