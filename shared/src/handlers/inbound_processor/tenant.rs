//! A number's tenant: the stored `PHONE#` mapping, else the Collections Monitor asked with
//! each written form of the number in turn (it matches stored strings exactly), transient
//! failures retried with backoff (unless the monitor's circuit breaker is open: then not
//! called); then the conversation linked to it.

use std::time::{Duration, Instant};

use tracing::info;

use super::{InboundProcessor, FUNCTION};
use crate::metrics::Metrics;
use crate::monitor::{self, MonitorError, Tenant};
use crate::phone::{Channel, E164};
use crate::store::tenants::PhoneTenant;
use crate::store::StoreError;

/// Lookups of one form tried in the call before the conversation is left to reconciliation.
const LOOKUP_ATTEMPTS: u32 = 3;
const LOOKUP_BACKOFF: Duration = Duration::from_millis(200);

/// What a lookup concluded.
#[derive(Debug, PartialEq)]
pub(super) enum Lookup {
    /// The tenant, and its time zone when the monitor gives one Parley knows.
    Known(String, Option<String>),
    /// No form of the number is on file: a definitive answer.
    Unknown,
    /// The monitor failed even after retries; try again later.
    Unavailable,
    /// The conversation was erased meanwhile: nothing more to do for it.
    Erased,
}

impl InboundProcessor {
    /// The tenant of a number: the stored mapping, else the monitor tried with each form
    /// (`original` is the number as received). A found tenant is stored as the mapping.
    pub(super) async fn resolve(
        &self,
        channel: Channel,
        phone: &E164,
        original: &str,
    ) -> Result<Lookup, StoreError> {
        if let Some(mapping) = self.store.phone_tenant(phone).await? {
            return Ok(Lookup::Known(mapping.tenant_id, mapping.time_zone));
        }
        if self.monitor.is_none() {
            return Ok(Lookup::Unavailable);
        }
        for variant in monitor::variants(phone, original) {
            match self.lookup_with_retries(&variant).await {
                Ok(Some(tenant)) => return self.remember(channel, phone, &variant, tenant).await,
                Ok(None) => continue,
                Err(_) => return Ok(Lookup::Unavailable),
            }
        }
        Ok(Lookup::Unknown)
    }

    /// Stores the `PHONE#` mapping of a tenant found under `variant`.
    async fn remember(
        &self,
        channel: Channel,
        phone: &E164,
        variant: &str,
        tenant: Tenant,
    ) -> Result<Lookup, StoreError> {
        let mapping = PhoneTenant {
            tenant_id: tenant.tenant_id,
            matched_variant: variant_kind(phone, variant).into(),
            updated_at: crate::time::now_rfc3339(),
            // Only a zone Parley knows is kept: an unknown one would be ignored at every
            // send anyway.
            time_zone: tenant
                .time_zone
                .filter(|z| crate::schedule::parse_zone(z).is_ok()),
        };
        if !self
            .store
            .put_phone_tenant(channel, phone, &mapping)
            .await?
        {
            return Ok(Lookup::Erased);
        }
        info!(variant = mapping.matched_variant, "tenant found");
        Ok(Lookup::Known(mapping.tenant_id, mapping.time_zone))
    }

    async fn lookup_with_retries(&self, variant: &str) -> Result<Option<Tenant>, MonitorError> {
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            let Some(monitor) = &self.monitor else {
                return Ok(None);
            };
            // An open breaker is a failure the caller already handles (the conversation is left
            // to reconciliation), without a call.
            let _permit = self
                .monitor_breaker
                .admit()
                .map_err(|_| MonitorError::CircuitOpen)?;
            let result = monitor.lookup(variant).await;
            self.monitor_breaker.record(MonitorError::outcome(&result));
            let metrics = Metrics::new(FUNCTION)
                .millis("MonitorLatency", started.elapsed().as_secs_f64() * 1e3);
            match result {
                Err(e) if e.is_transient() && attempt < LOOKUP_ATTEMPTS => {
                    metrics.count("MonitorErrors", 1).emit();
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => {
                    metrics.count("MonitorErrors", 1).emit();
                    return Err(e);
                }
                Ok(found) => {
                    metrics.emit();
                    return Ok(found);
                }
            }
        }
    }

    /// Links the conversation (and the tenant's last-used number) to `tenant_id`; `false`
    /// when the conversation was erased meanwhile.
    pub(super) async fn link(
        &self,
        channel: Channel,
        phone: &E164,
        tenant_id: &str,
        time_zone: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.store
            .link_tenant(
                channel,
                phone,
                tenant_id,
                time_zone,
                &crate::time::now_rfc3339(),
            )
            .await
    }
}

/// The wait after failed attempt `attempt` (1-based): 200 ms, then doubling.
fn backoff(attempt: u32) -> Duration {
    LOOKUP_BACKOFF * 2u32.pow(attempt.saturating_sub(1))
}

/// Which written form matched, for the mapping (never the number itself in logs).
pub(super) fn variant_kind(phone: &E164, variant: &str) -> &'static str {
    let digits: String = phone
        .as_str()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    if variant == phone.as_str() {
        "e164"
    } else if variant == digits {
        "digits"
    } else if variant.chars().all(|c| c.is_ascii_digit()) {
        "national"
    } else if variant.contains('(') {
        "national_formatted"
    } else {
        "raw"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(phone: &str, original: &str) -> Vec<(String, &'static str)> {
        let e164 = E164::parse(phone).unwrap();
        monitor::variants(&e164, original)
            .into_iter()
            .map(|v| {
                let kind = variant_kind(&e164, &v);
                (v, kind)
            })
            .collect()
    }

    #[test]
    fn every_written_form_of_a_nanp_number_is_named() {
        assert_eq!(
            kinds("+14155550102", "+14155550102"),
            [
                ("+14155550102".into(), "e164"),
                ("4155550102".into(), "national"),
                ("14155550102".into(), "digits"),
                ("(415) 555-0102".into(), "national_formatted"),
            ]
        );
    }

    #[test]
    fn the_form_as_received_is_tried_first_and_named_raw() {
        let found = kinds("+14155550102", " 415.555.0102 ");
        assert_eq!(found[0], ("415.555.0102".into(), "raw"));
        assert_eq!(found.len(), 5, "{found:?}");
        // Received in a form that is also a standard one: tried once, under its name.
        let found = kinds("+14155550102", "4155550102");
        assert_eq!(found[0], ("4155550102".into(), "national"));
        assert_eq!(found.len(), 4, "{found:?}");
    }

    #[test]
    fn an_international_number_has_no_nanp_format() {
        assert_eq!(
            kinds("+5511912345678", "whatsapp:+5511912345678"),
            [
                ("+5511912345678".into(), "e164"),
                ("11912345678".into(), "national"),
                ("5511912345678".into(), "digits"),
            ]
        );
    }

    #[test]
    fn lookups_back_off_from_200_ms_doubling() {
        let waits: Vec<u128> = (1..LOOKUP_ATTEMPTS)
            .map(|a| backoff(a).as_millis())
            .collect();
        assert_eq!(waits, [200, 400]);
    }
}
