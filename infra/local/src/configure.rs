//! `parley-local configure`: writes the operator's credentials into the secrets where the
//! functions read them, merging with what is there (the generated `log_hmac_key` and
//! `cursor_hmac_key` are never touched), and creates the first API key. Idempotent: run again
//! with the same values, it changes nothing and creates no second key.
//!
//! Locally it writes the local stack's one secret (`SECRET_ID`, `parley/local`) and its table.
//! With `--stack NAME` it writes the deployed stack's per-purpose secrets, found by the tags
//! CloudFormation puts on every secret it creates (`aws:cloudformation:stack-name` and
//! `aws:cloudformation:logical-id`), and the stack's table; `--dry-run` says what it would do.

use std::collections::BTreeMap;

use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
use serde_json::{Map, Value};

pub const USAGE: &str = "usage: parley-local configure [--stack NAME [--table TABLE]] [--dry-run] \
    [--twilio-account-sid AC…] [--twilio-auth-token TOKEN] \
    [--twilio-api-key-sid SK… --twilio-api-key-secret SECRET] [--monitor-api-key KEY] \
    [--first-api-key-name NAME (default admin) | --no-api-key]";

/// What the operator gave; `None` leaves the field as it is.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Values {
    pub twilio_account_sid: Option<String>,
    pub twilio_auth_token: Option<String>,
    pub twilio_api_key_sid: Option<String>,
    pub twilio_api_key_secret: Option<String>,
    pub monitor_api_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub stack: Option<String>,
    pub table: Option<String>,
    pub dry_run: bool,
    /// The first API key's name (every scope); `None`: create none.
    pub first_api_key: Option<String>,
    pub values: Values,
}

/// What one secret is for, which decides the fields it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Purpose {
    /// The local stack's single secret: every field.
    Local,
    /// `TwilioWebhookSecret`: the account SID and the auth token that validates signatures.
    TwilioWebhook,
    /// `TwilioApiSecret`: the account SID and an API key (else the auth token) for REST calls.
    TwilioApi,
    /// `MonitorSecret`: the Collections Monitor's key.
    Monitor,
}

impl Purpose {
    pub const DEPLOYED: [Purpose; 3] =
        [Purpose::TwilioWebhook, Purpose::TwilioApi, Purpose::Monitor];

    /// The template's logical id of the secret.
    pub fn logical_id(self) -> &'static str {
        match self {
            Purpose::Local => "SECRET_ID",
            Purpose::TwilioWebhook => "TwilioWebhookSecret",
            Purpose::TwilioApi => "TwilioApiSecret",
            Purpose::Monitor => "MonitorSecret",
        }
    }
}

pub fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        stack: None,
        table: None,
        dry_run: false,
        first_api_key: Some("admin".into()),
        values: Values::default(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--dry-run" => {
                options.dry_run = true;
                continue;
            }
            "--no-api-key" => {
                options.first_api_key = None;
                continue;
            }
            _ => {}
        }
        let value = it
            .next()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{flag} needs a non-empty value"))?;
        let v = &mut options.values;
        match flag.as_str() {
            "--stack" => options.stack = Some(value),
            "--table" => options.table = Some(value),
            "--first-api-key-name" => options.first_api_key = Some(value),
            "--twilio-account-sid" => v.twilio_account_sid = Some(value),
            "--twilio-auth-token" => v.twilio_auth_token = Some(value),
            "--twilio-api-key-sid" => v.twilio_api_key_sid = Some(value),
            "--twilio-api-key-secret" => v.twilio_api_key_secret = Some(value),
            "--monitor-api-key" => v.monitor_api_key = Some(value),
            other => return Err(format!("unknown option {other}")),
        }
    }
    let v = &options.values;
    if let Some(sid) = &v.twilio_account_sid {
        if !(sid.starts_with("AC") && sid.len() == 34) {
            return Err(
                "--twilio-account-sid: an account SID is AC followed by 32 characters".into(),
            );
        }
    }
    if let Some(sid) = &v.twilio_api_key_sid {
        if !sid.starts_with("SK") {
            return Err("--twilio-api-key-sid: an API key SID starts with SK".into());
        }
    }
    if v.twilio_api_key_sid.is_some() != v.twilio_api_key_secret.is_some() {
        return Err("--twilio-api-key-sid and --twilio-api-key-secret go together".into());
    }
    if options.table.is_some() && options.stack.is_none() {
        return Err("--table is for --stack (locally the table is TABLE_NAME)".into());
    }
    Ok(options)
}

fn str_field<'a>(secret: &'a Map<String, Value>, field: &str) -> &'a str {
    secret.get(field).and_then(Value::as_str).unwrap_or("")
}

