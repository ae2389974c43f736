//! API keys: what a key may do, and the token a caller presents.
//!
//! A token is `prly_<id>_<secret>`: the id (a lowercase ULID) names the stored record, so a
//! request costs one `GetItem` (cached), never a scan; the secret is 32 random bytes, stored
//! only as its SHA-256 and compared in constant time. The token is shown once, at creation.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::time::Timestamp;

const TOKEN_PREFIX: &str = "prly_";
const SECRET_BYTES: usize = 32;

/// What a key may do. `admin` (rules, keys) includes the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Send,
    Read,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Send, Scope::Read, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Send => "send",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s.trim())
    }
}

/// Limits on one key; none means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// API requests per second (all routes), counted across every instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<u32>,
    /// Messages accepted per UTC day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_per_day: Option<u32>,
}

/// A stored key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub key_id: String,
    pub name: String,
    pub scopes: BTreeSet<Scope>,
    /// ISO 3166 regions messages may go to (`US`, `CA`); none: the deployment's default list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub countries: Option<Vec<String>>,
    #[serde(default)]
    pub quotas: Quotas,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
    /// SHA-256 of the token's secret part, hex. Never in an API answer (see [`KeyInfo`]).
    pub secret_sha256: String,
}

/// A key as the API shows it: everything but the digest.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyInfo<'a> {
    pub key_id: &'a str,
    pub name: &'a str,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Scope>))]
    pub scopes: &'a BTreeSet<Scope>,
    /// The only destination regions (ISO 3166 alpha-2); `null`: the deployment's default.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    pub countries: Option<&'a [String]>,
    pub quotas: &'a Quotas,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl ApiKey {
    pub fn info(&self) -> KeyInfo<'_> {
        KeyInfo {
            key_id: &self.key_id,
            name: &self.name,
            scopes: &self.scopes,
            countries: self.countries.as_deref(),
            quotas: &self.quotas,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
        }
    }

    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }

    /// Whether `secret` is this key's, in constant time.
    pub fn matches(&self, secret: &str) -> bool {
        bool::from(
            sha256_hex(secret)
                .as_bytes()
                .ct_eq(self.secret_sha256.as_bytes()),
        )
    }
}

/// A presented token, split into the id it names and the secret to check.
#[derive(PartialEq, Eq)]
pub struct Token<'a> {
    pub key_id: &'a str,
    pub secret: &'a str,
}

impl<'a> Token<'a> {
    /// `None` for anything not shaped like a Parley key token.
    pub fn parse(token: &'a str) -> Option<Self> {
        let rest = token.strip_prefix(TOKEN_PREFIX)?;
        let (key_id, secret) = rest.split_once('_')?;
        let valid_id = key_id.len() == 26 && key_id.bytes().all(|b| b.is_ascii_alphanumeric());
        (valid_id && !secret.is_empty()).then_some(Self { key_id, secret })
    }
}

/// What a new key is to be: the body of `POST /keys`, and `parley-local keys create`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// 1 to 100 characters.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 100))]
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Scope>, min_items = 1))]
    pub scopes: Vec<String>,
    /// ISO 3166 alpha-2 codes; absent: the deployment's default list.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub countries: Option<Vec<String>>,
    #[serde(default)]
    pub quotas: Quotas,
}

impl NewKey {
    /// The key to store (and its token, to show once), or every invalid field named.
    pub fn validate(
        &self,
        now: Timestamp,
    ) -> Result<(ApiKey, String), std::collections::BTreeMap<&'static str, String>> {
        let mut fields = std::collections::BTreeMap::new();
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            fields.insert("name", "1 to 100 characters".to_owned());
        }
        let scopes: Option<BTreeSet<Scope>> = self.scopes.iter().map(|s| Scope::parse(s)).collect();
        let scopes = match scopes {
            Some(scopes) if !scopes.is_empty() => scopes,
            _ => {
                fields.insert("scopes", "one or more of send, read, admin".to_owned());
                BTreeSet::new()
            }
        };
        let countries = self.countries.as_ref().map(|list| {
            list.iter()
                .map(|c| c.trim().to_ascii_uppercase())
                .collect::<Vec<_>>()
        });
        if countries.as_ref().is_some_and(|list| {
            list.is_empty()
                || list
                    .iter()
                    .any(|c| c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()))
        }) {
            fields.insert(
                "countries",
                "a non-empty list of ISO 3166 alpha-2 codes, e.g. [\"US\", \"CA\"]".to_owned(),
            );
        }
        if self.quotas.requests_per_second == Some(0) || self.quotas.messages_per_day == Some(0) {
            fields.insert(
                "quotas",
                "limits are at least 1 (leave one out for none)".to_owned(),
            );
        }
        if !fields.is_empty() {
            return Err(fields);
        }
        let issued = issue();
        let key = ApiKey {
            key_id: issued.key_id,
            name: name.to_owned(),
            scopes,
            countries,
            quotas: self.quotas.clone(),
            created_at: now,
            revoked_at: None,
            secret_sha256: issued.secret_sha256,
        };
        Ok((key, issued.token))
    }
}

