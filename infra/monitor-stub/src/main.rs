//! `monitor-stub`: serves the Collections Monitor stub on 127.0.0.1:`MONITOR_STUB_PORT`,
//! accepting `Authorization: Bearer $MONITOR_API_KEY`, with the default fixture tenants.

use std::process::ExitCode;

use monitor_stub::MonitorConfig;

#[tokio::main]
async fn main() -> ExitCode {
    parley::telemetry::init();
    stub_server::exit_code("monitor-stub", run().await)
}

async fn run() -> Result<(), String> {
    let port = stub_server::port("MONITOR_STUB_PORT")?;
    let config = MonitorConfig::new(stub_server::require("MONITOR_API_KEY")?);
    stub_server::serve_until_shutdown("monitor stub", port, monitor_stub::router(config)).await
}
