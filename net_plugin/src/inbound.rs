//! Inbound: socket → frames → packets → the ECS.
//!
//! A session's task ([`session`](crate::session)) reads its socket and feeds the bytes to its
//! [`InboundRules`](crate::core::InboundRules), which split them into packets. The packets of one
//! read cross to the ECS as one batch over one channel shared by every session ([`InboundQueue`]);
//! in `PreUpdate` the [`receive`] system turns them into typed [`Received<P>`] messages, one
//! message type per packet type.
//!
//! # The bound
//!
//! The queue holds at most `inbound_queue` packets: a batch takes one permit per packet from a
//! fair semaphore (first come, first served) before it is sent, and the ECS gives the permits
//! back as it drains the batch. A session that finds no permits waits (its socket unread, so TCP
//! pushes back on its peer) and is woken once, when its turn comes, never polling. A batch larger
//! than the whole bound takes every permit, so it goes once the queue is empty. Besides packets
//! the channel carries each session's `Connected` and `Disconnected`, at most two per connection.
//! Nothing is dropped, except the packets of a session that was closed while they waited, which
//! nobody would read; they are counted in [`NetStats::packets_dropped`].

use std::sync::Arc;
use std::time::Instant;

use bevy_ecs::prelude::*;
use crossbeam_channel::{Receiver, Sender};
use shared::{Packet, PacketSet, PacketVisitor};
use tokio::sync::Semaphore;

use crate::connection::{PendingDespawn, SessionIndex};
use crate::session::Session;
use crate::stats::IoCounters;
use crate::{
    ConnectFailed, Connected, Connecting, Connection, DisconnectReason, Disconnected, NetStats, Received, SessionId,
};

/// An event from the I/O threads, in the order it happened for its session.
pub(crate) enum IoEvent<In> {
    /// A connection is open (accepted, or an outgoing connect succeeded).
    Connected { session: Arc<Session> },
    /// The packets decoded from one read, in order, and when the read happened. `permits` go
    /// back to the queue's semaphore once they are drained.
    Packets { id: SessionId, packets: Vec<In>, at: Instant, first_seq: u64, permits: u32 },
    /// The session ended; the last event of its session. Boxed: rare, and large.
    Disconnected { id: SessionId, reason: Box<DisconnectReason> },
    /// An outgoing connection could not be opened; the only event of its session.
    ConnectFailed { id: SessionId, error: Box<str> },
}

/// The ECS side stopped listening: the application is exiting.
#[derive(Debug)]
pub(crate) struct EcsGone;

/// The I/O side's end of the inbound channel.
pub(crate) struct InboundQueue<In> {
    tx: Sender<IoEvent<In>>,
    /// One permit per packet that may be queued.
    permits: Arc<Semaphore>,
    /// The bound, in packets.
    capacity: u32,
    counters: Arc<IoCounters>,
}

/// The ECS side's end of the inbound channel, drained once a frame by [`receive`].
#[derive(Resource)]
pub(crate) struct Inbox<In> {
    rx: Receiver<IoEvent<In>>,
    permits: Arc<Semaphore>,
    /// The bound, in packets: `capacity - available permits` packets wait in the queue.
    capacity: u32,
    counters: Arc<IoCounters>,
}

/// A channel bounded at `capacity` packets.
pub(crate) fn channel<In>(capacity: usize, counters: Arc<IoCounters>) -> (InboundQueue<In>, Inbox<In>) {
    let capacity = u32::try_from(capacity.clamp(1, Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
    let (tx, rx) = crossbeam_channel::unbounded();
    let permits = Arc::new(Semaphore::new(capacity as usize));
    (
        InboundQueue { tx, permits: permits.clone(), capacity, counters: counters.clone() },
        Inbox { rx, permits, capacity, counters },
    )
}

impl<In> InboundQueue<In> {
    /// Sends a lifecycle event (at most two per connection, so it never waits).
    pub fn send_event(&self, event: IoEvent<In>) -> Result<(), EcsGone> {
        self.tx.send(event).map_err(|_| EcsGone)
    }

    /// Sends one read's packets, first waiting (in turn, without polling) for room in the
    /// queue. If `session` is closed while it waits, the packets are dropped and counted.
    /// `first_seq` is the first packet's place in the connection's stream.
    pub async fn send_packets(&self, session: &Session, packets: Vec<In>, first_seq: u64) -> Result<(), EcsGone> {
        let at = Instant::now();
        let n = packets.len();
        let wanted = u32::try_from(n).unwrap_or(u32::MAX).min(self.capacity);
        let permit = match self.permits.try_acquire_many(wanted) {
            Ok(permit) => permit,
            Err(tokio::sync::TryAcquireError::Closed) => return Err(EcsGone),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                IoCounters::add(&self.counters.inbound_waits, 1);
                tokio::select! {
                    permit = self.permits.acquire_many(wanted) => permit.map_err(|_| EcsGone)?,
                    () = session.closed() => {
                        IoCounters::add(&self.counters.packets_dropped, n as u64);
                        return Ok(());
                    }
                }
            }
        };
        permit.forget();
        self.tx.send(IoEvent::Packets { id: session.id, packets, at, first_seq, permits: wanted }).map_err(|_| {
            self.permits.add_permits(wanted as usize);
            EcsGone
        })
    }
}

impl<In> Inbox<In> {
    /// Stops every session waiting for room: the ECS will drain no more.
    pub fn close(&self) {
        self.permits.close();
    }
}

/// Writes decoded packets as their own message types. Consecutive packets of one type (a
/// client's moves, a room's broadcast) are written as one batch: one resource lookup per run
/// instead of one per packet.
struct Deliver<'w> {
    world: &'w mut World,
    /// Counts what is delivered, by packet type.
    stats: &'w mut NetStats,
    from: Entity,
    at: Instant,
    /// The next packet's place in its connection's stream.
    seq: u64,
    /// The run of same-typed messages not written yet.
    run: Option<Run>,
}

