//! The inbound backfill, run every 15 minutes by a `Schedule` event: for each of Parley's
//! numbers it lists the messages Twilio received since its checkpoint (the Messages list API,
//! newest first, every page) and records those Parley lacks through the inbound webhook's own
//! idempotent write. However long an outage of the webhook or the store, no text is lost: what
//! Twilio could not deliver is fetched here once Parley can write again.
//!
//! - **Which numbers:** `TWILIO_FROM_NUMBER` and `INBOUND_NUMBERS` (comma-separated; the
//!   numbers of a Messaging Service's pool, WhatsApp senders as `whatsapp:+1…`), each written
//!   with its country code (`+1 415 555 2671`, `+14155552671`) and read by its shape: a number
//!   without one is refused at init.
//! - **Checkpoint** (`BACKFILL#{number}`): `through`, the instant before which every message
//!   has been recorded. A run reads from `through - overlap` (default an hour) down from the
//!   newest message: Twilio's `DateSent>=` filter has the granularity of a UTC day, so the run
//!   asks for the day of that instant and stops paging at the first message older than it. The
//!   overlap re-reads what a run may have missed: a message still `receiving` (skipped until
//!   `received`), one listed late, a clock apart from Twilio's.
//! - **Progress:** after a page is fully recorded the checkpoint is written: the next page's
//!   URI while pages remain (`resume`: a run that times out is continued, not restarted), the
//!   run's start as `through` once it reaches its low bound. Every write is conditional on the
//!   version read, so overlapping runs never move a checkpoint over each other.
//! - **Cost:** a page's MessageSids are checked in one BatchGetItem (their `SID#` guards); only
//!   the missing ones are written, so a run that finds nothing missing writes only its
//!   checkpoint.
//! - **By hand:** invoked with `{"since": "2026-11-29T00:00:00Z"}` (and optionally
//!   `"numbers": [...]`) it reads everything since then (docs/runbooks.md). It moves the
//!   checkpoint only when it covered what the checkpoint left open.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{info, warn, Instrument};

use super::inbound_sms::{record, Received};
use super::{ColdStart, InitError};
use crate::config::{optional, ConfigError};
use crate::metrics::{Batch, Metrics};
use crate::phone::Address;
use crate::secrets::SecretStore;
use crate::store::{BackfillCheckpoint, BackfillResume, Store, StoreError, WriteOutcome};
use crate::telemetry::Pseudonymizer;
use crate::time::{Clock, SystemClock, Timestamp};
use crate::twilio::client::{with_credentials, Failure, Sender, TwilioClient, TwilioError};
use crate::twilio::received::{ListedMessage, MessagePage, PageRequest};
use crate::twilio::MessageSid;

const FUNCTION: &str = "inbound-backfill";
/// Twilio's largest page.
const MAX_PAGE_SIZE: u32 = 1000;

#[derive(Debug, Clone)]
pub struct BackfillConfig {
    /// Parley's numbers as Twilio writes them in `To` (`+1…`, `whatsapp:+1…`).
    pub numbers: Vec<String>,
    pub page_size: u32,
    /// How far before its checkpoint a run reads again.
    pub overlap: Duration,
    /// How far back a number's first run reads.
    pub first_run_lookback: Duration,
}

impl Default for BackfillConfig {
    fn default() -> Self {
        Self {
            numbers: Vec::new(),
            page_size: MAX_PAGE_SIZE,
            overlap: Duration::from_secs(3600),
            first_run_lookback: Duration::from_secs(86_400),
        }
    }
}

