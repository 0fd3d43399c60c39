//! Where the server is in its life, and whether its game loop turns: the one piece of state that
//! readiness and health checks (the admin endpoint's `/readyz` and `/healthz`), the graceful
//! drain and Agones read.
//!
//! [`Lifecycle`] is a resource shared with threads outside the ECS: the [`Phase`] (starting,
//! accepting, draining, shutting down), the time of the last frame, and, once a drain has begun,
//! its [`DrainWindow`] (when it began, when it ends at the latest). The game loop writes them;
//! the admin endpoint, on its own thread, only reads them, so a health check never waits for a
//! frame and still answers while the loop is stuck.
//!
//! Who sets the phase, which only ever moves forward:
//!
//! | phase | set by |
//! |---|---|
//! | `Starting` | the app as built, before its first frame |
//! | `Accepting` | [`LifecyclePlugin`], at the first frame |
//! | `Draining` | [`DrainPlugin`](crate::DrainPlugin), on the first [`StopRequested`](crate::StopRequested), which records the drain's deadline with it |
//! | `ShuttingDown` | [`DrainPlugin`](crate::DrainPlugin) when it ends the drain (or, with no drain timeout, stops at once); [`LifecyclePlugin`] on any other [`AppExit`] |
//!
//! Readers: `/readyz` (200 only while `Accepting`), the drain's own systems (the deadline),
//! Agones (`Ready()` once accepting, `Shutdown()` once shutting down) and `/metrics`
//! (`gameserver_phase`).

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bevy_app::{App, AppExit, First, Last, Plugin};
use bevy_ecs::prelude::*;
use net_plugin::NetSystems;

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    /// Built, before its first frame: nothing is served yet.
    Starting = 0,
    /// Listening and accepting players: ready.
    Accepting = 1,
    /// Not taking new players, letting the present ones finish: not ready, still healthy.
    Draining = 2,
    /// Closing every connection and exiting.
    ShuttingDown = 3,
}

impl Phase {
    /// Every phase, in the order the server goes through them.
    pub const ALL: [Phase; 4] = [Phase::Starting, Phase::Accepting, Phase::Draining, Phase::ShuttingDown];

    fn from_u8(n: u8) -> Self {
        match n {
            0 => Phase::Starting,
            1 => Phase::Accepting,
            2 => Phase::Draining,
            _ => Phase::ShuttingDown,
        }
    }

    /// Whether a load balancer should send new players here (`/readyz` answers 200).
    pub fn is_ready(self) -> bool {
        self == Phase::Accepting
    }

    /// A word for logs and health checks.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Accepting => "accepting",
            Phase::Draining => "draining",
            Phase::ShuttingDown => "shutting down",
        }
    }

    /// The phase as a metric's label value (`shutting_down`).
    pub fn label(self) -> &'static str {
        match self {
            Phase::ShuttingDown => "shutting_down",
            other => other.as_str(),
        }
    }
}

/// A drain's time: when it began and when the server exits even with players left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainWindow {
    /// When the drain began.
    pub since: Instant,
    /// When the server exits even with players left (`since` + the drain timeout).
    pub deadline: Instant,
}

/// The server's phase and the game loop's heartbeat, shared with threads outside the ECS.
/// Cloning shares it.
#[derive(Resource, Debug, Clone)]
pub struct Lifecycle(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    phase: AtomicU8,
    /// The clock that `last_frame_us` counts from.
    epoch: Instant,
    /// When the last frame began, in microseconds since `epoch` (0: none yet).
    last_frame_us: AtomicU64,
    /// Set once, when a drain begins (before the phase says `Draining`).
    drain: OnceLock<DrainWindow>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self(Arc::new(Shared {
            phase: AtomicU8::new(Phase::Starting as u8),
            epoch: Instant::now(),
            last_frame_us: AtomicU64::new(0),
            drain: OnceLock::new(),
        }))
    }
}

impl Lifecycle {
    /// The phase now.
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.0.phase.load(Ordering::Acquire))
    }

    /// Whether the server takes new players: what a readiness probe answers (`false` from the
    /// moment a stop is asked for).
    pub fn is_ready(&self) -> bool {
        self.phase().is_ready()
    }

    /// Moves to `phase`. Later phases are never undone by earlier ones: once shutting down, the
    /// server stays so. `Draining` comes with its window: `begin_drain`.
    pub(crate) fn set_phase(&self, phase: Phase) {
        debug_assert!(phase != Phase::Draining || self.0.drain.get().is_some(), "a drain has a window");
        self.0.phase.fetch_max(phase as u8, Ordering::AcqRel);
    }

    /// Begins a drain that ends at the latest `timeout` from now: the phase becomes `Draining`
    /// (not ready) with that window. `None`, and nothing changes, once a drain has begun or the
    /// server is shutting down.
    pub(crate) fn begin_drain(&self, timeout: Duration) -> Option<DrainWindow> {
        if self.phase() >= Phase::Draining {
            return None;
        }
        let since = Instant::now();
        let window = DrainWindow { since, deadline: since + timeout };
        self.0.drain.set(window).ok()?;
        self.set_phase(Phase::Draining);
        Some(window)
    }

    /// The drain's window, once a drain has begun (also while shutting down after it).
    pub fn drain_window(&self) -> Option<DrainWindow> {
        self.0.drain.get().copied()
    }

    /// How long ago the last frame began; `None` before the first.
    pub fn since_last_frame(&self) -> Option<Duration> {
        let at = self.0.last_frame_us.load(Ordering::Acquire);
        (at > 0).then(|| self.0.epoch.elapsed().saturating_sub(Duration::from_micros(at)))
    }

    /// Records that a frame began now.
    fn beat(&self) {
        let us = u64::try_from(self.0.epoch.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
        self.0.last_frame_us.store(us, Ordering::Release);
    }
}