/// A run of `Received<P, P::Set>` for one `P`, type-erased so one visitor serves every packet type.
struct Run {
    packet: std::any::TypeId,
    messages: Box<dyn std::any::Any>,
    write: fn(&mut World, Box<dyn std::any::Any>),
}

fn write_run<P: Packet>(world: &mut World, messages: Box<dyn std::any::Any>) {
    if let Ok(messages) = messages.downcast::<Vec<Received<P, P::Set>>>() {
        world.write_message_batch(*messages);
    }
}

impl Deliver<'_> {
    /// Writes the pending run.
    fn finish(&mut self) {
        if let Some(run) = self.run.take() {
            (run.write)(self.world, run.messages);
        }
    }
}

impl PacketVisitor for Deliver<'_> {
    fn visit<P: Packet>(&mut self, packet: P) {
        let message = Received::<P, P::Set>::new(self.from, packet, self.at, self.seq);
        self.seq += 1;
        self.stats.count_in(P::ID, 1);
        if let Some(run) = &mut self.run
            && run.packet == std::any::TypeId::of::<P>()
            && let Some(messages) = run.messages.downcast_mut::<Vec<Received<P, P::Set>>>()
        {
            messages.push(message);
            return;
        }
        self.finish();
        self.run =
            Some(Run { packet: std::any::TypeId::of::<P>(), messages: Box::new(vec![message]), write: write_run::<P> });
    }
}

/// In `PreUpdate` ([`NetSystems::Receive`](crate::NetSystems::Receive)): drains the events queued
/// by the I/O threads (as many as were there when it started, so a flood cannot hold the frame)
/// and turns them into entities and messages.
pub(crate) fn receive<In: PacketSet>(world: &mut World, mut batch: Local<Vec<IoEvent<In>>>) {
    let (counters, permits, waiting) = {
        let inbox = world.resource::<Inbox<In>>();
        let waiting = u64::from(inbox.capacity).saturating_sub(inbox.permits.available_permits() as u64);
        let queued = inbox.rx.len();
        batch.extend(inbox.rx.try_iter().take(queued));
        (inbox.counters.clone(), inbox.permits.clone(), waiting)
    };
    world.resource_scope(|world, mut index: Mut<SessionIndex>| {
        world.resource_scope(|world, mut stats: Mut<NetStats>| {
            stats.inbound_queued = waiting;
            for event in batch.drain(..) {
                handle_event(world, &mut index, &mut stats, &counters, &permits, event);
            }
            stats.absorb(&counters);
            counters.summarise_faults(Instant::now(), false);
        });
    });
}

fn handle_event<In: PacketSet>(
    world: &mut World,
    index: &mut SessionIndex,
    stats: &mut NetStats,
    counters: &IoCounters,
    permits: &Semaphore,
    event: IoEvent<In>,
) {
    match event {
        IoEvent::Packets { id, packets, at, first_seq, permits: taken } => {
            permits.add_permits(taken as usize);
            let n = packets.len() as u64;
            match index.get(id) {
                // Game code closed it: what the peer sent since is not for the game.
                Some(entry) if entry.session.as_ref().is_some_and(|s| !s.is_closed_by_app()) => {
                    if let Some(mut connection) = world.get_mut::<Connection>(entry.entity) {
                        connection.delivered(n);
                    }
                    let mut deliver = Deliver { world, stats, from: entry.entity, at, seq: first_seq, run: None };
                    for packet in packets {
                        packet.visit(&mut deliver);
                    }
                    deliver.finish();
                }
                _ => IoCounters::add(&counters.packets_dropped, n),
            }
        }
        IoEvent::Connected { session } => {
            let id = session.id;
            let peer = session.peer;
            // An outgoing connection already has its entity; an accepted one gets a new one.
            let entity = match index.get(id).map(|e| e.entity) {
                None => world.spawn(Connection::new(session.clone())).id(),
                Some(entity) => match world.get_entity_mut(entity) {
                    Ok(mut e) if e.contains::<Connecting>() => {
                        e.remove::<Connecting>().insert(Connection::new(session.clone()));
                        entity
                    }
                    _ => {
                        // Its entity was despawned while connecting: nobody wants this connection,
                        // and game code, never told it opened, is not told it closed.
                        session.close_by_app(DisconnectReason::ClosedByApp("its entity was despawned".into()));
                        index.remove(id);
                        return;
                    }
                },
            };
            index.insert(id, entity, Some(session));
            world.write_message(Connected { entity, peer });
            stats.sessions += 1;
            stats.sessions_total += 1;
        }
        IoEvent::Disconnected { id, reason } => {
            if let Some(entry) = index.remove(id) {
                world.write_message(Disconnected { entity: entry.entity, reason: *reason });
                world.resource_mut::<PendingDespawn>().0.push(entry.entity);
                stats.sessions = stats.sessions.saturating_sub(1);
            }
        }
        IoEvent::ConnectFailed { id, error } => {
            if let Some(entry) = index.remove(id) {
                let addr = world.get::<Connecting>(entry.entity).map(|c| c.addr);
                if let Some(addr) = addr {
                    world.write_message(ConnectFailed { entity: entry.entity, addr, error: error.into() });
                    world.resource_mut::<PendingDespawn>().0.push(entry.entity);
                }
            }
        }
    }
}
