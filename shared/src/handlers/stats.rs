//! `GET /stats?from&to&granularity`: traffic counters by hour or by day, from the hourly
//! aggregates the stream processor keeps (`store::stats`) — one Query per month the range
//! touches, never a scan of messages.

use std::collections::BTreeMap;
use std::time::Duration;

use lambda_http::{Request, RequestExt};
use serde::Serialize;

use crate::error::ApiError;
use crate::store::{HourStats, Store};
use crate::time::Timestamp;

pub const ROUTE: &str = "/stats";
/// The longest range one request may ask for: at most four monthly partitions.
const MAX_RANGE: Duration = Duration::from_secs(92 * 24 * 3600);
const DEFAULT_RANGE: Duration = Duration::from_secs(24 * 3600);

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    Hour,
    Day,
}

/// The counters of one bucket (an hour or a UTC day).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Bucket {
    /// The bucket's start, RFC 3339 UTC.
    pub start: String,
    pub inbound: u64,
    pub outbound: u64,
    pub sent: u64,
    pub delivered: u64,
    pub failed: u64,
    /// `delivered / (delivered + failed)`, when either happened.
    pub delivery_rate: Option<f64>,
    pub opt_outs: u64,
    pub opt_ins: u64,
    pub failures_by_code: BTreeMap<String, u64>,
    pub languages: BTreeMap<String, u64>,
}

impl Bucket {
    fn add(&mut self, h: &HourStats) {
        self.inbound += h.inbound;
        self.outbound += h.outbound;
        self.sent += h.sent;
        self.delivered += h.delivered;
        self.failed += h.failed;
        self.opt_outs += h.opt_outs;
        self.opt_ins += h.opt_ins;
        for (code, n) in &h.failures_by_code {
            *self.failures_by_code.entry(code.clone()).or_default() += n;
        }
        for (language, n) in &h.languages {
            *self.languages.entry(language.clone()).or_default() += n;
        }
        let settled = self.delivered + self.failed;
        self.delivery_rate = (settled > 0).then(|| self.delivered as f64 / settled as f64);
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Serialize)]
pub struct Stats {
    pub from: Timestamp,
    pub to: Timestamp,
    pub granularity: Granularity,
    /// Only buckets with traffic, oldest first.
    pub buckets: Vec<Bucket>,
    /// The whole range.
    pub totals: Bucket,
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message)
}

/// The range and granularity a request asks for.
pub fn range(
    req: &Request,
    now: Timestamp,
) -> Result<(Timestamp, Timestamp, Granularity), ApiError> {
    let query = req.query_string_parameters();
    let instant = |name: &'static str| crate::http::instant_param(query.first(name), name);
    let to = instant("to")?.unwrap_or(now);
    let from = instant("from")?.unwrap_or_else(|| to.minus(DEFAULT_RANGE));
    if from >= to {
        return Err(bad("invalid_range", "from must be before to"));
    }
    if from.until(to) > MAX_RANGE {
        return Err(bad("invalid_range", "a range spans at most 92 days"));
    }
    let granularity = match query.first("granularity") {
        None | Some("hour") => Granularity::Hour,
        Some("day") => Granularity::Day,
        Some(_) => {
            return Err(bad(
                "invalid_granularity",
                "granularity must be hour or day",
            ))
        }
    };
    Ok((from, to, granularity))
}

/// Sums hours into the buckets of `granularity`.
pub fn bucket(hours: &[HourStats], granularity: Granularity) -> (Vec<Bucket>, Bucket) {
    let mut buckets: BTreeMap<String, Bucket> = BTreeMap::new();
    let mut totals = Bucket::default();
    for h in hours {
        let start = match granularity {
            Granularity::Hour => h.hour.clone(),
            Granularity::Day => format!("{}T00:00:00.000Z", &h.hour[..10]),
        };
        buckets
            .entry(start.clone())
            .or_insert_with(|| Bucket {
                start,
                ..Default::default()
            })
            .add(h);
        totals.add(h);
    }
    (buckets.into_values().collect(), totals)
}

/// `GET /stats`.
pub async fn stats(store: &Store, req: &Request, now: Timestamp) -> Result<Stats, ApiError> {
    let (from, to, granularity) = range(req, now)?;
    let hours = store
        .hourly_stats(from, to)
        .await
        .map_err(|e| ApiError::Unavailable(e.into()))?;
    let (buckets, mut totals) = bucket(&hours, granularity);
    totals.start = from.to_string();
    Ok(Stats {
        from,
        to,
        granularity,
        buckets,
        totals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour(at: &str, delivered: u64, failed: u64) -> HourStats {
        HourStats {
            hour: at.into(),
            delivered,
            failed,
            failures_by_code: [("30003".to_owned(), failed)].into(),
            ..Default::default()
        }
    }

    #[test]
    fn days_sum_their_hours_and_rates_follow_the_sums() {
        let hours = [
            hour("2026-11-29T23:00:00.000Z", 1, 0),
            hour("2026-11-30T09:00:00.000Z", 3, 1),
            hour("2026-11-30T10:00:00.000Z", 0, 1),
        ];
        let (days, totals) = bucket(&hours, Granularity::Day);
        assert_eq!(days.len(), 2);
        assert_eq!(days[1].start, "2026-11-30T00:00:00.000Z");
        assert_eq!((days[1].delivered, days[1].failed), (3, 2));
        assert_eq!(days[1].delivery_rate, Some(0.6));
        assert_eq!(days[1].failures_by_code["30003"], 2);
        assert_eq!(totals.delivered, 4);
        let (by_hour, _) = bucket(&hours, Granularity::Hour);
        assert_eq!(by_hour.len(), 3);
        assert_eq!(by_hour[2].delivery_rate, Some(0.0));
    }
}
