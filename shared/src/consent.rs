//! Consent keywords, matched on the whole body (trimmed, case-insensitive) as carriers do.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Keyword {
    OptOut,
    OptIn,
    Help,
}

const OPT_OUT: &[&str] = &[
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
];
const OPT_IN: &[&str] = &["START", "YES", "UNSTOP"];
const HELP: &[&str] = &["HELP", "INFO"];

impl Keyword {
    /// The keyword family a message body belongs to, if it is exactly one keyword.
    pub fn classify(body: &str) -> Option<Self> {
        let word = body.trim();
        let is = |list: &[&str]| list.iter().any(|k| k.eq_ignore_ascii_case(word));
        if is(OPT_OUT) {
            Some(Keyword::OptOut)
        } else if is(OPT_IN) {
            Some(Keyword::OptIn)
        } else if is(HELP) {
            Some(Keyword::Help)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::OptOut => "opt_out",
            Keyword::OptIn => "opt_in",
            Keyword::Help => "help",
        }
    }

    /// Whether this keyword changes the number's consent state (HELP does not).
    pub fn opted_out(self) -> Option<bool> {
        match self {
            Keyword::OptOut => Some(true),
            Keyword::OptIn => Some(false),
            Keyword::Help => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_member_is_recognised_in_any_case_with_whitespace() {
        for (words, family) in [
            (OPT_OUT, Keyword::OptOut),
            (OPT_IN, Keyword::OptIn),
            (HELP, Keyword::Help),
        ] {
            for w in words {
                assert_eq!(Keyword::classify(w), Some(family), "{w}");
                assert_eq!(Keyword::classify(&w.to_lowercase()), Some(family), "{w}");
                assert_eq!(Keyword::classify(&format!("  {w}\n")), Some(family), "{w}");
            }
        }
        assert_eq!(Keyword::classify("Stop"), Some(Keyword::OptOut));
    }

    #[test]
    fn a_keyword_inside_a_sentence_is_not_a_keyword() {
        for body in [
            "please stop",
            "STOP!",
            "stop it",
            "help me",
            "yes please",
            "",
            "S T O P",
        ] {
            assert_eq!(Keyword::classify(body), None, "{body}");
        }
    }
}
