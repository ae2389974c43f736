//! The AWS SDK configuration every function shares. Endpoints come from the SDK's standard
//! `AWS_ENDPOINT_URL`, so one binary runs against the local emulator and AWS alike.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};

/// Bounded so a sick dependency turns into a quick 5xx (and a Twilio retry), not a Lambda
/// timeout: 2 s an attempt and 5 s in all by default. `AWS_ATTEMPT_TIMEOUT_MS` and
/// `AWS_OPERATION_TIMEOUT_MS` override them (the local emulator under a loaded test run is
/// far slower than DynamoDB).
pub fn loader() -> ConfigLoader {
    let millis = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(Duration::from_millis(default), Duration::from_millis)
    };
    aws_config::defaults(BehaviorVersion::latest()).timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(1))
            .operation_attempt_timeout(millis("AWS_ATTEMPT_TIMEOUT_MS", 2_000))
            .operation_timeout(millis("AWS_OPERATION_TIMEOUT_MS", 5_000))
            .build(),
    )
}

pub async fn sdk_config() -> SdkConfig {
    loader().load().await
}

/// For health probes: one attempt, no retries, so "unreachable" is reported as such within
/// the probe's budget instead of being retried into a timeout.
pub fn probe_loader() -> ConfigLoader {
    loader().retry_config(RetryConfig::disabled())
}
