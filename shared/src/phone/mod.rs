//! Phone numbers made at the boundary: parsed once into E.164 and trusted inside.
//!
//! Neither type implements `Display`, and their `Debug` is redacted, so a number cannot reach a
//! log line by accident: log [`crate::telemetry::Pseudonymizer::pseudonym`] instead.

use std::fmt;

use serde::{Deserialize, Serialize};

mod metadata;
mod number;
mod pattern;

use metadata::Territory;
use number::Parsed;

/// Region assumed for numbers written without a country code.
const DEFAULT_REGION: &str = "US";
const WHATSAPP_PREFIX: &str = "whatsapp:";

fn default_region() -> &'static Territory {
    Territory::by_id(DEFAULT_REGION).expect("the default region is in the metadata")
}

/// Whether `input` (trimmed) is written as Parley reads numbers: an optional `tel:`, an
/// optional `+`, then digits and the separators people write numbers with.
///
/// Letters (`1-800-FLOWERS`), extensions (`ext. 5`), other scripts' digits and other
/// punctuation are refused rather than read: none of them names a number a text can go to more
/// clearly than its digits do.
fn written_form(input: &str) -> bool {
    let rest = number::strip_tel(input);
    digits_and_separators(rest.strip_prefix('+').unwrap_or(rest))
}

/// Whether `s` holds only digits and the separators people write numbers with (space, `(`,
/// `)`, `-`, `.`).
fn digits_and_separators(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b' ' | b'(' | b')' | b'-' | b'.'))
}

/// A valid number from `input` (trimmed).
///
/// A `+` before the first digit (`+55 11…`, `tel:+55…`) names the country. The phonenumber
/// crate's algorithm (which [`number::parse`] keeps) still applies national-prefix rules to
/// what follows it: the given region's (so the default region, US, with its prefix `1`, would
/// mangle `+55 11 9…`, Brazil), and with no region the number's own, without libphonenumber's
/// check that what is left is still a possible number (`+7 812 432 7257`, Saint Petersburg,
/// would lose its `8`, Russia's prefix: found by `make fuzz`). So the number's own rules come
/// first, and the default region's when they leave no valid number. Without a `+`, the number
/// is read in the default region.
fn parse_valid(trimmed: &str) -> Result<Parsed, PhoneError> {
    if trimmed.is_empty() {
        return Err(PhoneError::Empty);
    }
    if !written_form(trimmed) {
        return Err(PhoneError::Unparseable);
    }
    let international = trimmed
        .bytes()
        .find(|b| *b == b'+' || b.is_ascii_digit())
        .is_some_and(|b| b == b'+');
    let regions: &[Option<&'static Territory>] = match international {
        true => &[None, Some(default_region())],
        false => &[Some(default_region())],
    };
    let mut error = PhoneError::Unparseable;
    for region in regions {
        if let Some(number) = number::parse(*region, trimmed) {
            if number.is_valid() {
                return Ok(number);
            }
            error = PhoneError::Invalid;
        }
    }
    Err(error)
}

/// A stored number (E.164, trusted, possibly no longer valid after a metadata update) parsed
/// for its parts: the way [`E164::parse`] read it, or as written when that finds it invalid.
fn parse_stored(e164: &str) -> Option<Parsed> {
    parse_valid(e164).ok().or_else(|| number::parse(None, e164))
}

/// A stored number's country calling code and the digits after it (the national significant
/// number), read without the phone metadata: E.164 is exactly the one, then the other.
fn split_country_code(e164: &E164) -> Option<(u16, &str)> {
    let digits = e164.as_str().strip_prefix('+')?;
    (1..=3).find_map(|length| {
        let (code, national) = digits.split_at_checked(length)?;
        let code: u16 = code.parse().ok()?;
        (!Territory::of_code(code).is_empty()).then_some(())?;
        (!national.is_empty()).then_some((code, national))
    })
}

/// A stored number's national forms, for the Collections Monitor's lookups: the national
/// significant number, and for country code 1 the usual `(415) 555-2671`.
///
/// Without the phone metadata, so that a function whose only numbers are stored ones (the
/// inbound processor) leaves the metadata out of its binary; the same forms as the phonenumber
/// crate's (`national_forms_are_the_crates`): its national number is an integer, so
/// without leading zeros (Italy's `06…` is `6…`), and its national format for the North
/// American plan groups ten digits as `(NPA) NXX-XXXX` and seven as `NXX-XXXX` when they start
/// with 2–9.
pub(crate) fn national_forms(e164: &E164) -> Option<(String, Option<String>)> {
    let (code, digits) = split_country_code(e164)?;
    let national = match digits.trim_start_matches('0') {
        "" => "0",
        significant => significant,
    };
    let written = (code == 1).then(|| match (national.as_bytes(), national.len()) {
        ([b'2'..=b'9', ..], 10) => {
            format!(
                "({}) {}-{}",
                &national[..3],
                &national[3..6],
                &national[6..]
            )
        }
        ([b'2'..=b'9', ..], 7) => format!("{}-{}", &national[..3], &national[3..]),
        _ => national.to_owned(),
    });
    Some((national.to_owned(), written))
}

