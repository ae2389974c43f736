//! A pacing rate limiter: hands out evenly spaced send slots, so the sender's throughput is
//! never exceeded even when a whole batch is ready at once.
//!
//! Slots left unused are made up, up to [`CARRY`] of them: a worker pauses between SQS batches
//! (recording one, receiving and claiming the next), and a limiter that forgot that time would
//! send measurably below the configured rate. After an idle spell, at most one second's worth
//! of messages goes at once, which Twilio queues within the sender's throughput.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// How much unused sending time is carried forward.
pub const CARRY: Duration = Duration::from_secs(1);

pub struct RateLimiter {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// `None` for a rate of zero (no limit).
    pub fn per_second(rate: f64) -> Option<Self> {
        (rate > 0.0).then(|| Self {
            interval: Duration::from_secs_f64(1.0 / rate),
            next: Mutex::new(None),
        })
    }

    /// Waits for the next free slot.
    pub async fn acquire(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let earliest = now.checked_sub(CARRY).unwrap_or(now);
            let slot = next.map_or(now, |n| n.max(earliest));
            *next = Some(slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slots_are_evenly_spaced() {
        let limiter = RateLimiter::per_second(10.0).unwrap();
        let start = Instant::now();
        for _ in 0..11 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert!(RateLimiter::per_second(0.0).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_is_made_up_so_the_long_run_rate_holds() {
        let limiter = RateLimiter::per_second(10.0).unwrap();
        let start = Instant::now();
        for _ in 0..10 {
            limiter.acquire().await;
        }
        // A batch boundary: 300 ms without sending.
        tokio::time::sleep(Duration::from_millis(300)).await;
        for _ in 0..10 {
            limiter.acquire().await;
        }
        // 20 slots at 10/s: the last one at 1.9 s, as if there had been no pause.
        assert_eq!(start.elapsed(), Duration::from_millis(1900));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_spell_gives_at_most_one_second_of_burst() {
        let limiter = RateLimiter::per_second(10.0).unwrap();
        limiter.acquire().await;
        tokio::time::sleep(Duration::from_secs(30)).await;
        let idle_end = Instant::now();
        // The ten slots of the last second, and the present one.
        for _ in 0..11 {
            limiter.acquire().await;
        }
        assert_eq!(
            idle_end.elapsed(),
            Duration::ZERO,
            "one second's worth at once"
        );
        limiter.acquire().await;
        assert_eq!(
            idle_end.elapsed(),
            Duration::from_millis(100),
            "then paced again"
        );
    }
}
