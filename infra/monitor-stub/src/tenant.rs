//! Tenants as the Collections Monitor stores them, and the fixtures the stub starts with.

use serde::{Deserialize, Serialize};

/// The languages the Collections Monitor accepts as a tenant's preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    En,
    Es,
    Pt,
}

impl Language {
    /// `"en"`, `"es"` or `"pt"`; anything else (other case included) is not a language here.
    pub fn parse(code: &str) -> Option<Self> {
        match code {
            "en" => Some(Self::En),
            "es" => Some(Self::Es),
            "pt" => Some(Self::Pt),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Es => "es",
            Self::Pt => "pt",
        }
    }
}

/// One tenant. `phone_numbers` are kept exactly as typed into the Monitor; lookups compare them
/// as strings, so `(415) 555-0102` and `+14155550102` are different numbers to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    pub tenant_id: String,
    pub name: String,
    pub phone_numbers: Vec<String>,
    #[serde(default)]
    pub preferred_language: Option<Language>,
    /// IANA time zone of the tenant, when the platform knows it (Parley judges quiet hours
    /// in it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

impl Tenant {
    pub fn new<I, S>(
        tenant_id: impl Into<String>,
        name: impl Into<String>,
        phone_numbers: I,
    ) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            tenant_id: tenant_id.into(),
            name: name.into(),
            phone_numbers: phone_numbers.into_iter().map(Into::into).collect(),
            preferred_language: None,
            time_zone: None,
        }
    }

    pub fn with_time_zone(mut self, zone: impl Into<String>) -> Self {
        self.time_zone = Some(zone.into());
        self
    }

    pub fn with_language(mut self, language: Language) -> Self {
        self.preferred_language = Some(language);
        self
    }

    /// True when one of the stored strings is exactly `phone`.
    pub fn has_number(&self, phone: &str) -> bool {
        self.phone_numbers.iter().any(|n| n == phone)
    }
}

/// The tenants the stub starts with (and returns to on reset), one per storage format:
///
/// | id | name | stored numbers | language |
/// |---|---|---|---|
/// | t-1001 | Ana Souza | `+14155550101` (E.164) | — |
/// | t-1002 | Luis Ortega | `(415) 555-0102`, `+1 628 555 0199` (formatted, two numbers) | — |
/// | t-1003 | Grace Kim | `4155550103` (national digits) | — |
/// | t-1004 | Joao Lima | `14155550104` (digits with country code) | — (time zone Europe/Lisbon) |
/// | t-1005 | Maria Fernandez | `415-555-0105` (dashed) | `es` |
pub fn default_fixtures() -> Vec<Tenant> {
    vec![
        Tenant::new("t-1001", "Ana Souza", ["+14155550101"]),
        Tenant::new(
            "t-1002",
            "Luis Ortega",
            ["(415) 555-0102", "+1 628 555 0199"],
        ),
        Tenant::new("t-1003", "Grace Kim", ["4155550103"]),
        Tenant::new("t-1004", "Joao Lima", ["14155550104"]).with_time_zone("Europe/Lisbon"),
        Tenant::new("t-1005", "Maria Fernandez", ["415-555-0105"]).with_language(Language::Es),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_cover_each_storage_format_once() {
        let fixtures = default_fixtures();
        let numbers: Vec<&str> = fixtures
            .iter()
            .flat_map(|t| t.phone_numbers.iter().map(String::as_str))
            .collect();
        assert_eq!(
            numbers,
            [
                "+14155550101",
                "(415) 555-0102",
                "+1 628 555 0199",
                "4155550103",
                "14155550104",
                "415-555-0105"
            ]
        );
        assert_eq!(fixtures[4].preferred_language, Some(Language::Es));
    }

    #[test]
    fn only_the_three_lowercase_codes_are_languages() {
        assert_eq!(Language::parse("pt"), Some(Language::Pt));
        assert_eq!(Language::parse("ES"), None);
        assert_eq!(Language::parse("fr"), None);
        assert_eq!(Language::Es.as_str(), "es");
    }
}
