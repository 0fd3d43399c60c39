//! What the I/O threads tell the ECS, and the channel that carries it.
//!
//! One channel for all sessions, so a session's events arrive in the order they happened:
//! `Connected`, its packets, then exactly one `Disconnected`. Packets travel in batches, one per
//! socket read, so a busy connection costs one channel operation per read, not per packet.
//!
//! The bound is counted in packets: at most `capacity` packets wait (or one read's worth, if a
//! single read decoded more), plus the two lifecycle events of each connection. When it is
//! reached, readers stop reading their sockets until the next frame drains the channel (TCP
//! pushes back on the senders); nothing is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::link::SessionLink;
use crate::stats::IoCounters;
use crate::{DisconnectReason, SessionId};

/// An event from the I/O threads, in the order it happened for its session.
pub(crate) enum IoEvent<In> {
    /// A connection is open (accepted, or an outgoing connect succeeded).
    Connected { id: SessionId, peer: SocketAddr, link: Arc<SessionLink> },
    /// The packets decoded from one read, in order, and when the read happened.
    Packets { id: SessionId, packets: Vec<In>, at: Instant },
    /// The session ended; the last event of its session. Boxed: rare, and large.
    Disconnected { id: SessionId, reason: Box<DisconnectReason> },
    /// An outgoing connection could not be opened; the only event of its session.
    ConnectFailed { id: SessionId, error: Box<str> },
}

/// The ECS side stopped listening: the application is exiting.
#[derive(Debug)]
pub(crate) struct EcsGone;

/// Packets sent and not yet drained by the ECS, shared by both ends.
#[derive(Debug)]
pub(crate) struct InFlight {
    packets: AtomicUsize,
    capacity: usize,
}

impl InFlight {
    /// The ECS drained `n` packets.
    pub fn drained(&self, n: usize) {
        self.packets.fetch_sub(n, Ordering::AcqRel);
    }
}

/// The I/O side's end of the channel.
pub(crate) struct EventSender<In> {
    tx: Sender<IoEvent<In>>,
    in_flight: Arc<InFlight>,
    counters: Arc<IoCounters>,
}

impl<In> Clone for EventSender<In> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone(), in_flight: self.in_flight.clone(), counters: self.counters.clone() }
    }
}

/// How long a reader waits before trying again when the bound is reached. The ECS drains the
/// channel once a frame, so a millisecond is a small fraction of a frame.
const FULL_RETRY: Duration = Duration::from_millis(1);

impl<In> EventSender<In> {
    /// Sends a lifecycle event (bounded by the number of connections, so it never waits).
    pub fn send(&self, event: IoEvent<In>) -> Result<(), EcsGone> {
        self.tx.send(event).map_err(|_| EcsGone)
    }

    /// Sends one read's packets. While the bound is reached, waits (without blocking the I/O
    /// thread) for the ECS to drain, or for `link` to close; a batch larger than the whole bound
    /// goes once the channel is empty.
    pub async fn send_packets(&self, link: &SessionLink, packets: Vec<In>, at: Instant) -> Result<(), EcsGone> {
        let n = packets.len();
        loop {
            let queued = self.in_flight.packets.load(Ordering::Acquire);
            if queued == 0 || queued + n <= self.in_flight.capacity {
                if self
                    .in_flight
                    .packets
                    .compare_exchange(queued, queued + n, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    break;
                }
                continue;
            }
            IoCounters::add(&self.counters.queue_full_waits, 1);
            if link.is_closed() {
                // Nobody will read them: the session is ending.
                return Ok(());
            }
            tokio::time::sleep(FULL_RETRY).await;
        }
        self.tx.send(IoEvent::Packets { id: link.id, packets, at }).map_err(|_| {
            self.in_flight.drained(n);
            EcsGone
        })
    }
}

/// A channel bounded at `capacity` packets.
pub(crate) fn channel<In>(
    capacity: usize,
    counters: Arc<IoCounters>,
) -> (EventSender<In>, Receiver<IoEvent<In>>, Arc<InFlight>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let in_flight = Arc::new(InFlight { packets: AtomicUsize::new(0), capacity: capacity.max(1) });
    (EventSender { tx, in_flight: in_flight.clone(), counters }, rx, in_flight)
}
