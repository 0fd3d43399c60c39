//! Sending: game systems encode packets into each connection's buffer for the frame; one flush
//! after all game systems hands each buffer to its writer (the course's Send, SendBuffer and
//! 250 ms flush timer, without locks in game code and without the wait).

use bevy_ecs::component::Component;
use bevy_ecs::entity::Entity;
use bevy_ecs::query::With;
use bevy_ecs::resource::Resource;
use bevy_ecs::system::{Local, Query, Res, ResMut, SystemParam};
use bytes::BytesMut;
use shared::{Direction, EncodeError, Packet};
use std::sync::Arc;

use crate::link::{Flusher, SessionLink};
use crate::{Connection, DisconnectReason, NetStats};

/// Bytes queued for one connection during this frame; handed to the I/O side by the flush.
#[derive(Component, Debug)]
pub struct OutboundBuffer {
    /// This frame's packets, in the order they were sent.
    bytes: BytesMut,
    /// Packets in `bytes`, for statistics.
    packets: u64,
    /// The size of the last frame's buffer: reserved at the first send of the next, so a busy
    /// connection grows its buffer once a frame instead of doubling its way up.
    last_len: usize,
    link: Arc<SessionLink>,
}

impl OutboundBuffer {
    pub(crate) fn new(link: Arc<SessionLink>) -> Self {
        Self { bytes: BytesMut::new(), packets: 0, last_len: 0, link }
    }

    /// Bytes queued this frame.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether nothing is queued this frame.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn push(&mut self, encoded: &[u8], packets: u64) {
        if self.bytes.capacity() == 0 {
            self.bytes.reserve(self.last_len.max(encoded.len()).max(64));
        }
        self.bytes.extend_from_slice(encoded);
        self.packets += packets;
    }
}

/// Which way this application's packets go out: set by the server or client plugin.
#[derive(Resource, Debug, Clone, Copy)]
pub(crate) struct OutboundDirection(pub Direction);

/// Why a packet was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The packet cannot be encoded (too large for the wire format).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The packet travels the other way (a server sending a `C_` packet).
    #[error("{packet} travels {direction}; this side cannot send it")]
    WrongDirection {
        /// The packet's name.
        packet: &'static str,
        /// Its direction.
        direction: Direction,
    },
}

/// Packets encoded once, back to back, to send as one piece to many connections: a room's
/// moves of one tick, say. Each recipient then costs one copy of the whole batch, instead of
/// one lookup and one copy per packet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PacketBatch {
    bytes: Vec<u8>,
    packets: u64,
    /// The direction of every packet in it (set by the first).
    direction: Option<Direction>,
}

impl PacketBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `packet`. Every packet of a batch travels the same way.
    pub fn push<P: Packet>(&mut self, packet: &P) -> Result<(), SendError> {
        if self.direction.is_some_and(|d| d != P::DIRECTION) {
            return Err(SendError::WrongDirection { packet: P::NAME, direction: P::DIRECTION });
        }
        shared::encode(packet, &mut self.bytes)?;
        self.direction = Some(P::DIRECTION);
        self.packets += 1;
        Ok(())
    }

    /// Packets in the batch.
    pub fn len(&self) -> usize {
        self.packets as usize
    }

    /// Whether the batch holds no packet.
    pub fn is_empty(&self) -> bool {
        self.packets == 0
    }

    /// The bytes on the wire.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Empties the batch, keeping its memory.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.packets = 0;
        self.direction = None;
    }
}

/// Sends packets to connections. Everything sent to a connection during a frame goes out in
/// one write after the frame's game systems, in the order it was sent.
///
/// Sending to an entity that is not (or no longer) a connection, or whose connection is
/// closing, does nothing: its [`Disconnected`](crate::Disconnected) tells game code it is gone.
///
/// ```
/// # use bevy_ecs::prelude::*;
/// # use net_plugin::{Outbox, Received};
/// # use shared::{C_Chat, S_Chat};
/// fn echo_chat(mut chats: MessageReader<Received<C_Chat>>, mut outbox: Outbox) {
///     for Received { from, packet, .. } in chats.read() {
///         let reply = S_Chat { player_id: 0, chat: packet.chat.clone() };
///         outbox.send(*from, &reply).expect("a chat line fits a packet");
///     }
/// }
/// ```
#[derive(SystemParam)]
pub struct Outbox<'w, 's> {
    buffers: Query<'w, 's, &'static mut OutboundBuffer>,
    connections: Query<'w, 's, Entity, With<Connection>>,
    outbound: Res<'w, OutboundDirection>,
    /// Reused for encoding, so a send allocates nothing once warm.
    scratch: Local<'s, Vec<u8>>,
}

impl Outbox<'_, '_> {
    fn check<P: Packet>(&self) -> Result<(), SendError> {
        if P::DIRECTION == self.outbound.0 {
            Ok(())
        } else {
            Err(SendError::WrongDirection { packet: P::NAME, direction: P::DIRECTION })
        }
    }

