//! The admin endpoint: one HTTP port for operators, off unless `[admin] bind` (or `--admin`) is
//! set.
//!
//! | route | what |
//! |---|---|
//! | `GET /metrics` | Prometheus metrics (OpenMetrics text), see [`metrics`] |
//! | `GET /healthz` | 200 while the game loop turns (a frame within the last second), else 503 and why |
//! | `GET /readyz` | 200 while accepting players, 503 while starting, draining or shutting down |
//! | `GET /api/rooms` | the rooms and their player counts (JSON) |
//! | `GET /api/rooms/{id}` | a room's players: ids, positions, peers, packets, connected since (JSON) |
//! | `POST /api/players/{id}/kick` | closes that player's connection, reason "kicked by an operator" |
//! | `GET /` | the live web console (`GET /api/console/feed` is its event stream) |
//!
//! # Where it runs
//!
//! On a small tokio runtime of its own (one thread, `admin-http`), not the network's: a scrape
//! or a console never competes with the game's socket writes, and the endpoint lives as long as
//! the app, so `/healthz` answers while the loop is stuck and `/readyz` says "shutting down"
//! while the network closes its connections. It never touches the ECS world and never asks the
//! game to read it: what it shows, the game publishes at most ten times a second while someone
//! reads (module `snapshot`), so no number of requests costs a frame more than one snapshot;
//! only a kick is a question to the game, over a bounded queue drained a few per frame (module
//! `api`). The health checks read [`crate::Lifecycle`]'s atomics.
//!
//! # Probes that cannot be starved
//!
//! A new connection is never refused: when the connections are at their limit (in all, or from
//! one address), the one quiet longest is closed for it (module `slots`), so `/healthz` and
//! `/readyz` are answered whatever other clients hold, and answered from two atomics, without
//! waiting for anything shared.
//!
//! # Security
//!
//! With a token (`[admin] token`, at least 16 characters), every request but `/healthz` and
//! `/readyz` must carry it (`Authorization: Bearer TOKEN`, or Basic credentials with the token as
//! password, which a browser asks for); anything else is a 401 that says nothing more, and an
//! address that keeps sending wrong ones is told 429 (module `access`). A bind address that is
//! not loopback requires a token: the settings are refused without one. A request must name
//! this endpoint in its `Host` (DNS rebinding), no page may frame the console, requests are
//! bounded (module `http`), and a POST from another site's page is refused.

mod access;
mod api;
mod console;
mod http;
pub mod metrics;
mod slots;
mod snapshot;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bevy_app::{App, Last, Plugin};
use bevy_ecs::prelude::*;
use net_plugin::NetSystems;
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

pub use access::{FAILURE_BURST, FAILURE_REFILL};
pub use api::{
    ANSWER_TIMEOUT, ASK_QUEUE, CONSOLE_MAX_PLAYERS, ConsoleUpdate, KICKS_PER_FRAME, Kicked, PlayerInfo, RoomDetail,
    RoomList, RoomSummary,
};
pub use console::{FEED_PERIOD, MAX_FEEDS};
pub use http::{
    HEAD_TIMEOUT, HEALTHY_FRAME_AGE, MAX_BODY_BYTES, MAX_HEAD_BYTES, MAX_URI_BYTES, READ_MAX_WAIT, READS_BURST,
    READS_PER_SECOND,
};
pub use slots::{MAX_CONNECTIONS, MAX_PER_ADDRESS};
pub use snapshot::{DEMAND_WINDOW, MAX_AGE, SNAPSHOT_PERIOD};

use crate::config::{AdminConfig, ConfigError};
use crate::lifecycle::{Lifecycle, LifecyclePlugin};

/// Connections the kernel queues before they are accepted. Under a flood of connections (an
/// attacker reopening every one the endpoint closes) a short queue overflows, and a probe's SYN
/// dropped there waits a second for its retry: the queue must outlast the bursts.
pub const LISTEN_BACKLOG: u32 = 4096;

/// The admin threads' nice value (Linux): above the game's 0, so when the endpoint and the game
/// want the same core, the kernel gives the game ~10 times the endpoint's share. Serving 1,600
/// large answers a second is hundreds of MB/s of copying on the admin thread: on a small machine
/// (or a pod limited to one core) that competed with the game loop for the CPU, although the game
/// did none of the work.
pub const ADMIN_NICE: i32 = 10;

