//! The dashboard: today's (or the week's, or the month's) traffic at a glance, drawn from the
//! hourly counters the stream processor keeps (`store::stats`) — one Query per month the
//! range touches, never a scan — and the send queue's depth from SQS.

use std::collections::BTreeMap;
use std::time::Duration;

use http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use maud::{html, Markup};
use parley::handlers::stats::{bucket, Bucket, Granularity};
use parley::time::Timestamp;

use crate::charts::{bars, columns, Scale, Series};
use crate::pages::{layout, Chrome};
use crate::response::page;
use crate::{errors, ConsoleError, ConsoleHandler};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// The ranges the dashboard offers: (query value, label).
const RANGES: [(&str, &str); 3] = [
    ("24h", "Last 24 hours"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
];

/// What the page shows: buckets in order (empty ones included), the totals, the queue.
#[derive(Debug)]
pub struct Dashboard {
    pub range: &'static str,
    pub granularity: Granularity,
    /// Each bucket's axis label and counters.
    pub buckets: Vec<(String, Bucket)>,
    pub totals: Bucket,
    /// Jobs waiting in the send queue (SQS's approximate count), if SQS answered.
    pub queue_depth: Option<u64>,
}

/// The buckets of a range ending now: every hour of the last 24 (the current one included),
/// or every UTC day of the last 7 or 30, as (start, label).
fn buckets_of(range: &str, now: Timestamp) -> Option<(Granularity, Vec<(Timestamp, String)>)> {
    let (granularity, count, step) = match range {
        "24h" => (Granularity::Hour, 24, HOUR_MS),
        "7d" => (Granularity::Day, 7, DAY_MS),
        "30d" => (Granularity::Day, 30, DAY_MS),
        _ => return None,
    };
    let now_ms = now.unix_millis();
    let last = now_ms - now_ms.rem_euclid(step);
    let starts = (0..count)
        .rev()
        .filter_map(|i| Timestamp::from_unix_millis(last - i * step))
        .map(|t| {
            let text = t.to_string();
            let label = match granularity {
                Granularity::Hour => format!("{}:00", &text[11..13]),
                Granularity::Day => text[5..10].to_owned(),
            };
            (t, label)
        })
        .collect();
    Some((granularity, starts))
}

impl ConsoleHandler {
    /// `GET /console/dashboard?range=24h|7d|30d`: one or two store Queries and one SQS call.
    pub(crate) async fn dashboard(
        &self,
        chrome: &Chrome<'_>,
        req: &Request,
    ) -> Result<Response<Body>, ConsoleError> {
        let query = req.query_string_parameters();
        let asked = query.first("range").unwrap_or("24h");
        let Some(&(range, _)) = RANGES.iter().find(|(value, _)| *value == asked) else {
            return Err(ConsoleError::BadRequest(
                "The range must be 24h, 7d or 30d.".into(),
            ));
        };
        let now = Timestamp::now();
        let (granularity, starts) = buckets_of(range, now).ok_or(ConsoleError::NotFound)?;
        let from = starts.first().map_or(now, |(t, _)| *t);
        let hours = self
            .store
            .hourly_stats(from, now.plus(Duration::from_millis(1)))
            .await?;
        let (filled, totals) = bucket(&hours, granularity);
        let mut by_start: BTreeMap<String, Bucket> =
            filled.into_iter().map(|b| (b.start.clone(), b)).collect();
        let buckets = starts
            .into_iter()
            .map(|(start, label)| {
                let counters = by_start.remove(&start.to_string()).unwrap_or_default();
                (label, counters)
            })
            .collect();
        let queue_depth = match self.send.queue.depth().await {
            Ok(depth) => Some(depth),
            Err(e) => {
                tracing::warn!(error = %parley::error::chain(&e), "the dashboard could not read the queue's depth");
                None
            }
        };
        let view = Dashboard {
            range,
            granularity,
            buckets,
            totals,
            queue_depth,
        };
        Ok(page(StatusCode::OK, render(chrome, &view)))
    }
}

fn series<'a>(
    view: &Dashboard,
    name: &'a str,
    class: &'a str,
    value: impl Fn(&Bucket) -> f64,
) -> Series<'a> {
    Series {
        name,
        class,
        values: view.buckets.iter().map(|(_, b)| value(b)).collect(),
    }
}

fn rate(b: &Bucket) -> Option<f64> {
    b.delivery_rate
}

