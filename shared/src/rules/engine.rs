//! One rule and one event: who the message is for, in which language, what it says, when it
//! is due and whether anything blocks it ([`Engine::evaluate`], which writes nothing and is
//! also the preview); then the firing is written ([`Engine::fire`]) or a pending message is
//! canceled by a `cancel_on` event ([`Engine::cancel`]).
//!
//! A firing is one read (a BatchGetItem of the business key's record, consent, the
//! conversation, the number's tenant and the cap) and one transaction (the business key's
//! record, the message, the conversation, the cap and the activity entry). A tenant recipient
//! costs one more read (its number), and so does a number linked to a tenant (its language).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tracing::warn;

use super::activity::{Activity, Outcome};
use super::event::Event;
use super::render::{Choice, Rendered};
use super::rule::{Mode, QuietHours, Recipient, Rule};
use super::Cause;
use crate::language::{Language, Preference};
use crate::monitor::{MonitorClient, MonitorError};
use crate::phone::{Address, E164};
use crate::pipeline::PipelineState;
use crate::send::cancel::{cancel, CancelError, CancelReason};
use crate::send::{self, Guard, NewSend, Plan, Prior, SendError, SendService};
use crate::store::rules::CapItem;
use crate::store::tenants::PhoneTenant;
use crate::store::{item_of, keys, IdempotencyKey, StoreError};
use crate::time::Timestamp;

/// How long a rule's business-key record outlives the message's due time: producer retries
/// and late `cancel_on` events within it find the message.
const DEDUPE_DAYS_AFTER_DUE: i64 = 30;
/// Rounds of read-and-write when the cap item changed in between.
const CAP_ROUNDS: usize = 3;

/// What stops a firing, in the order the router reports the first one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "check", content = "reason", rename_all = "snake_case")]
pub enum Check {
    RecipientUnresolved(String),
    TemplateFailed(String),
    /// The business key made a message already (`same_event`: this very event did).
    Duplicate {
        same_event: bool,
    },
    OptedOut,
    Capped(String),
    TimingFailed(String),
}

impl Check {
    pub fn outcome(&self) -> Outcome {
        match self {
            Self::RecipientUnresolved(_) => Outcome::RecipientUnresolved,
            Self::TemplateFailed(_) => Outcome::TemplateFailed,
            Self::Duplicate { .. } => Outcome::Deduplicated,
            Self::OptedOut => Outcome::OptedOut,
            Self::Capped(_) => Outcome::Capped,
            Self::TimingFailed(_) => Outcome::TimingFailed,
        }
    }

    pub fn reason(&self) -> Option<String> {
        match self {
            Self::RecipientUnresolved(r)
            | Self::TemplateFailed(r)
            | Self::Capped(r)
            | Self::TimingFailed(r) => Some(r.clone()),
            Self::Duplicate { .. } | Self::OptedOut => None,
        }
    }
}

/// A fault that may pass: the event is retried.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the Collections Monitor: {0}")]
    Monitor(#[from] MonitorError),
    #[error("the cap item kept changing")]
    Contended,
}

/// Where the recipient's language came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RecipientSource {
    Event,
    /// The tenant's most recently used number, from Parley's table.
    TenantProfile,
    /// The tenant's record at the Collections Monitor.
    Monitor,
}

/// One rule evaluated against one event at one instant.
#[derive(Debug)]
pub struct Evaluation {
    pub dedupe_key: String,
    pub recipient: Option<Address>,
    pub recipient_source: Option<RecipientSource>,
    pub tenant_id: Option<String>,
    pub language: Option<Choice>,
    pub rendered: Option<Rendered>,
    /// When and how it would be accepted (its state, due time, zone and source).
    pub plan: Option<Plan>,
    /// Everything that blocks it; empty when it would be sent.
    pub checks: Vec<Check>,
    new: Option<NewSend>,
    prior: Prior,
    cap: Option<(CapItem, Vec<i64>)>,
}

#[derive(Clone)]
pub struct Engine {
    pub service: SendService,
    pub monitor: Option<Arc<MonitorClient>>,
}

impl Engine {
    pub fn new(service: SendService, monitor: Option<Arc<MonitorClient>>) -> Self {
        Self { service, monitor }
    }

