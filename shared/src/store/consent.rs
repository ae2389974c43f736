//! A number's consent item (`CONSENT#{e164}` / `STATE`), kept small however often it changes.
//!
//! An inbound keyword first tries a write that needs no read ([`optimistic_consent_write`]):
//! an opt-out appends to `history` on condition that the number is not opted out and the
//! history is not full; an opt-in only checks that the number is not opted out. Those are the
//! common cases (a first STOP; a "Yes" from a subscribed tenant), and cost no extra request.
//! When the condition fails, DynamoDB returns the item (`ReturnValuesOnConditionCheckFailure`),
//! and the write becomes a read-modify-write under optimistic concurrency ([`consent_write`]):
//! the new item is decided from the item as returned or read (strongly consistent), and the
//! write is conditional on the item's `version` being that one (or on there being no item). So:
//!
//! - a keyword that does not change the state (STOP while opted out, START while opted in)
//!   writes nothing: its transaction only checks the version, and `history` does not grow;
//! - a change appends to `history` and drops the oldest entries beyond [`HISTORY_CAP`]: the
//!   whole list is written, which DynamoDB's update expressions could not trim on their own;
//! - two writers of one number cannot both decide on the same old state: the loser's condition
//!   fails, and it reads again.

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use serde_dynamo::to_attribute_value;

use super::items::{Consent, ConsentChange};
use super::{keys, s, Store, StoreError, TxError};
use crate::phone::E164;

/// The consent changes a number's item keeps, newest last (about 140 bytes each).
pub const HISTORY_CAP: usize = 20;

/// How often a consent write is decided again after another writer changed the item first.
pub(crate) const CONSENT_ATTEMPTS: u32 = 8;

/// What a consent keyword did to the number's consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentOutcome {
    /// The message is no opt-out or opt-in (HELP, or no keyword): consent was not involved.
    Untouched,
    /// The state changed (or, for a duplicate, the first delivery of this message changed it).
    Changed,
    /// The number was already in the state the keyword asks for: nothing was written.
    Unchanged,
}

/// The transaction entry that moves `current` (as read; `None`: no item) to `change`, and
/// whether it changes the state. Conditional on the item still being as read.
pub(crate) fn consent_write(
    table: &str,
    phone: &E164,
    current: Option<&Consent>,
    change: &ConsentChange,
) -> Result<(TransactWriteItem, bool), StoreError> {
    let (condition, version) = match current {
        None => ("attribute_not_exists(pk)", None),
        // Written before the item had a version: never written with version 0 since.
        Some(c) if c.version == 0 => ("attribute_not_exists(version)", None),
        Some(c) => ("version = :version", Some(c.version)),
    };
    let was_opted_out = current.is_some_and(|c| c.opted_out);
    if was_opted_out == change.opted_out {
        let mut check = ConditionCheck::builder()
            .table_name(table)
            .key("pk", s(keys::consent_pk(phone)))
            .key("sk", s(keys::CONSENT_SK))
            .condition_expression(condition);
        if let Some(v) = version {
            check = check.expression_attribute_values(":version", number(v));
        }
        return Ok((
            TransactWriteItem::builder()
                .condition_check(check.build()?)
                .build(),
            false,
        ));
    }
    let history = capped_history(current.map_or(&[][..], |c| &c.history), change);
    let mut update = Update::builder()
        .table_name(table)
        .key("pk", s(keys::consent_pk(phone)))
        .key("sk", s(keys::CONSENT_SK))
        .update_expression(
            "SET entity = :entity, phone = :phone, opted_out = :opted_out, keyword = :keyword, \
             updated_at = :now, history = :history, version = :next, changed_by = :by",
        )
        .condition_expression(condition)
        .expression_attribute_values(":by", s(changed_by_of(change)))
        .expression_attribute_values(":entity", s(keys::Entity::Consent.as_str()))
        .expression_attribute_values(":phone", s(phone.as_str()))
        .expression_attribute_values(":opted_out", AttributeValue::Bool(change.opted_out))
        .expression_attribute_values(":keyword", s(&change.keyword))
        .expression_attribute_values(":now", s(&change.at))
        .expression_attribute_values(":history", to_attribute_value(&history)?)
        .expression_attribute_values(":next", number(version.unwrap_or(0) + 1));
    if let Some(v) = version {
        update = update.expression_attribute_values(":version", number(v));
    }
    Ok((
        TransactWriteItem::builder().update(update.build()?).build(),
        true,
    ))
}

