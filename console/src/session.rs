//! Console sessions: an API key with the `read` scope (or `admin`) is exchanged once for a
//! signed, expiring cookie that names the key (never holds it), and every form carries a CSRF
//! token bound to that session. Both are HMACs under a key derived from the cursor key, so a
//! rotated secret signs everyone out.

use serde::{Deserialize, Serialize};

use parley::access::Scope;
use parley::time::Timestamp;

pub const COOKIE: &str = "parley_session";
/// A working day: an operator signs in in the morning.
pub const LIFETIME_SECONDS: i64 = 12 * 3600;
const SESSION_SCOPE: &str = "console-session";
const CSRF_SCOPE: &str = "console-csrf";

/// What a session cookie says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The API key signed in with: re-checked (revocation, scope) on every request.
    pub key_id: String,
    pub admin: bool,
    /// Unix seconds.
    pub expires: i64,
    /// Random, so two sessions of one key have different CSRF tokens.
    pub nonce: String,
}

impl Session {
    pub fn new(key_id: &str, admin: bool, now: Timestamp) -> Self {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).expect("the OS has randomness");
        Self {
            key_id: key_id.to_owned(),
            admin,
            expires: now.unix_seconds() + LIFETIME_SECONDS,
            nonce: hex(&nonce),
        }
    }

    /// The cookie value: `base64url(json).base64url(mac)`.
    pub fn seal(&self, key: &str) -> String {
        let payload = serde_json::to_vec(self).unwrap_or_default();
        parley::cursor::seal(&session_key(key), SESSION_SCOPE, &payload)
    }

    /// The session a cookie value holds, if it is genuine and unexpired.
    pub fn open(key: &str, value: &str, now: Timestamp) -> Option<Self> {
        let payload = parley::cursor::open(&session_key(key), SESSION_SCOPE, value)?;
        let session: Session = serde_json::from_slice(&payload).ok()?;
        (session.expires > now.unix_seconds()).then_some(session)
    }

    /// The token every form of this session carries.
    pub fn csrf_token(&self, key: &str) -> String {
        parley::cursor::seal(&session_key(key), CSRF_SCOPE, self.nonce.as_bytes())
    }

    /// Whether a form's token is this session's (compared in constant time by `cursor::open`).
    pub fn accepts_csrf(&self, key: &str, token: &str) -> bool {
        parley::cursor::open(&session_key(key), CSRF_SCOPE, token)
            .is_some_and(|nonce| nonce == self.nonce.as_bytes())
    }

    pub fn scope(&self) -> Scope {
        match self.admin {
            true => Scope::Admin,
            false => Scope::Read,
        }
    }
}

fn session_key(key: &str) -> String {
    format!("{SESSION_SCOPE}\n{key}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `Set-Cookie` value for a session: HttpOnly, SameSite=Strict, on /console only, and
/// Secure unless the console is served on localhost (the local stack is plain HTTP).
pub fn set_cookie(value: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE}={value}; Path=/console; Max-Age={LIFETIME_SECONDS}; HttpOnly; SameSite=Strict{secure}"
    )
}

/// The `Set-Cookie` value that signs out.
pub fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/console; Max-Age=0; HttpOnly; SameSite=Strict{secure}")
}

/// The session cookie's value in a `Cookie` header.
pub fn cookie_value(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    #[test]
    fn a_session_opens_under_its_key_until_it_expires() {
        let now = at("2026-11-30T09:00:00Z");
        let session = Session::new("01KEY", false, now);
        let sealed = session.seal("k");
        assert_eq!(Session::open("k", &sealed, now), Some(session.clone()));
        assert_eq!(Session::open("other", &sealed, now), None);
        assert_eq!(
            Session::open("k", &sealed, at("2026-11-30T21:00:01Z")),
            None
        );
        let (payload, mac) = sealed.split_once('.').unwrap();
        assert_eq!(Session::open("k", &format!("{payload}x.{mac}"), now), None);
        assert_eq!(Session::open("k", "junk", now), None);
    }

    #[test]
    fn csrf_tokens_belong_to_one_session() {
        let now = at("2026-11-30T09:00:00Z");
        let mine = Session::new("01KEY", true, now);
        let theirs = Session::new("01KEY", true, now);
        let token = mine.csrf_token("k");
        assert!(mine.accepts_csrf("k", &token));
        assert!(!theirs.accepts_csrf("k", &token));
        assert!(!mine.accepts_csrf("other", &token));
        assert!(!mine.accepts_csrf("k", ""));
    }

    #[test]
    fn cookies_are_strict_http_only_and_secure_off_localhost() {
        let set = set_cookie("v", true);
        for part in [
            "parley_session=v",
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/console",
        ] {
            assert!(set.contains(part), "{set}");
        }
        assert!(!set_cookie("v", false).contains("Secure"));
        assert_eq!(
            cookie_value("a=1; parley_session=abc.def; b=2"),
            Some("abc.def")
        );
        assert_eq!(cookie_value("a=1"), None);
    }
}
