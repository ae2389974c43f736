//! JSON paths into an event: where a rule finds its recipient or the date it is due.
//!
//! Only the singular subset of JSONPath (RFC 9535) is accepted: a path names at most one
//! value, so a rule can never fan one event out into many messages by accident. Names may
//! contain `-` in the dotted form (`$.detail.due-date`) because EventBridge's own keys do
//! (`detail-type`); anything else goes in brackets (`$['detail']['due date']`).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longer than any real path into an event; bounds what a rule stores and what errors echo.
const MAX_PATH_CHARS: usize = 256;

/// A singular JSON path such as `$.detail.items[0].phone`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JsonPath {
    original: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    /// Negative counts from the end, as in RFC 9535: `[-1]` is the last item.
    Index(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path:?} is not a JSON path: {message}")]
pub struct PathError {
    pub path: String,
    pub message: String,
}

impl JsonPath {
    /// `$`, then any number of `.name`, `['name']`, `["name"]` or `[index]`.
    /// Wildcards, recursive descent, slices, unions and filters are refused with a message
    /// that says so: each could select several values.
    pub fn parse(s: &str) -> Result<JsonPath, PathError> {
        let fail = |message: String| PathError {
            path: echo(s),
            message,
        };
        if s.chars().count() > MAX_PATH_CHARS {
            return Err(fail(format!("longer than {MAX_PATH_CHARS} characters")));
        }
        let segments = Parser::new(s).path().map_err(fail)?;
        Ok(JsonPath {
            original: s.to_owned(),
            segments,
        })
    }

    /// The value the path names, if the event has it. `null` is returned as `Some(Null)`:
    /// whether that counts as missing is the caller's call.
    pub fn select<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        self.segments
            .iter()
            .try_fold(value, |current, segment| match (segment, current) {
                (Segment::Key(key), Value::Object(map)) => map.get(key),
                (Segment::Index(i), Value::Array(items)) => index(items, *i),
                _ => None,
            })
    }

    pub fn as_str(&self) -> &str {
        &self.original
    }
}

