//! `monitor-stub`: serves the Collections Monitor stub on 127.0.0.1:`MONITOR_STUB_PORT`,
//! accepting `Authorization: Bearer $MONITOR_API_KEY`, with the default fixture tenants.

use std::process::ExitCode;

use monitor_stub::MonitorConfig;

#[tokio::main]
async fn main() -> ExitCode {
    parley::telemetry::init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("monitor-stub: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let port: u16 = require("MONITOR_STUB_PORT")?
        .parse()
        .map_err(|_| "MONITOR_STUB_PORT is not a port number".to_owned())?;
    let config = MonitorConfig::new(require("MONITOR_API_KEY")?);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    tracing::info!(port, "monitor stub listening");
    tokio::select! {
        served = monitor_stub::serve(listener, config) => served.map_err(|e| e.to_string()),
        () = shutdown() => Ok(()),
    }
}

/// Ctrl-C, or SIGTERM from whoever started the stub.
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
