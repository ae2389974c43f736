//! Language detection restricted to the languages Parley answers in: English, Spanish and
//! Portuguese. Short replies ("Sí", "Sim", "Yes") are too short for a statistical detector, so
//! a table of them is consulted first; longer texts go to whatlang's method limited to the
//! three (`detector`: whatlang's answers, computed without its per-text hash map).

mod detector;
mod profiles;

use serde::{Deserialize, Serialize};
use whatlang::Lang;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Language {
    En,
    Es,
    Pt,
    Unknown,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Es => "es",
            Language::Pt => "pt",
            Language::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub language: Language,
    /// 0.0 (a guess) to 1.0 (certain); 0.0 whenever `language` is `Unknown`.
    pub confidence: f64,
}

impl Detection {
    const UNKNOWN: Detection = Detection {
        language: Language::Unknown,
        confidence: 0.0,
    };
}

/// Below this the statistical detector's answer is reported as `Unknown`. whatlang's confidence
/// is the margin over the runner-up, so a clear Spanish sentence that shares words with
/// Portuguese ("por favor", "registros") can score 0.38; 0.2 still rejects coin-flips.
const MIN_CONFIDENCE: f64 = 0.2;
/// Texts with fewer letters than this are only judged by the short-reply table.
const MIN_LETTERS: usize = 12;

/// Short replies that settle the language on their own, with how sure they make us.
/// Words shared by two of the languages ("no", "ok") are deliberately absent.
const SHORT_REPLIES: &[(&str, Language, f64)] = &[
    ("yes", Language::En, 0.9),
    ("yeah", Language::En, 0.9),
    ("yep", Language::En, 0.9),
    ("thanks", Language::En, 0.9),
    ("thank you", Language::En, 0.95),
    ("hello", Language::En, 0.8),
    ("hi", Language::En, 0.7),
    ("sure", Language::En, 0.8),
    ("sí", Language::Es, 0.95),
    ("si", Language::Es, 0.8),
    ("gracias", Language::Es, 0.95),
    ("muchas gracias", Language::Es, 0.95),
    ("hola", Language::Es, 0.9),
    ("claro", Language::Es, 0.7),
    ("vale", Language::Es, 0.8),
    ("bueno", Language::Es, 0.8),
    ("sim", Language::Pt, 0.95),
    ("não", Language::Pt, 0.95),
    ("nao", Language::Pt, 0.85),
    ("obrigado", Language::Pt, 0.95),
    ("obrigada", Language::Pt, 0.95),
    ("olá", Language::Pt, 0.8),
    ("oi", Language::Pt, 0.8),
    ("tchau", Language::Pt, 0.9),
    ("valeu", Language::Pt, 0.9),
];

pub fn detect(text: &str) -> Detection {
    let normalized = normalize(text);
    if let Some((_, language, confidence)) = SHORT_REPLIES
        .iter()
        .find(|(reply, _, _)| *reply == normalized)
    {
        return Detection {
            language: *language,
            confidence: *confidence,
        };
    }
    if normalized.chars().filter(|c| c.is_alphabetic()).count() < MIN_LETTERS {
        return Detection::UNKNOWN;
    }
    detector::detect(text)
        .and_then(|(lang, confidence)| {
            let language = match lang {
                Lang::Eng => Language::En,
                Lang::Spa => Language::Es,
                Lang::Por => Language::Pt,
                _ => return None,
            };
            (confidence >= MIN_CONFIDENCE).then_some(Detection {
                language,
                confidence: round2(confidence),
            })
        })
        .unwrap_or(Detection::UNKNOWN)
}

/// Lower-cases, drops surrounding punctuation and emphasis, and folds inner whitespace.
fn normalize(text: &str) -> String {
    text.split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// A tenant's language preference and the signal it rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preference {
    pub language: Language,
    pub confidence: f64,
    pub at: String,
    pub message_id: String,
}

