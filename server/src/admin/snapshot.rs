//! What the admin endpoint reads of the game, published by the game at a bounded rate: the
//! numbers `/metrics` shows, the room list, the rooms someone watches, in one [`Snapshot`] the
//! HTTP side reads without asking the game anything.
//!
//! Why: answering each request on the game's thread made the game pay for every request (32
//! clients looping `GET /api/rooms/1` on a room of 1,000 took the tick p50 from 0.1 to 9 ms).
//! Now one system in `Last` ([`publish`]) copies what is wanted into a snapshot at most once per
//! [`SNAPSHOT_PERIOD`], and only while someone asked within [`DEMAND_WINDOW`]; the snapshot is
//! swapped into a `watch` channel as an `Arc`. However many requests come, the game builds at
//! most ten snapshots a second, each a copy of plain numbers (no text: the HTTP side writes
//! addresses, dates and JSON, off the game's thread, and keeps what it wrote with the snapshot,
//! so a thousand requests between two snapshots serialise it once). What the builds cost is in
//! `/metrics` (`gameserver_admin_snapshots_total`, `gameserver_admin_snapshot_seconds_total`).
//!
//! A snapshot is at most [`SNAPSHOT_PERIOD`] old while it is being read, and a reader never
//! takes one older than [`MAX_AGE`]: after a quiet spell the first request waits for the next
//! frame's snapshot (up to [`ANSWER_TIMEOUT`], then 503, as when the loop is stuck). A room's
//! players are copied only while someone reads that room: a reader names it ([`Board::read`]),
//! and the next snapshot has it. Only rooms that exist are watched, at most
//! [`MAX_WATCHED_ROOMS`], so asking for made-up rooms costs the game nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use bevy_ecs::prelude::*;
use serde::Serialize;
use tokio::sync::watch;

use super::api::{
    ANSWER_TIMEOUT, AskError, CONSOLE_MAX_PLAYERS, ConsoleUpdate, GameView, MetricsData, RoomList, RoomRows,
};
use super::metrics;
use crate::lifecycle::Phase;
use crate::stats::{StatsSource, TICK_BUCKETS_SECONDS};

/// The least time between two snapshots.
pub const SNAPSHOT_PERIOD: Duration = Duration::from_millis(100);
/// Snapshots are built while someone asked within this.
pub const DEMAND_WINDOW: Duration = Duration::from_secs(2);
/// The oldest snapshot a reader takes; with an older one it waits for the next.
pub const MAX_AGE: Duration = Duration::from_millis(500);
/// Rooms whose players are copied at once, at most (the rooms read most recently).
pub const MAX_WATCHED_ROOMS: usize = 64;

/// What the game published, as of one frame.
pub(crate) struct Snapshot {
    /// When it was built: wall time and monotonic time of the same moment.
    pub built: (SystemTime, Instant),
    pub metrics: MetricsData,
    pub rooms: RoomList,
    /// The watched rooms' players.
    pub watched: Vec<RoomRows>,
    /// What the HTTP side wrote of it, kept for the next request.
    written: Mutex<Written>,
}

/// Bodies written from one snapshot.
#[derive(Default)]
struct Written {
    rooms: Option<Bytes>,
    room: HashMap<u32, Bytes>,
    console: HashMap<Option<u32>, Bytes>,
    metrics: Option<(Phase, Bytes)>,
}

impl Snapshot {
    fn written(&self) -> std::sync::MutexGuard<'_, Written> {
        self.written.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether it can answer about room `id`: it holds its players, or it lists no such room.
    fn serves(&self, room: Option<u32>) -> bool {
        room.is_none_or(|id| self.watched.iter().any(|r| r.id == id) || !self.rooms.rooms.iter().any(|r| r.id == id))
    }

    /// `GET /api/rooms` as JSON.
    pub fn rooms_json(&self) -> Bytes {
        if let Some(body) = self.written().rooms.clone() {
            return body;
        }
        let body = to_json(&self.rooms);
        self.written().rooms = Some(body.clone());
        body
    }

    /// `GET /api/rooms/{id}` as JSON, `None` when there is no such room.
    pub fn room_json(&self, id: u32) -> Option<Bytes> {
        if let Some(body) = self.written().room.get(&id) {
            return Some(body.clone());
        }
        let room = self.watched.iter().find(|r| r.id == id)?;
        let body = to_json(&room.detail(self.built, usize::MAX));
        self.written().room.insert(id, body.clone());
        Some(body)
    }

    /// One update of the console's feed, with room `room`'s players (at most
    /// [`CONSOLE_MAX_PLAYERS`]) if it is chosen.
    pub fn console_json(&self, room: Option<u32>) -> Bytes {
        if let Some(body) = self.written().console.get(&room) {
            return body.clone();
        }
        let stats = &self.metrics.stats;
        let update = ConsoleUpdate {
            uptime_s: stats.uptime.as_secs_f64(),
            players: stats.players,
            rooms: self.rooms.rooms.clone(),
            packets_in: stats.net.packets_in,
            packets_out: stats.net.packets_out,
            bytes_in: stats.net.bytes_in,
            bytes_out: stats.net.bytes_out,
            tick_bounds: &TICK_BUCKETS_SECONDS,
            tick_buckets: stats.tick.buckets.clone(),
            room: room
                .and_then(|id| self.watched.iter().find(|r| r.id == id))
                .map(|r| r.detail(self.built, CONSOLE_MAX_PLAYERS)),
        };
        let body = to_json(&update);
        self.written().console.insert(room, body.clone());
        body
    }

