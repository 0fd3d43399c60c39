//! Echo accounting for the light load (`client_bot light-load --echoes`): which of a
//! connection's moves came back as its own `S_BroadcastMove`, how fast, and which did not within
//! [`ECHO_LOST_AFTER`], the bots' rule for a lost echo.
//!
//! The light load does not know its player ids, so an echo is recognised by its position: the
//! server echoes a move inside the world's bounds at exactly the coordinates sent, and a
//! neighbour standing on the very same floats is vanishingly rare. Echoes come back in the order
//! the moves were sent, so an echo also tells that every move before it that has not come back
//! never will. Parsing goes through `shared`'s own frame decoder and packet decoder.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use shared::FrameDecoder;
use shared::S_BroadcastMove;

/// An echo later than this counts as lost, as the bots count it.
pub const ECHO_LOST_AFTER: Duration = Duration::from_secs(2);

/// Moves a connection may have in flight before the oldest is given up as lost (a server that
/// answers nothing must not grow the load's memory).
const IN_FLIGHT_MAX: usize = 64;

/// The largest packet read: anything larger is not a frame of the course's protocol, and the
/// connection's echoes are no longer counted.
const MAX_FRAME: usize = 64 * 1024;

/// One connection's moves in flight and the bytes of a packet not yet whole.
#[derive(Debug)]
pub struct EchoTracker {
    frames: FrameDecoder,
    /// (x, z, when sent, whether it counts: sent inside the window).
    in_flight: VecDeque<(f32, f32, Instant, bool)>,
    /// The stream stopped making sense: nothing more is counted.
    broken: bool,
}

/// What the echoes of every connection add up to, for the moves sent inside the window.
#[derive(Debug)]
pub struct EchoCounts {
    /// Round trips of the echoes within [`ECHO_LOST_AFTER`], microseconds.
    rtt_us: Histogram<u64>,
    /// Echoes later than [`ECHO_LOST_AFTER`], or never seen.
    lost: u64,
}

/// The echoes in a light load's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EchoReport {
    /// Moves sent in the window whose echo came within [`ECHO_LOST_AFTER`].
    pub echoed: u64,
    /// Moves sent in the window whose echo came later or not at all.
    pub lost: u64,
    /// Round trip of the echoed moves, milliseconds: median.
    pub rtt_p50_ms: f64,
    /// 99th percentile.
    pub rtt_p99_ms: f64,
    /// The slowest.
    pub rtt_max_ms: f64,
}

impl Default for EchoTracker {
    fn default() -> Self {
        Self { frames: FrameDecoder::new(MAX_FRAME), in_flight: VecDeque::new(), broken: false }
    }
}

impl EchoTracker {
    /// A move to (x, z) was sent at `at`; `counts` when it was inside the window.
    pub fn sent(&mut self, x: f32, z: f32, at: Instant, counts: bool, totals: &mut EchoCounts) {
        if self.in_flight.len() == IN_FLIGHT_MAX
            && let Some((.., counted)) = self.in_flight.pop_front()
        {
            totals.lost += u64::from(counted);
        }
        self.in_flight.push_back((x, z, at, counts));
    }

    /// Bytes read from the connection at `now`.
    pub fn received(&mut self, bytes: &[u8], now: Instant, totals: &mut EchoCounts) {
        if self.broken {
            return;
        }
        self.frames.extend_from_slice(bytes);
        loop {
            let frame = match self.frames.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return,
                Err(_) => {
                    self.broken = true;
                    return;
                }
            };
            let Ok(moved) = shared::decode_packet::<S_BroadcastMove>(frame) else { continue };
            let Some(at) = self
                .in_flight
                .iter()
                .position(|&(x, z, ..)| x.to_bits() == moved.pos_x.to_bits() && z.to_bits() == moved.pos_z.to_bits())
            else {
                continue;
            };
            // Every move before it that has not come back never will.
            for (.., counted) in self.in_flight.drain(..at) {
                totals.lost += u64::from(counted);
            }
            if let Some((_, _, sent, counted)) = self.in_flight.pop_front()
                && counted
            {
                totals.echo(now.saturating_duration_since(sent));
            }
        }
    }

    /// The run is over: what is still in flight is lost.
    pub fn finish(&mut self, totals: &mut EchoCounts) {
        for (.., counted) in self.in_flight.drain(..) {
            totals.lost += u64::from(counted);
        }
    }
}

