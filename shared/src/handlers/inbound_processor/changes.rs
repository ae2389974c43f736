//! Changes the rest of the platform hears about: an outbound message's status
//! (`sms.status_changed`) and a number's consent (`sms.opted_out`, `sms.opted_in`).

use tracing::info;

use super::events;
use super::routing::Transition;
use super::{InboundProcessor, ProcessorError, FUNCTION};
use crate::metrics::Metrics;
use crate::send::cancel::{cancel_pending_to, CancelReason};
use crate::store::Consent;
use crate::time::Timestamp;

impl InboundProcessor {
    pub(super) async fn status_changed(
        &self,
        transition: &Transition,
    ) -> Result<(), ProcessorError> {
        let tenant_id = self
            .store
            .phone_tenant(&transition.message.to_e164)
            .await?
            .map(|t| t.tenant_id);
        let event = events::status_changed(transition, tenant_id, Timestamp::now());
        self.events
            .publish(&[event.into()], transition.message.trace.as_ref())
            .await?;
        Ok(())
    }

    pub(super) async fn consent_changed(&self, consent: &Consent) -> Result<(), ProcessorError> {
        if consent.opted_out {
            // Every scheduled, deferred and queued message to the number ends here; each
            // cancellation is published as a status change from its own stream record.
            let now = Timestamp::now();
            let canceled = cancel_pending_to(
                &self.store,
                &consent.phone,
                CancelReason::OptedOut,
                Timestamp::parse(&consent.updated_at).unwrap_or(now),
                now,
            )
            .await?;
            if canceled > 0 {
                info!(canceled, "opted out: pending messages canceled");
                Metrics::new(FUNCTION)
                    .count("CanceledOnOptOut", canceled as u64)
                    .emit();
            }
        }
        let tenant_id = self
            .store
            .phone_tenant(&consent.phone)
            .await?
            .map(|t| t.tenant_id);
        let event = events::consent_changed(consent, tenant_id);
        // A consent item keeps no trace: the event is in the stream record's invocation.
        self.events.publish(&[event], None).await?;
        let metric = if consent.opted_out {
            "OptOutEvents"
        } else {
            "OptInEvents"
        };
        Metrics::new(FUNCTION).count(metric, 1).emit();
        Ok(())
    }
}