    /// Decides everything about `rule` firing on `event` at `now`, writing nothing.
    pub async fn evaluate(
        &self,
        rule: &Rule,
        event: &Event,
        now: Timestamp,
    ) -> Result<Evaluation, EngineError> {
        let store = &self.service.store;
        let mut checks = Vec::new();
        let resolved = self.recipient(&rule.spec.recipient, event).await?;
        let (recipient, recipient_source, mut tenant_id, monitor_language, monitor_zone) =
            match resolved {
                Ok(r) => (
                    Some(r.address),
                    Some(r.source),
                    r.tenant_id,
                    r.language,
                    r.time_zone,
                ),
                Err(reason) => {
                    checks.push(Check::RecipientUnresolved(reason));
                    (None, None, None, None, None)
                }
            };
        // The event is converted for templates once (`Event::template_context`), for every
        // rule it fires; the tenant is an overlay.
        let dedupe_key = match &rule.spec.dedupe {
            None => event.id.clone(),
            Some(text) => match text.render_with(&event.template_context(tenant_id.as_deref())) {
                Ok(key) if !key.trim().is_empty() => key,
                Ok(_) => {
                    checks.push(Check::TemplateFailed("dedupe rendered empty".into()));
                    event.id.clone()
                }
                Err(e) => {
                    checks.push(Check::TemplateFailed(format!("dedupe: {e}")));
                    event.id.clone()
                }
            },
        };
        let mut evaluation = Evaluation {
            dedupe_key,
            recipient: recipient.clone(),
            recipient_source,
            tenant_id: None,
            language: None,
            rendered: None,
            plan: None,
            checks,
            new: None,
            prior: Prior::default(),
            cap: None,
        };
        let Some(to) = recipient else {
            return Ok(evaluation);
        };

        // One read for everything the decision needs.
        let business = BusinessKey::new(rule, &evaluation.dedupe_key);
        let guard = business.guard(now);
        let cap_key = (
            keys::rule_cap_pk(&rule.rule_id, &to.e164),
            keys::RULE_CAP_SK.to_owned(),
        );
        let phone_key = (
            keys::phone_tenant_pk(&to.e164),
            keys::PHONE_TENANT_SK.to_owned(),
        );
        let mut wanted = Prior::keys(Some(&guard), &to);
        wanted.push(phone_key.clone());
        if rule.spec.cap.is_some() {
            wanted.push(cap_key.clone());
        }
        if let Some(t) = &tenant_id {
            wanted.push(language_key(t));
        }
        let items = store.items(&wanted).await?;
        let prior = Prior::read(&items, Some(&guard), &to)?;
        let linked: Option<PhoneTenant> = item_of(&items, &phone_key.0, &phone_key.1)?;
        tenant_id = tenant_id.or(linked.map(|l| l.tenant_id)).or_else(|| {
            prior
                .conversation
                .as_ref()
                .and_then(|c| c.tenant_id.clone())
        });
        let preference: Option<Preference> = match &tenant_id {
            Some(t) if items.contains_key(&language_key(t)) => {
                let (pk, sk) = language_key(t);
                item_of(&items, &pk, &sk)?
            }
            Some(t) => store.language_preference(t).await?,
            None => None,
        };
        evaluation.tenant_id = tenant_id.clone();

        // What it says, in whose language.
        let context = event.template_context(tenant_id.as_deref());
        let known = |l: Language| (l != Language::Unknown).then_some(l);
        let choice = rule.spec.template.choose(
            preference
                .and_then(|p| known(p.language))
                .or(monitor_language.and_then(known)),
            prior
                .conversation
                .as_ref()
                .and_then(|c| c.language)
                .and_then(known),
        );
        let rendered = match rule.spec.template.render_with(&choice, &context) {
            Ok(r) => Some(r),
            Err(e) => {
                evaluation.checks.push(Check::TemplateFailed(format!(
                    "template `{}`: {e}",
                    choice.key
                )));
                None
            }
        };
        let workflow = |text: &Option<super::render::Text>, name: &str| match text {
            None => Ok(None),
            Some(t) => t
                .render_with(&context)
                .map(Some)
                .map_err(|e| format!("{name}: {e}")),
        };
        let workflow_type = workflow(&rule.spec.workflow_type, "workflow_type");
        let workflow_id = workflow(&rule.spec.workflow_id, "workflow_id");
        for failed in [&workflow_type, &workflow_id]
            .into_iter()
            .filter_map(|r| r.as_ref().err())
        {
            evaluation
                .checks
                .push(Check::TemplateFailed(failed.clone()));
        }
        evaluation.language = Some(choice);

        // Who may not receive it.
        if let Some(record) = &prior.record {
            // A read only for duplicates: whether this very event made the message (a
            // redelivery, nothing to record) or another one with the same key did.
            let made_by = match keys::is_erased(&record.message_pk) {
                true => None,
                false => {
                    store
                        .message(&record.message_pk, &record.message_sk)
                        .await?
                }
            };
            let same_event = made_by
                .and_then(|m| m.cause)
                .is_some_and(|c| c.event_id == event.id && c.rule_id == rule.rule_id);
            evaluation.checks.push(Check::Duplicate { same_event });
        }
        if prior.opted_out {
            evaluation.checks.push(Check::OptedOut);
        }
        if let Some(cap) = &rule.spec.cap {
            let seen: CapItem = item_of(&items, &cap_key.0, &cap_key.1)?.unwrap_or_default();
            let since = cap.per.before(now).unix_seconds();
            let mut sent: Vec<i64> = seen.sent.iter().copied().filter(|t| *t > since).collect();
            if sent.len() >= cap.max as usize {
                evaluation.checks.push(Check::Capped(format!(
                    "{} messages to this recipient in {}",
                    sent.len(),
                    cap.per
                )));
            }
            sent.push(now.unix_seconds());
            evaluation.cap = Some((seen, sent));
        }

        // When.
        let Some(rendered) = rendered else {
            evaluation.prior = prior;
            return Ok(evaluation);
        };
        let mut new = NewSend {
            to: to.clone(),
            body: rendered.body.clone(),
            conversation_id: None,
            workflow_type: workflow_type.ok().flatten(),
            workflow_id: workflow_id.ok().flatten(),
            media_urls: Vec::new(),
            send_at: None,
            not_after: None,
            // The monitor's zone for a tenant Parley has not linked yet (a linked one's is on
            // the conversation, which `zones` reads).
            time_zone: monitor_zone.and_then(|z| crate::schedule::parse_zone(&z).ok()),
            urgent: rule.spec.quiet_hours == QuietHours::Bypass,
            segments: rendered.segments,
            cause: Some(Cause {
                rule_id: rule.rule_id.clone(),
                rule_version: rule.version,
                event_id: event.id.clone(),
                source: event.source.clone(),
                detail_type: event.detail_type.clone(),
                dedupe_key: evaluation.dedupe_key.clone(),
            }),
            trace: event.trace.clone(),
        };
        evaluation.rendered = Some(rendered);
        let zones = self.service.zones(&new, prior.conversation.as_ref());
        let zone = zones
            .zones
            .first()
            .cloned()
            .unwrap_or_else(|| self.service.policy.default_zone.clone());
        match rule.spec.timing.resolve(&event.raw, event.time, now, &zone) {
            Ok(resolved) => {
                new.send_at = resolved.send_at;
                new.not_after = rule
                    .spec
                    .not_after
                    .as_ref()
                    .map(|w| w.after(resolved.instant));
                let unblocked = Prior {
                    record: None,
                    opted_out: false,
                    conversation: prior.conversation.clone(),
                };
                match self.service.plan(&new, &unblocked, now) {
                    Ok(plan) => evaluation.plan = Some(plan),
                    Err(e) => evaluation.checks.push(Check::TimingFailed(e.to_string())),
                }
            }
            Err(e) => evaluation.checks.push(Check::TimingFailed(e.to_string())),
        }
        evaluation.new = Some(new);
        evaluation.prior = prior;
        Ok(evaluation)
    }

