//! Re-sending a failed message: a new message with the same recipient, body and attachments
//! through the send use case (consent, quiet hours and all), linked both ways to the failed
//! one (`resend_of` / `resent_as`).
//!
//! Idempotent across operators: the new message is made under one idempotency key per
//! failed message (owned by the console, not by a session), so two clicks — or two
//! operators — make one message; the link is written after it and again on a retry, so a
//! crash between the two converges on the next click.

use lambda_http::{Body, Response};
use parley::delivery::DeliveryStatus;
use parley::phone::Channel;
use parley::pipeline::PipelineState;
use parley::send::{SendError, SendRequest};
use parley::store::failures::LinkError;
use parley::store::{keys, Direction, IdempotencyKey, Message};
use parley::time::Timestamp;
use parley::twilio::form::Form;
use tracing::info;

use crate::response::redirect;
use crate::session::Session;
use crate::{ConsoleError, ConsoleHandler};

/// The owner of re-send idempotency records (in place of an API key id).
const RESEND_KEYS: &str = "console-resend";

/// Failed for good: refused by Twilio, or failed or undelivered at the carrier.
pub fn is_failed(m: &Message) -> bool {
    m.direction == Direction::Outbound
        && (m.status == PipelineState::Failed
            || matches!(
                m.delivery_status,
                Some(DeliveryStatus::Failed | DeliveryStatus::Undelivered)
            ))
}

impl ConsoleHandler {
    /// `POST /console/messages/{id}/resend`, back to the page it came from.
    pub(crate) async fn resend(
        &self,
        session: &Session,
        id: &str,
        form: &Form,
    ) -> Result<Response<Body>, ConsoleError> {
        if ulid::Ulid::from_string(id).is_err() {
            return Err(ConsoleError::NotFound);
        }
        let back = form.get("back").unwrap_or("/console/queue?status=failed");
        let old = self
            .store
            .message_by_id(id)
            .await?
            .filter(|m| m.direction == Direction::Outbound)
            .ok_or(ConsoleError::NotFound)?;
        if !is_failed(&old) {
            return Err(ConsoleError::BadRequest(format!(
                "Only a failed message can be re-sent; this one is {}.",
                old.status.as_str()
            )));
        }
        if old.resent_as.is_some() {
            return Ok(redirect(&crate::routes::with_notice(back, "resent"), &[]));
        }
        let body = self.store.body_of(&old).await?;
        let media = self.store.media_of(&old).await?;
        let request = SendRequest {
            to: Some(match old.channel {
                Channel::Sms => old.to_e164.as_str().to_owned(),
                Channel::Whatsapp => format!("whatsapp:{}", old.to_e164.as_str()),
            }),
            body: Some(body),
            media_urls: (!media.is_empty()).then_some(media),
            workflow_type: old.workflow_type.clone(),
            workflow_id: old.workflow_id.clone(),
            ..Default::default()
        };
        let now = Timestamp::now();
        let new = request
            .validate(now)
            .map_err(|fields| ConsoleError::BadRequest(crate::field_errors(&fields)))?;
        let key = IdempotencyKey {
            api_key_id: RESEND_KEYS,
            key: id,
        };
        let accepted = match self.send.send(&new, Some(key), now).await {
            Ok(accepted) => accepted,
            Err(SendError::Store(e)) => return Err(e.into()),
            Err(e) => {
                return Err(ConsoleError::BadRequest(format!(
                    "It was not re-sent: {e}."
                )))
            }
        };
        let new_pk = keys::conversation_pk(old.channel, &old.to_e164);
        match self
            .store
            .link_resend(&old, &new_pk, &accepted.message_id)
            .await
        {
            Ok(()) => {}
            Err(LinkError::AlreadyResent(other)) => {
                // Not reachable through the shared key; said rather than hidden if it is.
                return Err(ConsoleError::BadRequest(format!(
                    "The message was already re-sent as {other}."
                )));
            }
            Err(LinkError::Store(e)) => return Err(e.into()),
        }
        info!(target: "access", key_id = %session.key_id, message_id = %accepted.message_id, resend_of = %id, "console: failed message re-sent");
        Ok(redirect(&crate::routes::with_notice(back, "resent"), &[]))
    }
}
