//! The phonenumber crate (a dev-dependency), as `phone` used it before it read the metadata
//! itself, and the tests that hold the two to the same answers.

use phonenumber::country::Id as Country;
use phonenumber::metadata::DATABASE;
use phonenumber::PhoneNumber;

use super::{written_form, PhoneError, E164};
use crate::fuzzing::tests::XorShift as Random;

/// What `E164::parse` gave: the E.164 string and the number's region, or the error.
pub fn parse(input: &str) -> Result<(String, Option<String>), PhoneError> {
    let (number, _) = parse_valid(input.trim())?;
    let e164 = e164_string(&number);
    Ok((e164.clone(), region(&e164)))
}

fn parse_valid(trimmed: &str) -> Result<(PhoneNumber, ()), PhoneError> {
    if trimmed.is_empty() {
        return Err(PhoneError::Empty);
    }
    let international = trimmed
        .bytes()
        .find(|b| *b == b'+' || b.is_ascii_digit())
        .is_some_and(|b| b == b'+');
    let regions: &[Option<Country>] = match international {
        true => &[None, Some(Country::US)],
        false => &[Some(Country::US)],
    };
    let mut error = PhoneError::Unparseable;
    for region in regions {
        if let Ok(number) = phonenumber::parse_with(&DATABASE, *region, trimmed) {
            if phonenumber::is_valid_with(&DATABASE, &number) {
                return Ok((number, ()));
            }
            error = PhoneError::Invalid;
        }
    }
    Err(error)
}

fn parse_stored(e164: &str) -> Option<PhoneNumber> {
    parse_valid(e164)
        .ok()
        .map(|(n, ())| n)
        .or_else(|| phonenumber::parse_with(&DATABASE, None, e164).ok())
}

fn e164_string(number: &PhoneNumber) -> String {
    format!("+{}{}", number.code().value(), number.national())
}

/// What `E164::region` gave for a stored number.
pub fn region(e164: &str) -> Option<String> {
    let number = parse_stored(e164)?;
    let id: Country = number.metadata(&DATABASE)?.id().parse().ok()?;
    Some(AsRef::<str>::as_ref(&id).to_owned())
}

/// What `national_forms` gave when it read numbers with the crate.
pub fn national_forms(e164: &str) -> Option<(String, Option<String>)> {
    let number = parse_stored(e164)?;
    let national = number.national().value().to_string();
    let written = (number.code().value() == 1).then(|| {
        number
            .format_with(&DATABASE)
            .mode(phonenumber::Mode::National)
            .to_string()
    });
    Some((national, written))
}

/// Every example number of every territory and kind in the crate's metadata, with its
/// country code and its territory's national prefix.
pub fn examples() -> Vec<(u16, &'static str, &'static str)> {
    let territories = (1..1000)
        .filter_map(|code| DATABASE.by_code(&code))
        .flatten();
    territories
        .flat_map(|m| {
            let d = m.descriptors();
            let kinds = [
                d.fixed_line(),
                d.mobile(),
                d.toll_free(),
                d.premium_rate(),
                d.shared_cost(),
                d.personal_number(),
                d.voip(),
                d.pager(),
                d.uan(),
                d.voicemail(),
            ];
            let prefix = m.national_prefix().unwrap_or("");
            kinds
                .into_iter()
                .flatten()
                .filter_map(|d| d.example())
                .map(move |example| (m.country_code(), prefix, example))
        })
        .collect()
}

fn pick<'a>(random: &mut Random, options: &[&'a str]) -> &'a str {
    options[random.below(options.len())]
}

/// `digits` written the ways people write them: separators between groups, or none.
fn written(random: &mut Random, digits: &str) -> String {
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && random.below(4) == 0 {
            out.push_str(pick(random, &[" ", "-", ".", " - ", ")", "(", ") "]));
        }
        out.push(c);
    }
    out
}