/// Compiles the patterns a US number's parse and validation use (for [`crate::warm`]).
pub(crate) fn warm() {
    if let Ok(number) = E164::parse("+14155552671") {
        let _ = number.region();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
        let number = parse_valid(input.trim())?;
        Ok(Self(format!("+{}{}", number.code, number.national)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number's ISO 3166 region (`US`, `PT`), when its prefix names one (`+800` and other
    /// non-geographic codes do not).
    pub fn region(&self) -> Option<String> {
        let territory = parse_stored(&self.0)?.territory()?;
        territory.region.then(|| territory.id.to_owned())
    }
}

impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("E164(<redacted>)")
    }
}

impl E164 {
    /// A number written with its country code (`+1 (415) 555-2671`, `+14155552671`): `+`, then
    /// digits and the usual separators (space, `(`, `)`, `-`, `.`), read by its shape only, as
    /// [`E164::stored`], without the phone metadata. For configuration (Parley's own numbers,
    /// which Twilio lists in E.164), where a number without its country code is refused rather
    /// than guessed.
    pub fn international(input: &str) -> Result<Self, PhoneError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        let digits = trimmed.strip_prefix('+').ok_or(PhoneError::Unparseable)?;
        if !digits_and_separators(digits) {
            return Err(PhoneError::Unparseable);
        }
        let mut e164 = String::with_capacity(trimmed.len());
        e164.push('+');
        e164.extend(digits.chars().filter(char::is_ascii_digit));
        Self::stored(e164)
    }

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
        Self::read(raw, E164::parse)
    }

    /// A configured address: `whatsapp:` or none, then a number written with its country code
    /// ([`E164::international`]), without the phone metadata.
    pub fn international(raw: &str) -> Result<Self, PhoneError> {
        Self::read(raw, E164::international)
    }

    /// `raw` (trimmed): its channel, and the number after the channel's prefix read by `number`.
    fn read(raw: &str, number: fn(&str) -> Result<E164, PhoneError>) -> Result<Self, PhoneError> {
        let (channel, written) = channel_of(raw.trim());
        Ok(Self {
            channel,
            e164: number(written)?,
            original: raw.to_owned(),
        })
    }

    /// An address as Twilio writes one in a request it signed (`From`, `To`: `+14155552671`,
    /// `whatsapp:+14155552671`): E.164 already, so only its shape is checked, as for a stored
    /// number ([`E164::stored`]). Checking it against phone metadata would add nothing Twilio
    /// has not checked, would refuse a real text from a number range newer than the metadata
    /// this build carries, and would bring the phone metadata into the inbound webhook.
    pub fn from_twilio(raw: &str) -> Result<Self, PhoneError> {
        let (channel, number) = channel_of(raw);
        if number.is_empty() {
            return Err(PhoneError::Empty);
        }
        Ok(Self {
            channel,
            e164: E164::stored(number.to_owned())?,
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

/// The channel an address names (`whatsapp:` or none: SMS) and the number after it.
fn channel_of(address: &str) -> (Channel, &str) {
    match strip_prefix_ignore_case(address, WHATSAPP_PREFIX) {
        Some(rest) => (Channel::Whatsapp, rest),
        None => (Channel::Sms, address),
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod oracle;

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
    fn twilios_addresses_are_read_by_their_shape() {
        let a = Address::from_twilio("whatsapp:+14155552671").unwrap();
        assert_eq!(
            (a.channel, a.e164.as_str()),
            (Channel::Whatsapp, "+14155552671")
        );
        assert_eq!(a.original, "whatsapp:+14155552671");
        let b = Address::from_twilio("+447700900123").unwrap();
        assert_eq!(
            (b.channel, b.e164.as_str()),
            (Channel::Sms, "+447700900123")
        );
        // A number the metadata does not (yet) know is Twilio's word, and kept.
        assert!(E164::parse("+15550001234").is_err());
        assert!(Address::from_twilio("+15550001234").is_ok());
        for bad in [
            "",
            "whatsapp:",
            "(415) 555-2671",
            "+1 415 555 2671",
            "4155552671",
            "+0123456",
            "+1234567890123456",
            "ACME",
            "+1415555267a",
        ] {
            assert!(Address::from_twilio(bad).is_err(), "{bad}");
        }
        assert_eq!(Address::from_twilio(""), Err(PhoneError::Empty));
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
    fn a_plus_names_the_country_wherever_the_number_starts() {
        // Saint Petersburg: Russia's national prefix is 8, and this number starts with 8.
        for input in ["+7 812 432 7257", "+78124327257", "tel:+7-812-432-7257"] {
            let number = E164::parse(input).unwrap();
            assert_eq!(number.as_str(), "+78124327257", "{input}");
            assert_eq!(number.region().as_deref(), Some("RU"));
            let (national, _) = national_forms(&number).unwrap();
            assert_eq!(national, "8124327257");
        }
        // Found by `make fuzz` (`fuzz/seeds/phone/regression-plus-after-text`): the parse of
        // its own E.164 form must give it back. Its text (`whapp:+7812)432[7257`) is refused
        // now, `[` not being a separator; the number in it, as separators write it, still reads.
        let found = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/seeds/phone/regression-plus-after-text"
        ))
        .unwrap();
        assert_eq!(E164::parse(&found), Err(PhoneError::Unparseable));
        let number = E164::parse(&found.replace("whapp:", "").replace('[', " ")).unwrap();
        assert_eq!(E164::parse(number.as_str()), Ok(number));
        // Brazil, whose national numbers may start with 1 (the US national prefix).
        assert_eq!(
            E164::parse("tel:+55 11 91234 5678").unwrap().as_str(),
            "+5511912345678"
        );
    }

    #[test]
    fn other_countries_and_the_international_prefix() {
        assert_eq!(
            E164::parse("011 52 55 1234 5678").unwrap().as_str(),
            "+525512345678"
        );
        let gb = E164::parse("+44 20 7946 0958").unwrap();
        assert_eq!(gb.region().as_deref(), Some("GB"));
        let ca = E164::parse("+1 506 234 5678").unwrap();
        assert_eq!(ca.region().as_deref(), Some("CA"));
    }

    #[test]
    fn only_digits_and_separators_are_read() {
        for refused in [
            "1-800-FLOWERS",
            "+1 415 555 2671 ext. 5",
            "+1 415 555 2671 x5",
            "+1 415/555 2671",
            "＋1 415 555 2671",
            "+1 ４15 555 2671",
            "1 +415 555 2671",
            "++1 415 555 2671",
            "phone: +1 415 555 2671",
        ] {
            assert_eq!(
                E164::parse(refused),
                Err(PhoneError::Unparseable),
                "{refused}"
            );
        }
        for read in ["tel:+1-415-555-2671", "TEL:4155552671", "(415)555-2671"] {
            assert_eq!(
                E164::parse(read).unwrap().as_str(),
                "+14155552671",
                "{read}"
            );
        }
    }

    #[test]
    fn national_forms_are_the_crates() {
        // Every example number of every territory and kind in the crate's metadata...
        let mut numbers: Vec<E164> = oracle::examples()
            .into_iter()
            .filter_map(|(code, _, example)| E164::parse(&format!("+{code}{example}")).ok())
            .collect();
        let examples = numbers.len();
        // ...North American numbers across the area codes...
        for area in (200..1000).step_by(7) {
            numbers.extend(E164::parse(&format!("+1{area}2342671")).ok());
        }
        // ...and stored ones the metadata does not find valid.
        for stored in ["+15550001234", "+15005550006", "+12345678901"] {
            numbers.push(E164::stored(stored.to_owned()).unwrap());
        }
        let mut leading_zero = 0;
        for number in &numbers {
            let ours = national_forms(number);
            assert_eq!(
                ours,
                oracle::national_forms(number.as_str()),
                "{}",
                number.as_str()
            );
            let (national, written) = ours.unwrap();
            let (code, digits) = split_country_code(number).unwrap();
            assert!(digits.ends_with(national.as_str()));
            leading_zero += usize::from(digits.starts_with('0'));
            assert_eq!(written.is_some(), code == 1);
        }
        assert!(examples > 1_000, "{examples} examples");
        // Numbers whose national number starts with 0 (Italy's) were among them.
        assert!(leading_zero > 0);
        assert_eq!(
            national_forms(&E164::parse("+1 415 555 2671").unwrap()),
            Some(("4155552671".into(), Some("(415) 555-2671".into())))
        );
    }

    #[test]
    fn a_configured_number_is_read_with_its_country_code_and_without_metadata() {
        for written in [
            "+14155552671",
            "+1 (415) 555-2671",
            " +1-415-555-2671 ",
            "+1.415.555.2671",
        ] {
            assert_eq!(
                E164::international(written).unwrap().as_str(),
                "+14155552671",
                "{written}"
            );
        }
        let a = Address::international("whatsapp:+1 415 555 2671").unwrap();
        assert_eq!(
            (a.channel, a.e164.as_str()),
            (Channel::Whatsapp, "+14155552671")
        );
        assert_eq!(E164::international("  "), Err(PhoneError::Empty));
        for refused in [
            "(415) 555-2671",
            "4155552671",
            "+1 415 555 2671 ext. 5",
            "+0123456",
            "+1",
            "+1234567890123456",
            "tel:+14155552671",
            "++14155552671",
        ] {
            assert_eq!(
                E164::international(refused),
                Err(PhoneError::Unparseable),
                "{refused}"
            );
        }
    }

    #[test]
    fn debug_output_never_shows_the_number() {
        let a = Address::parse("+14155552671").unwrap();
        let shown = format!("{a:?} {:?}", a.e164);
        assert!(!shown.contains("555"), "{shown}");
    }
}
