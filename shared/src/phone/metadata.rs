//! libphonenumber's territories, as far as parsing and validating a number needs them.
//!
//! `territories.rs` is generated from the metadata the phonenumber crate in `Cargo.lock`
//! embeds (libphonenumber's `PhoneNumberMetadata.xml`, Apache-2.0, Copyright (C) 2009 The
//! Libphonenumber Authors): each territory's id, country code, international and national
//! prefixes, national prefix for parsing and its transform rule, leading digits, and the
//! pattern and possible lengths of its general description and of each kind of number. The
//! crate is a dev-dependency only; `tests::territories_are_the_crates` fails when the file and
//! the crate differ, and writes it again with `PARLEY_WRITE_PHONE_METADATA=1`.

use std::sync::OnceLock;

use super::pattern::Pattern;

/// A description of numbers: a pattern of national significant numbers and their lengths.
#[derive(Debug)]
pub struct Descriptor {
    pub pattern: &'static str,
    pub lengths: &'static [u8],
    pub local_lengths: &'static [u8],
}

/// One territory of libphonenumber's metadata.
#[derive(Debug)]
pub struct Territory {
    /// ISO 3166 code (`US`), or `001` for a non-geographic entity.
    pub id: &'static str,
    /// Whether the id is a region the phonenumber crate names (its `country::Id`).
    pub region: bool,
    pub code: u16,
    pub international_prefix: Option<&'static str>,
    pub national_prefix: Option<&'static str>,
    pub national_prefix_for_parsing: Option<&'static str>,
    pub national_prefix_transform_rule: Option<&'static str>,
    pub leading_digits: Option<&'static str>,
    pub general: Descriptor,
    /// Premium rate, toll free, shared cost, VoIP, personal, pager, UAN, voicemail, fixed line
    /// and mobile, those the territory has, in that order.
    pub kinds: &'static [Descriptor],
}

include!("territories.rs");

/// A territory's patterns, compiled on first use.
pub struct Compiled {
    pub international_prefix: Option<Pattern>,
    pub national_prefix_for_parsing: Option<Pattern>,
    pub leading_digits: Option<Pattern>,
    pub general: Pattern,
    pub kinds: Vec<Pattern>,
}

static COMPILED: [OnceLock<Compiled>; COUNT] = [const { OnceLock::new() }; COUNT];

