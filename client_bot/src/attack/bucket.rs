//! The rate cap of a slow reader: a token bucket on the reading side, in bytes.
//!
//! The clock is an argument, so the arithmetic is tested without sleeping.

use std::time::{Duration, Instant};

/// Bytes a reader may take from its socket: refilled at `rate` bytes a second, holding at most
/// `burst`. A small burst makes the reader drain its socket steadily, as a client on a thin
/// link would, rather than in rare large gulps the server would see as stalls.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`: `rate` bytes a second (above 0), at most `burst` bytes at once
    /// (at least 1).
    pub fn new(rate: f64, burst: usize, now: Instant) -> Self {
        let burst = burst.max(1) as f64;
        Self { rate: rate.max(f64::MIN_POSITIVE), burst, tokens: burst, last: now }
    }

    fn refill(&mut self, now: Instant) {
        // A clock that went backwards (it does not, for `Instant`) adds nothing.
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = self.last.max(now);
    }

    /// Whole bytes that may be read at `now`.
    pub fn available(&mut self, now: Instant) -> usize {
        self.refill(now);
        self.tokens as usize
    }

    /// Spends `n` bytes just read. The bucket may go below zero when a read returned more than
    /// was available (it cannot: reads are sized by [`available`](Self::available)), which then
    /// delays the next read by as much.
    pub fn take(&mut self, n: usize, now: Instant) {
        self.refill(now);
        self.tokens -= n as f64;
    }

    /// How long from `now` until `n` bytes (at most the burst) may be read.
    pub fn wait_for(&mut self, n: usize, now: Instant) -> Duration {
        self.refill(now);
        let missing = (n as f64).min(self.burst) - self.tokens;
        if missing <= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(missing / self.rate) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn starts_full_and_refills_at_the_rate_up_to_the_burst() {
        let t0 = Instant::now();
        // 250,000 bytes/s (2 Mbit/s), bursts of 16 KiB.
        let mut b = TokenBucket::new(250_000.0, 16_384, t0);
        assert_eq!(b.available(t0), 16_384);
        b.take(16_384, t0);
        assert_eq!(b.available(t0), 0);
        // 10 ms at 250 kB/s is 2,500 bytes.
        assert_eq!(b.available(t0 + ms(10)), 2_500);
        // Never more than the burst, however long it waited.
        assert_eq!(b.available(t0 + Duration::from_secs(60)), 16_384);
    }

    #[test]
    fn the_wait_is_the_missing_bytes_at_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1_000.0, 4_096, t0);
        b.take(4_096, t0);
        assert_eq!(b.wait_for(500, t0), ms(500));
        assert_eq!(b.wait_for(500, t0 + ms(200)), ms(300));
        assert_eq!(b.wait_for(500, t0 + ms(600)), Duration::ZERO);
        // Asking for more than the burst waits for the burst only: it can never hold more.
        let mut b = TokenBucket::new(1_000.0, 100, t0);
        b.take(100, t0);
        assert_eq!(b.wait_for(10_000, t0), ms(100));
    }

    #[test]
    fn over_a_long_run_the_bytes_read_follow_the_rate() {
        // A reader that reads whatever is available every 7 ms for 10 s reads the burst plus
        // 10 s at the rate: the cap holds however the reads fall.
        let t0 = Instant::now();
        let mut b = TokenBucket::new(250_000.0, 16_384, t0);
        let mut read = 0;
        let mut t = t0;
        while t < t0 + Duration::from_secs(10) {
            let n = b.available(t);
            b.take(n, t);
            read += n;
            t += ms(7);
        }
        let expected = 16_384 + 2_500_000;
        assert!(read <= expected && read >= expected - 2_000, "{read}");
    }

    #[test]
    fn overspending_delays_the_next_read() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1_000.0, 100, t0);
        // 200 bytes owed; 100 ms later still 100 owed, so 100 bytes are 200 ms away.
        b.take(300, t0);
        assert_eq!(b.available(t0 + ms(100)), 0);
        assert_eq!(b.wait_for(100, t0 + ms(100)), ms(200));
    }
}