    fn encode_scratch<P: Packet>(&mut self, packet: &P) -> Result<(), SendError> {
        self.check::<P>()?;
        self.scratch.clear();
        shared::encode(packet, &mut *self.scratch)?;
        Ok(())
    }

    fn push(&mut self, to: Entity, bytes: &[u8], packets: u64) {
        if let Ok(mut buffer) = self.buffers.get_mut(to)
            && !buffer.link.is_closed()
        {
            buffer.push(bytes, packets);
        }
    }

    /// Sends `packet` to one connection.
    pub fn send<P: Packet>(&mut self, to: Entity, packet: &P) -> Result<(), SendError> {
        self.encode_scratch(packet)?;
        let scratch = std::mem::take(&mut *self.scratch);
        self.push(to, &scratch, 1);
        *self.scratch = scratch;
        Ok(())
    }

    /// Sends `packet` to each of `to`, encoding it once.
    pub fn broadcast<P: Packet>(&mut self, to: impl IntoIterator<Item = Entity>, packet: &P) -> Result<(), SendError> {
        self.encode_scratch(packet)?;
        let scratch = std::mem::take(&mut *self.scratch);
        for entity in to {
            self.push(entity, &scratch, 1);
        }
        *self.scratch = scratch;
        Ok(())
    }

    /// Sends `packet` to every open connection, encoding it once.
    pub fn send_all<P: Packet>(&mut self, packet: &P) -> Result<(), SendError> {
        self.encode_scratch(packet)?;
        for mut buffer in &mut self.buffers {
            if !buffer.link.is_closed() {
                buffer.push(&self.scratch, 1);
            }
        }
        Ok(())
    }

    /// Sends every packet of `batch`, in order, to each of `to`.
    pub fn send_batch(&mut self, to: impl IntoIterator<Item = Entity>, batch: &PacketBatch) -> Result<(), SendError> {
        match batch.direction {
            None => return Ok(()),
            Some(direction) if direction != self.outbound.0 => {
                return Err(SendError::WrongDirection { packet: "a packet batch", direction });
            }
            Some(_) => {}
        }
        for entity in to {
            self.push(entity, &batch.bytes, batch.packets);
        }
        Ok(())
    }

    /// Closes a connection. What was sent to it before, this frame included, is still written
    /// (within the configured linger time), then the socket is closed; its
    /// [`Disconnected`](crate::Disconnected) follows in a later frame with this reason.
    pub fn close(&mut self, entity: Entity, reason: DisconnectReason) {
        if let Ok(mut buffer) = self.buffers.get_mut(entity) {
            let buffer = &mut *buffer;
            // Hand this frame's bytes over first, so the writer's last write includes them.
            let _ = buffer.link.hand_over(&mut buffer.bytes, usize::MAX);
            buffer.link.close(reason);
        }
    }

    /// Whether `entity` is an open connection (not closing).
    pub fn is_open(&self, entity: Entity) -> bool {
        self.buffers.get(entity).is_ok_and(|b| !b.link.is_closed())
    }

    /// Every connection entity, open or closing.
    pub fn connections(&self) -> impl Iterator<Item = Entity> + '_ {
        self.connections.iter()
    }
}

/// The per-session cap on bytes waiting for a writer.
#[derive(Resource, Debug, Clone, Copy)]
pub(crate) struct BacklogCap(pub usize);

/// The I/O runtime's flusher, which writes what [`flush`] hands over.
#[derive(Resource)]
pub(crate) struct FlushQueue(pub Arc<Flusher>);

/// Hands each connection's frame buffer to the I/O side, once per frame after all game systems,
/// and wakes the flusher once for all of them.
pub(crate) fn flush(
    mut buffers: Query<&mut OutboundBuffer>,
    cap: Res<BacklogCap>,
    queue: Res<FlushQueue>,
    mut stats: ResMut<NetStats>,
    mut listed: Local<Vec<Arc<SessionLink>>>,
) {
    for mut buffer in &mut buffers {
        if buffer.bytes.is_empty() {
            continue;
        }
        let buffer = &mut *buffer;
        stats.packets_out += std::mem::take(&mut buffer.packets);
        buffer.last_len = buffer.bytes.len();
        if buffer.link.is_closed() {
            buffer.bytes = BytesMut::new();
            continue;
        }
        match buffer.link.hand_over(&mut buffer.bytes, cap.0) {
            Ok(()) => {
                stats.flushes += 1;
                if buffer.link.enqueue() {
                    listed.push(buffer.link.clone());
                }
            }
            Err(full) => {
                buffer.bytes = BytesMut::new();
                buffer.link.close(DisconnectReason::OutboundBacklog { queued: full.queued, limit: cap.0 });
            }
        }
    }
    queue.0.submit(&mut listed);
}
