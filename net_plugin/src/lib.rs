//! The networking plugin: it owns every socket, so game code never does.
//!
//! Sockets run on a tokio runtime on threads of their own. Each connection's task reads, frames
//! and decodes packets (with `shared`) off the ECS thread and passes them, one batch per read, over
//! a bounded channel; a `PreUpdate` system turns them into typed messages, one message type per
//! packet. Game systems send with [`Outbox`]; once per frame, after every game system, each
//! connection's packets are handed over as one buffer, and the runtime's writer task writes every
//! connection's buffer with one `write` each. A connection whose socket is full (a client that
//! reads slowly) has the rest written by its own task as the socket drains, up to a cap.
//!
//! ```text
//! socket → session task (read, frame, decode) → channel → PreUpdate: Received<P> messages
//!        → game systems (Outbox::send) → Last: one flush per connection
//!        → writer task (one write per connection) → socket
//! ```
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
//!         let hello = S_Chat { player_id: 0, chat: format!("welcome, {}", c.peer) };
//!         outbox.send(c.entity, &hello).unwrap();
//!     }
//! }
//!
//! fn relay_chat(mut chats: MessageReader<Received<C_Chat>>, mut outbox: Outbox) {
//!     for chat in chats.read() {
//!         outbox.send_all(&S_Chat { player_id: 0, chat: chat.packet.chat.clone() }).unwrap();
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
//! A client is the same with [`ClientPlugin`] and [`Connector::connect`].
//!
//! # Connections are entities
//!
//! [`Connected`] comes with a new entity holding a [`Connection`]; game code adds its own
//! components to it. Exactly one [`Disconnected`] follows, with its [`DisconnectReason`], after
//! every packet the connection delivered; the entity is despawned at the end of that frame.
//!
//! # Limits
//!
//! Every queue is bounded ([`NetConfig`] documents each bound and what happens when it is
//! reached): a malformed frame or packet, a packet of the wrong direction, a flood beyond the
//! inbound rate, a backlog beyond the outbound cap (a client that stops reading), an idle
//! timeout: each closes that connection alone, with its own reason and a log line. A panic in a
//! session's task ends that session ([`DisconnectReason::InternalError`]) and nothing else.
//!
//! # Shutdown
//!
//! On [`AppExit`](bevy_app::AppExit) (or when the app is dropped), the plugin stops accepting,
//! writes what is queued, closes every socket and joins its threads within
//! [`NetConfig::shutdown_timeout`].

#![forbid(unsafe_code)]

mod client;
mod config;
mod connection;
mod events;
mod link;
mod outbox;
mod plugin;
mod rate_limit;
mod reason;
mod runtime;
mod server;
mod session;
mod stats;
pub mod testing;
mod throttle;

pub use client::{ClientPlugin, Connector};
pub use config::{Keepalive, NetConfig, RateLimit, default_io_threads, off};
pub use connection::{ConnectFailed, Connected, Connecting, Connection, Disconnected, Received, SessionId};
pub use outbox::{OutboundBuffer, Outbox, PacketBatch, SendError};
pub use plugin::NetSystems;
pub use reason::{DisconnectKind, DisconnectReason};
pub use server::{BindError, ServerAddr, ServerPlugin};
pub use stats::NetStats;
