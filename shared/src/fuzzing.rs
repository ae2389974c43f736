//! The properties the fuzz targets check (`fuzz/fuzz_targets/*`, docs/reliability.md), one
//! function per target: each takes any bytes and panics only when a property fails. libFuzzer
//! drives them in `make fuzz`; `make test` runs them over the committed seeds and a few thousand
//! deterministic mutations of them (no coverage guidance, but the same properties).

use crate::phone::{Address, E164};
use crate::twilio::form::percent_encode;
use crate::twilio::form::Form;
use crate::twilio::signature::{self, Payload};

/// Any bytes give a form or a typed error; a parsed form's pairs, re-encoded, parse to
/// themselves.
pub fn form(data: &[u8]) {
    if let Ok(form) = Form::parse(data) {
        let encoded: Vec<String> = form
            .pairs()
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect();
        let again = Form::parse(encoded.join("&").as_bytes()).expect("a re-encoded form parses");
        assert_eq!(again.pairs(), form.pairs());
    }
}

/// URL, body and signature split at NUL bytes: verification never panics, and a signature
/// computed for a request verifies (for URLs without a fragment: any fragment but Parley's own
/// is refused by design).
pub fn signature(data: &[u8]) {
    let mut parts = data.splitn(3, |b| *b == 0);
    let (Some(url), Some(body), Some(sig)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let (Ok(url), Ok(sig)) = (std::str::from_utf8(url), std::str::from_utf8(sig)) else {
        return;
    };
    let Ok(form) = Form::parse(body) else {
        let _ = signature::verify(&["token"], url, Payload::Json(body), sig);
        return;
    };
    let _ = signature::verify(&["token"], url, Payload::Form(form.pairs()), sig);
    if !url.contains('#') {
        let good = signature::compute("token", url, form.pairs());
        assert!(signature::verify(
            &["other", "token"],
            url,
            Payload::Form(form.pairs()),
            &good
        ));
    }
}

/// Any text gives a number or a typed error; a parsed number's E.164 form parses to itself, and
/// reads the same with its country code and without metadata; an address read as Twilio writes
/// one keeps its text and is a stored number; a stored number's national forms come from its
/// digits.
pub fn phone(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(number) = E164::parse(text) {
        assert_eq!(E164::parse(number.as_str()).ok().as_ref(), Some(&number));
        assert_eq!(E164::international(number.as_str()).as_ref(), Ok(&number));
    }
    if let Ok(number) = E164::international(text) {
        assert_eq!(
            E164::stored(number.as_str().to_owned()).as_ref(),
            Ok(&number)
        );
        if let Some((national, _)) = crate::phone::national_forms(&number) {
            assert!(number.as_str().ends_with(national.trim_start_matches('0')));
        }
    }
    let _ = Address::parse(text);
    if let Ok(address) = Address::from_twilio(text) {
        assert_eq!(address.original, text);
        assert_eq!(
            E164::stored(address.e164.as_str().to_owned()).as_ref(),
            Ok(&address.e164)
        );
    }
}

/// Text has at least one segment, and more text never has fewer.
pub fn segments(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let count = crate::segments::count(text);
    assert!(count.count >= 1 || text.is_empty());
    assert!(crate::segments::count(&format!("{text}{text}")).count >= count.count);
}

/// A string opens to nothing unless sealed under the same key and scope; every sealed position
/// opens to itself.
pub fn cursor(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::cursor::open("key", "scope", text);
    }
    let sealed = crate::cursor::seal("key", "scope", data);
    assert_eq!(
        crate::cursor::open("key", "scope", &sealed).as_deref(),
        Some(data)
    );
    assert!(crate::cursor::open("key", "other", &sealed).is_none());
}

/// Any JSON body reads and validates as a send request, or is refused, without panicking.
pub fn send_request(data: &[u8]) {
    if let Ok(request) = serde_json::from_slice::<crate::send::SendRequest>(data) {
        let _ = request.validate(crate::time::Timestamp::now());
    }
}

/// Any bytes validate to a rule or to field errors.
pub fn rule(data: &[u8]) {
    let _ = crate::rules::rule::validate(data);
}

