//! `X-Twilio-Signature` validation, as Twilio's helper libraries do it: HMAC-SHA1 over the
//! public URL followed by the sorted form parameters, base64-encoded. JSON bodies are signed over
//! the URL alone and bound to it by its `bodySHA256` query parameter.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use super::form::Form;

/// What Twilio signed besides the URL.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    Form(&'a [(String, String)]),
    Json(&'a [u8]),
}

/// The signature Twilio sends for `url` and form `params` under `token`.
pub fn compute(token: &str, url: &str, params: &[(String, String)]) -> String {
    let mac = sign(keyed(token), url, &signed_params(params));
    base64::engine::general_purpose::STANDARD.encode(mac)
}

/// HMAC-SHA1 under `token`, before any data: cloned for each URL a signature is checked against.
fn keyed(token: &str) -> Hmac<Sha1> {
    Hmac::<Sha1>::new_from_slice(token.as_bytes()).expect("HMAC accepts keys of any length")
}

/// The MAC of `url` followed by the sorted parameters, under the key `keyed` holds.
fn sign(keyed: Hmac<Sha1>, url: &str, signed: &[u8]) -> impl AsRef<[u8]> {
    keyed
        .chain_update(url.as_bytes())
        .chain_update(signed)
        .finalize()
        .into_bytes()
}

/// What Twilio signs after the URL: each parameter's name then its value, sorted.
fn signed_params(params: &[(String, String)]) -> Vec<u8> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_unstable();
    let mut signed = Vec::with_capacity(params.iter().map(|(k, v)| k.len() + v.len()).sum());
    for (key, value) in sorted {
        signed.extend_from_slice(key.as_bytes());
        signed.extend_from_slice(value.as_bytes());
    }
    signed
}

/// Hex SHA-256 of a JSON body, the value Twilio puts in `bodySHA256`.
pub fn body_sha256(body: &[u8]) -> String {
    crate::digest::sha256_hex(body)
}

/// True when `signature` is Twilio's for this request under any of `tokens` (current, then
/// previous during a rotation), for `url` with or without its default port, and with or
/// without Parley's connection-override fragment ([`super::overrides::WEBHOOK_OVERRIDES`]).
/// Every candidate is compared in constant time and all are tried, so timing reveals neither
/// which token nor which URL form matched.
///
/// Why both fragment forms: Twilio signs "the exact URL your application supplied"
/// (docs/usage/webhooks/webhooks-security); its overrides page does not say whether the
/// fragment is part of it, and it never reaches the server. Accepting the URL as configured
/// in Twilio's console (with the fragment) and as requested (without it) keeps the signature
/// valid either way, and adds no URL an attacker controls.
pub fn verify(tokens: &[&str], url: &str, payload: Payload<'_>, signature: &str) -> bool {
    let signed = match payload {
        Payload::Form(params) => signed_params(params),
        Payload::Json(body) => {
            if !body_hash_matches(url, body) {
                return false;
            }
            Vec::new()
        }
    };
    // A signature that is not a base64 HMAC-SHA1 cannot match any candidate; saying so at once
    // tells the sender only that its header is malformed.
    let Ok(claimed) = base64::engine::general_purpose::STANDARD.decode(signature) else {
        return false;
    };
    // The sorted parameters are built once, and each token's key schedule once: per candidate
    // only the URL and the parameters are hashed (docs/benchmarks.md, "Issue 13, session 11").
    let candidates = url_variants(url);
    let mut matched = subtle::Choice::from(0);
    for token in tokens {
        let keyed = keyed(token);
        for candidate in &candidates {
            let expected = sign(keyed.clone(), candidate, &signed);
            matched |= expected.as_ref().ct_eq(&claimed);
        }
    }
    matched.into()
}

fn body_hash_matches(url: &str, body: &[u8]) -> bool {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    let Ok(form) = Form::parse(query.as_bytes()) else {
        return false;
    };
    form.get("bodySHA256").is_some_and(|claimed| {
        body_sha256(body)
            .as_bytes()
            .ct_eq(claimed.to_ascii_lowercase().as_bytes())
            .into()
    })
}

/// The URL as configured, and the same URL with its port toggled: Twilio signs whichever form
/// it requested, and proxies add or drop the default port (`:443`, `:80`).
fn url_variants(url: &str) -> Vec<String> {
    let base = url.split_once('#').map_or(url, |(base, _)| base);
    let mut variants = port_variants(base);
    let with_fragment: Vec<String> = variants
        .iter()
        .map(|u| format!("{u}#{}", super::overrides::WEBHOOK_OVERRIDES))
        .collect();
    variants.extend(with_fragment);
    variants
}

fn port_variants(url: &str) -> Vec<String> {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return vec![url.to_owned()];
    };
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return vec![url.to_owned()];
    };
    let rest = url
        .find("://")
        .and_then(|i| url[i + 3..].find(['/', '?']).map(|j| &url[i + 3 + j..]))
        .unwrap_or("");
    let host = authority.host();
    let toggled = match (authority.port_u16(), scheme) {
        (Some(_), _) => format!("{scheme}://{host}{rest}"),
        (None, "https") => format!("{scheme}://{host}:443{rest}"),
        (None, "http") => format!("{scheme}://{host}:80{rest}"),
        (None, _) => return vec![url.to_owned()],
    };
    vec![url.to_owned(), toggled]
}

