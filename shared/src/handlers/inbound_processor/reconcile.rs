//! The scheduled reconciliation (`{"reconcile": true}`, every 15 minutes): every conversation
//! without a tenant — left unknown, or pending while the monitor was down — is looked up
//! again and linked if its number is known now. A store failure fails the run, so Lambda
//! counts an error and the alarms see it; the next run starts over.

use serde::Serialize;
use tracing::info;

use super::tenant::Lookup;
use super::{InboundProcessor, FUNCTION};
use crate::metrics::Metrics;
use crate::store::StoreError;

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct ReconcileReport {
    pub checked: usize,
    pub linked: usize,
    /// Still unanswered because the monitor is failing.
    pub still_pending: usize,
}

impl InboundProcessor {
    /// Retries the lookup for every conversation without a tenant and links the ones that
    /// are known now.
    pub async fn reconcile(&self) -> Result<ReconcileReport, StoreError> {
        let mut report = ReconcileReport::default();
        for conversation in self.store.unlinked_conversations().await? {
            report.checked += 1;
            let phone = &conversation.phone;
            match self
                .resolve(conversation.channel, phone, phone.as_str())
                .await?
            {
                Lookup::Known(tenant_id, time_zone) => {
                    let linked = self
                        .link(
                            conversation.channel,
                            phone,
                            &tenant_id,
                            time_zone.as_deref(),
                        )
                        .await?;
                    report.linked += usize::from(linked);
                }
                Lookup::Unknown | Lookup::Erased => {}
                Lookup::Unavailable => report.still_pending += 1,
            }
        }
        Metrics::new(FUNCTION)
            .count("Reconciliations", report.linked as u64)
            .count("MonitorCircuitOpen", self.monitor_breaker.open_gauge())
            .emit();
        info!(
            checked = report.checked,
            linked = report.linked,
            pending = report.still_pending,
            "reconciliation"
        );
        Ok(report)
    }
}
