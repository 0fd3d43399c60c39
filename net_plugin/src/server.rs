//! The server side: a listener under a connection limit (the course's Listener).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bevy_app::{App, Plugin};
use bevy_ecs::resource::Resource;
use shared::{ClientPacket, PacketSet, ServerPacket};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::NetConfig;
use crate::faults::Faults;
use crate::handle::SessionId;
use crate::plugin::IoStart;
use crate::runtime::Spawner;
use crate::session::{self, SessionContext, configure_socket};
use crate::stats::Refusal;
use crate::throttle::LogThrottle;
use crate::transport::tls::{self, Tls};
use crate::transport::{Transport, WebFile, ws};

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

/// The address the WebSocket transport listens on, when it is on
/// ([`WebSocketConfig::bind`](crate::WebSocketConfig::bind)).
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebSocketAddr(pub SocketAddr);

/// The listening socket as game code may steer it: [`stop_accepting`](Self::stop_accepting)
/// closes it (a graceful drain: newcomers are refused by the kernel, so a load balancer or a
/// client's retry goes elsewhere at once) while every open connection goes on as before.
///
/// The ECS never touches the socket: this resource only signals the accept loop, which closes
/// it on the I/O threads. There is no resuming: the port may be someone else's by then.
#[derive(Resource, Debug, Clone)]
pub struct ListenerControl {
    stop: CancellationToken,
}

impl ListenerControl {
    /// Stops accepting and closes the listening socket, within moments. Idempotent.
    pub fn stop_accepting(&self) {
        self.stop.cancel();
    }

    /// Whether the server still accepts connections (no [`stop_accepting`](Self::stop_accepting)
    /// yet).
    pub fn is_accepting(&self) -> bool {
        !self.stop.is_cancelled()
    }
}

/// Whether the host can listen on IPv6: asked of the operating system, or, for tests on a host
/// that has it, said to be unavailable.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ipv6Host {
    /// Try, as the binary does.
    #[default]
    Ask,
    /// Fail every IPv6 socket as a host without IPv6 would (`EAFNOSUPPORT`).
    Unavailable,
}

/// Accepts connections and runs their sessions. `In` is the packet set clients send (by default
/// every `C_` packet of `assets/PDL.xml`), `Out` the set the server sends (every `S_` packet).
///
/// Created with [`ServerPlugin::bind`], which binds the address and fails (instead of panicking
/// later) when it cannot be listened on; the kernel queues connections from then on. The I/O
/// threads start when the plugin is added to an app, and sessions begin with its first frame.
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
pub struct ServerPlugin<In: PacketSet = ClientPacket, Out: PacketSet = ServerPacket> {
    config: NetConfig,
    /// The bound socket, taken by `build` (a plugin is built once).
    listener: Mutex<Option<std::net::TcpListener>>,
    local_addr: SocketAddr,
    /// The WebSocket transport's bound socket, when it is on; taken by `build`.
    ws_listener: Mutex<Option<std::net::TcpListener>>,
    ws_addr: Option<SocketAddr>,
    /// What the WebSocket port serves to a plain `GET`.
    files: Vec<WebFile>,
    /// The WebSocket port's TLS (`wss://`), loaded at bind time.
    tls: Option<tls::Acceptor>,
    _sets: std::marker::PhantomData<fn() -> (In, Out)>,
}

impl ServerPlugin {
    /// Binds `addr` and starts accepting clients that send the packets of `assets/PDL.xml`.
    pub fn bind(addr: impl ToSocketAddrs + std::fmt::Display, config: NetConfig) -> Result<Self, BindError> {
        Self::bind_with_packets(addr, config)
    }
}

impl<In: PacketSet, Out: PacketSet> ServerPlugin<In, Out> {
    /// Binds `addr`, for clients that send the packet set `In` and are sent `Out`.
    ///
    /// `[::]:PORT` listens on IPv6 and IPv4 alike (one dual-stack socket: IPv4 peers appear as
    /// IPv4-mapped addresses, which the per-address limit counts as their IPv4 address). On a
    /// host without IPv6 it falls back to `0.0.0.0:PORT`, saying so in a log line.
    pub fn bind_with_packets(
        addr: impl ToSocketAddrs + std::fmt::Display,
        config: NetConfig,
    ) -> Result<Self, BindError> {
        Self::bind_on_host(addr, config, Ipv6Host::Ask)
    }