/// Keeps [`Lifecycle`] up to date: a heartbeat each frame, `Accepting` from the first frame,
/// `ShuttingDown` on [`AppExit`]. Part of [`server::app`](crate::app).
pub struct LifecyclePlugin;

impl LifecyclePlugin {
    /// Adds the plugin unless the app has it: for the plugins that read or move the phase
    /// (drain, admin endpoint, Agones), whichever comes first.
    pub(crate) fn require(app: &mut App) {
        if !app.is_plugin_added::<Self>() {
            app.add_plugins(Self);
        }
    }
}

impl Plugin for LifecyclePlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Lifecycle>()
            .add_systems(First, beat)
            .add_systems(Last, shutting_down_on_exit.before(NetSystems::Cleanup));
    }
}

fn beat(lifecycle: Res<Lifecycle>) {
    lifecycle.beat();
    lifecycle.set_phase(Phase::Accepting);
}

fn shutting_down_on_exit(mut exits: MessageReader<AppExit>, lifecycle: Res<Lifecycle>) {
    if exits.read().next().is_some() {
        lifecycle.set_phase(Phase::ShuttingDown);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_only_move_forward() {
        let lifecycle = Lifecycle::default();
        assert_eq!(lifecycle.phase(), Phase::Starting);
        assert!(!lifecycle.is_ready());
        lifecycle.set_phase(Phase::Accepting);
        assert!(lifecycle.is_ready());
        let window = lifecycle.begin_drain(Duration::from_secs(30)).expect("a drain begins");
        assert_eq!(window.deadline - window.since, Duration::from_secs(30));
        assert_eq!((lifecycle.phase(), lifecycle.drain_window()), (Phase::Draining, Some(window)));
        assert!(!lifecycle.is_ready());
        // The next frame's "accepting" does not undo a drain, nor does a second stop move it.
        lifecycle.set_phase(Phase::Accepting);
        assert_eq!(lifecycle.begin_drain(Duration::from_secs(1)), None);
        assert_eq!((lifecycle.phase(), lifecycle.drain_window()), (Phase::Draining, Some(window)));
        lifecycle.set_phase(Phase::ShuttingDown);
        assert_eq!(lifecycle.begin_drain(Duration::from_secs(1)), None);
        assert_eq!(lifecycle.phase(), Phase::ShuttingDown);
        assert_eq!(lifecycle.drain_window(), Some(window), "the window stays for the record");
    }

    #[test]
    fn shutting_down_without_a_drain_has_no_window() {
        let lifecycle = Lifecycle::default();
        lifecycle.set_phase(Phase::ShuttingDown);
        assert_eq!(lifecycle.begin_drain(Duration::from_secs(30)), None);
        assert_eq!((lifecycle.phase(), lifecycle.drain_window()), (Phase::ShuttingDown, None));
    }

    #[test]
    fn label_values_are_single_words() {
        let labels: Vec<&str> = Phase::ALL.iter().map(|p| p.label()).collect();
        assert_eq!(labels, ["starting", "accepting", "draining", "shutting_down"]);
        assert!(Phase::ALL.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn the_first_frame_makes_it_ready_and_an_exit_ends_that() {
        let mut app = App::new();
        app.add_message::<AppExit>().add_plugins(LifecyclePlugin);
        let lifecycle = app.world().resource::<Lifecycle>().clone();
        assert_eq!(lifecycle.phase(), Phase::Starting);
        app.update();
        assert_eq!(lifecycle.phase(), Phase::Accepting);
        assert!(lifecycle.since_last_frame().is_some());
        app.world_mut().write_message(AppExit::Success);
        app.update();
        assert_eq!(lifecycle.phase(), Phase::ShuttingDown);
    }

    #[test]
    fn the_heartbeat_tells_how_long_ago_the_last_frame_began() {
        let lifecycle = Lifecycle::default();
        assert_eq!(lifecycle.since_last_frame(), None);
        lifecycle.beat();
        std::thread::sleep(Duration::from_millis(20));
        let since = lifecycle.since_last_frame().unwrap();
        assert!(since >= Duration::from_millis(20) && since < Duration::from_secs(5), "{since:?}");
    }
}
