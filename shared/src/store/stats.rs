//! Hourly traffic counters behind `GET /stats` and the console's dashboard, kept by the stream
//! processor (see `handlers/inbound_processor/projection.rs`), so reading a day of traffic is
//! one Query of 24 small items, never a scan of messages.
//!
//! Counters are at least once: Lambda retries a stream batch from its first failed record, and
//! a record after it that had already been counted is counted again. The processor counts each
//! record as its last step, so that takes a failure on a later record in the same batch; the
//! dashboard is an operator's view, not a bill.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;

use super::{aws_error, keys, s, Store, StoreError};
use crate::language::Language;
use crate::time::Timestamp;

/// One thing that happened, counted in the hour it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Count {
    Inbound {
        language: Language,
    },
    /// An outbound message accepted (sent now, scheduled or deferred).
    Outbound,
    Sent,
    Delivered,
    /// Failed or undelivered, with Twilio's error code when it gave one.
    Failed {
        error_code: Option<String>,
    },
    OptOut,
    OptIn,
}

impl Count {
    /// The item attribute it adds one to.
    fn attribute(&self) -> String {
        match self {
            Count::Inbound { .. } => "inbound".into(),
            Count::Outbound => "outbound".into(),
            Count::Sent => "sent".into(),
            Count::Delivered => "delivered".into(),
            Count::Failed { .. } => "failed".into(),
            Count::OptOut => "opt_outs".into(),
            Count::OptIn => "opt_ins".into(),
        }
    }

    /// A second attribute, for the breakdowns: the language mix and failures by code.
    fn breakdown(&self) -> Option<String> {
        match self {
            Count::Inbound { language } => Some(format!("{LANGUAGE}{}", language.as_str())),
            Count::Failed { error_code } => Some(format!(
                "{ERROR}{}",
                error_code
                    .as_deref()
                    .filter(|c| is_code(c))
                    .unwrap_or("none")
            )),
            _ => None,
        }
    }
}

const LANGUAGE: &str = "lang_";
const ERROR: &str = "error_";

/// Twilio's error codes are numbers; anything else would make an attribute name of
/// whatever a callback carried.
fn is_code(code: &str) -> bool {
    (1..=8).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit())
}

/// One hour's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HourStats {
    /// The hour's start, RFC 3339 UTC.
    pub hour: String,
    pub inbound: u64,
    pub outbound: u64,
    pub sent: u64,
    pub delivered: u64,
    pub failed: u64,
    pub opt_outs: u64,
    pub opt_ins: u64,
    /// Failures by Twilio error code (`none` when Twilio gave none).
    pub failures_by_code: BTreeMap<String, u64>,
    /// Inbound messages by detected language.
    pub languages: BTreeMap<String, u64>,
}

impl HourStats {
    fn from_item(item: &HashMap<String, AttributeValue>) -> Option<Self> {
        let month = item
            .get("pk")?
            .as_s()
            .ok()?
            .strip_prefix(keys::STATS_PREFIX)?;
        let sk = item.get("sk")?.as_s().ok()?;
        let mut stats = HourStats {
            hour: format!("{month}-{sk}:00:00.000Z"),
            ..Default::default()
        };
        for (name, value) in item {
            let Some(n) = value.as_n().ok().and_then(|n| n.parse::<u64>().ok()) else {
                continue;
            };
            match name.as_str() {
                "inbound" => stats.inbound = n,
                "outbound" => stats.outbound = n,
                "sent" => stats.sent = n,
                "delivered" => stats.delivered = n,
                "failed" => stats.failed = n,
                "opt_outs" => stats.opt_outs = n,
                "opt_ins" => stats.opt_ins = n,
                other => {
                    if let Some(code) = other.strip_prefix(ERROR) {
                        stats.failures_by_code.insert(code.to_owned(), n);
                    } else if let Some(language) = other.strip_prefix(LANGUAGE) {
                        stats.languages.insert(language.to_owned(), n);
                    }
                }
            }
        }
        Some(stats)
    }
}

/// `2026-11-30T14:05:09.123Z` → (`2026-11`, `30`, 14).
fn hour_of(at: Timestamp) -> (String, String, u8) {
    let text = at.to_string();
    let hour = text[11..13].parse().unwrap_or(0);
    (text[..7].to_owned(), text[8..10].to_owned(), hour)
}

