//! One connection's life, from the socket's open to its close (the course's Session): what its
//! parties share ([`Session`]), and the task that reads it and ends it exactly once ([`run`]).
//!
//! # Who touches the socket
//!
//! A session's socket is **read only by its own task** and **written only by the runtime's
//! writer task** ([`outbound`](crate::outbound)). The ECS never touches it: it appends the
//! frame's bytes to the session's [`OutboundQueue`] and lists the session for the writer. The
//! task closes the socket only after the writer let go of it: either the writer wrote the last
//! bytes and shut the write side ([`Session::finish`]), or the task abandoned the queue under its
//! lock, after which the writer never writes it again.

use std::collections::HashMap;
use std::future::poll_fn;
use std::io::Read;
use std::net::{Shutdown, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::task::AtomicWaker;
use shared::PacketSet;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::core::{BacklogLimits, InboundRules, OutboundQueue, TotalBacklog};
use crate::inbound::{InboundQueue, IoEvent};
use crate::outbound::Writer;
use crate::stats::IoCounters;
use crate::transport::Transport;
use crate::transport::tls::{Tls, TlsGuard};
use crate::transport::ws::{self, WsInbound};
use crate::{DisconnectReason, NetConfig, SessionId};

/// Bytes read at most per socket read, into a buffer on the stack. Client packets are tiny; a
/// server's flush to one client is a few KiB a frame.
const READ_CHUNK: usize = 16 * 1024;

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

/// The outbound state of a session, under one lock.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// Bytes waiting, in order.
    pub queue: OutboundQueue,
    /// Listed for the writer's next pass (so it is listed once a frame at most).
    pub listed: bool,
    /// In the writer's list of sockets waiting to drain.
    pub blocked: bool,
    /// Closing: once the queue is empty the writer shuts the write side and says so.
    pub finishing: bool,
    /// The task gave up on the queue: nothing more is written.
    pub abandoned: bool,
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
        let outgoing = Outgoing {
            queue: OutboundQueue::new(total),
            listed: false,
            blocked: false,
            finishing: false,
            abandoned: false,
        };
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
    /// change is one assignment or one queue operation), so a poisoned lock is used as is.
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

    fn insert(&self, session: &Arc<Session>) {
        self.lock().insert(session.id, session.clone());
    }

    fn remove(&self, id: SessionId) {
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

/// What every session of one plugin shares.
pub(crate) struct SessionContext<In> {
    pub config: NetConfig,
    pub inbound: InboundQueue<In>,
    pub writer: Arc<Writer>,
    pub counters: Arc<IoCounters>,
    pub registry: Arc<SessionRegistry>,
}

/// Sets the socket options every connection gets: no Nagle delay, the send buffer, keepalive.
pub(crate) fn configure_socket(stream: &TcpStream, config: &NetConfig) -> std::io::Result<()> {
    stream.set_nodelay(config.nodelay)?;
    if let Some(bytes) = config.send_buffer {
        socket2::SockRef::from(stream).set_send_buffer_size(bytes)?;
    }
    if let Some(k) = config.keepalive {
        let keepalive =
            socket2::TcpKeepalive::new().with_time(k.idle).with_interval(k.interval).with_retries(k.retries);
        socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive)?;
    }
    Ok(())
}

/// Runs a session on a connected socket: announces it to the ECS, reads it until it must end,
/// closes it, and reports exactly one `Disconnected`. `Connected`, packets and `Disconnected`
/// all go from this one task over one channel, so they arrive in order.
///
/// A panic inside is caught: it ends this session with [`DisconnectReason::InternalError`] and
/// nothing else.
pub(crate) async fn run<In: PacketSet>(
    stream: TcpStream,
    ws: Option<ws::Role>,
    tls: Option<Tls>,
    id: SessionId,
    peer: SocketAddr,
    cx: Arc<SessionContext<In>>,
    shutdown: &tokio_util::sync::CancellationToken,
) {
    let session = Arc::new(Session::new(id, peer, ws, tls, stream, cx.writer.total().clone()));
    cx.registry.insert(&session);
    // A shutdown that began before the registration would not have closed it.
    if shutdown.is_cancelled() {
        session.close(DisconnectReason::Shutdown);
    }
    if cx.inbound.send_event(IoEvent::Connected { session: session.clone() }).is_err() {
        cx.registry.remove(id);
        return;
    }
    tracing::debug!(session = id.0, %peer, "session opened");

    let read = AssertUnwindSafe(read_until_closed(&session, &cx)).catch_unwind().await;
    match read {
        Ok(Some(reason)) => {
            session.close(reason);
        }
        Ok(None) => {}
        Err(panic) => {
            session.close(DisconnectReason::InternalError(panic_message(&*panic)));
        }
    }
    let reason = session.reason();
    close_socket(&session, &reason, &cx).await;
    cx.registry.remove(id);
    cx.counters.disconnected(reason.kind());
    cx.counters.log_disconnect(id, peer, &reason);
    // The ECS may be gone already (the application is exiting); then nobody needs the event.
    let _ = cx.inbound.send_event(IoEvent::Disconnected { id, reason: Box::new(reason) });
}

/// The text of a caught panic.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string())
}

