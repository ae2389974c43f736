//! Pagination cursors: `base64url(position).base64url(mac)`, where the MAC (HMAC-SHA-256, 16
//! bytes) covers a scope and the position, so a cursor is opaque, unforgeable, and valid only
//! for the listing that issued it (a conversation's partition, the queue). Every list route
//! seals and opens its cursors here.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn tag(key: &str, scope: &str, position: &[u8]) -> [u8; 16] {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(scope.as_bytes());
    mac.update(b"\n");
    mac.update(position);
    let mut out = [0; 16];
    out.copy_from_slice(&mac.finalize().into_bytes()[..16]);
    out
}

/// A cursor for `position` in the listing `scope`.
pub fn seal(key: &str, scope: &str, position: &[u8]) -> String {
    format!(
        "{}.{}",
        B64.encode(position),
        B64.encode(tag(key, scope, position))
    )
}

/// The position a cursor sealed for `scope` under `key` holds; `None` for anything else
/// (malformed, forged, or another listing's). Compared in constant time.
pub fn open(key: &str, scope: &str, cursor: &str) -> Option<Vec<u8>> {
    let (position, mac) = cursor.split_once('.')?;
    let position = B64.decode(position).ok()?;
    let mac = B64.decode(mac).ok()?;
    bool::from(tag(key, scope, &position).ct_eq(&mac)).then_some(position)
}

/// A cursor for a DynamoDB page position (`LastEvaluatedKey`, all of whose keys are strings)
/// in the listing `scope`.
pub fn seal_page_key(key: &str, scope: &str, position: &crate::store::PageKey) -> String {
    let strings: std::collections::BTreeMap<&str, &str> = position
        .iter()
        .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.as_str(), v.as_str())))
        .collect();
    seal(
        key,
        scope,
        &serde_json::to_vec(&strings).unwrap_or_default(),
    )
}

/// The page position a cursor sealed by [`seal_page_key`] for `scope` holds.
pub fn open_page_key(key: &str, scope: &str, cursor: &str) -> Option<crate::store::PageKey> {
    let payload = open(key, scope, cursor)?;
    let strings: std::collections::HashMap<String, String> =
        serde_json::from_slice(&payload).ok()?;
    Some(
        strings
            .into_iter()
            .map(|(k, v)| (k, aws_sdk_dynamodb::types::AttributeValue::S(v)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_opens_only_under_its_key_and_scope() {
        let sealed = seal("k", "CONV#sms#+1", b"MSG#01ABC");
        assert_eq!(open("k", "CONV#sms#+1", &sealed).unwrap(), b"MSG#01ABC");
        assert!(open("k", "CONV#sms#+2", &sealed).is_none());
        assert!(open("other", "CONV#sms#+1", &sealed).is_none());
        let (position, mac) = sealed.split_once('.').unwrap();
        let forged = format!("{}.{mac}", B64.encode(b"MSG#01ZZZ"));
        assert!(open("k", "CONV#sms#+1", &forged).is_none());
        assert!(open("k", "CONV#sms#+1", position).is_none());
        for junk in ["", ".", "a.b", "!!!.???", "%", "..", "YQ.YQ.YQ"] {
            assert!(open("k", "CONV#sms#+1", junk).is_none(), "{junk}");
        }
    }
}
