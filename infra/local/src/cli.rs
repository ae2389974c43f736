//! The subcommands.

use std::net::SocketAddr;

use parley::twilio::signature;
use parley_local::env::{repo_root, LocalEnv};
use parley_local::gateway::Gateway;
use parley_local::template::Template;
use parley_local::{audit, bootstrap, emulator, functions};

/// Starts the emulator, creates the resources, serves the gateway, prints `ready: URL`, and
/// stops everything it started on Ctrl-C or SIGTERM.
pub fn up(env: &LocalEnv) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        parley::telemetry::init();
        let aws_port = env.port("LOCAL_AWS_PORT")?;
        let gateway_port = env.port("LOCAL_GATEWAY_PORT")?;
        let log = repo_root().join(format!("target/local/moto-{aws_port}.log"));
        let _moto = emulator::start(&env.path("MOTO_PYTHON")?, aws_port, &log).await?;

        let template = Template::load_default().map_err(|e| e.to_string())?;
        let sdk = parley::aws::sdk_config().await;
        bootstrap::bootstrap(&sdk, &template, env).await?;
        let gateway = Gateway::new(template.http_routes(), functions::http_functions().await?)?;

        let addr = SocketAddr::from(([127, 0, 0, 1], gateway_port));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e} (set LOCAL_GATEWAY_PORT)"))?;
        println!("ready: http://{addr}");
        axum::serve(
            listener,
            gateway
                .router()
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
        eprintln!("parley-local: stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let sigterm = async {
        match term.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = sigterm => {}
    }
}

/// Prints the `X-Twilio-Signature` for a form POST to URL with the given parameters, signed
/// with the dev token (`LOCAL_TWILIO_AUTH_TOKEN`).
pub fn sign(env: &LocalEnv, args: &[String]) -> Result<(), String> {
    let (url, params) = args
        .split_first()
        .ok_or("usage: parley-local sign URL [KEY=VALUE…]")?;
    let params: Vec<(String, String)> = params
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| format!("`{p}` is not KEY=VALUE"))
        })
        .collect::<Result<_, _>>()?;
    let token = env.require("LOCAL_TWILIO_AUTH_TOKEN")?;
    println!("{}", signature::compute(token, url, &params));
    Ok(())
}

/// Fails when any value listed in MANIFEST (what the tests used) appears in any LOG.
pub fn audit_logs(args: &[String]) -> Result<(), String> {
    let Some((manifest, logs)) = args.split_first().filter(|(_, logs)| !logs.is_empty()) else {
        return Err("usage: parley-local audit-logs MANIFEST LOG [LOG…]".into());
    };
    let read = |p: &String| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"));
    let manifest_text = read(manifest)?;
    if manifest_text.trim().is_empty() {
        return Err(format!(
            "{manifest} is empty: no test recorded what it sent"
        ));
    }
    let mut found = Vec::new();
    let mut lines = 0;
    for log in logs {
        let text = read(log)?;
        lines += text.lines().count();
        found.extend(
            audit::findings(&text, &manifest_text)
                .into_iter()
                .map(|f| format!("{log}: {f}")),
        );
    }
    let checked = manifest_text.lines().count();
    if found.is_empty() {
        println!(
            "log audit: {lines} log lines in {} files, {checked} sensitive values, none found",
            logs.len()
        );
        Ok(())
    } else {
        Err(format!("log audit failed:\n{}", found.join("\n")))
    }
}