/// Why the read loop woke.
enum Wake {
    Closed,
    Readable,
    Timer,
    /// The writer found the socket full: the timers change.
    SocketFilled,
    Failed(std::io::Error),
}

/// Reads, hands the packets to the ECS, and keeps the timers, until a rule ends the session
/// (its reason) or it is closed from elsewhere (`None`).
async fn read_until_closed<In: PacketSet>(session: &Arc<Session>, cx: &SessionContext<In>) -> Option<DisconnectReason> {
    let mut rules = InboundRules::<In>::new(&cx.config, Instant::now());
    let limits = BacklogLimits::of(&cx.config);
    // The WebSocket layer between the socket and the rules, if this is a WebSocket session.
    let mut ws = session.ws.map(|role| WsInbound::new(&cx.config.websocket, role, Instant::now()));
    // Frames the WebSocket layer sends back (pongs, pings).
    let mut replies = Vec::new();
    // The next packet's place in the connection's stream, for `Received::seq`.
    let mut next_seq = 0u64;
    // Allocated only while a rule has a deadline: an idle session keeps no timer.
    let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut armed = None;
    loop {
        // The inbound rules' timers, and the outbound ones while the writer waits on the socket.
        let outbound = {
            let out = session.outgoing();
            if out.blocked { out.queue.deadline(&limits) } else { None }
        };
        let deadline =
            [rules.deadline(), outbound, ws.as_ref().and_then(WsInbound::deadline)].into_iter().flatten().min();
        if deadline != armed {
            armed = deadline;
            match (deadline, timer.as_mut()) {
                (None, _) => timer = None,
                (Some(at), Some(timer)) => timer.as_mut().reset(at.into()),
                (Some(at), None) => timer = Some(Box::pin(tokio::time::sleep_until(at.into()))),
            }
        }
        let wake = poll_fn(|task| {
            session.task.register(task.waker());
            if session.is_closed() {
                return Poll::Ready(Wake::Closed);
            }
            if session.blocked_news.swap(false, Ordering::AcqRel) {
                return Poll::Ready(Wake::SocketFilled);
            }
            match session.stream.poll_read_ready(task) {
                Poll::Ready(Ok(())) => return Poll::Ready(Wake::Readable),
                Poll::Ready(Err(e)) => return Poll::Ready(Wake::Failed(e)),
                Poll::Pending => {}
            }
            if let Some(timer) = timer.as_mut()
                && timer.as_mut().poll(task).is_ready()
            {
                return Poll::Ready(Wake::Timer);
            }
            Poll::Pending
        })
        .await;
        match wake {
            Wake::Closed => return None,
            Wake::SocketFilled => {}
            Wake::Failed(e) => return Some(DisconnectReason::Io(e.kind())),
            Wake::Timer => {
                let now = Instant::now();
                if let Err(reason) = rules.check_timers(now) {
                    return Some(reason);
                }
                if let Err(reason) = session.outgoing().queue.check(now, &limits) {
                    return Some(reason);
                }
                if let Some(ws) = &mut ws {
                    let keepalive = ws.check_timers(now, &mut replies);
                    if let Err(reason) = keepalive.and_then(|()| send_replies(session, cx, &mut replies, &limits)) {
                        return Some(reason);
                    }
                }
                // Not yet (the deadline moved): re-arm.
                armed = None;
            }
            Wake::Readable => {
                let mut packets = Vec::new();
                let (read, ruled) = read_once(session, &mut rules, ws.as_mut(), &mut packets, &mut replies);
                let ruled = ruled.and_then(|()| send_replies(session, cx, &mut replies, &limits));
                match read {
                    Ok(0) => return Some(DisconnectReason::ClosedByPeer),
                    Ok(n) => IoCounters::add(&cx.counters.bytes_in, n as u64),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Some(DisconnectReason::Io(e.kind())),
                }
                let (first_seq, n) = (next_seq, packets.len() as u64);
                next_seq += n;
                if !packets.is_empty()
                    && cx.inbound.send_packets(session.id, session.closed(), packets, first_seq).await.is_err()
                {
                    return Some(DisconnectReason::Shutdown);
                }
                if let Err(reason) = ruled {
                    return Some(reason);
                }
            }
        }
    }
}

