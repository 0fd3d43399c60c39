//! Rate-limited logging, for events a misbehaving peer or an overload can repeat thousands of
//! times a second.

use std::time::{Duration, Instant};

/// Allows one log line per period and counts the ones it held back.
#[derive(Debug)]
pub(crate) struct LogThrottle {
    period: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogThrottle {
    pub fn new(period: Duration) -> Self {
        Self { period, last: None, suppressed: 0 }
    }

    /// `Some(held back since the last line)` when a line may be logged now.
    pub fn hit(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(last) if now.duration_since(last) < self.period => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}
