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
//! while the network closes its connections. It never touches the ECS world: what it needs from
//! the game it asks over a bounded channel, answered at the end of the next frame (module `api`);
//! the health checks read [`crate::Lifecycle`]'s atomics.
//!
//! # Security
//!
//! With a token (`[admin] token`), every request but `/healthz` and `/readyz` must carry it
//! (`Authorization: Bearer TOKEN`, or Basic credentials with the token as password, which a
//! browser asks for); anything else is a 401 that says nothing more. A bind address that is not
//! loopback requires a token: the settings are refused without one. Requests are bounded (see
//! module `http`); a POST from another site's page is refused.

mod api;
mod console;
mod http;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bevy_app::{App, Last, Plugin};
use bevy_ecs::prelude::*;
use net_plugin::NetSystems;
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

pub use api::{
    ANSWER_TIMEOUT, ASK_QUEUE, CONSOLE_MAX_PLAYERS, ConsoleUpdate, Kicked, PlayerInfo, RoomDetail, RoomList,
    RoomSummary,
};
pub use console::{FEED_PERIOD, MAX_FEEDS};
pub use http::{HEAD_TIMEOUT, HEALTHY_FRAME_AGE, MAX_BODY_BYTES, MAX_CONNECTIONS, MAX_HEAD_BYTES, MAX_URI_BYTES};

use crate::config::{AdminConfig, ConfigError};
use crate::lifecycle::{Lifecycle, LifecyclePlugin};

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
/// let admin = AdminConfig { bind: Some("127.0.0.1:9100".into()), token: None };
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
            .enable_io()
            .enable_time()
            .build()
            .map_err(bind)?;
        let std_listener = std::net::TcpListener::bind(addr).map_err(bind)?;
        std_listener.set_nonblocking(true).map_err(bind)?;
        let local_addr = std_listener.local_addr().map_err(bind)?;
        let listener = {
            let _in_runtime = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener).map_err(bind)?
        };
        Ok(Some(Self {
            local_addr,
            max_connections,
            started: Mutex::new(Some(Started { runtime, listener, token: config.token.clone() })),
        }))
    }

    /// The address served (useful when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Plugin for AdminPlugin {
    fn build(&self, app: &mut App) {
        let Some(Started { runtime, listener, token }) =
            self.started.lock().unwrap_or_else(PoisonError::into_inner).take()
        else {
            return;
        };
        LifecyclePlugin::require(app);
        let (asker, asks) = api::channel();
        let lifecycle = app.world().resource::<Lifecycle>().clone();
        let guarded = token.is_some();
        let state = Arc::new(http::AdminState { asker, lifecycle, token, feeds: Arc::new(Semaphore::new(MAX_FEEDS)) });
        runtime.spawn(http::serve(listener, http::router(state)));
        tracing::info!(
            "admin endpoint on http://{} ({})",
            self.local_addr,
            if guarded { "token required" } else { "no token: loopback only" }
        );
        app.insert_resource(AdminRuntime(Some(runtime)))
            .insert_resource(asks)
            .insert_resource(api::MaxConnections(self.max_connections))
            .add_systems(Last, api::answer.run_if(api::asks_waiting).before(NetSystems::Send));
    }
}
