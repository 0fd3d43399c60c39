//! Why a session ended. Every session ends exactly once, with one of these.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::time::Duration;

use shared::{DecodeError, FrameError};

/// Why a session ended, carried by [`Disconnected`](crate::Disconnected) and counted by kind in
/// [`NetStats`](crate::NetStats).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The peer closed the connection cleanly.
    ClosedByPeer,
    /// The socket failed: reset, broken pipe, keepalive gave up…
    Io(io::ErrorKind),
    /// The byte stream cannot be split into packets (a `size` below 4 or above the limit).
    MalformedFrame(FrameError),
    /// A packet failed to decode.
    MalformedPacket(DecodeError),
    /// The peer sent a packet of the other direction (a client sending an `S_` packet).
    UnexpectedPacket {
        /// The packet's id.
        id: u16,
        /// The packet's name.
        name: &'static str,
    },
    /// The peer sent packets faster than the configured rate.
    InboundFlood {
        /// The configured rate, packets per second.
        per_second: u32,
    },
    /// The peer read more slowly than it was sent to: its backlog stayed above the configured cap
    /// for the write stall timeout, or reached 4 times the cap.
    OutboundBacklog {
        /// Bytes that would have been waiting.
        queued: usize,
        /// The configured cap.
        limit: usize,
    },
    /// Bytes waited for the peer for the write stall timeout with no write progress: it does
    /// not read.
    WriteStall(Duration),
    /// The backlogs of all peers together passed the configured budget
    /// ([`max_total_backlog`](crate::NetConfig::max_total_backlog)), and this peer's was among
    /// the largest: the worst are cut first, so the others keep their memory.
    OutboundBudget {
        /// Bytes waiting for this peer.
        queued: usize,
        /// The configured budget for all peers together.
        budget: usize,
    },
    /// The peer sent nothing for the configured idle timeout.
    IdleTimeout(Duration),
    /// The peer began a packet and did not finish it within the configured frame timeout (a
    /// slow trickle that would hold the connection forever).
    FrameTimeout(Duration),
    /// A WebSocket peer broke the transport's rules: a text message, a message ending inside a
    /// course frame, one too large, an unmasked or malformed frame. The peer is told with this
    /// close code and reason.
    WebSocketProtocol {
        /// The close code sent (RFC 6455, 7.4.1): 1002, 1003, 1007 or 1009.
        code: u16,
        /// The close reason sent.
        reason: &'static str,
    },
    /// This side's game code found a packet's contents invalid (a NaN position, say).
    InvalidInput(Cow<'static, str>),
    /// This side's game code closed the connection.
    ClosedByApp(Cow<'static, str>),
    /// An operator closed it (the server's admin endpoint: `POST /api/players/{id}/kick`).
    /// What was sent to it before is still written, as for [`ClosedByApp`](Self::ClosedByApp).
    KickedByOperator,
    /// The application is shutting down.
    Shutdown,
    /// A bug: the session's task panicked. The server and other sessions carry on.
    InternalError(String),
}

/// The kind of a [`DisconnectReason`], without its details: what statistics count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum DisconnectKind {
    ClosedByPeer,
    Io,
    MalformedFrame,
    MalformedPacket,
    UnexpectedPacket,
    InboundFlood,
    OutboundBacklog,
    WriteStall,
    OutboundBudget,
    IdleTimeout,
    FrameTimeout,
    WebSocketProtocol,
    InvalidInput,
    ClosedByApp,
    KickedByOperator,
    Shutdown,
    InternalError,
}

impl DisconnectKind {
    /// Every kind, in declaration order.
    pub const ALL: [DisconnectKind; 17] = [
        DisconnectKind::ClosedByPeer,
        DisconnectKind::Io,
        DisconnectKind::MalformedFrame,
        DisconnectKind::MalformedPacket,
        DisconnectKind::UnexpectedPacket,
        DisconnectKind::InboundFlood,
        DisconnectKind::OutboundBacklog,
        DisconnectKind::WriteStall,
        DisconnectKind::OutboundBudget,
        DisconnectKind::IdleTimeout,
        DisconnectKind::FrameTimeout,
        DisconnectKind::WebSocketProtocol,
        DisconnectKind::InvalidInput,
        DisconnectKind::ClosedByApp,
        DisconnectKind::KickedByOperator,
        DisconnectKind::Shutdown,
        DisconnectKind::InternalError,
    ];

    /// A stable snake_case label, for logs and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            DisconnectKind::ClosedByPeer => "closed_by_peer",
            DisconnectKind::Io => "io_error",
            DisconnectKind::MalformedFrame => "malformed_frame",
            DisconnectKind::MalformedPacket => "malformed_packet",
            DisconnectKind::UnexpectedPacket => "unexpected_packet",
            DisconnectKind::InboundFlood => "inbound_flood",
            DisconnectKind::OutboundBacklog => "outbound_backlog",
            DisconnectKind::WriteStall => "write_stall",
            DisconnectKind::OutboundBudget => "outbound_budget",
            DisconnectKind::IdleTimeout => "idle_timeout",
            DisconnectKind::FrameTimeout => "frame_timeout",
            DisconnectKind::WebSocketProtocol => "websocket_protocol",
            DisconnectKind::InvalidInput => "invalid_input",
            DisconnectKind::ClosedByApp => "closed_by_app",
            DisconnectKind::KickedByOperator => "kicked_by_operator",
            DisconnectKind::Shutdown => "shutdown",
            DisconnectKind::InternalError => "internal_error",
        }
    }
}

