//! Bearer-key authentication for every non-webhook route.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// Accepts `Authorization: Bearer <key>` when `<key>` is one of `keys`. Keys are compared as
/// SHA-256 digests in constant time, so neither a key's content nor its length leaks through
/// timing, and every configured key is always checked.
pub fn authorize(authorization: Option<&str>, keys: &[String]) -> Result<(), ApiError> {
    let presented = authorization
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or(ApiError::Unauthorized)?;
    let presented = Sha256::digest(presented.as_bytes());
    let mut matched = subtle::Choice::from(0);
    for key in keys.iter().filter(|k| !k.is_empty()) {
        matched |= Sha256::digest(key.as_bytes()).ct_eq(&presented);
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<String> {
        vec!["old-key".into(), "new-key".into()]
    }

    #[test]
    fn any_configured_key_is_accepted() {
        assert!(authorize(Some("Bearer new-key"), &keys()).is_ok());
        assert!(authorize(Some("Bearer old-key"), &keys()).is_ok());
    }

    #[test]
    fn everything_else_is_refused() {
        for header in [
            None,
            Some(""),
            Some("Bearer "),
            Some("new-key"),
            Some("Basic bmV3LWtleQ=="),
            Some("Bearer new-key2"),
            Some("Bearer NEW-KEY"),
        ] {
            assert!(
                matches!(authorize(header, &keys()), Err(ApiError::Unauthorized)),
                "{header:?}"
            );
        }
        assert!(
            authorize(Some("Bearer "), &[String::new()]).is_err(),
            "an empty key never matches"
        );
    }
}