/// Gives the calling thread (one of the admin runtime's) the nice value [`ADMIN_NICE`]: on
/// Linux nice values are per thread, so the game's threads keep theirs. Best effort: a failure
/// (a sandbox refusing it) is logged at debug and changes nothing else.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let thread = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(thread), ADMIN_NICE) {
            tracing::debug!(error = %e, "admin endpoint: cannot lower its thread's priority");
        }
    }
}

/// Why the admin endpoint cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The settings are wrong (see [`AdminConfig::address`]).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The address cannot be listened on.
    #[error("cannot serve the admin endpoint on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The admin endpoint, bound and serving, to add to the server's app (which then answers its
/// questions). Made by [`AdminPlugin::bind`].
///
/// ```no_run
/// use server::{AdminConfig, AdminPlugin, ServerConfig};
///
/// let config = ServerConfig::default();
/// let net = net_plugin::ServerPlugin::bind("127.0.0.1:7777", config.net.clone()).unwrap();
/// let admin = AdminConfig { bind: Some("127.0.0.1:9100".into()), ..AdminConfig::default() };
/// let mut app = server::app(&config, net, None);
/// if let Some(admin) = AdminPlugin::bind(&admin, config.net.max_connections).unwrap() {
///     println!("admin endpoint on http://{}", admin.local_addr());
///     app.add_plugins(admin);
/// }
/// app.run();
/// ```
pub struct AdminPlugin {
    local_addr: SocketAddr,
    max_connections: usize,
    /// Taken by `build` (a plugin is built once).
    started: Mutex<Option<Started>>,
}

/// What `bind` started and `build` hands to the app.
struct Started {
    runtime: Runtime,
    listener: tokio::net::TcpListener,
    token: Option<String>,
    allowed_hosts: Vec<String>,
}

/// The admin runtime, owned by the app: dropping it (when the app ends) stops the endpoint.
#[derive(Resource)]
struct AdminRuntime(Option<Runtime>);

impl Drop for AdminRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl AdminPlugin {
    /// Checks the settings and listens on `[admin] bind`; `None` when it is off.
    /// `max_connections` is the game's connection limit, shown in `/metrics`.
    pub fn bind(config: &AdminConfig, max_connections: usize) -> Result<Option<Self>, AdminError> {
        let Some(addr) = config.address()? else { return Ok(None) };
        let bind = |source| AdminError::Bind { addr, source };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("admin-http")
            .on_thread_start(lower_priority)
            .enable_io()
            .enable_time()
            .build()
            .map_err(bind)?;
        let listener = {
            let _in_runtime = runtime.enter();
            let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }
                .map_err(bind)?;
            #[cfg(unix)]
            socket.set_reuseaddr(true).map_err(bind)?;
            socket.bind(addr).map_err(bind)?;
            socket.listen(LISTEN_BACKLOG).map_err(bind)?
        };
        let local_addr = listener.local_addr().map_err(bind)?;
        Ok(Some(Self {
            local_addr,
            max_connections,
            started: Mutex::new(Some(Started {
                runtime,
                listener,
                token: config.token()?,
                allowed_hosts: config.allowed_hosts.clone(),
            })),
        }))
    }

    /// The address served (useful when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Plugin for AdminPlugin {
    fn build(&self, app: &mut App) {
        let Some(Started { runtime, listener, token, allowed_hosts }) =
            self.started.lock().unwrap_or_else(PoisonError::into_inner).take()
        else {
            return;
        };
        LifecyclePlugin::require(app);
        let (asker, asks) = api::channel();
        let lifecycle = app.world().resource::<Lifecycle>().clone();
        let guarded = token.is_some();
        let board = Arc::new(snapshot::Board::new());
        let state = Arc::new(http::AdminState {
            asker,
            board: board.clone(),
            lifecycle,
            token,
            hosts: access::Hosts::new(self.local_addr, &allowed_hosts),
            failures: access::Failures::default(),
            feeds: Arc::new(Semaphore::new(MAX_FEEDS)),
            faults: http::Faults::default(),
            pacer: http::Pacer::default(),
        });
        runtime.spawn(http::serve(listener, http::router(state.clone()), state));
        tracing::info!(
            "admin endpoint on http://{} ({})",
            self.local_addr,
            if guarded { "token required" } else { "no token: loopback only" }
        );
        app.insert_resource(AdminRuntime(Some(runtime)))
            .insert_resource(asks)
            .insert_resource(api::MaxConnections(self.max_connections))
            .insert_resource(snapshot::Publisher::new(board))
            .add_systems(
                Last,
                (api::answer.run_if(api::asks_waiting), snapshot::publish.run_if(snapshot::due))
                    .chain()
                    .before(NetSystems::Send),
            );
    }
}
