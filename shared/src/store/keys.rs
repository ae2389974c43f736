//! The single table's key layout (see docs/architecture.md, "Data"): every prefix lives here,
//! and every item says what it is in `entity`, so nothing has to take a key apart to know.

use serde::{Deserialize, Serialize};

use crate::phone::{Channel, E164};
use crate::time::Timestamp;
use crate::twilio::MessageSid;

/// What an item is, written on every item as `entity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    Conversation,
    Message,
    SidGuard,
    Consent,
    Idempotency,
    PhoneTenant,
    Tenant,
    LanguagePreference,
    DispatchCheckpoint,
    BackfillCheckpoint,
    ApiKey,
    QuotaCounter,
    DataKey,
    ErasureAudit,
    Rule,
    RuleVersion,
    RuleActivity,
    RuleCap,
    Stats,
    Failure,
}

impl Entity {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Conversation => "conversation",
            Self::Message => "message",
            Self::SidGuard => "sid_guard",
            Self::Consent => "consent",
            Self::Idempotency => "idempotency",
            Self::PhoneTenant => "phone_tenant",
            Self::Tenant => "tenant",
            Self::LanguagePreference => "language_preference",
            Self::DispatchCheckpoint => "dispatch_checkpoint",
            Self::BackfillCheckpoint => "backfill_checkpoint",
            Self::ApiKey => "api_key",
            Self::QuotaCounter => "quota_counter",
            Self::DataKey => "data_key",
            Self::ErasureAudit => "erasure_audit",
            Self::Rule => "rule",
            Self::RuleVersion => "rule_version",
            Self::RuleActivity => "rule_activity",
            Self::RuleCap => "rule_cap",
            Self::Stats => "stats",
            Self::Failure => "failure",
        }
    }
}

pub const META: &str = "META";
pub const MESSAGE_PREFIX: &str = "MSG#";

pub fn conversation_pk(channel: Channel, phone: &E164) -> String {
    format!("CONV#{}#{}", channel.as_str(), phone.as_str())
}

/// Where an erased conversation's items go (see `store::erasure`): the conversation's own
/// id, never its number, so what is kept (counts, statuses) can no longer be found by the
/// number. Items keep their `sk` (`META`, `MSG#<ulid>`) and their `entity`.
pub const ERASED_PREFIX: &str = "ERASED#";

pub fn erased_pk(conversation_id: &str) -> String {
    format!("{ERASED_PREFIX}{conversation_id}")
}

/// Whether an item lives in an erased partition (its key is not a conversation's any more).
pub fn is_erased(pk: &str) -> bool {
    pk.starts_with(ERASED_PREFIX)
}

/// One erasure's audit entry: when, by which API key, a keyed pseudonym of the number and
/// how much was erased.
pub fn erasure_audit_pk(audit_id: &str) -> String {
    format!("ERASURE#{audit_id}")
}
pub const ERASURE_AUDIT_SK: &str = "AUDIT";

/// ULIDs sort by time, so a thread's messages come back in order from one Query.
pub fn message_sk(message_id: &str) -> String {
    format!("{MESSAGE_PREFIX}{message_id}")
}

/// GSI1 answers three lookups, each in partitions of its own: a message by its id, every
/// rule, and the inbox.
pub const GSI1: &str = "gsi1";

/// The message-id index (GSI1) key, for reading one message by its id.
pub fn message_gsi1pk(message_id: &str) -> String {
    format!("MSG#{message_id}")
}
pub const MESSAGE_GSI1SK: &str = "MSG";

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

/// An idempotency record, scoped to the API key that sent the request: two callers' keys
/// never collide.
pub fn idempotency_pk(api_key_id: &str, key: &str) -> String {
    format!("IDEM#{api_key_id}#{key}")
}
pub const IDEMPOTENCY_SK: &str = "IDEM";

pub fn phone_tenant_pk(phone: &E164) -> String {
    format!("PHONE#{}", phone.as_str())
}
pub const PHONE_TENANT_SK: &str = "TENANT";

pub fn tenant_pk(tenant_id: &str) -> String {
    format!("TENANT#{tenant_id}")
}
pub const TENANT_PROFILE_SK: &str = "PROFILE";
pub const TENANT_LANGUAGE_SK: &str = "LANGUAGE";

/// The pending-message index (GSI2): every outbound message that is not final sits in the
/// bucket of the minute it next needs looking at — released when scheduled or deferred,
/// checked for a lost job when queued or claimed. Each minute is split over
/// [`DUE_SHARDS`] partitions so the 09:00 of a busy morning is not one hot partition.
pub const DUE_INDEX: &str = "gsi2";
pub const DUE_SHARDS: u32 = 8;

pub fn due_gsi2pk(minute: Timestamp, shard: u32) -> String {
    format!("DUE#{}#{shard}", minute.minute_key())
}

/// Sorts a bucket by the instant, then the message.
pub fn due_gsi2sk(at: Timestamp, message_id: &str) -> String {
    format!("{at}#{message_id}")
}

