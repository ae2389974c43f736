//! The single table's key layout (see docs/architecture.md, "Data").

use crate::phone::{Channel, E164};
use crate::twilio::MessageSid;

pub const META: &str = "META";
pub const MESSAGE_PREFIX: &str = "MSG#";

pub fn conversation_pk(channel: Channel, phone: &E164) -> String {
    format!("CONV#{}#{}", channel.as_str(), phone.as_str())
}

/// ULIDs sort by time, so a thread's messages come back in order from one Query.
pub fn message_sk(message_id: &str) -> String {
    format!("{MESSAGE_PREFIX}{message_id}")
}

/// The message-id index (GSI1) key, for reading one message by its id.
pub fn message_gsi1pk(message_id: &str) -> String {
    format!("MSG#{message_id}")
}

pub fn sid_pk(sid: &MessageSid) -> String {
    format!("SID#{}", sid.as_str())
}
pub const SID_SK: &str = "SID";

pub fn consent_pk(phone: &E164) -> String {
    format!("CONSENT#{}", phone.as_str())
}
pub const CONSENT_SK: &str = "STATE";

/// The consent item's key for a conversation's key (`CONV#<channel>#<e164>`), as a send job
/// names only the conversation: the inverse of [`conversation_pk`] followed by [`consent_pk`].
pub fn consent_pk_of_conversation(conversation_pk: &str) -> Option<String> {
    let phone = conversation_pk.strip_prefix("CONV#")?.split_once('#')?.1;
    Some(format!("CONSENT#{phone}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conversation_key_names_its_consent_item() {
        let phone = crate::phone::Address::parse("+14155552671").unwrap();
        let pk = conversation_pk(phone.channel, &phone.e164);
        assert_eq!(
            consent_pk_of_conversation(&pk),
            Some(consent_pk(&phone.e164))
        );
        let whatsapp = crate::phone::Address::parse("whatsapp:+14155552671").unwrap();
        let pk = conversation_pk(whatsapp.channel, &whatsapp.e164);
        assert_eq!(
            consent_pk_of_conversation(&pk),
            Some(consent_pk(&phone.e164))
        );
        assert_eq!(consent_pk_of_conversation("SID#SM1"), None);
    }
}
