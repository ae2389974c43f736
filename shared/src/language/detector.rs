//! whatlang's combined method (alphabets and trigrams) for English, Spanish and Portuguese
//! only, computed as whatlang computes it but without its per-text hash map.
//!
//! whatlang counts a text's trigrams in a SipHash map and looks each of a language's 300
//! profile trigrams up in it: ~280 K instructions of a warm webhook invocation, a fifth of what
//! is not hashing (docs/benchmarks.md, "Issue 13, session 13"). Here the three profiles are one
//! sorted table built at init, and each of the text's trigrams is looked up once in it. Every
//! step that decides an answer — the lowercasing, the stop characters, the trigram ranks, the
//! distances, the alphabet scores and their weight, the orders the scores are sorted from and
//! the sorts themselves, the confidence — is whatlang 0.18's, and the tests hold the answers
//! (language and confidence, to the bit) equal to whatlang's on thousands of texts. The script
//! is still whatlang's (`detect_script`): a text whose main script is not Latin is none of ours.

use std::cmp::Reverse;
use std::sync::LazyLock;

use whatlang::{Lang, Script};

use super::profiles;

const LANGS: usize = 3;
/// whatlang's `LATIN_LANGS` order of the three, which its trigram scores start from.
const TRIGRAM_ORDER: [Lang; LANGS] = [Lang::Spa, Lang::Eng, Lang::Por];
/// Their alphabets (whatlang's `alphabets/latin.rs`).
const ALPHABETS: [(Lang, &str); LANGS] = [
    (Lang::Spa, "abcdefghijklmnopqrstuvwxyz¡¿áéíñóúü"),
    (Lang::Eng, "abcdefghijklmnopqrstuvwxyz"),
    (Lang::Por, "abcdefghijklmnopqrstuvwxyzàáâãçéêíóôõú"),
];
const MAX_TRIGRAM_DISTANCE: u32 = 300;
const MAX_TOTAL_DISTANCE: u32 = MAX_TRIGRAM_DISTANCE * MAX_TRIGRAM_DISTANCE;
const TEXT_TRIGRAMS_SIZE: usize = 600;
/// A rank meaning "not in this language's profile".
const ABSENT: u16 = u16::MAX;

type Trigram = [char; 3];

struct Tables {
    /// Every trigram of the three profiles, sorted, with its rank in each (or [`ABSENT`]), in
    /// [`TRIGRAM_ORDER`].
    ranks: Vec<(Trigram, [u16; LANGS])>,
    /// The three in whatlang's `Script::Latin.langs()` order, which its alphabet scores start
    /// from.
    alphabet_order: Vec<Lang>,
}

/// Built on the first detection: at init, by `warm::texts`.
static TABLES: LazyLock<Tables> = LazyLock::new(|| {
    let mut entries: Vec<(Trigram, usize, u16)> = Vec::with_capacity(3 * 300);
    for (index, profile) in [profiles::SPANISH, profiles::ENGLISH, profiles::PORTUGUESE]
        .iter()
        .enumerate()
    {
        let chars: Vec<char> = profile.chars().collect();
        for (rank, trigram) in chars.chunks_exact(3).enumerate() {
            entries.push(([trigram[0], trigram[1], trigram[2]], index, rank as u16));
        }
    }
    entries.sort_unstable();
    let mut ranks: Vec<(Trigram, [u16; LANGS])> = Vec::with_capacity(entries.len());
    for (trigram, index, rank) in entries {
        match ranks.last_mut() {
            Some((last, r)) if *last == trigram => r[index] = rank,
            _ => {
                let mut r = [ABSENT; LANGS];
                r[index] = rank;
                ranks.push((trigram, r));
            }
        }
    }
    let alphabet_order = Script::Latin
        .langs()
        .iter()
        .copied()
        .filter(|l| TRIGRAM_ORDER.contains(l))
        .collect();
    Tables {
        ranks,
        alphabet_order,
    }
});

