//! What a session's ECS side and I/O side share: its socket, the bytes flushed for it and not yet
//! written, and its end.
//!
//! Writing has two paths. Normally the runtime's flusher writes a session's bytes right after the
//! frame's flush, with one non-blocking `write` (see [`Flusher`]). When the socket cannot take
//! everything (the client reads slowly), the rest becomes the session's backlog, and the
//! session's own task writes it as the socket drains. Exactly one of them writes at a time
//! ([`Writer`]), so bytes go out in the order they were sent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use bytes::BytesMut;
use futures_util::task::AtomicWaker;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::stats::IoCounters;
use crate::{DisconnectReason, SessionId};

/// Who may write a session's bytes now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Writer {
    /// Nobody is writing; the flusher may.
    Idle,
    /// The flusher is writing (one `write`, without holding the lock).
    Flusher,
    /// The session's task owns the bytes: a backlog, or the last writes of a closing session.
    Session,
}

/// Bytes flushed and not yet written, and who writes them.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// In the order they were sent. Its length is the session's backlog.
    pub bytes: BytesMut,
    /// Who writes.
    pub writer: Writer,
}

/// Shared by a session's entity (through [`OutboundBuffer`](crate::OutboundBuffer) and
/// [`Connection`](crate::Connection)), its task, and the flusher.
#[derive(Debug)]
pub(crate) struct SessionLink {
    /// The session's id, for logs.
    pub id: SessionId,
    /// The socket. Its task reads it; the flusher and the task write it (one at a time).
    pub stream: TcpStream,
    /// See [`Outgoing`]. Locked briefly: to append a frame, to take bytes to write, to put back
    /// what a write did not take.
    outgoing: Mutex<Outgoing>,
    /// Wakes the session's task: it closed, or the task owns bytes to write.
    waker: AtomicWaker,
    /// Set once, when the session must end.
    closed: AtomicBool,
    /// The first reason given. Later ones are ignored: a session ends once.
    reason: OnceLock<DisconnectReason>,
    /// Whether the link waits in the flusher's list, so it is listed once.
    queued: AtomicBool,
}

/// A flush that would take the backlog past the cap.
#[derive(Debug)]
pub(crate) struct BacklogFull {
    pub queued: usize,
}

impl SessionLink {
    pub fn new(id: SessionId, stream: TcpStream) -> Self {
        Self {
            id,
            stream,
            outgoing: Mutex::new(Outgoing { bytes: BytesMut::new(), writer: Writer::Idle }),
            waker: AtomicWaker::new(),
            closed: AtomicBool::new(false),
            reason: OnceLock::new(),
            queued: AtomicBool::new(false),
        }
    }

    /// The outgoing bytes. A panic while holding the lock can only come from an allocation
    /// failure, and the bytes stay consistent, so a poisoned lock is used as is.
    pub fn outgoing(&self) -> MutexGuard<'_, Outgoing> {
        self.outgoing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a frame's bytes, leaving `frame` empty and without memory (an idle session holds
    /// no buffer). Fails, appending nothing, if the backlog would exceed `cap`.
    pub fn hand_over(&self, frame: &mut BytesMut, cap: usize) -> Result<(), BacklogFull> {
        let mut out = self.outgoing();
        let queued = out.bytes.len() + frame.len();
        if queued > cap {
            return Err(BacklogFull { queued });
        }
        if out.bytes.is_empty() {
            std::mem::swap(&mut out.bytes, frame);
        } else {
            out.bytes.extend_from_slice(frame);
            *frame = BytesMut::new();
        }
        if out.writer == Writer::Session {
            // The task is draining a backlog; it will take these too.
            drop(out);
            self.waker.wake();
        }
        Ok(())
    }

    /// Marks the link as listed for the flusher; false if it already was.
    pub fn enqueue(&self) -> bool {
        !self.queued.swap(true, Ordering::AcqRel)
    }

    /// Writes what is outgoing with one non-blocking `write`, unless the session's task owns the
    /// bytes. What the socket does not take becomes the task's backlog.
    pub fn flush_now(&self, counters: &IoCounters) {
        self.queued.store(false, Ordering::Release);
        let bytes = {
            let mut out = self.outgoing();
            if out.writer != Writer::Idle || out.bytes.is_empty() || self.is_closed() {
                return;
            }
            out.writer = Writer::Flusher;
            std::mem::take(&mut out.bytes)
        };
        let written = self.stream.try_write(&bytes);
        let mut out = self.outgoing();
        out.writer = Writer::Idle;
        match written {
            Ok(n) if n == bytes.len() => IoCounters::add(&counters.bytes_out, n as u64),
            Ok(n) => {
                IoCounters::add(&counters.bytes_out, n as u64);
                Self::put_back(&mut out, &bytes[n..]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Self::put_back(&mut out, &bytes),
            Err(e) => {
                drop(out);
                self.close(DisconnectReason::Io(e.kind()));
                return;
            }
        }
        if !out.bytes.is_empty() {
            // The socket is full: the session's task writes the rest as it drains.
            out.writer = Writer::Session;
            drop(out);
            self.waker.wake();
        }
    }

    /// Puts unwritten bytes back in front of what was flushed since.
    pub fn put_back(out: &mut Outgoing, unwritten: &[u8]) {
        if unwritten.is_empty() {
            return;
        }
        let mut bytes = BytesMut::with_capacity(unwritten.len() + out.bytes.len());
        bytes.extend_from_slice(unwritten);
        bytes.extend_from_slice(&out.bytes);
        out.bytes = bytes;
    }

    /// Registers the session's task to be woken on close or when it owns bytes to write.
    pub fn register(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }

    /// Asks the session to end. The first reason wins; returns whether it was this one.
    pub fn close(&self, reason: DisconnectReason) -> bool {
        let first = self.reason.set(reason).is_ok();
        self.closed.store(true, Ordering::Release);
        self.waker.wake();
        first
    }

    /// Whether the session is ending (or has ended).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The reason the session ends.
    pub fn reason(&self) -> DisconnectReason {
        self.reason.get_or_init(|| DisconnectReason::Shutdown).clone()
    }
}

/// Writes every session's flushed bytes once a frame, in one task: after the ECS flush, one
/// wake-up of the I/O thread writes all of them, instead of waking each session's task.
#[derive(Debug, Default)]
pub(crate) struct Flusher {
    /// Links with bytes to write, each listed once.
    pending: Mutex<Vec<Arc<SessionLink>>>,
    /// Wakes the flusher task.
    wake: Notify,
}

impl Flusher {
    /// Lists links with new bytes and wakes the flusher task (called once a frame).
    pub fn submit(&self, links: &mut Vec<Arc<SessionLink>>) {
        if links.is_empty() {
            return;
        }
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).append(links);
        self.wake.notify_one();
    }

    /// The flusher task: writes what each frame lists, until the runtime stops.
    pub async fn run(self: Arc<Self>, counters: Arc<IoCounters>) {
        let mut batch = Vec::new();
        loop {
            self.wake.notified().await;
            std::mem::swap(&mut batch, &mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
            for link in batch.drain(..) {
                link.flush_now(&counters);
            }
        }
    }
}
