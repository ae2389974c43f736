//! The AWS SDK configuration every function shares, built by hand from what Lambda puts in the
//! environment. Endpoints come from the SDK's standard `AWS_ENDPOINT_URL`, so one binary runs
//! against the local emulator and AWS alike.
//!
//! Not `aws_config::load`: its default chain (profiles, SSO, STS web identity, ECS, IMDS) is
//! reachable from it whatever the environment holds, so every function carried aws-config,
//! aws-sdk-sts and the SDK's default HTTPS client (hyper with HTTP/2, rustls on aws-lc-rs), about
//! half of each binary (docs/benchmarks.md, "Issue 13: binary size"). A Lambda function's
//! credentials are the environment's; its HTTP client is `parley`'s own reqwest
//! (`http_client`). The tools keep the default chain: `loader`, behind `default-chain`.

mod credentials;
mod http_client;
#[cfg(test)]
pub(crate) mod loopback;
pub(crate) mod sigv4;

use std::time::Duration;

use aws_smithy_async::rt::sleep::{SharedAsyncSleep, TokioSleep};
use aws_smithy_async::time::SharedTimeSource;
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_smithy_runtime_api::client::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use aws_types::region::Region;
use aws_types::sdk_config::{Builder, SharedCredentialsProvider};
pub use aws_types::SdkConfig;

pub use credentials::Environment;
pub use http_client::ReqwestClient;

/// How long connecting to an AWS endpoint may take, whatever the attempt's budget.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Bounded so a sick dependency turns into a quick 5xx (and a Twilio retry), not a Lambda
/// timeout: 2 s an attempt and 5 s in all by default. `AWS_ATTEMPT_TIMEOUT_MS` and
/// `AWS_OPERATION_TIMEOUT_MS` override them (the local emulator under a loaded test run is
/// far slower than DynamoDB).
fn timeouts() -> TimeoutConfig {
    let millis = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(Duration::from_millis(default), Duration::from_millis)
    };
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(millis("AWS_ATTEMPT_TIMEOUT_MS", 2_000))
        .operation_timeout(millis("AWS_OPERATION_TIMEOUT_MS", 5_000))
        .build()
}

fn non_empty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// What `aws_config::load` would resolve in a Lambda function, from the environment alone:
/// the region (`AWS_REGION`, else `AWS_DEFAULT_REGION`), the credentials (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, read when the SDK first signs), the endpoint
/// override (`AWS_ENDPOINT_URL`; the per-service `AWS_ENDPOINT_URL_<SERVICE>` variables are not
/// read), standard retries, the timeouts above and the latest behavior version.
pub fn builder() -> Builder {
    builder_on(http())
}

/// A reqwest client for AWS with the functions' connect timeout: give it to [`builder_on`] and
/// to `Store::with_direct_writes` for one connection pool.
pub fn http() -> Result<reqwest::Client, String> {
    http_client::http(CONNECT_TIMEOUT)
}

/// [`builder`] with the SDK's requests sent on `http` (see [`http`]).
pub fn builder_on(http: Result<reqwest::Client, String>) -> Builder {
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .credentials_provider(SharedCredentialsProvider::new(Environment))
        .http_client(ReqwestClient::on(http))
        .sleep_impl(SharedAsyncSleep::new(TokioSleep::new()))
        .time_source(SharedTimeSource::default())
        .retry_config(RetryConfig::standard())
        .timeout_config(timeouts())
        // Stalled-stream protection watches streaming bodies' throughput; this client sends and
        // reads whole bodies (`ReqwestClient`), bounded by the attempt timeout, so the check's
        // interceptor, body wrapper and timer would be per-request cost for nothing.
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled());
    builder.set_region(
        non_empty("AWS_REGION")
            .or_else(|| non_empty("AWS_DEFAULT_REGION"))
            .map(Region::new),
    );
    builder.set_endpoint_url(non_empty("AWS_ENDPOINT_URL"));
    builder
}

/// The configuration every function runs on (`ColdStart`), and the tests with it.
pub async fn sdk_config() -> SdkConfig {
    builder().build()
}

/// For health probes: `sdk` with one attempt and no retries, so "unreachable" is reported as
/// such within the probe's budget instead of being retried into a timeout. It shares `sdk`'s
/// HTTP client (one connection pool per process).
pub fn probe(sdk: &SdkConfig) -> SdkConfig {
    sdk.to_builder()
        .retry_config(RetryConfig::disabled())
        .build()
}

/// aws-config's default chain with the functions' timeouts, for the tools run by people
/// (parley-local against a deployed stack, the benchmarks): profiles and SSO work there.
#[cfg(feature = "default-chain")]
pub fn loader() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(timeouts())
}
