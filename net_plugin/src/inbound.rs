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

use crate::connection::{
    ConnectFailed, Connected, Connecting, Connection, Disconnected, PendingDespawn, Received, SessionIndex,
};
use crate::handle::{Session, SessionId};
use crate::reason::DisconnectReason;
use crate::stats::{IoCounters, NetStats};
use crate::transport::Transport;

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

    /// Sends one read's packets of session `id`, first waiting (in turn, without polling) for
    /// room in the queue. If `closed` resolves while it waits (the session's
    /// [`Session::closed`]: it was closed), the packets are dropped and counted. `first_seq` is
    /// the first packet's place in the connection's stream.
    pub async fn send_packets(
        &self,
        id: SessionId,
        closed: impl Future<Output = ()>,
        packets: Vec<In>,
        first_seq: u64,
    ) -> Result<(), EcsGone> {
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
                    () = closed => {
                        IoCounters::add(&self.counters.packets_dropped, n as u64);
                        return Ok(());
                    }
                }
            }
        };
        permit.forget();
        self.tx.send(IoEvent::Packets { id, packets, at, first_seq, permits: wanted }).map_err(|_| {
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
            let websocket = session.transport() == Transport::WebSocket;
            index.insert(id, entity, Some(session));
            world.write_message(Connected { entity, peer });
            stats.sessions += 1;
            stats.sessions_websocket += u64::from(websocket);
            stats.sessions_total += 1;
        }
        IoEvent::Disconnected { id, reason } => {
            if let Some(entry) = index.remove(id) {
                world.write_message(Disconnected { entity: entry.entity, reason: *reason });
                world.resource_mut::<PendingDespawn>().0.push(entry.entity);
                stats.sessions = stats.sessions.saturating_sub(1);
                if entry.session.is_some_and(|s| s.transport() == Transport::WebSocket) {
                    stats.sessions_websocket = stats.sessions_websocket.saturating_sub(1);
                }
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

#[cfg(test)]
mod tests {
    //! The queue's promises, without sockets, a runtime or a timer: each read's send is a future
    //! the test polls by hand (so it decides who looks at the queue when), and the ECS side takes
    //! one batch at a time through [`handle_event`], which gives its permits back as `receive`
    //! does.

    use std::collections::VecDeque;
    use std::future::pending;
    use std::pin::Pin;
    use std::sync::atomic::Ordering::Relaxed;
    use std::task::{Context, Poll, Waker};

    use shared::{C_Move, ClientPacket};
    use tokio::sync::oneshot;

    use super::*;

    type Sending<'a> = Pin<Box<dyn Future<Output = Result<(), EcsGone>> + 'a>>;

    /// A queue bounded at `capacity` packets, and the world its batches are handed to.
    fn queue(capacity: usize) -> (InboundQueue<ClientPacket>, World) {
        let (queue, inbox) = channel(capacity, Arc::new(IoCounters::default()));
        let mut world = World::new();
        world.insert_resource(inbox);
        (queue, world)
    }

    /// Session `id` sends one read of `n` packets; it is closed when `closed` resolves.
    fn send<'a>(
        queue: &'a InboundQueue<ClientPacket>,
        id: u64,
        n: usize,
        closed: impl Future<Output = ()> + 'a,
    ) -> Sending<'a> {
        Box::pin(queue.send_packets(SessionId(id), closed, vec![ClientPacket::Move(C_Move::default()); n], 0))
    }

    /// Polls once, with a waker that does nothing: nothing runs unless the test polls it.
    fn poll(sending: &mut Sending<'_>) -> Poll<Result<(), EcsGone>> {
        sending.as_mut().poll(&mut Context::from_waker(Waker::noop()))
    }

    /// Whether the send went through (its batch queued, or dropped because its session closed).
    fn done(sending: &mut Sending<'_>) -> bool {
        match poll(sending) {
            Poll::Ready(result) => {
                result.expect("the ECS is there");
                true
            }
            Poll::Pending => false,
        }
    }

    /// The ECS takes the oldest queued batch: its session and its packets. No session is open in
    /// these tests, so [`handle_event`] counts the packets as dropped after giving back their
    /// permits; tests look at [`IoCounters::packets_dropped`] before the ECS runs.
    fn ecs_takes_one(world: &mut World) -> Option<(u64, usize)> {
        let (event, counters, permits) = {
            let inbox = world.resource::<Inbox<ClientPacket>>();
            (inbox.rx.try_recv().ok()?, inbox.counters.clone(), inbox.permits.clone())
        };
        let IoEvent::Packets { id, packets, .. } = &event else { panic!("only packets are sent here") };
        let taken = (id.0, packets.len());
        handle_event(world, &mut SessionIndex::default(), &mut NetStats::default(), &counters, &permits, event);
        Some(taken)
    }

    fn counters(world: &World) -> Arc<IoCounters> {
        world.resource::<Inbox<ClientPacket>>().counters.clone()
    }

    fn available(world: &World) -> usize {
        world.resource::<Inbox<ClientPacket>>().permits.available_permits()
    }

    #[test]
    fn waiters_are_served_first_come_first_served_as_permits_come_back() {
        let (queue, mut world) = queue(4);
        let mut fill_1 = send(&queue, 1, 1, pending());
        let mut fill_3 = send(&queue, 2, 3, pending());
        assert!(done(&mut fill_1) && done(&mut fill_3), "room for both");
        // Three sessions wait, in this order: 3 packets, then 1, then 2.
        let mut a = send(&queue, 3, 3, pending());
        let mut b = send(&queue, 4, 1, pending());
        let mut c = send(&queue, 5, 2, pending());
        assert!(!done(&mut a) && !done(&mut b) && !done(&mut c));
        assert_eq!(counters(&world).inbound_waits.load(Relaxed), 3);

        // One permit back: `b` would fit, but `a` came first. Polled last first, to show that
        // the order of arrival decides, not who looks first.
        assert_eq!(ecs_takes_one(&mut world), Some((1, 1)));
        assert!(!done(&mut c) && !done(&mut b) && !done(&mut a));
        // Three more: `a` (3) and then `b` (1) have theirs; `c` waits for the next batch.
        assert_eq!(ecs_takes_one(&mut world), Some((2, 3)));
        assert!(!done(&mut c));
        assert!(done(&mut b) && done(&mut a));
        assert_eq!(ecs_takes_one(&mut world), Some((4, 1)));
        assert!(!done(&mut c), "b's one permit is not enough");
        assert_eq!(ecs_takes_one(&mut world), Some((3, 3)));
        assert!(done(&mut c));
        assert_eq!(ecs_takes_one(&mut world), Some((5, 2)));
        assert_eq!(ecs_takes_one(&mut world), None);
        assert_eq!(available(&world), 4, "every permit came back");
    }

    #[test]
    fn the_packets_of_a_session_closed_while_waiting_are_dropped_and_counted() {
        let (queue, mut world) = queue(2);
        let mut fill = send(&queue, 1, 1, pending());
        assert!(done(&mut fill));
        let (close, closed) = oneshot::channel::<()>();
        // 5 packets: more than the bound, so it needs every permit; it holds the one left.
        let mut closing = send(&queue, 2, 5, async {
            let _ = closed.await;
        });
        let mut next = send(&queue, 3, 1, pending());
        assert!(!done(&mut closing) && !done(&mut next));

        close.send(()).unwrap();
        assert!(done(&mut closing), "a closed session stops waiting");
        assert_eq!(counters(&world).packets_dropped.load(Relaxed), 5);
        assert_eq!(counters(&world).inbound_waits.load(Relaxed), 2);
        // The permit it held goes to the next in line, before the ECS gives any back.
        assert!(done(&mut next));

        assert_eq!(ecs_takes_one(&mut world), Some((1, 1)));
        assert_eq!(ecs_takes_one(&mut world), Some((3, 1)));
        assert_eq!(ecs_takes_one(&mut world), None, "the closed session's packets never reach the ECS");
        assert_eq!(available(&world), 2, "every permit came back");
    }

    #[test]
    fn the_queue_never_holds_more_than_its_bound_and_serves_reads_in_order() {
        const CAPACITY: usize = 8;
        const READS: usize = 300;
        let (queue, mut world) = queue(CAPACITY);
        // Reads of 1 to 11 packets (some above the bound), 0 to 2 arriving each round; the ECS
        // takes one batch every other round, so reads wait most of the time.
        let sizes: Vec<usize> = (0..READS as u64).map(|i| (i * 7 + i / 5) as usize % 11 + 1).collect();
        let mut waiting: VecDeque<(u64, Sending<'_>)> = VecDeque::new();
        // The batches in the channel, in the order they were sent.
        let mut queued: VecDeque<(u64, usize)> = VecDeque::new();
        let mut arrived = 0;
        let mut round = 0u64;
        while arrived < READS || !waiting.is_empty() || !queued.is_empty() {
            round += 1;
            assert!(round < 100 * READS as u64, "stuck: {} reads waiting", waiting.len());
            // The waiting reads look again, the newest first: who looks first does not matter.
            for (id, mut sending) in std::mem::take(&mut waiting).into_iter().rev() {
                if done(&mut sending) {
                    queued.push_back((id, sizes[id as usize]));
                } else {
                    waiting.push_front((id, sending));
                }
            }
            // New reads arrive, each looking at once.
            for _ in 0..round % 3 {
                if arrived < READS {
                    let id = arrived as u64;
                    let mut sending = send(&queue, id, sizes[arrived], pending());
                    if done(&mut sending) {
                        queued.push_back((id, sizes[arrived]));
                    } else {
                        waiting.push_back((id, sending));
                    }
                    arrived += 1;
                }
            }
            // First come, first served: the reads still waiting are the latest to arrive.
            if let Some((oldest, _)) = waiting.front() {
                assert_eq!(*oldest as usize, arrived - waiting.len(), "a read went before an older one");
            }
            let held: usize = queued.iter().map(|(_, n)| n).sum();
            assert!(
                held <= CAPACITY || queued.len() == 1,
                "{held} packets queued in {} reads, above the bound of {CAPACITY}",
                queued.len()
            );
            if round.is_multiple_of(2)
                && let Some(taken) = ecs_takes_one(&mut world)
            {
                assert_eq!(Some(taken), queued.pop_front());
            }
        }
        assert_eq!(available(&world), CAPACITY, "every permit came back");
        let waits = counters(&world).inbound_waits.load(Relaxed);
        assert!(waits > READS as u64 / 2, "the bound was reached: {waits} reads waited");
    }

    #[test]
    fn when_the_ecs_stops_every_waiter_is_told() {
        let (queue, world) = queue(1);
        let mut fill = send(&queue, 1, 1, pending());
        let mut waiting = send(&queue, 2, 1, pending());
        assert!(done(&mut fill) && !done(&mut waiting));
        world.resource::<Inbox<ClientPacket>>().close();
        assert!(matches!(poll(&mut waiting), Poll::Ready(Err(EcsGone))));
        assert!(matches!(poll(&mut send(&queue, 3, 1, pending())), Poll::Ready(Err(EcsGone))));
    }
}
