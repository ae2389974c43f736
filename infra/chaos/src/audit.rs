//! After the run: every accepted send and every received text, checked against the table and
//! against what Twilio (the sandbox) holds. Findings name message ids and SIDs only, never a
//! number or a body.

use std::collections::HashMap;

use parley::delivery::DeliveryStatus;
use parley::phone::Address;
use parley::pipeline::PipelineState;
use parley::store::{Direction, Message, Store};
use serde_json::Value;

use crate::load::LoadLog;

/// What the audit found. The run passes when the four violation lists are empty.
#[derive(Debug, Default, Clone)]
pub struct Audit {
    pub sends_accepted: usize,
    /// Accepted sends in a final state: delivered (or read), failed at Twilio or in Parley.
    pub sends_final: usize,
    pub sends_delivered: usize,
    /// Final as failed without reaching Twilio (retries exhausted, a permanent error).
    pub sends_failed_unsent: usize,
    pub texts_received: usize,
    /// Texts whose webhook got a 2xx from Parley on some attempt.
    pub texts_webhook_ok: usize,
    pub texts_stored: usize,
    /// An accepted send missing from the table, or a text Twilio received that Parley lacks.
    pub lost: Vec<String>,
    /// A send Twilio created more than once, or a text stored more than once.
    pub duplicated: Vec<String>,
    /// An accepted send not final: still queued or sending, or submitted with a delivery
    /// status behind Twilio's (its callbacks refused, not polled yet); or one whose state
    /// contradicts Twilio's (failed in Parley yet created at Twilio, another SID).
    pub stuck: Vec<String>,
    /// A delivery status behind one Parley acknowledged (answered 2xx) in a callback.
    pub regressed: Vec<String>,
}

impl Audit {
    pub fn clean(&self) -> bool {
        self.lost.is_empty()
            && self.duplicated.is_empty()
            && self.stuck.is_empty()
            && self.regressed.is_empty()
    }
}

/// One message the sandbox holds, as `/_sandbox/messages` lists it.
struct TwilioMessage<'a> {
    sid: &'a str,
    status: DeliveryStatus,
    /// Statuses Parley answered with a 2xx.
    acknowledged: Vec<DeliveryStatus>,
}

fn twilio_message(m: &Value) -> TwilioMessage<'_> {
    TwilioMessage {
        sid: m["sid"].as_str().unwrap_or_default(),
        status: DeliveryStatus::parse(m["status"].as_str().unwrap_or_default()),
        acknowledged: m["callbacks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| {
                c["response_status"]
                    .as_u64()
                    .is_some_and(|s| (200..300).contains(&s))
            })
            .map(|c| DeliveryStatus::parse(c["status"].as_str().unwrap_or_default()))
            .collect(),
    }
}

/// Every message of the conversation with `number`, all pages.
async fn conversation(store: &Store, number: &str) -> Result<Vec<Message>, String> {
    let address = Address::parse(number).map_err(|e| e.to_string())?;
    let mut messages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (page, next) = store
            .messages_page(address.channel, &address.e164, 100, after.as_deref())
            .await
            .map_err(|e| format!("reading a conversation: {e}"))?;
        messages.extend(page);
        match next {
            Some(sk) => after = Some(sk),
            None => return Ok(messages),
        }
    }
}

