//! The end of a run: the check of every bot's final view, the summary table and the JSON.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::bot::{Bot, Run};
use crate::metrics::Metrics;
use crate::view::Pos;

/// Round trips of own moves, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RttMs {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
    /// Echoes measured.
    pub count: u64,
}

/// What a run found. Written as JSON with `--json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Bots asked for.
    pub bots: u32,
    /// Bots whose connection opened.
    pub connected: u32,
    /// Bots that entered the game (list, then own enter).
    pub entered: u32,
    /// Connection attempts that failed.
    pub connect_failures: u32,
    /// Seconds from the start until every bot had entered, if all did.
    pub all_entered_s: Option<f64>,
    /// Moves sent.
    pub moves_sent: u64,
    /// Own moves never echoed within the echo timeout.
    pub echo_lost: u64,
    /// Chat lines sent.
    pub chat_sent: u64,
    /// The server's notices received (chat lines from player 0: lines of this run's bots that
    /// the server's chat limits dropped).
    #[serde(default)]
    pub chat_notices: u64,
    /// Packets the bots received.
    pub packets_received: u64,
    /// Protocol violations seen.
    pub violations: u64,
    /// The first few, described.
    pub violation_samples: Vec<String>,
    /// After the moves stopped: pairs of bots where one's view of the other is not the other's
    /// last sent position (or where one knows the other and not the reverse).
    pub final_state_mismatches: u64,
    /// Move → own echo.
    pub rtt_ms: RttMs,
    /// Side traffic (`--churn-rate`): connections that connected, read their list and closed.
    #[serde(default)]
    pub churned: u64,
    /// Side traffic (`--garbage-rate`): connections that sent random bytes.
    #[serde(default)]
    pub garbage_sent: u64,
    /// Of those, the ones the server closed within a second.
    #[serde(default)]
    pub garbage_closed: u64,
    /// Side-traffic connections that failed: no connection, or a churner without its list.
    #[serde(default)]
    pub churn_failures: u64,
    /// Sessions that ended during the run, by reason.
    pub disconnects: BTreeMap<String, u64>,
    /// Seconds the run lasted.
    pub duration_s: f64,
    /// The seed.
    pub seed: u64,
}

impl Report {
    pub(crate) fn new(run: &Run, metrics: &Metrics, packets_received: u64, final_state_mismatches: u64) -> Self {
        let ms = |q: f64| metrics.rtt.value_at_quantile(q) as f64 / 1000.0;
        Self {
            bots: run.config.bots,
            connected: metrics.connected,
            entered: metrics.entered,
            connect_failures: metrics.connect_failures,
            all_entered_s: metrics.all_entered_at.map(|t| t.duration_since(run.started).as_secs_f64()),
            moves_sent: metrics.moves_sent,
            echo_lost: metrics.echo_lost,
            chat_sent: metrics.chat_sent,
            chat_notices: metrics.chat_notices,
            packets_received,
            violations: metrics.violations,
            violation_samples: metrics.violation_samples.clone(),
            final_state_mismatches,
            churned: 0,
            garbage_sent: 0,
            garbage_closed: 0,
            churn_failures: 0,
            rtt_ms: RttMs {
                p50: ms(0.5),
                p90: ms(0.9),
                p99: ms(0.99),
                max: metrics.rtt.max() as f64 / 1000.0,
                count: metrics.rtt.len(),
            },
            disconnects: metrics.disconnects.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            duration_s: run.started.elapsed().as_secs_f64(),
            seed: run.config.seed,
        }
    }

    /// No violation, no mismatch, no lost echo, every bot connected and entered, none dropped,
    /// and every side-traffic connection made.
    pub fn clean(&self) -> bool {
        self.violations == 0
            && self.final_state_mismatches == 0
            && self.echo_lost == 0
            && self.connect_failures == 0
            && self.churn_failures == 0
            && self.entered == self.bots
            && self.disconnects.is_empty()
    }
}

