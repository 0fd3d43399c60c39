//! What the server reports about itself: one log line every few seconds, and a JSON summary at
//! exit.
//!
//! Tick duration is the wall time of a frame that ran at least one tick, from the start of
//! `First` to the end of `Last`: network ingest, game systems, the tick, and the flush.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bevy_app::{App, AppExit, First, FixedFirst, Last, Plugin};
use bevy_ecs::prelude::*;
use bevy_time::TimeSystems;
use hdrhistogram::Histogram;
use net_plugin::{NetStats, NetSystems};
use serde::Serialize;

use crate::chat::ChatDrop;
use crate::room::{Player, Room};

/// Logs a statistics line every `interval` and writes `json_path` at exit.
pub struct ServerStatsPlugin {
    /// Between log lines; zero turns them off.
    pub interval: Duration,
    /// Where to write the summary at exit, if anywhere.
    pub json_path: Option<PathBuf>,
}

/// Sets of the statistics systems.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum StatsSystems {
    /// In `First`, before time advances: the frame's clock starts.
    FrameStart,
    /// In `Last`, after the network's cleanup: the frame's clock stops; reports are written.
    FrameEnd,
}

/// The server's own statistics, since start.
#[derive(Resource)]
pub struct ServerStats {
    started: Instant,
    /// Frames run.
    pub frames: u64,
    /// Fixed ticks run.
    pub ticks: u64,
    /// The most players at once.
    pub players_max: usize,
    /// Chat lines relayed and dropped.
    pub chat: ChatCounts,
    /// `chat` as of the last report.
    last_chat: ChatCounts,
    /// Durations of frames that ran a tick, in microseconds, since start.
    total: Histogram<u64>,
    /// The same since the last report.
    recent: Histogram<u64>,
    frame_start: Option<Instant>,
    ticked: bool,
    interval: Duration,
    last_report: Instant,
    last_net: NetStats,
    json_path: Option<PathBuf>,
}

/// Chat lines relayed, and dropped by reason (their senders stay connected).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChatCounts {
    /// Lines relayed to their room.
    pub relayed: u64,
    /// Lines dropped, indexed by `ChatDrop as usize`.
    pub dropped: [u64; ChatDrop::ALL.len()],
}

impl ChatCounts {
    /// Lines dropped for this reason.
    pub fn dropped(&self, reason: ChatDrop) -> u64 {
        self.dropped[reason as usize]
    }

    /// Lines dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }

