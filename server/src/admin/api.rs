//! How the admin endpoint reads the game: a bounded channel of questions ([`Ask`]) from the HTTP
//! side, answered by one ECS system at the end of the next frame ([`answer`]).
//!
//! The HTTP handlers never touch the world and the game never waits for HTTP: a handler puts a
//! question on the channel with a one-shot reply slot and awaits the reply; the system, in
//! `Last` before the network's flush, answers every question waiting, from the world as the
//! frame left it. The channel holds [`ASK_QUEUE`] questions; when it is full, or the loop does
//! not answer within [`ANSWER_TIMEOUT`] (stopped, or stuck), the handler answers 503 at once
//! rather than queue more. A kick closes the player's connection through the network's normal
//! close path ([`Outbox::close`]) with [`DisconnectReason::KickedByOperator`], so game code sees
//! its `Disconnected` like any other.
//!
//! The answers are plain data; the HTTP side serialises them, off the game's thread.

use std::time::{Duration, SystemTime};

use bevy_ecs::prelude::*;
use bevy_ecs::system::SystemParam;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use net_plugin::{Connection, DisconnectReason, Outbox};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::interest::{Interest, View};
use crate::room::{InRoom, Player, Position, Room, RoomCapacity};
use crate::stats::{StatsSnapshot, StatsSource, TICK_BUCKETS_SECONDS};

/// Questions that may wait for the game loop at once; beyond, a request is answered 503 (busy)
/// at once. A few scrapes and consoles ask a handful a second; a flood of requests cannot grow
/// a queue the game drains.
pub const ASK_QUEUE: usize = 64;

/// How long a request waits for the game loop's answer before it is answered 503. A frame
/// takes milliseconds; two seconds without one means the loop is stopped or stuck (and
/// `/healthz` says so).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// The most players of one room the console's feed carries in one update (the map and the
/// table show these, and say how many more there are): what a browser draws five times a second
/// without trouble, whatever the room's size. `/api/rooms/{id}` lists them all.
pub const CONSOLE_MAX_PLAYERS: usize = 2_000;

/// Where the game puts its answer to one question.
pub(crate) type Reply<T> = oneshot::Sender<T>;

/// A question from the HTTP side.
pub(crate) enum Ask {
    /// Everything `/metrics` shows.
    Metrics(Reply<MetricsData>),
    /// The rooms and their player counts.
    Rooms(Reply<RoomList>),
    /// One room's players (`None`: no such room).
    Room(u32, Reply<Option<RoomDetail>>),
    /// Close a player's connection (`None`: no such player).
    Kick(i32, Reply<Option<Kicked>>),
    /// One update of the console's live feed, with this room's players if one is chosen.
    Console(Option<u32>, Reply<ConsoleUpdate>),
}

/// The game's end of the channel.
#[derive(Resource)]
pub(crate) struct Asks(pub Receiver<Ask>);

/// The HTTP side's end of the channel. Cloned into every handler.
#[derive(Clone)]
pub(crate) struct Asker(pub Sender<Ask>);

/// Why a question got no answer: each is a 503 with its own message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AskError {
    /// [`ASK_QUEUE`] questions already wait.
    Busy,
    /// No answer within [`ANSWER_TIMEOUT`].
    NoAnswer,
    /// The game loop is gone (the server is stopping).
    Gone,
}

impl AskError {
    pub fn message(self) -> String {
        match self {
            AskError::Busy => format!("busy: {ASK_QUEUE} requests already wait for the game loop; try again"),
            AskError::NoAnswer => format!("the game loop did not answer within {ANSWER_TIMEOUT:?}"),
            AskError::Gone => "the server is stopping".into(),
        }
    }
}

/// A channel bounded at [`ASK_QUEUE`].
pub(crate) fn channel() -> (Asker, Asks) {
    let (tx, rx) = crossbeam_channel::bounded(ASK_QUEUE);
    (Asker(tx), Asks(rx))
}

impl Asker {
    /// Puts a question (made with its reply slot) to the game loop and waits for the answer.
    pub async fn ask<T>(&self, question: impl FnOnce(Reply<T>) -> Ask) -> Result<T, AskError> {
        let (reply, answer) = oneshot::channel();
        self.0.try_send(question(reply)).map_err(|e| match e {
            TrySendError::Full(_) => AskError::Busy,
            TrySendError::Disconnected(_) => AskError::Gone,
        })?;
        match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(AskError::Gone),
            Err(_) => Err(AskError::NoAnswer),
        }
    }
}

