//! Reading a written number into its country code and national significant number, and
//! checking it against the metadata: the phonenumber crate's (0.3) algorithm, step for step,
//! for the forms [`super::written_form`] lets through (digits, the usual separators, a leading
//! `+`, `tel:`). Its quirks are kept on purpose — a national prefix for parsing stripped after a
//! `+`, the `+1-415…` of RFC 3966 whose country code ends at the first separator —, so that a
//! number reads as it did; the test in `phone::tests::oracle` holds the two equal.

use super::metadata::Territory;

/// The shortest and longest national significant numbers the crate reads.
const MIN_NATIONAL: usize = 2;
const MAX_NATIONAL: usize = 17;
const MAX_COUNTRY_CODE: usize = 3;

/// A number read from its written form: a country calling code and the national significant
/// number (digits, leading zeros kept: Italy's `06…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub code: u16,
    pub national: String,
}

impl Parsed {
    /// Whether the number is valid: its territory's general pattern and one of its kinds'.
    pub fn is_valid(&self) -> bool {
        territory_of(self.code, &self.national).is_some_and(|t| has_kind(t, &self.national))
    }

    /// The territory the number belongs to, read as the crate's `PhoneNumber::metadata` reads
    /// it (from the national number without its leading zeros).
    pub fn territory(&self) -> Option<&'static Territory> {
        territory_of(self.code, self.national.trim_start_matches('0'))
    }
}

/// Where the country code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Plus,
    Idd,
    Number,
    Default,
}

#[derive(Debug, Clone)]
struct Number {
    source: Source,
    national: String,
    prefix: Option<String>,
}

/// Reads `input` (trimmed, in the written form [`super::written_form`] accepts) with `region`
/// as the region of a number written without its country code. `None` when the crate's parse
/// fails.
pub fn parse(region: Option<&'static Territory>, input: &str) -> Option<Parsed> {
    let number = rfc3966(input).or_else(|| natural(input))?;
    if !viable(&number.national) {
        return None;
    }
    let mut number = country_code(region, number)?;
    let code: u16 = number.prefix.as_deref()?.parse().ok()?;
    let territory = match region {
        Some(territory) => Some(territory),
        None => territory_of(code, number.national.trim_start_matches('0')),
    };
    if let Some(territory) = territory {
        let mut potential = national_number(territory, number.clone());
        if let Some(prefix) = territory.national_prefix {
            if potential.national.starts_with(prefix) {
                potential.national.drain(..prefix.len());
            }
        }
        if length(territory, potential.national.len()) != Length::TooShort {
            number = potential;
        }
    }
    let national = number.national;
    if !(MIN_NATIONAL..=MAX_NATIONAL).contains(&national.len()) {
        return None;
    }
    // The crate keeps the national number as its leading zeros and an integer under 2^56.
    let significant = national.trim_start_matches('0');
    let value: u64 = significant.parse().ok()?;
    (value < 1 << 56).then_some(Parsed { code, national })
}

/// RFC 3966 (`tel:+1-415-555-2671`), tried first when the input has no space: an optional
/// `tel:`, an optional `+` and country code ending at the first separator, then digits and
/// separators to the end.
fn rfc3966(input: &str) -> Option<Number> {
    if input.contains(' ') {
        return None;
    }
    let rest = strip_tel(input);
    let separator = |c: char| matches!(c, '-' | '.' | '(' | ')');
    let (prefix, rest) = match rest.strip_prefix('+') {
        Some(after) => match after.find(separator) {
            Some(end) if end > 0 => (Some(&after[..end]), &after[end..]),
            _ => (None, rest),
        },
        None => (None, rest),
    };
    let national_end = rest
        .find(|c: char| !(c.is_ascii_hexdigit() || separator(c)))
        .unwrap_or(rest.len());
    (national_end > 0 && national_end == rest.len()).then(|| Number {
        source: Source::Default,
        national: rest.to_owned(),
        prefix: prefix.map(str::to_owned),
    })
}

