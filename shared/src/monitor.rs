//! The Collections Monitor API: who a phone number belongs to, and the tenant's profile.
//! Its lookup matches the number exactly as stored, so a number is tried in every form a
//! person may have typed it ([`variants`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::language::Language;
use crate::phone::E164;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tenant {
    pub tenant_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub preferred_language: Option<Language>,
    /// IANA time zone of the tenant, when the monitor has one: quiet hours are judged in it.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// The numbers on the tenant's record, as stored (any written form).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phone_numbers: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct LookupBody {
    tenant: Tenant,
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("the Collections Monitor answered HTTP {0}")]
    Status(u16),
    #[error("the Collections Monitor could not be reached or timed out")]
    Unreachable,
    #[error("the Collections Monitor's answer could not be read")]
    Decode,
    /// Not called: its circuit breaker is open after many failures (see [`crate::breaker`]).
    #[error("the Collections Monitor was not called: its circuit breaker is open")]
    CircuitOpen,
}

/// The forms a number is looked up in, most likely first: as received, E.164, national
/// digits, all digits, and (NANP) the usual `(415) 555-2671`. Duplicates removed.
pub fn variants(e164: &E164, original: &str) -> Vec<String> {
    let e = e164.as_str();
    let digits: String = e.chars().filter(char::is_ascii_digit).collect();
    let mut out = vec![original.trim().to_owned(), e.to_owned()];
    if let Some((national, written)) = crate::phone::national_forms(e164) {
        out.push(national);
        out.push(digits);
        out.extend(written);
    } else {
        out.push(digits);
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|v| !v.is_empty() && !v.starts_with("whatsapp:") && seen.insert(v.clone()));
    out
}

pub struct MonitorClient {
    http: reqwest::Client,
    base: String,
    api_key: String,
}

impl MonitorClient {
    pub fn new(base: &str, api_key: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: crate::tls::client_builder()
                .connect_timeout(timeout.min(Duration::from_secs(2)))
                .timeout(timeout)
                .build()?,
            base: base.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
        })
    }

    /// The tenant whose record holds exactly this string, or `None` (a definitive answer).
    /// The tenant with this id, or `None` (a definitive answer).
    pub async fn tenant(&self, tenant_id: &str) -> Result<Option<Tenant>, MonitorError> {
        let mut url = reqwest::Url::parse(&self.base).map_err(|_| MonitorError::Unreachable)?;
        url.path_segments_mut()
            .map_err(|_| MonitorError::Unreachable)?
            .extend(["tenants", tenant_id]);
        let response = self
            .http
            .get(url)
            .bearer_auth(&self.api_key)
            .send()
            .await
            .map_err(|_| MonitorError::Unreachable)?;
        Self::tenant_answer(response).await
    }

    async fn tenant_answer(response: reqwest::Response) -> Result<Option<Tenant>, MonitorError> {
        match response.status().as_u16() {
            200 => response
                .json::<LookupBody>()
                .await
                .map(|b| Some(b.tenant))
                .map_err(|_| MonitorError::Decode),
            404 => Ok(None),
            status => Err(MonitorError::Status(status)),
        }
    }

    pub async fn lookup(&self, phone: &str) -> Result<Option<Tenant>, MonitorError> {
        let response = self
            .http
            .get(format!("{}/tenants/lookup", self.base))
            .bearer_auth(&self.api_key)
            .query(&[("phone", phone)])
            .send()
            .await
            .map_err(|_| MonitorError::Unreachable)?;
        Self::tenant_answer(response).await
    }

    pub async fn update_language(
        &self,
        tenant_id: &str,
        language: Language,
        confidence: f64,
        reason: &str,
    ) -> Result<(), MonitorError> {
        let response = self
            .http
            .put(format!("{}/tenants/{tenant_id}/profile", self.base))
            .bearer_auth(&self.api_key)
            .json(&serde_json::json!({
                "preferred_language": language,
                "language_confidence": confidence,
                "source": "parley",
                "reason": reason,
            }))
            .send()
            .await
            .map_err(|_| MonitorError::Unreachable)?;
        match response.status().as_u16() {
            200..=299 => Ok(()),
            status => Err(MonitorError::Status(status)),
        }
    }
}

impl MonitorError {
    /// 4xx other than 404 is our mistake, not worth retrying; the rest may pass.
    pub fn is_transient(&self) -> bool {
        match self {
            MonitorError::Status(s) => *s == 429 || *s >= 500,
            MonitorError::Unreachable | MonitorError::CircuitOpen => true,
            MonitorError::Decode => false,
        }
    }

    /// What a call's result says about the monitor, for its circuit breaker: only the
    /// failures that pass by themselves (5xx, 429, unreachable, timed out) count against it.
    pub fn outcome<T>(result: &Result<T, MonitorError>) -> crate::breaker::Outcome {
        match result {
            Err(e) if e.is_transient() => crate::breaker::Outcome::Failed,
            _ => crate::breaker::Outcome::Answered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nanp_number_is_tried_in_every_common_form() {
        let e = E164::parse("+14155550102").unwrap();
        assert_eq!(
            variants(&e, "+14155550102"),
            [
                "+14155550102",
                "4155550102",
                "14155550102",
                "(415) 555-0102"
            ]
        );
        let w = variants(&e, "whatsapp:+14155550102");
        assert_eq!(
            w[0], "+14155550102",
            "the channel prefix is not part of the number"
        );
    }

    #[test]
    fn international_numbers_get_no_nanp_format() {
        let e = E164::parse("+5511912345678").unwrap();
        assert_eq!(
            variants(&e, "+5511912345678"),
            ["+5511912345678", "11912345678", "5511912345678"]
        );
    }
}
