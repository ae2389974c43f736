//! `twilio-sandbox`: serves the sandbox on 127.0.0.1:`SANDBOX_PORT` for the account
//! `LOCAL_TWILIO_ACCOUNT_SID` / `LOCAL_TWILIO_AUTH_TOKEN`; `SANDBOX_CALLBACK_DELAY_MS`
//! (optional, default 50) paces status callbacks.

use std::process::ExitCode;
use std::time::Duration;

use stub_server::require;
use twilio_sandbox::SandboxConfig;

#[tokio::main]
async fn main() -> ExitCode {
    parley::telemetry::init();
    stub_server::exit_code("twilio-sandbox", run().await)
}

async fn run() -> Result<(), String> {
    let port = stub_server::port("SANDBOX_PORT")?;
    let mut config = SandboxConfig::new(
        require("LOCAL_TWILIO_ACCOUNT_SID")?,
        require("LOCAL_TWILIO_AUTH_TOKEN")?,
    );
    if let Ok(ms) = std::env::var("SANDBOX_CALLBACK_DELAY_MS") {
        let ms: u64 = ms
            .parse()
            .map_err(|_| "SANDBOX_CALLBACK_DELAY_MS is not a number of milliseconds".to_owned())?;
        config.callback_delay = Duration::from_millis(ms);
    }
    let router = twilio_sandbox::router(config).map_err(|e| e.to_string())?;
    stub_server::serve_until_shutdown("twilio sandbox", port, router).await
}
