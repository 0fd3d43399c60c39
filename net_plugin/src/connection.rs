//! A connection as the ECS sees it: an entity with a [`Connection`] component, and the messages
//! that tell game code it came, sent something, or went.

use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bevy_ecs::component::Component;
use bevy_ecs::entity::Entity;
use bevy_ecs::lifecycle::HookContext;
use bevy_ecs::message::Message;
use bevy_ecs::resource::Resource;
use bevy_ecs::world::DeferredWorld;
use bytes::BytesMut;
use shared::{ClientPacket, Packet, PacketSet, ServerPacket};

use crate::core::BacklogLimits;
use crate::handle::{Session, SessionId};
use crate::reason::DisconnectReason;
use crate::transport::Transport;

/// An open connection. Its entity exists from [`Connected`] until the end of the frame of its
/// [`Disconnected`]; game code adds its own components to it (a player, say). It also holds the
/// packets sent to it this frame, until the frame's flush.
///
/// Removing it, or despawning the entity, closes the connection (reason
/// [`DisconnectReason::ClosedByApp`]); prefer [`Outbox::close`](crate::Outbox::close), which
/// says why.
#[derive(Component, Debug)]
#[component(on_remove = close_on_remove)]
pub struct Connection {
    session: Arc<Session>,
    connected_at: Instant,
    /// This frame's packets, in the order they were sent.
    frame: BytesMut,
    /// Packets delivered from it to game code, since it opened.
    packets_in: u64,
    /// Packets game code sent it (queued for its socket), since it opened.
    packets_out: u64,
    /// The size of the last frame's buffer: reserved at the first send of the next, so a busy
    /// connection grows its buffer once a frame instead of doubling its way up.
    last_len: usize,
    /// Game code closed it this frame: the flush hands over what it was sent, then closes it.
    /// Boxed: rare, and every connection carries the field.
    close_request: Option<Box<DisconnectReason>>,
    /// Something in `frame` asked for this frame's write (an ordinary send): the flush hands
    /// the whole buffer over, held bytes included.
    urgent: bool,
    /// The latest moment the bytes held in `frame` (sent with a delay, see
    /// [`Outbox::broadcast_within`](crate::Outbox::broadcast_within)) may wait for a write: the
    /// earliest of their deadlines. `None` when nothing is held.
    held_until: Option<Instant>,
}

/// Bytes a connection may hold for a later write: past this, the flush hands them over at once,
/// so a game that sends much with a delay keeps its memory bounded by this, not by the delay.
pub(crate) const HELD_BYTES_MAX: usize = 16 * 1024;

/// The component's hook: a connection whose component goes away is closed (a no-op when it
/// already ended, since a session keeps its first reason).
fn close_on_remove(world: DeferredWorld, context: HookContext) {
    if let Some(connection) = world.get::<Connection>(context.entity) {
        connection.session.close_by_app(DisconnectReason::ClosedByApp("its entity was despawned".into()));
    }
}

impl Connection {
    pub(crate) fn new(session: Arc<Session>) -> Self {
        Self {
            session,
            connected_at: Instant::now(),
            frame: BytesMut::new(),
            packets_in: 0,
            packets_out: 0,
            last_len: 0,
            close_request: None,
            urgent: false,
            held_until: None,
        }
    }

    /// The session's id, as in the logs.
    pub fn id(&self) -> SessionId {
        self.session.id
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.session.peer
    }

    /// When the connection opened (as the ECS saw it).
    pub fn connected_at(&self) -> Instant {
        self.connected_at
    }

    /// Whether the session is ending: closed by either side, its `Disconnected` not yet seen.
    pub fn is_closing(&self) -> bool {
        self.close_request.is_some() || self.session.is_closed()
    }

    /// Bytes queued for it this frame.
    pub fn queued_this_frame(&self) -> usize {
        self.frame.len()
    }

    /// Packets it delivered to game code since it opened (what [`NetStats::packets_in`]
    /// counts, for this connection alone).
    ///
    /// [`NetStats::packets_in`]: crate::NetStats::packets_in
    pub fn packets_in(&self) -> u64 {
        self.packets_in
    }

    /// Packets game code sent it since it opened (what [`NetStats::packets_out`] counts, for
    /// this connection alone).
    ///
    /// [`NetStats::packets_out`]: crate::NetStats::packets_out
    pub fn packets_out(&self) -> u64 {
        self.packets_out
    }

    /// Bytes flushed to it and not yet taken by its socket: its outbound backlog. Takes the
    /// session's outbound lock for a moment (the writer holds it around each write), so it is
    /// for reports, not for every connection every frame.
    pub fn backlog_bytes(&self) -> usize {
        self.session.outgoing().queue.len()
    }

