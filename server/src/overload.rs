//! Graceful overload: when the game loop falls behind, the news about others is thinned, so that
//! what a player feels most, the echo of its own move, keeps coming.
//!
//! With a view radius and `[world] view_delay`, a player's news (the newest positions of the
//! players in its view that moved) is gathered when it is answered, or once the delay is up
//! (see [`crate::interest`]). That news is most of what the server sends and encodes: at 10,000
//! walking players, ~50 positions per answer against one echo. Saturated, the server used to do
//! all of it and fall behind: moves queued up in the sockets, several of a player's moves met in
//! one tick (where the last one won, and the others were never echoed), and half of the echoes
//! were lost. Here the server gives way on the news instead:
//!
//! - **The detector.** Each frame's work is timed, from the start of `First` to the end of
//!   `Last` ([`FrameWork`]), and added up over a window of frames (a second's worth at the frame
//!   rate). The window's load is that sum over the window's budget, its frames × the frame
//!   period: 100% means the loop had no time left, and the next frame started late.
//! - **Stretching.** A window at [`OVERLOADED`] (90%) or more doubles the news interval, from
//!   `view_delay` up to `[world] overload_news_max`; the first doubling starts an overload
//!   *episode*. A window at [`RECOVERED`] (50%) or less halves it, back down to `view_delay`,
//!   where the episode ends; in between the interval holds. The band keeps the interval from
//!   flapping when the thinning itself lowered the load.
//! - **What thinning means** (applied by [`crate::interest::send_view_changes`]): a player's news
//!   waits up to the interval; it leaves with the first answer in the last `view_delay` of that
//!   wait, or alone at its end. So a client moving every 250 ms with the interval at 1,200 ms is
//!   told its neighbours' newest positions every fourth move instead of every move, and still in
//!   one write per move. Enters and leaves wait as long (they ride the same writes).
//! - **Echoes are never thinned**: every accepted move is echoed to its sender, also a move that a
//!   later one of the same player overtook within the tick.
//! - **Told**: the interval is a gauge and the episodes a counter ([`OverloadCounts`], in the
//!   statistics line, `--stats-json` and `/metrics`), and a log line says when the interval
//!   changes ("overloaded: news every 600 ms"), at most one every [`LOG_EVERY`]: a change that
//!   comes sooner is told when that time is up, so the last line is always the current state.
//!
//! `overload_news_max = "off"` turns the detector and the thinning off (the news interval stays
//! `view_delay`); every move is echoed all the same, which `crate::interest` does whatever the load.
//! Without a view radius, or with `view_delay` off (the news goes in its tick, there is nothing
//! gathered to thin), nothing of this runs.

use std::time::{Duration, Instant};

use bevy_app::{App, First, Last, Plugin};
use bevy_ecs::prelude::*;
use bevy_time::TimeSystems;
use net_plugin::NetSystems;
use serde::Serialize;

/// A window's load at or above which the news interval doubles.
pub const OVERLOADED: f64 = 0.9;
/// A window's load at or below which the news interval halves.
pub const RECOVERED: f64 = 0.5;
/// At most one log line about the news interval this often.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Stretches the news interval while the game loop is overloaded (see the module).
pub struct OverloadPlugin {
    /// The news interval when all is well: `view_delay`.
    pub base: Duration,
    /// The longest it stretches to: `overload_news_max`.
    pub max: Duration,
    /// A frame's budget: the frame period.
    pub frame: Duration,
}

/// Where the overload systems run, in `Last`, after the network's cleanup: the frame's work is
/// measured ([`Measure`](OverloadSystems::Measure)), then weighed
/// ([`Pace`](OverloadSystems::Pace)). A test may overwrite [`FrameWork`] between the two.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum OverloadSystems {
    /// The frame's work is timed into [`FrameWork`].
    Measure,
    /// The window is weighed and the news interval set.
    Pace,
}

/// How long this frame's work took, from the start of `First` to the end of `Last`'s network
/// cleanup.
#[derive(Resource, Debug, Clone, Copy, Default)]
pub struct FrameWork {
    /// When this frame started.
    started: Option<Instant>,
    /// Its work, once measured.
    pub took: Duration,
}

/// The news interval now, and the overload episodes since start.
#[derive(Resource, Debug)]
pub struct NewsPace {
    base: Duration,
    max: Duration,
    now: Duration,
    /// The window being filled: the frames' work added up, and how many frames.
    window: (Duration, u32),
    /// Frames per window.
    frames: u32,
    frame: Duration,
    counts: OverloadCounts,
    /// When the last line was logged, and whether a change has not been told yet.
    logged: Option<Instant>,
    untold: bool,
}

/// What the statistics show of overload.
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OverloadCounts {
    /// The news interval now, in milliseconds: `view_delay`, or more while overloaded. 0 when
    /// this does not run.
    pub news_interval_ms: u64,
    /// Times the interval began to stretch from `view_delay`, since start.
    pub episodes: u64,
}

impl NewsPace {
    /// At `base`, stretching up to `max`, weighing windows of a second's worth of frames of
    /// `frame` each.
    pub fn new(base: Duration, max: Duration, frame: Duration) -> Self {
        let frames = (1.0 / frame.as_secs_f64().max(1e-3)).round().max(1.0) as u32;
        let counts = OverloadCounts { news_interval_ms: millis(base), episodes: 0 };
        Self {
            base,
            max: max.max(base),
            now: base,
            window: (Duration::ZERO, 0),
            frames,
            frame,
            counts,
            logged: None,
            untold: false,
        }
    }

    /// The news interval now.
    pub fn interval(&self) -> Duration {
        self.now
    }

    /// The longest it stretches to.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// Whether the interval is stretched.
    pub fn overloaded(&self) -> bool {
        self.now > self.base
    }

