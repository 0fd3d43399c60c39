//! One connection's I/O task (the course's Session, RecvBuffer and PacketSession): it reads,
//! frames and decodes off the ECS thread, writes the session's backlog when the flusher could
//! not write everything, and ends the session exactly once.
//!
//! The task is one event loop woken by the socket's readiness or by its link (closed, or bytes
//! for it to write): a connection costs one task, and an idle one holds no buffer.

use std::collections::HashMap;
use std::future::poll_fn;
use std::net::Shutdown;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use shared::{DecodeError, FrameDecoder, PacketSet};
use std::io::Read;

use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::events::{EventSender, IoEvent};
use crate::link::{SessionLink, Writer};
use crate::rate_limit::TokenBucket;
use crate::stats::IoCounters;
use crate::{DisconnectReason, NetConfig, SessionId};

/// Bytes read at most per socket read, into a buffer on the stack. Client packets are tiny; a
/// server's flush to one client is a few KiB a frame.
const READ_CHUNK: usize = 16 * 1024;

/// What every session of one plugin shares.
pub(crate) struct SessionContext<In> {
    pub config: NetConfig,
    pub events: EventSender<In>,
    pub counters: Arc<IoCounters>,
    /// Every open session, so a shutdown can close them all.
    pub registry: Arc<SessionRegistry>,
}

/// The open sessions.
#[derive(Debug, Default)]
pub(crate) struct SessionRegistry {
    links: Mutex<HashMap<SessionId, Arc<SessionLink>>>,
}

impl SessionRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Arc<SessionLink>>> {
        self.links.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn insert(&self, link: &Arc<SessionLink>) {
        self.lock().insert(link.id, link.clone());
    }

    fn remove(&self, id: SessionId) {
        self.lock().remove(&id);
    }

    /// Closes every open session with `reason`.
    pub fn close_all(&self, reason: &DisconnectReason) {
        for link in self.lock().values() {
            link.close(reason.clone());
        }
    }
}

/// Sets the socket options every connection gets: no Nagle delay, keepalive.
pub(crate) fn configure_socket(stream: &TcpStream, config: &NetConfig) -> std::io::Result<()> {
    stream.set_nodelay(config.nodelay)?;
    if let Some(k) = config.keepalive {
        let keepalive =
            socket2::TcpKeepalive::new().with_time(k.idle).with_interval(k.interval).with_retries(k.retries);
        socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive)?;
    }
    Ok(())
}

/// Opens a session on a connected socket: announces it to the ECS, then runs it to its end.
/// Connected, packets and Disconnected are all sent from this one task, so they arrive in order.
pub(crate) async fn open<In: PacketSet>(
    stream: TcpStream,
    id: SessionId,
    peer: std::net::SocketAddr,
    cx: Arc<SessionContext<In>>,
    shutdown: &tokio_util::sync::CancellationToken,
) {
    let link = Arc::new(SessionLink::new(id, stream));
    cx.registry.insert(&link);
    // A shutdown that began before the registration would not have closed it.
    if shutdown.is_cancelled() {
        link.close(DisconnectReason::Shutdown);
    }
    if cx.events.send(IoEvent::Connected { id, peer, link: link.clone() }).is_err() {
        cx.registry.remove(id);
        return;
    }
    tracing::debug!(session = id.0, %peer, "session opened");
    run(link, peer, cx).await;
}

/// Runs a session to its end, then reports exactly one `Disconnected`. A panic inside is caught
/// here: it ends this session with [`DisconnectReason::InternalError`] and nothing else.
async fn run<In: PacketSet>(link: Arc<SessionLink>, peer: std::net::SocketAddr, cx: Arc<SessionContext<In>>) {
    let id = link.id;
    let outcome = AssertUnwindSafe(drive::<In>(&link, &cx)).catch_unwind().await;
    if let Err(panic) = outcome {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_string());
        link.close(DisconnectReason::InternalError(message));
    }
    // The peer sees the end now; the descriptor closes when the last holder drops the link.
    let _ = socket2::SockRef::from(&link.stream).shutdown(Shutdown::Both);
    cx.registry.remove(id);
    let reason = link.reason();
    cx.counters.disconnected(reason.kind());
    if reason.is_peer_fault() || matches!(reason, DisconnectReason::InternalError(_)) {
        tracing::warn!(session = id.0, %peer, %reason, "session closed");
    } else {
        tracing::debug!(session = id.0, %peer, %reason, "session closed");
    }
    // The ECS may be gone already (the application is exiting); then nobody needs the event.
    let _ = cx.events.send(IoEvent::Disconnected { id, reason: Box::new(reason) });
}