    /// [`bind_with_packets`](Self::bind_with_packets) on a host whose IPv6 support is as
    /// `ipv6` says: for tests of the IPv4 fallback on a host that has IPv6.
    #[doc(hidden)]
    pub fn bind_on_host(
        addr: impl ToSocketAddrs + std::fmt::Display,
        config: NetConfig,
        ipv6: Ipv6Host,
    ) -> Result<Self, BindError> {
        config.validate().map_err(BindError::Config)?;
        // A certificate that does not load is a bad setting, found before anything listens.
        let tls = match (&config.websocket.tls_cert, &config.websocket.tls_key) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key).map_err(BindError::Config)?),
            _ => None,
        };
        let (std_listener, local_addr) = bind_one(addr, &config, ipv6)?;
        tracing::info!("listening on {local_addr}");
        let (ws_listener, ws_addr) = match &config.websocket.bind {
            Some(ws) => {
                let (listener, addr) = bind_one(ws.as_str(), &config, ipv6)?;
                tracing::info!("listening for WebSocket clients on {addr}");
                if tls.is_some() {
                    tracing::info!("the WebSocket port speaks TLS only: wss:// (the play page at https://)");
                }
                (Some(listener), Some(addr))
            }
            None => (None, None),
        };
        Ok(Self {
            config,
            listener: Mutex::new(Some(std_listener)),
            local_addr,
            ws_listener: Mutex::new(ws_listener),
            ws_addr,
            files: Vec::new(),
            tls,
            _sets: std::marker::PhantomData,
        })
    }

    /// The address listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves `files` on the WebSocket port to plain `GET` requests (a play page and its
    /// scripts): a browser opens `http://HOST:PORT/` and its script connects to the same port.
    /// Nothing is served while the transport is off.
    pub fn serve_files(mut self, files: &[WebFile]) -> Self {
        self.files = files.to_vec();
        self
    }

    /// The address listened on for WebSocket clients, when that transport is on.
    pub fn websocket_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }
}

/// Resolves and binds one listening address, falling back to IPv4 on a host without IPv6.
fn bind_one(
    addr: impl ToSocketAddrs + std::fmt::Display,
    config: &NetConfig,
    ipv6: Ipv6Host,
) -> Result<(std::net::TcpListener, SocketAddr), BindError> {
    {
        let resolved = addr
            .to_socket_addrs()
            .map_err(|source| BindError::Resolve { addr: addr.to_string(), source })?
            .next()
            .ok_or_else(|| BindError::Resolve {
                addr: addr.to_string(),
                source: io::Error::new(io::ErrorKind::NotFound, "no address"),
            })?;
        let std_listener = match listen(resolved, config.listen_backlog, ipv6) {
            Err(e) if is_ipv6_unavailable(&e) && resolved.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED) => {
                let v4 = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), resolved.port());
                tracing::warn!(error = %e, "IPv6 is unavailable on this host: listening on IPv4 only ({v4}, not {resolved})");
                listen(v4, config.listen_backlog, ipv6).map_err(|source| BindError::Bind { addr: v4, source })?
            }
            listened => listened.map_err(|source| BindError::Bind { addr: resolved, source })?,
        };
        let local_addr = std_listener.local_addr().map_err(|source| BindError::Bind { addr: resolved, source })?;
        Ok((std_listener, local_addr))
    }
}

