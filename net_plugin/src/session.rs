//! One connection's I/O task (the course's Session, RecvBuffer, SendBuffer and PacketSession):
//! a reader that frames and decodes off the ECS thread, and a writer that sends each frame's
//! flush with one write. Both run in one task, so a session costs one task.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use futures_util::FutureExt;
use shared::{DecodeError, FrameDecoder, PacketSet};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};

use crate::events::{EventSender, IoEvent};
use crate::link::SessionLink;
use crate::rate_limit::TokenBucket;
use crate::stats::IoCounters;
use crate::{DisconnectReason, NetConfig, SessionId};

/// Bytes reserved for each socket read. Client packets are tiny; a server's flush to one client
/// is a few KiB a frame.
const READ_CHUNK: usize = 4096;

/// What every session of one plugin shares.
pub(crate) struct SessionContext<In> {
    pub config: NetConfig,
    pub events: EventSender<In>,
    pub counters: Arc<IoCounters>,
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

/// Runs a session to its end, then reports exactly one `Disconnected`. A panic inside is caught
/// here: it ends this session with [`DisconnectReason::InternalError`] and nothing else.
pub(crate) async fn run<In: PacketSet>(
    stream: TcpStream,
    id: SessionId,
    peer: SocketAddr,
    link: Arc<SessionLink>,
    cx: Arc<SessionContext<In>>,
) {
    let outcome = AssertUnwindSafe(drive::<In>(stream, id, &link, &cx)).catch_unwind().await;
    if let Err(panic) = outcome {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_string());
        link.close(DisconnectReason::InternalError(message));
    }
    let reason = link.reason();
    cx.counters.disconnected(reason.kind());
    if reason.is_peer_fault() || matches!(reason, DisconnectReason::InternalError(_)) {
        tracing::warn!(session = id.0, %peer, %reason, "session closed");
    } else {
        tracing::debug!(session = id.0, %peer, %reason, "session closed");
    }
    // The ECS may be gone already (the application is exiting); then nobody needs the event.
    let _ = cx.events.send(IoEvent::Disconnected { id, reason: Box::new(reason) }).await;
}

async fn drive<In: PacketSet>(mut stream: TcpStream, id: SessionId, link: &SessionLink, cx: &SessionContext<In>) {
    let (rd, wr) = stream.split();
    let reader = async {
        if let Some(reason) = read_loop::<In>(rd, id, link, cx).await {
            link.close(reason);
        }
    };
    let writer = async {
        if let Some(reason) = write_loop(wr, link, cx).await {
            link.close(reason);
        }
    };
    tokio::join!(reader, writer);
}

/// Reads, frames, rate-limits and decodes until the peer or the link ends the session. Returns
/// why it ended, or `None` when the link was closed from elsewhere.
async fn read_loop<In: PacketSet>(
    rd: ReadHalf<'_>,
    id: SessionId,
    link: &SessionLink,
    cx: &SessionContext<In>,
) -> Option<DisconnectReason> {
    let config = &cx.config;
    let mut frames = FrameDecoder::new(config.max_packet_size);
    let mut bucket = config.inbound_rate.map(TokenBucket::new);
    loop {
        // Wait for data before reserving a buffer: an idle connection holds no read buffer.
        let readable = async {
            match config.idle_timeout {
                Some(limit) => tokio::time::timeout(limit, rd.readable()).await.ok(),
                None => Some(rd.readable().await),
            }
        };
        tokio::select! {
            biased;
            () = link.closed() => return None,
            ready = readable => match ready {
                None => return config.idle_timeout.map(DisconnectReason::IdleTimeout),
                Some(Err(e)) => return Some(DisconnectReason::Io(e.kind())),
                Some(Ok(())) => {}
            },
        }
        let n = match rd.try_read_buf(frames.read_buffer(READ_CHUNK)) {
            Ok(0) => return Some(DisconnectReason::ClosedByPeer),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                frames.shrink_if_idle();
                continue;
            }
            Err(e) => return Some(DisconnectReason::Io(e.kind())),
        };
        IoCounters::add(&cx.counters.bytes_in, n as u64);
        let now = Instant::now();
        loop {
            let packet = match frames.next_frame() {
                Ok(None) => break,
                Err(e) => return Some(DisconnectReason::MalformedFrame(e)),
                Ok(Some(frame)) => {
                    if let Some(bucket) = &mut bucket
                        && !bucket.try_take(now)
                    {
                        return Some(DisconnectReason::InboundFlood { per_second: bucket.per_second() });
                    }
                    match shared::decode::<In>(frame) {
                        Ok(packet) => packet,
                        Err(DecodeError::WrongDirection { id, name, .. }) => {
                            return Some(DisconnectReason::UnexpectedPacket { id, name });
                        }
                        Err(e) => return Some(DisconnectReason::MalformedPacket(e)),
                    }
                }
            };
            if cx.events.send(IoEvent::Packet { id, packet }).await.is_err() {
                return Some(DisconnectReason::Shutdown);
            }
        }
        frames.shrink_if_idle();
    }
}

/// Writes what each flush hands over, until the link closes; then writes what is left (when
/// the reason allows, within the linger time) and closes the write side. Returns a reason only
/// when the socket itself failed.
async fn write_loop<In>(
    mut wr: WriteHalf<'_>,
    link: &SessionLink,
    cx: &SessionContext<In>,
) -> Option<DisconnectReason> {
    // Taken from the link, not yet written. `write` (not `write_all`) under `select!`: a write
    // either happened or did not, so the position survives a close arriving mid-way.
    let mut pending = BytesMut::new();
    loop {
        if pending.is_empty() {
            tokio::select! {
                biased;
                () = link.closed() => break,
                () = link.flushed() => pending = link.take_outgoing(),
            }
            continue;
        }
        tokio::select! {
            biased;
            () = link.closed() => break,
            written = wr.write(&pending) => match written {
                Ok(0) => return Some(DisconnectReason::Io(std::io::ErrorKind::WriteZero)),
                Ok(n) => {
                    pending.advance(n);
                    IoCounters::add(&cx.counters.bytes_out, n as u64);
                }
                Err(e) => return Some(DisconnectReason::Io(e.kind())),
            },
        }
    }
    let linger = cx.config.close_linger;
    if link.reason().flushes_before_close() {
        pending.extend_from_slice(&link.take_outgoing());
        if let Ok(Ok(())) = tokio::time::timeout(linger, wr.write_all(&pending)).await {
            IoCounters::add(&cx.counters.bytes_out, pending.len() as u64);
        }
    }
    let _ = tokio::time::timeout(linger, wr.shutdown()).await;
    None
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