    /// How this connection reaches its peer (TCP, or WebSocket from a browser). Everything else
    /// about a connection is the same whatever its transport.
    pub fn transport(&self) -> Transport {
        self.session.transport()
    }

    pub(crate) fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// Appends encoded packets to this frame's bytes, unless the connection is closing; returns
    /// whether they were appended. `hold: None` asks for this frame's write; `Some(deadline)`
    /// lets them wait for the next write this connection is sent for, or for the first flush at
    /// or after `deadline`, whichever comes first.
    pub(crate) fn push(&mut self, encoded: &[u8], packets: u64, hold: Option<Instant>) -> bool {
        if self.is_closing() {
            return false;
        }
        if self.frame.capacity() == 0 {
            self.frame.reserve(self.last_len.max(encoded.len()).max(64));
        }
        self.frame.extend_from_slice(encoded);
        self.packets_out += packets;
        match hold {
            None => self.urgent = true,
            Some(deadline) => {
                if self.held_until.is_none_or(|t| deadline < t) {
                    self.held_until = Some(deadline);
                }
            }
        }
        true
    }

    /// Asks for this frame's write of what is held, if anything is (see
    /// [`Outbox::release`](crate::Outbox::release)).
    pub(crate) fn release(&mut self) {
        if !self.frame.is_empty() {
            self.urgent = true;
        }
    }

    /// Counts packets it delivered to game code.
    pub(crate) fn delivered(&mut self, packets: u64) {
        self.packets_in += packets;
    }

    /// Closes it at this frame's flush, after what it was sent. From now on nothing more is sent
    /// to it, and what its peer sends is not delivered. The first reason wins.
    pub(crate) fn request_close(&mut self, reason: DisconnectReason) {
        if self.is_closing() {
            return;
        }
        self.session.mark_closed_by_app();
        self.close_request = Some(Box::new(reason));
    }

    /// Whether the flush at `now` has anything to do for it: bytes to write now (sent for this
    /// frame's write, held past their deadline, or held beyond [`HELD_BYTES_MAX`]), or a close.
    /// `now` is `None` at a shutdown: everything held goes.
    pub(crate) fn has_work(&self, now: Option<Instant>) -> bool {
        if self.close_request.is_some() {
            return true;
        }
        !self.frame.is_empty()
            && (self.urgent
                || self.frame.len() >= HELD_BYTES_MAX
                || match (now, self.held_until) {
                    (Some(now), Some(until)) => until <= now,
                    _ => true,
                })
    }

    pub(crate) fn take_close_request(&mut self) -> Option<DisconnectReason> {
        self.close_request.take().map(|reason| *reason)
    }

    /// Moves this frame's bytes to the session's queue (see [`Session::hand_over`]): whether
    /// the session was newly listed for the writer, or `None` when nothing was sent to it this
    /// frame.
    pub(crate) fn hand_over(&mut self, now: Instant, limits: &BacklogLimits) -> Option<bool> {
        let len = self.frame.len();
        self.urgent = false;
        self.held_until = None;
        let listed = self.session.hand_over(&mut self.frame, now, limits)?;
        self.last_len = len;
        Some(listed)
    }
}

/// An outgoing connection not open yet (client side): from
/// [`Connector::connect`](crate::Connector::connect) until [`Connected`] or [`ConnectFailed`].
#[derive(Component, Debug, Clone)]
pub struct Connecting {
    /// Where to.
    pub addr: SocketAddr,
    /// When the attempt started.
    pub since: Instant,
}

/// A connection opened. Written in [`NetSystems::Receive`](crate::NetSystems::Receive).
#[derive(Message, Debug, Clone)]
pub struct Connected {
    /// The connection's entity.
    pub entity: Entity,
    /// The peer's address.
    pub peer: SocketAddr,
}

/// A connection ended: exactly one per [`Connected`], after every packet it delivered. The
/// entity is still there (and its components readable) until the end of this frame, then
/// despawned; read this message in `PreUpdate`, `Update` or `PostUpdate` (not `FixedUpdate`,
/// which may not run this frame).
#[derive(Message, Debug, Clone)]
pub struct Disconnected {
    /// The connection's entity.
    pub entity: Entity,
    /// Why it ended.
    pub reason: DisconnectReason,
}

/// An outgoing connection could not be opened (client side). Its entity is despawned at the end
/// of the frame.
#[derive(Message, Debug, Clone)]
pub struct ConnectFailed {
    /// The entity [`Connector::connect`](crate::Connector::connect) returned.
    pub entity: Entity,
    /// Where it tried to connect.
    pub addr: SocketAddr,
    /// What went wrong.
    pub error: String,
}

