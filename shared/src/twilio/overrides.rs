//! Twilio's webhook connection overrides: settings carried in the fragment of a webhook URL
//! (`https://host/path#rc=3&rp=ct,rt,5xx`) that change how Twilio connects, times out and
//! retries. Without them Twilio retries an inbound webhook only when it cannot connect, never
//! on a 5xx: a text that arrives while the store is failing would be lost (the inbound backfill
//! finds it later; the overrides make that the rare case).
//!
//! Source: Twilio, "Webhooks (HTTP callbacks): Connection Overrides"
//! (twilio.com/docs/usage/webhooks/webhooks-connection-overrides): `ct` connect timeout
//! 100–10000 ms (default 5000); `rt` read timeout 100–15000 ms (default 15000); `tt` total time
//! of every attempt 100–15000 ms (default and maximum 15000); `rc` retry count 0–5 (default 1);
//! `rp` retry policy, a comma-separated list of `4xx`, `5xx`, `ct` (connection failures), `rt`
//! (read timeouts) or `all` (default `ct`); `e` edge location and `sni` are accepted and not
//! interpreted here. The fragment never reaches the server: HTTP clients do not send it.

use std::time::Duration;

/// The fragment Parley's inbound webhook URL carries (README, "Twilio's console"): three
/// retries on connection failures, read timeouts and 5xx; two seconds to connect, five to
/// answer (a warm answer takes milliseconds, a cold start about one), all within Twilio's
/// 15-second maximum. Retrying is safe: a redelivered MessageSid is a duplicate-skip.
pub const WEBHOOK_OVERRIDES: &str = "ct=2000&rt=5000&tt=15000&rc=3&rp=ct,rt,5xx";

/// `url` with Parley's connection overrides as its fragment (replacing any fragment it had).
pub fn with_overrides(url: &str) -> String {
    let base = url.split_once('#').map_or(url, |(base, _)| base);
    format!("{base}#{WEBHOOK_OVERRIDES}")
}

/// When a failed attempt is retried (`rp`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryPolicy {
    pub client_errors: bool,
    pub server_errors: bool,
    pub connect_failures: bool,
    pub read_timeouts: bool,
}

/// The connection settings a webhook URL asks for, Twilio's defaults where it names none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionOverrides {
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub total_time: Duration,
    pub retry_count: u32,
    pub retry_policy: RetryPolicy,
}

impl Default for ConnectionOverrides {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_millis(5000),
            read_timeout: Duration::from_millis(15_000),
            total_time: Duration::from_millis(15_000),
            retry_count: 1,
            retry_policy: RetryPolicy {
                connect_failures: true,
                ..RetryPolicy::default()
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    #[error("connection override `{0}` is not key=value")]
    Malformed(String),
    #[error("connection override `{key}` must be a whole number from {min} to {max}")]
    OutOfRange {
        key: &'static str,
        min: u64,
        max: u64,
    },
    #[error("retry policy `{0}` is not one of 4xx, 5xx, ct, rt, all")]
    RetryPolicy(String),
    #[error("unknown connection override `{0}`")]
    Unknown(String),
}

impl ConnectionOverrides {
    /// The settings of a webhook URL: those of its fragment, Twilio's defaults for the rest
    /// (and for a URL without a fragment). Refuses what Twilio refuses (out-of-range values,
    /// unknown retry policies), as Twilio answers those with errors 11237–11243.
    pub fn of_url(url: &str) -> Result<Self, OverrideError> {
        match url.split_once('#') {
            Some((_, fragment)) => Self::parse(fragment),
            None => Ok(Self::default()),
        }
    }

