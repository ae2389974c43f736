//! The patterns of libphonenumber's metadata, matched against a string of ASCII digits.
//!
//! The metadata writes its patterns in a small part of the regular-expression language: digits,
//! `\d`, classes of digits (`[2-9]`, `[02-46]`), groups (`(?:…)`, and capturing `(…)` in a
//! national prefix for parsing), alternation, the quantifiers `?`, `{n}`, `{n,m}` (and `*`, `+`,
//! `{n,}`, read for completeness), and `$`. That is all this module reads; [`Pattern::new`]
//! refuses anything else, and a test compiles every pattern of the metadata. A match is
//! leftmost-first, as a backtracking engine (and the `regex` crate, whose answers the
//! phonenumber crate gave) finds it: alternatives in order, quantifiers greedy.
//!
//! Why not a regular-expression crate: the `regex` crate and its engines were most of the
//! ~2.3 MB that phone numbers added to a function's binary, for inputs of at most 17 digits
//! matched against patterns with no loops to speak of.

/// A pattern that failed to compile: the metadata holds something this module does not read.
#[derive(Debug, PartialEq, Eq)]
pub struct Unsupported {
    pub pattern: String,
    pub at: usize,
}

/// A compiled pattern.
#[derive(Debug)]
pub struct Pattern {
    alternatives: Vec<Sequence>,
    groups: usize,
}

type Sequence = Vec<Piece>;

#[derive(Debug)]
struct Piece {
    atom: Atom,
    min: u32,
    max: Option<u32>,
}

#[derive(Debug)]
enum Atom {
    /// A set of digits, bit `d` for digit `d`.
    Digits(u16),
    /// `$`: the end of the input.
    End,
    Group {
        alternatives: Vec<Sequence>,
        capture: Option<usize>,
    },
}

/// The span of each group of a match (`0` the whole match), when it took part.
pub type Captures = Vec<Option<(usize, usize)>>;

const ANY_DIGIT: u16 = 0x3ff;

impl Pattern {
    /// Compiles `source`, ignoring whitespace (the metadata lays long patterns out on several
    /// lines, and the phonenumber crate compiled them with whitespace ignored).
    pub fn new(source: &str) -> Result<Self, Unsupported> {
        let bytes: Vec<u8> = source
            .bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let mut parser = Parser {
            bytes: &bytes,
            at: 0,
            groups: 0,
        };
        let unsupported = |at| Unsupported {
            pattern: source.to_owned(),
            at,
        };
        let alternatives = parser.alternatives().map_err(unsupported)?;
        if parser.at != bytes.len() {
            return Err(unsupported(parser.at));
        }
        Ok(Self {
            alternatives,
            groups: parser.groups,
        })
    }

    /// The leftmost-first match that starts at the beginning of `text`, if any: where it ends,
    /// and its groups. (A search anywhere in `text` whose match starts at 0 finds exactly this
    /// match, since a match at 0 is the leftmost.)
    pub fn at_start(&self, text: &[u8]) -> Option<(usize, Captures)> {
        let mut captures = vec![None; self.groups + 1];
        let mut end = None;
        alternatives(&self.alternatives, text, 0, &mut captures, &mut |at, _| {
            end = Some(at);
            true
        });
        let end = end?;
        captures[0] = Some((0, end));
        Some((end, captures))
    }

    /// Whether some start of `text` (possibly all of it) matches.
    pub fn matches_start(&self, text: &[u8]) -> bool {
        let mut captures = vec![None; self.groups + 1];
        alternatives(&self.alternatives, text, 0, &mut captures, &mut |_, _| true)
    }
}

/// What to do once a part has matched up to a position: match the rest, and say whether it did.
type Next<'a> = dyn FnMut(usize, &mut Captures) -> bool + 'a;

fn alternatives(
    options: &[Sequence],
    text: &[u8],
    at: usize,
    captures: &mut Captures,
    next: &mut Next<'_>,
) -> bool {
    options
        .iter()
        .any(|sequence| pieces(sequence, text, at, captures, next))
}

