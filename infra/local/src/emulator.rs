//! The AWS emulator (moto, through `infra/emulator.py`) as a child process of the local stack.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Starts the emulator on 127.0.0.1:`port` with the venv's `python`, its own output going to
/// `log`, and waits until it accepts connections. The child is killed when the handle drops.
pub async fn start(python: &Path, port: u16, log: &Path) -> Result<Child, String> {
    if !python.exists() {
        return Err(format!(
            "{} not found: run `make run` (or `make deps`) to install the emulator",
            python.display()
        ));
    }
    let script = crate::env::repo_root().join("infra/emulator.py");
    if tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
    {
        return Err(format!(
            "port {port} is already in use: stop what uses it or set LOCAL_AWS_PORT"
        ));
    }
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let child = Command::new(python)
        .arg(script)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("could not start {}: {e}", python.display()))?;
    wait_for_port(port, Duration::from_secs(30)).await?;
    Ok(child)
}

pub async fn wait_for_port(port: u16, within: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("nothing listened on port {port} within {within:?}"))
}
