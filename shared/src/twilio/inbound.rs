//! The inbound message webhook's parameters, parsed into trusted types.

use super::{AccountSid, Form, MessageSid};
use crate::phone::{Address, Channel};

/// Twilio accepts at most ten media items on a message.
const MAX_MEDIA: usize = 10;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InboundError {
    #[error("the webhook is missing the `{0}` parameter")]
    Missing(&'static str),
    #[error("the webhook's `{field}` parameter is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub url: String,
    pub content_type: Option<String>,
}

#[derive(Debug, Clone)]
pub struct InboundSms {
    pub message_sid: MessageSid,
    pub account_sid: AccountSid,
    pub from: Address,
    pub to: Address,
    pub body: String,
    pub media: Vec<Media>,
}

impl InboundSms {
    pub fn channel(&self) -> Channel {
        self.from.channel
    }

    pub fn from_form(form: &Form) -> Result<Self, InboundError> {
        let required = |key: &'static str| form.get(key).ok_or(InboundError::Missing(key));
        let invalid = |field: &'static str| {
            move |e: &dyn std::fmt::Display| InboundError::Invalid {
                field,
                reason: e.to_string(),
            }
        };
        let sid = form
            .get("MessageSid")
            .or_else(|| form.get("SmsMessageSid"))
            .ok_or(InboundError::Missing("MessageSid"))?;
        let message_sid = MessageSid::parse(sid).map_err(|e| invalid("MessageSid")(&e))?;
        let account_sid =
            AccountSid::parse(required("AccountSid")?).map_err(|e| invalid("AccountSid")(&e))?;
        let from = Address::from_twilio(required("From")?).map_err(|e| invalid("From")(&e))?;
        let to = Address::from_twilio(required("To")?).map_err(|e| invalid("To")(&e))?;
        if from.channel != to.channel {
            return Err(InboundError::Invalid {
                field: "To",
                reason: "From and To are on different channels".into(),
            });
        }
        Ok(Self {
            message_sid,
            account_sid,
            from,
            to,
            body: form.get("Body").unwrap_or_default().to_owned(),
            media: media(form)?,
        })
    }
}

fn media(form: &Form) -> Result<Vec<Media>, InboundError> {
    let count = match form.get("NumMedia") {
        None | Some("") => 0,
        Some(n) => n.parse::<usize>().map_err(|_| InboundError::Invalid {
            field: "NumMedia",
            reason: "not a whole number".into(),
        })?,
    };
    if count > MAX_MEDIA {
        return Err(InboundError::Invalid {
            field: "NumMedia",
            reason: format!("more than {MAX_MEDIA} media items"),
        });
    }
    Ok((0..count)
        .filter_map(|i| {
            form.get(&format!("MediaUrl{i}")).map(|url| Media {
                url: url.to_owned(),
                content_type: form.get(&format!("MediaContentType{i}")).map(str::to_owned),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "MessageSid=SM0123456789abcdef0123456789abcdef&AccountSid=AC0123456789abcdef0123456789abcdef&From=%2B14155552671&To=%2B15005550006&Body=Hola";

    #[test]
    fn a_plain_sms_parses() {
        let m = InboundSms::from_form(&Form::parse(BASE.as_bytes()).unwrap()).unwrap();
        assert_eq!(m.body, "Hola");
        assert_eq!(m.channel(), Channel::Sms);
        assert_eq!(m.from.e164.as_str(), "+14155552671");
        assert!(m.media.is_empty());
    }

    #[test]
    fn media_and_whatsapp_parse() {
        let body = "MessageSid=MM0123456789abcdef0123456789abcdef&AccountSid=AC0123456789abcdef0123456789abcdef&From=whatsapp%3A%2B14155552671&To=whatsapp%3A%2B15005550006&Body=&NumMedia=2&MediaUrl0=https%3A%2F%2Fapi.twilio.com%2Fm0&MediaContentType0=image%2Fjpeg&MediaUrl1=https%3A%2F%2Fapi.twilio.com%2Fm1";
        let m = InboundSms::from_form(&Form::parse(body.as_bytes()).unwrap()).unwrap();
        assert_eq!(m.channel(), Channel::Whatsapp);
        assert_eq!(m.media.len(), 2);
        assert_eq!(m.media[0].content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(m.media[1].content_type, None);
    }

    #[test]
    fn missing_and_invalid_fields_are_named() {
        let without = |key: &str| {
            BASE.split('&')
                .filter(|p| !p.starts_with(&format!("{key}=")))
                .collect::<Vec<_>>()
                .join("&")
        };
        for key in ["MessageSid", "AccountSid", "From", "To"] {
            let err =
                InboundSms::from_form(&Form::parse(without(key).as_bytes()).unwrap()).unwrap_err();
            assert_eq!(err, InboundError::Missing(key));
        }
        let bad_from = BASE.replace("%2B14155552671", "nonsense");
        assert!(matches!(
            InboundSms::from_form(&Form::parse(bad_from.as_bytes()).unwrap()),
            Err(InboundError::Invalid { field: "From", .. })
        ));
        let many = format!("{BASE}&NumMedia=11");
        assert!(InboundSms::from_form(&Form::parse(many.as_bytes()).unwrap()).is_err());
    }
}