    /// `(label, count)` for every reason, for logs and JSON.
    pub fn dropped_by_label(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        ChatDrop::ALL.iter().map(|r| (r.as_str(), self.dropped(*r)))
    }
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

impl ServerStats {
    /// Tick durations since start, in milliseconds: (p50, p99, max).
    pub fn tick_ms(&self) -> (f64, f64, f64) {
        percentiles(&self.total)
    }
}

fn percentiles(h: &Histogram<u64>) -> (f64, f64, f64) {
    let ms = |us: u64| us as f64 / 1000.0;
    (ms(h.value_at_quantile(0.5)), ms(h.value_at_quantile(0.99)), ms(h.max()))
}

impl Plugin for ServerStatsPlugin {
    fn build(&self, app: &mut App) {
        let now = Instant::now();
        app.insert_resource(ServerStats {
            started: now,
            frames: 0,
            ticks: 0,
            players_max: 0,
            chat: ChatCounts::default(),
            last_chat: ChatCounts::default(),
            total: histogram(),
            recent: histogram(),
            frame_start: None,
            ticked: false,
            interval: self.interval,
            last_report: now,
            last_net: NetStats::default(),
            json_path: self.json_path.clone(),
        })
        .configure_sets(First, StatsSystems::FrameStart.before(TimeSystems))
        .configure_sets(Last, StatsSystems::FrameEnd.after(NetSystems::Cleanup))
        .add_systems(First, start_frame.in_set(StatsSystems::FrameStart))
        .add_systems(FixedFirst, count_tick)
        .add_systems(Last, (end_frame, report, write_summary_on_exit).chain().in_set(StatsSystems::FrameEnd));
    }
}

fn start_frame(mut stats: ResMut<ServerStats>) {
    stats.frame_start = Some(Instant::now());
    stats.frames += 1;
}

fn count_tick(mut stats: ResMut<ServerStats>) {
    stats.ticks += 1;
    stats.ticked = true;
}

fn end_frame(mut stats: ResMut<ServerStats>, players: Query<(), With<Player>>) {
    let stats = &mut *stats;
    if let Some(start) = stats.frame_start.take()
        && std::mem::take(&mut stats.ticked)
    {
        let us = (start.elapsed().as_micros() as u64).clamp(1, 60_000_000);
        let _ = stats.total.record(us);
        let _ = stats.recent.record(us);
    }
    stats.players_max = stats.players_max.max(players.iter().count());
}

/// One line: players, rooms, traffic per second, tick durations, sessions, and the chat lines
/// relayed and dropped (by reason) since the last line.
fn report(mut stats: ResMut<ServerStats>, net: Res<NetStats>, players: Query<(), With<Player>>, rooms: Query<&Room>) {
    let now = Instant::now();
    let elapsed = now.duration_since(stats.last_report);
    if stats.interval.is_zero() || elapsed < stats.interval {
        return;
    }
    let secs = elapsed.as_secs_f64();
    let rate = |now: u64, before: u64| (now.saturating_sub(before)) as f64 / secs;
    let last = &stats.last_net;
    let (p50, p99, max) = percentiles(&stats.recent);
    let (chat, last_chat) = (stats.chat, stats.last_chat);
    let dropped: Vec<String> =
        ChatDrop::ALL.iter().map(|r| format!("{} {}", r.as_str(), chat.dropped(*r) - last_chat.dropped(*r))).collect();
    tracing::info!(
        "players {} in {} rooms | in {:.0} pkt/s {:.0} B/s | out {:.0} pkt/s {:.0} B/s | tick p50 {p50:.2} ms p99 {p99:.2} ms max {max:.2} ms | sessions {} (total {}, refused {}) | chat lines {} relayed, {} dropped ({})",
        players.iter().count(),
        rooms.iter().filter(|r| !r.members().is_empty()).count(),
        rate(net.packets_in, last.packets_in),
        rate(net.bytes_in, last.bytes_in),
        rate(net.packets_out, last.packets_out),
        rate(net.bytes_out, last.bytes_out),
        net.sessions,
        net.sessions_total,
        net.refused,
        chat.relayed - last_chat.relayed,
        chat.dropped_total() - last_chat.dropped_total(),
        dropped.join(", "),
    );
    stats.last_chat = chat;
    stats.last_net = net.clone();
    stats.recent.reset();
    stats.last_report = now;
}

/// The summary written at exit.
#[derive(Serialize)]
struct Summary<'a> {
    frames: u64,
    ticks: u64,
    uptime_s: f64,
    tick_ms: TickMs,
    packets_in: u64,
    packets_out: u64,
    bytes_in: u64,
    bytes_out: u64,
    sessions_total: u64,
    refused: u64,
    players_max: usize,
    disconnects: std::collections::BTreeMap<&'a str, u64>,
    chat: ChatSummary<'a>,
}

#[derive(Serialize)]
struct ChatSummary<'a> {
    relayed: u64,
    /// Every reason, zero or not.
    dropped: std::collections::BTreeMap<&'a str, u64>,
}

#[derive(Serialize)]
struct TickMs {
    p50: f64,
    p99: f64,
    max: f64,
}

/// Writes the JSON summary when the app exits (after the network shut down, so every session
/// is counted).
fn write_summary_on_exit(mut exits: MessageReader<AppExit>, stats: Res<ServerStats>, net: Res<NetStats>) {
    if exits.read().next().is_none() {
        return;
    }
    let Some(path) = &stats.json_path else { return };
    let (p50, p99, max) = stats.tick_ms();
    let summary = Summary {
        frames: stats.frames,
        ticks: stats.ticks,
        uptime_s: stats.started.elapsed().as_secs_f64(),
        tick_ms: TickMs { p50, p99, max },
        packets_in: net.packets_in,
        packets_out: net.packets_out,
        bytes_in: net.bytes_in,
        bytes_out: net.bytes_out,
        sessions_total: net.sessions_total,
        refused: net.refused,
        players_max: stats.players_max,
        disconnects: net.disconnects_by_label().collect(),
        chat: ChatSummary { relayed: stats.chat.relayed, dropped: stats.chat.dropped_by_label().collect() },
    };
    let written = serde_json::to_string_pretty(&summary)
        .map_err(std::io::Error::other)
        .and_then(|json| std::fs::write(path, json + "\n"));
    match written {
        Ok(()) => tracing::info!(path = %path.display(), "statistics written"),
        Err(e) => tracing::error!(path = %path.display(), error = %e, "cannot write the statistics"),
    }
}
