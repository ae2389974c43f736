//! Twilio identifiers: two upper-case letters and 32 hex digits (`SM…`, `MM…`, `AC…`).

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a Twilio {kind} SID")]
pub struct SidError {
    kind: &'static str,
}

fn is_sid(s: &str, prefixes: &[&str]) -> bool {
    s.len() == 34
        && prefixes.iter().any(|p| s.starts_with(p))
        && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

macro_rules! sid_type {
    ($name:ident, $kind:literal, [$($prefix:literal),+]) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, SidError> {
                if is_sid(s, &[$($prefix),+]) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(SidError { kind: $kind })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = SidError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    };
}

sid_type!(MessageSid, "message", ["SM", "MM"]);
sid_type!(AccountSid, "account", ["AC"]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_sids_parse() {
        assert!(MessageSid::parse("SM0123456789abcdef0123456789abcdef").is_ok());
        assert!(MessageSid::parse("MM0123456789ABCDEF0123456789abcdef").is_ok());
        assert!(AccountSid::parse("AC0123456789abcdef0123456789abcdef").is_ok());
    }

    #[test]
    fn malformed_sids_are_rejected() {
        for s in [
            "",
            "SM123",
            "XX0123456789abcdef0123456789abcdef",
            "SM0123456789abcdef0123456789abcdeg",
            "SM0123456789abcdef0123456789abcdef0",
        ] {
            assert!(MessageSid::parse(s).is_err(), "{s}");
        }
        assert!(AccountSid::parse("SM0123456789abcdef0123456789abcdef").is_err());
    }
}