/// The secret after the operator's values are merged into it, and notes on what was decided
/// (never a value). Fields it does not own are kept as they are.
pub fn merge(
    purpose: Purpose,
    current: &Map<String, Value>,
    values: &Values,
) -> (Map<String, Value>, Vec<String>) {
    let mut next = current.clone();
    let mut notes = Vec::new();
    let set = |next: &mut Map<String, Value>, field: &str, value: &Option<String>| {
        if let Some(value) = value {
            next.insert(field.into(), Value::String(value.clone()));
        }
    };
    let twilio = matches!(
        purpose,
        Purpose::Local | Purpose::TwilioWebhook | Purpose::TwilioApi
    );
    if twilio {
        set(&mut next, "twilio_account_sid", &values.twilio_account_sid);
    }
    if matches!(purpose, Purpose::Local | Purpose::TwilioWebhook) {
        if let Some(token) = &values.twilio_auth_token {
            let old = str_field(current, "twilio_auth_token");
            if !old.is_empty() && old != token {
                // Twilio may still sign with the old token for a few minutes.
                next.insert(
                    "twilio_auth_token_previous".into(),
                    Value::String(old.into()),
                );
                notes.push(
                    "the replaced auth token is kept as twilio_auth_token_previous; remove it once Twilio signs with the new one".into(),
                );
            }
            next.insert("twilio_auth_token".into(), Value::String(token.clone()));
        }
    }
    if matches!(purpose, Purpose::Local | Purpose::TwilioApi) {
        set(&mut next, "twilio_api_key_sid", &values.twilio_api_key_sid);
        set(
            &mut next,
            "twilio_api_key_secret",
            &values.twilio_api_key_secret,
        );
    }
    if purpose == Purpose::TwilioApi {
        let has_api_key = !str_field(&next, "twilio_api_key_sid").is_empty();
        if has_api_key {
            if next.remove("twilio_auth_token").is_some() {
                notes.push(
                    "the API key replaces the auth token here: the senders no longer hold it"
                        .into(),
                );
            }
        } else if let Some(token) = &values.twilio_auth_token {
            next.insert("twilio_auth_token".into(), Value::String(token.clone()));
            notes.push(
                "no Twilio API key: REST calls use the auth token (an API key is better)".into(),
            );
        }
    }
    if matches!(purpose, Purpose::Local | Purpose::Monitor) {
        set(&mut next, "monitor_api_key", &values.monitor_api_key);
    }
    (next, notes)
}

/// The names of the fields that differ, for the report.
fn changed_fields(before: &Map<String, Value>, after: &Map<String, Value>) -> Vec<String> {
    let mut names: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The tag the template puts on `TwilioWebhookSecret`: the origin Twilio calls.
pub const WEBHOOK_BASE_TAG: &str = "parley:webhook-base-url";

/// What to paste in Twilio's console for the webhooks at `base` (the origin Twilio calls):
/// the inbound URL carries the connection overrides that make Twilio retry 5xx and timeouts.
pub fn twilio_console(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let inbound = parley::twilio::overrides::with_overrides(&format!(
        "{base}{}",
        parley::handlers::inbound_sms::ROUTE
    ));
    let status = format!("{base}{}", parley::handlers::status_callback::ROUTE);
    format!(
        "Twilio console (Phone Numbers > your number > Messaging, or the Messaging Service's Integration):\n  \
         A message comes in: Webhook, HTTP POST\n    {inbound}\n  \
         (paste it whole: the part after # makes Twilio retry 5xx and timeouts; the inbound backfill fetches what it still misses)\n  \
         Status callbacks: nothing to set (the send worker gives {status} with each message)"
    )
}

/// `purpose → secret id` of a deployed stack, from CloudFormation's tags on its secrets, and
/// the webhooks' origin from the webhook secret's [`WEBHOOK_BASE_TAG`].
async fn stack_secrets(
    client: &aws_sdk_secretsmanager::Client,
    stack: &str,
) -> Result<(BTreeMap<Purpose, String>, Option<String>), String> {
    let mut found = BTreeMap::new();
    let mut base = None;
    let mut pages = client
        .list_secrets()
        .filters(
            Filter::builder()
                .key(FilterNameStringType::TagValue)
                .values(stack)
                .build(),
        )
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| format!("ListSecrets: {}", aws_sdk_secretsmanager::Error::from(e)))?;
        for secret in page.secret_list() {
            let tag = |key: &str| {
                secret
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some(key))
                    .and_then(|t| t.value())
            };
            if tag("aws:cloudformation:stack-name") != Some(stack) {
                continue;
            }
            let Some(logical) = tag("aws:cloudformation:logical-id") else {
                continue;
            };
            if let Some(purpose) = Purpose::DEPLOYED.iter().find(|p| p.logical_id() == logical) {
                if let Some(arn) = secret.arn() {
                    found.insert(*purpose, arn.to_owned());
                }
                if *purpose == Purpose::TwilioWebhook {
                    base = tag(WEBHOOK_BASE_TAG).map(str::to_owned);
                }
            }
        }
    }
    for purpose in Purpose::DEPLOYED {
        if !found.contains_key(&purpose) {
            return Err(format!(
                "the stack {stack} has no {} secret in this account and region (is it deployed? is AWS_REGION right?)",
                purpose.logical_id()
            ));
        }
    }
    Ok((found, base))
}

