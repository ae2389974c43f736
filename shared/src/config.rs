//! Plain settings from the environment, read once at cold start. A missing variable fails
//! start-up with its name; secrets never come from here (see [`crate::secrets`]).

use crate::language::Language;

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

/// TwiML answers to consent keywords, in the language of the keyword matched.
#[derive(Debug, Clone)]
pub struct Replies {
    pub en: ReplyTexts,
    pub es: ReplyTexts,
    pub pt: ReplyTexts,
}

/// One language's answers; `None` sends an empty `<Response/>`, for accounts where Twilio's
/// own opt-out handling already replies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyTexts {
    pub help: Option<String>,
    pub opt_out: Option<String>,
    pub opt_in: Option<String>,
}

impl Replies {
    /// English as configured (`None`: off), Spanish and Portuguese built in.
    pub fn with_english(en: ReplyTexts) -> Self {
        Self {
            en,
            es: ReplyTexts::builtin(Language::Es),
            pt: ReplyTexts::builtin(Language::Pt),
        }
    }

    /// The answers of `language`; English for any other.
    pub fn of(&self, language: Language) -> &ReplyTexts {
        match language {
            Language::Es => &self.es,
            Language::Pt => &self.pt,
            Language::En | Language::Unknown => &self.en,
        }
    }

    fn from_env() -> Result<Self, ConfigError> {
        let localized = |language, [help, opt_out, opt_in]: [&'static str; 3]| {
            let builtin = ReplyTexts::builtin(language);
            Ok::<_, ConfigError>(ReplyTexts {
                help: overridable(help, builtin.help)?,
                opt_out: overridable(opt_out, builtin.opt_out)?,
                opt_in: overridable(opt_in, builtin.opt_in)?,
            })
        };
        Ok(Self {
            en: ReplyTexts {
                help: optional("HELP_REPLY_TEXT"),
                opt_out: optional("OPT_OUT_REPLY_TEXT"),
                opt_in: optional("OPT_IN_REPLY_TEXT"),
            },
            es: localized(
                Language::Es,
                [
                    "HELP_REPLY_TEXT_ES",
                    "OPT_OUT_REPLY_TEXT_ES",
                    "OPT_IN_REPLY_TEXT_ES",
                ],
            )?,
            pt: localized(
                Language::Pt,
                [
                    "HELP_REPLY_TEXT_PT",
                    "OPT_OUT_REPLY_TEXT_PT",
                    "OPT_IN_REPLY_TEXT_PT",
                ],
            )?,
        })
    }
}

impl ReplyTexts {
    /// The built-in Spanish and Portuguese answers (docs/consent.md); none for English, whose
    /// texts name the sender and are configured.
    pub fn builtin(language: Language) -> Self {
        let texts = |help: &str, opt_out: &str, opt_in: &str| Self {
            help: Some(help.to_owned()),
            opt_out: Some(opt_out.to_owned()),
            opt_in: Some(opt_in.to_owned()),
        };
        match language {
            Language::Es => texts(
                "Responde PARAR para dejar de recibir mensajes o COMENZAR para volver a \
                 recibirlos. Pueden aplicarse tarifas de mensajes y datos.",
                "Has cancelado tu suscripción y no recibirás más mensajes. Responde COMENZAR \
                 para volver a suscribirte.",
                "Te has suscrito de nuevo. Responde PARAR para cancelar la suscripción.",
            ),
            Language::Pt => texts(
                "Responda SAIR para não receber mais mensagens ou VOLTAR para voltar a \
                 recebê-las. Podem ser cobradas tarifas de mensagens e dados.",
                "Sua inscrição foi cancelada e você não receberá mais mensagens. Responda \
                 VOLTAR para se inscrever novamente.",
                "Você está inscrito novamente. Responda SAIR para cancelar a inscrição.",
            ),
            Language::En | Language::Unknown => Self::default(),
        }
    }
}

/// A text with a built-in default: unset, the default; set to the empty string, off.
fn overridable(name: &'static str, builtin: Option<String>) -> Result<Option<String>, ConfigError> {
    match std::env::var(name) {
        Err(std::env::VarError::NotPresent) => Ok(builtin),
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::Invalid {
            name,
            reason: "not valid UTF-8".into(),
        }),
    }
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
            replies: Replies::from_env()?,
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
