//! What a session's parties (its ECS side, its task, the writer) hold of it: its id, the
//! shared [`Session`] with its outbound state ([`Outgoing`]) under one lock, and the registry of
//! open sessions.
//! Below the I/O tasks and the ECS side alike, which both use it; it uses neither.

use std::collections::HashMap;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::Poll;
use std::time::Instant;

use bytes::BytesMut;
use futures_util::task::AtomicWaker;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::core::{BacklogLimits, OutboundQueue, TotalBacklog};
use crate::outgoing::Outgoing;
use crate::reason::DisconnectReason;
use crate::transport::Transport;
use crate::transport::tls::{Tls, TlsGuard};
use crate::transport::ws;

/// A session's id: unique for the life of the process, counting from 1. Shows in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// What a session's ECS side (its [`Connection`](crate::Connection)), its task and the writer
/// share.
#[derive(Debug)]
pub(crate) struct Session {
    /// For logs and the ECS's index.
    pub id: SessionId,
    /// The peer's address, for logs.
    pub peer: SocketAddr,
    /// A WebSocket session's end (`None`: TCP): the writer puts its frames in messages.
    pub ws: Option<ws::Role>,
    /// A `wss://` session's TLS state (`None`: plain bytes): what it reads is decrypted, what
    /// is queued for it is encrypted as it is queued (`transport::tls`).
    pub tls: Option<Tls>,
    /// The socket: read by the session's task, written by the writer (see the module docs).
    pub stream: TcpStream,
    /// Bytes flushed and not yet written, and the writer's bookkeeping. Locked to append a
    /// frame (once a frame), and by the writer around one non-blocking write.
    outgoing: Mutex<Outgoing>,
    /// Wakes the session's task: it was closed from elsewhere.
    task: AtomicWaker,
    /// Set once, when the session must end.
    closed: AtomicBool,
    /// The first reason given; later ones are ignored: a session ends once.
    reason: OnceLock<DisconnectReason>,
    /// Whether this side's game code closed it: then the packets it sent afterwards are not
    /// delivered. (Packets before a peer's fault are.)
    closed_by_app: AtomicBool,
    /// Tells the task that the writer wrote the last bytes of a closing session.
    finished: Notify,
    /// Set by the writer when the socket filled: the task must look at its outbound timers.
    blocked_news: AtomicBool,
}

impl Session {
    /// A session whose outbound queue counts in `total`.
    pub fn new(
        id: SessionId,
        peer: SocketAddr,
        ws: Option<ws::Role>,
        tls: Option<Tls>,
        stream: TcpStream,
        total: Arc<TotalBacklog>,
    ) -> Self {
        let outgoing = Outgoing::new(OutboundQueue::new(total));
        Self {
            id,
            peer,
            ws,
            tls,
            stream,
            outgoing: Mutex::new(outgoing),
            task: AtomicWaker::new(),
            closed: AtomicBool::new(false),
            reason: OnceLock::new(),
            closed_by_app: AtomicBool::new(false),
            finished: Notify::new(),
            blocked_news: AtomicBool::new(false),
        }
    }

    /// How the bytes reach the peer.
    pub fn transport(&self) -> Transport {
        if self.ws.is_some() { Transport::WebSocket } else { Transport::Tcp }
    }

    /// The TLS state, if any, then the outbound state, locked in that order: sealed records
    /// must enter the queue in the order they were sealed.
    pub fn sealing(&self) -> (Option<TlsGuard<'_>>, MutexGuard<'_, Outgoing>) {
        let tls = self.tls.as_ref().map(Tls::lock);
        (tls, self.outgoing())
    }

    /// The outbound state. A panic while holding the lock cannot leave it inconsistent (each
    /// change is one [`Outgoing`] transition or one queue operation), so a poisoned lock is used
    /// as is.
    pub fn outgoing(&self) -> MutexGuard<'_, Outgoing> {
        self.outgoing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the session to end. The first reason wins; returns whether it was this one.
    pub fn close(&self, reason: DisconnectReason) -> bool {
        let first = self.reason.set(reason).is_ok();
        self.closed.store(true, Ordering::Release);
        self.task.wake();
        first
    }

    /// Game code ends the session: what it sends afterwards is not delivered.
    pub fn close_by_app(&self, reason: DisconnectReason) {
        self.mark_closed_by_app();
        self.close(reason);
    }

    /// Game code decided to end the session (it closes at the frame's flush): what the peer
    /// sends from now on is not delivered.
    pub fn mark_closed_by_app(&self) {
        self.closed_by_app.store(true, Ordering::Release);
    }

