//! How the admin endpoint acts on the game: a bounded queue of kicks from the HTTP side, taken
//! by one ECS system once per frame ([`answer`]), and the plain data the API answers with.
//!
//! What the API and the console *read* does not come through here: the game publishes it at a
//! bounded rate (module [`snapshot`](super::snapshot)), so no number of reads costs the game
//! more than one snapshot per period. A kick must act on the world, so it is a question: the
//! handler puts it on the queue with a one-shot reply slot and awaits the reply; the system, in
//! `Last` before the network's flush, takes at most [`KICKS_PER_FRAME`] of them. The queue holds
//! [`ASK_QUEUE`] kicks; when it is full, or the loop does not answer within [`ANSWER_TIMEOUT`]
//! (stopped, or stuck), the handler answers 503 at once rather than queue more. A kick closes
//! the player's connection through the network's normal close path ([`Outbox::close`]) with
//! [`DisconnectReason::KickedByOperator`], so game code sees its `Disconnected` like any other.
//!
//! The answers are plain data; the HTTP side serialises them, off the game's thread.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use bevy_ecs::prelude::*;
use bevy_ecs::system::SystemParam;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use net_plugin::{Connection, DisconnectReason, Outbox};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::interest::{Interest, View};
use crate::room::{InRoom, Player, Position, Room, RoomCapacity};
use crate::stats::StatsSnapshot;

/// Kicks that may wait for the game loop at once; beyond, a kick is answered 503 (busy) at once.
/// An operator kicks a player now and then; a flood of kicks cannot grow a queue the game
/// drains.
pub const ASK_QUEUE: usize = 64;

/// Kicks the game takes per frame, at most (each looks its player up among all players): the
/// rest wait for the next frames, so a full queue costs a frame a bounded amount.
pub const KICKS_PER_FRAME: usize = 8;

/// How long a request waits for the game loop (a kick's answer, or a fresh snapshot) before it
/// is answered 503. A frame takes milliseconds; two seconds without one means the loop is
/// stopped or stuck (and `/healthz` says so).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// The most players of one room the console's feed carries in one update (the map and the
/// table show these, and say how many more there are): what a browser draws five times a second
/// without trouble, whatever the room's size. `/api/rooms/{id}` lists them all.
pub const CONSOLE_MAX_PLAYERS: usize = 2_000;

/// Where the game puts its answer to one question.
pub(crate) type Reply<T> = oneshot::Sender<T>;

/// A question from the HTTP side that only the game can answer: close a player's connection
/// (`None`: no such player).
pub(crate) struct Ask(pub i32, pub Reply<Option<Kicked>>);

/// The game's end of the channel.
#[derive(Resource)]
pub(crate) struct Asks(pub Receiver<Ask>);

/// The HTTP side's end of the channel. Cloned into every handler.
#[derive(Clone)]
pub(crate) struct Asker(pub Sender<Ask>);