/// Reads what the socket holds (up to [`READ_CHUNK`]) and feeds it to the rules. `Ok(0)` is the
/// end of the stream. A plain function, so its stack buffer is not kept in the session's future
/// between wake-ups: an idle session stays small.
fn read_once<In: PacketSet>(
    session: &Session,
    rules: &mut InboundRules<In>,
    ws: Option<&mut WsInbound>,
    packets: &mut Vec<In>,
    replies: &mut Vec<bytes::Bytes>,
) -> (std::io::Result<usize>, Result<(), DisconnectReason>) {
    let stream = &session.stream;
    let mut chunk = [0u8; READ_CHUNK];
    let mut n = 0;
    let read = stream.try_io(Interest::READABLE, || {
        n = (&*socket2::SockRef::from(stream)).read(&mut chunk)?;
        // A short read drained the socket. Saying so clears tokio's readiness now (with the
        // readiness event it was read under, so data that arrived since is not missed) and
        // spares a read that would only find nothing: tokio's own `poll_read` does the same.
        if n > 0 && n < chunk.len() { Err(std::io::ErrorKind::WouldBlock.into()) } else { Ok(n) }
    });
    // A `wss://` session's bytes are decrypted first. What TLS answers with (an alert, a key
    // update) goes out with the next sealed bytes.
    let mut plain = Vec::new();
    let (received, opened) = match &session.tls {
        Some(tls) => {
            let opened = tls.open(&chunk[..n], &mut plain);
            (&mut plain[..], opened)
        }
        None => (&mut chunk[..n], Ok(())),
    };
    let ruled = match ws {
        Some(ws) => ws.receive(received, Instant::now(), rules, packets, replies),
        None => rules.receive(received, Instant::now(), packets),
    };
    let ruled = opened.and(ruled);
    let read = match read {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && n > 0 => Ok(n),
        other => other,
    };
    (read, ruled)
}

/// Queues the WebSocket layer's replies (pongs, pings) behind what is queued, and lists the
/// session for the writer.
fn send_replies<In>(
    session: &Arc<Session>,
    cx: &SessionContext<In>,
    replies: &mut Vec<bytes::Bytes>,
    limits: &BacklogLimits,
) -> Result<(), DisconnectReason> {
    if replies.is_empty() {
        return Ok(());
    }
    {
        let (mut tls, mut out) = session.sealing();
        for reply in replies.drain(..) {
            let reply = match &mut tls {
                Some(tls) => tls.seal(&[&reply]),
                None => reply,
            };
            out.queue.push(reply, Instant::now(), limits)?;
        }
    }
    cx.writer.submit_one(session);
    Ok(())
}

/// Ends the socket. When the reason allows, the writer first writes what is queued (within the
/// linger time) and shuts the write side, so the peer reads everything, then the end. Otherwise
/// the queue is abandoned; a peer cut for not reading is reset (`SO_LINGER` 0), so the kernel
/// frees its buffers at once instead of holding them while it tries to deliver them.
async fn close_socket<In>(session: &Arc<Session>, reason: &DisconnectReason, cx: &SessionContext<In>) {
    if reason.flushes_before_close() {
        let finished = session.finished.notified();
        {
            let (mut tls, mut out) = session.sealing();
            if let Some(role) = session.ws
                && !out.abandoned
            {
                // The peer learns why, after what it was sent. Past the ceiling it goes anyway:
                // a control frame is at most 127 bytes (and TLS's close_notify a few more).
                let unlimited = BacklogLimits { cap: usize::MAX / 4, ..BacklogLimits::of(&cx.config) };
                let close = ws::close_frame(reason, role);
                let close = match &mut tls {
                    Some(tls) => [tls.seal(&[&close]), tls.close_notify()].concat().into(),
                    None => close,
                };
                let _ = out.queue.push(close, Instant::now(), &unlimited);
            }
            out.finishing = true;
        }
        cx.writer.submit_one(session);
        let linger = cx.config.close_linger.max(Duration::from_millis(1));
        let _ = tokio::time::timeout(linger, finished).await;
    }
    {
        let mut out = session.outgoing();
        out.abandoned = true;
        out.queue.clear();
    }
    // The writer drops its hold on the socket at its next pass.
    cx.writer.wake();
    let socket = socket2::SockRef::from(&session.stream);
    if reason.resets_connection() {
        // No FIN first (a reading peer would take it for a clean end): the reset goes out when
        // the descriptor closes, as the last holder of the session (its entity, despawned at the
        // end of the frame of its `Disconnected`) lets go.
        let _ = socket.set_linger(Some(Duration::ZERO));
    } else {
        // The peer sees the end now; the descriptor closes when the last holder lets go.
        let _ = socket.shutdown(Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn sockets_get_nodelay_and_keepalive() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        configure_socket(&stream, &NetConfig::default()).unwrap();
        let socket = socket2::SockRef::from(&stream);
        assert!(stream.nodelay().unwrap());
        assert!(socket.keepalive().unwrap());
        assert_eq!(socket.tcp_keepalive_time().unwrap(), Duration::from_secs(30));
        assert_eq!(socket.tcp_keepalive_interval().unwrap(), Duration::from_secs(10));
        assert_eq!(socket.tcp_keepalive_retries().unwrap(), 3);

        let off = NetConfig { keepalive: None, ..NetConfig::default() };
        let other = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        configure_socket(&other, &off).unwrap();
        assert!(!socket2::SockRef::from(&other).keepalive().unwrap());
    }
}