impl Store {
    /// Adds `counts` to the counters of the hour `at` falls in: one `UpdateItem`.
    pub async fn add_counts(&self, at: Timestamp, counts: &[Count]) -> Result<(), StoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        let (month, day, hour) = hour_of(at);
        let mut totals: BTreeMap<String, u64> = BTreeMap::new();
        for count in counts {
            *totals.entry(count.attribute()).or_default() += 1;
            if let Some(breakdown) = count.breakdown() {
                *totals.entry(breakdown).or_default() += 1;
            }
        }
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::stats_pk(&month)))
            .key("sk", s(keys::stats_sk(&day, hour)))
            .expression_attribute_values(":entity", s(keys::Entity::Stats.as_str()));
        let mut adds = Vec::new();
        for (i, (name, n)) in totals.iter().enumerate() {
            adds.push(format!("#c{i} :c{i}"));
            update = update
                .expression_attribute_names(format!("#c{i}"), name)
                .expression_attribute_values(format!(":c{i}"), AttributeValue::N(n.to_string()));
        }
        update
            .update_expression(format!("SET entity = :entity ADD {}", adds.join(", ")))
            .send()
            .await
            .map_err(|e| aws_error("UpdateItem", &e))?;
        Ok(())
    }

    /// Every hour with traffic from `from` (inclusive) to `to` (exclusive), oldest first: one
    /// Query per UTC month the range touches.
    pub async fn hourly_stats(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<HourStats>, StoreError> {
        let (first_month, first_day, first_hour) = hour_of(from);
        let (last_month, last_day, last_hour) = hour_of(to);
        let mut hours = Vec::new();
        for month in months_between(&first_month, &last_month) {
            let low = match month == first_month {
                true => keys::stats_sk(&first_day, first_hour),
                false => keys::stats_sk("00", 0),
            };
            // `to` is exclusive: its own hour counts only if it has started.
            let high = match month == last_month {
                true => keys::stats_sk(&last_day, last_hour),
                false => keys::stats_sk("99", 99),
            };
            let mut start = None;
            loop {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("pk = :pk AND sk BETWEEN :low AND :high")
                    .expression_attribute_values(":pk", s(keys::stats_pk(&month)))
                    .expression_attribute_values(":low", s(&low))
                    .expression_attribute_values(":high", s(&high))
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| aws_error("Query", &e))?;
                hours.extend(
                    out.items()
                        .iter()
                        .filter_map(HourStats::from_item)
                        .filter(|h| h.hour < to.to_string()),
                );
                start = out.last_evaluated_key;
                if start.is_none() {
                    break;
                }
            }
        }
        Ok(hours)
    }
}

/// `YYYY-MM` from `first` to `last`, both included.
fn months_between(first: &str, last: &str) -> Vec<String> {
    let parse =
        |m: &str| -> Option<(i32, u32)> { Some((m[..4].parse().ok()?, m[5..7].parse().ok()?)) };
    let (Some((mut year, mut month)), Some(end)) = (parse(first), parse(last)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while (year, month) <= end {
        out.push(format!("{year:04}-{month:02}"));
        (year, month) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_touch_each_month_once() {
        assert_eq!(
            months_between("2026-11", "2027-02"),
            ["2026-11", "2026-12", "2027-01", "2027-02"]
        );
        assert_eq!(months_between("2026-11", "2026-11"), ["2026-11"]);
        assert!(months_between("2026-12", "2026-11").is_empty());
    }

    #[test]
    fn only_numeric_codes_name_an_attribute() {
        let failed = |code: &str| {
            Count::Failed {
                error_code: Some(code.into()),
            }
            .breakdown()
        };
        assert_eq!(failed("30003").unwrap(), "error_30003");
        assert_eq!(failed("#pk").unwrap(), "error_none");
        assert_eq!(failed("123456789").unwrap(), "error_none");
        assert_eq!(
            Count::Inbound {
                language: Language::Es
            }
            .breakdown()
            .unwrap(),
            "lang_es"
        );
    }

    #[test]
    fn an_item_reads_back_as_its_hour() {
        let n = |v: u64| AttributeValue::N(v.to_string());
        let item: HashMap<String, AttributeValue> = [
            ("pk".to_owned(), s("STATS#2026-11")),
            ("sk".to_owned(), s("30T14")),
            ("inbound".to_owned(), n(3)),
            ("failed".to_owned(), n(1)),
            ("error_30003".to_owned(), n(1)),
            ("lang_en".to_owned(), n(3)),
            ("entity".to_owned(), s("stats")),
        ]
        .into();
        let stats = HourStats::from_item(&item).unwrap();
        assert_eq!(stats.hour, "2026-11-30T14:00:00.000Z");
        assert_eq!((stats.inbound, stats.failed), (3, 1));
        assert_eq!(stats.failures_by_code["30003"], 1);
        assert_eq!(stats.languages["en"], 3);
    }
}