/// The stack's table: `--table`, else the one table named `{stack}-Table-…`.
async fn stack_table(client: &aws_sdk_dynamodb::Client, stack: &str) -> Result<String, String> {
    let prefix = format!("{stack}-Table-");
    let mut names = Vec::new();
    let mut pages = client.list_tables().into_paginator().items().send();
    while let Some(name) = pages.next().await {
        let name = name.map_err(|e| format!("ListTables: {}", aws_sdk_dynamodb::Error::from(e)))?;
        if name.starts_with(&prefix) {
            names.push(name);
        }
    }
    match names.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(format!(
            "no table {prefix}… (give it with --table; it is the stack's TableName output)"
        )),
        _ => Err(format!(
            "several tables {prefix}…: {} (choose one with --table)",
            names.join(", ")
        )),
    }
}

async fn read_secret(
    client: &aws_sdk_secretsmanager::Client,
    id: &str,
) -> Result<Map<String, Value>, String> {
    let value = client
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| {
            format!(
                "could not read {id}: {}",
                aws_sdk_secretsmanager::Error::from(e)
            )
        })?;
    match value.secret_string().map(serde_json::from_str::<Value>) {
        Some(Ok(Value::Object(map))) => Ok(map),
        _ => Err(format!("{id} does not hold a JSON object; not touching it")),
    }
}

