//! Agones: the server as a good citizen of a fleet (cargo feature `agones`, `[agones]` settings).
//!
//! Agones runs each game server in a pod beside an SDK sidecar and decides, from what the server
//! tells the sidecar, when it may be given players (`Ready`), whether it still works (health
//! pings), how full it is (the Counter `players`) and when it is done (`Shutdown`). Here:
//!
//! - `Ready()` once the listener is bound and the game loop has run a frame;
//! - a health ping every `health_interval`, sent by a system of the game loop: a loop that is
//!   stuck stops them, and Agones replaces the process;
//! - the Counter `players` kept equal to the players on a connection, its capacity the
//!   connection limit;
//! - on a stop, `Shutdown()` once the drain is over (the last player left, or its timeout), never
//!   before: Agones deletes the pod on `Shutdown()`, and the players of a drain would be cut off;
//! - the GameServer is watched and its state changes logged; with `shutdown_when_empty`, a
//!   server that was Allocated and had players stops when the last one leaves.
//!
//! The calls run on a runtime of their own ([`link`]); a sidecar that is slow, absent or
//! restarting is logged and retried with backoff, and never holds a frame or stops the game.
//! GameServer labels and annotations are not read.

mod link;

use std::time::{Duration, Instant};

use bevy_app::{App, Last, Plugin, PostUpdate};
use bevy_ecs::prelude::*;
use net_plugin::NetSystems;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, watch};

use link::{Channels, Desired, PING_QUEUE};

use crate::config::AgonesConfig;
use crate::drain::StopRequested;
use crate::lifecycle::{Lifecycle, LifecyclePlugin, Phase};
use crate::room::ConnectedPlayers;

/// How long the exit waits for `Shutdown()` to be acknowledged.
const SHUTDOWN_WAIT: Duration = AgonesConfig::SHUTDOWN_WAIT;

/// Talks to the Agones SDK sidecar (see the module's documentation).
pub struct AgonesPlugin {
    /// The `[agones]` settings.
    pub config: AgonesConfig,
    /// The `players` Counter's capacity: the connection limit.
    pub capacity: usize,
    /// The sidecar's gRPC port; `None`: `AGONES_SDK_GRPC_PORT` (as Agones sets it), else 9357.
    pub sdk_port: Option<u16>,
}

/// The game loop's end of the link to the sidecar.
#[derive(Resource)]
struct Sidecar {
    desired: watch::Sender<Desired>,
    pings: mpsc::Sender<()>,
    state: watch::Receiver<String>,
    shut_down: watch::Receiver<bool>,
    health_interval: Duration,
    /// `None` once dropped.
    runtime: Option<Runtime>,
}

impl Plugin for AgonesPlugin {
    fn build(&self, app: &mut App) {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("agones-sdk")
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                // The game does not depend on Agones; Agones will see no Ready and replace it.
                tracing::error!(error = %e, "cannot start the Agones SDK's thread; running without Agones");
                return;
            }
        };
        let (desired, desired_rx) = watch::channel(Desired::default());
        let (pings, pings_rx) = mpsc::channel(PING_QUEUE);
        let (state_tx, state) = watch::channel(String::new());
        let (shut_down_tx, shut_down) = watch::channel(false);
        let channels = Channels { desired: desired_rx, pings: pings_rx, state: state_tx, shut_down: shut_down_tx };
        let capacity = i64::try_from(self.capacity).unwrap_or(i64::MAX);
        runtime.spawn(link::run(self.sdk_port, capacity, channels));
        LifecyclePlugin::require(app);
        app.insert_resource(Sidecar {
            desired,
            pings,
            state,
            shut_down,
            health_interval: self.config.health_interval,
            runtime: Some(runtime),
        })
        .add_systems(PostUpdate, report_players)
        .add_systems(Last, (report_ready, send_health, report_shutdown).before(NetSystems::Send));
        if self.config.shutdown_when_empty {
            app.add_message::<StopRequested>().add_systems(PostUpdate, stop_when_empty_after_a_session);
        }
    }
}

/// `Ready()` once, at the end of the first frame: the listener is bound (it was before the app
/// was built), the loop runs, and the [`Lifecycle`] says it accepts players (what `/readyz`
/// says too; a server asked to stop before its first frame ended is never Ready).
fn report_ready(sidecar: Res<Sidecar>, lifecycle: Res<Lifecycle>, mut done: Local<bool>) {
    if !*done && lifecycle.is_ready() {
        *done = true;
        sidecar.desired.send_modify(|d| d.ready = true);
    }
}

/// A health ping every `health_interval`, from the game loop itself. Never waits: a full queue
/// drops the ping (see [`PING_QUEUE`]).
fn send_health(sidecar: Res<Sidecar>, mut last: Local<Option<Instant>>) {
    let now = Instant::now();
    if last.is_some_and(|at| now.duration_since(at) < sidecar.health_interval) {
        return;
    }
    *last = Some(now);
    if let Err(mpsc::error::TrySendError::Full(())) = sidecar.pings.try_send(()) {
        tracing::debug!("the Agones health forwarder is behind; ping dropped");
    }
}

/// The Counter follows the players on a connection, after this frame's enters and leaves.
fn report_players(sidecar: Res<Sidecar>, players: ConnectedPlayers) {
    let count = i64::try_from(players.iter().count()).unwrap_or(i64::MAX);
    sidecar.desired.send_if_modified(|d| std::mem::replace(&mut d.players, count) != count);
}

/// `Shutdown()` once the drain is over: the [`Lifecycle`] says the exit is under way.
fn report_shutdown(sidecar: Res<Sidecar>, lifecycle: Res<Lifecycle>) {
    if lifecycle.phase() == Phase::ShuttingDown {
        sidecar.desired.send_if_modified(|d| !std::mem::replace(&mut d.shutdown, true));
    }
}

/// `shutdown_when_empty`: once Allocated and played on, the last player's leaving stops the
/// server (a drain with nobody left: it exits at once, then `Shutdown()`).
fn stop_when_empty_after_a_session(
    sidecar: Res<Sidecar>,
    players: ConnectedPlayers,
    mut stop: MessageWriter<StopRequested>,
    mut session: Local<(bool, bool, bool)>,
) {
    let (allocated, played, stopped) = &mut *session;
    *allocated |= *sidecar.state.borrow() == "Allocated";
    let empty = players.is_empty();
    *played |= *allocated && !empty;
    if *played && empty && !*stopped {
        *stopped = true;
        tracing::info!("the session is over (shutdown_when_empty): stopping");
        stop.write(StopRequested);
    }
}

impl Drop for Sidecar {
    /// Waits (up to [`SHUTDOWN_WAIT`]) for a `Shutdown()` under way to be acknowledged, then
    /// stops the SDK's thread.
    fn drop(&mut self) {
        let Some(runtime) = self.runtime.take() else { return };
        if self.desired.borrow().shutdown {
            let mut shut_down = self.shut_down.clone();
            let acked = runtime.block_on(async {
                tokio::time::timeout(SHUTDOWN_WAIT, shut_down.wait_for(|done| *done)).await.is_ok_and(|r| r.is_ok())
            });
            if !acked {
                tracing::warn!(waited = ?SHUTDOWN_WAIT, "Agones did not acknowledge Shutdown(); exiting anyway");
            }
        }
        runtime.shutdown_background();
    }
}
