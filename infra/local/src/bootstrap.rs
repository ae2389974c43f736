//! Creates the local resources from `template.yaml` in the emulator and seeds the dev secrets.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::TimeToLiveSpecification;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::json;

use crate::env::LocalEnv;
use crate::template::{QueueDef, TableProperties, Template};

/// What the bootstrap created, by logical id.
#[derive(Debug, Default)]
pub struct Resources {
    /// Queue logical id → (URL, ARN).
    pub queues: HashMap<String, (String, String)>,
    /// Event bus logical id → name.
    pub buses: HashMap<String, String>,
    /// The table's stream.
    pub table_stream_arn: Option<String>,
}

pub async fn bootstrap(
    sdk: &SdkConfig,
    template: &Template,
    env: &LocalEnv,
) -> Result<Resources, String> {
    let table = template.table("Table").map_err(|e| e.to_string())?;
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    create_table(&dynamodb, &table, env.require("TABLE_NAME")?).await?;
    let secrets = aws_sdk_secretsmanager::Client::new(sdk);
    put_secret(&secrets, env.require("SECRET_ID")?, &dev_secret(env)?).await?;
    seed_dev_keys(
        &parley::store::Store::new(dynamodb.clone(), env.require("TABLE_NAME")?),
        env,
    )
    .await?;
    if let Some(alias) = env.get("DATA_KEY_ID").filter(|a| !a.is_empty()) {
        create_data_key(&aws_sdk_kms::Client::new(sdk), alias).await?;
    }
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let prefix = env.require("LOCAL_QUEUE_PREFIX")?;
    let queues = create_queues(&sqs, &template.queues(), prefix).await?;
    let events = aws_sdk_eventbridge::Client::new(sdk);
    let mut buses = HashMap::new();
    for id in template.event_buses() {
        let name = format!("{prefix}{id}");
        events
            .create_event_bus()
            .name(&name)
            .send()
            .await
            .map_err(|e| format!("CreateEventBus: {}", aws_sdk_eventbridge::Error::from(e)))?;
        buses.insert(id, name);
    }
    for rule in template.event_rules() {
        create_event_rule(&events, &rule, prefix, &buses, &queues).await?;
    }
    let table_stream_arn = dynamodb
        .describe_table()
        .table_name(env.require("TABLE_NAME")?)
        .send()
        .await
        .map_err(|e| format!("DescribeTable: {}", aws_sdk_dynamodb::Error::from(e)))?
        .table
        .and_then(|t| t.latest_stream_arn);
    Ok(Resources {
        queues,
        buses,
        table_stream_arn,
    })
}

/// An EventBridge rule on a local bus, delivering to local queues (the emulator runs it).
async fn create_event_rule(
    events: &aws_sdk_eventbridge::Client,
    rule: &crate::template::EventRuleDef,
    prefix: &str,
    buses: &HashMap<String, String>,
    queues: &HashMap<String, (String, String)>,
) -> Result<(), String> {
    let bus = buses
        .get(&rule.bus)
        .ok_or_else(|| format!("{}: no bus {}", rule.logical_id, rule.bus))?;
    let name = format!("{prefix}{}", rule.logical_id);
    let err = |op: &str, e: aws_sdk_eventbridge::Error| format!("{op} {name}: {e}");
    events
        .put_rule()
        .name(&name)
        .event_bus_name(bus)
        .event_pattern(rule.pattern.to_string())
        .send()
        .await
        .map_err(|e| err("PutRule", e.into()))?;
    for queue in &rule.queues {
        let (_, arn) = queues
            .get(queue)
            .ok_or_else(|| format!("{}: no queue {queue}", rule.logical_id))?;
        let target = aws_sdk_eventbridge::types::Target::builder()
            .id(queue)
            .arn(arn)
            .build()
            .map_err(|e| e.to_string())?;
        events
            .put_targets()
            .rule(&name)
            .event_bus_name(bus)
            .targets(target)
            .send()
            .await
            .map_err(|e| err("PutTargets", e.into()))?;
    }
    Ok(())
}

/// The template's `DataKey`: a KMS key in the emulator under `alias` (`alias/parley-local`),
/// unless the alias exists already.
pub async fn create_data_key(client: &aws_sdk_kms::Client, alias: &str) -> Result<(), String> {
    if client.describe_key().key_id(alias).send().await.is_ok() {
        return Ok(());
    }
    let key = client
        .create_key()
        .description("Parley local data key")
        .send()
        .await
        .map_err(|e| format!("CreateKey: {}", aws_sdk_kms::Error::from(e)))?
        .key_metadata
        .ok_or("CreateKey returned no key")?
        .key_id;
    client
        .create_alias()
        .alias_name(alias)
        .target_key_id(key)
        .send()
        .await
        .map_err(|e| format!("CreateAlias: {}", aws_sdk_kms::Error::from(e)))?;
    Ok(())
}

