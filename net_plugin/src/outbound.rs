//! Outbound: game systems → each connection's frame buffer → one flush per frame → the writer
//! task → one write per connection → socket (the course's Send, SendBuffer and 250 ms flush
//! timer, without locks in game code and without the wait).
//!
//! 1. Game systems send with [`Outbox`]: each packet is encoded once and appended to the frame
//!    buffer of every connection it goes to (in its [`Connection`] component).
//! 2. In `Last`, [`flush`] moves each non-empty frame buffer, whole, to the back of its session's
//!    queue ([`OutboundQueue`]), lists the session, and wakes the writer once for all of them.
//! 3. The [`Writer`] task ([`writer`](crate::writer)) writes each listed session's queue with
//!    one non-blocking (vectored) write. What the socket does not take stays queued, the write
//!    having advanced the queue, and the session joins the writer's list of sockets to finish
//!    when they drain.
//!
//! The writer is the only code that writes a session's socket (see
//! [`session`](crate::session) for who does what with it). A peer that does not keep up is told
//! apart from one that does not read by the rules of [`OutboundQueue`]: no write progress for
//! `write_stall_timeout`, or a backlog above `outbound_backlog` for that long, closes that
//! connection and nobody else's; a burst it drains closes nothing.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};

use bevy_ecs::prelude::*;
use bevy_ecs::system::SystemParam;
use shared::{EncodeError, Packet, PacketSet, ServerPacket};

use crate::connection::Connection;
use crate::core::BacklogLimits;
use crate::handle::Session;
use crate::reason::DisconnectReason;
use crate::stats::{IoCounters, NetStats};
use crate::throttle::LogThrottle;
use crate::writer::Writer;

/// Which packet set this application sends: inserted by the server plugin (`ServerPacket`) or
/// the client plugin (`ClientPacket`). An [`Outbox`] of the other set finds no such resource,
/// and Bevy refuses to run its system, naming this type.
#[derive(Resource)]
pub struct Sends<Out: PacketSet>(PhantomData<fn() -> Out>);

impl<Out: PacketSet> Default for Sends<Out> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

/// The network layer's counters, for the rare cases game-side code counts something itself
/// (a packet that could not be encoded).
#[derive(Resource, Clone)]
pub(crate) struct Counters(pub Arc<IoCounters>);

/// Packets encoded once, back to back, to send as one piece to many connections: a room's
/// moves of one tick, say. Each recipient then costs one copy of the whole batch, instead of
/// one lookup and one copy per packet. Only packets of one set go in (`ServerPacket` unless
/// said otherwise), checked at compile time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketBatch<Out: PacketSet = ServerPacket> {
    bytes: Vec<u8>,
    packets: u64,
    /// Packets by type, `(id, count)`, for the statistics: a batch holds a few types at most.
    by_id: Vec<(u16, u64)>,
    _out: PhantomData<fn() -> Out>,
}

impl<Out: PacketSet> Default for PacketBatch<Out> {
    fn default() -> Self {
        Self { bytes: Vec::new(), packets: 0, by_id: Vec::new(), _out: PhantomData }
    }
}