/// A message's shard: ULIDs end in random characters, so the last one spreads them evenly.
pub fn due_shard(message_id: &str) -> u32 {
    message_id
        .bytes()
        .last()
        .map_or(0, |b| u32::from(b) % DUE_SHARDS)
}

/// The dispatcher's progress: the last minute whose buckets it has fully processed.
pub const DISPATCH_PK: &str = "DISPATCH";
pub const DISPATCH_SK: &str = "CHECKPOINT";

/// The inbound backfill's progress on one of Parley's numbers (as Twilio writes it in `To`,
/// `whatsapp:` included): each number is listed and checkpointed on its own.
pub fn backfill_pk(number: &str) -> String {
    format!("BACKFILL#{number}")
}
pub const BACKFILL_SK: &str = "CHECKPOINT";

/// Every API key in one partition: there are few, and `GET /keys` lists them with one Query.
pub const API_KEYS_PK: &str = "APIKEYS";
pub fn api_key_sk(key_id: &str) -> String {
    format!("KEY#{key_id}")
}
pub const API_KEY_SK_PREFIX: &str = "KEY#";

/// A key's usage counter for one window (`S#<unix second>` or `D#<UTC date>`).
pub fn quota_pk(key_id: &str) -> String {
    format!("QUOTA#{key_id}")
}
pub fn quota_second_sk(unix_second: i64) -> String {
    format!("S#{unix_second}")
}
pub fn quota_day_sk(date: &str) -> String {
    format!("D#{date}")
}

/// A data key of the field envelope, wrapped by KMS (written once per function instance).
pub fn data_key_pk(id: &str) -> String {
    format!("DEK#{id}")
}
pub const DATA_KEY_SK: &str = "DEK";

/// An event rule: its current version at `CURRENT`, every version kept at `V#<n>`.
pub fn rule_pk(rule_id: &str) -> String {
    format!("RULE#{rule_id}")
}
pub const RULE_CURRENT_SK: &str = "CURRENT";
pub fn rule_version_sk(version: u32) -> String {
    format!("V#{version:06}")
}
/// Every rule's current version is in one partition of GSI1, so the router loads them all
/// with one Query (there are tens, not millions).
pub const RULES_GSI1PK: &str = "RULES";

/// Every conversation's `META` sits in one partition of GSI1, sorted by its last message, so
/// the inbox (`GET /conversations`) is one Query, newest first. One partition takes ~1,000
/// writes a second, one per message in or out: far above a property manager's traffic (see
/// docs/architecture.md, "The inbox").
pub const CONVERSATIONS_GSI1PK: &str = "CONVS";

/// Hourly traffic counters (`GET /stats`, the console's dashboard): one partition per UTC
/// month, one item per hour (`{dd}T{hh}`), so any range of up to a month is one Query.
/// Failed outbound messages, one entry each (sort key `MSG#{ulid}`: newest made last), kept
/// by the stream processor for the console's "failed" list. One partition: failures are a
/// small share of traffic.
pub const FAILURES_PK: &str = "FAILED";
pub fn failure_sk(message_id: &str) -> String {
    message_sk(message_id)
}

pub const STATS_PREFIX: &str = "STATS#";
pub fn stats_pk(month: &str) -> String {
    format!("{STATS_PREFIX}{month}")
}
pub fn stats_sk(day: &str, hour: u8) -> String {
    format!("{day}T{hour:02}")
}

/// What a rule did with each event it matched, newest last (`{at}#{event digest}`).
pub fn rule_activity_pk(rule_id: &str) -> String {
    format!("RULEACT#{rule_id}")
}
pub fn rule_activity_sk(at: Timestamp, event_id: &str, outcome: &str) -> String {
    let digest = crate::digest::sha256_hex(format!("{event_id}|{outcome}").as_bytes());
    format!("{at}#{}", &digest[..16])
}

/// The dedupe record of a rule's business key is an idempotency record owned by the rule
/// (`IDEM#rule.<rule_id>#<digest of the key>`): one transaction writes it with the message,
/// and an erasure finds it like any other.
pub fn rule_dedupe_owner(rule_id: &str) -> String {
    format!("rule.{rule_id}")
}
pub fn rule_dedupe_key(dedupe_key: &str) -> String {
    crate::digest::sha256_hex(dedupe_key.as_bytes())
}

/// A rule's recent sends to one number, for its `cap`.
pub fn rule_cap_pk(rule_id: &str, phone: &E164) -> String {
    format!("RULECAP#{rule_id}#{}", phone.as_str())
}
pub const RULE_CAP_SK: &str = "CAP";

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

    #[test]
    fn due_buckets_name_the_minute_and_spread_over_every_shard() {
        let at = Timestamp::parse("2026-12-01T09:00:42.5Z").unwrap();
        assert_eq!(due_gsi2pk(at, 3), "DUE#2026-12-01T09:00#3");
        assert_eq!(due_gsi2sk(at, "01J"), "2026-12-01T09:00:42.500Z#01J");
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            seen.insert(due_shard(&ulid::Ulid::new().to_string()));
        }
        assert_eq!(seen.len(), DUE_SHARDS as usize);
    }
}
