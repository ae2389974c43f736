//! Where a runbook command acts: the local stack (the emulator, names from `infra/local.env`)
//! or a deployed stack, whose resources carry CloudFormation's generated names
//! (`{stack}-{LogicalId}-{suffix}`).

use crate::bootstrap::queue_name;

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Local { queue_prefix: String },
    Deployed { stack: String },
}

impl Target {
    /// The URL of a template queue.
    pub async fn queue_url(
        &self,
        sqs: &aws_sdk_sqs::Client,
        logical_id: &str,
    ) -> Result<String, String> {
        match self {
            Self::Local { queue_prefix } => sqs
                .get_queue_url()
                .queue_name(queue_name(queue_prefix, logical_id))
                .send()
                .await
                .map_err(|e| format!("{logical_id}: {}", aws_sdk_sqs::Error::from(e)))?
                .queue_url
                .ok_or_else(|| format!("{logical_id}: GetQueueUrl returned no URL")),
            Self::Deployed { stack } => {
                let prefix = format!("{stack}-{logical_id}-");
                let urls = sqs
                    .list_queues()
                    .queue_name_prefix(&prefix)
                    .send()
                    .await
                    .map_err(|e| format!("ListQueues: {}", aws_sdk_sqs::Error::from(e)))?
                    .queue_urls
                    .unwrap_or_default();
                one(urls, &prefix, "queue")
            }
        }
    }

    /// The name of a deployed template function (the local stack runs functions in-process).
    pub async fn function_name(
        &self,
        lambda: &aws_sdk_lambda::Client,
        logical_id: &str,
    ) -> Result<String, String> {
        let Self::Deployed { stack } = self else {
            return Err(format!("{logical_id} runs in-process locally"));
        };
        // CloudFormation shortens long logical ids in generated names: match on the stack part.
        let prefix = format!("{stack}-{}", &logical_id[..logical_id.len().min(20)]);
        let mut names = Vec::new();
        let mut pages = lambda.list_functions().into_paginator().items().send();
        while let Some(function) = pages.next().await {
            let function = function
                .map_err(|e| format!("ListFunctions: {}", aws_sdk_lambda::Error::from(e)))?;
            if let Some(name) = function.function_name {
                if name.starts_with(&prefix) {
                    names.push(name);
                }
            }
        }
        one(names, &prefix, "function")
    }
}

fn one(found: Vec<String>, prefix: &str, what: &str) -> Result<String, String> {
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(format!(
            "no {what} named {prefix}… (is the stack deployed? is AWS_REGION right?)"
        )),
        _ => Err(format!(
            "several {what}s named {prefix}…: {}",
            found.join(", ")
        )),
    }
}

/// Sets the environment the local stack's functions read through `!Ref` (queue URLs, bus
/// names), as `parley-local up` does, for a command that runs a function in-process. Must run
/// before any other thread reads the environment.
pub async fn export_local_refs(
    sqs: &aws_sdk_sqs::Client,
    template: &crate::template::Template,
    queue_prefix: &str,
) -> Result<(), String> {
    let buses = template.event_buses();
    let queues: Vec<String> = template
        .queues()
        .into_iter()
        .map(|q| q.logical_id)
        .collect();
    let target = Target::Local {
        queue_prefix: queue_prefix.to_owned(),
    };
    for (var, logical_id) in template.env_refs() {
        if std::env::var_os(&var).is_some() {
            continue;
        }
        let value = if buses.contains(&logical_id) {
            format!("{queue_prefix}{logical_id}")
        } else if queues.contains(&logical_id) {
            target.queue_url(sqs, &logical_id).await?
        } else {
            continue;
        };
        std::env::set_var(var, value);
    }
    Ok(())
}