/// Why a request got no answer from the game: each is a 503 with its own message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AskError {
    /// [`ASK_QUEUE`] kicks already wait.
    Busy,
    /// No answer (or no fresh snapshot) within [`ANSWER_TIMEOUT`].
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
    /// Asks the game loop to kick player `id` and waits for the answer.
    pub async fn kick(&self, id: i32) -> Result<Option<Kicked>, AskError> {
        let (reply, answer) = oneshot::channel();
        self.0.try_send(Ask(id, reply)).map_err(|e| match e {
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
    /// What the admin snapshots cost the game so far: how many were built, and their time.
    pub admin_snapshots: u64,
    /// Seconds the game spent building them.
    pub admin_snapshot_seconds: f64,
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
#[derive(Debug, Clone, Copy, Serialize)]
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
    /// The tick histogram's bucket bounds, in seconds
    /// ([`TICK_BUCKETS_SECONDS`](crate::stats::TICK_BUCKETS_SECONDS)).
    pub tick_bounds: &'static [f64],
    /// Frames that ran a tick per bucket, since start (one more entry than `tick_bounds`).
    pub tick_buckets: Vec<u64>,
    /// The chosen room, if it exists.
    pub room: Option<RoomDetail>,
}

/// One player as the game copies it into a snapshot: plain numbers, no text (the HTTP side
/// writes the addresses and times out, off the game's thread).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlayerRow {
    pub id: i32,
    pub at: [f32; 3],
    pub peer: Option<SocketAddr>,
    pub packets_in: u64,
    pub packets_out: u64,
    pub backlog_bytes: usize,
    pub connected_at: Option<Instant>,
    pub in_view: Option<usize>,
}

impl PlayerRow {
    /// The player as the API shows it; `clock` is the wall time and the monotonic time of one
    /// moment, to turn `connected_at` into a date.
    pub fn info(&self, clock: (SystemTime, Instant)) -> PlayerInfo {
        PlayerInfo {
            id: self.id,
            x: self.at[0],
            y: self.at[1],
            z: self.at[2],
            peer: self.peer.map(|p| p.to_string()),
            packets_in: self.packets_in,
            packets_out: self.packets_out,
            backlog_bytes: self.backlog_bytes,
            connected_since: self.connected_at.map(|at| {
                let wall = clock.0 - clock.1.saturating_duration_since(at);
                humantime::format_rfc3339_millis(wall).to_string()
            }),
            in_view: self.in_view,
        }
    }
}

/// One room's players, as copied into a snapshot.
#[derive(Debug, Clone)]
pub(crate) struct RoomRows {
    pub id: u32,
    pub view_radius: Option<f32>,
    pub rows: Vec<PlayerRow>,
}

impl RoomRows {
    /// The room as the API shows it, with at most `limit` of its players.
    pub fn detail(&self, clock: (SystemTime, Instant), limit: usize) -> RoomDetail {
        RoomDetail {
            id: self.id,
            view_radius: self.view_radius,
            player_count: self.rows.len(),
            players: self.rows.iter().take(limit).map(|r| r.info(clock)).collect(),
        }
    }
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
    pub fn room_list(&self) -> Vec<RoomSummary> {
        let mut rooms: Vec<RoomSummary> = self
            .rooms
            .iter()
            .filter(|r| !r.members().is_empty())
            .map(|r| RoomSummary { id: r.id, players: r.members().len() })
            .collect();
        rooms.sort_unstable_by_key(|r| r.id);
        rooms
    }

    pub fn capacity(&self) -> Option<usize> {
        self.capacity.as_ref().and_then(|c| c.0)
    }

    pub fn max_connections(&self) -> Option<usize> {
        self.max_connections.as_ref().map(|m| m.0)
    }

    /// Room `id`'s players, copied (`None`: no such open room).
    pub fn room(&self, id: u32) -> Option<RoomRows> {
        let room = self.rooms.iter().find(|r| r.id == id && !r.members().is_empty())?;
        let rows = room
            .members()
            .iter()
            .filter_map(|member| self.players.get(*member).ok())
            .map(|(_, player, at, _, connection, view)| PlayerRow {
                id: player.id,
                at: [at.x, at.y, at.z],
                peer: connection.map(Connection::peer),
                packets_in: connection.map_or(0, Connection::packets_in),
                packets_out: connection.map_or(0, Connection::packets_out),
                backlog_bytes: connection.map_or(0, Connection::backlog_bytes),
                connected_at: connection.map(Connection::connected_at),
                in_view: view.map(View::len),
            })
            .collect();
        Some(RoomRows { id, view_radius: self.interest.as_ref().map(|i| i.rule.radius), rows })
    }

    /// The entity of player `id` (one with a connection: only those can be kicked), and what the
    /// kick answers.
    fn find_player(&self, id: i32) -> Option<(Entity, Kicked)> {
        let (entity, _, _, in_room, connection, _) =
            self.players.iter().find(|(_, p, _, _, connection, _)| p.id == id && connection.is_some())?;
        let room = self.rooms.get(in_room.0).ok().map(|r| r.id);
        Some((entity, Kicked { id, room, peer: connection.map(|c| c.peer().to_string()) }))
    }

    pub fn backlog_bytes(&self) -> u64 {
        self.connections.iter().map(|c| c.backlog_bytes() as u64).sum()
    }
}

/// Whether a kick waits: the kicking system runs only then, so an idle admin endpoint costs the
/// frame one channel check.
pub(crate) fn asks_waiting(asks: Res<Asks>) -> bool {
    !asks.0.is_empty()
}

/// Takes up to [`KICKS_PER_FRAME`] kicks (in `Last`, before the network's flush, so a kick's
/// close goes out this frame). A reply whose asker gave up is dropped.
pub(crate) fn answer(asks: Res<Asks>, mut world: ParamSet<(GameView, Outbox)>) {
    for Ask(id, reply) in asks.0.try_iter().take(KICKS_PER_FRAME) {
        let found = world.p0().find_player(id);
        if let Some((entity, kicked)) = found {
            world.p1().close(entity, DisconnectReason::KickedByOperator);
            tracing::info!(player = id, peer = kicked.peer.as_deref().unwrap_or("-"), "player kicked by an operator");
            let _ = reply.send(Some(kicked));
        } else {
            let _ = reply.send(None);
        }
    }
}
