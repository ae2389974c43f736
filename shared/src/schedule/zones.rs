//! Phone-number prefix → IANA time zones, from libphonenumber's
//! `resources/timezones/map_data.txt` (see `data/timezones/README.md`).
//!
//! The table is parsed once, on first use, into a hash map keyed by
//! `(prefix value, prefix length)`; a lookup probes only the prefix lengths
//! that occur in the data, longest first, so it costs a handful of integer
//! hashes and never allocates.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::LazyLock;

use jiff::tz::TimeZone;

static MAP_DATA: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/timezones/map_data.txt"
));

/// E.164 caps a number at 15 digits (country code included).
const MAX_E164_DIGITS: usize = 15;

/// The time zones libphonenumber associates with the longest prefix of
/// `e164` (`"+14155552671"`; the `+` is optional) found in its data.
///
/// Several zones come back when the operator data cannot narrow the number
/// down (mobile ranges, whole countries such as `+7` or `+61`): callers that
/// must respect local time should respect it in all of them.
///
/// Returns an empty slice when `e164` is not 1–15 ASCII digits after the
/// optional `+`, or when no prefix matches.
pub fn zones_for_number(e164: &str) -> &'static [TimeZone] {
    TABLE.lookup(e164)
}

/// Parses the embedded table now instead of on the first lookup, so the cost
/// (a few milliseconds) lands in a Lambda's init phase rather than in the
/// first request it serves.
pub fn preload() {
    LazyLock::force(&TABLE);
}

static TABLE: LazyLock<Table> = LazyLock::new(|| Table::parse(MAP_DATA));

struct Table {
    /// Every line's zone list, concatenated; identical lists share one run.
    arena: Vec<TimeZone>,
    /// `key(prefix value, prefix length)` → `(start, len)` in `arena`.
    by_prefix: HashMap<u64, (u32, u32), BuildHasherDefault<PrefixHasher>>,
    /// Bit `n` set ⇔ some prefix has `n` digits; lets a lookup skip lengths
    /// the data never uses.
    lengths: u32,
    /// Zone names in the data that the bundled tz database does not know
    /// (kept for the test that flags a stale data or jiff update).
    #[cfg_attr(not(test), allow(dead_code))]
    unknown_names: Vec<String>,
}

/// Prefixes are compared as numbers; the length is folded in because
/// `"1"` and `"01"` would otherwise collide (no real prefix starts with 0,
/// but the parser should not rely on that).
fn key(value: u64, len: usize) -> u64 {
    (value << 5) | len as u64
}

impl Table {
    fn parse(data: &str) -> Table {
        let mut arena = Vec::new();
        let mut by_prefix = HashMap::default();
        let mut lengths = 0u32;
        let mut unknown_names = Vec::new();
        // Thousands of lines name only a few hundred distinct zones and lists;
        // resolving each once keeps cold start cheap.
        let mut zone_cache: HashMap<&str, Option<TimeZone>> = HashMap::new();
        let mut list_cache: HashMap<&str, (u32, u32)> = HashMap::new();

        for line in data.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((prefix, names)) = line.split_once('|') else {
                continue;
            };
            let prefix = prefix.trim();
            let Some(value) = parse_digits(prefix) else {
                continue;
            };
            let names = names.trim();
            let range = *list_cache.entry(names).or_insert_with(|| {
                let start = arena.len();
                for name in names.split('&').map(str::trim) {
                    if name.is_empty() || name == "Etc/Unknown" {
                        continue;
                    }
                    let tz = zone_cache
                        .entry(name)
                        .or_insert_with(|| match TimeZone::get(name) {
                            Ok(tz) if !tz.is_unknown() => Some(tz),
                            _ => {
                                unknown_names.push(name.to_owned());
                                None
                            }
                        });
                    if let Some(tz) = tz {
                        arena.push(tz.clone());
                    }
                }
                (start as u32, (arena.len() - start) as u32)
            });
            lengths |= 1 << prefix.len();
            by_prefix.insert(key(value, prefix.len()), range);
        }
        arena.shrink_to_fit();
        by_prefix.shrink_to_fit();
        Table {
            arena,
            by_prefix,
            lengths,
            unknown_names,
        }
    }

    fn lookup(&self, e164: &str) -> &[TimeZone] {
        let digits = e164.strip_prefix('+').unwrap_or(e164).as_bytes();
        if digits.is_empty()
            || digits.len() > MAX_E164_DIGITS
            || !digits.iter().all(u8::is_ascii_digit)
        {
            return &[];
        }
        // values[n] = numeric value of the first n digits.
        let mut values = [0u64; MAX_E164_DIGITS + 1];
        for (i, d) in digits.iter().enumerate() {
            values[i + 1] = values[i] * 10 + u64::from(d - b'0');
        }
        for len in (1..=digits.len()).rev() {
            if self.lengths & (1 << len) == 0 {
                continue;
            }
            if let Some(&(start, n)) = self.by_prefix.get(&key(values[len], len)) {
                // A matching prefix whose zones are all unknown yields `&[]`
                // rather than falling back to a shorter, vaguer prefix.
                return &self.arena[start as usize..(start + n) as usize];
            }
        }
        &[]
    }
}