    /// `rule` fires on `event`: the message is accepted (or, in shadow mode, only recorded),
    /// or the first blocking check is recorded. `None` when there is nothing to record: the
    /// same event delivered again.
    pub async fn fire(
        &self,
        rule: &Rule,
        event: &Event,
        now: Timestamp,
    ) -> Result<Option<Activity>, EngineError> {
        for _ in 0..CAP_ROUNDS {
            let evaluation = self.evaluate(rule, event, now).await?;
            let mut activity = activity(rule, event, now, Outcome::Scheduled);
            activity.dedupe_key = Some(evaluation.dedupe_key.clone());
            if let Some(check) = evaluation.checks.first() {
                if matches!(check, Check::Duplicate { same_event: true }) {
                    return Ok(None);
                }
                activity.outcome = check.outcome();
                activity.reason = check.reason();
                self.service.store.put_activity(&activity).await?;
                return Ok(Some(activity));
            }
            let (Some(new), Some(plan)) = (&evaluation.new, &evaluation.plan) else {
                return Ok(None);
            };
            if rule.spec.mode == Mode::Shadow {
                activity.outcome = Outcome::Shadow;
                activity.state = Some(plan.accepted.status);
                activity.send_at = Some(plan.accepted.send_at);
                self.service.store.put_activity(&activity).await?;
                return Ok(Some(activity));
            }
            let to = evaluation.recipient.as_ref().map(|a| a.e164.clone());
            let business = BusinessKey::new(rule, &evaluation.dedupe_key);
            let guard = business.guard(plan.accepted.send_at);
            let store = &self.service.store;
            let cap = evaluation.cap.clone();
            let per = rule.spec.cap.as_ref().map(|c| c.per.clone());
            let mut scheduled = activity.clone();
            let outcome = self
                .service
                .accept(
                    new,
                    &evaluation.prior,
                    Some(guard),
                    |accepted| {
                        scheduled.message_id = Some(accepted.message_id.clone());
                        scheduled.state = Some(accepted.status);
                        scheduled.send_at = Some(accepted.send_at);
                        let mut extra = vec![store.activity_put(&scheduled)?];
                        if let (Some((seen, sent)), Some(per), Some(to)) = (&cap, &per, &to) {
                            let expires = per.after(now).unix_seconds();
                            extra.push(store.cap_put(
                                &rule.rule_id,
                                to,
                                seen,
                                sent.clone(),
                                expires,
                            )?);
                        }
                        Ok(extra)
                    },
                    now,
                )
                .await;
            match outcome {
                Ok(send::Outcome::Accepted(_)) => return Ok(Some(scheduled)),
                // Another event with this key won a race: the next round sees its record.
                Ok(send::Outcome::Existing(_)) | Ok(send::Outcome::Refused) => continue,
                Err(SendError::Store(e)) => return Err(e.into()),
                Err(SendError::OptedOut) => activity.outcome = Outcome::OptedOut,
                Err(e) => {
                    activity.outcome = Outcome::TimingFailed;
                    activity.reason = Some(e.to_string());
                }
            }
            self.service.store.put_activity(&activity).await?;
            return Ok(Some(activity));
        }
        Err(EngineError::Contended)
    }