/// Audits `log` against `store` and the sandbox's messages (`/_sandbox/messages`), read
/// twice: `before` the table (a status Parley acknowledged then must show in the table) and
/// by `read_sandbox` after it (a message the table says was submitted is then in the
/// sandbox's list). While the stack still works, either order alone would report races as
/// violations.
pub async fn audit(
    log: &LoadLog,
    store: &Store,
    before: &[Value],
    read_sandbox: impl std::future::Future<Output = Result<Vec<Value>, String>>,
) -> Result<Audit, String> {
    // One query a page per conversation, not a read per message: the table is read while
    // the stack still works through the run's tail.
    let mut numbers: Vec<&str> = log
        .accepted
        .iter()
        .map(|s| s.to.as_str())
        .chain(log.texts.iter().map(|t| t.from.as_str()))
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    let mut outbound: HashMap<String, Message> = HashMap::new();
    let mut inbound: HashMap<String, usize> = HashMap::new();
    for number in numbers {
        for m in conversation(store, number).await? {
            match m.direction {
                Direction::Outbound => {
                    outbound.insert(m.message_id.clone(), m);
                }
                Direction::Inbound => {
                    if let Some(sid) = m.twilio_sid {
                        *inbound.entry(sid).or_default() += 1;
                    }
                }
            }
        }
    }
    let sandbox_messages = read_sandbox.await?;
    let mut audit = Audit {
        sends_accepted: log.accepted.len(),
        texts_received: log.texts.len(),
        texts_webhook_ok: log.texts.iter().filter(|t| t.delivered).count(),
        ..Audit::default()
    };
    let mut created: HashMap<&str, Vec<&Value>> = HashMap::new();
    for m in &sandbox_messages {
        if m["direction"] == "outbound-api" {
            if let Some(body) = m["body"].as_str() {
                created.entry(body).or_default().push(m);
            }
        }
    }
    for send in &log.accepted {
        let id = &send.message_id;
        let at_twilio: Vec<TwilioMessage> = created
            .get(send.body.as_str())
            .into_iter()
            .flatten()
            .map(|m| twilio_message(m))
            .collect();
        if at_twilio.len() > 1 {
            audit.duplicated.push(format!(
                "send {id}: created {} times at Twilio",
                at_twilio.len()
            ));
        }
        let Some(message) = outbound.get(id) else {
            audit
                .lost
                .push(format!("send {id}: accepted, not in the table"));
            continue;
        };
        match message.status {
            PipelineState::Submitted => {
                let sid = message.twilio_sid.as_deref().unwrap_or_default();
                let Some(twilio) = at_twilio.iter().find(|t| t.sid == sid) else {
                    audit.stuck.push(format!(
                        "send {id}: submitted as {sid:?}, which Twilio does not hold for it"
                    ));
                    continue;
                };
                let stored = message.delivery_status.unwrap_or(DeliveryStatus::Unknown);
                let acknowledged_before = before
                    .iter()
                    .filter(|m| m["sid"] == sid)
                    .flat_map(|m| twilio_message(m).acknowledged);
                if stored.advances_to(twilio.status) {
                    if acknowledged_before
                        .into_iter()
                        .any(|a| stored.advances_to(a))
                    {
                        audit.regressed.push(format!(
                            "send {id} ({sid}): stored {}, yet Parley acknowledged a later status (Twilio: {})",
                            stored.as_str(),
                            twilio.status.as_str()
                        ));
                    } else {
                        audit.stuck.push(format!(
                            "send {id} ({sid}): stored {}, Twilio {} (its callbacks refused, not polled yet)",
                            stored.as_str(),
                            twilio.status.as_str()
                        ));
                    }
                } else if stored.is_final() {
                    audit.sends_final += 1;
                    if matches!(stored, DeliveryStatus::Delivered | DeliveryStatus::Read) {
                        audit.sends_delivered += 1;
                    }
                } else {
                    audit.stuck.push(format!(
                        "send {id} ({sid}): delivery status {} is not final",
                        stored.as_str()
                    ));
                }
            }
            PipelineState::Failed | PipelineState::Canceled | PipelineState::Expired => {
                if at_twilio.is_empty() {
                    audit.sends_final += 1;
                    audit.sends_failed_unsent += 1;
                } else {
                    audit.stuck.push(format!(
                        "send {id}: {} in Parley, yet created at Twilio ({})",
                        message.status, at_twilio[0].sid
                    ));
                }
            }
            other => audit.stuck.push(format!("send {id}: still {other}")),
        }
    }

    // Texts: every one Twilio received is stored once, in its sender's conversation.
    for text in &log.texts {
        match inbound.get(&text.sid).copied().unwrap_or(0) {
            0 => audit.lost.push(format!(
                "text {}: received by Twilio ({} webhook attempts, {}), not stored",
                text.sid,
                text.attempts,
                if text.delivered {
                    "one answered 2xx"
                } else {
                    "none answered 2xx"
                }
            )),
            1 => audit.texts_stored += 1,
            n => {
                audit.texts_stored += 1;
                audit
                    .duplicated
                    .push(format!("text {}: stored {n} times", text.sid));
            }
        }
    }
    Ok(audit)
}