/// How much stronger an earlier signal must be to outweigh a more recent one.
pub const CLEARLY_STRONGER: f64 = 0.3;

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Keep the current preference; why, for the logs.
    Keep(&'static str),
    /// Store the new signal as the preference; `changed` when the language differs.
    Adopt { changed: bool, reason: &'static str },
}

/// The preference follows the most recent signal, unless that signal is unsure or an older
/// one was clearly stronger (a long sentence in Spanish outweighs a later "ok").
pub fn decide(current: Option<&Preference>, signal: Detection) -> Decision {
    if signal.language == Language::Unknown {
        return Decision::Keep("the new message's language is unknown");
    }
    match current {
        None => Decision::Adopt {
            changed: true,
            reason: "first signal",
        },
        Some(p) if p.language == signal.language => Decision::Adopt {
            changed: false,
            reason: "confirmed by the new message",
        },
        Some(p) if p.confidence - signal.confidence >= CLEARLY_STRONGER => {
            Decision::Keep("an earlier signal was clearly stronger")
        }
        Some(_) => Decision::Adopt {
            changed: true,
            reason: "the most recent signal wins",
        },
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lang(text: &str) -> Language {
        detect(text).language
    }

    #[test]
    fn the_short_replies_of_the_spec_hold() {
        assert_eq!(lang("Sí"), Language::Es);
        assert_eq!(lang("Si"), Language::Es);
        assert_eq!(lang("¡Sí!"), Language::Es);
        assert_eq!(lang("Sim"), Language::Pt);
        assert_eq!(lang("Yes"), Language::En);
        assert_eq!(lang("yes."), Language::En);
        assert_eq!(lang("Obrigado!"), Language::Pt);
        assert_eq!(lang("gracias"), Language::Es);
    }

    #[test]
    fn ordinary_sentences_are_detected() {
        let cases = [
            (
                "My sink is leaking again, can someone come take a look tomorrow?",
                Language::En,
            ),
            (
                "I already paid the rent for this month, please check your records.",
                Language::En,
            ),
            (
                "Mi fregadero está goteando otra vez, ¿pueden venir mañana a revisarlo?",
                Language::Es,
            ),
            (
                "Ya pagué la renta de este mes, por favor revisen sus registros.",
                Language::Es,
            ),
            (
                "A minha pia está vazando de novo, alguém pode vir amanhã dar uma olhada?",
                Language::Pt,
            ),
            (
                "Eu já paguei o aluguel deste mês, por favor verifiquem os registros.",
                Language::Pt,
            ),
        ];
        for (text, expected) in cases {
            let d = detect(text);
            assert_eq!(d.language, expected, "{text}");
            assert!(
                d.confidence >= MIN_CONFIDENCE && d.confidence <= 1.0,
                "{text}: {d:?}"
            );
        }
    }

    #[test]
    fn the_preference_follows_recent_signals_unless_an_older_one_was_clearly_stronger() {
        let pref = |language, confidence| Preference {
            language,
            confidence,
            at: "t".into(),
            message_id: "m".into(),
        };
        let signal = |language, confidence| Detection {
            language,
            confidence,
        };
        assert!(matches!(
            decide(None, signal(Language::Es, 0.5)),
            Decision::Adopt { changed: true, .. }
        ));
        assert!(matches!(
            decide(
                Some(&pref(Language::En, 0.9)),
                signal(Language::Unknown, 0.0)
            ),
            Decision::Keep(_)
        ));
        assert!(matches!(
            decide(Some(&pref(Language::En, 0.6)), signal(Language::Es, 0.9)),
            Decision::Adopt { changed: true, .. }
        ));
        assert!(matches!(
            decide(Some(&pref(Language::Es, 0.95)), signal(Language::Pt, 0.4)),
            Decision::Keep(_)
        ));
        assert!(matches!(
            decide(Some(&pref(Language::Es, 0.95)), signal(Language::Pt, 0.8)),
            Decision::Adopt { changed: true, .. }
        ));
        assert!(matches!(
            decide(Some(&pref(Language::Es, 0.5)), signal(Language::Es, 0.9)),
            Decision::Adopt { changed: false, .. }
        ));
    }

    #[test]
    fn unsure_texts_are_unknown_with_zero_confidence() {
        for text in ["ok", "no", "123456", "👍", "", "   ", "?!", "Apt 4B"] {
            assert_eq!(detect(text), Detection::UNKNOWN, "{text}");
        }
    }
}