    /// A `cancel_on` event of `rule`: cancels the pending message of the business key it
    /// renders. Sent or canceled, never both: the cancel is conditional on the state read.
    pub async fn cancel(
        &self,
        rule: &Rule,
        event: &Event,
        now: Timestamp,
    ) -> Result<Activity, EngineError> {
        let store = &self.service.store;
        let mut activity = activity(rule, event, now, Outcome::Canceled);
        let key = match &rule.spec.dedupe {
            Some(text) => text.render_with(&event.template_context(None)),
            None => Ok(event.id.clone()),
        };
        let key = match key {
            Ok(key) => key,
            Err(e) => {
                activity.outcome = Outcome::TemplateFailed;
                activity.reason = Some(format!("dedupe (cancel_on): {e}"));
                store.put_activity(&activity).await?;
                return Ok(activity);
            }
        };
        activity.dedupe_key = Some(key.clone());
        let record = store
            .idempotency(BusinessKey::new(rule, &key).key())
            .await?;
        let message = match record {
            Some(r) if !keys::is_erased(&r.message_pk) => {
                store.message(&r.message_pk, &r.message_sk).await?
            }
            _ => None,
        };
        let Some(message) = message else {
            activity.outcome = Outcome::CancelTooLate;
            activity.reason = Some("no message for this key".into());
            store.put_activity(&activity).await?;
            return Ok(activity);
        };
        activity.message_id = Some(message.message_id.clone());
        match cancel(store, &message.message_id, CancelReason::Event, now).await {
            Ok(m) if m.status_reason.as_deref() == Some(CancelReason::Event.as_str()) => {
                activity.state = Some(PipelineState::Canceled);
            }
            Ok(m) => {
                activity.outcome = Outcome::CancelTooLate;
                activity.reason = Some(format!(
                    "already canceled ({})",
                    m.status_reason.unwrap_or_default()
                ));
            }
            Err(CancelError::NotCancelable(state)) => {
                activity.outcome = Outcome::CancelTooLate;
                activity.state = Some(state);
                activity.reason = Some(format!("the message is already {state}"));
            }
            Err(CancelError::NotFound) => {
                activity.outcome = Outcome::CancelTooLate;
                activity.reason = Some("no message for this key".into());
            }
            Err(CancelError::Store(e)) => return Err(e.into()),
        }
        store.put_activity(&activity).await?;
        Ok(activity)
    }