impl DisconnectReason {
    /// The kind, for counting.
    pub fn kind(&self) -> DisconnectKind {
        match self {
            DisconnectReason::ClosedByPeer => DisconnectKind::ClosedByPeer,
            DisconnectReason::Io(_) => DisconnectKind::Io,
            DisconnectReason::MalformedFrame(_) => DisconnectKind::MalformedFrame,
            DisconnectReason::MalformedPacket(_) => DisconnectKind::MalformedPacket,
            DisconnectReason::UnexpectedPacket { .. } => DisconnectKind::UnexpectedPacket,
            DisconnectReason::InboundFlood { .. } => DisconnectKind::InboundFlood,
            DisconnectReason::OutboundBacklog { .. } => DisconnectKind::OutboundBacklog,
            DisconnectReason::WriteStall(_) => DisconnectKind::WriteStall,
            DisconnectReason::OutboundBudget { .. } => DisconnectKind::OutboundBudget,
            DisconnectReason::IdleTimeout(_) => DisconnectKind::IdleTimeout,
            DisconnectReason::FrameTimeout(_) => DisconnectKind::FrameTimeout,
            DisconnectReason::WebSocketProtocol { .. } => DisconnectKind::WebSocketProtocol,
            DisconnectReason::InvalidInput(_) => DisconnectKind::InvalidInput,
            DisconnectReason::ClosedByApp(_) => DisconnectKind::ClosedByApp,
            DisconnectReason::KickedByOperator => DisconnectKind::KickedByOperator,
            DisconnectReason::Shutdown => DisconnectKind::Shutdown,
            DisconnectReason::InternalError(_) => DisconnectKind::InternalError,
        }
    }

    /// Whether what is already queued for the peer is still written before the socket closes.
    /// Not when the peer is the problem for writing (it does not read) or the socket is broken.
    pub(crate) fn flushes_before_close(&self) -> bool {
        !matches!(
            self,
            DisconnectReason::Io(_)
                | DisconnectReason::OutboundBacklog { .. }
                | DisconnectReason::WriteStall(_)
                | DisconnectReason::OutboundBudget { .. }
                | DisconnectReason::InternalError(_)
        )
    }

    /// Whether the connection is reset rather than closed gracefully: a peer that does not
    /// read would otherwise keep its unsent bytes in the kernel while the close waits on it.
    pub(crate) fn resets_connection(&self) -> bool {
        matches!(
            self,
            DisconnectReason::OutboundBacklog { .. }
                | DisconnectReason::WriteStall(_)
                | DisconnectReason::OutboundBudget { .. }
        )
    }

    /// Whether the peer misbehaved: summarised in the log (see `FaultLog`), never a line each.
    pub(crate) fn is_peer_fault(&self) -> bool {
        matches!(
            self,
            DisconnectReason::MalformedFrame(_)
                | DisconnectReason::MalformedPacket(_)
                | DisconnectReason::UnexpectedPacket { .. }
                | DisconnectReason::InboundFlood { .. }
                | DisconnectReason::OutboundBacklog { .. }
                | DisconnectReason::WriteStall(_)
                | DisconnectReason::OutboundBudget { .. }
                | DisconnectReason::FrameTimeout(_)
                | DisconnectReason::WebSocketProtocol { .. }
                | DisconnectReason::InvalidInput(_)
        )
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::ClosedByPeer => f.write_str("closed by the peer"),
            DisconnectReason::Io(kind) => write!(f, "socket error: {kind}"),
            DisconnectReason::MalformedFrame(e) => write!(f, "malformed frame: {e}"),
            DisconnectReason::MalformedPacket(e) => write!(f, "malformed packet: {e}"),
            DisconnectReason::UnexpectedPacket { id, name } => {
                write!(f, "unexpected packet: {name} (id {id}) is not accepted from this side")
            }
            DisconnectReason::InboundFlood { per_second } => {
                write!(f, "inbound flood: more than {per_second} packets/s")
            }
            DisconnectReason::OutboundBacklog { queued, limit } => {
                write!(
                    f,
                    "outbound backlog: {queued} bytes waiting, above the {limit}-byte cap for too long (the peer reads too slowly)"
                )
            }
            DisconnectReason::WriteStall(t) => {
                write!(f, "write stall: bytes waited {t:?} with none taken (the peer is not reading)")
            }
            DisconnectReason::OutboundBudget { queued, budget } => write!(
                f,
                "outbound budget: {queued} bytes waiting, among the largest backlogs when all of them together passed the {budget}-byte budget"
            ),
            DisconnectReason::IdleTimeout(t) => write!(f, "idle timeout: nothing received for {t:?}"),
            DisconnectReason::FrameTimeout(t) => write!(f, "frame timeout: a packet begun and not finished in {t:?}"),
            DisconnectReason::WebSocketProtocol { code, reason } => write!(f, "websocket protocol ({code}): {reason}"),
            DisconnectReason::InvalidInput(why) => write!(f, "invalid input: {why}"),
            DisconnectReason::ClosedByApp(why) => write!(f, "closed: {why}"),
            DisconnectReason::KickedByOperator => f.write_str("kicked by an operator"),
            DisconnectReason::Shutdown => f.write_str("shutting down"),
            DisconnectReason::InternalError(e) => write!(f, "internal error: {e}"),
        }
    }
}