/// Inputs in the written form `phone` reads: every example number of the metadata with its
/// country code, its international prefix and its national prefix, in several spellings, North
/// American numbers across the area codes, and random digits.
fn corpus() -> Vec<String> {
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let mut inputs: Vec<String> = [
        "+14155552671",
        "+1 (415) 555-2671",
        "(415) 555-2671",
        "tel:+1-415-555-2671",
        "+1415-555-2671",
        "+7 812 432 7257",
        "tel:+7-812-432-7257",
        "011 52 55 1234 5678",
        "+011 44 20 7946 0958",
        "0044 20 7946 0958",
        "+39 06 1234 5678",
        "12",
        "12-",
        "+",
        "+1",
        "+1 2",
        "1",
        "(",
        "tel:",
        "+-1",
        "+0",
        "000",
        "+1 000 000 0000",
    ]
    .map(str::to_owned)
    .to_vec();
    for (code, prefix, example) in examples() {
        let spelled = written(&mut random, example);
        let forms = [
            format!("+{code}{example}"),
            format!("+{code} {spelled}"),
            format!("+{code}-{example}"),
            format!("tel:+{code}-{spelled}"),
            format!("{code}{example}"),
            format!("011 {code} {spelled}"),
            format!("+011{code}{example}"),
            format!("+{code}{prefix}{example}"),
            format!("{prefix}{spelled}"),
            format!("+{code} ({prefix}) {spelled}"),
            format!("+{code}{}", &example[..example.len() - 1]),
            format!("+{code}{example}9"),
        ];
        // Half of the forms of each example, a different half each time (the crate takes
        // ~0.5 ms a number, compiling patterns its cache of 100 has let go).
        inputs.extend(forms.into_iter().filter(|_| random.below(2) == 0));
    }
    for area in (0..1000).step_by(7) {
        for exchange in [0, 1, 234, 555, 911] {
            let n = format!("{area:03}{exchange:03}2671");
            let (a, e, l) = (&n[..3], &n[3..6], &n[6..]);
            inputs.extend([
                format!("+1{n}"),
                format!("+1 ({a}) {e}-{l}"),
                format!("1{n}"),
                format!("{a}.{e}.{l}"),
                format!("({a}) {e}-{l}"),
                format!("+1{a}-{e}-{l}"),
            ]);
        }
    }
    for _ in 0..6_000 {
        let length = random.below(19);
        let digits: String = (0..length)
            .map(|_| char::from(b'0' + random.below(10) as u8))
            .collect();
        let start = pick(
            &mut random,
            &["", "+", "+", "tel:", "tel:+", "011", "00", "1", "+1"],
        );
        inputs.push(format!("{start}{}", written(&mut random, &digits)));
    }
    inputs
}

#[test]
fn numbers_read_as_the_crate_read_them() {
    let inputs = corpus();
    let (mut valid, mut invalid, mut unparseable) = (0, 0, 0);
    for input in &inputs {
        assert!(written_form(input.trim()), "{input}");
        let ours = E164::parse(input).map(|e| {
            let region = e.region();
            (e.0, region)
        });
        assert_eq!(ours, parse(input), "{input:?}");
        match ours {
            Ok(_) => valid += 1,
            Err(PhoneError::Invalid) => invalid += 1,
            Err(_) => unparseable += 1,
        }
    }
    // Every outcome was compared, many times over.
    assert!(valid > 4_000, "{valid} valid");
    assert!(invalid > 4_000, "{invalid} invalid");
    assert!(unparseable > 1_000, "{unparseable} unparseable");
}

#[test]
fn stored_numbers_are_placed_as_the_crate_placed_them() {
    let mut random = Random(0x2545_f491_4f6c_dd1d);
    let mut placed = 0;
    for _ in 0..5_000 {
        let length = 2 + random.below(14);
        let digits: String = (0..length)
            .map(|i| char::from(b'0' + (random.below(9) + usize::from(i == 0)) as u8))
            .collect();
        let stored = E164::stored(format!("+{digits}")).unwrap();
        let ours = stored.region();
        assert_eq!(ours, region(stored.as_str()), "{}", stored.as_str());
        placed += usize::from(ours.is_some());
    }
    assert!(placed > 2_000, "{placed} placed");
}

#[test]
fn what_is_refused_now_the_crate_read() {
    // Forms outside the written form are refused; the crate read some of them (letters as
    // keypad digits, extensions dropped).
    for input in [
        "1-800-FLOWERS",
        "+1 415 555 2671 ext. 5",
        "+1 415 555 2671 x5",
    ] {
        assert!(!written_form(input), "{input}");
        assert!(parse(input).is_ok(), "{input}");
        assert_eq!(E164::parse(input), Err(PhoneError::Unparseable), "{input}");
    }
}
