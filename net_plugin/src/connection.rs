//! A connection as the ECS sees it: an entity with a [`Connection`] component, and the messages
//! that tell game code it came, sent something, or went.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bevy_ecs::component::Component;
use bevy_ecs::entity::Entity;
use bevy_ecs::message::Message;
use bevy_ecs::resource::Resource;
use shared::Packet;

use crate::DisconnectReason;
use crate::link::SessionLink;

/// A session's id: unique for the life of the process, counting from 1. Shows in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// An open connection. Its entity exists from [`Connected`] until the end of the frame of its
/// [`Disconnected`]; game code adds its own components to it (a player, say).
///
/// Despawning the entity closes the connection (reason
/// [`DisconnectReason::ClosedByApp`]); prefer [`Outbox::close`](crate::Outbox::close), which
/// says why.
#[derive(Component, Debug)]
pub struct Connection {
    id: SessionId,
    peer: SocketAddr,
    connected_at: Instant,
    link: LinkGuard,
}

impl Connection {
    pub(crate) fn new(id: SessionId, peer: SocketAddr, link: Arc<SessionLink>) -> Self {
        Self { id, peer, connected_at: Instant::now(), link: LinkGuard(link) }
    }

    /// The session's id, as in the logs.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// When the connection opened (as the ECS saw it).
    pub fn connected_at(&self) -> Instant {
        self.connected_at
    }

    /// Whether the session is ending: closed by either side, its `Disconnected` not yet seen.
    /// Packets from it are no longer delivered.
    pub fn is_closing(&self) -> bool {
        self.link.0.is_closed()
    }
}

/// Closes the session when the component is dropped with its entity.
#[derive(Debug)]
struct LinkGuard(Arc<SessionLink>);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        self.0.close(DisconnectReason::ClosedByApp("its entity was despawned".into()));
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
#[derive(Message, Debug, Clone)]
pub struct Received<P: Packet> {
    /// The connection's entity.
    pub from: Entity,
    /// The packet.
    pub packet: P,
    /// When its bytes were read from the socket, on the I/O thread: before it waited for the
    /// frame. For round-trip and lag measurements that should not include that wait.
    pub at: Instant,
}

/// Maps the I/O side's session ids to entities.
#[derive(Resource, Default)]
pub(crate) struct SessionIndex {
    entries: rustc_hash::FxHashMap<SessionId, SessionEntry>,
}

pub(crate) struct SessionEntry {
    pub entity: Entity,
    /// `None` while an outgoing connection is being opened.
    pub link: Option<Arc<SessionLink>>,
}

impl SessionIndex {
    pub fn get(&self, id: SessionId) -> Option<&SessionEntry> {
        self.entries.get(&id)
    }

    pub fn insert(&mut self, id: SessionId, entry: SessionEntry) {
        self.entries.insert(id, entry);
    }

    pub fn remove(&mut self, id: SessionId) -> Option<SessionEntry> {
        self.entries.remove(&id)
    }
}

/// Entities whose session ended this frame, despawned in [`NetSystems::Cleanup`](crate::NetSystems::Cleanup).
#[derive(Resource, Default)]
pub(crate) struct PendingDespawn(pub Vec<Entity>);
