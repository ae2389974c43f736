//! `twilio-sandbox`: serves the sandbox on 127.0.0.1:`SANDBOX_PORT` for the account
//! `LOCAL_TWILIO_ACCOUNT_SID` / `LOCAL_TWILIO_AUTH_TOKEN`; `SANDBOX_CALLBACK_DELAY_MS`
//! (optional, default 50) paces status callbacks.

use std::process::ExitCode;
use std::time::Duration;

use twilio_sandbox::SandboxConfig;

#[tokio::main]
async fn main() -> ExitCode {
    parley::telemetry::init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("twilio-sandbox: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let port: u16 = require("SANDBOX_PORT")?
        .parse()
        .map_err(|_| "SANDBOX_PORT is not a port number".to_owned())?;
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
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    tracing::info!(port, "twilio sandbox listening");
    tokio::select! {
        served = twilio_sandbox::serve(listener, config) => served.map_err(|e| e.to_string()),
        () = shutdown() => Ok(()),
    }
}

/// Ctrl-C, or SIGTERM from whoever started the sandbox.
async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn require(key: &str) -> Result<String, String> {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{key} is not set"))
}