/// The first, read-free try of an inbound keyword's consent write, assuming the common case:
/// an opt-out changes the state (an `Update` that appends to `history`, on condition that the
/// number is not opted out and `history` has room), an opt-in does not (a `ConditionCheck`
/// that the number is not opted out, and that this message is not the one that opted it in,
/// so a redelivery is told apart). Both return the item when their condition fails.
pub(crate) fn optimistic_consent_write(
    table: &str,
    phone: &E164,
    change: &ConsentChange,
) -> Result<TransactWriteItem, StoreError> {
    let key_pk = s(keys::consent_pk(phone));
    let by = s(changed_by_of(change));
    if !change.opted_out {
        let check = ConditionCheck::builder()
            .table_name(table)
            .key("pk", key_pk)
            .key("sk", s(keys::CONSENT_SK))
            .condition_expression(
                "attribute_not_exists(pk) OR (opted_out = :no AND \
                 (attribute_not_exists(changed_by) OR changed_by <> :by))",
            )
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .expression_attribute_values(":by", by)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
        return Ok(TransactWriteItem::builder().condition_check(check).build());
    }
    let update = Update::builder()
        .table_name(table)
        .key("pk", key_pk)
        .key("sk", s(keys::CONSENT_SK))
        .update_expression(
            "SET entity = :entity, phone = :phone, opted_out = :yes, keyword = :keyword, \
             updated_at = :now, changed_by = :by, \
             history = list_append(if_not_exists(history, :empty), :change), \
             version = if_not_exists(version, :zero) + :one",
        )
        .condition_expression(
            "attribute_not_exists(pk) OR (opted_out = :no AND \
             (attribute_not_exists(history) OR size(history) < :cap))",
        )
        .expression_attribute_values(":entity", s(keys::Entity::Consent.as_str()))
        .expression_attribute_values(":phone", s(phone.as_str()))
        .expression_attribute_values(":yes", AttributeValue::Bool(true))
        .expression_attribute_values(":no", AttributeValue::Bool(false))
        .expression_attribute_values(":keyword", s(&change.keyword))
        .expression_attribute_values(":now", s(&change.at))
        .expression_attribute_values(":by", by)
        .expression_attribute_values(":empty", AttributeValue::L(vec![]))
        .expression_attribute_values(
            ":change",
            AttributeValue::L(vec![to_attribute_value(change)?]),
        )
        .expression_attribute_values(":zero", number(0))
        .expression_attribute_values(":one", number(1))
        .expression_attribute_values(":cap", number(HISTORY_CAP as u64))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// What `changed_by` records for a change: the inbound message's SID, else its message id.
fn changed_by_of(change: &ConsentChange) -> &str {
    change.twilio_sid.as_deref().unwrap_or(&change.message_id)
}

/// `history` with `change` appended, keeping the newest [`HISTORY_CAP`] entries.
pub(crate) fn capped_history(
    history: &[ConsentChange],
    change: &ConsentChange,
) -> Vec<ConsentChange> {
    let keep = history.len().min(HISTORY_CAP - 1);
    let mut out = history[history.len() - keep..].to_vec();
    out.push(change.clone());
    out
}

/// Whether `current` is the state this very message (by Twilio SID) put the number in: a
/// redelivery of the message that changed consent is answered like its first delivery.
pub(crate) fn changed_by(current: Option<&Consent>, opted_out: bool, sid: &str) -> bool {
    current.is_some_and(|c| c.opted_out == opted_out && c.changed_by.as_deref() == Some(sid))
}

fn number(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

impl Store {
    /// Records an opt-out learnt from Twilio (error 21610) rather than from a keyword; nothing
    /// is written when the number is already opted out.
    pub async fn record_opt_out(
        &self,
        phone: &E164,
        reason: &str,
        message_id: &str,
        now: &str,
    ) -> Result<(), StoreError> {
        let change = ConsentChange {
            opted_out: true,
            keyword: reason.into(),
            at: now.into(),
            message_id: message_id.into(),
            twilio_sid: None,
        };
        for _ in 0..CONSENT_ATTEMPTS {
            let current = self.consent(phone).await?;
            let (item, changed) = consent_write(&self.table, phone, current.as_ref(), &change)?;
            if !changed {
                return Ok(());
            }
            match self.transact(vec![item]).await {
                Ok(()) => return Ok(()),
                Err(TxError::ConditionFailed(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Cancelled {
            operation: "TransactWriteItems",
            reasons: "the consent item kept changing".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(i: usize) -> ConsentChange {
        ConsentChange {
            opted_out: i % 2 == 0,
            keyword: "STOP".into(),
            at: format!("2026-01-01T00:00:{:02}.000Z", i % 60),
            message_id: format!("m{i}"),
            twilio_sid: None,
        }
    }

    #[test]
    fn the_history_keeps_the_newest_entries_up_to_the_cap() {
        let mut history = Vec::new();
        for i in 0..(HISTORY_CAP * 3) {
            history = capped_history(&history, &change(i));
            assert_eq!(history.len(), (i + 1).min(HISTORY_CAP));
            assert_eq!(history.last().unwrap().message_id, format!("m{i}"));
        }
        assert_eq!(history[0].message_id, format!("m{}", HISTORY_CAP * 2));
    }

    #[test]
    fn a_keyword_that_changes_nothing_only_checks_the_version() {
        let phone = E164::parse("+14155552671").unwrap();
        let consent = Consent {
            phone: phone.clone(),
            opted_out: true,
            keyword: "STOP".into(),
            updated_at: "t".into(),
            history: vec![change(0)],
            version: 7,
            changed_by: None,
        };
        let (item, changed) = consent_write("t", &phone, Some(&consent), &change(2)).unwrap();
        assert!(!changed);
        let check = item.condition_check().expect("a condition check");
        assert_eq!(check.condition_expression(), "version = :version");

        let (item, changed) = consent_write("t", &phone, Some(&consent), &change(1)).unwrap();
        assert!(changed);
        let update = item.update().expect("an update");
        assert_eq!(update.condition_expression(), Some("version = :version"));
        let values = update.expression_attribute_values().unwrap();
        assert_eq!(values[":next"], AttributeValue::N("8".into()));

        let (item, changed) = consent_write("t", &phone, None, &change(1)).unwrap();
        assert!(!changed, "opted in is the state of a number never seen");
        assert_eq!(
            item.condition_check().unwrap().condition_expression(),
            "attribute_not_exists(pk)"
        );
    }
}
