//! Twilio's side of an inbound text: the message is stored as received, then its webhook is
//! delivered to the number's "A message comes in" URL, signed, with the connection overrides
//! of that URL's fragment (`crate::webhook`), each attempt connecting within `ct`.

use parley::twilio::overrides::ConnectionOverrides;

use crate::state::{Message, Shared, WebhookAttempt};
use crate::webhook::{self, Signed, Webhook};

/// The webhook's parameters, as Twilio posts them for a received SMS or MMS.
pub(crate) fn params(shared: &Shared, m: &Message) -> Vec<(String, String)> {
    let from = m.from.clone().unwrap_or_default();
    let mut params: Vec<(String, String)> = [
        ("ToCountry", "US"),
        ("SmsMessageSid", m.sid.as_str()),
        ("NumMedia", &m.num_media.to_string()),
        ("SmsSid", m.sid.as_str()),
        ("SmsStatus", "received"),
        ("Body", m.body.as_str()),
        ("To", m.to.as_str()),
        ("NumSegments", &m.num_segments.to_string()),
        ("MessageSid", m.sid.as_str()),
        ("AccountSid", m.account_sid.as_str()),
        ("From", from.as_str()),
        ("ApiVersion", "2010-04-01"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let base = shared.api_base();
    for (i, medium) in m.media.iter().enumerate() {
        let uri = m.media_uri(&medium.sid);
        params.push((
            format!("MediaUrl{i}"),
            format!("{base}{}", uri.strip_suffix(".json").unwrap_or(&uri)),
        ));
        params.push((format!("MediaContentType{i}"), medium.content_type.clone()));
    }
    params
}

/// Delivers a received message's webhook to `url` (fragment and all, as configured), with the
/// retries its overrides ask for. Whether Parley answered 2xx.
pub(crate) async fn deliver(
    shared: &Shared,
    m: &Message,
    url: &str,
    overrides: ConnectionOverrides,
) -> bool {
    let client = match reqwest::Client::builder()
        .connect_timeout(overrides.connect_timeout)
        .user_agent("TwilioProxy/1.1")
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(error = %e, "webhook client");
            return false;
        }
    };
    let params = params(shared, m);
    let hook = Webhook {
        url,
        signed: Signed::WithoutFragment,
        params: &params,
        overrides,
    };
    let mut attempt = 0;
    webhook::deliver(shared, &client, &hook, |outcome| {
        tracing::info!(message_sid = %m.sid, attempt, outcome = ?outcome, "inbound webhook");
        attempt += 1;
        shared.record_webhook(&m.sid, WebhookAttempt::of(outcome));
    })
    .await
}
