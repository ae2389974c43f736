//! Phone numbers made at the boundary: parsed once into E.164 and trusted inside.
//!
//! Neither type implements `Display`, and their `Debug` is redacted, so a number cannot reach a
//! log line by accident: log [`crate::telemetry::Pseudonymizer::pseudonym`] instead.

use std::fmt;

use phonenumber::country::Id as Country;
use serde::{Deserialize, Serialize};

/// Region assumed for numbers written without a country code.
const DEFAULT_REGION: Country = Country::US;
const WHATSAPP_PREFIX: &str = "whatsapp:";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Sms,
    Whatsapp,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Whatsapp => "whatsapp",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PhoneError {
    #[error("the phone number is empty")]
    Empty,
    #[error("the phone number could not be parsed")]
    Unparseable,
    #[error("the phone number is not a valid number")]
    Invalid,
}

/// A phone number in E.164 form (`+14155552671`).
///
/// Input is validated once, at the boundary ([`E164::parse`], [`Address::parse`]). Reading one
/// back (from the table, a queue message or an event Parley published) checks only its shape
/// (`+` and 2–15 digits, [`E164::stored`]): a phone-metadata update that no longer considers
/// a stored number valid, or one odd item, must not make every batch that reads it fail.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164(String);

impl E164 {
    /// Normalizes any common written form (`(415) 555-2671`, `14155552671`, `+1 415…`).
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        // An explicit `+` already names the country; phonenumber 0.3 applies the default
        // region's national-prefix rules to it anyway and mangles e.g. `+55 11 9…` (Brazil).
        let region = (!trimmed.starts_with('+')).then_some(DEFAULT_REGION);
        let number = phonenumber::parse(region, trimmed).map_err(|_| PhoneError::Unparseable)?;
        if !phonenumber::is_valid(&number) {
            return Err(PhoneError::Invalid);
        }
        Ok(Self(
            number.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number's ISO 3166 region (`US`, `PT`), when its prefix names one (`+800` and other
    /// non-geographic codes do not).
    pub fn region(&self) -> Option<String> {
        let number = phonenumber::parse(None, &self.0).ok()?;
        number
            .country()
            .id()
            .map(|id| AsRef::<str>::as_ref(&id).to_owned())
    }
}

impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("E164(<redacted>)")
    }
}

impl E164 {
    /// A number Parley wrote itself, in E.164 shape: trusted, not validated again.
    pub fn stored(value: String) -> Result<Self, PhoneError> {
        let digits = value.strip_prefix('+').ok_or(PhoneError::Unparseable)?;
        let shaped = (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        match shaped {
            true => Ok(Self(value)),
            false => Err(PhoneError::Unparseable),
        }
    }
}

impl TryFrom<String> for E164 {
    type Error = PhoneError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::stored(value)
    }
}

impl From<E164> for String {
    fn from(value: E164) -> Self {
        value.0
    }
}

/// A number as an address on a channel, keeping what the sender actually wrote.
#[derive(Clone, PartialEq, Eq)]
pub struct Address {
    pub channel: Channel,
    pub e164: E164,
    pub original: String,
}

impl Address {
    /// Parses `+14155552671` (SMS) or `whatsapp:+14155552671` (WhatsApp).
    pub fn parse(raw: &str) -> Result<Self, PhoneError> {
        let trimmed = raw.trim();
        let (channel, number) = match strip_prefix_ignore_case(trimmed, WHATSAPP_PREFIX) {
            Some(rest) => (Channel::Whatsapp, rest),
            None => (Channel::Sms, trimmed),
        };
        Ok(Self {
            channel,
            e164: E164::parse(number)?,
            original: raw.to_owned(),
        })
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Address")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_number_is_read_by_its_shape_and_input_is_validated() {
        // +1 555 numbers are not valid to libphonenumber: refused as input...
        assert!(E164::parse("+15550001234").is_err());
        // ...but one already stored (say, before a metadata update) still reads back.
        let stored: E164 = serde_json::from_str("\"+15550001234\"").unwrap();
        assert_eq!(stored.as_str(), "+15550001234");
        for malformed in [
            "\"15550001234\"",
            "\"+1 555\"",
            "\"+\"",
            "\"+0123\"",
            "\"+1234567890123456\"",
        ] {
            assert!(
                serde_json::from_str::<E164>(malformed).is_err(),
                "{malformed}"
            );
        }
    }

    #[test]
    fn common_written_forms_normalize_to_one_e164() {
        for input in [
            "+14155552671",
            "+1 (415) 555-2671",
            "(415) 555-2671",
            "4155552671",
            "14155552671",
            "415.555.2671",
            " +1-415-555-2671 ",
        ] {
            assert_eq!(
                E164::parse(input).unwrap().as_str(),
                "+14155552671",
                "{input}"
            );
        }
    }

    #[test]
    fn international_numbers_keep_their_country() {
        assert_eq!(
            E164::parse("+52 55 1234 5678").unwrap().as_str(),
            "+525512345678"
        );
        assert_eq!(
            E164::parse("+55 11 91234-5678").unwrap().as_str(),
            "+5511912345678"
        );
    }

    #[test]
    fn twilio_magic_test_numbers_are_accepted() {
        for n in [
            "+15005550006",
            "+15005550001",
            "+15005550009",
            "+15005550004",
        ] {
            assert_eq!(E164::parse(n).unwrap().as_str(), n);
        }
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(E164::parse(""), Err(PhoneError::Empty));
        assert_eq!(E164::parse("   "), Err(PhoneError::Empty));
        assert!(E164::parse("hello").is_err());
        assert!(E164::parse("123").is_err());
        assert!(E164::parse("+1 000 000 0000").is_err());
    }

    #[test]
    fn whatsapp_prefix_selects_the_channel_and_keeps_the_original() {
        let a = Address::parse("whatsapp:+14155552671").unwrap();
        assert_eq!(a.channel, Channel::Whatsapp);
        assert_eq!(a.e164.as_str(), "+14155552671");
        assert_eq!(a.original, "whatsapp:+14155552671");
        let b = Address::parse("WhatsApp:(415) 555-2671").unwrap();
        assert_eq!(b.channel, Channel::Whatsapp);
        let c = Address::parse("+14155552671").unwrap();
        assert_eq!(c.channel, Channel::Sms);
    }

    #[test]
    fn debug_output_never_shows_the_number() {
        let a = Address::parse("+14155552671").unwrap();
        let shown = format!("{a:?} {:?}", a.e164);
        assert!(!shown.contains("555"), "{shown}");
    }
}