impl<Out: PacketSet> PacketBatch<Out> {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `packet`. One that cannot be encoded (a string or list too long for the wire
    /// format) is not appended: it is logged (at most once a second), as
    /// [`Outbox::send`] does. [`try_push`](Self::try_push) returns the error instead.
    pub fn push<P: Packet<Set = Out>>(&mut self, packet: &P) {
        if let Err(error) = self.try_push(packet) {
            static THROTTLE: Mutex<Option<LogThrottle>> = Mutex::new(None);
            let mut throttle = THROTTLE.lock().unwrap_or_else(PoisonError::into_inner);
            let throttle = throttle.get_or_insert_with(|| LogThrottle::new(std::time::Duration::from_secs(1)));
            if let Some(held_back) = throttle.hit() {
                tracing::error!(packet = P::NAME, %error, held_back, "a packet could not be encoded; not batched");
            }
        }
    }

    /// Appends `packet`, or says why it cannot be encoded and appends nothing.
    pub fn try_push<P: Packet<Set = Out>>(&mut self, packet: &P) -> Result<(), EncodeError> {
        shared::encode(packet, &mut self.bytes)?;
        self.packets += 1;
        match self.by_id.iter_mut().find(|(id, _)| *id == P::ID) {
            Some((_, n)) => *n += 1,
            None => self.by_id.push((P::ID, 1)),
        }
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
        self.by_id.clear();
    }
}

/// Sends packets to connections. Everything sent to a connection during a frame goes out in
/// one write after the frame's game systems, in the order it was sent.
///
/// `Out` is the packet set this side sends: `ServerPacket` (the default) on a server,
/// `ClientPacket` on a client ([`ClientOutbox`]). Sending a packet of the other direction does
/// not compile:
///
/// ```compile_fail
/// # use bevy_ecs::prelude::*;
/// # use net_plugin::Outbox;
/// fn wrong_way(mut outbox: Outbox, to: In<Entity>) {
///     outbox.send(*to, &shared::C_LeaveGame {}); // a client packet, on a server
/// }
/// ```
///
/// Sending to an entity that is not (or no longer) a connection, or whose connection is
/// closing, does nothing: its [`Disconnected`](crate::Disconnected) tells game code it is gone.
/// A packet that cannot be encoded (a string or list longer than the wire format's `u16`
/// lengths) is not sent: [`send`](Self::send) logs it and counts it in
/// [`NetStats::packets_unencodable`]; [`try_send`](Self::try_send) returns the error instead.
///
/// ```
/// # use bevy_ecs::prelude::*;
/// # use net_plugin::{Outbox, Received};
/// # use shared::{C_Chat, S_Chat};
/// fn echo_chat(mut chats: MessageReader<Received<C_Chat>>, mut outbox: Outbox) {
///     for Received { from, packet, .. } in chats.read() {
///         outbox.send(*from, &S_Chat { player_id: 0, chat: packet.chat.clone() });
///     }
/// }
/// ```
#[derive(SystemParam)]
pub struct Outbox<'w, 's, Out: PacketSet = ServerPacket> {
    connections: Query<'w, 's, &'static mut Connection>,
    entities: Query<'w, 's, Entity, With<Connection>>,
    counters: Res<'w, Counters>,
    /// Counts what is sent, by packet type, as it is sent.
    sent: ResMut<'w, SentThisFrame>,
    /// Present only on the side that sends `Out`: on the other, Bevy refuses the system, naming
    /// this field.
    #[allow(dead_code)]
    sends_this_packet_set: Res<'w, Sends<Out>>,
    /// Reused for encoding, so a send allocates nothing once warm.
    scratch: Local<'s, Vec<u8>>,
    /// Keeps unencodable packets from flooding the log.
    unencodable: Local<'s, Option<LogThrottle>>,
}

/// The [`Outbox`] of a client: it sends `C_` packets.
pub type ClientOutbox<'w, 's> = Outbox<'w, 's, shared::ClientPacket>;

impl<Out: PacketSet> Outbox<'_, '_, Out> {
    /// Encodes into the scratch buffer, or logs and counts why not.
    fn encode_scratch<P: Packet>(&mut self, packet: &P) -> Result<(), EncodeError> {
        self.scratch.clear();
        shared::encode(packet, &mut *self.scratch).map(|_| ())
    }

    fn unencodable<P: Packet>(&mut self, error: &EncodeError) {
        IoCounters::add(&self.counters.0.packets_unencodable, 1);
        let throttle = self.unencodable.get_or_insert_with(|| LogThrottle::new(std::time::Duration::from_secs(1)));
        if let Some(held_back) = throttle.hit() {
            tracing::error!(packet = P::NAME, %error, held_back, "a packet could not be encoded; not sent");
        }
    }

    /// Appends to one connection's frame, for this frame's write or held until `hold`; whether
    /// it took them (it is open).
    fn push(&mut self, to: Entity, bytes: &[u8], packets: u64, hold: Option<std::time::Instant>) -> bool {
        self.connections.get_mut(to).is_ok_and(|mut connection| connection.push(bytes, packets, hold))
    }

    /// Sends `packet` to one connection.
    pub fn send<P: Packet<Set = Out>>(&mut self, to: Entity, packet: &P) {
        if let Err(e) = self.try_send(to, packet) {
            self.unencodable::<P>(&e);
        }
    }

