//! One webhook delivery as Twilio makes it, for inbound texts and status callbacks alike: the
//! form POSTed, signed, with the connection overrides of the URL's fragment — `rc` retries of
//! the attempts `rp` names (`5xx`, `4xx`, `ct` connect failures, `rt` read timeouts), each
//! answered within `rt`, all of them within `tt`. Without a fragment, Twilio's defaults: one
//! retry, of connection failures only (a 5xx is not retried).

use std::time::{Duration, Instant};

use parley::twilio::overrides::{AttemptOutcome, ConnectionOverrides};
use parley::twilio::signature;

use crate::callbacks::encode_form;
use crate::state::Shared;

/// Which form of the URL the signature covers. Twilio signs "the URL your application
/// supplied" and does not say whether a fragment is part of it; the sandbox signs inbound
/// webhooks without it and status callbacks with it, so Parley's acceptance of both forms
/// stays exercised (see `parley::twilio::signature::verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signed {
    WithoutFragment,
    AsGiven,
}

/// One webhook: where it goes and what it says.
pub(crate) struct Webhook<'a> {
    /// As configured, fragment and all (the fragment itself is never sent).
    pub url: &'a str,
    pub signed: Signed,
    pub params: &'a [(String, String)],
    pub overrides: ConnectionOverrides,
}

/// Delivers `hook` with `client`, with the retries its overrides ask for, passing each
/// attempt's outcome to `record`. Whether Parley answered 2xx.
pub(crate) async fn deliver(
    shared: &Shared,
    client: &reqwest::Client,
    hook: &Webhook<'_>,
    mut record: impl FnMut(AttemptOutcome),
) -> bool {
    let target = hook.url.split_once('#').map_or(hook.url, |(base, _)| base);
    let signed_url = match hook.signed {
        Signed::WithoutFragment => target,
        Signed::AsGiven => hook.url,
    };
    let body = encode_form(hook.params);
    let overrides = hook.overrides;
    let started = Instant::now();
    for _ in 0..=overrides.retry_count {
        let left = overrides.total_time.saturating_sub(started.elapsed());
        if left.is_zero() {
            break;
        }
        // Signed per attempt: a rotated auth token signs the retries.
        let signature = signature::compute(&shared.auth_token(), signed_url, hook.params);
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
        record(outcome);
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