/// `/metrics`: the statistics snapshot, and what only a scrape reads (it takes every
/// connection's lock, so it is not part of every snapshot).
#[derive(Debug, Clone)]
pub(crate) struct MetricsData {
    pub stats: StatsSnapshot,
    /// Bytes flushed and not yet written, over every connection.
    pub outbound_backlog_bytes: u64,
    /// Connections at once beyond which newcomers are refused.
    pub max_connections: Option<usize>,
}

/// `GET /api/rooms`.
#[derive(Debug, Clone, Serialize)]
pub struct RoomList {
    /// Players in every room.
    pub players: usize,
    /// Players per room (`null`: one room for everyone).
    pub capacity: Option<usize>,
    /// The open rooms, by id.
    pub rooms: Vec<RoomSummary>,
}

/// One room in a list.
#[derive(Debug, Clone, Serialize)]
pub struct RoomSummary {
    /// The room's id.
    pub id: u32,
    /// Players in it.
    pub players: usize,
}

/// `GET /api/rooms/{id}`.
#[derive(Debug, Clone, Serialize)]
pub struct RoomDetail {
    /// The room's id.
    pub id: u32,
    /// The view radius when interest management is on (`null`: everyone sees everyone).
    pub view_radius: Option<f32>,
    /// Players in the room; the list may hold fewer (the console's feed is capped).
    pub player_count: usize,
    /// Its players, in the order they entered.
    pub players: Vec<PlayerInfo>,
}

/// One player.
#[derive(Debug, Clone, Serialize)]
pub struct PlayerInfo {
    /// The id clients know it by.
    pub id: i32,
    /// Its position's x (to the right on the console's map).
    pub x: f32,
    /// Its height.
    pub y: f32,
    /// Its position's z (up on the console's map).
    pub z: f32,
    /// Its client's address (`null` for a character game code added without a connection).
    pub peer: Option<String>,
    /// Packets it sent that reached the game.
    pub packets_in: u64,
    /// Packets sent to it.
    pub packets_out: u64,
    /// Bytes waiting to be written to it.
    pub backlog_bytes: usize,
    /// When its connection opened, RFC 3339 (UTC).
    pub connected_since: Option<String>,
    /// Players in its view, when interest management is on.
    pub in_view: Option<usize>,
}

/// `POST /api/players/{id}/kick`.
#[derive(Debug, Clone, Serialize)]
pub struct Kicked {
    /// The player kicked.
    pub id: i32,
    /// Its room.
    pub room: Option<u32>,
    /// Its client's address.
    pub peer: Option<String>,
}

/// One update of the console's live feed: the counters the charts need (the browser turns
/// totals into rates, and bucket counts into percentiles, between updates) and the chosen room.
#[derive(Debug, Clone, Serialize)]
pub struct ConsoleUpdate {
    /// Seconds since the server started.
    pub uptime_s: f64,
    /// Players in every room.
    pub players: usize,
    /// The open rooms.
    pub rooms: Vec<RoomSummary>,
    /// Packets delivered to the game, since start.
    pub packets_in: u64,
    /// Packets sent, since start.
    pub packets_out: u64,
    /// Bytes read, since start.
    pub bytes_in: u64,
    /// Bytes written, since start.
    pub bytes_out: u64,
    /// The tick histogram's bucket bounds, in seconds ([`TICK_BUCKETS_SECONDS`]).
    pub tick_bounds: &'static [f64],
    /// Frames that ran a tick per bucket, since start (one more entry than `tick_bounds`).
    pub tick_buckets: Vec<u64>,
    /// The chosen room, if it exists.
    pub room: Option<RoomDetail>,
}