fn index(items: &[Value], i: i64) -> Option<&Value> {
    let position = if i < 0 {
        items
            .len()
            .checked_sub(usize::try_from(i.unsigned_abs()).ok()?)?
    } else {
        usize::try_from(i).ok()?
    };
    items.get(position)
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

impl TryFrom<String> for JsonPath {
    type Error = PathError;

    fn try_from(s: String) -> Result<JsonPath, PathError> {
        JsonPath::parse(&s)
    }
}

impl From<JsonPath> for String {
    fn from(path: JsonPath) -> String {
        path.original
    }
}

impl std::str::FromStr for JsonPath {
    type Err = PathError;

    fn from_str(s: &str) -> Result<JsonPath, PathError> {
        JsonPath::parse(s)
    }
}

/// Paths are echoed in errors shown to rule authors; cap what we echo.
fn echo(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// A recursive-descent parser over the path's characters; errors are messages for
/// [`PathError::message`].
struct Parser<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

type Parsed<T> = Result<T, String>;

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Parser {
            chars: s.chars().peekable(),
        }
    }

    fn path(mut self) -> Parsed<Vec<Segment>> {
        if self.next() != Some('$') {
            return Err("must start with `$` (e.g. $.detail.tenant_id)".into());
        }
        let mut segments = Vec::new();
        while let Some(c) = self.next() {
            segments.push(match c {
                '.' => self.dotted()?,
                '[' => self.bracketed()?,
                other => return Err(format!("unexpected {other:?}; expected `.` or `[`")),
            });
        }
        Ok(segments)
    }

    /// After `.`: a name of letters, digits, `_` and `-`.
    fn dotted(&mut self) -> Parsed<Segment> {
        match self.peek() {
            Some('.') => return Err(refused("recursive descent (`..`) is")),
            Some('*') => return Err(refused("wildcards are")),
            _ => {}
        }
        let mut name = String::new();
        while let Some(c) = self.peek().filter(|&c| is_name_char(c)) {
            name.push(c);
            self.next();
        }
        match self.peek() {
            _ if !name.is_empty() => Ok(Segment::Key(name)),
            None => Err("ends with `.`; expected a name".into()),
            Some(c) => Err(format!(
                "unexpected {c:?} after `.`; names in the dotted form are letters, digits, \
                 `_` and `-` (use ['...'] for others)"
            )),
        }
    }

    /// After `[`: a quoted name or an integer index, then `]`.
    fn bracketed(&mut self) -> Parsed<Segment> {
        let segment = match self.peek() {
            Some(quote @ ('\'' | '"')) => {
                self.next();
                Segment::Key(self.quoted(quote)?)
            }
            Some('-' | '0'..='9') => Segment::Index(self.integer()?),
            Some('*') => return Err(refused("wildcards are")),
            Some('?') => return Err(refused("filters are")),
            Some(':') => return Err(refused("slices are")),
            Some(c) => return Err(format!("unexpected {c:?} after `[`")),
            None => return Err("ends with `[`".into()),
        };
        match self.next() {
            Some(']') => Ok(segment),
            Some(':') => Err(refused("slices are")),
            Some(',') => Err(refused("unions are")),
            Some(c) => Err(format!("unexpected {c:?}; expected `]`")),
            None => Err("missing `]`".into()),
        }
    }

    /// A name up to the closing `quote`; `\` escapes the next character.
    fn quoted(&mut self, quote: char) -> Parsed<String> {
        let mut name = String::new();
        loop {
            match self.next() {
                None => return Err(format!("unterminated name; expected a closing {quote}")),
                Some(c) if c == quote => return Ok(name),
                Some('\\') => match self.next() {
                    Some(escaped @ ('\\' | '\'' | '"')) => name.push(escaped),
                    _ => return Err("only \\\\, \\' and \\\" are escapes in a name".into()),
                },
                Some(c) => name.push(c),
            }
        }
    }

    fn integer(&mut self) -> Parsed<i64> {
        let mut digits = String::new();
        if self.peek() == Some('-') {
            digits.push('-');
            self.next();
        }
        while let Some(c) = self.peek().filter(char::is_ascii_digit) {
            digits.push(c);
            self.next();
        }
        digits
            .parse()
            .map_err(|_| format!("{digits:?} is not an index"))
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn next(&mut self) -> Option<char> {
        self.chars.next()
    }
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

fn refused(what: &str) -> String {
    format!("{what} not supported: a rule's path must name exactly one value")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Value {
        json!({
            "detail-type": "invoice.overdue",
            "detail": {
                "tenant_id": "t-1",
                "due-date": "2026-12-01",
                "due date": "spaced",
                "it's": "quoted",
                "items": [{"phone": "+14155550100"}, {"phone": "+14155550101"}],
                "nothing": null,
                "n": 7,
            }
        })
    }

    fn select(path: &str) -> Option<Value> {
        JsonPath::parse(path).unwrap().select(&event()).cloned()
    }

    #[test]
    fn dotted_names_including_dashes() {
        assert_eq!(select("$.detail.tenant_id"), Some(json!("t-1")));
        assert_eq!(select("$.detail-type"), Some(json!("invoice.overdue")));
        assert_eq!(select("$.detail.due-date"), Some(json!("2026-12-01")));
        assert_eq!(select("$.detail.n"), Some(json!(7)));
        assert_eq!(select("$"), Some(event()));
    }

    #[test]
    fn indexes_and_brackets() {
        assert_eq!(
            select("$.detail.items[0].phone"),
            Some(json!("+14155550100"))
        );
        assert_eq!(
            select("$.detail.items[1]['phone']"),
            Some(json!("+14155550101"))
        );
        assert_eq!(
            select("$.detail.items[-1].phone"),
            Some(json!("+14155550101"))
        );
        assert_eq!(select("$['detail']['due-date']"), Some(json!("2026-12-01")));
        assert_eq!(select(r#"$["detail"]["due date"]"#), Some(json!("spaced")));
        assert_eq!(select(r"$.detail['it\'s']"), Some(json!("quoted")));
    }

    #[test]
    fn missing_values_are_none_and_null_is_some() {
        for path in [
            "$.detail.absent",
            "$.detail.items[2]",
            "$.detail.items[-3]",
            "$.detail.tenant_id.deeper",
            "$.detail.items.phone",
            "$.detail[0]",
            "$.detail.n[0]",
        ] {
            assert_eq!(select(path), None, "{path}");
        }
        assert_eq!(select("$.detail.nothing"), Some(Value::Null));
    }

    #[test]
    fn wildcards_filters_and_other_multi_value_forms_are_refused() {
        let cases = [
            ("$.detail.*", "wildcards are not supported"),
            ("$.detail[*]", "wildcards are not supported"),
            ("$..phone", "recursive descent (`..`) is not supported"),
            ("$.items[?(@.x)]", "filters are not supported"),
            ("$.items[0:2]", "slices are not supported"),
            ("$.items[:2]", "slices are not supported"),
            ("$.items[0,1]", "unions are not supported"),
        ];
        for (path, want) in cases {
            let err = JsonPath::parse(path).unwrap_err();
            assert_eq!(err.path, path);
            assert!(err.message.starts_with(want), "{path}: {}", err.message);
            assert!(
                err.message.ends_with("must name exactly one value"),
                "{path}"
            );
        }
    }

    #[test]
    fn malformed_paths_say_why() {
        let cases = [
            ("detail.x", "must start with `$` (e.g. $.detail.tenant_id)"),
            ("", "must start with `$` (e.g. $.detail.tenant_id)"),
            ("$.", "ends with `.`; expected a name"),
            ("$detail", "unexpected 'd'; expected `.` or `[`"),
            ("$.a[", "ends with `[`"),
            ("$.a[0", "missing `]`"),
            ("$.a['x", "unterminated name; expected a closing '"),
            ("$.a[x]", "unexpected 'x' after `[`"),
            ("$.a[-]", "\"-\" is not an index"),
            ("$.a b", "unexpected ' '; expected `.` or `[`"),
            ("$.a[1 ]", "unexpected ' '; expected `]`"),
            (r"$['a\n']", "only \\\\, \\' and \\\" are escapes in a name"),
        ];
        for (path, want) in cases {
            let err = JsonPath::parse(path).unwrap_err();
            assert_eq!(err.message, want, "{path}");
        }
        let err = JsonPath::parse("$.a.$b").unwrap_err();
        assert!(err.message.starts_with("unexpected '$' after `.`"), "{err}");
        assert_eq!(
            JsonPath::parse("x").unwrap_err().to_string(),
            "\"x\" is not a JSON path: must start with `$` (e.g. $.detail.tenant_id)"
        );
        let long = format!("$.{}", "a".repeat(300));
        let err = JsonPath::parse(&long).unwrap_err();
        assert_eq!(err.message, "longer than 256 characters");
        assert_eq!(err.path.chars().count(), 65, "echo is capped");
    }

    #[test]
    fn serde_is_the_original_string() {
        let path = JsonPath::parse("$['detail'].items[0]").unwrap();
        assert_eq!(path.as_str(), "$['detail'].items[0]");
        assert_eq!(path.to_string(), "$['detail'].items[0]");
        let json = serde_json::to_value(&path).unwrap();
        assert_eq!(json, json!("$['detail'].items[0]"));
        assert_eq!(serde_json::from_value::<JsonPath>(json).unwrap(), path);
        let err = serde_json::from_value::<JsonPath>(json!("$.a[*]")).unwrap_err();
        assert!(err.to_string().contains("wildcards"), "{err}");
    }
}