/// The dev keys of `infra/local.env` (`LOCAL_SEND_API_KEY`, `LOCAL_READ_API_KEY`), stored as
/// `POST /keys` would store them, unless they are there already.
pub async fn seed_dev_keys(store: &parley::store::Store, env: &LocalEnv) -> Result<(), String> {
    use parley::access::{key::sha256_hex, ApiKey, Quotas, Scope, Token};
    for (var, scope) in [
        ("LOCAL_SEND_API_KEY", Scope::Send),
        ("LOCAL_READ_API_KEY", Scope::Read),
    ] {
        let Some(value) = env.get(var).filter(|v| !v.is_empty()) else {
            continue;
        };
        let token =
            Token::parse(value).ok_or_else(|| format!("{var} is not a prly_<id>_<secret> key"))?;
        let seeded = store
            .api_key(token.key_id)
            .await
            .map_err(|e| e.to_string())?;
        if seeded.is_some() {
            continue;
        }
        let key = ApiKey {
            key_id: token.key_id.to_owned(),
            name: format!("dev key from {var}"),
            scopes: [scope].into_iter().collect(),
            countries: None,
            quotas: Quotas::default(),
            created_at: parley::time::Timestamp::now(),
            revoked_at: None,
            secret_sha256: sha256_hex(token.secret),
        };
        store.put_api_key(&key).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The local name of a template queue.
pub fn queue_name(prefix: &str, logical_id: &str) -> String {
    format!("{prefix}{logical_id}")
}

/// Creates the template's queues, dead-letter queues first so redrive policies can name them.
pub async fn create_queues(
    client: &aws_sdk_sqs::Client,
    queues: &[QueueDef],
    prefix: &str,
) -> Result<HashMap<String, (String, String)>, String> {
    let mut created: HashMap<String, (String, String)> = HashMap::new();
    let mut pending: Vec<&QueueDef> = queues.iter().collect();
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|q| {
                q.redrive
                    .as_ref()
                    .is_none_or(|(dlq, _)| created.contains_key(dlq))
            })
            .ok_or("queue redrive policies refer to unknown queues")?;
        let q = pending.remove(ready);
        let mut req = client
            .create_queue()
            .queue_name(queue_name(prefix, &q.logical_id));
        if let Some(v) = q.visibility_timeout {
            req = req.attributes(QueueAttributeName::VisibilityTimeout, v.to_string());
        }
        if let Some(r) = q.retention {
            req = req.attributes(QueueAttributeName::MessageRetentionPeriod, r.to_string());
        }
        if let Some((dlq, max)) = &q.redrive {
            let arn = &created[dlq].1;
            req = req.attributes(
                QueueAttributeName::RedrivePolicy,
                json!({ "deadLetterTargetArn": arn, "maxReceiveCount": max }).to_string(),
            );
        }
        let url = req
            .send()
            .await
            .map_err(|e| {
                format!(
                    "CreateQueue {}: {}",
                    q.logical_id,
                    aws_sdk_sqs::Error::from(e)
                )
            })?
            .queue_url
            .ok_or("CreateQueue returned no URL")?;
        let arn = client
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| format!("GetQueueAttributes: {}", aws_sdk_sqs::Error::from(e)))?
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .ok_or("the queue has no ARN")?;
        created.insert(q.logical_id.clone(), (url, arn));
    }
    Ok(created)
}

/// Creates a table of the template's shape (also used by tests, under unique names).
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    table: &TableProperties,
    name: &str,
) -> Result<(), String> {
    let request = table
        .create_table(client, name)
        .map_err(|e| e.to_string())?;
    match request.send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) => {}
        Err(e) => {
            return Err(format!(
                "CreateTable {name}: {}",
                aws_sdk_dynamodb::Error::from(e)
            ))
        }
    }
    if let Some(ttl) = &table.time_to_live_specification {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(&ttl.attribute_name)
                    .enabled(ttl.enabled)
                    .build()
                    .map_err(|e| e.to_string())?,
            )
            .send()
            .await
            .map_err(|e| {
                format!(
                    "UpdateTimeToLive {name}: {}",
                    aws_sdk_dynamodb::Error::from(e)
                )
            })?;
    }
    Ok(())
}

/// The secret's JSON, in the shape `parley::secrets::Secrets` reads.
pub fn dev_secret(env: &LocalEnv) -> Result<String, String> {
    Ok(json!({
        "twilio_account_sid": env.require("LOCAL_TWILIO_ACCOUNT_SID")?,
        "twilio_auth_token": env.require("LOCAL_TWILIO_AUTH_TOKEN")?,
        "twilio_auth_token_previous": env.get("LOCAL_TWILIO_AUTH_TOKEN_PREVIOUS"),
        "api_keys": [env.require("LOCAL_API_KEY")?],
        "log_hmac_key": env.require("LOCAL_LOG_HMAC_KEY")?,
        "cursor_hmac_key": env.require("LOCAL_CURSOR_HMAC_KEY")?,
        "monitor_api_key": env.require("LOCAL_MONITOR_API_KEY")?,
    })
    .to_string())
}

/// Creates the secret, or replaces its value when it exists.
pub async fn put_secret(
    client: &aws_sdk_secretsmanager::Client,
    id: &str,
    value: &str,
) -> Result<(), String> {
    let created = client
        .create_secret()
        .name(id)
        .secret_string(value)
        .send()
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_exists_exception()) =>
        {
            client
                .put_secret_value()
                .secret_id(id)
                .secret_string(value)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    format!(
                        "PutSecretValue {id}: {}",
                        aws_sdk_secretsmanager::Error::from(e)
                    )
                })
        }
        Err(e) => Err(format!(
            "CreateSecret {id}: {}",
            aws_sdk_secretsmanager::Error::from(e)
        )),
    }
}