    /// The number a rule's message goes to, or why there is none.
    async fn recipient(
        &self,
        recipient: &Recipient,
        event: &Event,
    ) -> Result<Result<Resolved, String>, EngineError> {
        let path = recipient.path();
        let Some(value) = path.select(&event.raw) else {
            return Ok(Err(format!("the event has nothing at {path}")));
        };
        let Some(text) = value.as_str().filter(|s| !s.trim().is_empty()) else {
            return Ok(Err(format!("{path} is not a non-empty string")));
        };
        match recipient {
            Recipient::Phone(_) => Ok(Address::parse(text)
                .map(|address| Resolved {
                    address,
                    source: RecipientSource::Event,
                    tenant_id: None,
                    language: None,
                    time_zone: None,
                })
                .map_err(|e| format!("{path} is not a phone number: {e}"))),
            Recipient::TenantId(_) => {
                let tenant_id = text.to_owned();
                if let Some(phone) = self.service.store.tenant_last_phone(&tenant_id).await? {
                    return Ok(Ok(Resolved {
                        address: address_of(phone),
                        source: RecipientSource::TenantProfile,
                        tenant_id: Some(tenant_id),
                        language: None,
                        time_zone: None,
                    }));
                }
                let Some(monitor) = &self.monitor else {
                    return Ok(Err("no number is known for this tenant".into()));
                };
                let tenant = monitor.tenant(&tenant_id).await?;
                let number = tenant
                    .iter()
                    .flat_map(|t| t.phone_numbers.iter())
                    .find_map(|n| Address::parse(n).ok());
                Ok(match number {
                    Some(address) => Ok(Resolved {
                        address,
                        source: RecipientSource::Monitor,
                        language: tenant.as_ref().and_then(|t| t.preferred_language),
                        time_zone: tenant.and_then(|t| t.time_zone),
                        tenant_id: Some(tenant_id),
                    }),
                    None => Err("no number is known for this tenant".into()),
                })
            }
        }
    }
}

/// A rule's recipient, found.
struct Resolved {
    address: Address,
    source: RecipientSource,
    tenant_id: Option<String>,
    /// The tenant's language and zone as the Collections Monitor has them (when it was
    /// asked).
    language: Option<Language>,
    time_zone: Option<String>,
}

fn address_of(phone: E164) -> Address {
    Address::parse(phone.as_str()).unwrap_or_else(|_| {
        warn!("a stored number no longer parses");
        Address {
            original: phone.as_str().to_owned(),
            e164: phone,
            channel: crate::phone::Channel::Sms,
        }
    })
}

fn language_key(tenant_id: &str) -> (String, String) {
    (
        keys::tenant_pk(tenant_id),
        keys::TENANT_LANGUAGE_SK.to_owned(),
    )
}

/// The record a rule's business key is kept under: an idempotency record owned by the rule.
struct BusinessKey {
    owner: String,
    digest: String,
}

impl BusinessKey {
    fn new(rule: &Rule, dedupe_key: &str) -> Self {
        Self {
            owner: keys::rule_dedupe_owner(&rule.rule_id),
            digest: keys::rule_dedupe_key(dedupe_key),
        }
    }

    fn key(&self) -> IdempotencyKey<'_> {
        IdempotencyKey {
            api_key_id: &self.owner,
            key: &self.digest,
        }
    }

    /// The guard, kept until long after the message is due so late producer retries and
    /// `cancel_on` events still find it.
    fn guard(&self, due: Timestamp) -> Guard<'_> {
        let keep = Duration::from_secs(DEDUPE_DAYS_AFTER_DUE as u64 * 86_400);
        Guard {
            key: self.key(),
            expires_at: due.plus(keep).unix_seconds(),
        }
    }
}

fn activity(rule: &Rule, event: &Event, now: Timestamp, outcome: Outcome) -> Activity {
    Activity {
        rule_id: rule.rule_id.clone(),
        rule_version: rule.version,
        at: now,
        event_time: event.time,
        event_id: event.id.clone(),
        source: event.source.clone(),
        detail_type: event.detail_type.clone(),
        outcome,
        dedupe_key: None,
        message_id: None,
        state: None,
        send_at: None,
        reason: None,
    }
}
