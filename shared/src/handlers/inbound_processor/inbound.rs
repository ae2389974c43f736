//! An inbound message stored: its sender's tenant found and linked, `sms.received`
//! published, then the tenant's language preference moved. The event goes out before the
//! language push, so a failing monitor cannot hold it back: the record is retried, and the
//! event may then be published again under the same `event_id` (delivery is at least once).

use tracing::{info, info_span, warn, Instrument};

use super::events;
use super::tenant::Lookup;
use super::{EventBodies, InboundProcessor, ProcessorError, FUNCTION};
use crate::events::Content;
use crate::metrics::Metrics;
use crate::phone::E164;
use crate::store::Message;

impl InboundProcessor {
    pub(super) async fn inbound(&self, message: &Message) -> Result<(), ProcessorError> {
        let Some(phone) = &message.from_e164 else {
            return Ok(());
        };
        let span = info_span!(
            "inbound",
            message_id = %message.message_id,
            phone = %self.pseudonyms.pseudonym(phone)
        );
        self.inbound_from(message, phone).instrument(span).await
    }

    async fn inbound_from(&self, message: &Message, phone: &E164) -> Result<(), ProcessorError> {
        // A record delivered after its message was erased: the number must not go to the
        // monitor, into a mapping or onto the bus.
        if self
            .store
            .message(&message.pk, &message.sk)
            .await?
            .is_none()
        {
            info!("the message was erased before processing; skipped");
            return Ok(());
        }
        let (tenant_id, time_zone) = match self
            .resolve(message.channel, phone, &message.from_original)
            .await?
        {
            Lookup::Known(id, zone) => (id, zone),
            Lookup::Erased => {
                info!("the conversation was erased during processing; skipped");
                return Ok(());
            }
            Lookup::Unknown => {
                info!("unknown sender: stored without a tenant, no downstream event");
                Metrics::new(FUNCTION).count("UnknownSenders", 1).emit();
                return Ok(());
            }
            Lookup::Unavailable => {
                self.store
                    .mark_lookup_pending(message.channel, phone)
                    .await?;
                match self.monitor {
                    Some(_) => warn!("the Collections Monitor is unavailable; left for reconciliation"),
                    None => info!("no Collections Monitor (MONITOR_API_URL is empty); left for reconciliation"),
                }
                return Ok(());
            }
        };
        let linked = self
            .link(message.channel, phone, &tenant_id, time_zone.as_deref())
            .await?;
        if !linked {
            info!("the conversation was erased during processing; skipped");
            return Ok(());
        }
        Metrics::new(FUNCTION).count("KnownSenders", 1).emit();
        let Some(conversation) = self.store.conversation(message.channel, phone).await? else {
            info!("the conversation was erased during processing; skipped");
            return Ok(());
        };
        let content = match self.bodies {
            EventBodies::Omit => None,
            EventBodies::Include => Some(Content {
                body: self.store.body_of(message).await?,
                media_urls: self.store.media_of(message).await?,
            }),
        };
        let event = events::received(message, phone, &conversation, &tenant_id, content);
        self.events
            .publish(&[event.into()], message.trace.as_ref())
            .await?;
        info!(tenant_id = %tenant_id, "inbound message linked and published");
        self.update_language(&tenant_id, message).await
    }
}
