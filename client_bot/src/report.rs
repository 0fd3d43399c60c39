//! The end of a run: the check of every bot's final view, the summary table and the JSON.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::BotConfig;
use crate::metrics::Metrics;
use crate::view::{Pos, View};

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
    /// With a view radius, after the moves stopped: ordered pairs of bots where the first's
    /// view breaks the rule: the other is within the radius and not in view, or beyond radius +
    /// margin and in view.
    #[serde(default)]
    pub view_mismatches: u64,
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
    /// The report of a run of `config` begun at `started`.
    pub(crate) fn new(
        config: &BotConfig,
        started: Instant,
        metrics: &Metrics,
        packets_received: u64,
        final_state_mismatches: u64,
        view_mismatches: u64,
    ) -> Self {
        let ms = |q: f64| metrics.rtt.value_at_quantile(q) as f64 / 1000.0;
        Self {
            bots: config.bots,
            connected: metrics.connected,
            entered: metrics.entered,
            connect_failures: metrics.connect_failures,
            all_entered_s: metrics.all_entered_at.map(|t| t.duration_since(started).as_secs_f64()),
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
            view_mismatches,
            rtt_ms: RttMs {
                p50: ms(0.5),
                p90: ms(0.9),
                p99: ms(0.99),
                max: metrics.rtt.max() as f64 / 1000.0,
                count: metrics.rtt.len(),
            },
            disconnects: metrics.disconnects.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            duration_s: started.elapsed().as_secs_f64(),
            seed: config.seed,
        }
    }

    /// No violation, no mismatch, no lost echo, every bot connected and entered, none dropped,
    /// and every side-traffic connection made.
    pub fn clean(&self) -> bool {
        self.violations == 0
            && self.final_state_mismatches == 0
            && self.view_mismatches == 0
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
            ("view mismatches", self.view_mismatches.to_string()),
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
/// Players that are not bots of this run are ignored. Each bot is given as its view and where it
/// last went (`Bot::position`).
pub fn final_state_mismatches<'a>(bots: impl Iterator<Item = (&'a View, Pos)>) -> u64 {
    let bots: Vec<(&View, Pos)> = bots.collect();
    let by_id: HashMap<i32, (&View, Pos)> = bots.iter().filter_map(|b| Some((b.0.self_id()?, *b))).collect();
    let mut mismatches = 0;
    for (view, _) in &bots {
        let Some(me) = view.self_id() else { continue };
        for (id, seen) in view.others() {
            let Some((other_view, expected)) = by_id.get(id) else { continue };
            if seen != expected || !other_view.others().contains_key(&me) {
                mismatches += 1;
            }
        }
    }
    mismatches
}

/// Counts the ordered pairs of bots (a, b) where a's final view breaks the view rule, measured
/// between where each last went (x and z): b within `radius` and not in a's view, or beyond
/// `radius + margin` and in it. Between the two either is right. Players that are not bots of
/// this run are ignored. Bots are given as for [`final_state_mismatches`].
pub fn view_mismatches<'a>(bots: impl Iterator<Item = (&'a View, Pos)>, radius: f32, margin: f32) -> u64 {
    let bots: Vec<(i32, Pos, &View)> = bots.filter_map(|(view, pos)| Some((view.self_id()?, pos, view))).collect();
    let at: HashMap<i32, Pos> = bots.iter().map(|(id, pos, _)| (*id, *pos)).collect();
    let d2 = |a: &Pos, b: &Pos| (a[0] - b[0]).powi(2) + (a[2] - b[2]).powi(2);
    let (near, far) = (radius * radius, (radius + margin) * (radius + margin));
    let mut mismatches = 0;
    for (me, here, view) in &bots {
        // Everyone within the radius must be in view (distances first: 10,000 bots are 10⁸ pairs).
        mismatches += bots
            .iter()
            .filter(|(id, there, _)| id != me && d2(here, there) <= near && !view.others().contains_key(id))
            .count() as u64;
        // Nobody in view may be beyond radius + margin.
        mismatches +=
            view.others().keys().filter(|id| at.get(id).is_some_and(|there| d2(here, there) > far)).count() as u64;
    }
    mismatches
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bot::Bot;

    /// The bots as the counts take them.
    fn views(bots: &[Bot]) -> impl Iterator<Item = (&View, Pos)> {
        bots.iter().map(|b| (&b.view, b.position()))
    }

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
        assert_eq!(final_state_mismatches(views(&bots)), 0);
    }

    #[test]
    fn a_stale_position_is_a_mismatch() {
        let bots = [
            bot(1, &[(2, [4.0, 0.0, 4.0])], Some([1.0, 0.0, 1.0])),
            bot(2, &[(1, [1.0, 0.0, 1.0])], Some([5.0, 0.0, 5.0])),
        ];
        assert_eq!(final_state_mismatches(views(&bots)), 1);
    }

    #[test]
    fn knowing_must_be_mutual_and_a_bot_that_never_moved_is_at_the_spawn_point() {
        let bots = [bot(1, &[(2, [0.0; 3])], None), bot(2, &[], None)];
        assert_eq!(final_state_mismatches(views(&bots)), 1);
        // Players who are not bots of this run are ignored.
        let bots = [bot(1, &[(99, [7.0; 3])], None)];
        assert_eq!(final_state_mismatches(views(&bots)), 0);
    }

    #[test]
    fn a_bot_that_never_moved_is_where_its_list_put_it() {
        let mut b1 = bot(1, &[(2, [7.0, 0.0, 7.0])], None);
        let mut b2 = bot(2, &[(1, [0.0; 3])], None);
        let fix = |b: &mut Bot, me: i32, at: Pos, other: (i32, Pos)| {
            b.view = View::default();
            assert!(b.view.on_list([(false, other.0, other.1), (true, me, at)]).is_empty());
            assert!(b.view.on_enter(me, at).is_empty());
        };
        fix(&mut b1, 1, [3.0, 0.0, 3.0], (2, [7.0, 0.0, 7.0]));
        fix(&mut b2, 2, [7.0, 0.0, 7.0], (1, [3.0, 0.0, 3.0]));
        assert_eq!(final_state_mismatches([&b1, &b2].into_iter().map(|b| (&b.view, b.position()))), 0);
    }

    #[test]
    fn views_are_checked_against_the_rule_at_and_around_the_radius_and_the_margin() {
        // R = 10, M = 2. Bot 1 at the origin; bot 2 at `d` in z; each sees the other or not.
        let check = |d: f32, seen: bool| {
            let others = |id: i32, at: Pos| if seen { vec![(id, at)] } else { vec![] };
            let bots =
                [bot(1, &others(2, [0.0, 0.0, d]), Some([0.0; 3])), bot(2, &others(1, [0.0; 3]), Some([0.0, 0.0, d]))];
            view_mismatches(views(&bots), 10.0, 2.0)
        };
        assert_eq!(check(10.0, true), 0, "on R, in view");
        assert_eq!(check(10.0, false), 2, "on R and not in view: wrong for both");
        assert_eq!(check(11.0, true), 0, "between R and R + M either is right");
        assert_eq!(check(11.0, false), 0);
        assert_eq!(check(12.0, true), 0, "on R + M may still be in view");
        assert_eq!(check(12.5, true), 2, "beyond R + M must not be");
        assert_eq!(check(12.5, false), 0);
        // Height does not count: 3 in x, 4 in z and 100 up is 5 away.
        let bots = [bot(1, &[], Some([0.0; 3])), bot(2, &[], Some([3.0, 100.0, 4.0]))];
        assert_eq!(view_mismatches(views(&bots), 5.0, 0.0), 2);
    }
}