/// 1–15 ASCII digits → their value; anything else → `None`.
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > MAX_E164_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0, |v, b| v * 10 + u64::from(b - b'0')))
}

/// The keys are small, trusted integers from our own data, so SipHash's
/// DoS resistance buys nothing; a multiplicative hash keeps a probe to a few
/// nanoseconds.
#[derive(Default)]
struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        let h = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // hashbrown takes bucket bits from the low end and tag bits from the
        // high end; fold so both see the well-mixed middle bits.
        self.0 = h ^ (h >> 32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(zones: &[TimeZone]) -> Vec<&str> {
        zones.iter().map(|z| z.iana_name().unwrap()).collect()
    }

    #[test]
    fn san_francisco_is_los_angeles() {
        assert_eq!(
            names(zones_for_number("+14155552671")),
            ["America/Los_Angeles"]
        );
        // The '+' is optional.
        assert_eq!(
            names(zones_for_number("14155552671")),
            ["America/Los_Angeles"]
        );
    }

    #[test]
    fn lisbon_landline_is_lisbon_only() {
        // 351 2… is mainland; the shorter 351 prefix also lists the Azores.
        assert_eq!(names(zones_for_number("+351213456789")), ["Europe/Lisbon"]);
        assert_eq!(
            names(zones_for_number("+351912345678")),
            ["Atlantic/Azores", "Europe/Lisbon"]
        );
    }

    #[test]
    fn multi_zone_prefixes_return_every_zone() {
        assert_eq!(
            names(zones_for_number("+5511987654321")),
            ["America/Sao_Paulo"],
            "São Paulo area code narrows +55"
        );
        // +55 with no longer match: all four Brazilian zones.
        let br = names(zones_for_number("+5500000000"));
        assert_eq!(
            br,
            [
                "America/Manaus",
                "America/Noronha",
                "America/Rio_Branco",
                "America/Sao_Paulo"
            ]
        );
        // Boise area code 208 2…: two zones.
        assert_eq!(
            names(zones_for_number("+12082001234")),
            ["America/Boise", "America/Los_Angeles"]
        );
        // Longest prefix wins over the two-zone 12082 line.
        assert_eq!(names(zones_for_number("+12082011234")), ["America/Denver"]);
        let au = names(zones_for_number("+61000000000"));
        assert_eq!(au.len(), 8);
        assert!(au.contains(&"Australia/Perth") && au.contains(&"Australia/Sydney"));
    }

    #[test]
    fn unknown_or_malformed_numbers_are_empty() {
        assert!(zones_for_number("+999123456").is_empty(), "unassigned +999");
        assert!(zones_for_number("").is_empty());
        assert!(zones_for_number("+").is_empty());
        assert!(zones_for_number("+1 415 555 2671").is_empty());
        assert!(zones_for_number("+1415555267a").is_empty());
        assert!(
            zones_for_number("+1234567890123456").is_empty(),
            "16 digits"
        );
        assert!(zones_for_number("+٣٣١٢٣").is_empty(), "non-ASCII digits");
    }

    #[test]
    fn every_zone_name_in_the_data_is_known_to_jiff() {
        // Unknown names are skipped at runtime; this test is what notices a
        // data update that names a zone the bundled tzdb lacks.
        assert!(
            TABLE.unknown_names.is_empty(),
            "unknown zones in map_data.txt: {:?}",
            TABLE.unknown_names
        );
        assert!(TABLE.by_prefix.len() > 3000, "{}", TABLE.by_prefix.len());
    }

    #[test]
    fn unknown_and_placeholder_names_are_skipped() {
        let t = Table::parse(
            "# comment\n\
             44|Europe/London\n\
             4420|Mars/Olympus&Europe/London\n\
             4421|Etc/Unknown\n\
             4422|Mars/Olympus\n\
             garbage line\n\
             4x|Europe/Paris\n",
        );
        assert_eq!(names(t.lookup("+442012345678")), ["Europe/London"]);
        assert!(t.lookup("+442112345678").is_empty());
        assert!(t.lookup("+442212345678").is_empty());
        assert_eq!(names(t.lookup("+449")), ["Europe/London"]);
        assert_eq!(t.unknown_names, ["Mars/Olympus"]);
    }
}