impl fmt::Display for Report {
    /// The summary table.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<(&str, String)> = vec![
            ("bots", self.bots.to_string()),
            ("connected", self.connected.to_string()),
            ("entered", self.entered.to_string()),
            ("connect failures", self.connect_failures.to_string()),
            ("all entered after", self.all_entered_s.map_or("-".into(), |s| format!("{s:.2} s"))),
            ("moves sent", self.moves_sent.to_string()),
            ("echoes lost", self.echo_lost.to_string()),
            ("chat lines sent", self.chat_sent.to_string()),
            ("server notices", self.chat_notices.to_string()),
            ("packets received", self.packets_received.to_string()),
            ("protocol violations", self.violations.to_string()),
            ("final state mismatches", self.final_state_mismatches.to_string()),
            (
                "round trip (ms)",
                format!(
                    "p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}  ({} echoes)",
                    self.rtt_ms.p50, self.rtt_ms.p90, self.rtt_ms.p99, self.rtt_ms.max, self.rtt_ms.count
                ),
            ),
            (
                "disconnects",
                if self.disconnects.is_empty() {
                    "none".into()
                } else {
                    self.disconnects.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ")
                },
            ),
            (
                "side traffic",
                format!(
                    "{} churned, {} garbage ({} closed by the server), {} failed",
                    self.churned, self.garbage_sent, self.garbage_closed, self.churn_failures
                ),
            ),
            ("duration", format!("{:.1} s", self.duration_s)),
            ("result", if self.clean() { "clean".into() } else { "PROBLEMS FOUND".into() }),
        ];
        for (name, value) in rows {
            writeln!(f, "  {name:<24} {value}")?;
        }
        for sample in &self.violation_samples {
            writeln!(f, "  violation: {sample}")?;
        }
        Ok(())
    }
}

/// Counts the pairs of bots whose final views disagree: a bot's view of another must be the
/// other's last sent position (the spawn point if it never moved), and knowing is mutual.
/// Players that are not bots of this run are ignored.
pub fn final_state_mismatches<'a>(bots: impl Iterator<Item = &'a Bot>) -> u64 {
    let bots: Vec<&Bot> = bots.collect();
    let by_id: HashMap<i32, &Bot> = bots.iter().filter_map(|b| Some((b.view.self_id()?, *b))).collect();
    let mut mismatches = 0;
    for bot in &bots {
        let Some(me) = bot.view.self_id() else { continue };
        for (id, seen) in bot.view.others() {
            let Some(other) = by_id.get(id) else { continue };
            let expected: Pos = other.last_sent.unwrap_or([0.0; 3]);
            if *seen != expected || !other.view.others().contains_key(&me) {
                mismatches += 1;
            }
        }
    }
    mismatches
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bot with player id `me` that saw `others` (id, position) and last sent `sent`.
    fn bot(me: i32, others: &[(i32, Pos)], sent: Option<Pos>) -> Bot {
        let mut b = Bot::new(me as u32, 1);
        let list = others.iter().map(|(id, p)| (false, *id, *p)).chain([(true, me, [0.0; 3])]);
        assert!(b.view.on_list(list).is_empty());
        assert!(b.view.on_enter(me, [0.0; 3]).is_empty());
        b.last_sent = sent;
        b
    }

    #[test]
    fn views_that_agree_are_no_mismatch() {
        let bots = [
            bot(1, &[(2, [5.0, 0.0, 5.0])], Some([1.0, 0.0, 1.0])),
            bot(2, &[(1, [1.0, 0.0, 1.0])], Some([5.0, 0.0, 5.0])),
        ];
        assert_eq!(final_state_mismatches(bots.iter()), 0);
    }

    #[test]
    fn a_stale_position_is_a_mismatch() {
        let bots = [
            bot(1, &[(2, [4.0, 0.0, 4.0])], Some([1.0, 0.0, 1.0])),
            bot(2, &[(1, [1.0, 0.0, 1.0])], Some([5.0, 0.0, 5.0])),
        ];
        assert_eq!(final_state_mismatches(bots.iter()), 1);
    }

    #[test]
    fn knowing_must_be_mutual_and_a_bot_that_never_moved_is_at_the_spawn_point() {
        let bots = [bot(1, &[(2, [0.0; 3])], None), bot(2, &[], None)];
        assert_eq!(final_state_mismatches(bots.iter()), 1);
        // Players who are not bots of this run are ignored.
        let bots = [bot(1, &[(99, [7.0; 3])], None)];
        assert_eq!(final_state_mismatches(bots.iter()), 0);
    }
}
