//! The networking plugin: it owns every socket, so game code never does.
//!
//! Sockets run on a tokio runtime on threads of its own. Follow one packet top-down through one
//! module per direction:
//!
//! - inbound: a connection's task reads its socket; the session's rules (a
//!   sans-IO state machine in `core.rs`) split the bytes into packets; the packets of one read
//!   cross to the ECS as one batch over a bounded, fair queue; a `PreUpdate` system writes them
//!   as typed messages, one message type per packet ([`Received<P>`] on a server,
//!   [`ClientReceived<P>`] on a client).
//! - outbound: game systems send with [`Outbox`] into each connection's frame buffer; once per
//!   frame, after every game system, the buffers move to their sessions' queues, and one writer
//!   task writes each with one (vectored) write.
//! - the session (`session.rs`) owns one socket's life: open, read, close exactly once.
//!   What its parties (the ECS side, its task, the writer) share of it, its id and its outbound
//!   state (whose transitions are `outgoing.rs`), is `handle.rs`, at the bottom. Above it the
//!   writer (`writer.rs`), then the ECS side (`connection`, `inbound`, `outbound`), then the
//!   session's task, the runtime and the plugins: the modules use each other without circles.
//!
//! ```text
//! socket → session task (read) → rules (frames, limits, decode) → inbound queue
//!        → PreUpdate: Received<P> messages → game systems (Outbox::send)
//!        → Last: one flush per connection → writer task (one write per connection) → socket
//! ```
//!
//! A socket is read only by its session's task and written only by the writer task; the ECS
//! never touches one.
//!
//! A server can also accept WebSocket clients (browsers, Unity WebGL) on a second port
//! ([`WebSocketConfig::bind`]): the transport (`transport/ws.rs`) only adds and strips WebSocket
//! frame headers around the same bytes, so those sessions run on the same core, writer, limits
//! and ECS messages; [`Connection::transport`] tells them apart.
//!
//! # Quick start: a server
//!
//! ```no_run
//! use bevy_app::{App, ScheduleRunnerPlugin, Update};
//! use bevy_ecs::prelude::*;
//! use net_plugin::{Connected, NetConfig, Outbox, Received, ServerPlugin};
//! use shared::{C_Chat, S_Chat};
//!
//! fn greet(mut connected: MessageReader<Connected>, mut outbox: Outbox) {
//!     for c in connected.read() {
//!         outbox.send(c.entity, &S_Chat { player_id: 0, chat: format!("welcome, {}", c.peer) });
//!     }
//! }
//!
//! fn relay_chat(mut chats: MessageReader<Received<C_Chat>>, mut outbox: Outbox) {
//!     for chat in chats.read() {
//!         outbox.send_all(&S_Chat { player_id: 0, chat: chat.packet.chat.clone() });
//!     }
//! }
//!
//! let net = ServerPlugin::bind("127.0.0.1:7777", NetConfig::default()).expect("port free");
//! App::new()
//!     .add_plugins((ScheduleRunnerPlugin::run_loop(std::time::Duration::from_millis(16)), net))
//!     .add_systems(Update, (greet, relay_chat))
//!     .run();
//! ```
//!
//! A client is the same with [`ClientPlugin`], [`Connector::connect`], [`ClientOutbox`] and
//! [`ClientReceived`]. Packets travel one way only, checked at compile time: a server's
//! [`Outbox`] sends `S_` packets and its [`Received`] holds `C_` packets; a client's
//! [`ClientOutbox`] sends `C_` packets and its [`ClientReceived`] holds `S_` packets.
//!
//! # Connections are entities
//!
//! [`Connected`] comes with a new entity holding a [`Connection`]; game code adds its own
//! components to it. Exactly one [`Disconnected`] follows, with its [`DisconnectReason`], after
//! every packet the connection delivered; the entity is despawned at the end of that frame.
//! Despawning it (or removing its `Connection`) closes the connection.
//!
//! # Limits
//!
//! Every queue is bounded ([`NetConfig`] documents each bound and what happens when it is
//! reached): a malformed frame or packet, a packet of the wrong direction, a flood beyond the
//! inbound rate, a packet begun and not finished in time, a backlog beyond the outbound cap (a
//! client that stops reading), an idle timeout: each closes that connection alone, with its own
//! reason. The packets before the fault are still delivered. A panic in a session's task ends
//! that session ([`DisconnectReason::InternalError`]) and nothing else; the writer and the accept
//! loop are restarted after a panic, and one that keeps panicking makes the app exit with an
//! error. Peers' faults are logged at `debug` each and summarised at `warn` every few seconds,
//! so faulty clients cannot flood the log.
//!
//! # Shutdown
//!
//! On [`AppExit`](bevy_app::AppExit), the plugin stops accepting, writes what is queued, closes
//! every socket (within [`NetConfig::shutdown_timeout`]), runs one last pass of `PreUpdate`,
//! `Update` and `PostUpdate` so game code sees every [`Disconnected`], and joins its threads.
//!
//! Before that, a server can stop accepting while its connections go on
//! ([`ListenerControl::stop_accepting`]: the listening socket closes, so newcomers are refused
//! at once): the first step of a graceful drain.

#![forbid(unsafe_code)]

/// The binaries' command-line and logging conventions, shared by `server` and `client_bot` so
/// that a bot binary need not depend on the server (feature `cli`, off by default: a library
/// user does not pay for clap and a log subscriber).
#[cfg(feature = "cli")]
pub mod cli;
mod client;
mod config;
mod connection;
mod core;
mod faults;
mod handle;
mod inbound;
mod outbound;
mod outgoing;
mod plugin;
mod rate_limit;
mod reason;
mod runtime;
mod server;
mod session;
mod stats;
pub mod testing;
mod throttle;
mod transport;
mod writer;

pub use client::{ClientPlugin, Connector};
pub use config::{Keepalive, NetConfig, RateLimit, WebSocketConfig, default_io_threads, off};
pub use connection::{ClientReceived, ConnectFailed, Connected, Connecting, Connection, Disconnected, Received};
#[doc(hidden)]
pub use faults::Faults;
pub use handle::SessionId;
pub use outbound::{ClientOutbox, Outbox, PacketBatch, Sends};
pub use plugin::NetSystems;
pub use reason::{DisconnectKind, DisconnectReason};
#[doc(hidden)]
pub use runtime::NetFaults;
pub use server::{BindError, Ipv6Host, ListenerControl, ServerAddr, ServerPlugin, WebSocketAddr};
pub use shared::EncodeError;
pub use stats::{NetStats, Refusal};
pub use transport::{ClientTls, ConnectOptions, Transport, WebFile};