impl<In: PacketSet, Out: PacketSet> Plugin for ServerPlugin<In, Out> {
    fn build(&self, app: &mut App) {
        // Bevy refuses to add a plugin twice, so this is always the first build.
        let Some(std_listener) = self.listener.lock().unwrap_or_else(PoisonError::into_inner).take() else {
            return;
        };
        let io = match IoStart::<In>::new("net-server-io", self.config.clone()) {
            Ok(io) => io,
            // The configuration was checked by `bind`; only the OS can refuse threads now.
            Err(e) => panic!("cannot start the server's network: {e}"),
        };
        let register = |std_listener: std::net::TcpListener, addr: SocketAddr| {
            let _in_runtime = io.runtime.handle().map(|h| h.enter());
            match TcpListener::from_std(std_listener) {
                Ok(listener) => Arc::new(listener),
                Err(e) => panic!("cannot register the listener {addr}: {e}"),
            }
        };
        let control = ListenerControl { stop: CancellationToken::new() };
        // What both transports' accept loops share: one connection limit, one count per
        // address, one sequence of session ids.
        let shared = Shared {
            limit: Arc::new(Semaphore::new(self.config.max_connections)),
            per_ip: Arc::new(PerIp {
                limit: self.config.max_connections_per_ip,
                counts_loopback: self.config.per_ip_counts_loopback,
                open: Mutex::default(),
            }),
            next_id: Arc::new(AtomicU64::new(1)),
        };
        let ws_listener = self.ws_listener.lock().unwrap_or_else(PoisonError::into_inner).take();
        let listeners = [
            (Transport::Tcp, Some(std_listener), Some(self.local_addr)),
            (Transport::WebSocket, ws_listener, self.ws_addr),
        ];
        for (transport, std_listener, addr) in listeners {
            let (Some(std_listener), Some(addr)) = (std_listener, addr) else { continue };
            let accept = Arc::new(AcceptState {
                transport,
                listener: Mutex::new(Some(register(std_listener, addr))),
                stop: control.stop.clone(),
                local_addr: addr,
                shared: shared.clone(),
                handshake_failures: Mutex::new(LogThrottle::new(Duration::from_secs(1))),
                files: self.files.clone().into(),
                tls: self.tls.clone(),
                cx: io.cx.clone(),
                spawner: io.runtime.spawner(),
                faults: io.runtime.faults().clone(),
            });
            let name = match transport {
                Transport::Tcp => "accept loop",
                Transport::WebSocket => "websocket accept loop",
            };
            io.runtime.supervise(name, move |_restarted| accept.clone().run());
        }
        if let Some(addr) = self.ws_addr {
            app.insert_resource(WebSocketAddr(addr));
        }
        app.insert_resource(ServerAddr(self.local_addr)).insert_resource(control);
        io.install::<Out>(app);
    }
}

