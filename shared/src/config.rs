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
    /// are checked against it plus the route's path, never against the Host header. Empty: the
    /// API's own invoke URL, from the domain API Gateway put in the request context (see
    /// [`WebhookConfig::signed_url`]).
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

    pub(crate) fn from_env() -> Result<Self, ConfigError> {
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
        let public_base_url = optional("PUBLIC_BASE_URL")
            .map(|base| base.trim().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        if !(public_base_url.is_empty()
            || public_base_url.starts_with("https://")
            || public_base_url.starts_with("http://"))
        {
            return Err(ConfigError::Invalid {
                name: "PUBLIC_BASE_URL",
                reason: "must start with https:// or http:// (or be empty)".into(),
            });
        }
        Ok(Self {
            public_base_url,
            replies: Replies::from_env()?,
        })
    }

    /// The exact URL Twilio was given for `path` (and signed), with the request's query, when
    /// `PUBLIC_BASE_URL` is set.
    pub fn public_url(&self, path: &str, query: Option<&str>) -> String {
        with_query(format!("{}{path}", self.public_base_url), query)
    }

    /// The URL a webhook's signature is checked against. `PUBLIC_BASE_URL` wins (a custom
    /// domain, or the local gateway); without it, the API's own invoke URL:
    /// `https://{domain}{path}`, where `domain` is the `requestContext.domainName` API Gateway
    /// wrote — API Gateway only routes requests for its own domains (its execute-api name or a
    /// custom domain mapped to it), so the value is one of those, never a caller's Host header
    /// passed through. `stage` is the context's stage: `$default` (the template's) adds
    /// nothing to the path, a named stage its `/{stage}` prefix. `None` when there is neither a
    /// configured URL nor a plausible domain.
    pub fn signed_url(
        &self,
        domain: Option<&str>,
        stage: Option<&str>,
        path: &str,
        query: Option<&str>,
    ) -> Option<String> {
        if !self.public_base_url.is_empty() {
            return Some(self.public_url(path, query));
        }
        let domain = domain.filter(|d| is_host_name(d))?;
        let prefix = match stage {
            None | Some("") | Some("$default") => String::new(),
            Some(stage)
                if stage
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) =>
            {
                format!("/{stage}")
            }
            Some(_) => return None,
        };
        Some(with_query(
            format!("https://{}{prefix}{path}", domain.to_ascii_lowercase()),
            query,
        ))
    }
}

fn with_query(url: String, query: Option<&str>) -> String {
    match query {
        Some(q) if !q.is_empty() => format!("{url}?{q}"),
        _ => url,
    }
}

/// A DNS name (letters, digits, `-`, dots between labels), at most 253 characters: what an
/// API Gateway domain is. Anything else (a port, a path, credentials, spaces) is refused.
fn is_host_name(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(public_base_url: &str) -> WebhookConfig {
        WebhookConfig {
            public_base_url: public_base_url.into(),
            replies: Replies::from_env().unwrap(),
        }
    }

    const API: &str = "abc123defg.execute-api.us-east-1.amazonaws.com";

    #[test]
    fn without_a_public_url_the_api_domain_from_the_request_context_is_signed() {
        let c = config("");
        assert_eq!(
            c.signed_url(Some(API), Some("$default"), "/webhook/twilio/sms", None)
                .as_deref(),
            Some("https://abc123defg.execute-api.us-east-1.amazonaws.com/webhook/twilio/sms")
        );
        assert_eq!(
            c.signed_url(
                Some("SMS.Example.com"),
                None,
                "/webhook/twilio/status",
                Some("a=1")
            )
            .as_deref(),
            Some("https://sms.example.com/webhook/twilio/status?a=1")
        );
        // A named stage is part of the invoke URL.
        assert_eq!(
            c.signed_url(Some(API), Some("prod"), "/webhook/twilio/sms", None)
                .as_deref(),
            Some("https://abc123defg.execute-api.us-east-1.amazonaws.com/prod/webhook/twilio/sms")
        );
    }

    #[test]
    fn an_explicit_public_url_wins_over_the_request_context() {
        let c = config("https://sms.example.com");
        assert_eq!(
            c.signed_url(
                Some(API),
                Some("$default"),
                "/webhook/twilio/sms",
                Some("x=y")
            )
            .as_deref(),
            Some("https://sms.example.com/webhook/twilio/sms?x=y")
        );
        assert_eq!(
            c.signed_url(None, None, "/webhook/twilio/sms", None)
                .as_deref(),
            Some("https://sms.example.com/webhook/twilio/sms")
        );
    }

    #[test]
    fn no_url_without_a_plausible_domain() {
        let c = config("");
        for domain in [
            None,
            Some(""),
            Some("evil.example.com/webhook"),
            Some("user@evil.example.com"),
            Some("127.0.0.1:3000"),
            Some("a..b"),
            Some("-a.example.com"),
            Some("a b.example.com"),
        ] {
            assert_eq!(
                c.signed_url(domain, Some("$default"), "/webhook/twilio/sms", None),
                None,
                "{domain:?}"
            );
        }
        assert_eq!(
            c.signed_url(Some(API), Some("../x"), "/webhook/twilio/sms", None),
            None
        );
    }
}
