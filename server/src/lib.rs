//! The headless game server: the course's room, as ordinary Bevy plugins on a fixed tick.
//!
//! There are no locks, no job queue and no timers here: the network plugin turns packets into
//! messages before the frame's game systems run, moves are applied on the fixed tick, and every
//! packet a frame produces leaves in one write per client after the last game system.
//!
//! | plugin | course | what it does |
//! |---|---|---|
//! | [`RoomPlugin`] | GameRoom.Enter / Leave | players enter a room on connect (`S_PlayerList`, `S_BroadcastEnterGame`) and leave it on `C_LeaveGame`, on disconnect, or when game code removes their [`Player`] or despawns them (`S_BroadcastLeaveGame`, once) |
//! | [`MovementPlugin`] | C_Move handler, JobTimer flush | moves applied at the next tick, each moved player broadcast once per tick to its room |
//! | [`InterestPlugin`] | — | spawn points; with `view_radius` set, each player sees only those near it (enter, leave and moves by view, see [`interest`]) |
//! | [`OverloadPlugin`] | — | with `view_radius` and `view_delay`: when the game loop falls behind, the news about others is thinned (up to `overload_news_max`), echoes never (see [`overload`]) |
//! | [`ChatPlugin`] | chat stage | `C_Chat` → `S_Chat` to the room (with `view_radius` set, to those in view), within a per-player rate and a per-room budget of relayed bytes |
//! | [`PingPlugin`] | — | `C_Ping` → `S_Pong` to the sender: a latency probe |
//! | [`ServerStatsPlugin`] | — | a statistics line every few seconds, a JSON summary at exit |
//! | [`LifecyclePlugin`] | — | the server's [`Phase`] (starting, accepting, draining, shutting down), the drain's deadline and the game loop's heartbeat: the one [`Lifecycle`] that readiness and health checks, the drain and Agones read |
//! | [`DrainPlugin`] | — | a stop ([`StopRequested`], the first SIGTERM) drains: no newcomers, players told and let finish, exit when they left or at `drain_timeout` |
//! | [`AdminPlugin`] | — | optional: the admin HTTP endpoint (metrics, health checks, room API, web console), see [`admin`] |
//! | `agones::AgonesPlugin` (feature `agones`) | — | Ready, health pings from the game loop, the Counter `players`, Shutdown after a drain, the GameServer watched |
//!
//! # Adding your own packet and system
//!
//! The README's walkthrough appends a packet pair to `assets/PDL.xml` and relays it with a
//! system of its own; [`PingPlugin`] is a whole small example. A system reads packets as
//! [`Received`](net_plugin::Received) messages (or connections as
//! [`Connected`](net_plugin::Connected)) and answers through [`Outbox`](net_plugin::Outbox):
//!
//! ```no_run
//! use bevy_app::Update;
//! use bevy_ecs::prelude::*;
//! use net_plugin::{Connected, Outbox, ServerPlugin};
//! use server::ServerConfig;
//! use shared::S_Chat;
//!
//! /// Greets each newcomer; `Update` runs after it entered its room, so after its player list.
//! fn greet(mut connected: MessageReader<Connected>, mut outbox: Outbox) {
//!     for c in connected.read() {
//!         outbox.send(c.entity, &S_Chat { player_id: 0, chat: "welcome".into() });
//!     }
//! }
//!
//! let config = ServerConfig::default();
//! let net = ServerPlugin::bind(&config.bind, config.net.clone()).expect("port free");
//! let mut app = server::app(&config, net, None);
//! app.add_systems(Update, greet);
//! app.run();
//! ```
//!
//! # System sets
//!
//! Order your systems against [`GameSystems`] (game logic) and
//! [`NetSystems`](net_plugin::NetSystems) (network in and out).

#![forbid(unsafe_code)]

pub mod admin;
#[cfg(feature = "agones")]
pub mod agones;
mod chat;
mod components;
mod config;
pub mod drain;
pub mod interest;
pub mod lifecycle;
mod movement;
pub mod overload;
mod ping;
pub mod play;
mod room;
mod shutdown;
mod stats;

use std::path::PathBuf;

use bevy_app::{App, PluginGroup, PluginGroupBuilder, ScheduleRunnerPlugin};
use bevy_ecs::schedule::SystemSet;
use bevy_time::{Fixed, Time, TimePlugin};
use net_plugin::ServerPlugin;

/// The README's Rust blocks, compiled by `cargo test --doc` so they cannot rot. The walkthrough's
/// blocks (`rust,ignore`) need packets that exist only once its step 1 is done:
/// `tests/walkthrough.rs` builds those, in a copy of the repository. `docs/` has no Rust blocks;
/// a file there that gets one is added the same way.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
mod readme {}

