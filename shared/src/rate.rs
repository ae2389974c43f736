//! A pacing rate limiter: hands out evenly spaced send slots, so the sender's throughput is
//! never exceeded even when a whole batch is ready at once.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

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
            let slot = next.map_or(now, |n| n.max(now));
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
}