    pub fn parse(fragment: &str) -> Result<Self, OverrideError> {
        let mut o = Self::default();
        for pair in fragment.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| OverrideError::Malformed(pair.to_owned()))?;
            let millis = |key: &'static str, min: u64, max: u64| {
                value
                    .parse::<u64>()
                    .ok()
                    .filter(|v| (min..=max).contains(v))
                    .map(Duration::from_millis)
                    .ok_or(OverrideError::OutOfRange { key, min, max })
            };
            match key {
                "ct" => o.connect_timeout = millis("ct", 100, 10_000)?,
                "rt" => o.read_timeout = millis("rt", 100, 15_000)?,
                "tt" => o.total_time = millis("tt", 100, 15_000)?,
                "rc" => {
                    o.retry_count = value.parse::<u32>().ok().filter(|v| *v <= 5).ok_or(
                        OverrideError::OutOfRange {
                            key: "rc",
                            min: 0,
                            max: 5,
                        },
                    )?
                }
                "rp" => {
                    let mut policy = RetryPolicy::default();
                    for kind in value.split(',') {
                        match kind {
                            "4xx" => policy.client_errors = true,
                            "5xx" => policy.server_errors = true,
                            "ct" => policy.connect_failures = true,
                            "rt" => policy.read_timeouts = true,
                            "all" => {
                                policy = RetryPolicy {
                                    client_errors: true,
                                    server_errors: true,
                                    connect_failures: true,
                                    read_timeouts: true,
                                }
                            }
                            other => return Err(OverrideError::RetryPolicy(other.to_owned())),
                        }
                    }
                    o.retry_policy = policy;
                }
                // Edge location and SNI change where from and how Twilio connects, not whether.
                "e" | "sni" => {}
                other => return Err(OverrideError::Unknown(other.to_owned())),
            }
        }
        Ok(o)
    }

    /// Whether an attempt that ended this way is tried again (attempts left aside).
    pub fn retries(&self, outcome: AttemptOutcome) -> bool {
        let p = self.retry_policy;
        match outcome {
            AttemptOutcome::Status(s) if (200..400).contains(&s) => false,
            AttemptOutcome::Status(s) if (400..500).contains(&s) => p.client_errors,
            AttemptOutcome::Status(_) => p.server_errors,
            AttemptOutcome::ConnectFailed => p.connect_failures,
            AttemptOutcome::ReadTimedOut => p.read_timeouts,
        }
    }
}

/// How one webhook attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Status(u16),
    ConnectFailed,
    ReadTimedOut,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parleys_fragment_is_valid_and_retries_what_it_says() {
        let o = ConnectionOverrides::parse(WEBHOOK_OVERRIDES).unwrap();
        assert_eq!(o.retry_count, 3);
        assert_eq!(o.connect_timeout, Duration::from_millis(2000));
        assert_eq!(o.read_timeout, Duration::from_millis(5000));
        assert!(o.retries(AttemptOutcome::Status(503)));
        assert!(o.retries(AttemptOutcome::ReadTimedOut));
        assert!(o.retries(AttemptOutcome::ConnectFailed));
        assert!(!o.retries(AttemptOutcome::Status(403)));
        assert!(!o.retries(AttemptOutcome::Status(200)));
    }

    #[test]
    fn without_a_fragment_twilio_retries_only_connection_failures_once() {
        let o = ConnectionOverrides::of_url("https://sms.example.com/webhook/twilio/sms").unwrap();
        assert_eq!(o, ConnectionOverrides::default());
        assert_eq!(o.retry_count, 1);
        assert!(o.retries(AttemptOutcome::ConnectFailed));
        assert!(!o.retries(AttemptOutcome::Status(503)));
        assert!(!o.retries(AttemptOutcome::ReadTimedOut));
    }

    #[test]
    fn values_twilio_refuses_are_refused() {
        for bad in [
            "rc=6", "ct=99", "rt=15001", "tt=0", "rp=3xx", "rc", "xx=1", "rc=-1",
        ] {
            assert!(ConnectionOverrides::parse(bad).is_err(), "{bad}");
        }
        let all = ConnectionOverrides::parse("rp=all&e=ashburn&sni=y").unwrap();
        assert!(all.retries(AttemptOutcome::Status(404)));
    }

    #[test]
    fn the_fragment_replaces_any_other() {
        assert_eq!(
            with_overrides("https://h/webhook/twilio/sms#rc=1"),
            format!("https://h/webhook/twilio/sms#{WEBHOOK_OVERRIDES}")
        );
    }
}