async fn drive<In: PacketSet>(link: &SessionLink, cx: &SessionContext<In>) {
    if let Some(reason) = event_loop::<In>(link, cx).await {
        link.close(reason);
    }
    finish_writes(link, cx).await;
}

/// Why the event loop woke.
enum Wake {
    Closed,
    Readable,
    Writable,
    IdleTimeout,
    Failed(std::io::Error),
}

/// Reads, frames, rate-limits and decodes; writes the backlog when the socket drains. Returns
/// why the session ended, or `None` when its link was closed from elsewhere.
async fn event_loop<In: PacketSet>(link: &SessionLink, cx: &SessionContext<In>) -> Option<DisconnectReason> {
    let config = &cx.config;
    let mut frames = FrameDecoder::new(config.max_packet_size);
    let mut bucket = config.inbound_rate.map(TokenBucket::new);
    let mut idle = config.idle_timeout.map(|t| Box::pin(tokio::time::sleep(t)));
    loop {
        let wake = poll_fn(|task| {
            link.register(task.waker());
            if link.is_closed() {
                return Poll::Ready(Wake::Closed);
            }
            if link.outgoing().writer == Writer::Session {
                match link.stream.poll_write_ready(task) {
                    Poll::Ready(Ok(())) => return Poll::Ready(Wake::Writable),
                    Poll::Ready(Err(e)) => return Poll::Ready(Wake::Failed(e)),
                    Poll::Pending => {}
                }
            }
            match link.stream.poll_read_ready(task) {
                Poll::Ready(Ok(())) => return Poll::Ready(Wake::Readable),
                Poll::Ready(Err(e)) => return Poll::Ready(Wake::Failed(e)),
                Poll::Pending => {}
            }
            if let Some(sleep) = idle.as_mut()
                && sleep.as_mut().poll(task).is_ready()
            {
                return Poll::Ready(Wake::IdleTimeout);
            }
            Poll::Pending
        })
        .await;
        match wake {
            Wake::Closed => return None,
            Wake::IdleTimeout => return config.idle_timeout.map(DisconnectReason::IdleTimeout),
            Wake::Failed(e) => return Some(DisconnectReason::Io(e.kind())),
            Wake::Writable => {
                if let Err(e) = write_backlog(link, &cx.counters) {
                    return Some(DisconnectReason::Io(e.kind()));
                }
            }
            Wake::Readable => {
                let n = match read_into(&link.stream, &mut frames) {
                    Ok(0) => return Some(DisconnectReason::ClosedByPeer),
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                    Err(e) => return Some(DisconnectReason::Io(e.kind())),
                };
                if n > 0 {
                    IoCounters::add(&cx.counters.bytes_in, n as u64);
                    if let (Some(sleep), Some(limit)) = (idle.as_mut(), config.idle_timeout) {
                        sleep.as_mut().reset(tokio::time::Instant::now() + limit);
                    }
                    if let Some(reason) = deliver_frames(&mut frames, &mut bucket, link, cx).await {
                        return Some(reason);
                    }
                    frames.shrink_if_idle();
                }
            }
        }
    }
}