/// `tel:` (any case) taken off the start.
pub(super) fn strip_tel(input: &str) -> &str {
    match input.get(..4) {
        Some(tel) if tel.eq_ignore_ascii_case("tel:") => &input[4..],
        _ => input,
    }
}

/// The number in free text: from its first `+` or digit, without the characters after its last
/// digit.
fn natural(input: &str) -> Option<Number> {
    let start = input.find(|c: char| c == '+' || c.is_ascii_digit())?;
    let national = input[start..].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    (!national.is_empty()).then(|| Number {
        source: Source::Default,
        national: national.to_owned(),
        prefix: None,
    })
}

/// The crate's check that what was found can be a number: two digits alone, or pluses then at
/// least three digits among separators.
fn viable(national: &str) -> bool {
    let bytes = national.as_bytes();
    if bytes.len() < MIN_NATIONAL {
        return false;
    }
    if bytes.len() == MIN_NATIONAL && bytes.iter().all(u8::is_ascii_digit) {
        return true;
    }
    let rest = national.trim_start_matches('+');
    let punctuation = |b: &u8| matches!(b, b'-' | b' ' | b'(' | b')' | b'.');
    rest.bytes().filter(u8::is_ascii_digit).count() >= 3
        && rest.bytes().all(|b| b.is_ascii_digit() || punctuation(&b))
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// The country code: from the RFC 3966 prefix, after a `+` or the region's international
/// prefix, or the region's own.
fn country_code(region: Option<&'static Territory>, number: Number) -> Option<Number> {
    let idd = region.and_then(|t| t.compiled().international_prefix.as_ref());
    let mut number = international_prefix(idd, number);
    match number.source {
        Source::Plus | Source::Idd | Source::Number => {
            if number.national.len() <= MIN_NATIONAL {
                return None;
            }
            if let Some(prefix) = &number.prefix {
                let code: u16 = prefix.parse().ok()?;
                return (!Territory::of_code(code).is_empty()).then_some(number);
            }
            if number.national.starts_with('0') {
                return None;
            }
            let length = (1..=MAX_COUNTRY_CODE).find(|length| {
                number.national[..*length]
                    .parse()
                    .is_ok_and(|code: u16| !Territory::of_code(code).is_empty())
            })?;
            let code: String = number.national.drain(..length).collect();
            number.prefix = Some(code);
            Some(number)
        }
        Source::Default => {
            let territory = region?;
            let code = territory.code.to_string();
            if number.national.starts_with(&code)
                && (!is_match(
                    &territory.general,
                    &territory.compiled().general,
                    &number.national,
                ) || !length(territory, number.national.len()).is_possible())
            {
                number.source = Source::Number;
                number.national.drain(..code.len());
            }
            number.prefix = Some(code);
            Some(number)
        }
    }
}

/// Leading pluses, or the region's international prefix (`011`), mark a country code.
fn international_prefix(idd: Option<&super::pattern::Pattern>, mut number: Number) -> Number {
    if number.prefix.is_some() {
        number.source = Source::Plus;
        number.national = digits(&number.national);
        number.prefix = number.prefix.as_deref().map(digits);
        return number;
    }
    let idd_end = |national: &str| idd.and_then(|p| p.at_start(national.as_bytes()));
    let without_plus = number.national.trim_start_matches('+');
    if without_plus.len() != number.national.len() {
        number.source = Source::Plus;
        number.national = digits(without_plus);
        if idd_end(&number.national).is_none() {
            return number;
        }
    } else {
        number.source = Source::Default;
        number.national = digits(&number.national);
    }
    if let Some((end, _)) = idd_end(&number.national) {
        if !number.national[end..].starts_with('0') {
            if number.source != Source::Plus {
                number.source = Source::Idd;
            }
            number.national.drain(..end);
        }
    }
    number
}

/// The national prefix (and a carrier code) taken off, or rewritten by the transform rule.
fn national_number(territory: &'static Territory, mut number: Number) -> Number {
    let compiled = territory.compiled();
    let Some(parsing) = &compiled.national_prefix_for_parsing else {
        if let Some(prefix) = territory.national_prefix {
            if number.national.starts_with(prefix) {
                number.national.drain(..prefix.len());
            }
        }
        return number;
    };
    let Some((end, captures)) = parsing.at_start(number.national.as_bytes()) else {
        return number;
    };
    let viable = is_match(&territory.general, &compiled.general, &number.national);
    let last = captures.last().copied().flatten();
    match (territory.national_prefix_transform_rule, last) {
        (Some(rule), Some(_)) => {
            let mut transformed = expand(rule, &captures, &number.national);
            transformed.push_str(&number.national[end..]);
            if viable && !is_match(&territory.general, &compiled.general, &transformed) {
                return number;
            }
            number.national = transformed;
        }
        // The crate compares the number with itself here (the match starts at 0), so the
        // prefix always goes.
        _ => {
            number.national.drain(..end);
        }
    }
    number
}

/// A transform rule (`9$1`) with its groups' text in place of `$n`.
fn expand(rule: &str, captures: &super::pattern::Captures, text: &str) -> String {
    let mut out = String::new();
    let mut rest = rule;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        let name_end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let group = after[..name_end]
            .parse::<usize>()
            .ok()
            .and_then(|g| captures.get(g).copied().flatten());
        if let Some((start, end)) = group {
            out.push_str(&text[start..end]);
        }
        rest = &after[name_end..];
    }
    out.push_str(rest);
    out
}