    /// Whether the session is ending (or has ended).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Whether this side's game code closed it.
    pub fn is_closed_by_app(&self) -> bool {
        self.closed_by_app.load(Ordering::Acquire)
    }

    /// The reason the session ends.
    pub fn reason(&self) -> DisconnectReason {
        self.reason.get_or_init(|| DisconnectReason::Shutdown).clone()
    }

    /// Tells the session's task that its socket filled, so it arms its outbound timers (the
    /// write stall, the backlog above the cap) even if its peer never sends a byte.
    pub fn socket_filled(&self) {
        self.blocked_news.store(true, Ordering::Release);
        self.task.wake();
    }

    /// Resolves once the session is closed. For the session's own task only (one waker).
    pub async fn closed(&self) {
        poll_fn(|cx| {
            self.task.register(cx.waker());
            if self.is_closed() { Poll::Ready(()) } else { Poll::Pending }
        })
        .await;
    }

    /// Registers the session's task to be woken when the session closes or its socket fills.
    /// For the session's own task only (one waker).
    pub fn register_task(&self, waker: &std::task::Waker) {
        self.task.register(waker);
    }

    /// Whether the writer found the socket full since the last call ([`socket_filled`](Self::socket_filled)).
    pub fn take_socket_filled(&self) -> bool {
        self.blocked_news.swap(false, Ordering::AcqRel)
    }

    /// Resolves once the writer wrote the last bytes of this finishing session
    /// ([`finished`](Self::finished)). Create it before asking the writer, so no news is missed.
    pub fn finished_notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.finished.notified()
    }

    /// Hands a frame's bytes to a session's queue: `Some(newly listed)` when there were bytes,
    /// `None` when the frame sent it nothing. Closes the session if its backlog passed the ceiling.
    pub fn hand_over(&self, frame: &mut BytesMut, now: Instant, limits: &BacklogLimits) -> Option<bool> {
        if frame.is_empty() {
            return None;
        }
        let bytes = std::mem::take(frame).freeze();
        if self.is_closed() {
            // Closing: what it was sent before is written; nothing sent since.
            return Some(false);
        }
        let (mut tls, mut out) = self.sealing();
        if out.is_abandoned() {
            return Some(false);
        }
        let pushed = match (self.ws, &mut tls) {
            (None, _) => out.queue.push(bytes, now, limits),
            // Everything this peer got in this frame: one binary message, in TLS records on a
            // `wss://` session (one buffer, so still one write).
            (Some(role), Some(tls)) => {
                let (header, payload) = ws::message(bytes, role);
                out.queue.push(tls.seal(&[&header, &payload]), now, limits)
            }
            (Some(role), None) => {
                let (header, payload) = ws::message(bytes, role);
                out.queue.push_framed(header, payload, now, limits)
            }
        };
        match pushed {
            Ok(()) => Some(out.list()),
            Err(reason) => {
                drop(out);
                self.close(reason);
                Some(false)
            }
        }
    }

    /// Called by the writer when it wrote the last bytes of a finishing session.
    pub fn finished(&self) {
        self.finished.notify_one();
    }
}

/// Every open session, so a shutdown can close them all and a restarted writer can find them.
#[derive(Debug, Default)]
pub(crate) struct SessionRegistry {
    sessions: Mutex<HashMap<SessionId, Arc<Session>>>,
}

impl SessionRegistry {
    fn lock(&self) -> MutexGuard<'_, HashMap<SessionId, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn insert(&self, session: &Arc<Session>) {
        self.lock().insert(session.id, session.clone());
    }

    pub fn remove(&self, id: SessionId) {
        self.lock().remove(&id);
    }

    /// Closes every open session with `reason`.
    pub fn close_all(&self, reason: &DisconnectReason) {
        for session in self.lock().values() {
            session.close(reason.clone());
        }
    }

    /// Every open session.
    pub fn all(&self) -> Vec<Arc<Session>> {
        self.lock().values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every session, idle ones included, holds one of these: a `wss://` session's kilobyte of
    /// TLS state, held inline, once made every plain TCP session pay for it (S4's memory per
    /// idle session, `docs/benchmarks.md`).
    #[test]
    fn a_session_holds_no_transport_state_inline() {
        assert!(size_of::<Option<Tls>>() <= 8, "{}", size_of::<Option<Tls>>());
        assert!(size_of::<Session>() <= 512, "{}", size_of::<Session>());
    }
}