/// Runs the command; `local_secret` and `local_table` are the local stack's (unused with
/// `--stack`).
pub async fn run(
    options: &Options,
    local_secret: Option<&str>,
    local_table: Option<&str>,
    local_public_url: Option<&str>,
) -> Result<(), String> {
    let sdk = parley::aws::loader().load().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let would = if options.dry_run { "would set" } else { "set" };

    let (targets, table, webhook_base) = match &options.stack {
        Some(stack) => {
            let (targets, base) = stack_secrets(&secrets, stack).await?;
            let table = match &options.table {
                Some(t) => t.clone(),
                None => stack_table(&dynamodb, stack).await?,
            };
            (targets, table, base)
        }
        None => {
            let id = local_secret
                .and_then(|s| s.split(',').next())
                .ok_or("SECRET_ID is not set")?;
            let table = local_table.ok_or("TABLE_NAME is not set")?;
            (
                BTreeMap::from([(Purpose::Local, id.to_owned())]),
                table.to_owned(),
                local_public_url.map(str::to_owned),
            )
        }
    };
    match &webhook_base {
        Some(base) => eprintln!("{}", twilio_console(base)),
        None => eprintln!(
            "the stack's secret has no {WEBHOOK_BASE_TAG} tag (deployed before it existed?): \
             paste the stack's TwilioSmsWebhookUrl output in Twilio's console"
        ),
    }

    for (purpose, id) in &targets {
        let current = read_secret(&secrets, id).await.map_err(|e| {
            if options.stack.is_none() {
                format!("{e} (is the local stack up? `make run`)")
            } else {
                e
            }
        })?;
        let (next, notes) = merge(*purpose, &current, &options.values);
        let changed = changed_fields(&current, &next);
        let label = if *purpose == Purpose::Local {
            id.clone()
        } else {
            format!("{} ({id})", purpose.logical_id())
        };
        if changed.is_empty() {
            eprintln!("{label}: unchanged");
            continue;
        }
        eprintln!("{label}: {would} {}", changed.join(", "));
        for note in notes {
            eprintln!("  {note}");
        }
        if !options.dry_run {
            secrets
                .put_secret_value()
                .secret_id(id)
                .secret_string(Value::Object(next).to_string())
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "PutSecretValue {id}: {}",
                        aws_sdk_secretsmanager::Error::from(e)
                    )
                })?;
        }
    }
    if !options.dry_run && !targets.is_empty() {
        eprintln!(
            "running functions read the new values within SECRETS_TTL_SECONDS (default 300 s)"
        );
    }

    let Some(name) = &options.first_api_key else {
        return Ok(());
    };
    let store = parley::store::Store::new(dynamodb, table.clone());
    let keys = store
        .api_keys()
        .await
        .map_err(|e| format!("could not read the API keys in {table}: {e}"))?;
    if let Some(key) = keys
        .iter()
        .find(|k| &k.name == name && k.revoked_at.is_none())
    {
        eprintln!(
            "API key {name} exists ({}); not creating another (revoke it to have a new one made)",
            key.key_id
        );
        return Ok(());
    }
    if options.dry_run {
        eprintln!(
            "would create the API key {name} (every scope) in {table} and print its token once"
        );
        return Ok(());
    }
    let new = parley::access::NewKey {
        name: name.clone(),
        scopes: vec!["admin".into()],
        countries: None,
        quotas: parley::access::Quotas::default(),
    };
    let (key, token) = new
        .validate(parley::time::Timestamp::now())
        .map_err(|fields| {
            fields
                .iter()
                .map(|(f, m)| format!("{f}: {m}"))
                .collect::<Vec<_>>()
                .join("; ")
        })?;
    store
        .put_api_key(&key)
        .await
        .map_err(|e| format!("could not write the API key to {table}: {e}"))?;
    eprintln!(
        "created the API key {name} ({}, every scope); its token, shown once (only its SHA-256 is kept):",
        key.key_id
    );
    println!("{token}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn values() -> Values {
        Values {
            twilio_account_sid: Some("AC11111111111111111111111111111111".into()),
            twilio_auth_token: Some("new-token".into()),
            twilio_api_key_sid: None,
            twilio_api_key_secret: None,
            monitor_api_key: Some("monitor".into()),
        }
    }

    #[test]
    fn merging_keeps_generated_keys_and_what_it_does_not_own() {
        let current = map(json!({"log_hmac_key": "g", "api_keys": ["k"], "twilio_auth_token": ""}));
        let (next, _) = merge(Purpose::Local, &current, &values());
        assert_eq!(next["log_hmac_key"], "g");
        assert_eq!(next["api_keys"], json!(["k"]));
        assert_eq!(next["twilio_auth_token"], "new-token");
        assert_eq!(next["monitor_api_key"], "monitor");
        assert!(!next.contains_key("twilio_auth_token_previous"));
        // Again: nothing changes.
        let (again, _) = merge(Purpose::Local, &next, &values());
        assert_eq!(again, next);
    }

    #[test]
    fn a_new_auth_token_keeps_the_old_one_as_previous() {
        let current = map(json!({"twilio_auth_token": "old"}));
        let (next, notes) = merge(Purpose::TwilioWebhook, &current, &values());
        assert_eq!(next["twilio_auth_token"], "new-token");
        assert_eq!(next["twilio_auth_token_previous"], "old");
        assert!(!next.contains_key("monitor_api_key"));
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn each_deployed_secret_gets_only_its_fields() {
        let empty = Map::new();
        let (monitor, _) = merge(Purpose::Monitor, &empty, &values());
        assert_eq!(monitor, map(json!({"monitor_api_key": "monitor"})));
        // Without an API key the REST secret gets the auth token…
        let (api, _) = merge(Purpose::TwilioApi, &empty, &values());
        assert_eq!(api["twilio_auth_token"], "new-token");
        // …with one, the API key, and the token is removed.
        let with_key = Values {
            twilio_api_key_sid: Some("SK1".into()),
            twilio_api_key_secret: Some("s".into()),
            ..values()
        };
        let (api, _) = merge(Purpose::TwilioApi, &api, &with_key);
        assert_eq!(api["twilio_api_key_sid"], "SK1");
        assert!(!api.contains_key("twilio_auth_token"));
        assert!(!api.contains_key("monitor_api_key"));
    }

    #[test]
    fn the_console_text_names_the_inbound_url_with_its_overrides() {
        let text = twilio_console("https://abc.execute-api.us-east-1.amazonaws.com/");
        assert!(text.contains(&format!(
            "https://abc.execute-api.us-east-1.amazonaws.com/webhook/twilio/sms#{}",
            parley::twilio::overrides::WEBHOOK_OVERRIDES
        )));
        assert!(
            text.contains("https://abc.execute-api.us-east-1.amazonaws.com/webhook/twilio/status")
        );
    }

    #[test]
    fn options() {
        let args = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        let o = parse_args(&args("--stack parley --dry-run --monitor-api-key m")).unwrap();
        assert_eq!(o.stack.as_deref(), Some("parley"));
        assert!(o.dry_run);
        assert_eq!(o.first_api_key.as_deref(), Some("admin"));
        assert!(parse_args(&args("--twilio-account-sid XX")).is_err());
        assert!(parse_args(&args("--twilio-api-key-sid SK1")).is_err());
        assert!(parse_args(&args("--table t")).is_err());
        assert!(parse_args(&args("--monitor-api-key")).is_err());
        assert_eq!(
            parse_args(&args("--no-api-key")).unwrap().first_api_key,
            None
        );
    }
}