pub fn render(chrome: &Chrome<'_>, view: &Dashboard) -> Markup {
    let labels: Vec<String> = view.buckets.iter().map(|(l, _)| l.clone()).collect();
    let totals = &view.totals;
    let per = match view.granularity {
        Granularity::Hour => "per hour (UTC)",
        Granularity::Day => "per day (UTC)",
    };
    let failures: Vec<(String, u64)> = totals
        .failures_by_code
        .iter()
        .map(|(code, n)| (code.clone(), *n))
        .collect();
    let languages: Vec<(String, u64)> = totals
        .languages
        .iter()
        .map(|(language, n)| (language.clone(), *n))
        .collect();
    layout(
        "Dashboard",
        Some(chrome),
        html! {
            h1 { "Dashboard" }
            form.filters method="get" action="/console/dashboard" {
                label for="range" { "Range" }
                select #range name="range" {
                    @for (value, label) in RANGES {
                        option value=(value) selected[value == view.range] { (label) }
                    }
                }
                button type="submit" { "Show" }
            }
            dl.tiles {
                div { dt { "Texts in" } dd #total-inbound { (totals.inbound) } }
                div { dt { "Messages out" } dd #total-outbound { (totals.outbound) } }
                div { dt { "Delivered" } dd #total-delivered { (totals.delivered) } }
                div { dt { "Failed" } dd #total-failed { (totals.failed) } }
                div { dt { "Delivery rate" } dd #delivery-rate {
                    @match rate(totals) { Some(r) => (Scale::Share.format(r)), None => "—" }
                } }
                div { dt { "Opt-outs / opt-ins" } dd #total-consent { (totals.opt_outs) " / " (totals.opt_ins) } }
                div { dt { "In the send queue now" } dd #queue-depth {
                    @match view.queue_depth { Some(n) => (n), None => "unknown" }
                } }
            }
            h2 { "Messages " (per) }
            (columns("chart-traffic", &format!("Texts in and messages out {per}"), &labels, &[
                series(view, "in", "in", |b| b.inbound as f64),
                series(view, "out", "out", |b| b.outbound as f64),
            ], Scale::Count))
            h2 { "Delivery" }
            (columns("chart-delivery", &format!("Delivered and failed {per}"), &labels, &[
                series(view, "delivered", "ok", |b| b.delivered as f64),
                series(view, "failed", "bad", |b| b.failed as f64),
            ], Scale::Count))
            (columns("chart-rate", &format!("Delivery rate {per} (delivered of delivered + failed)"), &labels, &[
                series(view, "delivery rate", "ok", |b| rate(b).unwrap_or(0.0)),
            ], Scale::Share))
            h2 { "Failures by Twilio error code" }
            (bars("chart-failures", "Failures by Twilio error code", "bad", &failures, "no failures in this range"))
            @if !failures.is_empty() {
                dl.codes {
                    @for (code, _) in &failures {
                        dt { a href=(errors::docs_url(code)) { (code) } }
                        dd { (errors::meaning(code).unwrap_or("see Twilio's description")) }
                    }
                }
            }
            h2 { "Opt-outs and opt-ins" }
            (columns("chart-consent", &format!("Opt-outs (STOP) and opt-ins (START) {per}"), &labels, &[
                series(view, "opt-outs", "bad", |b| b.opt_outs as f64),
                series(view, "opt-ins", "ok", |b| b.opt_ins as f64),
            ], Scale::Count))
            h2 { "Language of texts in" }
            (bars("chart-languages", "Language of texts in", "in", &languages, "no texts in this range"))
            p.hint { "Counts come from the table's stream, at least once: a retried batch can count a message twice." }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_24_hour_buckets_ending_with_the_current_hour() {
        let now = Timestamp::parse("2026-11-30T14:25:00.000Z").unwrap();
        let (granularity, starts) = buckets_of("24h", now).unwrap();
        assert_eq!(granularity, Granularity::Hour);
        assert_eq!(starts.len(), 24);
        assert_eq!(starts[23].0.to_string(), "2026-11-30T14:00:00.000Z");
        assert_eq!(starts[23].1, "14:00");
        assert_eq!(starts[0].0.to_string(), "2026-11-29T15:00:00.000Z");
    }

    #[test]
    fn weeks_and_months_are_utc_days() {
        let now = Timestamp::parse("2026-12-01T00:10:00.000Z").unwrap();
        let (granularity, starts) = buckets_of("7d", now).unwrap();
        assert_eq!(granularity, Granularity::Day);
        assert_eq!(starts.len(), 7);
        assert_eq!(starts[6].0.to_string(), "2026-12-01T00:00:00.000Z");
        assert_eq!(starts[0].1, "11-25");
        assert_eq!(buckets_of("30d", now).unwrap().1.len(), 30);
        assert!(buckets_of("1y", now).is_none());
    }

    #[test]
    fn the_page_draws_every_bucket_and_the_totals() {
        let mut busy = Bucket {
            inbound: 3,
            delivered: 1,
            failed: 1,
            delivery_rate: Some(0.5),
            failures_by_code: [("30003".to_owned(), 1)].into(),
            ..Default::default()
        };
        let view = Dashboard {
            range: "24h",
            granularity: Granularity::Hour,
            buckets: vec![
                ("13:00".into(), Bucket::default()),
                ("14:00".into(), busy.clone()),
            ],
            totals: {
                busy.languages.insert("es".into(), 3);
                busy
            },
            queue_depth: Some(7),
        };
        let chrome = Chrome {
            key_id: "k",
            csrf: "c",
            admin: false,
            current: "dashboard",
        };
        let html = render(&chrome, &view).into_string();
        assert!(html.contains("<dd id=\"delivery-rate\">50 %</dd>"));
        assert!(html.contains("<dd id=\"queue-depth\">7</dd>"));
        assert!(html.contains("<title>14:00, in: 3</title>"));
        assert!(html.contains("<title>13:00, in: 0</title>"));
        assert!(html.contains("the handset is unreachable"));
        assert!(html.contains("<title>es: 3</title>"));
    }
}
