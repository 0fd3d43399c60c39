//! What the bots measure and count while they run, and the live progress display.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use bevy_ecs::resource::Resource;
use hdrhistogram::Histogram;

/// Descriptions kept of protocol violations; the rest are only counted.
pub const VIOLATION_SAMPLES: usize = 10;

/// Counters and histograms of a run.
#[derive(Resource)]
pub struct Metrics {
    /// Bots whose connection opened.
    pub connected: u32,
    /// Bots connected right now.
    pub connected_now: u32,
    /// Bots that completed their enter (list, then own enter).
    pub entered: u32,
    /// Connection attempts that failed.
    pub connect_failures: u32,
    /// Moves sent.
    pub moves_sent: u64,
    /// Own moves whose echo came back.
    pub echoes: u64,
    /// Own moves never echoed within the echo timeout.
    pub echo_lost: u64,
    /// Chat lines sent.
    pub chat_sent: u64,
    /// The server's notices (chat lines from player 0, e.g. "line dropped: too fast").
    pub chat_notices: u64,
    /// Protocol violations seen.
    pub violations: u64,
    /// The first few, described.
    pub violation_samples: Vec<String>,
    /// Sessions that ended before the run did, by reason.
    pub disconnects: BTreeMap<&'static str, u64>,
    /// Move → own echo, in microseconds, whole run.
    pub rtt: Histogram<u64>,
    /// The same, since the last progress line.
    rtt_window: Histogram<u64>,
    /// When all bots had entered.
    pub all_entered_at: Option<Instant>,
    window_start: Instant,
    window_moves: u64,
    window_packets: u64,
    terminal: bool,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            connected: 0,
            connected_now: 0,
            entered: 0,
            connect_failures: 0,
            moves_sent: 0,
            echoes: 0,
            echo_lost: 0,
            chat_sent: 0,
            chat_notices: 0,
            violations: 0,
            violation_samples: Vec::new(),
            disconnects: BTreeMap::new(),
            rtt: histogram(),
            rtt_window: histogram(),
            all_entered_at: None,
            window_start: Instant::now(),
            window_moves: 0,
            window_packets: 0,
            terminal: std::io::stderr().is_terminal(),
        }
    }
}

impl Metrics {
    /// Counts a violation, describing it if it is among the first few.
    pub fn violation(&mut self, bot: u32, what: impl std::fmt::Display) {
        self.violations += 1;
        if self.violation_samples.len() < VIOLATION_SAMPLES {
            self.violation_samples.push(format!("bot {bot}: {what}"));
        }
    }

    /// Records a round trip.
    pub fn round_trip(&mut self, rtt: Duration) {
        let us = (rtt.as_micros() as u64).clamp(1, 60_000_000);
        let _ = self.rtt.record(us);
        let _ = self.rtt_window.record(us);
        self.echoes += 1;
    }

    /// Prints a progress line: every second rewritten in place on a terminal, a plain line
    /// every 5 s otherwise.
    pub fn progress(&mut self, target: u32, packets_received: u64) {
        let every = if self.terminal { Duration::from_secs(1) } else { Duration::from_secs(5) };
        let elapsed = self.window_start.elapsed();
        if elapsed < every {
            return;
        }
        let secs = elapsed.as_secs_f64();
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let line = format!(
            "bots {}/{} entered {} | moves {:.0}/s | received {:.0} pkt/s | rtt p50 {:.1} ms p99 {:.1} ms | lost {} | violations {}",
            self.connected_now,
            target,
            self.entered,
            (self.moves_sent - self.window_moves) as f64 / secs,
            packets_received.saturating_sub(self.window_packets) as f64 / secs,
            ms(&self.rtt_window, 0.5),
            ms(&self.rtt_window, 0.99),
            self.echo_lost,
            self.violations,
        );
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal { write!(err, "\r\x1b[2K{line}") } else { writeln!(err, "{line}") };
        let _ = err.flush();
        self.rtt_window.reset();
        self.window_start = Instant::now();
        self.window_moves = self.moves_sent;
        self.window_packets = packets_received;
    }

    /// Ends the live line on a terminal.
    pub fn finish_progress(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}