    /// The metrics text, with the server's phase now.
    pub fn metrics_text(&self, phase: Phase) -> Bytes {
        if let Some((written, body)) = &self.written().metrics
            && *written == phase
        {
            return body.clone();
        }
        let body = Bytes::from(metrics::render(self.metrics.clone(), phase));
        self.written().metrics = Some((phase, body.clone()));
        body
    }
}

fn to_json(value: &impl Serialize) -> Bytes {
    // Plain data of numbers and strings: serialising it cannot fail.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// Shared by the game (which publishes) and the HTTP side (which reads and says what it wants).
pub(crate) struct Board {
    origin: Instant,
    /// When someone last read, in milliseconds since `origin` (0: never).
    asked_ms: AtomicU64,
    /// The rooms read recently, and when.
    watched: Mutex<Vec<(u32, Instant)>>,
    latest: watch::Sender<Option<Arc<Snapshot>>>,
    /// Snapshots built, and the nanoseconds the game spent on them.
    builds: AtomicU64,
    build_nanos: AtomicU64,
}

impl Board {
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
            asked_ms: AtomicU64::new(0),
            watched: Mutex::new(Vec::new()),
            latest: watch::Sender::new(None),
            builds: AtomicU64::new(0),
            build_nanos: AtomicU64::new(0),
        }
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_millis()).unwrap_or(u64::MAX).max(1)
    }

    /// A snapshot no older than [`MAX_AGE`] that can answer about `room` (if one is named),
    /// waiting for the game's next one if need be, at most [`ANSWER_TIMEOUT`].
    pub async fn read(&self, room: Option<u32>) -> Result<Arc<Snapshot>, AskError> {
        let now = Instant::now();
        self.asked_ms.store(self.millis(now), Ordering::Relaxed);
        let mut latest = self.latest.subscribe();
        let deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
        loop {
            let current = latest.borrow_and_update().clone();
            if let Some(snapshot) = current {
                if let Some(id) = room {
                    self.watch(id, &snapshot);
                }
                if snapshot.serves(room) && snapshot.built.1.elapsed() <= MAX_AGE {
                    return Ok(snapshot);
                }
            }
            match tokio::time::timeout_at(deadline, latest.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(AskError::Gone),
                Err(_) => return Err(AskError::NoAnswer),
            }
        }
    }

    /// Marks room `id` as read now, if `snapshot` lists it.
    fn watch(&self, id: u32, snapshot: &Snapshot) {
        if !snapshot.rooms.rooms.iter().any(|r| r.id == id) {
            return;
        }
        let mut watched = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if let Some(entry) = watched.iter_mut().find(|(room, _)| *room == id) {
            entry.1 = now;
            return;
        }
        if watched.len() >= MAX_WATCHED_ROOMS
            && let Some(oldest) = watched.iter().enumerate().min_by_key(|(_, (_, at))| *at).map(|(i, _)| i)
        {
            watched.swap_remove(oldest);
        }
        watched.push((id, now));
    }

    /// Whether someone read within [`DEMAND_WINDOW`] of `now`.
    fn wanted(&self, now: Instant) -> bool {
        let asked = self.asked_ms.load(Ordering::Relaxed);
        asked != 0 && self.millis(now).saturating_sub(asked) <= DEMAND_WINDOW.as_millis() as u64
    }
}

/// The game's side: the board, and when it last published.
#[derive(Resource)]
pub(crate) struct Publisher {
    pub board: Arc<Board>,
    last: Option<Instant>,
}

impl Publisher {
    pub fn new(board: Arc<Board>) -> Self {
        Self { board, last: None }
    }
}

/// Whether a snapshot is due: someone asked recently and the last one is [`SNAPSHOT_PERIOD`]
/// old. What an unread endpoint costs a frame: this check.
pub(crate) fn due(publisher: Res<Publisher>) -> bool {
    let now = Instant::now();
    publisher.board.wanted(now) && publisher.last.is_none_or(|last| now.duration_since(last) >= SNAPSHOT_PERIOD)
}

/// Builds a snapshot from the world as the frame left it and publishes it.
pub(crate) fn publish(mut publisher: ResMut<Publisher>, mut world: ParamSet<(StatsSource, GameView)>) {
    let started = Instant::now();
    let board = publisher.board.clone();
    let stats = world.p0().snapshot();
    let game = world.p1();
    let rooms = game.room_list();
    let watched: Vec<RoomRows> = {
        let mut ids = board.watched.lock().unwrap_or_else(PoisonError::into_inner);
        ids.retain(|(_, at)| started.saturating_duration_since(*at) <= DEMAND_WINDOW);
        let ids: Vec<u32> = ids.iter().map(|(id, _)| *id).collect();
        ids.into_iter().filter_map(|id| game.room(id)).collect()
    };
    let metrics = MetricsData {
        stats,
        outbound_backlog_bytes: game.backlog_bytes(),
        max_connections: game.max_connections(),
        admin_snapshots: board.builds.load(Ordering::Relaxed),
        admin_snapshot_seconds: board.build_nanos.load(Ordering::Relaxed) as f64 / 1e9,
    };
    let snapshot = Snapshot {
        built: (SystemTime::now(), started),
        rooms: RoomList { players: rooms.iter().map(|r| r.players).sum(), capacity: game.capacity(), rooms },
        metrics,
        watched,
        written: Mutex::default(),
    };
    board.latest.send_replace(Some(Arc::new(snapshot)));
    board.builds.fetch_add(1, Ordering::Relaxed);
    let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    board.build_nanos.fetch_add(took, Ordering::Relaxed);
    publisher.last = Some(started);
}
