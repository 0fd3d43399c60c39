//! Where the server is in its life, and whether its game loop turns: the one piece of state that
//! readiness and health checks read (the admin endpoint's `/readyz` and `/healthz`).
//!
//! [`Lifecycle`] is a resource holding two atomics shared with the I/O side: the [`Phase`]
//! (starting, accepting, draining, shutting down) and the time of the last frame. The game loop
//! writes them; the admin endpoint, on its own thread, only reads them, so a health check never
//! waits for a frame and still answers while the loop is stuck.
//!
//! Who sets the phase: the first frame moves `Starting` to `Accepting`; the frame that sees
//! [`AppExit`] sets `ShuttingDown` before the network closes its connections. A graceful drain
//! sets `Draining` with one call, `lifecycle.set_phase(Phase::Draining)`, and readiness turns
//! false at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bevy_app::{App, AppExit, First, Last, Plugin};
use bevy_ecs::prelude::*;
use net_plugin::NetSystems;

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self(Arc::new(Shared {
            phase: AtomicU8::new(Phase::Starting as u8),
            epoch: Instant::now(),
            last_frame_us: AtomicU64::new(0),
        }))
    }
}

impl Lifecycle {
    /// The phase now.
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.0.phase.load(Ordering::Acquire))
    }

    /// Moves to `phase`. Later phases are never undone by earlier ones: once shutting down, the
    /// server stays so.
    pub fn set_phase(&self, phase: Phase) {
        self.0.phase.fetch_max(phase as u8, Ordering::AcqRel);
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
        assert!(!lifecycle.phase().is_ready());
        lifecycle.set_phase(Phase::Accepting);
        assert!(lifecycle.phase().is_ready());
        lifecycle.set_phase(Phase::Draining);
        // The next frame's "accepting" does not undo a drain.
        lifecycle.set_phase(Phase::Accepting);
        assert_eq!(lifecycle.phase(), Phase::Draining);
        lifecycle.set_phase(Phase::ShuttingDown);
        lifecycle.set_phase(Phase::Draining);
        assert_eq!(lifecycle.phase(), Phase::ShuttingDown);
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