impl BackfillConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let mut numbers = Vec::new();
        let configured = optional("TWILIO_FROM_NUMBER")
            .into_iter()
            .map(|n| ("TWILIO_FROM_NUMBER", n))
            .chain(optional("INBOUND_NUMBERS").into_iter().flat_map(|list| {
                list.split(',')
                    .map(|n| ("INBOUND_NUMBERS", n.trim().to_owned()))
                    .filter(|(_, n)| !n.is_empty())
                    .collect::<Vec<_>>()
            }));
        for (name, number) in configured {
            let number =
                parse_number(&number).map_err(|reason| ConfigError::Invalid { name, reason })?;
            if !numbers.contains(&number) {
                numbers.push(number);
            }
        }
        let whole = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            optional(name).map_or(Ok(default), |v| {
                v.parse().map_err(|_| ConfigError::Invalid {
                    name,
                    reason: "not a whole number".into(),
                })
            })
        };
        let page_size = whole("BACKFILL_PAGE_SIZE", defaults.page_size.into())?;
        if !(1..=u64::from(MAX_PAGE_SIZE)).contains(&page_size) {
            return Err(ConfigError::Invalid {
                name: "BACKFILL_PAGE_SIZE",
                reason: format!("Twilio's pages hold 1 to {MAX_PAGE_SIZE} messages"),
            });
        }
        Ok(Self {
            numbers,
            page_size: page_size as u32,
            overlap: Duration::from_secs(whole(
                "BACKFILL_OVERLAP_SECONDS",
                defaults.overlap.as_secs(),
            )?),
            ..defaults
        })
    }
}

/// A number as Twilio writes it in `To`: E.164, with `whatsapp:` for a WhatsApp sender. Read
/// with its country code and by its shape ([`Address::international`]): these are Parley's own
/// numbers, which Twilio lists in E.164, and the backfill's binary carries no phone metadata.
fn parse_number(number: &str) -> Result<String, String> {
    // The number is not repeated: the message can reach the logs.
    let address = Address::international(number).map_err(|e| {
        format!("not a phone number written with its country code, such as +14155552671 ({e})")
    })?;
    Ok(match address.channel {
        crate::phone::Channel::Sms => address.e164.as_str().to_owned(),
        crate::phone::Channel::Whatsapp => format!("whatsapp:{}", address.e164.as_str()),
    })
}

/// What an invocation asks for: nothing (the schedule), or a window and numbers by hand.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    /// Read everything received since this instant (RFC 3339), whatever the checkpoint says.
    pub since: Option<Timestamp>,
    /// Only these of the configured numbers.
    pub numbers: Option<Vec<String>>,
}

impl BackfillRequest {
    /// A `Schedule` event (EventBridge's `aws.events` envelope) is the plain scheduled run;
    /// any other object is a request by hand, refused if it has unknown or invalid fields.
    pub fn from_event(event: &serde_json::Value) -> Result<Self, BackfillError> {
        if event.get("source").and_then(|s| s.as_str()) == Some("aws.events")
            || event.is_null()
            || event.as_object().is_some_and(|o| o.is_empty())
        {
            return Ok(Self::default());
        }
        serde_json::from_value(event.clone()).map_err(|e| {
            BackfillError::InvalidRequest(format!(
                "{e} (expected {{\"since\": \"2026-11-29T00:00:00Z\", \"numbers\"?: [\"+1…\"]}})"
            ))
        })
    }
}

/// What one run did.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct BackfillReport {
    pub numbers: u32,
    pub pages: u32,
    /// Messages the number received within the window.
    pub listed: u32,
    /// Of those, recorded now: Parley did not have them.
    pub recorded: u32,
    /// Of those, Parley had already (the webhook's, or an earlier run's).
    pub already_stored: u32,
    /// Listed but not recordable (a sender that is not a phone number): logged, not retried.
    pub skipped: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("the store failed")]
    Store(#[from] StoreError),
    #[error("Twilio's Messages list failed")]
    Twilio(#[source] TwilioError),
}

impl BackfillError {
    /// The Lambda error type.
    pub fn kind(&self) -> &'static str {
        match self {
            BackfillError::InvalidRequest(_) => "InvalidRequest",
            BackfillError::Store(_) => "StoreUnavailable",
            BackfillError::Twilio(_) => "TwilioUnavailable",
        }
    }
}