/// The language and confidence whatlang's `Detector::with_allowlist([Eng, Spa, Por]).detect`
/// gives `text`, or none where it gives none or a language of another script.
pub(super) fn detect(text: &str) -> Option<(Lang, f64)> {
    if whatlang::detect_script(text) != Some(Script::Latin) {
        return None;
    }
    let tables = &*TABLES;
    let lowercase = text.to_lowercase();
    let (alphabet, count) = alphabet_scores(&lowercase, tables);
    let (trigram, unique_trigrams) = trigram_scores(&lowercase, tables);

    // combined::raw_detect
    let alphabet_weight = (-(count as f64 / 300.0) + 2.0 / 3.0).clamp(1.0 / 3.0, 2.0 / 3.0);
    let trigram_weight = 1.0 - alphabet_weight;
    let mut scores: Vec<(Lang, f64)> = alphabet
        .iter()
        .map(|&(lang, a)| {
            let t = trigram
                .iter()
                .find(|(l, _)| *l == lang)
                .map_or(0.0, |x| x.1);
            (lang, a * alphabet_weight + t * trigram_weight)
        })
        .collect();
    scores.sort_unstable_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Less));

    // combined::detect
    let (lang, first) = *scores.first()?;
    let confidence = match scores.get(1) {
        Some(&(_, second)) => confidence(first, second, unique_trigrams),
        None => 1.0,
    };
    Some((lang, confidence))
}

/// whatlang's `calculate_confidence`.
fn confidence(highest: f64, second: f64, count: usize) -> f64 {
    if highest == 0.0 {
        return 0.0;
    }
    if second == 0.0 {
        return highest;
    }
    let confident_rate = (3.0 / count as f64) + 0.015;
    let rate = (highest - second) / second;
    if rate > confident_rate {
        1.0
    } else {
        rate / confident_rate
    }
}

/// whatlang's stop characters: ASCII punctuation, digits, spaces and controls.
fn is_stop_char(ch: char) -> bool {
    matches!(ch, '\u{0000}'..='\u{0040}' | '\u{005B}'..='\u{0060}' | '\u{007B}'..='\u{007E}')
}

/// whatlang's `generic_alphabet_calculate_scores` for the three: each language's normalized
/// score, sorted, and the count of characters that are not stop characters.
fn alphabet_scores(text: &str, tables: &Tables) -> (Vec<(Lang, f64)>, usize) {
    let mut in_alphabet = [0usize; LANGS];
    let mut max_raw_score = 0usize;
    for ch in text.chars().filter(|c| !is_stop_char(*c)) {
        max_raw_score += 1;
        for (i, (_, alphabet)) in ALPHABETS.iter().enumerate() {
            if alphabet.contains(ch) {
                in_alphabet[i] += 2;
            }
        }
    }
    let mut raw: Vec<(Lang, usize)> = tables
        .alphabet_order
        .iter()
        .map(|&lang| {
            let i = ALPHABETS.iter().position(|(l, _)| *l == lang).unwrap_or(0);
            (lang, in_alphabet[i].saturating_sub(max_raw_score))
        })
        .collect();
    raw.sort_unstable_by_key(|(_, score)| Reverse(*score));
    let scores = raw
        .iter()
        .map(|&(lang, score)| (lang, score as f64 / max_raw_score as f64))
        .collect();
    (scores, max_raw_score)
}