/// `[pattern, event]`: parsing and matching never panic.
pub fn pattern(data: &[u8]) {
    let Ok(serde_json::Value::Array(parts)) = serde_json::from_slice(data) else {
        return;
    };
    let [pattern, event] = parts.as_slice() else {
        return;
    };
    if let Ok(pattern) = crate::rules::pattern::Pattern::parse(pattern) {
        let _ = pattern.matches(event);
    }
}

/// Any source compiles or fails with a position; a compiled template renders (within its fuel)
/// to text or an error.
pub fn template(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(text) = crate::rules::render::Text::compile(source) {
        let context = serde_json::json!({
            "detail": {"amount": 125.5, "name": "Ana", "items": [1, 2, 3]},
            "tenant": {"language": "es"}
        });
        let _ = text.render(&context);
    }
}

/// A property: panics when it fails on the input.
pub type Property = fn(&[u8]);

/// Every target by its name in `fuzz/fuzz_targets`.
pub const TARGETS: &[(&str, Property)] = &[
    ("cursor", cursor),
    ("form", form),
    ("pattern", pattern),
    ("phone", phone),
    ("rule", rule),
    ("segments", segments),
    ("send_request", send_request),
    ("signature", signature),
    ("template", template),
];

#[cfg(test)]
pub(crate) mod tests {
    use super::TARGETS;

    /// Mutations per seed: byte flips, inserted and deleted runs, splices with another seed.
    const MUTATIONS_PER_SEED: usize = 500;

    /// A small deterministic generator, so that a failure names an input that fails again
    /// (also `phone::oracle`'s).
    pub(crate) struct XorShift(pub(crate) u64);

    impl XorShift {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    const INTERESTING: &[&[u8]] = &[
        b"%",
        b"%+1",
        b"%FF",
        b"&",
        b"=",
        b"\0",
        b"\xff\xfe",
        b"{",
        b"}",
        b"[",
        b"\"",
        b"{{",
        b"}}",
        b"{%",
        b"%}",
        b"+",
        b"#",
        b"?",
        b"99999999999999999999",
        b"-1",
        b"\xf0\x9f\x8f\xa0",
    ];

    fn mutate(rng: &mut XorShift, seed: &[u8], other: &[u8]) -> Vec<u8> {
        let mut data = seed.to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(data.len() + 1);
            match rng.below(5) {
                0 if !data.is_empty() => {
                    let i = at.min(data.len() - 1);
                    data[i] ^= 1 << rng.below(8);
                }
                1 => {
                    let piece = INTERESTING[rng.below(INTERESTING.len())];
                    data.splice(at..at, piece.iter().copied());
                }
                2 if !data.is_empty() => {
                    let end = (at + rng.below(8)).min(data.len());
                    data.drain(at.min(end)..end);
                }
                3 => {
                    let from = rng.below(other.len() + 1);
                    data.truncate(at);
                    data.extend_from_slice(&other[from..]);
                }
                _ => data.insert(at, rng.next() as u8),
            }
        }
        data
    }

    fn seeds(target: &str) -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/seeds")
            .join(target);
        let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
            .collect();
        seeds.sort();
        assert!(!seeds.is_empty(), "{target} has no seeds");
        seeds
    }

    #[test]
    fn every_target_holds_on_its_seeds_and_their_mutations() {
        for (i, (target, check)) in TARGETS.iter().enumerate() {
            let seeds = seeds(target);
            let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1));
            for seed in &seeds {
                check(seed);
                for _ in 0..MUTATIONS_PER_SEED {
                    let other = &seeds[rng.below(seeds.len())];
                    let input = mutate(&mut rng, seed, other);
                    let outcome = std::panic::catch_unwind(|| check(&input));
                    assert!(
                        outcome.is_ok(),
                        "{target} failed on {:?} (fuzz/seeds/{target}: add it there to reproduce)",
                        String::from_utf8_lossy(&input)
                    );
                }
            }
        }
    }

    #[test]
    fn every_fuzz_target_has_a_property_and_seeds() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/fuzz_targets");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .trim_end_matches(".rs")
                    .to_owned()
            })
            .collect();
        files.sort();
        let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
        assert_eq!(files, names);
    }
}
