//! Plain settings from the environment, read once at cold start. A missing variable fails
//! start-up with its name; secrets never come from here (see [`crate::secrets`]).

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

pub fn required(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// An optional setting; set to the empty string, it is off.
pub fn optional(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Where the store and the secret live.
#[derive(Debug, Clone)]
pub struct AwsConfig {
    pub table_name: String,
    pub secret_id: String,
}

impl AwsConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            secret_id: required("SECRET_ID")?,
        })
    }
}

/// What the Twilio webhooks need beyond the store.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The public origin Twilio calls (`https://sms.example.com`), no trailing slash. Signatures
    /// are checked against it plus the route's path, never against the Host header.
    pub public_base_url: String,
    pub replies: Replies,
}

/// TwiML answers to consent keywords; `None` sends an empty `<Response/>`, for accounts where
/// Twilio's own opt-out handling already replies.
#[derive(Debug, Clone, Default)]
pub struct Replies {
    pub help: Option<String>,
    pub opt_out: Option<String>,
    pub opt_in: Option<String>,
}

impl WebhookConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let base = required("PUBLIC_BASE_URL")?;
        let public_base_url = base.trim_end_matches('/').to_owned();
        if !(public_base_url.starts_with("https://") || public_base_url.starts_with("http://")) {
            return Err(ConfigError::Invalid {
                name: "PUBLIC_BASE_URL",
                reason: "must start with https:// or http://".into(),
            });
        }
        Ok(Self {
            public_base_url,
            replies: Replies {
                help: optional("HELP_REPLY_TEXT"),
                opt_out: optional("OPT_OUT_REPLY_TEXT"),
                opt_in: optional("OPT_IN_REPLY_TEXT"),
            },
        })
    }

    /// The exact URL Twilio was given for `path` (and signed), with the request's query.
    pub fn public_url(&self, path: &str, query: Option<&str>) -> String {
        match query {
            Some(q) if !q.is_empty() => format!("{}{path}?{q}", self.public_base_url),
            _ => format!("{}{path}", self.public_base_url),
        }
    }
}