/// A new key's id, token (to show once) and the digest to store.
pub struct Issued {
    pub key_id: String,
    pub token: String,
    pub secret_sha256: String,
}

pub fn issue() -> Issued {
    let mut secret = [0u8; SECRET_BYTES];
    getrandom::fill(&mut secret).expect("the OS random source is available");
    let secret = crate::digest::hex(&secret);
    let key_id = ulid::Ulid::new().to_string().to_lowercase();
    Issued {
        token: format!("{TOKEN_PREFIX}{key_id}_{secret}"),
        secret_sha256: sha256_hex(&secret),
        key_id,
    }
}

/// The digest a key's secret is stored as.
pub fn sha256_hex(s: &str) -> String {
    crate::digest::sha256_hex(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scopes: &[Scope], secret: &str) -> ApiKey {
        ApiKey {
            key_id: "01jabcdefghjkmnpqrstvwxyz0".into(),
            name: "test".into(),
            scopes: scopes.iter().copied().collect(),
            countries: None,
            quotas: Quotas::default(),
            created_at: Timestamp::now(),
            revoked_at: None,
            secret_sha256: sha256_hex(secret),
        }
    }

    #[test]
    fn an_issued_token_parses_back_to_its_id_and_matching_secret() {
        let issued = issue();
        let token = Token::parse(&issued.token).expect("parses");
        assert_eq!(token.key_id, issued.key_id);
        assert_eq!(sha256_hex(token.secret), issued.secret_sha256);
        assert_ne!(issue().token, issued.token, "random");
    }

    #[test]
    fn tokens_of_another_shape_are_not_parsed() {
        for t in [
            "dev-api-key",
            "prly_",
            "prly_short_secret",
            "prly_01jabcdefghjkmnpqrstvwxyz0_",
            "prly_01jabcdefghjkmnpqrstvw-yz0_abc",
        ] {
            assert!(Token::parse(t).is_none(), "{t}");
        }
    }

    #[test]
    fn admin_includes_every_scope_and_others_only_their_own() {
        let admin = key(&[Scope::Admin], "s");
        assert!(Scope::ALL.iter().all(|s| admin.allows(*s)));
        let send = key(&[Scope::Send], "s");
        assert!(send.allows(Scope::Send));
        assert!(!send.allows(Scope::Read));
        assert!(!send.allows(Scope::Admin));
    }

    #[test]
    fn a_new_key_names_every_invalid_field() {
        let bad: NewKey = serde_json::from_value(serde_json::json!({
            "name": " ", "scopes": ["send", "write"], "countries": ["usa"],
            "quotas": {"messages_per_day": 0}
        }))
        .unwrap();
        let fields = bad.validate(Timestamp::now()).unwrap_err();
        let named: Vec<_> = fields.keys().copied().collect();
        assert_eq!(named, ["countries", "name", "quotas", "scopes"]);

        let good: NewKey = serde_json::from_value(serde_json::json!({
            "name": "collections", "scopes": ["send"], "countries": ["us", "CA"]
        }))
        .unwrap();
        let (key, token) = good.validate(Timestamp::now()).unwrap();
        assert_eq!(
            key.countries.as_deref(),
            Some(&["US".to_owned(), "CA".to_owned()][..])
        );
        assert!(key.matches(Token::parse(&token).unwrap().secret));
    }

    #[test]
    fn only_the_right_secret_matches() {
        let k = key(&[Scope::Send], "right");
        assert!(k.matches("right"));
        assert!(!k.matches("wrong"));
        assert!(!k.matches(""));
    }
}