    /// Sends `packet` to one connection, or says why it cannot be encoded.
    pub fn try_send<P: Packet<Set = Out>>(&mut self, to: Entity, packet: &P) -> Result<(), EncodeError> {
        self.encode_scratch(packet)?;
        let scratch = std::mem::take(&mut *self.scratch);
        if self.push(to, &scratch, 1, None) {
            self.sent.count(P::ID, 1);
        }
        *self.scratch = scratch;
        Ok(())
    }

    /// Sends `packet` to each of `to`, encoding it once.
    pub fn broadcast<P: Packet<Set = Out>>(&mut self, to: impl IntoIterator<Item = Entity>, packet: &P) {
        self.broadcast_held(to, packet, None);
    }

    /// Sends `packet` to each of `to`, encoding it once, without asking for a write of its own:
    /// it leaves in order with the next packet sent to that connection the ordinary way
    /// ([`send`](Self::send) and the others), or at the first frame `within` from now, whichever
    /// comes first (and at once when the connection holds more than 16 KiB).
    ///
    /// For traffic that can wait a little, such as other players' moves in a big world: a
    /// client that is answered several times a second then gets everything in one write per
    /// answer instead of one per frame, which is what a server's CPU goes to at scale. A zero
    /// `within` sends it with this frame, as [`broadcast`](Self::broadcast) does.
    pub fn broadcast_within<P: Packet<Set = Out>>(
        &mut self,
        to: impl IntoIterator<Item = Entity>,
        packet: &P,
        within: std::time::Duration,
    ) {
        self.broadcast_held(to, packet, Some(std::time::Instant::now() + within));
    }

    /// [`broadcast`](Self::broadcast), for this frame's write (`hold: None`) or held.
    fn broadcast_held<P: Packet<Set = Out>>(
        &mut self,
        to: impl IntoIterator<Item = Entity>,
        packet: &P,
        hold: Option<std::time::Instant>,
    ) {
        if let Err(e) = self.encode_scratch(packet) {
            self.unencodable::<P>(&e);
            return;
        }
        let scratch = std::mem::take(&mut *self.scratch);
        let mut sent = 0;
        for entity in to {
            sent += u64::from(self.push(entity, &scratch, 1, hold));
        }
        self.sent.count(P::ID, sent);
        *self.scratch = scratch;
    }

    /// Sends `packet` to one connection without asking for a write of its own: see
    /// [`broadcast_within`](Self::broadcast_within).
    pub fn send_within<P: Packet<Set = Out>>(&mut self, to: Entity, packet: &P, within: std::time::Duration) {
        self.broadcast_within([to], packet, within);
    }

    /// Writes what is held for `to` (see [`broadcast_within`](Self::broadcast_within)) with
    /// this frame, as the next ordinary send would, without sending anything more. For code that
    /// times held traffic by a clock of its own: a game that holds news until a tick count says
    /// it is due releases it then, even when that tick brings nothing new.
    pub fn release(&mut self, to: Entity) {
        if let Ok(mut connection) = self.connections.get_mut(to) {
            connection.release();
        }
    }

    /// Sends `packet` to every open connection, encoding it once.
    pub fn send_all<P: Packet<Set = Out>>(&mut self, packet: &P) {
        if let Err(e) = self.encode_scratch(packet) {
            self.unencodable::<P>(&e);
            return;
        }
        let mut sent = 0;
        for mut connection in &mut self.connections {
            sent += u64::from(connection.push(&self.scratch, 1, None));
        }
        self.sent.count(P::ID, sent);
    }

    /// Sends every packet of `batch`, in order, to each of `to`.
    pub fn send_batch(&mut self, to: impl IntoIterator<Item = Entity>, batch: &PacketBatch<Out>) {
        self.push_batch(to, batch, None);
    }

    /// Sends every packet of `batch`, in order, to each of `to`, without asking for a write of
    /// its own: see [`broadcast_within`](Self::broadcast_within).
    pub fn send_batch_within(
        &mut self,
        to: impl IntoIterator<Item = Entity>,
        batch: &PacketBatch<Out>,
        within: std::time::Duration,
    ) {
        self.push_batch(to, batch, Some(std::time::Instant::now() + within));
    }

    /// Appends a batch to each of `to`: for this frame's write, or held until `deadline`.
    fn push_batch(
        &mut self,
        to: impl IntoIterator<Item = Entity>,
        batch: &PacketBatch<Out>,
        deadline: Option<std::time::Instant>,
    ) {
        if batch.is_empty() {
            return;
        }
        let mut recipients = 0;
        for entity in to {
            recipients += u64::from(self.push(entity, &batch.bytes, batch.packets, deadline));
        }
        for &(id, n) in &batch.by_id {
            self.sent.count(id, n * recipients);
        }
    }

