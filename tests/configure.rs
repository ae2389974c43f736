//! `parley-local configure`: fills the secrets and creates the first API key, idempotently,
//! against the local stack (its secret, given another name so the rest of the suite keeps its
//! own) and against a "deployed" stack whose secrets carry CloudFormation's tags.

use std::process::{Command, Output};

use aws_sdk_secretsmanager::types::Tag;
use parley_e2e::*;
use serde_json::{json, Value};

const API_URL: &str = "https://abc123defg.execute-api.us-east-1.amazonaws.com";

fn configure(extra_env: &[(&str, &str)], args: &[&str]) -> (String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(parley_local_bin())
        .arg("configure")
        .args(args)
        .envs(extra_env.iter().copied())
        .output()
        .expect("target/debug/parley-local (cargo build -p parley-local)");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    );
    assert!(status.success(), "configure failed:\n{stderr}");
    (stdout, stderr)
}

async fn read(client: &aws_sdk_secretsmanager::Client, id: &str) -> (Value, String) {
    let v = client
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .unwrap();
    (
        serde_json::from_str(v.secret_string().unwrap()).unwrap(),
        v.version_id().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn configure_fills_the_local_secret_once_and_creates_a_working_first_key() {
    let stack = stack().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&stack.sdk);
    let run = ulid::Ulid::new().to_string().to_lowercase();
    let secret_id = format!("parley/configure-{run}");
    // What a fresh stack holds: a generated key, nothing from the operator yet.
    secrets
        .create_secret()
        .name(&secret_id)
        .secret_string(
            json!({"log_hmac_key": "generated-log-key", "cursor_hmac_key": "generated-cursor-key",
                   "api_keys": [], "twilio_auth_token": ""})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let key_name = format!("admin-{run}");
    let args = [
        "--twilio-account-sid",
        "AC11111111111111111111111111111111",
        "--twilio-auth-token",
        "configured-token",
        "--monitor-api-key",
        "configured-monitor-key",
        "--first-api-key-name",
        &key_name,
    ];
    let env = [("SECRET_ID", secret_id.as_str())];

    let (token, report) = configure(&env, &args);
    let token = token.trim().to_owned();
    record_sensitive("api-key", &token);
    assert!(token.starts_with("prly_"), "{token:?}\n{report}");
    assert!(
        report.contains("set monitor_api_key, twilio_account_sid, twilio_auth_token"),
        "{report}"
    );
    // What to paste in Twilio's console: the local webhook with its connection overrides.
    assert!(
        report.contains(&format!(
            "{}/webhook/twilio/sms#{}",
            stack.public_base_url,
            parley::twilio::overrides::WEBHOOK_OVERRIDES
        )),
        "{report}"
    );
    for value in ["configured-token", "configured-monitor-key"] {
        assert!(
            !report.contains(value),
            "the report shows no secret: {report}"
        );
    }
    let (first, version) = read(&secrets, &secret_id).await;
    assert_eq!(
        first,
        json!({"log_hmac_key": "generated-log-key", "cursor_hmac_key": "generated-cursor-key",
               "api_keys": [], "twilio_account_sid": "AC11111111111111111111111111111111",
               "twilio_auth_token": "configured-token", "monitor_api_key": "configured-monitor-key"})
    );

    // Again: nothing written, no second key.
    let (again, report) = configure(&env, &args);
    assert_eq!(again.trim(), "", "no second token");
    assert!(
        report.contains(&format!("{secret_id}: unchanged")),
        "{report}"
    );
    assert!(
        report.contains(&format!("API key {key_name} exists")),
        "{report}"
    );
    assert_eq!(read(&secrets, &secret_id).await, (first, version));
    let named: Vec<_> = stack
        .store
        .api_keys()
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.name == key_name)
        .collect();
    assert_eq!(named.len(), 1);

    // The first key works, with every scope.
    let reply = stack.get("/health", Some(&token)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = stack.get("/keys", Some(&token)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    secrets
        .delete_secret()
        .secret_id(&secret_id)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn configure_finds_a_deployed_stacks_secrets_by_their_tags_and_dry_run_writes_nothing() {
    let stack = stack().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&stack.sdk);
    let run = ulid::Ulid::new().to_string().to_lowercase();
    let stack_name = format!("parley-{run}");
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    let mut ids = std::collections::BTreeMap::new();
    for (logical, initial) in [
        (
            "TwilioWebhookSecret",
            json!({"twilio_account_sid": "AC00000000000000000000000000000000", "twilio_auth_token": ""}),
        ),
        (
            "TwilioApiSecret",
            json!({"twilio_account_sid": "AC00000000000000000000000000000000", "twilio_api_key_sid": "", "twilio_api_key_secret": ""}),
        ),
        ("MonitorSecret", json!({"monitor_api_key": ""})),
        // Not the command's: must stay as generated.
        ("LogKeySecret", json!({"log_hmac_key": "generated"})),
    ] {
        let mut create = secrets
            .create_secret()
            .name(format!("{logical}-{run}"))
            .secret_string(initial.to_string())
            .tags(tag("aws:cloudformation:stack-name", &stack_name))
            .tags(tag("aws:cloudformation:logical-id", logical));
        if logical == "TwilioWebhookSecret" {
            // As the template tags it: the API's own URL.
            create = create.tags(tag("parley:webhook-base-url", API_URL));
        }
        let created = create.send().await.unwrap();
        ids.insert(logical, created.arn().unwrap().to_owned());
    }
    let table = stack.env.require("TABLE_NAME").unwrap().to_owned();
    let args = |dry_run: bool| {
        let mut a = vec![
            "--stack",
            stack_name.as_str(),
            "--table",
            table.as_str(),
            "--twilio-account-sid",
            "AC22222222222222222222222222222222",
            "--twilio-auth-token",
            "deployed-token",
            "--twilio-api-key-sid",
            "SK22222222222222222222222222222222",
            "--twilio-api-key-secret",
            "deployed-api-secret",
            "--monitor-api-key",
            "deployed-monitor-key",
        ];
        if dry_run {
            a.push("--dry-run");
        } else {
            a.push("--no-api-key");
        }
        a
    };
    let before = {
        let mut all = Vec::new();
        for id in ids.values() {
            all.push(read(&secrets, id).await);
        }
        all
    };

    let (out, report) = configure(&[], &args(true));
    assert_eq!(out.trim(), "");
    assert!(
        report.contains(&format!(
            "{API_URL}/webhook/twilio/sms#{}",
            parley::twilio::overrides::WEBHOOK_OVERRIDES
        )),
        "the deployed stack's webhook, from its tag: {report}"
    );
    assert!(
        report.contains("TwilioWebhookSecret") && report.contains("would set"),
        "{report}"
    );
    assert!(
        report.contains("would create the API key admin"),
        "{report}"
    );
    let mut after = Vec::new();
    for id in ids.values() {
        after.push(read(&secrets, id).await);
    }
    assert_eq!(before, after, "a dry run writes nothing");

    configure(&[], &args(false));
    assert_eq!(
        read(&secrets, &ids["TwilioWebhookSecret"]).await.0,
        json!({"twilio_account_sid": "AC22222222222222222222222222222222", "twilio_auth_token": "deployed-token"})
    );
    assert_eq!(
        read(&secrets, &ids["TwilioApiSecret"]).await.0,
        json!({"twilio_account_sid": "AC22222222222222222222222222222222",
               "twilio_api_key_sid": "SK22222222222222222222222222222222",
               "twilio_api_key_secret": "deployed-api-secret"})
    );
    assert_eq!(
        read(&secrets, &ids["MonitorSecret"]).await.0,
        json!({"monitor_api_key": "deployed-monitor-key"})
    );
    assert_eq!(
        read(&secrets, &ids["LogKeySecret"]).await.0,
        json!({"log_hmac_key": "generated"})
    );
    let (_, report) = configure(&[], &args(false));
    assert_eq!(report.matches(": unchanged").count(), 3, "{report}");

    for id in ids.values() {
        secrets
            .delete_secret()
            .secret_id(id)
            .force_delete_without_recovery(true)
            .send()
            .await
            .unwrap();
    }
}