    /// The gauge and the counter.
    pub fn counts(&self) -> OverloadCounts {
        self.counts
    }

    /// Frames per window.
    pub fn window_frames(&self) -> u32 {
        self.frames
    }

    /// Adds a frame's work; at the end of a window, stretches or relaxes the interval. Returns
    /// whether it changed.
    pub fn record(&mut self, took: Duration) -> bool {
        self.window.0 += took;
        self.window.1 += 1;
        if self.window.1 < self.frames {
            return false;
        }
        let (work, frames) = std::mem::take(&mut self.window);
        let load = work.as_secs_f64() / (self.frame.as_secs_f64() * f64::from(frames)).max(f64::EPSILON);
        let before = self.now;
        if load >= OVERLOADED {
            if !self.overloaded() && self.max > self.base {
                self.counts.episodes += 1;
            }
            self.now = (self.now * 2).min(self.max);
        } else if load <= RECOVERED {
            self.now = (self.now / 2).max(self.base);
        }
        self.counts.news_interval_ms = millis(self.now);
        self.untold |= self.now != before;
        self.now != before
    }

    /// The line to log now, if one is due: a change not yet told, and none logged for
    /// [`LOG_EVERY`].
    fn line_due(&mut self, now: Instant) -> Option<String> {
        if !self.untold || self.logged.is_some_and(|at| now.duration_since(at) < LOG_EVERY) {
            return None;
        }
        (self.logged, self.untold) = (Some(now), false);
        let every = millis(self.now);
        Some(if self.overloaded() {
            format!("overloaded: news every {every} ms (at most {} ms)", millis(self.max))
        } else {
            format!("recovered: news every {every} ms")
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Plugin for OverloadPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(NewsPace::new(self.base, self.max, self.frame))
            .init_resource::<FrameWork>()
            .init_resource::<OverloadCounts>()
            .configure_sets(Last, (OverloadSystems::Measure, OverloadSystems::Pace).chain().after(NetSystems::Cleanup))
            .add_systems(First, start_frame.before(TimeSystems))
            .add_systems(Last, end_frame.in_set(OverloadSystems::Measure))
            .add_systems(Last, pace_news.in_set(OverloadSystems::Pace));
    }
}

fn start_frame(mut work: ResMut<FrameWork>) {
    work.started = Some(Instant::now());
}

fn end_frame(mut work: ResMut<FrameWork>) {
    if let Some(started) = work.started.take() {
        work.took = started.elapsed();
    }
}

/// Weighs the frame, and logs a change when a line is due.
fn pace_news(work: Res<FrameWork>, mut pace: ResMut<NewsPace>, mut counts: ResMut<OverloadCounts>) {
    pace.record(work.took);
    *counts = pace.counts();
    if let Some(line) = pace.line_due(Instant::now()) {
        if pace.overloaded() {
            tracing::warn!("{line}");
        } else {
            tracing::info!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_micros(16_667);

    fn windows(pace: &mut NewsPace, took: Duration, n: u32) -> Duration {
        for _ in 0..n * pace.window_frames() {
            pace.record(took);
        }
        pace.interval()
    }

    #[test]
    fn a_window_over_budget_doubles_the_interval_up_to_the_bound_and_a_calm_one_halves_it() {
        let ms = Duration::from_millis;
        let mut pace = NewsPace::new(ms(300), ms(1000), FRAME);
        assert_eq!(pace.window_frames(), 60);
        assert_eq!(windows(&mut pace, FRAME, 1), ms(600), "100% of the budget");
        assert_eq!(windows(&mut pace, FRAME * 2, 1), ms(1000), "the bound");
        assert_eq!(windows(&mut pace, FRAME * 3, 2), ms(1000));
        // In the band, it holds.
        assert_eq!(windows(&mut pace, FRAME * 7 / 10, 3), ms(1000));
        assert_eq!(windows(&mut pace, FRAME / 2, 1), ms(500));
        assert_eq!(windows(&mut pace, Duration::ZERO, 1), ms(300), "never below the base");
        assert_eq!(pace.counts(), OverloadCounts { news_interval_ms: 300, episodes: 1 });
        windows(&mut pace, FRAME, 1);
        assert_eq!(pace.counts(), OverloadCounts { news_interval_ms: 600, episodes: 2 }, "a second episode");
    }

    #[test]
    fn a_slow_frame_or_two_in_a_window_is_no_overload() {
        let mut pace = NewsPace::new(Duration::from_millis(300), Duration::from_millis(1200), FRAME);
        // Bursts: a frame of 40 ms every 15 frames, the rest nearly idle: 17% of the budget.
        for i in 0..600 {
            pace.record(if i % 15 == 0 { Duration::from_millis(40) } else { Duration::from_micros(200) });
        }
        assert!(!pace.overloaded());
    }

    #[test]
    fn changes_are_logged_at_most_once_per_period_and_the_last_one_is_always_told() {
        let ms = Duration::from_millis;
        let mut pace = NewsPace::new(ms(300), ms(1200), FRAME);
        let t0 = Instant::now();
        assert_eq!(pace.line_due(t0), None, "nothing changed");
        windows(&mut pace, FRAME, 1);
        assert_eq!(pace.line_due(t0).as_deref(), Some("overloaded: news every 600 ms (at most 1200 ms)"));
        windows(&mut pace, FRAME, 1);
        assert_eq!(pace.line_due(t0 + ms(1000)), None, "too soon");
        windows(&mut pace, Duration::ZERO, 2);
        assert_eq!(pace.line_due(t0 + LOG_EVERY).as_deref(), Some("recovered: news every 300 ms"));
        assert_eq!(pace.line_due(t0 + LOG_EVERY * 3), None, "told once");
    }
}