#[cfg(test)]
mod tests {
    //! External vectors: the values in Twilio's official helper libraries' test suites
    //! (twilio-python `tests/unit/test_request_validator.py`, mirrored in twilio-node and
    //! twilio-java). The token, URL, parameters and signatures are theirs, not computed here.
    use super::*;

    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const EXPECTED: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
    const BODY: &str = "{\"property\": \"value\", \"boolean\": true}";
    const BODY_HASH: &str = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";

    fn params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn twilio_vector_base_case() {
        assert_eq!(compute(TOKEN, URL, &params()), EXPECTED);
        assert!(verify(&[TOKEN], URL, Payload::Form(&params()), EXPECTED));
    }

    #[test]
    fn twilio_vector_parameter_order_does_not_matter() {
        let mut reversed = params();
        reversed.reverse();
        assert_eq!(compute(TOKEN, URL, &reversed), EXPECTED);
    }

    #[test]
    fn twilio_vector_repeated_keys() {
        let form = Form::parse(b"Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234").unwrap();
        assert_eq!(
            compute(TOKEN, URL, form.pairs()),
            "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        );
    }

    #[test]
    fn twilio_vector_body_hash() {
        assert_eq!(body_sha256(BODY.as_bytes()), BODY_HASH);
    }

    #[test]
    fn twilio_vector_json_body_with_body_sha256() {
        let url = format!("{URL}&bodySHA256={BODY_HASH}");
        let sig = "a9nBmqA0ju/hNViExpshrM61xv4=";
        assert!(verify(&[TOKEN], &url, Payload::Json(BODY.as_bytes()), sig));
        assert!(!verify(
            &[TOKEN],
            &url,
            Payload::Json(b"{\"property\": \"tampered\"}"),
            sig
        ));
        assert!(
            !verify(&[TOKEN], URL, Payload::Json(BODY.as_bytes()), sig),
            "hash param is required"
        );
    }

    #[test]
    fn twilio_vector_https_with_explicit_443() {
        // Twilio signed the URL with :443 while we know it without the port.
        assert!(verify(
            &[TOKEN],
            URL,
            Payload::Form(&params()),
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        ));
    }

    #[test]
    fn twilio_vector_http_with_explicit_80() {
        let url = URL.replace("https", "http");
        assert!(verify(
            &[TOKEN],
            &url,
            Payload::Form(&params()),
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        ));
    }

    #[test]
    fn twilio_vector_port_removed() {
        let https = URL.replace(".com", ".com:1234");
        assert!(verify(&[TOKEN], &https, Payload::Form(&params()), EXPECTED));
        let http = https.replace("https", "http");
        assert!(verify(
            &[TOKEN],
            &http,
            Payload::Form(&params()),
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
        ));
    }

    #[test]
    fn tampering_or_the_wrong_token_fails() {
        let mut tampered = params();
        tampered[2].1 = "9999".into();
        assert!(!verify(&[TOKEN], URL, Payload::Form(&tampered), EXPECTED));
        assert!(!verify(&["54321"], URL, Payload::Form(&params()), EXPECTED));
        assert!(!verify(&[TOKEN], URL, Payload::Form(&params()), ""));
        assert!(!verify(
            &[TOKEN],
            "https://other.com/myapp.php?foo=1&bar=2",
            Payload::Form(&params()),
            EXPECTED
        ));
    }

    #[test]
    fn a_signature_that_is_not_base64_or_not_a_sha1_mac_fails() {
        let form = Payload::Form(&params());
        assert!(!verify(&[TOKEN], URL, form, "not base64!"));
        // Valid base64 of the right MAC with a byte dropped, and with a byte added.
        let engine = base64::engine::general_purpose::STANDARD;
        let mac = engine.decode(EXPECTED).unwrap();
        assert!(!verify(&[TOKEN], URL, form, &engine.encode(&mac[..19])));
        assert!(!verify(
            &[TOKEN],
            URL,
            form,
            &engine.encode([&mac[..], &[0]].concat())
        ));
        assert!(verify(&[TOKEN], URL, form, &engine.encode(&mac)));
    }

    #[test]
    fn the_connection_override_fragment_signed_or_not_is_accepted() {
        let configured = super::super::overrides::with_overrides(URL);
        let signed_with = compute(TOKEN, &configured, &params());
        assert_ne!(signed_with, EXPECTED);
        assert!(verify(
            &[TOKEN],
            URL,
            Payload::Form(&params()),
            &signed_with
        ));
        assert!(verify(&[TOKEN], URL, Payload::Form(&params()), EXPECTED));
        // Another fragment is not ours: refused.
        let other = compute(TOKEN, &format!("{URL}#rc=5"), &params());
        assert!(!verify(&[TOKEN], URL, Payload::Form(&params()), &other));
    }

    #[test]
    fn previous_token_is_accepted_during_rotation() {
        assert!(verify(
            &["new-token", TOKEN],
            URL,
            Payload::Form(&params()),
            EXPECTED
        ));
    }
}