impl Territory {
    /// The territories of `code`, its main territory first (the order decides which territory
    /// a number whose patterns several match belongs to).
    pub fn of_code(code: u16) -> &'static [Territory] {
        let start = TERRITORIES.partition_point(|t| t.code < code);
        let end = start + TERRITORIES[start..].partition_point(|t| t.code == code);
        &TERRITORIES[start..end]
    }

    pub fn by_id(id: &str) -> Option<&'static Territory> {
        TERRITORIES.iter().find(|t| t.id == id)
    }

    /// This territory's compiled patterns (compiled once per process).
    pub fn compiled(&'static self) -> &'static Compiled {
        let range = TERRITORIES.as_ptr_range();
        let this: *const Territory = self;
        assert!(range.contains(&this), "a territory of TERRITORIES");
        let index = (this as usize - range.start as usize) / std::mem::size_of::<Territory>();
        COMPILED[index].get_or_init(|| {
            let compile = |source: &str| {
                Pattern::new(source).expect("every metadata pattern compiles (tested)")
            };
            Compiled {
                international_prefix: self.international_prefix.map(compile),
                national_prefix_for_parsing: self.national_prefix_for_parsing.map(compile),
                leading_digits: self.leading_digits.map(compile),
                general: compile(self.general.pattern),
                kinds: self.kinds.iter().map(|k| compile(k.pattern)).collect(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phonenumber::metadata::{Descriptor as CratesDescriptor, Metadata, DATABASE};
    use std::fmt::Write;

    const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/phone/territories.rs");

    fn pattern(source: &str) -> String {
        source.split_ascii_whitespace().collect()
    }

    fn descriptor(d: &CratesDescriptor) -> String {
        format!(
            "Descriptor {{ pattern: {:?}, lengths: &{:?}, local_lengths: &{:?} }}",
            pattern(d.national_number().as_str()),
            d.possible_length(),
            d.possible_local_length()
        )
    }

    fn territory(m: &Metadata) -> String {
        let d = m.descriptors();
        let kinds: Vec<String> = [
            d.premium_rate(),
            d.toll_free(),
            d.shared_cost(),
            d.voip(),
            d.personal_number(),
            d.pager(),
            d.uan(),
            d.voicemail(),
            d.fixed_line(),
            d.mobile(),
        ]
        .into_iter()
        .flatten()
        .map(descriptor)
        .collect();
        format!(
            "    Territory {{\n        id: {:?},\n        region: {},\n        code: {},\n        \
             international_prefix: {:?},\n        national_prefix: {:?},\n        \
             national_prefix_for_parsing: {:?},\n        national_prefix_transform_rule: {:?},\n        \
             leading_digits: {:?},\n        general: {},\n        kinds: &[\n{}        ],\n    }},\n",
            m.id(),
            m.id().parse::<phonenumber::country::Id>().is_ok(),
            m.country_code(),
            m.international_prefix().map(|r| pattern(r.as_str())),
            m.national_prefix(),
            m.national_prefix_for_parsing().map(|r| pattern(r.as_str())),
            m.national_prefix_transform_rule(),
            m.leading_digits().map(|r| pattern(r.as_str())),
            descriptor(d.general()),
            kinds
                .iter()
                .fold(String::new(), |mut s, k| {
                    let _ = writeln!(s, "            {k},");
                    s
                }),
        )
    }

    /// `territories.rs` as the crate's database gives it: codes in order, and each code's
    /// territories in the crate's order (its main territory first).
    fn generate() -> String {
        // Every code the crate knows: `DATABASE.iter()` holds one territory per id, so one of
        // the non-geographic entities (id `001`: +800, +808, +870, +881…) only.
        let codes = (1..1000).filter(|code| DATABASE.by_code(code).is_some());
        let mut out = String::from(
            "// @generated by `phone::metadata::tests::territories_are_the_crates` from the\n\
             // phonenumber crate's metadata (libphonenumber, Apache-2.0, Copyright (C) 2009 The\n\
             // Libphonenumber Authors). Do not edit: see `phone/metadata.rs`.\n\n\
             pub static TERRITORIES: [Territory; COUNT] = [\n",
        );
        let mut count = 0;
        for code in codes {
            for m in DATABASE.by_code(&code).expect("a code of the database") {
                out.push_str(&territory(m));
                count += 1;
            }
        }
        out.push_str("];\n");
        format!("{out}\npub const COUNT: usize = {count};\n")
    }

    #[test]
    fn territories_are_the_crates() {
        let generated = generate();
        if std::env::var_os("PARLEY_WRITE_PHONE_METADATA").is_some() {
            std::fs::write(PATH, &generated).unwrap();
        }
        let written = std::fs::read_to_string(PATH).unwrap();
        assert!(
            written == generated,
            "{PATH} differs from the phonenumber crate's metadata: run \
             `PARLEY_WRITE_PHONE_METADATA=1 cargo test -p parley --lib phone::metadata`"
        );
        let count: usize = (1..1000)
            .filter_map(|code| DATABASE.by_code(&code))
            .map(|territories| territories.len())
            .sum();
        assert_eq!(TERRITORIES.len(), count);
        assert!(TERRITORIES.iter().any(|t| t.id == "001" && t.code == 800));
    }

    #[test]
    fn every_pattern_compiles() {
        for t in &TERRITORIES {
            let compiled = t.compiled();
            assert_eq!(compiled.kinds.len(), t.kinds.len());
        }
    }

    #[test]
    fn territories_are_found_by_code_and_id() {
        let nanp = Territory::of_code(1);
        assert_eq!(nanp[0].id, "US");
        assert_eq!(nanp.len(), DATABASE.region(&1).unwrap().len());
        assert_eq!(
            Territory::of_code(44)
                .iter()
                .map(|t| t.id)
                .collect::<Vec<_>>(),
            DATABASE.region(&44).unwrap()
        );
        assert!(Territory::of_code(0).is_empty());
        assert!(Territory::of_code(999).is_empty());
        assert_eq!(Territory::by_id("PT").map(|t| t.code), Some(351));
        assert!(Territory::by_id("ZZ").is_none());
    }
}