/// A listening socket with the address reusable (a restarted server can bind again at once)
/// and the configured backlog. An IPv6 socket on the unspecified address takes IPv4 too,
/// whatever the host's default (`net.ipv6.bindv6only`).
fn listen(addr: SocketAddr, backlog: u32, ipv6: Ipv6Host) -> io::Result<std::net::TcpListener> {
    if addr.is_ipv6() && ipv6 == Ipv6Host::Unavailable {
        return Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT));
    }
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    if addr.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED) {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Whether a failed listen means the host has no IPv6 (a kernel without the address family or
/// protocol, or IPv6 turned off so there is no address to bind), rather than a port in use or no
/// permission.
fn is_ipv6_unavailable(e: &io::Error) -> bool {
    e.raw_os_error()
        .is_some_and(|code| [libc::EAFNOSUPPORT, libc::EPROTONOSUPPORT, libc::EADDRNOTAVAIL].contains(&code))
}

/// How long to wait after a failed accept (out of file descriptors, say) before trying again,
/// so the loop does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// What the accept loop keeps across a restart by its supervisor: the listener, the connection
/// limit's permits held by open sessions, and the session ids handed out.
struct AcceptState<In> {
    /// What the connections accepted here speak.
    transport: Transport,
    /// Taken (and so closed) when accepting stops.
    listener: Mutex<Option<Arc<TcpListener>>>,
    /// Cancelled by [`ListenerControl::stop_accepting`].
    stop: CancellationToken,
    local_addr: SocketAddr,
    /// The limits and ids shared with the other transport's accept loop.
    shared: Shared,
    /// Upgrades that failed (WebSocket): a debug line each, a warning now and then.
    handshake_failures: Mutex<LogThrottle>,
    /// What the WebSocket port serves to a plain `GET`.
    files: Arc<[WebFile]>,
    /// The WebSocket port's TLS, when it speaks `wss://`.
    tls: Option<tls::Acceptor>,
    cx: Arc<SessionContext<In>>,
    spawner: Spawner,
    faults: Arc<Faults>,
}

impl<In: PacketSet> AcceptState<In> {
    /// Accepts until shutdown, or until accepting stops (then the listening socket is closed).
    /// Each connection takes a permit of the connection limit for as long as its session runs;
    /// without one it is closed at once.
    async fn run(self: Arc<Self>) {
        let Self { transport, listener, stop, local_addr, shared, cx, spawner, faults, .. } = &*self;
        let Shared { limit, per_ip, next_id } = shared;
        let transport = *transport;
        let Some(listener) = listener.lock().unwrap_or_else(PoisonError::into_inner).clone() else { return };
        let mut refusals = LogThrottle::new(Duration::from_secs(1));
        let mut failures = LogThrottle::new(Duration::from_secs(1));
        loop {
            let accepted = tokio::select! {
                biased;
                () = spawner.shutdown.cancelled() => return,
                () = stop.cancelled() => {
                    // What the kernel queued before now is closed here, and counted: the kernel
                    // would reset it anyway when the socket closes, and nobody would know.
                    let queued = refuse_queued(socket2::SockRef::from(&*listener), cx.config.listen_backlog);
                    for _ in 0..queued {
                        cx.counters.refused(Refusal::NotAccepting);
                    }
                    if queued > 0 {
                        tracing::debug!(queued, "closed the connections queued when accepting stopped");
                    }
                    // This task holds the other handle, dropped as it returns: the socket closes.
                    self.listener.lock().unwrap_or_else(PoisonError::into_inner).take();
                    tracing::info!("stopped accepting connections on {local_addr}; open connections go on");
                    return;
                }
                accepted = listener.accept() => accepted,
            };
            faults.accept();
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
            // The host's own address: a client on this machine that connected to one of its
            // non-loopback addresses (the kernel gives it that same address as its source).
            let host = stream.local_addr().ok().map(|a| a.ip());
            let Some(address_slot) = PerIp::take(per_ip, peer.ip(), host) else {
                cx.counters.refused(Refusal::PerAddress);
                tracing::debug!(%peer, "connection refused: at the per-address limit");
                if let Some(held_back) = refusals.hit() {
                    tracing::warn!(%peer, limit = ?per_ip.limit, held_back, "connection refused: at the per-address limit");
                }
                continue;
            };
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                cx.counters.refused(Refusal::ServerFull);
                tracing::debug!(%peer, "connection refused: at the connection limit");
                if let Some(held_back) = refusals.hit() {
                    tracing::warn!(%peer, limit = cx.config.max_connections, held_back, "connection refused: at the connection limit");
                }
                continue;
            };
            if let Err(e) = configure_socket(&stream, &cx.config) {
                cx.counters.refused(Refusal::SocketSetup);
                tracing::debug!(%peer, error = %e, "could not configure an accepted socket; dropping it");
                continue;
            }
            let id = SessionId(next_id.fetch_add(1, Ordering::Relaxed));
            let (cx, shutdown, this) = (cx.clone(), spawner.shutdown.clone(), self.clone());
            spawner.tasks.spawn(async move {
                let mut stream = stream;
                let mut tls_state = None;
                if transport == Transport::WebSocket {
                    // The upgrade (after the TLS handshake on a `wss://` port) holds the
                    // connection's slot, within the handshake timeout.
                    let upgrade = async {
                        let Some(acceptor) = &this.tls else {
                            return ws::accept(&mut stream, &cx.config.websocket, &this.files).await;
                        };
                        let mut secured = acceptor.accept(&mut stream).await.map_err(ws::HandshakeError::Io)?;
                        let upgraded = ws::accept(&mut secured, &cx.config.websocket, &this.files).await;
                        tls_state = Some(Tls::new(secured.into_inner().1));
                        upgraded
                    };
                    let timeout = cx.config.websocket.handshake_timeout;
                    // Boxed: inline, the handshake's state (rustls's among it, kilobytes) would
                    // size this task for its whole life, and every plain TCP session's with it.
                    let upgrade = Box::pin(upgrade);
                    let upgraded = tokio::select! {
                        () = shutdown.cancelled() => return,
                        upgraded = tokio::time::timeout(timeout, upgrade) => {
                            upgraded.unwrap_or(Err(ws::HandshakeError::Timeout(timeout)))
                        }
                    };
                    if let Err(ws::HandshakeError::Served(path)) = upgraded {
                        tracing::debug!(%peer, path, "served a file on the WebSocket port");
                        return;
                    }
                    if let Err(error) = upgraded {
                        tracing::debug!(%peer, %error, "WebSocket upgrade failed");
                        let held_back = this.handshake_failures.lock().unwrap_or_else(PoisonError::into_inner).hit();
                        if let Some(held_back) = held_back {
                            tracing::warn!(%peer, %error, held_back, "WebSocket upgrade failed");
                        }
                        return;
                    }
                }
                let role = (transport == Transport::WebSocket).then_some(ws::Role::Server);
                session::run::<In>(stream, role, tls_state, id, peer, cx, &shutdown).await;
                drop((permit, address_slot));
            });
        }
    }
}

/// What every transport's accept loop shares.
#[derive(Clone)]
struct Shared {
    /// One permit per open connection, held by its session task for as long as it runs.
    limit: Arc<Semaphore>,
    /// Open connections per address.
    per_ip: Arc<PerIp>,
    next_id: Arc<AtomicU64>,
}

/// Accepts, and closes at once, the connections the kernel has queued on `listener` (a
/// non-blocking socket: without waiting for more, and asking the socket itself rather than the
/// runtime's last word on its readiness), `most` at the most; returns how many.
fn refuse_queued(listener: socket2::SockRef<'_>, most: u32) -> u64 {
    let mut closed = 0;
    // Bounded: newcomers racing the close cannot keep this loop going.
    while closed < u64::from(most) && listener.accept().is_ok() {
        closed += 1;
    }
    closed
}

/// Open connections per IP address, under `max_connections_per_ip`.
#[derive(Debug)]
struct PerIp {
    limit: Option<usize>,
    counts_loopback: bool,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in its address's count, given back when dropped.
struct AddressSlot {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    /// A slot for a connection from `ip` to the host's address `host` (the accepted socket's
    /// own), or `None` when that address is at the limit. Local connections are not counted
    /// unless configured so ([`is_local`]); nothing is when there is no limit.
    fn take(this: &Arc<Self>, ip: IpAddr, host: Option<IpAddr>) -> Option<Option<AddressSlot>> {
        let Some(limit) = this.limit.filter(|_| this.counts_loopback || !is_local(ip, host)) else {
            return Some(None);
        };
        let ip = source(ip);
        let mut open = this.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Some(AddressSlot { per_ip: this.clone(), ip }))
    }
}

/// Whether a connection from `peer` to the host's address `host` comes from this machine: a
/// loopback address, or the very address it connected to. A client on this machine connecting
/// to one of its other addresses (the course's DummyClient connects to the first address of the
/// host's name, not to 127.0.0.1) gets that address as its source from the kernel. A peer
/// elsewhere cannot: the kernel drops a packet from outside that claims one of the host's own
/// addresses as its source, and TCP's handshake needs the answer to reach the real sender.
fn is_local(peer: IpAddr, host: Option<IpAddr>) -> bool {
    let peer = peer.to_canonical();
    peer.is_loopback() || host.is_some_and(|host| host.to_canonical() == peer && !host.is_unspecified())
}

/// The source a connection is counted under: an IPv4 address (also when it arrives mapped into
/// IPv6 on the dual-stack socket), or an IPv6 address's /64 network. A single IPv6 host is
/// normally given a whole /64 and can pick any of its 2^64 addresses, so counting full IPv6
/// addresses would let one machine take every slot.
fn source(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) if !v6.is_loopback() => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !((1u128 << 64) - 1))),
        other => other,
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.per_ip.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host's address the connections in these tests came to.
    const HOST: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)));

    fn per_ip(limit: Option<usize>) -> Arc<PerIp> {
        Arc::new(PerIp { limit, counts_loopback: false, open: Mutex::default() })
    }

    #[test]
    fn an_address_gets_at_most_its_limit_and_slots_come_back() {
        let limits = per_ip(Some(2));
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let a = PerIp::take(&limits, ip, HOST).unwrap();
        let b = PerIp::take(&limits, ip, HOST).unwrap();
        assert!(PerIp::take(&limits, ip, HOST).is_none());
        // Another address is not affected.
        assert!(PerIp::take(&limits, "203.0.113.8".parse().unwrap(), HOST).is_some());
        drop(a);
        let c = PerIp::take(&limits, ip, HOST).unwrap();
        drop((b, c));
        assert!(limits.open.lock().unwrap().get(&ip).is_none(), "no entry is kept for an address with none open");
    }

    #[test]
    fn loopback_is_exempt_and_mapped_addresses_count_as_their_ipv4() {
        let limits = per_ip(Some(1));
        let held: Vec<_> = (0..5).map(|_| PerIp::take(&limits, "127.0.0.1".parse().unwrap(), HOST).unwrap()).collect();
        assert!(held.iter().all(Option::is_none), "loopback takes no slot");
        let _v4 = PerIp::take(&limits, "198.51.100.1".parse().unwrap(), HOST).unwrap();
        assert!(PerIp::take(&limits, "::ffff:198.51.100.1".parse().unwrap(), HOST).is_none());
    }

    #[test]
    fn the_hosts_own_address_is_exempt_like_loopback_and_only_it() {
        let limits = per_ip(Some(1));
        // A client on this machine that connected to its address 192.0.2.10: its source is that
        // address (also as seen mapped on the dual-stack socket).
        for peer in ["192.0.2.10", "::ffff:192.0.2.10"] {
            let held: Vec<_> = (0..5).map(|_| PerIp::take(&limits, peer.parse().unwrap(), HOST).unwrap()).collect();
            assert!(held.iter().all(Option::is_none), "{peer} takes no slot");
        }
        let mapped_host = Some("::ffff:192.0.2.10".parse().unwrap());
        assert!(PerIp::take(&limits, "192.0.2.10".parse().unwrap(), mapped_host).unwrap().is_none());
        // Its neighbour on the same network is another machine, counted as ever.
        let _n = PerIp::take(&limits, "192.0.2.11".parse().unwrap(), HOST).unwrap().unwrap();
        assert!(PerIp::take(&limits, "192.0.2.11".parse().unwrap(), HOST).is_none());
        // Another of the host's addresses than the one connected to is not exempt by this rule.
        let other = Some("198.51.100.1".parse().unwrap());
        let _h = PerIp::take(&limits, "192.0.2.10".parse().unwrap(), other).unwrap().unwrap();
        assert!(PerIp::take(&limits, "192.0.2.10".parse().unwrap(), other).is_none());
        // An IPv6 host address is exempt as a whole address, not as its /64.
        let v6_host = Some("2001:db8::10".parse().unwrap());
        assert!(PerIp::take(&limits, "2001:db8::10".parse().unwrap(), v6_host).unwrap().is_none());
        let _v6 = PerIp::take(&limits, "2001:db8::11".parse().unwrap(), v6_host).unwrap().unwrap();
        assert!(
            PerIp::take(&limits, "2001:db8::12".parse().unwrap(), v6_host).is_none(),
            "the host's /64 neighbours count"
        );
        // Without a known host address (or an unspecified one) only loopback is local.
        assert!(!is_local("192.0.2.10".parse().unwrap(), None));
        assert!(!is_local("0.0.0.0".parse().unwrap(), Some(Ipv4Addr::UNSPECIFIED.into())));
    }

    #[test]
    fn counting_loopback_counts_the_hosts_own_address_too() {
        let limits = Arc::new(PerIp { limit: Some(1), counts_loopback: true, open: Mutex::default() });
        let _a = PerIp::take(&limits, "192.0.2.10".parse().unwrap(), HOST).unwrap().unwrap();
        assert!(PerIp::take(&limits, "192.0.2.10".parse().unwrap(), HOST).is_none());
    }

    #[test]
    fn the_connections_queued_when_accepting_stops_are_closed_and_counted() {
        let listener = listen("127.0.0.1:0".parse().unwrap(), 16, Ipv6Host::Ask).unwrap();
        let addr = listener.local_addr().unwrap();
        // The kernel completes these handshakes and queues them; nobody has accepted them.
        let mut queued: Vec<_> = (0..3).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
        assert_eq!(refuse_queued(socket2::SockRef::from(&listener), 2), 2, "no more than asked");
        assert_eq!(refuse_queued(socket2::SockRef::from(&listener), 16), 1);
        assert_eq!(refuse_queued(socket2::SockRef::from(&listener), 16), 0, "and nothing waits for more");
        for client in &mut queued {
            client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut byte = [0u8; 1];
            let read = io::Read::read(client, &mut byte);
            assert!(
                matches!(&read, Ok(0)) || read.as_ref().is_err_and(|e| e.kind() == io::ErrorKind::ConnectionReset),
                "closed, not just silent: {read:?}"
            );
        }
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_network() {
        let limits = per_ip(Some(2));
        let _a = PerIp::take(&limits, "2001:db8:1:2::1".parse().unwrap(), HOST).unwrap();
        let _b = PerIp::take(&limits, "2001:db8:1:2:ffff:0:0:9".parse().unwrap(), HOST).unwrap();
        assert!(
            PerIp::take(&limits, "2001:db8:1:2:dead:beef:0:1".parse().unwrap(), HOST).is_none(),
            "a third address of the same /64 is the same host"
        );
        assert!(
            PerIp::take(&limits, "2001:db8:1:3::1".parse().unwrap(), HOST).is_some(),
            "another /64 is another source"
        );
        let held: Vec<_> = (0..5).map(|_| PerIp::take(&limits, "::1".parse().unwrap(), HOST).unwrap()).collect();
        assert!(held.iter().all(Option::is_none), "IPv6 loopback takes no slot either");
    }

    #[test]
    fn no_limit_counts_nothing() {
        let limits = per_ip(None);
        for _ in 0..100 {
            assert!(PerIp::take(&limits, "203.0.113.9".parse().unwrap(), HOST).unwrap().is_none());
        }
    }
}
