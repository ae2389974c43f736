//! `parley-local up | sign URL [KEY=VALUE…] | rotate-twilio-token NEW_TOKEN | keys … |
//! audit-logs MANIFEST LOG…`

use std::process::ExitCode;

use parley_local::env::LocalEnv;

mod cli;

const USAGE: &str =
    "usage: parley-local up | sign URL [KEY=VALUE…] | rotate-twilio-token NEW_TOKEN \
                     | keys create|list|revoke … | audit-logs MANIFEST LOG…";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env = match LocalEnv::load() {
        Ok(env) => env,
        Err(e) => return fail(&e.to_string()),
    };
    // Before any thread exists: handlers and the AWS SDK read their settings from here.
    env.export();
    let result = match args.first().map(String::as_str) {
        Some("up") => cli::up(&env),
        Some("sign") => cli::sign(&env, &args[1..]),
        Some("audit-logs") => cli::audit_logs(&args[1..]),
        Some("rotate-twilio-token") => cli::rotate_twilio_token(&env, &args[1..]),
        Some("keys") => cli::keys(&env, &args[1..]),
        _ => Err(USAGE.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("parley-local: {message}");
    ExitCode::FAILURE
}
