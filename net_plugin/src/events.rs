//! What the I/O threads tell the ECS, and the bounded channel that carries it.
//!
//! One channel for all sessions, so a session's events arrive in the order they happened:
//! `Connected`, its packets, then exactly one `Disconnected`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::link::SessionLink;
use crate::stats::IoCounters;
use crate::{DisconnectReason, SessionId};

/// An event from the I/O threads, in the order it happened for its session.
pub(crate) enum IoEvent<In> {
    /// A connection is open (accepted, or an outgoing connect succeeded).
    Connected { id: SessionId, peer: SocketAddr, link: Arc<SessionLink> },
    /// A decoded packet.
    Packet { id: SessionId, packet: In },
    /// The session ended; the last event of its session. Boxed: rare, and large.
    Disconnected { id: SessionId, reason: Box<DisconnectReason> },
    /// An outgoing connection could not be opened; the only event of its session.
    ConnectFailed { id: SessionId, error: Box<str> },
}

/// The ECS side stopped listening: the application is exiting.
#[derive(Debug)]
pub(crate) struct EcsGone;

/// The I/O side's end of the channel.
pub(crate) struct EventSender<In> {
    tx: Sender<IoEvent<In>>,
    counters: Arc<IoCounters>,
}

impl<In> Clone for EventSender<In> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone(), counters: self.counters.clone() }
    }
}

/// How long a reader waits before retrying when the channel is full. The ECS drains it once a
/// frame, so a millisecond is a small fraction of a frame.
const FULL_RETRY: Duration = Duration::from_millis(1);

impl<In> EventSender<In> {
    /// Sends an event. When the channel is full, waits (without blocking the I/O thread) until
    /// the ECS drains it: the reader stops reading its socket meanwhile, and TCP pushes back on
    /// the peer. Nothing is dropped.
    pub async fn send(&self, event: IoEvent<In>) -> Result<(), EcsGone> {
        let mut event = event;
        loop {
            match self.tx.try_send(event) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(back)) => {
                    event = back;
                    IoCounters::add(&self.counters.queue_full_waits, 1);
                    tokio::time::sleep(FULL_RETRY).await;
                }
                Err(TrySendError::Disconnected(_)) => return Err(EcsGone),
            }
        }
    }
}

/// A bounded channel of `capacity` events.
pub(crate) fn channel<In>(capacity: usize, counters: Arc<IoCounters>) -> (EventSender<In>, Receiver<IoEvent<In>>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    (EventSender { tx, counters }, rx)
}
