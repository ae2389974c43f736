//! The runbook commands that move queued work: `redrive` and `replay-failures`. Each acts on
//! the local stack, or with `--stack NAME` on a deployed one (the caller's AWS credentials and
//! region).

use parley_local::env::LocalEnv;
use parley_local::functions;
use parley_local::redrive::{self, RedrivePair};
use parley_local::replay::{Processor, Replay};
use parley_local::stack::{self, Target};
use parley_local::template::Template;

pub const REDRIVE_USAGE: &str =
    "usage: parley-local redrive [SOURCE_QUEUE…] [--stack NAME] [--max N] [--dry-run]\n\
     moves each dead-letter queue's messages back to its source queue (default: every queue \
     of template.yaml with a redrive policy, e.g. SendQueue EventRouterQueue)";

pub const REPLAY_USAGE: &str =
    "usage: parley-local replay-failures [--stack NAME] [--function NAME] [--dry-run]\n\
     hands the stream batches in ProcessorFailureQueue to the inbound processor again";

/// The options both commands share.
#[derive(Debug, Default, PartialEq)]
struct Options {
    stack: Option<String>,
    function: Option<String>,
    max: Option<usize>,
    dry_run: bool,
    names: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match arg.as_str() {
            "--stack" => options.stack = Some(value("--stack")?),
            "--function" => options.function = Some(value("--function")?),
            "--max" => {
                options.max = Some(
                    value("--max")?
                        .parse()
                        .map_err(|_| "--max takes a number".to_owned())?,
                )
            }
            "--dry-run" => options.dry_run = true,
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            name => options.names.push(name.to_owned()),
        }
    }
    Ok(options)
}

fn target(env: &LocalEnv, options: &Options) -> Result<Target, String> {
    Ok(match &options.stack {
        Some(stack) => Target::Deployed {
            stack: stack.clone(),
        },
        None => Target::Local {
            queue_prefix: env.require("LOCAL_QUEUE_PREFIX")?.to_owned(),
        },
    })
}

pub fn redrive(env: &LocalEnv, args: &[String]) -> Result<(), String> {
    let options = parse(args).map_err(|e| format!("{e}\n{REDRIVE_USAGE}"))?;
    let target = target(env, &options)?;
    let template = Template::load_default().map_err(|e| e.to_string())?;
    let queues: Vec<_> = template
        .queues()
        .into_iter()
        .filter_map(|q| Some((q.logical_id, q.redrive?.0)))
        .filter(|(source, _)| options.names.is_empty() || options.names.contains(source))
        .collect();
    if let Some(unknown) = options
        .names
        .iter()
        .find(|n| !queues.iter().any(|(source, _)| source == *n))
    {
        return Err(format!(
            "{unknown} is not a queue with a dead-letter queue\n{REDRIVE_USAGE}"
        ));
    }
    runtime()?.block_on(async {
        let sdk = parley::aws::loader().load().await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        for (source, dead_letter) in queues {
            let pair = RedrivePair {
                source: target.queue_url(&sqs, &source).await?,
                dead_letter: target.queue_url(&sqs, &dead_letter).await?,
            };
            let waiting = redrive::waiting(&sqs, &pair.dead_letter).await?;
            if options.dry_run {
                println!("{dead_letter} → {source}: {waiting} waiting (dry run: nothing moved)");
                continue;
            }
            let moved = redrive::redrive(&sqs, &pair, options.max.unwrap_or(usize::MAX)).await?;
            println!("{dead_letter} → {source}: {moved} moved");
        }
        Ok(())
    })
}

pub fn replay_failures(env: &LocalEnv, args: &[String]) -> Result<(), String> {
    let options = parse(args).map_err(|e| format!("{e}\n{REPLAY_USAGE}"))?;
    if !options.names.is_empty() || options.max.is_some() {
        return Err(REPLAY_USAGE.into());
    }
    let target = target(env, &options)?;
    let template = Template::load_default().map_err(|e| e.to_string())?;
    let source = template
        .stream_sources()
        .into_iter()
        .find(|s| s.on_failure.is_some())
        .ok_or("template.yaml has no stream event source with an on-failure queue")?;
    let failure_queue = source.on_failure.clone().unwrap_or_default();
    runtime()?.block_on(async {
        let sdk = parley::aws::loader().load().await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let processor = match (&target, &options.function) {
            (Target::Local { queue_prefix }, _) => Processor::InProcess({
                stack::export_local_refs(&sqs, &template, queue_prefix).await?;

                functions::stream_functions()
                    .await?
                    .remove(&source.function)
                    .ok_or_else(|| format!("the local stack cannot run {}", source.function))?
            }),
            (Target::Deployed { .. }, named) => {
                let client = aws_sdk_lambda::Client::new(&sdk);
                let function = match named {
                    Some(name) => name.clone(),
                    None => target.function_name(&client, &source.function).await?,
                };
                Processor::Deployed { client, function }
            }
        };
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".into());
        let report = Replay {
            sqs: &sqs,
            streams: &aws_sdk_dynamodbstreams::Client::new(&sdk),
            failure_queue: &target.queue_url(&sqs, &failure_queue).await?,
            region: &region,
            processor,
            dry_run: options.dry_run,
        }
        .run()
        .await?;
        println!(
            "{failure_queue}: {} batches, {} records {}, {} no longer in the stream, {} batches kept",
            report.batches,
            report.records,
            if options.dry_run { "found (dry run)" } else { "replayed" },
            report.missing,
            report.kept
        );
        Ok(())
    })
}

/// One thread: `export_local_refs` sets environment variables while it runs.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn options() {
        assert_eq!(
            parse(&args("SendQueue --stack prod --max 5 --dry-run")).unwrap(),
            Options {
                stack: Some("prod".into()),
                max: Some(5),
                dry_run: true,
                names: vec!["SendQueue".into()],
                ..Options::default()
            }
        );
        assert!(parse(&args("--stack")).is_err());
        assert!(parse(&args("--max many")).is_err());
        assert!(parse(&args("--force")).is_err());
    }
}
