//! The Messages list API, as the inbound backfill reads it: the messages a number received,
//! most recent first, a page at a time (`next_page_uri`), and a message's media.

use serde::Deserialize;
use time::format_description::well_known::Rfc2822;
use time::OffsetDateTime;

use super::client::{credentials, read, transport, TwilioClient, TwilioError};
use super::{AccountSid, InboundSms, Media, MessageSid};
use crate::phone::Address;
use crate::secrets::Secrets;
use crate::time::Timestamp;

/// Which page to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageRequest {
    /// The first page of the messages sent to `to` on or after the UTC day of `since` (Twilio's
    /// `DateSent>=` has the granularity of a day).
    First {
        to: String,
        since: Timestamp,
        page_size: u32,
    },
    /// A page Twilio named in `next_page_uri` (a path under the API's base).
    Next(String),
}

/// One message as the list gives it (the fields the backfill reads).
#[derive(Debug, Clone, Deserialize)]
pub struct ListedMessage {
    pub sid: String,
    pub account_sid: String,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub direction: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    /// RFC 2822, as Twilio writes dates.
    #[serde(default)]
    pub date_sent: Option<String>,
    #[serde(default)]
    pub date_created: Option<String>,
    /// A string in Twilio's JSON ("0", "2").
    #[serde(default)]
    pub num_media: Option<String>,
}

impl ListedMessage {
    /// Whether Parley's inbound webhook would have been called for it: received, not sent.
    pub fn is_received(&self) -> bool {
        self.direction.as_deref() == Some("inbound") && self.status.as_deref() == Some("received")
    }

    /// When Twilio received it (`date_sent`; for an inbound message the time it arrived).
    pub fn received_at(&self) -> Option<Timestamp> {
        self.date_sent
            .as_deref()
            .or(self.date_created.as_deref())
            .and_then(|d| OffsetDateTime::parse(d, &Rfc2822).ok())
            .map(Timestamp::from)
    }

    pub fn num_media(&self) -> usize {
        self.num_media
            .as_deref()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// The webhook's parameters, typed as the webhook parses them.
    pub fn to_inbound(&self, media: Vec<Media>) -> Result<InboundSms, super::InboundError> {
        let invalid =
            |field: &'static str, e: &dyn std::fmt::Display| super::InboundError::Invalid {
                field,
                reason: e.to_string(),
            };
        let missing = super::InboundError::Missing;
        Ok(InboundSms {
            message_sid: MessageSid::parse(&self.sid).map_err(|e| invalid("sid", &e))?,
            account_sid: AccountSid::parse(&self.account_sid)
                .map_err(|e| invalid("account_sid", &e))?,
            from: Address::from_twilio(self.from.as_deref().ok_or(missing("from"))?)
                .map_err(|e| invalid("from", &e))?,
            to: Address::from_twilio(self.to.as_deref().ok_or(missing("to"))?)
                .map_err(|e| invalid("to", &e))?,
            body: self.body.clone().unwrap_or_default(),
            media,
        })
    }
}

/// One page of the list.
#[derive(Debug, Clone, Deserialize)]
pub struct MessagePage {
    #[serde(default)]
    pub messages: Vec<ListedMessage>,
    #[serde(default)]
    pub next_page_uri: Option<String>,
}

#[derive(Debug, Deserialize)]
struct MediaList {
    #[serde(default)]
    media_list: Vec<MediaEntry>,
}

#[derive(Debug, Deserialize)]
struct MediaEntry {
    #[serde(default)]
    content_type: Option<String>,
    uri: String,
}

impl TwilioClient {
    /// One page of the messages Twilio received on a number (or the page `next_page_uri`
    /// named). A `next_page_uri` outside this account's Messages list is refused rather than
    /// followed with our credentials.
    pub async fn received_page(
        &self,
        secrets: &Secrets,
        page: &PageRequest,
    ) -> Result<MessagePage, TwilioError> {
        let (account, (user, password)) = credentials(secrets)?;
        let list_path = format!("/2010-04-01/Accounts/{account}/Messages.json");
        let request = match page {
            PageRequest::First {
                to,
                since,
                page_size,
            } => {
                let day = since.to_string()[..10].to_owned();
                self.http
                    .get(format!("{}{list_path}", self.api_base))
                    .query(&[
                        ("To", to.as_str()),
                        ("DateSent>", day.as_str()),
                        ("PageSize", page_size.to_string().as_str()),
                    ])
            }
            PageRequest::Next(uri) => {
                if !uri.starts_with(&format!("{list_path}?")) {
                    return Err(TwilioError::Decode);
                }
                self.http.get(format!("{}{uri}", self.api_base))
            }
        };
        let response = request
            .basic_auth(user, Some(password))
            .send()
            .await
            .map_err(transport)?;
        read(response).await
    }

    /// A message's media as the webhook names it: `MediaUrl` (the media resource's URL, without
    /// `.json`) and `MediaContentType`.
    pub async fn media(&self, secrets: &Secrets, sid: &str) -> Result<Vec<Media>, TwilioError> {
        let (account, (user, password)) = credentials(secrets)?;
        let response = self
            .http
            .get(format!(
                "{}/2010-04-01/Accounts/{account}/Messages/{sid}/Media.json",
                self.api_base
            ))
            .basic_auth(user, Some(password))
            .send()
            .await
            .map_err(transport)?;
        let list: MediaList = read(response).await?;
        Ok(list
            .media_list
            .into_iter()
            .map(|m| Media {
                url: format!(
                    "{}{}",
                    self.api_base,
                    m.uri.strip_suffix(".json").unwrap_or(&m.uri)
                ),
                content_type: m.content_type,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A list entry as Twilio's documentation shows one (an inbound SMS).
    const LISTED: &str = r#"{
        "account_sid": "AC0123456789abcdef0123456789abcdef",
        "api_version": "2010-04-01",
        "body": "Hola",
        "date_created": "Mon, 30 Nov 2026 10:01:02 +0000",
        "date_sent": "Mon, 30 Nov 2026 10:01:03 +0000",
        "date_updated": "Mon, 30 Nov 2026 10:01:03 +0000",
        "direction": "inbound",
        "error_code": null,
        "from": "+14155552671",
        "num_media": "0",
        "sid": "SM0123456789abcdef0123456789abcdef",
        "status": "received",
        "to": "+15005550006"
    }"#;

    #[test]
    fn a_listed_inbound_message_reads_as_the_webhook_would() {
        let m: ListedMessage = serde_json::from_str(LISTED).unwrap();
        assert!(m.is_received());
        assert_eq!(
            m.received_at().unwrap().to_string(),
            "2026-11-30T10:01:03.000Z"
        );
        let sms = m.to_inbound(Vec::new()).unwrap();
        assert_eq!(sms.from.e164.as_str(), "+14155552671");
        assert_eq!(sms.body, "Hola");
        let mut sent = m.clone();
        sent.direction = Some("outbound-api".into());
        assert!(!sent.is_received());
        let mut arriving = m;
        arriving.status = Some("receiving".into());
        assert!(!arriving.is_received());
    }
}
