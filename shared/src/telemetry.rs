//! Logging set-up and the keyed pseudonyms that stand for phone numbers in logs.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tracing_subscriber::EnvFilter;

use crate::phone::E164;

/// JSON logs on stdout (what CloudWatch and `AWS_LAMBDA_LOG_FORMAT=JSON` expect), filtered by
/// `RUST_LOG` (default `info`). Safe to call more than once.
pub fn init() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Turns a phone number into a stable, non-reversible token for logs: the same number gives the
/// same pseudonym under the same key, so a thread can be followed without the number.
#[derive(Clone)]
pub struct Pseudonymizer {
    key: Vec<u8>,
}

impl Pseudonymizer {
    pub fn new(key: &str) -> Self {
        Self {
            key: key.as_bytes().to_vec(),
        }
    }

    /// `p_` and 16 base32 letters (80 bits). Base32 keeps long digit runs out of the logs, so a
    /// pseudonym can never be mistaken for (or audited as) a phone number.
    pub fn pseudonym(&self, number: &E164) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts keys of any length");
        mac.update(number.as_str().as_bytes());
        let digest = mac.finalize().into_bytes();
        format!("p_{}", base32(&digest[..10]))
    }
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer(<redacted>)")
    }
}

fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_keyed_and_contain_no_digits_of_the_number() {
        let n = E164::parse("+14155552671").unwrap();
        let m = E164::parse("+14155552672").unwrap();
        let a = Pseudonymizer::new("key-a");
        let p = a.pseudonym(&n);
        assert_eq!(p, a.pseudonym(&n));
        assert_ne!(p, a.pseudonym(&m));
        assert_ne!(p, Pseudonymizer::new("key-b").pseudonym(&n));
        assert_eq!(p.len(), 18);
        assert!(!p.contains("555"));
    }
}
