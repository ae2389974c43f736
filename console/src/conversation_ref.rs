//! A conversation in a console URL: `/console/conversations/{ref}`, where the ref is the
//! channel and number sealed under the session key's HMAC. URLs land in browser history and
//! access logs, so they never carry a number; a ref cannot be forged or edited into another
//! conversation's.

use parley::phone::{Channel, E164};

const SCOPE: &str = "console-conversation";

pub fn seal(key: &str, channel: Channel, phone: &E164) -> String {
    let payload = format!("{}\n{}", channel.as_str(), phone.as_str());
    parley::cursor::seal(key, SCOPE, payload.as_bytes())
}

pub fn open(key: &str, reference: &str) -> Option<(Channel, E164)> {
    let payload = String::from_utf8(parley::cursor::open(key, SCOPE, reference)?).ok()?;
    let (channel, phone) = payload.split_once('\n')?;
    let channel = match channel {
        "sms" => Channel::Sms,
        "whatsapp" => Channel::Whatsapp,
        _ => return None,
    };
    Some((channel, E164::stored(phone.to_owned()).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ref_names_its_conversation_and_only_under_its_key() {
        let phone = E164::parse("+14155552671").unwrap();
        let sealed = seal("k", Channel::Whatsapp, &phone);
        assert!(!sealed.contains("4155552671"));
        assert_eq!(open("k", &sealed), Some((Channel::Whatsapp, phone)));
        assert_eq!(open("other", &sealed), None);
        assert_eq!(open("k", "junk"), None);
    }
}