    /// Closes a connection. What was sent to it before, this frame included, is still written
    /// (within the configured linger time), then the socket is closed; packets it sends from now
    /// on are not delivered, and its [`Disconnected`](crate::Disconnected) follows in a later
    /// frame with this reason (or an earlier one, if it was already closing).
    pub fn close(&mut self, entity: Entity, reason: DisconnectReason) {
        if let Ok(mut connection) = self.connections.get_mut(entity) {
            connection.request_close(reason);
        }
    }

    /// Whether `entity` is an open connection (not closing).
    pub fn is_open(&self, entity: Entity) -> bool {
        self.connections.get(entity).is_ok_and(|c| !c.is_closing())
    }

    /// Every connection entity, open or closing.
    pub fn connections(&self) -> impl Iterator<Item = Entity> + '_ {
        self.entities.iter()
    }
}

/// Packets sent this frame, by packet id: counted by [`Outbox`] as it sends and added to
/// [`NetStats`] at the frame's flush. A resource of its own, so that a game system may send and
/// read `NetStats` at once.
#[derive(Resource, Default)]
pub(crate) struct SentThisFrame(Vec<u64>);

impl SentThisFrame {
    fn count(&mut self, id: u16, n: u64) {
        let at = usize::from(id);
        if self.0.len() <= at {
            self.0.resize(at + 1, 0);
        }
        self.0[at] += n;
    }

    /// Moves the frame's counts to `stats`.
    fn add_to(&mut self, stats: &mut NetStats) {
        for (id, n) in self.0.iter_mut().enumerate() {
            if *n > 0 {
                stats.count_out(id as u16, std::mem::take(n));
            }
        }
    }
}

/// The limits on bytes waiting for the writer.
#[derive(Resource, Debug, Clone, Copy)]
pub(crate) struct Backlog(pub BacklogLimits);

/// The writer that [`flush`] hands the frame's sessions to.
#[derive(Resource)]
pub(crate) struct WriterHandle(pub Arc<Writer>);

/// What a flush works with.
#[derive(SystemParam)]
pub(crate) struct Flush<'w, 's> {
    connections: Query<'w, 's, &'static mut Connection>,
    backlog: Res<'w, Backlog>,
    writer: Res<'w, WriterHandle>,
    stats: ResMut<'w, NetStats>,
    sent: ResMut<'w, SentThisFrame>,
    listed: Local<'s, Vec<Arc<Session>>>,
}

/// In `Last` ([`NetSystems::Send`](crate::NetSystems::Send)): moves each connection's frame
/// buffer to its session's queue, once per frame after all game systems, and wakes the writer
/// once for all of them. Bytes sent with a delay stay until their deadline or the connection's
/// next ordinary send.
pub(crate) fn flush(flush: Flush) {
    let now = std::time::Instant::now();
    flush_at(Some(now), now, flush);
}

/// At a shutdown, before the sessions close: hands over everything, bytes held for later too.
pub(crate) fn flush_everything(flush: Flush) {
    flush_at(None, std::time::Instant::now(), flush);
}

/// The flush: `due` is the moment held bytes are compared with (`None`: all of them go).
fn flush_at(due: Option<std::time::Instant>, now: std::time::Instant, flush: Flush) {
    let Flush { mut connections, backlog, writer, mut stats, mut sent, mut listed } = flush;
    sent.add_to(&mut stats);
    let unlimited = BacklogLimits { cap: usize::MAX / 4, budget: None, ..backlog.0 };
    for mut connection in &mut connections {
        // Read-only first: most connections were sent nothing this frame (an idle one costs a
        // look, not a write that would mark it changed).
        if !connection.has_work(due) {
            continue;
        }
        // A connection game code closed this frame still gets what it was sent before.
        let closing = connection.take_close_request();
        let limits = if closing.is_some() { &unlimited } else { &backlog.0 };
        if let Some(listed_now) = connection.hand_over(now, limits) {
            stats.flushes += 1;
            if listed_now {
                listed.push(connection.session().clone());
            }
        }
        if let Some(reason) = closing {
            connection.session().close(reason);
        }
    }
    writer.0.submit(&mut listed);
}
