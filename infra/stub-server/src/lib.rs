//! The skeleton the local stubs stand on — the Twilio sandbox (`infra/twilio-sandbox`) and the
//! Collections Monitor stub (`infra/monitor-stub`): what a stub's binary does around its
//! router (settings from the environment, serving on 127.0.0.1 until Ctrl-C or SIGTERM, the
//! exit code), serving in the background for tests and `parley-local`, and the pieces of
//! their state and control APIs that are not about what they imitate (a lock that survives a
//! panicking handler, JSON control bodies). Each stub keeps its own routes, state and error
//! bodies: those are Twilio's or the Monitor's.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::de::DeserializeOwned;

/// The value of a required environment variable, or why not.
pub fn require(key: &str) -> Result<String, String> {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{key} is not set"))
}

/// A port number from a required environment variable.
pub fn port(key: &str) -> Result<u16, String> {
    require(key)?
        .parse()
        .map_err(|_| format!("{key} is not a port number"))
}

/// A stub binary's exit: its error on stderr, prefixed with the binary's `name`.
pub fn exit_code(name: &str, result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Serves `router` on 127.0.0.1:`port` until Ctrl-C or SIGTERM; `what` names the stub in
/// the log line that says it listens.
pub async fn serve_until_shutdown(
    what: &str,
    port: u16,
    router: axum::Router,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    tracing::info!(port, "{what} listening");
    tokio::select! {
        served = axum::serve(listener, router) => served.map_err(|e| e.to_string()),
        () = shutdown() => Ok(()),
    }
}

/// Ctrl-C, or SIGTERM from whoever started the stub.
pub async fn shutdown() {
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

/// A stub serving in the background; dropping it closes the stub's state (`on_close`: pending
/// work such as callbacks or delayed answers stops) and stops the server.
pub struct Running {
    addr: SocketAddr,
    on_close: Box<dyn Fn() + Send + Sync>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{addr}`: the stub's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        (self.on_close)();
        self.task.abort();
    }
}

/// Serves `router` on `listener` in the background (`what` names the stub if the server
/// fails).
pub fn spawn(
    what: &'static str,
    listener: tokio::net::TcpListener,
    router: axum::Router,
    on_close: impl Fn() + Send + Sync + 'static,
) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    let server = axum::serve(listener, router);
    let task = tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "{what} stopped");
        }
    });
    Ok(Running {
        addr,
        on_close: Box::new(on_close),
        task,
    })
}

/// `mutex`'s value, even if a handler panicked while holding it: a stub's state stays usable
/// (and inspectable) after one bad request.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A control request's JSON body, or the message a `400` carries.
pub fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_bad_setting_is_named() {
        assert_eq!(
            require("STUB_SERVER_TEST_UNSET").unwrap_err(),
            "STUB_SERVER_TEST_UNSET is not set"
        );
        assert!(port("STUB_SERVER_TEST_UNSET").is_err());
    }

    #[test]
    fn a_bad_body_says_why() {
        let e = json_body::<serde_json::Value>(b"{").unwrap_err();
        assert!(e.starts_with("invalid JSON body: "), "{e}");
    }

    #[test]
    fn a_poisoned_lock_still_opens() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let held = m.clone();
        let _ = std::thread::spawn(move || {
            let _guard = held.lock().unwrap();
            panic!("a handler fails");
        })
        .join();
        assert_eq!(*lock(&m), 1);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_spawned_stub_serves_until_dropped_and_is_closed() {
        let closed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = closed.clone();
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = spawn("test stub", listener, router, move || {
            flag.store(true, std::sync::atomic::Ordering::SeqCst)
        })
        .unwrap();
        let body = reqwest::get(running.url())
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "ok");
        drop(running);
        assert!(closed.load(std::sync::atomic::Ordering::SeqCst));
    }
}
