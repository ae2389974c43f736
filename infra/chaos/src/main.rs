//! `parley-chaos [--duration 180s] [--rate 2] [--store-down 60s] [--settle 420s]
//! [--gateway-port 3550] [--aws-port 5050] [--twilio-port 3551] [--monitor-port 3552]`:
//! `make chaos` (`CHAOS_ARGS`). Starts its own stack with `parley-local` from its own
//! directory, prints the report (docs/reliability.md) and exits non-zero on any violation or
//! any fault class not injected.

use std::process::ExitCode;

use parley_chaos::stack::Ports;
use parley_chaos::Options;
use parley_local::fault::parse_duration;

const USAGE: &str = "usage: parley-chaos [--duration 180s] [--rate 2] [--store-down 60s] \
    [--settle 420s] [--gateway-port 3550] [--aws-port 5050] [--twilio-port 3551] [--monitor-port 3552]";

fn parse_args() -> Result<Options, String> {
    let dir = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .parent()
        .ok_or("no directory for this binary")?
        .to_owned();
    let mut options = Options {
        duration: std::time::Duration::from_secs(180),
        rate: 2.0,
        store_down: std::time::Duration::from_secs(60),
        settle: std::time::Duration::from_secs(420),
        ports: Ports::default(),
        parley_local: dir.join("parley-local"),
        log: dir.join("chaos-stack.log"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let port = || {
            value
                .parse::<u16>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        match flag.as_str() {
            "--duration" => options.duration = parse_duration(&value)?,
            "--store-down" => options.store_down = parse_duration(&value)?,
            "--settle" => options.settle = parse_duration(&value)?,
            "--rate" => {
                options.rate = value
                    .parse()
                    .ok()
                    .filter(|r: &f64| *r > 0.0 && *r <= 50.0)
                    .ok_or_else(|| format!("--rate {value}: from 0 to 50 operations a second"))?
            }
            "--gateway-port" => options.ports.gateway = port()?,
            "--aws-port" => options.ports.aws = port()?,
            "--twilio-port" => options.ports.twilio = port()?,
            "--monitor-port" => options.ports.monitor = port()?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("parley-chaos: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("parley-chaos: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "parley-chaos: {:.0} s of load at {} operations/s on ports {:?}, then up to {:.0} s to settle; the stack logs to {}",
        options.duration.as_secs_f64(),
        options.rate,
        options.ports,
        options.settle.as_secs_f64(),
        options.log.display()
    );
    match runtime.block_on(parley_chaos::run(&options)) {
        Ok(report) => {
            println!("{report}");
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("parley-chaos: {e}");
            ExitCode::FAILURE
        }
    }
}
