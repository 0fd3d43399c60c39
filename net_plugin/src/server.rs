//! The server side: a listener under a connection limit (the course's Listener).

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bevy_app::{App, Plugin};
use bevy_ecs::resource::Resource;
use shared::{ClientPacket, PacketSet};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::plugin::IoStart;
use crate::runtime::Spawner;
use crate::session::{self, SessionContext, configure_socket};
use crate::stats::IoCounters;
use crate::throttle::LogThrottle;
use crate::{NetConfig, SessionId};

/// Why the server could not start listening.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The configuration has a value the plugin cannot work with.
    #[error("invalid network configuration: {0}")]
    Config(String),
    /// The address does not resolve.
    #[error("cannot resolve {addr}: {source}")]
    Resolve {
        /// The address as given.
        addr: String,
        /// What went wrong.
        source: io::Error,
    },
    /// Binding or listening failed (address in use, not ours, no permission…).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The resolved address.
        addr: SocketAddr,
        /// What went wrong.
        source: io::Error,
    },
    /// The I/O threads could not be started.
    #[error("cannot start the network threads: {0}")]
    Runtime(io::Error),
}

/// The address the server listens on (useful when bound to port 0).
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerAddr(pub SocketAddr);

/// Accepts connections and runs their sessions. `In` is the packet set clients send (by default
/// every `C_` packet of `assets/PDL.xml`).
///
/// Created with [`ServerPlugin::bind`], which fails (instead of panicking later) when the
/// address cannot be listened on; the listener accepts from then on, and connections wait for
/// the app's first frame.
///
/// ```no_run
/// use bevy_app::App;
/// use net_plugin::{NetConfig, ServerPlugin};
///
/// let net = ServerPlugin::bind("0.0.0.0:7777", NetConfig::default())?;
/// println!("listening on {}", net.local_addr());
/// App::new().add_plugins(net).run();
/// # Ok::<(), net_plugin::BindError>(())
/// ```
pub struct ServerPlugin<In: PacketSet = ClientPacket> {
    /// Taken by `build`.
    started: Mutex<Option<IoStart<In>>>,
    local_addr: SocketAddr,
}

impl ServerPlugin {
    /// Binds `addr` and starts accepting clients that send the packets of `assets/PDL.xml`.
    pub fn bind(addr: impl ToSocketAddrs + std::fmt::Display, config: NetConfig) -> Result<Self, BindError> {
        Self::bind_with_packets(addr, config)
    }
}

impl<In: PacketSet> ServerPlugin<In> {
    /// Binds `addr` and starts accepting clients that send the packet set `In`.
    pub fn bind_with_packets(
        addr: impl ToSocketAddrs + std::fmt::Display,
        config: NetConfig,
    ) -> Result<Self, BindError> {
        config.validate().map_err(BindError::Config)?;
        let resolved = addr
            .to_socket_addrs()
            .map_err(|source| BindError::Resolve { addr: addr.to_string(), source })?
            .next()
            .ok_or_else(|| BindError::Resolve {
                addr: addr.to_string(),
                source: io::Error::new(io::ErrorKind::NotFound, "no address"),
            })?;
        let std_listener =
            listen(resolved, config.listen_backlog).map_err(|source| BindError::Bind { addr: resolved, source })?;
        let local_addr = std_listener.local_addr().map_err(|source| BindError::Bind { addr: resolved, source })?;

        let io = IoStart::<In>::new("net-server-io", config)?;
        let listener = {
            let _in_runtime = io.runtime.handle().map(|h| h.enter());
            TcpListener::from_std(std_listener).map_err(|source| BindError::Bind { addr: resolved, source })?
        };
        io.runtime.spawn(accept_loop(listener, io.cx.clone(), io.runtime.spawner()));
        tracing::info!("listening on {local_addr}");
        Ok(Self { started: Mutex::new(Some(io)), local_addr })
    }

    /// The address listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl<In: PacketSet> Plugin for ServerPlugin<In> {
    fn build(&self, app: &mut App) {
        // Bevy refuses to add a plugin twice, so this is always the first build.
        let Some(io) = self.started.lock().unwrap_or_else(PoisonError::into_inner).take() else {
            return;
        };
        app.insert_resource(ServerAddr(self.local_addr));
        io.install(app);
    }
}

/// A listening socket with the address reusable (a restarted server can bind again at once)
/// and the configured backlog.
fn listen(addr: SocketAddr, backlog: u32) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// How long to wait after a failed accept (out of file descriptors, say) before trying again,
/// so the loop does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Accepts until shutdown. Each connection takes a permit of the connection limit for as long
/// as its session runs; without one it is closed at once.
async fn accept_loop<In: PacketSet>(listener: TcpListener, cx: Arc<SessionContext<In>>, spawner: Spawner) {
    let limit = Arc::new(Semaphore::new(cx.config.max_connections));
    let next_id = AtomicU64::new(1);
    let mut refusals = LogThrottle::new(Duration::from_secs(1));
    let mut failures = LogThrottle::new(Duration::from_secs(1));
    loop {
        let accepted = tokio::select! {
            biased;
            () = spawner.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                if let Some(held_back) = failures.hit() {
                    tracing::warn!(error = %e, held_back, "accept failed; retrying");
                }
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            IoCounters::add(&cx.counters.refused, 1);
            if let Some(held_back) = refusals.hit() {
                tracing::warn!(%peer, limit = cx.config.max_connections, held_back, "connection refused: at the connection limit");
            }
            continue;
        };
        if let Err(e) = configure_socket(&stream, &cx.config) {
            tracing::debug!(%peer, error = %e, "could not configure an accepted socket; dropping it");
            continue;
        }
        let id = SessionId(next_id.fetch_add(1, Ordering::Relaxed));
        let (cx, shutdown) = (cx.clone(), spawner.shutdown.clone());
        spawner.tasks.spawn(async move {
            session::open::<In>(stream, id, peer, cx, &shutdown).await;
            drop(permit);
        });
    }
}
