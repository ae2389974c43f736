//! Twilio's side of an inbound text: the message is stored as received, then its webhook is
//! delivered to the number's "A message comes in" URL, signed, with the connection overrides
//! of that URL's fragment: `rc` retries of the attempts `rp` names (`5xx`, `4xx`, `ct` connect
//! failures, `rt` read timeouts), each attempt connecting within `ct` and answered within `rt`,
//! all of them within `tt`. Without a fragment, Twilio's defaults: one retry, of connection
//! failures only (a 5xx is not retried).

use std::time::{Duration, Instant};

use parley::twilio::overrides::{AttemptOutcome, ConnectionOverrides};
use parley::twilio::signature;

use crate::callbacks::encode_form;
use crate::state::{Message, Shared, WebhookAttempt};

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
    // The fragment is never sent (nor signed: see parley::twilio::signature).
    let target = url.split_once('#').map_or(url, |(base, _)| base);
    let params = params(shared, m);
    let body = encode_form(&params);
    let started = Instant::now();
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
    for attempt in 0..=overrides.retry_count {
        let left = overrides.total_time.saturating_sub(started.elapsed());
        if left.is_zero() {
            break;
        }
        let signature = signature::compute(&shared.auth_token(), target, &params);
        let sent = client
            .post(target)
            .timeout(overrides.read_timeout.min(left))
            .header("X-Twilio-Signature", signature)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(body.clone())
            .send()
            .await;
        let outcome = match &sent {
            Ok(response) => AttemptOutcome::Status(response.status().as_u16()),
            Err(e) if e.is_timeout() => AttemptOutcome::ReadTimedOut,
            Err(_) => AttemptOutcome::ConnectFailed,
        };
        shared.record_webhook(
            &m.sid,
            match outcome {
                AttemptOutcome::Status(code) => WebhookAttempt {
                    response_status: Some(code),
                    error: None,
                },
                AttemptOutcome::ReadTimedOut => WebhookAttempt {
                    response_status: None,
                    error: Some("timeout"),
                },
                AttemptOutcome::ConnectFailed => WebhookAttempt {
                    response_status: None,
                    error: Some("connect"),
                },
            },
        );
        tracing::info!(message_sid = %m.sid, attempt, outcome = ?outcome, "inbound webhook");
        if matches!(outcome, AttemptOutcome::Status(code) if (200..300).contains(&code)) {
            return true;
        }
        if !overrides.retries(outcome) {
            return false;
        }
        // Twilio does not document a pause between retries; a short one keeps a refused
        // connection from spinning.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
