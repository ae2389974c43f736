//! What Twilio checks on `POST …/Messages.json` before it accepts a message, including the
//! magic test numbers of Twilio's test credentials
//! (<https://www.twilio.com/docs/iam/test-credentials>), answered with the same codes.

use parley::twilio::Form;

use crate::error::ApiError;

/// Twilio's limit on a message body, in characters.
const MAX_BODY_CHARS: usize = 1600;

/// The parameters of a create request, as sent (empty values count as absent, as at Twilio).
#[derive(Debug, Clone, Default)]
pub(crate) struct CreateRequest {
    pub to: Option<String>,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub body: Option<String>,
    pub media_urls: Vec<String>,
    pub status_callback: Option<String>,
}

impl CreateRequest {
    pub fn from_form(form: &Form) -> Self {
        let present = |key: &str| form.get(key).filter(|v| !v.is_empty()).map(str::to_owned);
        Self {
            to: present("To"),
            from: present("From"),
            messaging_service_sid: present("MessagingServiceSid"),
            body: present("Body"),
            media_urls: form
                .all("MediaUrl")
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .collect(),
            status_callback: present("StatusCallback"),
        }
    }
}

/// A create request Twilio would accept.
#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    pub to: String,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub body: String,
    pub media_urls: Vec<String>,
    pub status_callback: Option<String>,
}

/// Twilio's checks, in Twilio's order: required parameters, then the sender, then the recipient.
pub(crate) fn check(req: &CreateRequest) -> Result<Accepted, ApiError> {
    let to = req
        .to
        .clone()
        .ok_or_else(|| ApiError::bad_request(21604, "A 'To' phone number is required."))?;
    if req.from.is_none() && req.messaging_service_sid.is_none() {
        return Err(ApiError::bad_request(
            21603,
            "A 'From' phone number is required.",
        ));
    }
    if req.body.is_none() && req.media_urls.is_empty() {
        return Err(ApiError::bad_request(21602, "Message body is required."));
    }
    let body = req.body.clone().unwrap_or_default();
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(ApiError::bad_request(
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        ));
    }
    if let Some(from) = &req.from {
        check_from(from)?;
    }
    check_to(&to, req.from.as_deref())?;
    Ok(Accepted {
        to,
        from: req.from.clone(),
        messaging_service_sid: req.messaging_service_sid.clone(),
        body,
        media_urls: req.media_urls.clone(),
        status_callback: req.status_callback.clone(),
    })
}

fn check_from(from: &str) -> Result<(), ApiError> {
    match without_channel(from) {
        "+15005550001" => Err(invalid_from(from)),
        "+15005550007" => Err(ApiError::bad_request(
            21606,
            format!(
                "The 'From' phone number provided ({from}) is not a valid message-capable \
                 Twilio phone number for this destination/account."
            ),
        )),
        "+15005550008" => Err(ApiError::bad_request(
            21611,
            "This 'From' number has exceeded the maximum number of queued messages",
        )),
        number if is_e164(number) || is_short_code(number) || is_alphanumeric_id(number) => Ok(()),
        _ => Err(invalid_from(from)),
    }
}

fn invalid_from(from: &str) -> ApiError {
    ApiError::bad_request(
        21212,
        format!(
            "The 'From' number {from} is not a valid phone number, shortcode, or alphanumeric \
             sender ID."
        ),
    )
}

fn check_to(to: &str, from: Option<&str>) -> Result<(), ApiError> {
    match without_channel(to) {
        "+15005550001" => Err(invalid_to(to)),
        "+15005550002" => Err(ApiError::bad_request(
            21612,
            format!(
                "The 'To' phone number: {to}, is not currently reachable using the 'From' \
                 phone number: {} via SMS.",
                from.unwrap_or("(Messaging Service)")
            ),
        )),
        "+15005550003" => Err(ApiError::bad_request(
            21408,
            format!(
                "Permission to send an SMS has not been enabled for the region indicated by \
                 the 'To' number: {to}."
            ),
        )),
        "+15005550004" => Err(ApiError::bad_request(
            21610,
            "Attempt to send to unsubscribed recipient",
        )),
        "+15005550009" => Err(ApiError::bad_request(
            21614,
            format!("'To' number {to} is not a valid mobile number"),
        )),
        number if is_e164(number) => Ok(()),
        _ => Err(invalid_to(to)),
    }
}

fn invalid_to(to: &str) -> ApiError {
    ApiError::bad_request(
        21211,
        format!("The 'To' number {to} is not a valid phone number."),
    )
}

/// `whatsapp:+1415…` is checked as `+1415…`: Parley sends WhatsApp through the same API.
fn without_channel(address: &str) -> &str {
    address
        .split_once(':')
        .map_or(address, |(_, number)| number)
}

fn is_e164(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len())
            && !digits.starts_with('0')
            && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

fn is_short_code(s: &str) -> bool {
    (5..=6).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_alphanumeric_id(s: &str) -> bool {
    (1..=11).contains(&s.len())
        && s.bytes().any(|b| b.is_ascii_alphabetic())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
}

/// How many SMS segments Twilio bills for `body`: GSM-7 when every character is in the GSM
/// alphabet (160 per single message, 153 per part), else UCS-2 (70, then 67 per part).
pub(crate) fn segments(body: &str) -> usize {
    const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                             ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    const GSM_EXTENDED: &str = "^{}\\[~]|€\u{c}";
    let gsm_units: Option<usize> = body
        .chars()
        .map(|c| {
            if GSM_BASIC.contains(c) {
                Some(1)
            } else if GSM_EXTENDED.contains(c) {
                Some(2)
            } else {
                None
            }
        })
        .sum();
    let (units, single, part) = match gsm_units {
        Some(units) => (units, 160, 153),
        None => (body.encode_utf16().count(), 70, 67),
    };
    if units <= single {
        1
    } else {
        units.div_ceil(part)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_counts_follow_gsm_and_ucs2_limits() {
        assert_eq!(segments(""), 1);
        assert_eq!(segments(&"a".repeat(160)), 1);
        assert_eq!(segments(&"a".repeat(161)), 2);
        assert_eq!(segments(&"a".repeat(306)), 2);
        assert_eq!(segments(&"a".repeat(307)), 3);
        assert_eq!(segments(&"é".repeat(160)), 1, "é is in the GSM alphabet");
        assert_eq!(
            segments(&"€".repeat(80)),
            1,
            "extension characters count twice"
        );
        assert_eq!(segments(&"€".repeat(81)), 2);
        assert_eq!(segments(&"ü¿ñ".repeat(10)), 1);
        assert_eq!(segments(&"ç".repeat(70)), 1, "ç is not GSM: UCS-2");
        assert_eq!(segments(&"ç".repeat(71)), 2);
        assert_eq!(segments("👋"), 1);
    }

    #[test]
    fn sender_and_recipient_formats() {
        assert!(is_e164("+14155552671"));
        assert!(!is_e164("14155552671"));
        assert!(!is_e164("+1415555267a"));
        assert!(is_short_code("12345"));
        assert!(is_alphanumeric_id("Parley"));
        assert!(!is_alphanumeric_id("123456789"));
        assert_eq!(without_channel("whatsapp:+14155552671"), "+14155552671");
    }
}