/// Reads what the socket holds (up to [`READ_CHUNK`]) into `frames`; `Ok(0)` is the end of the
/// stream. A plain function, so its stack buffer is not kept in the session's future between
/// wake-ups: an idle session stays small.
fn read_into(stream: &TcpStream, frames: &mut FrameDecoder) -> std::io::Result<usize> {
    let mut chunk = [0u8; READ_CHUNK];
    let mut n = 0;
    let read = stream.try_io(Interest::READABLE, || {
        n = (&*socket2::SockRef::from(stream)).read(&mut chunk)?;
        // A short read drained the socket. Saying so clears tokio's readiness now (with the
        // readiness event it was read under, so data that arrived since is not missed) and
        // spares a read that would only find nothing: tokio's own `poll_read` does the same.
        if n > 0 && n < chunk.len() { Err(std::io::ErrorKind::WouldBlock.into()) } else { Ok(n) }
    });
    frames.extend_from_slice(&chunk[..n]);
    match read {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && n > 0 => Ok(n),
        other => other,
    }
}

/// Hands every whole packet buffered to the ECS, decoded, as one batch. A bad frame or packet
/// still delivers the good ones before it.
async fn deliver_frames<In: PacketSet>(
    frames: &mut FrameDecoder,
    bucket: &mut Option<TokenBucket>,
    link: &SessionLink,
    cx: &SessionContext<In>,
) -> Option<DisconnectReason> {
    let now = Instant::now();
    let mut packets = Vec::new();
    let mut ended = None;
    loop {
        match frames.next_frame() {
            Ok(None) => break,
            Err(e) => {
                ended = Some(DisconnectReason::MalformedFrame(e));
                break;
            }
            Ok(Some(frame)) => {
                if let Some(bucket) = bucket
                    && !bucket.try_take(now)
                {
                    ended = Some(DisconnectReason::InboundFlood { per_second: bucket.per_second() });
                    break;
                }
                match shared::decode::<In>(frame) {
                    Ok(packet) => packets.push(packet),
                    Err(DecodeError::WrongDirection { id, name, .. }) => {
                        ended = Some(DisconnectReason::UnexpectedPacket { id, name });
                        break;
                    }
                    Err(e) => {
                        ended = Some(DisconnectReason::MalformedPacket(e));
                        break;
                    }
                }
            }
        }
    }
    if !packets.is_empty() && cx.events.send_packets(link, packets, now).await.is_err() {
        return Some(DisconnectReason::Shutdown);
    }
    ended
}

/// Writes as much of the backlog as the socket takes; gives the writing back to the flusher
/// once it is empty.
fn write_backlog(link: &SessionLink, counters: &IoCounters) -> std::io::Result<()> {
    loop {
        let bytes = {
            let mut out = link.outgoing();
            if out.bytes.is_empty() {
                out.writer = Writer::Idle;
                return Ok(());
            }
            std::mem::take(&mut out.bytes)
        };
        match link.stream.try_write(&bytes) {
            Ok(n) => {
                IoCounters::add(&counters.bytes_out, n as u64);
                if n < bytes.len() {
                    SessionLink::put_back(&mut link.outgoing(), &bytes[n..]);
                    return Ok(());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                SessionLink::put_back(&mut link.outgoing(), &bytes);
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
}

/// Once the session must end: writes what is still queued when the reason allows (within the
/// linger time), then closes the write side so the peer sees the end.
async fn finish_writes<In>(link: &SessionLink, cx: &SessionContext<In>) {
    if !link.reason().flushes_before_close() {
        return;
    }
    // Take the writing over; the flusher may be in the middle of one non-blocking write.
    loop {
        {
            let mut out = link.outgoing();
            if out.writer != Writer::Flusher {
                out.writer = Writer::Session;
                break;
            }
        }
        tokio::task::yield_now().await;
    }
    let drain = async {
        loop {
            let bytes = std::mem::take(&mut link.outgoing().bytes);
            if bytes.is_empty() {
                return Ok::<(), std::io::Error>(());
            }
            let mut at = 0;
            while at < bytes.len() {
                link.stream.writable().await?;
                match link.stream.try_write(&bytes[at..]) {
                    Ok(n) => at += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            IoCounters::add(&cx.counters.bytes_out, bytes.len() as u64);
        }
    };
    let _ = tokio::time::timeout(cx.config.close_linger.max(Duration::from_millis(1)), drain).await;
    let _ = socket2::SockRef::from(&link.stream).shutdown(Shutdown::Write);
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