pub use admin::AdminPlugin;
pub use chat::{
    ChatAllowance, ChatCounts, ChatDrop, ChatPlugin, ChatSettings, NOTICE_PERIOD, RoomChatBudget, SERVER_PLAYER_ID,
    server_notice,
};
pub use config::{
    ADMIN_TOKEN_ENV, AdminConfig, AgonesConfig, ChatConfig, ConfigError, DEFAULT_CONFIG_PATH, LineRate, MIN_TOKEN_LEN,
    OutOfBounds, RoomConfig, ServerConfig, Spawn, ViewMargin, WorldConfig,
};
pub use drain::{DrainPlugin, StopRequested};
pub use interest::{InterestPlugin, View};
pub use lifecycle::{DrainWindow, Lifecycle, LifecyclePlugin, Phase};
pub use movement::{MoveBatches, MovementPlugin, WorldBounds};
pub use overload::{NewsPace, OverloadCounts, OverloadPlugin};
pub use ping::PingPlugin;
pub use room::{ConnectedPlayers, InRoom, Player, Position, Room, RoomCapacity, RoomPlugin};
pub use shutdown::ShutdownSignalPlugin;
pub use stats::{
    ServerStats, ServerStatsPlugin, StatsSnapshot, StatsSource, StatsSystems, TICK_BUCKETS_SECONDS, TickSummary,
};

/// Where the game systems run.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum GameSystems {
    /// `PreUpdate`, after [`NetSystems::Receive`](net_plugin::NetSystems::Receive): new
    /// connections enter rooms; `C_LeaveGame` and disconnects leave them. Everything later in
    /// the frame sees the room as it now is.
    Membership,
    /// `FixedUpdate`: moves received since the last tick are applied.
    ApplyMoves,
    /// `FixedUpdate`, after [`GameSystems::ApplyMoves`]: every player who moved this tick is
    /// broadcast to its room (with a view radius: views are brought up to date, and moves go to
    /// the players who see the mover).
    BroadcastMoves,
    /// `Update`: chat lines are relayed to rooms.
    Chat,
    /// `Update`: pings are answered (after [`GameSystems::Chat`] when both plugins are in:
    /// a pong follows whatever the lines sent before its ping caused).
    Ping,
}

/// The game: rooms, movement, chat and the latency probe, configured from [`ServerConfig`].
pub struct GamePlugins {
    /// The settings to build from.
    pub config: ServerConfig,
}

impl PluginGroup for GamePlugins {
    fn build(self) -> PluginGroupBuilder {
        let c = self.config;
        let frame = c.frame_period();
        let group = PluginGroupBuilder::start::<Self>()
            .add(RoomPlugin { capacity: (c.room.capacity > 0).then_some(c.room.capacity) })
            .add(MovementPlugin { world: c.world.clone() })
            .add(InterestPlugin { world: c.world.clone() })
            .add(ChatPlugin { config: c.chat })
            .add(PingPlugin);
        // Only news gathered at a pace can be thinned: with a view radius and a view delay.
        let w = &c.world;
        match w.overload_news_max {
            Some(max) if w.view_radius > 0.0 && !w.view_delay.is_zero() => {
                group.add(OverloadPlugin { base: w.view_delay, max, frame })
            }
            _ => group,
        }
    }
}

/// The server app: time (fixed tick at `tick_hz`), a runner that sleeps between frames, the
/// bound network plugin, the game, statistics (written to `stats_json` at exit, if given), the
/// [`Lifecycle`] that health checks read, and the drain a stop goes through (`drain_timeout`; a
/// [`StopRequested`] starts it, as [`ShutdownSignalPlugin`] writes on a signal). The admin
/// endpoint, which binds a port of its own, is added by the caller ([`AdminPlugin::bind`]).
pub fn app(config: &ServerConfig, net: ServerPlugin, stats_json: Option<PathBuf>) -> App {
    let mut app = App::new();
    // With the WebSocket transport on, its port also serves the play page.
    let net = net.serve_files(&play::FILES);
    app.add_plugins((TimePlugin, ScheduleRunnerPlugin::run_loop(config.frame_period()), net))
        .insert_resource(Time::<Fixed>::from_hz(f64::from(config.tick_hz)))
        .add_plugins(GamePlugins { config: config.clone() })
        .add_plugins(ServerStatsPlugin { interval: config.stats_interval, json_path: stats_json })
        .add_plugins(LifecyclePlugin)
        .add_plugins(DrainPlugin { timeout: config.drain_timeout });
    app
}
