//! `parley-local up | sign URL [KEY=VALUE…] | rotate-twilio-token NEW_TOKEN | keys … |
//! configure … | backfill … | redrive … | replay-failures … | fault … | audit-logs MANIFEST
//! LOG… | audit-metrics LOG… | openapi`

use std::process::ExitCode;

use parley_local::env::LocalEnv;

mod cli;
mod configure;
mod operate;

const USAGE: &str =
    "usage: parley-local up | sign URL [KEY=VALUE…] | rotate-twilio-token NEW_TOKEN \
                     | keys create|list|revoke … | configure [--stack NAME] … \
                     | backfill [--since RFC3339] [--number +1…]… \
                     | redrive [QUEUE…] [--stack NAME] | replay-failures [--stack NAME] \
                     | fault store-down [--for 60s] | fault (down|throttle|slow) SERVICE … | fault list|clear \
                     | audit-logs MANIFEST LOG… | audit-metrics LOG… \
                     | openapi (> docs/openapi.json)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Needs no environment: the document comes from the types alone.
    if args.first().map(String::as_str) == Some("openapi") {
        print!("{}", parley::openapi::document());
        return ExitCode::SUCCESS;
    }
    let env = match LocalEnv::load() {
        Ok(env) => env,
        Err(e) => return fail(&e.to_string()),
    };
    // Against a deployed stack, AWS settings are the caller's own (credentials, region): none of
    // the local defaults (the emulator's endpoint, its fake credentials) may apply.
    let deployed = args.iter().any(|a| a == "--stack");
    // Before any thread exists: handlers and the AWS SDK read their settings from here.
    if !deployed {
        env.export();
    }
    let result = match args.first().map(String::as_str) {
        Some("up") => cli::up(&env),
        Some("sign") => cli::sign(&env, &args[1..]),
        Some("audit-logs") => cli::audit_logs(&args[1..]),
        Some("audit-metrics") => cli::audit_metrics(&args[1..]),
        Some("rotate-twilio-token") => cli::rotate_twilio_token(&env, &args[1..]),
        Some("keys") => cli::keys(&env, &args[1..]),
        Some("backfill") => cli::backfill(&args[1..]),
        Some("configure") => configure(&env, &args[1..]),
        Some("redrive") => operate::redrive(&env, &args[1..]),
        Some("replay-failures") => operate::replay_failures(&env, &args[1..]),
        Some("fault") => cli::fault(&env, &args[1..]),
        _ => Err(USAGE.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn configure(env: &LocalEnv, args: &[String]) -> Result<(), String> {
    let options = configure::parse_args(args).map_err(|e| format!("{e}\n{}", configure::USAGE))?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(configure::run(
        &options,
        env.get("SECRET_ID"),
        env.get("TABLE_NAME"),
        env.get("PUBLIC_BASE_URL"),
    ))
}

fn fail(message: &str) -> ExitCode {
    eprintln!("parley-local: {message}");
    ExitCode::FAILURE
}
