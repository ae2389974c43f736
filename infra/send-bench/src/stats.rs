//! Summaries of samples and rates from timestamps: the pure arithmetic of the report.

use std::time::Duration;

/// Count, total, mean, nearest-rank percentiles and maximum of a set of durations.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub total: Duration,
    pub mean: Duration,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Summary {
    /// Panics on an empty set: callers only summarise what they measured.
    pub fn of(samples: &[Duration]) -> Self {
        assert!(!samples.is_empty(), "no samples");
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let total: Duration = sorted.iter().sum();
        let rank = |p: f64| {
            let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            sorted[i.clamp(1, sorted.len()) - 1]
        };
        Self {
            n: sorted.len(),
            total,
            mean: total / sorted.len() as u32,
            p50: rank(50.0),
            p90: rank(90.0),
            p99: rank(99.0),
            max: sorted[sorted.len() - 1],
        }
    }
}

/// The rate of events at `times` (seconds, any order): `n - 1` intervals over the span from
/// the first to the last, so `n` perfectly paced events at `r`/s measure exactly `r`.
/// `None` with fewer than two events or a zero span.
pub fn rate_between(times: &[f64]) -> Option<(f64, f64)> {
    if times.len() < 2 {
        return None;
    }
    let first = times.iter().copied().fold(f64::INFINITY, f64::min);
    let last = times.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = last - first;
    (span > 0.0).then(|| (span, (times.len() - 1) as f64 / span))
}

/// The intervals between consecutive events at `times` (seconds, any order).
pub fn gaps(times: &[f64]) -> Vec<Duration> {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
        .windows(2)
        .map(|w| Duration::from_secs_f64((w[1] - w[0]).max(0.0)))
        .collect()
}

/// Signed deviation of `measured` from `target`, in percent of `target`.
pub fn deviation_percent(measured: f64, target: f64) -> f64 {
    (measured - target) / target * 100.0
}

pub fn per_minute(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64() * 60.0
}

pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evenly_paced_events_measure_their_rate_exactly() {
        let times: Vec<f64> = (0..401).map(|i| 100.0 + f64::from(i) * 0.05).collect();
        let (span, rate) = rate_between(&times).unwrap();
        assert!((span - 20.0).abs() < 1e-9);
        assert!((rate - 20.0).abs() < 1e-9);
        assert_eq!(rate_between(&[1.0]), None);
        assert_eq!(rate_between(&[1.0, 1.0]), None);
    }

    #[test]
    fn gaps_are_sorted_intervals_and_deviation_is_signed() {
        let g = gaps(&[0.3, 0.0, 0.1]);
        assert_eq!(g.len(), 2);
        assert!((g[0].as_secs_f64() - 0.1).abs() < 1e-9);
        assert!((g[1].as_secs_f64() - 0.2).abs() < 1e-9);
        assert!((deviation_percent(19.0, 20.0) + 5.0).abs() < 1e-9);
        assert!((per_minute(1000, Duration::from_secs(30)) - 2000.0).abs() < 1e-9);
    }

    #[test]
    fn summary_uses_nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let s = Summary::of(&samples);
        assert_eq!(s.n, 100);
        assert_eq!(s.p50, Duration::from_millis(50));
        assert_eq!(s.p90, Duration::from_millis(90));
        assert_eq!(s.p99, Duration::from_millis(99));
        assert_eq!(s.max, Duration::from_millis(100));
        assert_eq!(s.total, Duration::from_millis(5050));
    }
}
