//! One connection's life, from the socket's open to its close (the course's Session): the task
//! that reads it and ends it exactly once ([`run`]). What its parties share ([`Session`]) is in
//! [`handle`](crate::handle).
//!
//! # Who touches the socket
//!
//! A session's socket is **read only by its own task** and **written only by the runtime's
//! writer task** ([`writer`](crate::writer)). The ECS never touches it: it appends the frame's
//! bytes to the session's [`OutboundQueue`](crate::core::OutboundQueue) and lists the session for
//! the writer. The task closes the socket only after the writer let go of it: either the writer
//! wrote the last bytes and shut the write side ([`Session::finished`]), or the task abandoned the
//! queue under its lock, after which the writer never writes it again.

use std::future::poll_fn;
use std::io::Read;
use std::net::{Shutdown, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use shared::PacketSet;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::config::NetConfig;
use crate::core::{BacklogLimits, InboundRules};
use crate::faults::panic_message;
use crate::handle::{Session, SessionId, SessionRegistry};
use crate::inbound::{InboundQueue, IoEvent};
use crate::reason::DisconnectReason;
use crate::stats::IoCounters;
use crate::transport::tls::Tls;
use crate::transport::ws::{self, WsInbound};
use crate::writer::Writer;

/// Bytes read at most per socket read, into a buffer on the stack. Client packets are tiny; a
/// server's flush to one client is a few KiB a frame.
const READ_CHUNK: usize = 16 * 1024;

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
    // Boxed: this future lives as long as the session, and a TCP session has no use for it.
    let mut ws = session.ws.map(|role| Box::new(WsInbound::new(&cx.config.websocket, role, Instant::now())));
    // Frames the WebSocket layer sends back (pongs, pings).
    let mut replies = Vec::new();
    // The next packet's place in the connection's stream, for `Received::seq`.
    let mut next_seq = 0u64;
    // Allocated only while a rule has a deadline: an idle session keeps no timer.
    let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut armed = None;
    loop {
        // The inbound rules' timers, and the outbound ones while the writer waits on the socket.
        let outbound = session.outgoing().deadline(&limits);
        let deadline =
            [rules.deadline(), outbound, ws.as_deref().and_then(WsInbound::deadline)].into_iter().flatten().min();
        if deadline != armed {
            armed = deadline;
            match (deadline, timer.as_mut()) {
                (None, _) => timer = None,
                (Some(at), Some(timer)) => timer.as_mut().reset(at.into()),
                (Some(at), None) => timer = Some(Box::pin(tokio::time::sleep_until(at.into()))),
            }
        }
        let wake = poll_fn(|task| {
            session.register_task(task.waker());
            if session.is_closed() {
                return Poll::Ready(Wake::Closed);
            }
            if session.take_socket_filled() {
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
                let (read, ruled) = read_once(session, &mut rules, ws.as_deref_mut(), &mut packets, &mut replies);
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

thread_local! {
    /// Each I/O thread's read buffer, zeroed once rather than at every read (a read per move
    /// made that `memset` of 16 KiB one of the I/O thread's larger items).
    static READ_BUFFER: std::cell::RefCell<Box<[u8; READ_CHUNK]>> =
        std::cell::RefCell::new(Box::new([0; READ_CHUNK]));
}

/// Reads what the socket holds (up to [`READ_CHUNK`]) and feeds it to the rules. `Ok(0)` is the
/// end of the stream. A plain function, and its buffer the thread's own, so no buffer is kept in
/// the session's future between wake-ups: an idle session stays small.
fn read_once<In: PacketSet>(
    session: &Session,
    rules: &mut InboundRules<In>,
    ws: Option<&mut WsInbound>,
    packets: &mut Vec<In>,
    replies: &mut Vec<bytes::Bytes>,
) -> (std::io::Result<usize>, Result<(), DisconnectReason>) {
    READ_BUFFER.with_borrow_mut(|chunk| {
        let stream = &session.stream;
        let mut n = 0;
        let read = stream.try_io(Interest::READABLE, || {
            n = (&*socket2::SockRef::from(stream)).read(&mut chunk[..])?;
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
    })
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
        let finished = session.finished_notified();
        {
            let (mut tls, mut out) = session.sealing();
            if let Some(role) = session.ws
                && !out.is_abandoned()
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
            out.finish();
        }
        cx.writer.submit_one(session);
        let linger = cx.config.close_linger.max(Duration::from_millis(1));
        let _ = tokio::time::timeout(linger, finished).await;
    }
    {
        session.outgoing().abandon();
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