fn pieces(
    sequence: &[Piece],
    text: &[u8],
    at: usize,
    captures: &mut Captures,
    next: &mut Next<'_>,
) -> bool {
    match sequence.split_first() {
        None => next(at, captures),
        Some((piece, rest)) => repeat(piece, 0, text, at, captures, &mut |at, captures| {
            pieces(rest, text, at, captures, next)
        }),
    }
}

/// `piece` matched `count` times so far, up to `at`: greedily once more, else stop here.
fn repeat(
    piece: &Piece,
    count: u32,
    text: &[u8],
    at: usize,
    captures: &mut Captures,
    next: &mut Next<'_>,
) -> bool {
    let enough = count >= piece.min;
    if piece.max.is_none_or(|max| count < max) {
        let again = atom(&piece.atom, text, at, captures, &mut |after, captures| {
            // An empty match once the minimum is met would repeat forever.
            !(after == at && enough) && repeat(piece, count + 1, text, after, captures, next)
        });
        if again {
            return true;
        }
    }
    enough && next(at, captures)
}

fn atom(atom: &Atom, text: &[u8], at: usize, captures: &mut Captures, next: &mut Next<'_>) -> bool {
    match atom {
        Atom::Digits(set) => text
            .get(at)
            .filter(|b| b.is_ascii_digit() && set & (1 << (*b - b'0')) != 0)
            .is_some_and(|_| next(at + 1, captures)),
        Atom::End => at == text.len() && next(at, captures),
        Atom::Group {
            alternatives: options,
            capture: None,
        } => alternatives(options, text, at, captures, next),
        Atom::Group {
            alternatives: options,
            capture: Some(group),
        } => {
            let start = at;
            alternatives(options, text, at, captures, &mut |end, captures| {
                let before = captures[*group].replace((start, end));
                next(end, captures) || {
                    captures[*group] = before;
                    false
                }
            })
        }
    }
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
    groups: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        self.at += usize::from(found);
        found
    }

    fn alternatives(&mut self) -> Result<Vec<Sequence>, usize> {
        let mut options = vec![self.sequence()?];
        while self.eat(b'|') {
            options.push(self.sequence()?);
        }
        Ok(options)
    }

    fn sequence(&mut self) -> Result<Sequence, usize> {
        let mut sequence = Vec::new();
        while !matches!(self.peek(), None | Some(b'|' | b')')) {
            let atom = self.atom()?;
            let (min, max) = self.quantifier()?;
            sequence.push(Piece { atom, min, max });
        }
        Ok(sequence)
    }

    fn atom(&mut self) -> Result<Atom, usize> {
        let at = self.at;
        let byte = self.bytes[at];
        self.at += 1;
        match byte {
            digit @ b'0'..=b'9' => Ok(Atom::Digits(1 << (digit - b'0'))),
            b'\\' if self.eat(b'd') => Ok(Atom::Digits(ANY_DIGIT)),
            b'[' => self.class(),
            b'$' => Ok(Atom::End),
            b'(' => {
                let capture = match self.eat(b'?') {
                    true if self.eat(b':') => None,
                    true => return Err(self.at),
                    false => {
                        self.groups += 1;
                        Some(self.groups)
                    }
                };
                let alternatives = self.alternatives()?;
                match self.eat(b')') {
                    true => Ok(Atom::Group {
                        alternatives,
                        capture,
                    }),
                    false => Err(self.at),
                }
            }
            _ => Err(at),
        }
    }

    /// A class of digits, after its `[`: digits, `\d` and ranges, no negation.
    fn class(&mut self) -> Result<Atom, usize> {
        let mut set = 0u16;
        loop {
            let at = self.at;
            match self.peek() {
                Some(b']') if at > 0 && set != 0 => {
                    self.at += 1;
                    return Ok(Atom::Digits(set));
                }
                Some(b'\\') => {
                    self.at += 1;
                    if !self.eat(b'd') {
                        return Err(self.at);
                    }
                    set |= ANY_DIGIT;
                }
                Some(low @ b'0'..=b'9') => {
                    self.at += 1;
                    let high = match self.peek() {
                        Some(b'-') => match self.bytes.get(self.at + 1) {
                            Some(high @ b'0'..=b'9') if *high >= low => {
                                self.at += 2;
                                *high
                            }
                            _ => return Err(self.at),
                        },
                        _ => low,
                    };
                    for digit in low..=high {
                        set |= 1 << (digit - b'0');
                    }
                }
                _ => return Err(at),
            }
        }
    }

    fn quantifier(&mut self) -> Result<(u32, Option<u32>), usize> {
        let quantifier = match self.peek() {
            Some(b'?') => (0, Some(1)),
            Some(b'*') => (0, None),
            Some(b'+') => (1, None),
            Some(b'{') => {
                self.at += 1;
                let min = self.number()?;
                let max = match self.eat(b',') {
                    true if self.peek() == Some(b'}') => None,
                    true => Some(self.number()?),
                    false => Some(min),
                };
                if self.peek() != Some(b'}') || max.is_some_and(|max| max < min) {
                    return Err(self.at);
                }
                (min, max)
            }
            _ => return Ok((1, Some(1))),
        };
        self.at += 1;
        if matches!(self.peek(), Some(b'?' | b'+')) {
            // A lazy or possessive quantifier: not in the metadata, and not read here.
            return Err(self.at);
        }
        Ok(quantifier)
    }

    fn number(&mut self) -> Result<u32, usize> {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        std::str::from_utf8(&self.bytes[start..self.at])
            .ok()
            .and_then(|digits| digits.parse().ok())
            .ok_or(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_start(pattern: &str, text: &str) -> Option<usize> {
        Pattern::new(pattern)
            .unwrap()
            .at_start(text.as_bytes())
            .map(|(end, _)| end)
    }

    #[test]
    fn alternatives_are_tried_in_order_and_quantifiers_are_greedy() {
        assert_eq!(at_start("1|12", "123"), Some(1));
        assert_eq!(at_start("12|1", "123"), Some(2));
        assert_eq!(at_start(r"\d{2,4}", "123456"), Some(4));
        assert_eq!(at_start(r"0?(?:1\d)?", "0145"), Some(3));
        assert_eq!(at_start(r"[2-9]\d{2}", "199"), None);
        assert_eq!(at_start(r"[02-46]\d", "35"), Some(2));
        assert_eq!(at_start(r"([457]\d{6})$|1", "4123456"), Some(7));
        assert_eq!(at_start(r"([457]\d{6})$|1", "41234567"), None);
        assert_eq!(at_start(r"([457]\d{6})$|1", "14123456"), Some(1));
        // Backtracking into an earlier choice when a later part fails.
        assert_eq!(at_start(r"(?:1|12)3", "123"), Some(3));
        assert_eq!(at_start(r"\d{1,3}5", "1235"), Some(4));
    }

    #[test]
    fn groups_capture_the_match_that_succeeded() {
        let pattern = Pattern::new(r"0(?:(11|2[2-4])(\d{3}))?").unwrap();
        let (end, captures) = pattern.at_start(b"0231234").unwrap();
        assert_eq!(end, 6);
        assert_eq!(captures, vec![Some((0, 6)), Some((1, 3)), Some((3, 6))]);
        // The optional group did not take part.
        let (end, captures) = pattern.at_start(b"09").unwrap();
        assert_eq!((end, captures), (1, vec![Some((0, 1)), None, None]));
    }

    #[test]
    fn whitespace_is_ignored_and_anything_else_is_refused() {
        assert_eq!(at_start(" 1 (?: 2 |\n 3 ) ", "13"), Some(2));
        for (unsupported, at) in [
            ("a", 0),
            ("(?=1)", 2),
            ("[^1]", 1),
            ("1{2", 3),
            ("1{3,2}", 5),
            ("(1", 2),
            ("1)", 1),
            ("1??", 2),
            ("[]", 1),
        ] {
            assert_eq!(
                Pattern::new(unsupported).unwrap_err(),
                Unsupported {
                    pattern: unsupported.to_owned(),
                    at
                },
                "{unsupported}"
            );
        }
    }

    #[test]
    fn matching_a_start_is_not_matching_the_whole() {
        let pattern = Pattern::new(r"1\d").unwrap();
        assert!(pattern.matches_start(b"123"));
        assert!(!pattern.matches_start(b"1"));
        assert!(!pattern.matches_start(b"213"));
        assert!(Pattern::new("").unwrap().matches_start(b"9"));
    }
}
