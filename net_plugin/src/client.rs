//! The client side: outgoing connections (the course's Connector), each an entity with the same
//! messages, sending API and limits as the server's.

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bevy_app::{App, Plugin};
use bevy_ecs::prelude::*;
use bevy_ecs::system::SystemParam;
use shared::{ClientPacket, PacketSet, ServerPacket};
use tokio::net::TcpStream;

use crate::connection::SessionIndex;
use crate::handle::SessionId;
use crate::inbound::IoEvent;
use crate::plugin::IoStart;
use crate::runtime::Spawner;
use crate::session::{self, SessionContext, configure_socket};
use crate::transport::{ConnectOptions, Transport, ws};
use crate::{Connecting, NetConfig};

/// Opens outgoing connections. `In` is the packet set servers send (by default every `S_`
/// packet of `assets/PDL.xml`), `Out` the set this side sends (every `C_` packet; see
/// [`ClientOutbox`](crate::ClientOutbox)). Connections are opened with [`Connector`]; the I/O
/// threads start when the plugin is added to an app.
pub struct ClientPlugin<In: PacketSet = ServerPacket, Out: PacketSet = ClientPacket> {
    config: NetConfig,
    _sets: PhantomData<fn() -> (In, Out)>,
}

impl ClientPlugin {
    /// A client for servers that send the packets of `assets/PDL.xml`, or why `config` cannot
    /// work. See [`NetConfig::client_default`].
    pub fn new(config: NetConfig) -> Result<Self, crate::BindError> {
        Self::with_packets(config)
    }
}

impl<In: PacketSet, Out: PacketSet> ClientPlugin<In, Out> {
    /// A client for servers that send the packet set `In`, or why `config` cannot work.
    pub fn with_packets(config: NetConfig) -> Result<Self, crate::BindError> {
        config.validate().map_err(crate::BindError::Config)?;
        Ok(Self { config, _sets: PhantomData })
    }
}

impl<In: PacketSet, Out: PacketSet> Plugin for ClientPlugin<In, Out> {
    fn build(&self, app: &mut App) {
        let io = match IoStart::<In>::new("net-client-io", self.config.clone()) {
            Ok(io) => io,
            // The configuration was checked by `new`; only the OS can refuse threads now.
            Err(e) => panic!("cannot start the client's network: {e}"),
        };
        let spawner = io.runtime.spawner();
        let handle = io.runtime.handle().cloned();
        let cx = io.cx.clone();
        let open: OpenFn = Box::new(move |id, addr, options| {
            if let Some(handle) = &handle {
                let task = connect::<In>(id, addr, options, cx.clone(), spawner.clone());
                spawner.tasks.spawn_on(task, handle);
            }
        });
        app.insert_resource(ConnectorState { open, next_id: AtomicU64::new(1) });
        io.install::<Out>(app);
    }
}

/// Starts a connect task for a session id and address; type-erases the packet set so
/// [`Connector`] needs no type parameter.
type OpenFn = Box<dyn Fn(SessionId, SocketAddr, ConnectOptions) + Send + Sync>;

#[derive(Resource)]
pub(crate) struct ConnectorState {
    open: OpenFn,
    next_id: AtomicU64,
}

/// Opens outgoing connections from any system.
///
/// ```no_run
/// # use bevy_ecs::prelude::*;
/// # use net_plugin::Connector;
/// fn connect_one(mut connector: Connector) {
///     let entity = connector.connect("127.0.0.1:7777".parse().unwrap());
///     // `Connected { entity, .. }` or `ConnectFailed { entity, .. }` follows.
/// }
/// ```
#[derive(SystemParam)]
pub struct Connector<'w, 's> {
    commands: Commands<'w, 's>,
    index: ResMut<'w, SessionIndex>,
    state: Res<'w, ConnectorState>,
}

impl Connector<'_, '_> {
    /// Starts connecting to `addr`; returns the connection's entity, which has [`Connecting`]
    /// until [`Connected`](crate::Connected) (then [`Connection`](crate::Connection)) or
    /// [`ConnectFailed`](crate::ConnectFailed).
    pub fn connect(&mut self, addr: SocketAddr) -> Entity {
        self.connect_over(addr, Transport::Tcp)
    }

    /// Starts connecting to `addr` over `transport`: [`Transport::WebSocket`] upgrades
    /// `ws://addr/` (the server's WebSocket port) and sends each frame's packets as one binary
    /// message, as a browser would. Otherwise as [`connect`](Self::connect).
    pub fn connect_over(&mut self, addr: SocketAddr, transport: Transport) -> Entity {
        self.connect_with(addr, ConnectOptions { transport, tls: None })
    }

    /// Starts connecting to `addr` as `options` say: with [`ConnectOptions::tls`] over
    /// [`Transport::WebSocket`], `wss://` (the server's certificate checked before the upgrade;
    /// a certificate not trusted is a [`ConnectFailed`](crate::ConnectFailed) naming why).
    /// Otherwise as [`connect_over`](Self::connect_over).
    pub fn connect_with(&mut self, addr: SocketAddr, options: ConnectOptions) -> Entity {
        let id = SessionId(self.state.next_id.fetch_add(1, Ordering::Relaxed));
        let entity = self.commands.spawn(Connecting { addr, since: Instant::now() }).id();
        self.index.insert(id, entity, None);
        (self.state.open)(id, addr, options);
        entity
    }
}

/// Connects, then runs the session like an accepted one.
async fn connect<In: PacketSet>(
    id: SessionId,
    addr: SocketAddr,
    options: ConnectOptions,
    cx: Arc<SessionContext<In>>,
    spawner: Spawner,
) {
    let attempt = tokio::time::timeout(cx.config.connect_timeout, TcpStream::connect(addr));
    let result = tokio::select! {
        biased;
        () = spawner.shutdown.cancelled() => return,
        result = attempt => result,
    };
    let mut stream = match result {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return fail(&cx, id, addr, e.to_string()).await,
        Err(_) => return fail(&cx, id, addr, format!("timed out after {:?}", cx.config.connect_timeout)).await,
    };
    if let Err(e) = configure_socket(&stream, &cx.config) {
        return fail(&cx, id, addr, e.to_string()).await;
    }
    let (mut role, mut tls) = (None, None);
    if options.transport == Transport::WebSocket {
        let upgrade = tokio::time::timeout(cx.config.connect_timeout, async {
            match &options.tls {
                Some(client_tls) => client_tls.connect(&mut stream, addr).await.map(Some),
                None => ws::connect(&mut stream, addr).await.map(|()| None),
            }
        });
        let upgraded = tokio::select! {
            biased;
            () = spawner.shutdown.cancelled() => return,
            upgraded = upgrade => upgraded,
        };
        match upgraded {
            Ok(Ok(secured)) => (role, tls) = (Some(ws::Role::Client), secured),
            Ok(Err(e)) => return fail(&cx, id, addr, e.to_string()).await,
            Err(_) => return fail(&cx, id, addr, format!("no upgrade within {:?}", cx.config.connect_timeout)).await,
        }
    }
    session::run::<In>(stream, role, tls, id, addr, cx, &spawner.shutdown).await;
}

async fn fail<In>(cx: &SessionContext<In>, id: SessionId, addr: SocketAddr, error: String) {
    tracing::debug!(session = id.0, %addr, %error, "connect failed");
    let _ = cx.inbound.send_event(IoEvent::ConnectFailed { id, error: error.into() });
}