/// What the answers read of a player.
type PlayerData =
    (Entity, &'static Player, &'static Position, &'static InRoom, Option<&'static Connection>, Option<&'static View>);

/// What the answers read from the world.
#[derive(SystemParam)]
pub(crate) struct GameView<'w, 's> {
    players: Query<'w, 's, PlayerData>,
    rooms: Query<'w, 's, &'static Room>,
    connections: Query<'w, 's, &'static Connection>,
    capacity: Option<Res<'w, RoomCapacity>>,
    interest: Option<Res<'w, Interest>>,
    max_connections: Option<Res<'w, MaxConnections>>,
}

/// The connection limit, for `/metrics` (inserted by the admin plugin from the settings).
#[derive(Resource, Debug, Clone, Copy)]
pub(crate) struct MaxConnections(pub usize);

impl GameView<'_, '_> {
    fn room_list(&self) -> Vec<RoomSummary> {
        let mut rooms: Vec<RoomSummary> = self
            .rooms
            .iter()
            .filter(|r| !r.members().is_empty())
            .map(|r| RoomSummary { id: r.id, players: r.members().len() })
            .collect();
        rooms.sort_unstable_by_key(|r| r.id);
        rooms
    }

    fn rooms(&self) -> RoomList {
        let rooms = self.room_list();
        RoomList {
            players: rooms.iter().map(|r| r.players).sum(),
            capacity: self.capacity.as_ref().and_then(|c| c.0),
            rooms,
        }
    }

    /// Room `id` with at most `limit` of its players.
    fn room(&self, id: u32, limit: usize) -> Option<RoomDetail> {
        let room = self.rooms.iter().find(|r| r.id == id && !r.members().is_empty())?;
        let now = (SystemTime::now(), std::time::Instant::now());
        let players = room
            .members()
            .iter()
            .filter_map(|member| self.players.get(*member).ok())
            .take(limit)
            .map(|(_, player, at, _, connection, view)| PlayerInfo {
                id: player.id,
                x: at.x,
                y: at.y,
                z: at.z,
                peer: connection.map(|c| c.peer().to_string()),
                packets_in: connection.map_or(0, Connection::packets_in),
                packets_out: connection.map_or(0, Connection::packets_out),
                backlog_bytes: connection.map_or(0, Connection::backlog_bytes),
                connected_since: connection.map(|c| {
                    let wall = now.0 - now.1.saturating_duration_since(c.connected_at());
                    humantime::format_rfc3339_millis(wall).to_string()
                }),
                in_view: view.map(View::len),
            })
            .collect();
        Some(RoomDetail {
            id,
            view_radius: self.interest.as_ref().map(|i| i.rule.radius),
            player_count: room.members().len(),
            players,
        })
    }

    /// The entity of player `id` (one with a connection: only those can be kicked), and what the
    /// kick answers.
    fn find_player(&self, id: i32) -> Option<(Entity, Kicked)> {
        let (entity, _, _, in_room, connection, _) =
            self.players.iter().find(|(_, p, _, _, connection, _)| p.id == id && connection.is_some())?;
        let room = self.rooms.get(in_room.0).ok().map(|r| r.id);
        Some((entity, Kicked { id, room, peer: connection.map(|c| c.peer().to_string()) }))
    }

    fn backlog_bytes(&self) -> u64 {
        self.connections.iter().map(|c| c.backlog_bytes() as u64).sum()
    }
}

/// Whether a question waits: the answering system runs only then, so an idle admin endpoint
/// costs the frame one channel check.
pub(crate) fn asks_waiting(asks: Res<Asks>) -> bool {
    !asks.0.is_empty()
}

/// Answers every question waiting (in `Last`, before the network's flush, so a kick's close goes
/// out this frame). A reply whose asker gave up is dropped.
pub(crate) fn answer(asks: Res<Asks>, mut world: ParamSet<(StatsSource, GameView, Outbox)>) {
    let waiting = asks.0.len();
    for ask in asks.0.try_iter().take(waiting) {
        match ask {
            Ask::Metrics(reply) => {
                let stats = world.p0().snapshot();
                let game = world.p1();
                let max_connections = game.max_connections.as_ref().map(|m| m.0);
                let _ =
                    reply.send(MetricsData { stats, outbound_backlog_bytes: game.backlog_bytes(), max_connections });
            }
            Ask::Rooms(reply) => {
                let _ = reply.send(world.p1().rooms());
            }
            Ask::Room(id, reply) => {
                let _ = reply.send(world.p1().room(id, usize::MAX));
            }
            Ask::Kick(id, reply) => {
                let found = world.p1().find_player(id);
                if let Some((entity, kicked)) = found {
                    world.p2().close(entity, DisconnectReason::KickedByOperator);
                    tracing::info!(
                        player = id,
                        peer = kicked.peer.as_deref().unwrap_or("-"),
                        "player kicked by an operator"
                    );
                    let _ = reply.send(Some(kicked));
                } else {
                    let _ = reply.send(None);
                }
            }
            Ask::Console(room, reply) => {
                let stats = world.p0().snapshot();
                let game = world.p1();
                let net = &stats.net;
                let _ = reply.send(ConsoleUpdate {
                    uptime_s: stats.uptime.as_secs_f64(),
                    players: stats.players,
                    rooms: game.room_list(),
                    packets_in: net.packets_in,
                    packets_out: net.packets_out,
                    bytes_in: net.bytes_in,
                    bytes_out: net.bytes_out,
                    tick_bounds: &TICK_BUCKETS_SECONDS,
                    tick_buckets: stats.tick.buckets,
                    room: room.and_then(|id| game.room(id, CONSOLE_MAX_PLAYERS)),
                });
            }
        }
    }
}