/// whatlang's trigram method for the three: each language's score, sorted, and the count of
/// the text's distinct trigrams (at most 600) it ranked.
fn trigram_scores(text: &str, tables: &Tables) -> (Vec<(Lang, f64)>, usize) {
    // trigrams::utils::count: the text's trigrams, stop characters read as spaces, a space
    // before and after, none centred on a space beside another.
    let mut trigrams: Vec<Trigram> = Vec::with_capacity(text.len() + 1);
    let mut chars = text
        .chars()
        .map(|c| if is_stop_char(c) { ' ' } else { c })
        .chain(Some(' '));
    let mut c1 = ' ';
    // The chained space makes the first `next` whatlang's `unwrap` never fail.
    let mut c2 = chars.next().unwrap_or(' ');
    for c3 in chars {
        if !(c2 == ' ' && (c1 == ' ' || c3 == ' ')) {
            trigrams.push([c1, c2, c3]);
        }
        c1 = c2;
        c2 = c3;
    }
    // Distinct trigrams with their counts, most frequent first, then by trigram, descending
    // (whatlang's `(count, trigram)` order); a trigram's position in it is its rank.
    trigrams.sort_unstable();
    let mut counted: Vec<(u32, Trigram)> = Vec::new();
    for trigram in trigrams {
        match counted.last_mut() {
            Some((n, last)) if *last == trigram => *n += 1,
            _ => counted.push((1, trigram)),
        }
    }
    counted.sort_unstable_by(|a, b| b.cmp(a));
    counted.truncate(TEXT_TRIGRAMS_SIZE);
    let unique = counted.len() as u32;

    // calculate_distance, summed from the text's side: a profile trigram the text lacks costs
    // the maximum, one it has costs the difference of ranks.
    let mut distances = [MAX_TOTAL_DISTANCE; LANGS];
    for (position, (_, trigram)) in counted.iter().enumerate() {
        let Ok(found) = tables.ranks.binary_search_by_key(trigram, |(t, _)| *t) else {
            continue;
        };
        for (lang, &rank) in tables.ranks[found].1.iter().enumerate() {
            if rank != ABSENT {
                let distance = (position as i32 - i32::from(rank)).unsigned_abs();
                distances[lang] = distances[lang] - MAX_TRIGRAM_DISTANCE + distance;
            }
        }
    }
    let mut by_distance: Vec<(Lang, u32)> = TRIGRAM_ORDER
        .iter()
        .zip(distances)
        .map(|(&lang, mut total)| {
            if MAX_TRIGRAM_DISTANCE > unique {
                total -= (MAX_TRIGRAM_DISTANCE - unique) * MAX_TRIGRAM_DISTANCE;
            }
            (lang, total.clamp(0, MAX_TOTAL_DISTANCE))
        })
        .collect();
    by_distance.sort_unstable_by_key(|(_, distance)| *distance);
    let max_distance = unique * MAX_TRIGRAM_DISTANCE;
    let scores = by_distance
        .iter()
        .map(|&(lang, distance)| (lang, (max_distance - distance) as f64 / max_distance as f64))
        .collect();
    (scores, unique as usize)
}

#[cfg(test)]
mod tests {
    use whatlang::Detector;

    use super::*;

    /// What whatlang itself answers.
    fn whatlangs(text: &str) -> Option<(Lang, f64)> {
        static DETECTOR: LazyLock<Detector> =
            LazyLock::new(|| Detector::with_allowlist(vec![Lang::Eng, Lang::Spa, Lang::Por]));
        DETECTOR
            .detect(text)
            .filter(|info| TRIGRAM_ORDER.contains(&info.lang()))
            .map(|info| (info.lang(), info.confidence()))
    }

    const WORDS: &[&str] = &[
        // English
        "the",
        "rent",
        "is",
        "due",
        "on",
        "Friday",
        "please",
        "call",
        "me",
        "back",
        "thanks",
        "water",
        "leak",
        "kitchen",
        "sink",
        "tomorrow",
        "morning",
        "landlord",
        "payment",
        "late",
        "fee",
        "I'll",
        "send",
        "it",
        "tonight",
        "can't",
        "we",
        "need",
        "help",
        // Spanish
        "el",
        "alquiler",
        "vence",
        "viernes",
        "por",
        "favor",
        "llámame",
        "gracias",
        "fuga",
        "de",
        "agua",
        "cocina",
        "mañana",
        "pagaré",
        "esta",
        "noche",
        "necesitamos",
        "ayuda",
        "¿cuándo",
        "vienen?",
        "¡urgente!",
        "señor",
        "habitación",
        "también",
        "niño",
        // Portuguese
        "o",
        "aluguel",
        "vence",
        "sexta-feira",
        "obrigado",
        "vazamento",
        "água",
        "cozinha",
        "amanhã",
        "pagamento",
        "atrasado",
        "não",
        "posso",
        "hoje",
        "você",
        "ação",
        "também",
        "coração",
        "irmão",
        "está",
        "já",
        "à",
        "pôr",
        "informações",
        // Neither, numbers, punctuation, other scripts, emoji
        "OK",
        "123",
        "#4B",
        "$1,250.00",
        "—",
        "...",
        "Привет",
        "мир",
        "γεια",
        "σου",
        "日本",
        "🙂",
        "👍🏽",
        "Zürich",
        "naïve",
        "façade",
        "Ærø",
        "œuvre",
        "ß",
        "İstanbul",
        "ǅ",
    ];