pub struct InboundBackfill {
    store: Store,
    twilio: TwilioClient,
    secrets: Arc<SecretStore>,
    config: BackfillConfig,
    clock: Arc<dyn Clock>,
    pseudonyms: Pseudonymizer,
}

impl InboundBackfill {
    pub fn new(
        store: Store,
        twilio: TwilioClient,
        secrets: Arc<SecretStore>,
        config: BackfillConfig,
    ) -> Self {
        let pseudonyms = Pseudonymizer::new(&secrets.current().log_hmac_key);
        Self {
            store,
            twilio,
            secrets,
            config,
            clock: Arc::new(SystemClock),
            pseudonyms,
        }
    }

    /// A clock other than the system's.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub async fn from_env() -> Result<Self, InitError> {
        let config = BackfillConfig::from_env()?;
        let api_base =
            optional("TWILIO_API_BASE").unwrap_or_else(|| "https://api.twilio.com".into());
        // Listing needs no sender.
        let twilio = TwilioClient::new(
            &api_base,
            Sender::Number(String::new()),
            Duration::from_secs(20),
        )
        .map_err(|e| ConfigError::Invalid {
            name: "TWILIO_API_BASE",
            reason: e.to_string(),
        })?;
        // It writes bodies, media URLs and raw payloads: it seals them like the webhook.
        let cold = ColdStart::load_receiving().await?;
        Ok(Self::new(cold.store, twilio, cold.secrets, config))
    }

    /// The handler: a failed run is an invocation error (Lambda counts it in `Errors`, which
    /// the function's alarm watches); the next run starts from the last page recorded.
    pub async fn handle(
        &self,
        event: serde_json::Value,
    ) -> Result<serde_json::Value, BackfillError> {
        let request = BackfillRequest::from_event(&event)?;
        let report = self.run(&request).await.inspect_err(|e| {
            tracing::error!(error = %crate::error::chain(e), "inbound backfill failed");
        })?;
        Ok(serde_json::to_value(report).unwrap_or_default())
    }

    pub async fn run(&self, request: &BackfillRequest) -> Result<BackfillReport, BackfillError> {
        let numbers: Vec<String> = match &request.numbers {
            None => self.config.numbers.clone(),
            Some(asked) => {
                let mut chosen = Vec::new();
                for number in asked {
                    let number = parse_number(number).map_err(BackfillError::InvalidRequest)?;
                    if !self.config.numbers.contains(&number) {
                        return Err(BackfillError::InvalidRequest(
                            "a number that is not one of Parley's (TWILIO_FROM_NUMBER, INBOUND_NUMBERS)"
                                .into(),
                        ));
                    }
                    chosen.push(number);
                }
                chosen
            }
        };
        if numbers.is_empty() {
            warn!("no numbers to backfill: set TWILIO_FROM_NUMBER or INBOUND_NUMBERS");
        }
        let mut report = BackfillReport::default();
        for number in &numbers {
            self.backfill_number(number, request.since, &mut report)
                .await?;
            report.numbers += 1;
        }
        if report.recorded > 0 {
            warn!(
                recorded = report.recorded,
                "inbound texts the webhook had not stored were recorded"
            );
        }
        Metrics::new(FUNCTION)
            .count("BackfillListed", report.listed.into())
            .count("BackfillRecorded", report.recorded.into())
            .emit();
        Ok(report)
    }

    async fn backfill_number(
        &self,
        number: &str,
        since: Option<Timestamp>,
        report: &mut BackfillReport,
    ) -> Result<(), BackfillError> {
        let now = self.clock.now();
        let stored = self.store.backfill_checkpoint(number).await?;
        let mut version = stored.as_ref().map(|c| c.version);
        let through = stored.as_ref().map(|c| c.through);
        let first = |since: Timestamp| PageRequest::First {
            to: number.to_owned(),
            since,
            page_size: self.config.page_size,
        };
        // Where this run reads down to, when it counts as done, and its first page.
        let (low, until, mut page, mut resumed) = match (since, &stored) {
            (Some(since), _) => (since, now, first(since), false),
            (
                None,
                Some(BackfillCheckpoint {
                    resume: Some(resume),
                    ..
                }),
            ) => (
                resume.low,
                resume.until,
                PageRequest::Next(resume.next_page_uri.clone()),
                true,
            ),
            (None, Some(c)) => {
                let low = c.through.minus(self.config.overlap);
                (low, now, first(low), false)
            }
            (None, None) => {
                let low = now.minus(self.config.first_run_lookback);
                (low, now, first(low), false)
            }
        };
        // A run by hand moves the checkpoint only if it read everything the checkpoint left
        // open; and it never leaves a resume point (it is simply run again).
        let by_hand = since.is_some();
        let covers = through.is_none_or(|t| low <= t);
        loop {
            let listed = match self.page(&page).await {
                Ok(listed) => listed,
                // A resume point Twilio no longer knows (its page token expired): read the
                // window again from its newest message.
                Err(e) if resumed && e.failure() == Failure::Permanent => {
                    warn!(error = %e, "the resume page is gone; reading the window again");
                    page = first(low);
                    resumed = false;
                    continue;
                }
                Err(e) => return Err(BackfillError::Twilio(e)),
            };
            report.pages += 1;
            let reached_low = listed
                .messages
                .iter()
                .any(|m| m.received_at().is_some_and(|at| at < low));
            let window: Vec<&ListedMessage> = listed
                .messages
                .iter()
                .filter(|m| m.is_received() && m.received_at().is_some_and(|at| at >= low))
                .collect();
            self.record_page(&window, report).await?;

            // The page is recorded: the checkpoint may move past it.
            let next = listed.next_page_uri.filter(|_| !reached_low);
            let checkpoint = match (&next, by_hand) {
                (Some(uri), false) => Some(BackfillCheckpoint {
                    through: through.unwrap_or(low),
                    resume: Some(BackfillResume {
                        next_page_uri: uri.clone(),
                        until,
                        low,
                    }),
                    version: version.map_or(0, |v| v + 1),
                }),
                (Some(_), true) => None,
                (None, _) if by_hand && !covers => None,
                (None, _) => Some(BackfillCheckpoint {
                    through: through.map_or(until, |t| t.max(until)),
                    resume: None,
                    version: version.map_or(0, |v| v + 1),
                }),
            };
            if let Some(checkpoint) = checkpoint {
                if !self
                    .store
                    .save_backfill_checkpoint(number, version, &checkpoint, self.clock.now())
                    .await?
                {
                    info!("another backfill run moved this number's checkpoint; stopping");
                    return Ok(());
                }
                version = Some(checkpoint.version);
            }
            match next {
                Some(uri) => page = PageRequest::Next(uri),
                None => return Ok(()),
            }
        }
    }

    async fn page(&self, page: &PageRequest) -> Result<MessagePage, TwilioError> {
        with_credentials(&self.secrets, |s| async move {
            self.twilio.received_page(&s, page).await
        })
        .await
    }

    /// Records the messages of one page that Parley lacks.
    async fn record_page(
        &self,
        window: &[&ListedMessage],
        report: &mut BackfillReport,
    ) -> Result<(), BackfillError> {
        report.listed += window.len() as u32;
        let sids: Vec<MessageSid> = window
            .iter()
            .filter_map(|m| MessageSid::parse(&m.sid).ok())
            .collect();
        let held: HashSet<String> = self.store.recorded_sids(&sids).await?;
        for m in window {
            if held.contains(&m.sid) {
                report.already_stored += 1;
                continue;
            }
            let media = if m.num_media() > 0 {
                with_credentials(&self.secrets, |s| async move {
                    self.twilio.media(&s, &m.sid).await
                })
                .await
                .map_err(BackfillError::Twilio)?
            } else {
                Vec::new()
            };
            let sms = match m.to_inbound(media) {
                Ok(sms) => sms,
                Err(e) => {
                    warn!(message_sid = %m.sid, error = %e, "a listed message the webhook would refuse; skipped");
                    report.skipped += 1;
                    continue;
                }
            };
            let Some(received_at) = m.received_at() else {
                report.skipped += 1;
                continue;
            };
            // Its id sorts at the time it was received, so the thread stays in order.
            let message_id = ulid::Ulid::from_datetime(
                std::time::UNIX_EPOCH
                    + Duration::from_millis(u64::try_from(received_at.unix_millis()).unwrap_or(0)),
            )
            .to_string();
            let raw = serde_json::to_string(&RawListed::from(*m)).unwrap_or_default();
            let text = Received {
                sms: &sms,
                raw_payload: &raw,
                message_id,
                received_at: received_at.to_string(),
                // Found by listing, not received in a request: no trace to continue.
                trace: None,
            };
            let span = tracing::info_span!(
                "backfilled",
                message_sid = %m.sid,
                phone = %self.pseudonyms.pseudonym(&sms.from.e164),
            );
            let mut metrics = Batch::new();
            let recorded = record(&self.store, &text, FUNCTION, &mut metrics)
                .instrument(span)
                .await?;
            metrics.emit();
            match recorded.outcome.write {
                WriteOutcome::Recorded => report.recorded += 1,
                // The webhook (a late retry) got there between the read and the write.
                WriteOutcome::Duplicate => report.already_stored += 1,
            }
        }
        Ok(())
    }
}

