//! Strict `application/x-www-form-urlencoded` parsing. Lenient parsers pass a stray `%` or
//! invalid UTF-8 through silently; a webhook with either is malformed and is refused.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormError {
    #[error("the form body has an invalid percent-encoding")]
    BadPercentEncoding,
    #[error("the form body is not valid UTF-8")]
    InvalidUtf8,
}

/// Every parameter of a form body, in order, repeated keys kept.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    pub fn parse(body: &[u8]) -> Result<Self, FormError> {
        let pairs = body
            .split(|b| *b == b'&')
            .filter(|part| !part.is_empty())
            .map(|part| {
                let (key, value) = match part.iter().position(|b| *b == b'=') {
                    Some(i) => (&part[..i], &part[i + 1..]),
                    None => (part, &[][..]),
                };
                Ok((decode(key, true)?, decode(value, true)?))
            })
            .collect::<Result<_, FormError>>()?;
        Ok(Self { pairs })
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl std::fmt::Debug for Form {
    /// Values are message content and phone numbers: only the keys are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.pairs.iter().map(|(k, _)| k))
            .finish()
    }
}

/// Percent-decoding as in a URL path, where `+` is itself (a phone number's plus).
/// Percent-encodes everything but RFC 3986's unreserved characters (`+` is `%2B`, a space
/// `%20`), for a path segment or a query value.
pub fn percent_encode(raw: &str) -> String {
    encode_with(raw, "%20")
}

/// One value as `application/x-www-form-urlencoded` writes it, as Twilio sends forms: like
/// [`percent_encode`], but a space is `+`.
pub fn form_encode(raw: &str) -> String {
    encode_with(raw, "+")
}

/// A whole form body from its pairs, in order.
pub fn encode_pairs<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k.as_ref()), form_encode(v.as_ref())))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode_with(raw: &str, space: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push_str(space),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub fn percent_decode(raw: &str) -> Result<String, FormError> {
    decode(raw.as_bytes(), false)
}

fn decode(raw: &[u8], plus_is_space: bool) -> Result<String, FormError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' => {
                let hex = raw.get(i + 1..i + 3).ok_or(FormError::BadPercentEncoding)?;
                let byte = std::str::from_utf8(hex)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(FormError::BadPercentEncoding)?;
                out.push(byte);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| FormError::InvalidUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_and_decoding_round_trip() {
        for raw in ["+1 (415) 555-2671", "a&b=c", "ñ€", "plain-text_1.0~"] {
            assert_eq!(percent_decode(&percent_encode(raw)).unwrap(), raw);
        }
        assert_eq!(percent_encode("+1 415"), "%2B1%20415");
        assert_eq!(form_encode("+1 415"), "%2B1+415");
        let body = encode_pairs(&[("Body", "¿Sí? 100% & more"), ("From", "+14155552671")]);
        let form = Form::parse(body.as_bytes()).unwrap();
        assert_eq!(form.get("Body"), Some("¿Sí? 100% & more"));
        assert_eq!(form.get("From"), Some("+14155552671"));
    }

    #[test]
    fn plus_is_a_space_and_percent_escapes_decode() {
        let f = Form::parse(b"Body=Hola+mundo%21+%C2%BFqu%C3%A9%3F&From=%2B14155552671").unwrap();
        assert_eq!(f.get("Body"), Some("Hola mundo! ¿qué?"));
        assert_eq!(f.get("From"), Some("+14155552671"));
    }

    #[test]
    fn repeated_keys_and_empty_values_are_kept_in_order() {
        let f = Form::parse(b"a=1&b=&a=2&c").unwrap();
        assert_eq!(f.all("a").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(f.get("b"), Some(""));
        assert_eq!(f.get("c"), Some(""));
        assert_eq!(f.pairs().len(), 4);
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert_eq!(
            Form::parse(b"Body=100%").unwrap_err(),
            FormError::BadPercentEncoding
        );
        assert_eq!(
            Form::parse(b"Body=%zz").unwrap_err(),
            FormError::BadPercentEncoding
        );
        assert_eq!(
            Form::parse(b"Body=%e").unwrap_err(),
            FormError::BadPercentEncoding
        );
        assert_eq!(
            Form::parse(b"Body=%FF%FE").unwrap_err(),
            FormError::InvalidUtf8
        );
        assert_eq!(
            Form::parse(b"Body=\xff").unwrap_err(),
            FormError::InvalidUtf8
        );
    }

    #[test]
    fn path_decoding_keeps_plus() {
        assert_eq!(
            percent_decode("+1%20(415)%20555-2671").unwrap(),
            "+1 (415) 555-2671"
        );
        assert_eq!(percent_decode("%2B14155552671").unwrap(), "+14155552671");
        assert!(percent_decode("%zz").is_err());
    }

    #[test]
    fn debug_shows_keys_only() {
        let f = Form::parse(b"Body=secret&From=%2B14155552671").unwrap();
        let shown = format!("{f:?}");
        assert!(
            !shown.contains("secret") && !shown.contains("555"),
            "{shown}"
        );
    }
}
