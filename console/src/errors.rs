//! What Twilio's most common delivery error codes mean, in an operator's words, beside the
//! code on a failed message (https://www.twilio.com/docs/api/errors). Unknown codes show as
//! the code alone, with the link.

pub fn meaning(code: &str) -> Option<&'static str> {
    Some(match code {
        "21211" => "the 'To' number is not a valid phone number",
        "21408" => "sending to this region is not enabled on the account",
        "21610" => "the recipient has unsubscribed (replied STOP)",
        "21612" => "the 'To' number cannot receive SMS from this sender",
        "21614" => "the 'To' number is not a mobile number",
        "21617" => "the message is longer than 1,600 characters",
        "30001" => "Twilio's queue for the sender overflowed; try again later",
        "30002" => "the Twilio account is suspended",
        "30003" => "the handset is unreachable (off, or out of coverage)",
        "30004" => "the message was blocked (by the recipient or their carrier)",
        "30005" => "the number is unknown to its carrier (it may no longer exist)",
        "30006" => "a landline, or a carrier that cannot take SMS",
        "30007" => "the carrier filtered the message as spam or a violation",
        "30008" => "unknown error at the carrier",
        "30010" => "the price exceeded the maximum set for the message",
        "30032" => "the toll-free sender is not verified",
        "30034" => "the sender's 10DLC number is not registered",
        _ => return None,
    })
}

pub fn docs_url(code: &str) -> String {
    let code: String = code.chars().filter(char::is_ascii_digit).take(8).collect();
    format!("https://www.twilio.com/docs/api/errors/{code}")
}
