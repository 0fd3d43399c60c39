//! Transports: how a session's bytes reach its peer. A transport accepts a connection, reads
//! bytes, writes bytes and closes; everything else a session is (framing, the packet rate, the
//! frame and idle timers, the outbound queue with its stall and backlog cuts, the shared
//! connection limits) is the session core's, the same for every transport.
//!
//! - TCP: the course's byte stream as it is (the listener in `server.rs`, the socket reads in
//!   `session.rs`, the writes in `outbound.rs`).
//! - [`ws`]: WebSocket (RFC 6455) over the same TCP socket, for browsers and Unity WebGL: after an
//!   HTTP upgrade, each binary message carries whole course frames; the transport only adds and
//!   strips WebSocket frame headers around the core's bytes, so the core, the writer and the
//!   ECS side are the ones TCP uses.
//! - [`tls`]: TLS under the WebSocket transport (`wss://`), as a codec at the two ends of the
//!   session's queue, so the socket stays the session core's; [`tls_client`] is its client
//!   side (the bots' `wss://`).
//!
//! Game code sees one [`Connection`](crate::Connection) whatever the transport; only
//! [`Connection::transport`](crate::Connection::transport) tells them apart.

pub(crate) mod tls;
pub(crate) mod tls_client;
pub(crate) mod ws;

pub use tls_client::{ClientTls, ConnectOptions};
pub use ws::WebFile;

/// How a connection reaches its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Transport {
    /// The course's TCP byte stream.
    #[default]
    Tcp,
    /// WebSocket binary messages carrying whole course frames (browsers, Unity WebGL).
    WebSocket,
}

impl Transport {
    /// A stable lowercase label, for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::WebSocket => "websocket",
        }
    }
}