/// What is kept as a backfilled message's raw payload: Twilio's list entry (a JSON object,
/// where the webhook keeps its form body).
#[derive(Serialize)]
struct RawListed<'a> {
    source: &'static str,
    sid: &'a str,
    account_sid: &'a str,
    from: Option<&'a str>,
    to: Option<&'a str>,
    body: Option<&'a str>,
    direction: Option<&'a str>,
    status: Option<&'a str>,
    date_sent: Option<&'a str>,
    num_media: Option<&'a str>,
}

impl<'a> From<&'a ListedMessage> for RawListed<'a> {
    fn from(m: &'a ListedMessage) -> Self {
        Self {
            source: "twilio-messages-list",
            sid: &m.sid,
            account_sid: &m.account_sid,
            from: m.from.as_deref(),
            to: m.to.as_deref(),
            body: m.body.as_deref(),
            direction: m.direction.as_deref(),
            status: m.status.as_deref(),
            date_sent: m.date_sent.as_deref(),
            num_media: m.num_media.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_event_is_the_plain_run_and_a_bad_request_is_refused() {
        let scheduled: serde_json::Value =
            serde_json::from_str(include_str!("../../../events/inbound-backfill.json")).unwrap();
        assert_eq!(
            BackfillRequest::from_event(&scheduled).unwrap(),
            BackfillRequest::default()
        );
        let by_hand = serde_json::json!({"since": "2026-11-29T00:00:00Z"});
        assert_eq!(
            BackfillRequest::from_event(&by_hand).unwrap().since,
            Timestamp::parse("2026-11-29T00:00:00Z")
        );
        for bad in [
            serde_json::json!({"since": "yesterday"}),
            serde_json::json!({"sinse": "2026-11-29T00:00:00Z"}),
            serde_json::json!({"numbers": "+15005550006"}),
        ] {
            let e = BackfillRequest::from_event(&bad).unwrap_err();
            assert_eq!(e.kind(), "InvalidRequest", "{bad}");
        }
    }

    #[test]
    fn numbers_are_read_as_twilio_writes_them() {
        assert_eq!(parse_number("+1 (415) 555-2671").unwrap(), "+14155552671");
        assert_eq!(
            parse_number("whatsapp:+14155552671").unwrap(),
            "whatsapp:+14155552671"
        );
        assert!(parse_number("not a number").is_err());
        // Without its country code a number is refused, not guessed, and the error says how to
        // write it without repeating it.
        let error = parse_number("(415) 555-2671").unwrap_err();
        assert!(error.contains("+14155552671"), "{error}");
        assert!(!error.contains("555-2671"), "{error}");
    }
}
