//! Creates the local resources from `template.yaml` in the emulator and seeds the dev secrets.

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::TimeToLiveSpecification;
use serde_json::json;

use crate::env::LocalEnv;
use crate::template::{TableProperties, Template};

pub async fn bootstrap(sdk: &SdkConfig, template: &Template, env: &LocalEnv) -> Result<(), String> {
    let table = template.table("Table").map_err(|e| e.to_string())?;
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    create_table(&dynamodb, &table, env.require("TABLE_NAME")?).await?;
    let secrets = aws_sdk_secretsmanager::Client::new(sdk);
    put_secret(&secrets, env.require("SECRET_ID")?, &dev_secret(env)?).await
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
