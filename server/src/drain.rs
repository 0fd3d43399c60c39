//! Graceful drain: a stop lets the players finish instead of cutting them off.
//!
//! A stop is asked for with a [`StopRequested`] message (the first SIGTERM or SIGINT, see
//! [`ShutdownSignalPlugin`](crate::ShutdownSignalPlugin); Agones' `shutdown_when_empty`; or game
//! code). With a drain timeout (`drain_timeout`, 30 s by default) the server then:
//!
//! 1. stops accepting: the listening socket closes, so newcomers are refused by the kernel and
//!    go to another server ([`ListenerControl::stop_accepting`]);
//! 2. tells every player once, with an `S_Chat` from player 0 ([`server_notice`]), that it is
//!    shutting down and how long it has (a player who got in during the last moments of
//!    accepting is told as it arrives);
//! 3. plays on as usual: moves, chat and leaves are served;
//! 4. exits when the last player has left, or when the timeout runs out: the network's
//!    flush-and-close (every connection left gets `Disconnected` with reason `Shutdown`), exit 0.
//!
//! With no timeout (`drain_timeout = "off"`) a stop is the immediate flush-and-close. Where the
//! server is in that sequence is the one [`Lifecycle`] resource ([`crate::lifecycle`]): this
//! plugin moves it to [`Phase::Draining`] (with the drain's [`DrainWindow`]) and then to
//! [`Phase::ShuttingDown`]; `/readyz` answers from it, and Agones' `Shutdown()` waits for it.

use std::time::{Duration, Instant};

use bevy_app::{App, AppExit, Plugin, PostUpdate, PreUpdate};
use bevy_ecs::prelude::*;
use net_plugin::{Connection, ListenerControl, Outbox};

use crate::GameSystems;
use crate::chat::server_notice;
use crate::lifecycle::{DrainWindow, Lifecycle, LifecyclePlugin, Phase};
use crate::room::{ConnectedPlayers, Player};

/// Asks the server to stop: a drain (when the drain timeout is set), then the exit. Asking
/// again, or while draining, changes nothing.
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopRequested;

/// Drains on [`StopRequested`], then exits (see the module's documentation).
pub struct DrainPlugin {
    /// How long players may stay; zero: no drain, a stop exits at once.
    pub timeout: Duration,
}

/// The drain timeout in force.
#[derive(Resource, Debug, Clone, Copy)]
struct DrainTimeout(Duration);

/// On a player's entity: it has been told of the drain.
#[derive(Component)]
struct ToldOfDrain;

impl Plugin for DrainPlugin {
    fn build(&self, app: &mut App) {
        LifecyclePlugin::require(app);
        app.add_message::<StopRequested>()
            .add_message::<AppExit>()
            .insert_resource(DrainTimeout(self.timeout))
            // After membership: the players who entered this frame are told too.
            .add_systems(PreUpdate, (begin_drain, tell_players).chain().after(GameSystems::Membership))
            // After every game system: the leaves of this frame are counted.
            .add_systems(PostUpdate, end_drain);
    }
}

/// Starts a drain (or, with no timeout, the exit) on the first [`StopRequested`].
fn begin_drain(
    mut requests: MessageReader<StopRequested>,
    lifecycle: Res<Lifecycle>,
    timeout: Res<DrainTimeout>,
    listener: Option<Res<ListenerControl>>,
    players: ConnectedPlayers,
    mut exit: MessageWriter<AppExit>,
) {
    if requests.read().count() == 0 || lifecycle.phase() >= Phase::Draining {
        return;
    }
    if timeout.0.is_zero() {
        tracing::info!("stopping now (no drain timeout)");
        lifecycle.set_phase(Phase::ShuttingDown);
        exit.write(AppExit::Success);
        return;
    }
    if lifecycle.begin_drain(timeout.0).is_none() {
        return;
    }
    if let Some(listener) = listener {
        listener.stop_accepting();
    }
    tracing::info!(
        players = players.iter().count(),
        timeout = ?timeout.0,
        "draining: no new connections; exiting when the last player has left or the timeout runs out"
    );
}

/// Players on a connection not yet told of the drain.
type Untold = (With<Player>, With<Connection>, Without<ToldOfDrain>);

/// While draining, tells each player not yet told, once: everyone as the drain begins, then
/// anyone who got in during the last moments of accepting.
fn tell_players(lifecycle: Res<Lifecycle>, untold: Query<Entity, Untold>, mut outbox: Outbox, mut commands: Commands) {
    let Some(deadline) = draining(&lifecycle).map(|w| w.deadline) else { return };
    let newcomers: Vec<Entity> = untold.iter().collect();
    if newcomers.is_empty() {
        return;
    }
    let left = deadline.saturating_duration_since(Instant::now());
    outbox.broadcast(newcomers.iter().copied(), &server_notice(notice(left)));
    for entity in newcomers {
        commands.entity(entity).insert(ToldOfDrain);
    }
}

/// What players are told: the server is going, and how long they have (in whole seconds,
/// rounded up).
fn notice(left: Duration) -> String {
    let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    format!(
        "[server] this server is shutting down: you can play on for up to {seconds} s, then you will be disconnected"
    )
}

/// Ends a drain when the last player has left or its deadline passed: the exit begins.
fn end_drain(lifecycle: Res<Lifecycle>, players: ConnectedPlayers, mut exit: MessageWriter<AppExit>) {
    let Some(DrainWindow { since, deadline }) = draining(&lifecycle) else { return };
    let left = players.iter().count();
    let now = Instant::now();
    if left == 0 {
        tracing::info!(drained_in = ?now.duration_since(since), "drained: the last player has left; stopping");
    } else if now >= deadline {
        tracing::info!(players = left, "drain timeout: stopping with players still connected");
    } else {
        return;
    }
    lifecycle.set_phase(Phase::ShuttingDown);
    exit.write(AppExit::Success);
}

/// The drain's window while the server drains (not once it is shutting down).
fn draining(lifecycle: &Lifecycle) -> Option<DrainWindow> {
    lifecycle.drain_window().filter(|_| lifecycle.phase() == Phase::Draining)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notice_rounds_up_to_whole_seconds() {
        assert!(notice(Duration::from_secs(30)).contains("up to 30 s"));
        assert!(notice(Duration::from_millis(29_001)).contains("up to 30 s"));
        assert!(notice(Duration::ZERO).contains("up to 0 s"));
    }
}