/// A packet received: one message type per packet type (`Received<C_Move>`…), written in
/// [`NetSystems::Receive`](crate::NetSystems::Receive), in the order the peer sent them.
///
/// `In` is the packet set this side receives: `ClientPacket` (the default) on a server,
/// `ServerPacket` on a client ([`ClientReceived`]), as [`Outbox`](crate::Outbox) and
/// [`ClientOutbox`](crate::ClientOutbox) mirror it for sending. Only a packet of that set is
/// accepted, at compile time:
///
/// ```
/// # use bevy_ecs::prelude::*;
/// # use net_plugin::Received;
/// # use shared::C_Chat;
/// fn log_chat(mut chats: MessageReader<Received<C_Chat>>) {
///     for Received { from, packet, .. } in chats.read() {
///         println!("{from}: {}", packet.chat);
///     }
/// }
/// ```
///
/// A server reading a server packet does not compile:
///
/// ```compile_fail,E0271
/// # use bevy_ecs::prelude::*;
/// # use net_plugin::Received;
/// fn wrong_way(_chats: MessageReader<Received<shared::S_Chat>>) {} // an `S_` packet, on a server
/// ```
///
/// Which side an app is cannot be checked at compile time: a server's system added to a client
/// app (`Received<C_Chat>` read by a client) is refused by Bevy when it first runs ("Message not
/// initialized"), since a client registers only the `S_` packets' messages.
#[derive(Message)]
pub struct Received<P: Packet<Set = In>, In: PacketSet = ClientPacket> {
    /// The connection's entity.
    pub from: Entity,
    /// The packet.
    pub packet: P,
    /// When its bytes were read from the socket, on the I/O thread: before it waited for the
    /// frame. For round-trip and lag measurements that should not include that wait.
    pub at: Instant,
    /// Its place in its connection's stream of packets, counting from 0: each packet type comes
    /// as its own message type, so this is what puts a connection's packets of different types
    /// back in the order the peer sent them (packets of one read share their `at`).
    pub seq: u64,
    _in: PhantomData<fn() -> In>,
}

/// A packet received by a client: [`Received`] for `S_` packets (`ClientReceived<S_Chat>`).
///
/// ```
/// # use bevy_ecs::prelude::*;
/// # use net_plugin::ClientReceived;
/// # use shared::S_Chat;
/// fn show_chat(mut chats: MessageReader<ClientReceived<S_Chat>>) {
///     for ClientReceived { packet, .. } in chats.read() {
///         println!("player {}: {}", packet.player_id, packet.chat);
///     }
/// }
/// ```
///
/// A client reading a client packet does not compile:
///
/// ```compile_fail,E0271
/// # use bevy_ecs::prelude::*;
/// # use net_plugin::ClientReceived;
/// fn wrong_way(_chats: MessageReader<ClientReceived<shared::C_Chat>>) {} // a `C_` packet, on a client
/// ```
pub type ClientReceived<P> = Received<P, ServerPacket>;

impl<P: Packet<Set = In>, In: PacketSet> Received<P, In> {
    /// A received packet, as the plugin writes it: for tests that feed game systems messages
    /// without a socket.
    pub fn new(from: Entity, packet: P, at: Instant, seq: u64) -> Self {
        Self { from, packet, at, seq, _in: PhantomData }
    }
}

impl<P: Packet<Set = In>, In: PacketSet> Clone for Received<P, In> {
    fn clone(&self) -> Self {
        Self::new(self.from, self.packet.clone(), self.at, self.seq)
    }
}

impl<P: Packet<Set = In>, In: PacketSet> fmt::Debug for Received<P, In> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Received")
            .field("from", &self.from)
            .field("packet", &self.packet)
            .field("at", &self.at)
            .field("seq", &self.seq)
            .finish()
    }
}

/// Maps the I/O side's session ids to entities.
#[derive(Resource, Default)]
pub(crate) struct SessionIndex {
    entries: rustc_hash::FxHashMap<SessionId, SessionEntry>,
}

pub(crate) struct SessionEntry {
    pub entity: Entity,
    /// `None` while an outgoing connection is being opened.
    pub session: Option<Arc<Session>>,
}

impl SessionIndex {
    pub fn get(&self, id: SessionId) -> Option<&SessionEntry> {
        self.entries.get(&id)
    }

    pub fn insert(&mut self, id: SessionId, entity: Entity, session: Option<Arc<Session>>) {
        self.entries.insert(id, SessionEntry { entity, session });
    }

    pub fn remove(&mut self, id: SessionId) -> Option<SessionEntry> {
        self.entries.remove(&id)
    }
}

/// Entities whose session ended this frame, despawned in [`NetSystems::Cleanup`](crate::NetSystems::Cleanup).
#[derive(Resource, Default)]
pub(crate) struct PendingDespawn(pub Vec<Entity>);