impl Default for EchoCounts {
    fn default() -> Self {
        Self { rtt_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"), lost: 0 }
    }
}

impl EchoCounts {
    /// An echo after `rtt`: lost when later than [`ECHO_LOST_AFTER`].
    fn echo(&mut self, rtt: Duration) {
        if rtt > ECHO_LOST_AFTER {
            self.lost += 1;
        } else {
            self.rtt_us.saturating_record((rtt.as_micros() as u64).max(1));
        }
    }

    /// The report's figures.
    pub fn report(&self) -> EchoReport {
        let ms = |us: u64| us as f64 / 1000.0;
        EchoReport {
            echoed: self.rtt_us.len(),
            lost: self.lost,
            rtt_p50_ms: ms(self.rtt_us.value_at_quantile(0.5)),
            rtt_p99_ms: ms(self.rtt_us.value_at_quantile(0.99)),
            rtt_max_ms: ms(self.rtt_us.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(id: i32, x: f32, z: f32) -> Vec<u8> {
        let mut bytes = Vec::new();
        shared::encode(&S_BroadcastMove { player_id: id, pos_x: x, pos_y: 0.0, pos_z: z }, &mut bytes).unwrap();
        bytes
    }

    #[test]
    fn echoes_are_matched_by_position_in_order_and_the_skipped_or_late_ones_count_as_lost() {
        let (mut tracker, mut totals) = (EchoTracker::default(), EchoCounts::default());
        let t0 = Instant::now();
        for (i, counts) in [(1.0, false), (2.0, true), (3.0, true), (4.0, true), (5.0, true)] {
            tracker.sent(i, -i, t0, counts, &mut totals);
        }
        // A neighbour's move, then the echo of the first (not counted: before the window), cut
        // in two reads; then the third's: the second is lost.
        let mut stream = echo(9, 7.5, 7.5);
        stream.extend(echo(1, 1.0, -1.0));
        stream.extend(echo(1, 3.0, -3.0));
        let (a, b) = stream.split_at(27);
        tracker.received(a, t0 + Duration::from_millis(10), &mut totals);
        tracker.received(b, t0 + Duration::from_millis(30), &mut totals);
        assert_eq!(totals.report().echoed, 1);
        assert_eq!(totals.lost, 1, "the second move, overtaken by the third's echo");
        // The fourth's echo after 2.5 s: lost; the fifth never comes.
        tracker.received(&echo(1, 4.0, -4.0), t0 + Duration::from_millis(2500), &mut totals);
        tracker.finish(&mut totals);
        let report = totals.report();
        assert_eq!((report.echoed, report.lost), (1, 3));
        assert!((29.0..=31.0).contains(&report.rtt_p50_ms), "{report:?}");
    }

    #[test]
    fn a_stream_that_is_not_the_protocol_stops_the_count_and_too_many_in_flight_are_lost() {
        let (mut tracker, mut totals) = (EchoTracker::default(), EchoCounts::default());
        let t0 = Instant::now();
        for i in 0..IN_FLIGHT_MAX + 3 {
            tracker.sent(i as f32, 0.0, t0, true, &mut totals);
        }
        assert_eq!(totals.lost, 3, "the oldest given up");
        tracker.received(&[1, 0, 0, 0], t0, &mut totals);
        tracker.received(&echo(1, 10.0, 0.0), t0, &mut totals);
        assert_eq!(totals.report().echoed, 0, "nothing counted after a size of 1");
    }
}
