//! Signature Version 4 for a JSON-protocol request (`POST /`, `X-Amz-Target`), as the SDK's
//! `aws-sigv4` signs it: the headers below, the payload's SHA-256, the session token signed
//! too. For the one request Parley sends without the SDK (`store::direct`); a test checks the
//! signature against `aws-sigv4`'s for the same request.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::SystemTime;

use crate::digest::{hex, sha256_hex};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
pub(crate) const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// What signs: the identity Lambda gives the function.
pub(crate) struct Identity<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
}

/// The request being signed: `host` as the `Host` header will carry it (`name[:port]`, the
/// port only when it is not the scheme's default).
pub(crate) struct Request<'a> {
    pub host: &'a str,
    pub target: &'a str,
    pub body: &'a [u8],
}

/// The headers to send besides `Host`, `Content-Type` and `X-Amz-Target`.
pub(crate) struct Signed {
    pub amz_date: String,
    pub authorization: String,
}

/// Signs `request` for `service` in `region` at `now`.
pub(crate) fn sign(
    identity: &Identity<'_>,
    region: &str,
    service: &str,
    request: &Request<'_>,
    now: SystemTime,
) -> Signed {
    let amz_date = amz_date(now);
    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let (signed_headers, token_header) = match identity.session_token {
        Some(token) => (
            "content-type;host;x-amz-date;x-amz-security-token;x-amz-target",
            format!("x-amz-security-token:{token}\n"),
        ),
        None => ("content-type;host;x-amz-date;x-amz-target", String::new()),
    };
    let canonical = format!(
        "POST\n/\n\ncontent-type:{CONTENT_TYPE}\nhost:{host}\nx-amz-date:{amz_date}\n{token_header}x-amz-target:{target}\n\n{signed_headers}\n{payload}",
        host = request.host,
        target = request.target,
        payload = sha256_hex(request.body),
    );
    let to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let mut key = hmac(
        format!("AWS4{}", identity.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex(&hmac(&key, to_sign.as_bytes()));
    Signed {
        authorization: format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            identity.access_key_id
        ),
        amz_date,
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `20261201T130512Z`: the UTC time, to the second.
fn amz_date(now: SystemTime) -> String {
    let seconds = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// The proleptic Gregorian date of a count of days since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_sigv4::http_request::{
        sign as reference_sign, SignableBody, SignableRequest, SigningSettings,
    };
    use aws_sigv4::sign::v4::SigningParams;

    use super::*;

    /// The `Authorization` header `aws-sigv4` (the SDK's signer) writes for the same request.
    fn reference(identity: &Identity<'_>, request: &Request<'_>, now: SystemTime) -> String {
        let credentials = aws_credential_types::Credentials::new(
            identity.access_key_id,
            identity.secret_access_key,
            identity.session_token.map(str::to_owned),
            None,
            "test",
        );
        let identity = credentials.into();
        let params = SigningParams::builder()
            .identity(&identity)
            .region("eu-west-1")
            .name("dynamodb")
            .time(now)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let url = format!("https://{}/", request.host);
        let headers = [
            ("content-type", CONTENT_TYPE),
            ("host", request.host),
            ("x-amz-target", request.target),
        ];
        let signable = SignableRequest::new(
            "POST",
            &url,
            headers.into_iter(),
            SignableBody::Bytes(request.body),
        )
        .unwrap();
        let (instructions, _) = reference_sign(signable, &params).unwrap().into_parts();
        let (headers, _) = instructions.into_parts();
        headers
            .iter()
            .find(|h| h.name().eq_ignore_ascii_case("authorization"))
            .map(|h| h.value().to_owned())
            .unwrap()
    }

    #[test]
    fn the_signature_is_the_sdks() {
        let body = br#"{"TransactItems":[],"ClientRequestToken":"01J"}"#;
        let request = Request {
            host: "localhost:4566",
            target: "DynamoDB_20120810.TransactWriteItems",
            body,
        };
        let times = [
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_130_312),
            SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400), // 2000-02-29
            SystemTime::UNIX_EPOCH + Duration::from_secs(4_107_542_399), // 2100-02-28 23:59:59
        ];
        for token in [None, Some("a-session/token+with=signs")] {
            let identity = Identity {
                access_key_id: "AKIDEXAMPLE",
                secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                session_token: token,
            };
            for now in times {
                let ours = sign(&identity, "eu-west-1", "dynamodb", &request, now);
                assert_eq!(
                    ours.authorization,
                    reference(&identity, &request, now),
                    "token {token:?} at {now:?}"
                );
            }
        }
    }

    #[test]
    fn the_date_is_utc_to_the_second() {
        let at = |s: u64| amz_date(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "19700101T000000Z");
        assert_eq!(at(951_782_400), "20000229T000000Z");
        assert_eq!(at(1_796_130_312), "20261201T130512Z");
        assert_eq!(at(4_107_542_399), "21000228T235959Z");
    }
}
