//! The subcommands.

use std::net::SocketAddr;

use parley::twilio::signature;
use parley_local::crash::Crashes;
use parley_local::env::{repo_root, LocalEnv};
use parley_local::event_sources::{OnFailureQueue, SchedulePoller, SqsPoller, StreamPoller};
use parley_local::gateway::Gateway;
use parley_local::template::Template;
use parley_local::{audit, bootstrap, crash, emulator, functions, stack};

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
        let sdk = parley::aws::loader().load().await;
        let resources = bootstrap::bootstrap(&sdk, &template, env).await?;
        // `!Ref SendQueue` in a function's environment is the local queue's URL, `!Ref EventBus`
        // the local bus's name.
        stack::export_local_refs(
            &aws_sdk_sqs::Client::new(&sdk),
            &template,
            env.require("LOCAL_QUEUE_PREFIX")?,
        )
        .await?;

        let monitor_port = env.port("LOCAL_MONITOR_PORT")?;
        let monitor_listener = tokio::net::TcpListener::bind(("127.0.0.1", monitor_port))
            .await
            .map_err(|e| {
                format!("cannot listen on {monitor_port}: {e} (set LOCAL_MONITOR_PORT)")
            })?;
        let _monitor = monitor_stub::spawn(
            monitor_listener,
            monitor_stub::MonitorConfig::new(env.require("LOCAL_MONITOR_API_KEY")?),
        )
        .await
        .map_err(|e| format!("Collections Monitor stub: {e}"))?;

        let twilio_port = env.port("LOCAL_TWILIO_PORT")?;
        let twilio_listener = tokio::net::TcpListener::bind(("127.0.0.1", twilio_port))
            .await
            .map_err(|e| format!("cannot listen on {twilio_port}: {e} (set LOCAL_TWILIO_PORT)"))?;
        let mut sandbox_config = twilio_sandbox::SandboxConfig::new(
            env.require("LOCAL_TWILIO_ACCOUNT_SID")?,
            env.require("LOCAL_TWILIO_AUTH_TOKEN")?,
        );
        // As an operator does in Twilio's console: the sending number's "A message comes in"
        // webhook is Parley's, with the connection overrides (README, "Twilio's console").
        if let (Some(number), Some(base)) =
            (env.get("TWILIO_FROM_NUMBER"), env.get("PUBLIC_BASE_URL"))
        {
            sandbox_config = sandbox_config.with_incoming_number(
                number,
                parley::twilio::overrides::with_overrides(&format!(
                    "{base}{}",
                    parley::handlers::inbound_sms::ROUTE
                )),
            );
        }
        if let Some(ms) = env
            .get("SANDBOX_CALLBACK_DELAY_MS")
            .and_then(|v| v.parse().ok())
        {
            sandbox_config.callback_delay = std::time::Duration::from_millis(ms);
        }
        let _sandbox = twilio_sandbox::spawn(twilio_listener, sandbox_config)
            .await
            .map_err(|e| format!("Twilio sandbox: {e}"))?;

        let gateway = Gateway::new(template.http_routes(), functions::http_functions().await?)?;
        let mut sqs_functions = functions::sqs_functions().await?;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        // The chaos suite's crash hook (`POST /_local/crash`, infra/local/src/crash.rs).
        let crashes = std::sync::Arc::new(Crashes::default());
        let mut pollers = Vec::new();
        for source in template.sqs_sources() {
            let function = sqs_functions
                .remove(&source.function)
                .ok_or_else(|| format!("the local stack cannot run {}", source.function))?;
            let (queue_url, queue_arn) =
                resources
                    .queues
                    .get(&source.queue)
                    .cloned()
                    .ok_or_else(|| {
                        format!(
                            "{} reads the unknown queue {}",
                            source.function, source.queue
                        )
                    })?;
            let function = crashes.wrap(&source.function, function, sqs.clone(), queue_url.clone());
            let poller = SqsPoller {
                client: sqs.clone(),
                queue_url,
                queue_arn,
                batch_size: source.batch_size,
                region: env.get("AWS_REGION").unwrap_or("us-east-1").to_owned(),
                function,
            };
            pollers.push(tokio::spawn(poller.run()));
        }

        for source in template.stream_sources() {
            let function = functions::stream_functions()
                .await?
                .remove(&source.function)
                .ok_or_else(|| format!("the local stack cannot run {}", source.function))?;
            let stream_arn = resources
                .table_stream_arn
                .clone()
                .ok_or_else(|| format!("the {} table has no stream", source.table))?;
            let on_failure = match &source.on_failure {
                Some(queue) => Some(OnFailureQueue {
                    client: sqs.clone(),
                    queue_url: resources
                        .queues
                        .get(queue)
                        .map(|(url, _)| url.clone())
                        .ok_or_else(|| format!("{}: no queue {queue}", source.function))?,
                }),
                None => None,
            };
            let poller = StreamPoller {
                client: aws_sdk_dynamodbstreams::Client::new(&sdk),
                stream_arn,
                batch_size: source.batch_size,
                max_retries: source.max_retries,
                region: env.get("AWS_REGION").unwrap_or("us-east-1").to_owned(),
                function,
                function_name: source.function.clone(),
                on_failure,
            };
            pollers.push(tokio::spawn(poller.run()));
        }

        // Every `Schedule` event the template declares, at its rate or at the local override
        // `LOCAL_SCHEDULE_<EVENT>_SECONDS` (infra/local.env runs the dispatcher every few seconds).
        let schedule_functions = functions::schedule_functions().await?;
        for source in template.schedule_sources() {
            let function = schedule_functions
                .get(&source.function)
                .cloned()
                .ok_or_else(|| format!("the local stack cannot run {}", source.function))?;
            let every = env
                .get(&format!(
                    "LOCAL_SCHEDULE_{}_SECONDS",
                    source.event.to_ascii_uppercase()
                ))
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|s| *s > 0.0)
                .map_or(source.rate, std::time::Duration::from_secs_f64);
            let poller = SchedulePoller {
                name: format!("{}-{}", source.function, source.event),
                every,
                input: source.input,
                region: env.get("AWS_REGION").unwrap_or("us-east-1").to_owned(),
                function,
            };
            pollers.push(tokio::spawn(poller.run()));
        }

        let addr = SocketAddr::from(([127, 0, 0, 1], gateway_port));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e} (set LOCAL_GATEWAY_PORT)"))?;
        println!("ready: http://{addr}");
        println!(
            "console: http://{addr}/console (sign in with LOCAL_API_KEY from infra/local.env)"
        );
        axum::serve(
            listener,
            gateway
                .router()
                .merge(crash::router(crashes))
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
        for poller in pollers {
            poller.abort();
        }
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
/// After the suite: every metric an alarm of `template.yaml` watches in the Parley namespace was
/// emitted, under the function the alarm names, by the code the suite ran.
pub fn audit_metrics(args: &[String]) -> Result<(), String> {
    if args.is_empty() {
        return Err("usage: parley-local audit-metrics LOG [LOG…]".into());
    }
    let logs = args
        .iter()
        .map(|p| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let template = Template::load_default().map_err(|e| e.to_string())?;
    let watched = template.emf_alarm_metrics();
    let missing = audit::missing_metrics(&watched, &logs);
    if missing.is_empty() {
        println!(
            "metrics audit: all {} metrics the alarms watch were emitted by their functions",
            watched.len()
        );
        Ok(())
    } else {
        Err(format!(
            "metrics audit failed: alarms watch metrics the suite never saw emitted: {}",
            missing
                .iter()
                .map(|(m, f)| format!("{m} (function {f})"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

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

/// Rotates the running local stack's Twilio auth token as an operator would in production:
/// Twilio (the sandbox) switches to the new token at once, then the secret gets it, with the
/// token it replaces kept as `twilio_auth_token_previous` for webhooks signed before the switch.
/// Warm functions pick it up by themselves (TTL, or at once on Twilio's 401).
pub fn rotate_twilio_token(env: &LocalEnv, args: &[String]) -> Result<(), String> {
    let [token] = args else {
        return Err("usage: parley-local rotate-twilio-token NEW_TOKEN".into());
    };
    if token.trim().is_empty() {
        return Err("the new token must not be empty".into());
    }
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let sandbox = format!(
            "http://127.0.0.1:{}/_sandbox/auth-token",
            env.port("LOCAL_TWILIO_PORT")?
        );
        let rotated = reqwest::Client::new()
            .post(&sandbox)
            .json(&serde_json::json!({ "auth_token": token }))
            .send()
            .await
            .map_err(|e| format!("the Twilio sandbox is not reachable (is `make run` up?): {e}"))?;
        if !rotated.status().is_success() {
            return Err(format!("the sandbox refused the rotation: HTTP {}", rotated.status()));
        }

        let sdk = parley::aws::loader().load().await;
        let client = aws_sdk_secretsmanager::Client::new(&sdk);
        let id = env.require("SECRET_ID")?;
        let current = client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| format!("could not read {id}: {}", aws_sdk_secretsmanager::Error::from(e)))?;
        let mut secret: serde_json::Value = current
            .secret_string()
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| format!("{id} does not hold a JSON object"))?;
        let previous = secret["twilio_auth_token"].take();
        secret["twilio_auth_token_previous"] = previous;
        secret["twilio_auth_token"] = serde_json::Value::String(token.clone());
        bootstrap::put_secret(&client, id, &secret.to_string()).await?;
        println!("rotated: the sandbox accepts only the new token; {id} holds it, and the old one as previous");
        Ok(())
    })
}

/// `keys create --name NAME --scopes send,read [--countries US,CA] [--requests-per-second N]
/// [--messages-per-day N]` | `keys list` | `keys revoke KEY_ID`, against the local table (no
/// API key needed: this is the operator's own machine).
pub fn keys(env: &LocalEnv, args: &[String]) -> Result<(), String> {
    const USAGE: &str = "usage: parley-local keys create --name NAME --scopes send,read,admin \
        [--countries US,CA] [--requests-per-second N] [--messages-per-day N] | keys list | keys revoke KEY_ID";
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let sdk = parley::aws::loader().load().await;
        let store = parley::store::Store::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            env.require("TABLE_NAME")?,
        );
        let unreachable = |e: parley::store::StoreError| {
            format!("the local table is not reachable (is `make run` up?): {e}")
        };
        match args.split_first() {
            Some((command, rest)) if command == "create" => {
                let new = new_key(rest).map_err(|e| format!("{e}\n{USAGE}"))?;
                let (key, token) = new.validate(parley::time::Timestamp::now()).map_err(|fields| {
                    fields
                        .iter()
                        .map(|(f, m)| format!("{f}: {m}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                })?;
                store.put_api_key(&key).await.map_err(unreachable)?;
                let info = serde_json::to_string_pretty(&key.info()).map_err(|e| e.to_string())?;
                eprintln!("{info}");
                eprintln!("the token below is shown once; keep it:");
                println!("{token}");
                Ok(())
            }
            Some((command, [])) if command == "list" => {
                let keys = store.api_keys().await.map_err(unreachable)?;
                let infos: Vec<_> = keys.iter().map(|k| k.info()).collect();
                println!("{}", serde_json::to_string_pretty(&infos).map_err(|e| e.to_string())?);
                Ok(())
            }
            Some((command, [id])) if command == "revoke" => {
                match store
                    .revoke_api_key(id, parley::time::Timestamp::now())
                    .await
                    .map_err(unreachable)?
                {
                    Some(key) => {
                        println!("revoked {} ({}); running functions refuse it within SECRETS_TTL_SECONDS", key.key_id, key.name);
                        Ok(())
                    }
                    None => Err(format!("no API key {id}")),
                }
            }
            _ => Err(USAGE.into()),
        }
    })
}

fn new_key(args: &[String]) -> Result<parley::access::NewKey, String> {
    let mut name = None;
    let mut scopes = Vec::new();
    let mut countries = None;
    let mut quotas = parley::access::Quotas::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u32>()
                .map_err(|_| format!("{flag}: `{value}` is not a whole number"))
        };
        match flag.as_str() {
            "--name" => name = Some(value.clone()),
            "--scopes" => scopes = value.split(',').map(|s| s.trim().to_owned()).collect(),
            "--countries" => countries = Some(parley::access::parse_countries(value)),
            "--requests-per-second" => quotas.requests_per_second = Some(number()?),
            "--messages-per-day" => quotas.messages_per_day = Some(number()?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(parley::access::NewKey {
        name: name.ok_or("--name is required")?,
        scopes,
        countries,
        quotas,
    })
}

/// `backfill [--since RFC3339] [--number +1…]…`: one run of the inbound backfill against the
/// local stack, as `aws lambda invoke` with `{"since", "numbers"}` runs it deployed (the
/// runbook's command). Prints the run's report; exits non-zero when the run failed.
pub fn backfill(args: &[String]) -> Result<(), String> {
    const USAGE: &str =
        "usage: parley-local backfill [--since 2026-11-29T00:00:00Z] [--number +1…]…";
    let mut request = serde_json::Map::new();
    let mut numbers = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--since" => {
                request.insert("since".into(), serde_json::Value::String(value.clone()));
            }
            "--number" => numbers.push(serde_json::Value::String(value.clone())),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    if !numbers.is_empty() {
        request.insert("numbers".into(), serde_json::Value::Array(numbers));
    }
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    // No log subscriber: stdout carries the report alone (its counts say what was done).
    runtime.block_on(async {
        let backfill = parley::handlers::inbound_backfill::InboundBackfill::from_env()
            .await
            .map_err(|e| {
                format!("the inbound backfill could not start (is `make run` up?): {e}")
            })?;
        match backfill.handle(serde_json::Value::Object(request)).await {
            Ok(report) => {
                println!("{report}");
                Ok(())
            }
            Err(e) => {
                println!("{}", functions::backfill_error(&e));
                Err(format!("the backfill failed: {}", parley::error::chain(&e)))
            }
        }
    })
}

/// `fault store-down [--for 60s] | fault (down|throttle|slow) SERVICE … | fault list | fault
/// clear`: opens (or lists, or ends) fault windows in the running stack's emulator.
pub fn fault(env: &LocalEnv, args: &[String]) -> Result<(), String> {
    use parley_local::fault::{describe, parse_command, EmulatorFaults, FaultCommand, USAGE};
    let command = parse_command(args).map_err(|e| format!("{e}\n{USAGE}"))?;
    let faults = EmulatorFaults::new(env.require("AWS_ENDPOINT_URL")?);
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        match command {
            FaultCommand::Open(spec) => {
                let window = faults.open(&spec).await?;
                println!("opened {}", describe(&window));
                println!("lift it early with: parley-local fault clear");
            }
            FaultCommand::List => {
                let windows = faults.list().await?;
                if windows.is_empty() {
                    println!("no fault windows");
                }
                for w in &windows {
                    println!("{}", describe(w));
                }
            }
            FaultCommand::Clear => {
                let windows = faults.clear().await?;
                println!("every fault window ended ({} opened so far)", windows.len());
                for w in &windows {
                    println!("{}", describe(w));
                }
            }
        }
        Ok(())
    })
}
