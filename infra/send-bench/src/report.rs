//! What both binaries print the same way, and how they stop.

use crate::stats::ms;
use crate::timing;

/// Resolves on Ctrl-C or SIGTERM, naming which.
pub async fn interrupted() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub fn print_ops(ops: &[timing::OpSummary]) {
    eprintln!(
        "  {:<32} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "operation (attempts)",
        "count",
        "errors",
        "total s",
        "mean ms",
        "p50 ms",
        "p99 ms",
        "max ms"
    );
    for o in ops {
        let s = &o.latency;
        eprintln!(
            "  {:<32} {:>6} {:>6} {:>9.2} {:>9} {:>9} {:>9} {:>9}",
            o.op,
            s.n,
            o.errors,
            s.total.as_secs_f64(),
            ms(s.mean),
            ms(s.p50),
            ms(s.p99),
            ms(s.max)
        );
    }
}

pub fn pass(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}