/// The territory a country code and national number belong to: the code's only one, or the
/// first whose leading digits or patterns the number matches.
fn territory_of(code: u16, national: &str) -> Option<&'static Territory> {
    let territories = Territory::of_code(code);
    if let [only] = territories {
        return (only.region || only.id == "001").then_some(only);
    }
    territories.iter().find(|t| {
        let compiled = t.compiled();
        match &compiled.leading_digits {
            Some(leading) => leading.at_start(national.as_bytes()).is_some(),
            None => has_kind(t, national),
        }
    })
}

/// The crate's `number_type(..) != Unknown`: the general pattern, and some kind's.
fn has_kind(territory: &'static Territory, national: &str) -> bool {
    let compiled = territory.compiled();
    is_match(&territory.general, &compiled.general, national)
        && territory
            .kinds
            .iter()
            .zip(&compiled.kinds)
            .any(|(kind, pattern)| is_match(kind, pattern, national))
}

/// A descriptor's lengths (when it has any) and a match of its pattern at the start.
fn is_match(
    descriptor: &super::metadata::Descriptor,
    pattern: &super::pattern::Pattern,
    national: &str,
) -> bool {
    let length_ok = descriptor.lengths.is_empty()
        || u8::try_from(national.len()).is_ok_and(|n| descriptor.lengths.contains(&n));
    length_ok && pattern.matches_start(national.as_bytes())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    Possible,
    PossibleLocalOnly,
    TooShort,
    Invalid,
    TooLong,
}

impl Length {
    fn is_possible(self) -> bool {
        matches!(self, Length::Possible | Length::PossibleLocalOnly)
    }
}

/// How a national number's length compares with the territory's general lengths.
fn length(territory: &Territory, length: usize) -> Length {
    let possible = territory.general.lengths;
    let (Some(&minimum), Some(&maximum)) = (possible.first(), possible.last()) else {
        return Length::Invalid;
    };
    let length = u8::try_from(length).unwrap_or(u8::MAX);
    if territory.general.local_lengths.contains(&length) {
        Length::PossibleLocalOnly
    } else if length == minimum {
        Length::Possible
    } else if length < minimum {
        Length::TooShort
    } else if length > maximum {
        Length::TooLong
    } else if possible.contains(&length) {
        Length::Possible
    } else {
        Length::Invalid
    }
}