    /// Deterministic texts from [`WORDS`] (a linear congruential generator).
    fn texts(n: usize) -> Vec<String> {
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |bound: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 33) as usize) % bound
        };
        (0..n)
            .map(|_| {
                let words = 1 + next(40);
                let bias = next(4); // 0–2: mostly one language's words; 3: any
                (0..words)
                    .map(|_| {
                        let pick = match (bias, next(5)) {
                            (3, _) | (_, 0) => next(WORDS.len()),
                            (b, _) => {
                                let band = [0, 29, 55, 80][b]..[29, 55, 80, 80][b];
                                band.start + next(band.len().max(1))
                            }
                        };
                        let word = WORDS[pick.min(WORDS.len() - 1)];
                        match next(7) {
                            0 => word.to_uppercase(),
                            1 => format!("{word},"),
                            _ => word.to_owned(),
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(if next(9) == 0 { "  " } else { " " })
            })
            .collect()
    }

    #[test]
    fn every_answer_is_whatlangs() {
        let fixed = [
            "",
            " ",
            "a",
            "¿",
            "Hello, the rent is due on Friday.",
            "Hola, ¿cuándo vienen a reparar la fuga de agua?",
            "Olá, não posso pagar hoje, só amanhã. Obrigado!",
            "Por favor, registros de pago",
            "Привет, как дела? Hello",
            "日本語のテキスト and some English words",
            "STOP",
            "1234567890 !!! ???",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ];
        let generated = texts(5_000);
        // Long texts too, past the 600 distinct trigrams whatlang ranks.
        let long: Vec<String> = generated.chunks(40).map(|c| c.join(". ")).collect();
        assert!(long
            .iter()
            .any(|t| trigram_scores(&t.to_lowercase(), &TABLES).1 == TEXT_TRIGRAMS_SIZE));
        let mut answered = [0usize; LANGS];
        for text in fixed
            .iter()
            .map(|t| t.to_string())
            .chain(generated)
            .chain(long)
        {
            let ours = detect(&text);
            let theirs = whatlangs(&text);
            assert_eq!(
                ours.map(|(l, c)| (l, c.to_bits())),
                theirs.map(|(l, c)| (l, c.to_bits())),
                "{text:?}"
            );
            if let Some((lang, _)) = ours {
                answered[TRIGRAM_ORDER.iter().position(|l| *l == lang).unwrap()] += 1;
            }
        }
        // The corpus reaches each language, so the comparison is not of Nones.
        assert!(answered.iter().all(|n| *n > 100), "{answered:?}");
    }

    #[test]
    fn the_tables_hold_every_profile_trigram_once() {
        let tables = &*TABLES;
        for (index, profile) in [profiles::SPANISH, profiles::ENGLISH, profiles::PORTUGUESE]
            .iter()
            .enumerate()
        {
            assert_eq!(profile.chars().count(), 900);
            let ranked = tables
                .ranks
                .iter()
                .filter(|(_, r)| r[index] != ABSENT)
                .count();
            assert_eq!(ranked, 300);
        }
        assert!(tables.ranks.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(tables.alphabet_order.len(), LANGS);
    }
}
