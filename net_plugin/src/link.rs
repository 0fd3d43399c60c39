//! The one thing a session's ECS side and I/O side share: the bytes handed from the frame's
//! flush to the writer, and the session's end.

use std::sync::{Mutex, OnceLock, PoisonError};

use bytes::BytesMut;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::DisconnectReason;

/// Shared by a session's entity (through [`OutboundBuffer`](crate::OutboundBuffer) and
/// [`Connection`](crate::Connection)) and its I/O task.
#[derive(Debug)]
pub(crate) struct SessionLink {
    /// Bytes flushed by the ECS and not yet taken by the writer. One buffer, not a queue of
    /// them: a flush appends, the writer takes everything, so its length is the whole backlog
    /// and one write sends it all.
    outgoing: Mutex<BytesMut>,
    /// Wakes the writer after a flush. `Notify` keeps one permit when the writer is busy, so no
    /// flush is missed.
    wake_writer: Notify,
    /// Cancelled when the session must end, by whichever side decides first; a child of the
    /// runtime's shutdown token, so a shutdown ends every session.
    closed: CancellationToken,
    /// The first reason given. Later ones are ignored: a session ends once.
    reason: OnceLock<DisconnectReason>,
}

/// A flush that would take the backlog past the cap.
#[derive(Debug)]
pub(crate) struct BacklogFull {
    pub queued: usize,
}

impl SessionLink {
    pub fn new(closed: CancellationToken) -> Self {
        Self { outgoing: Mutex::new(BytesMut::new()), wake_writer: Notify::new(), closed, reason: OnceLock::new() }
    }

    /// Hands a frame's bytes to the writer, leaving `frame` empty and without memory (an idle
    /// session holds no buffer). Fails without handing anything over if the backlog would
    /// exceed `cap`.
    pub fn hand_over(&self, frame: &mut BytesMut, cap: usize) -> Result<(), BacklogFull> {
        {
            // A panic while holding this lock can only come from an allocation failure; the
            // buffer is still consistent, so a poisoned lock is used as is.
            let mut outgoing = self.outgoing.lock().unwrap_or_else(PoisonError::into_inner);
            let queued = outgoing.len() + frame.len();
            if queued > cap {
                return Err(BacklogFull { queued });
            }
            if outgoing.is_empty() {
                std::mem::swap(&mut *outgoing, frame);
            } else {
                outgoing.extend_from_slice(frame);
                *frame = BytesMut::new();
            }
        }
        self.wake_writer.notify_one();
        Ok(())
    }

    /// Everything flushed so far, for the writer.
    pub fn take_outgoing(&self) -> BytesMut {
        std::mem::take(&mut *self.outgoing.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Waits until a flush wakes the writer.
    pub async fn flushed(&self) {
        self.wake_writer.notified().await;
    }

    /// Asks the session to end. The first reason wins; returns whether it was this one.
    pub fn close(&self, reason: DisconnectReason) -> bool {
        let first = self.reason.set(reason).is_ok();
        self.closed.cancel();
        first
    }

    /// Whether the session is ending (or has ended).
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Waits until the session must end.
    pub async fn closed(&self) {
        self.closed.cancelled().await;
    }

    /// The reason the session ends. A session cancelled through its parent token (a shutdown)
    /// has no reason of its own: that is [`DisconnectReason::Shutdown`].
    pub fn reason(&self) -> DisconnectReason {
        self.reason.get_or_init(|| DisconnectReason::Shutdown).clone()
    }
}
