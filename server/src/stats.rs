//! What the server reports about itself: one log line every few seconds, a JSON summary at exit,
//! and (with the admin endpoint on) `/metrics` and the console.
//!
//! One set of counters feeds them all: [`NetStats`] (the network's) and [`ServerStats`] (the
//! game loop's), read together into a [`StatsSnapshot`]. The statistics line is the difference
//! of two snapshots, the JSON summary is the last one, and `/metrics` renders one taken when it
//! is scraped; nothing counts anything twice.
//!
//! Tick duration is the wall time of a frame that ran at least one tick, from the start of
//! `First` to the end of `Last`: network ingest, game systems, the tick, and the flush. Each is
//! recorded once, into a high-dynamic-range histogram ([`TickDurations`]) that gives the
//! percentiles and, read into fixed buckets ([`TICK_BUCKETS_SECONDS`]), the Prometheus histogram.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bevy_app::{App, AppExit, First, FixedFirst, Last, Plugin};
use bevy_ecs::prelude::*;
use bevy_ecs::system::SystemParam;
use bevy_time::TimeSystems;
use hdrhistogram::Histogram;
use net_plugin::{NetStats, NetSystems};
use serde::Serialize;

pub use crate::chat::ChatCounts;
use crate::chat::ChatDrop;
use crate::overload::OverloadCounts;
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

/// The game loop's own counters, since start (the network's are in [`NetStats`]).
#[derive(Resource)]
pub struct ServerStats {
    started: Instant,
    /// Frames run.
    pub frames: u64,
    /// Fixed ticks run.
    pub ticks: u64,
    /// The most players at once.
    pub players_max: usize,
    /// Chat lines relayed and dropped: the chat's own [`ChatCounts`], copied at each frame's
    /// end (so chat does not depend on this module).
    pub chat: ChatCounts,
    /// Graceful overload's news interval and episodes, copied like `chat`.
    pub overload: OverloadCounts,
    /// How long frames that ran a tick took.
    tick: TickDurations,
    frame_start: Option<Instant>,
    ticked: bool,
    interval: Duration,
    last_report: Instant,
    /// The snapshot the last statistics line was computed against.
    last: Option<StatsSnapshot>,
    json_path: Option<PathBuf>,
}

/// The upper bounds of the tick duration histogram's buckets, in seconds (`le` in Prometheus):
/// fine below a millisecond, where a healthy server's ticks are, up to the 16 ms of one frame
/// at 60 Hz, then coarse up to a second, where a server is in trouble.
pub const TICK_BUCKETS_SECONDS: [f64; 19] = [
    0.0001, 0.0002, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.006, 0.008, 0.012, 0.016, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0,
];

/// Durations of frames that ran a tick, each recorded once: since start (for the percentiles
/// of the JSON summary and the buckets of `/metrics`) and since the last statistics line.
struct TickDurations {
    /// In microseconds, 1 µs to 60 s, 3 significant digits.
    total: Histogram<u64>,
    /// The same since the last statistics line.
    recent: Histogram<u64>,
    /// The exact sum of `total`, in microseconds (a Prometheus histogram's `_sum`).
    sum_us: u64,
}

impl TickDurations {
    fn new() -> Self {
        let histogram = || Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds");
        Self { total: histogram(), recent: histogram(), sum_us: 0 }
    }

    fn record(&mut self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX).clamp(1, 60_000_000);
        let _ = self.total.record(us);
        let _ = self.recent.record(us);
        self.sum_us += us;
    }

    /// Since start, as the snapshot shows it.
    fn summary(&self) -> TickSummary {
        let (p50_ms, p99_ms, max_ms) = percentiles(&self.total);
        TickSummary {
            count: self.total.len(),
            sum_seconds: self.sum_us as f64 / 1e6,
            buckets: buckets(&self.total),
            p50_ms,
            p99_ms,
            max_ms,
        }
    }
}

/// Tick durations since start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TickSummary {
    /// Frames that ran a tick.
    pub count: u64,
    /// Their durations added up, in seconds.
    pub sum_seconds: f64,
    /// How many fell in each bucket of [`TICK_BUCKETS_SECONDS`] (not cumulative), then above the
    /// last: one more entry than there are bounds. Read from the histogram's bins, to within its
    /// precision (0.1%).
    pub buckets: Vec<u64>,
    /// Median, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, in milliseconds.
    pub p99_ms: f64,
    /// The longest, in milliseconds.
    pub max_ms: f64,
}

fn percentiles(h: &Histogram<u64>) -> (f64, f64, f64) {
    let ms = |us: u64| us as f64 / 1000.0;
    (ms(h.value_at_quantile(0.5)), ms(h.value_at_quantile(0.99)), ms(h.max()))
}

/// Counts per bucket of [`TICK_BUCKETS_SECONDS`], from the histogram's recorded bins.
fn buckets(h: &Histogram<u64>) -> Vec<u64> {
    let mut counts = vec![0; TICK_BUCKETS_SECONDS.len() + 1];
    for bin in h.iter_recorded() {
        let seconds = h.median_equivalent(bin.value_iterated_to()) as f64 / 1e6;
        counts[TICK_BUCKETS_SECONDS.partition_point(|bound| *bound < seconds)] += bin.count_at_value();
    }
    counts
}

/// Everything the server reports, read at one moment from the one set of counters
/// ([`ServerStats`], [`NetStats`]) and the world. The statistics line, the JSON summary,
/// `/metrics` and the console are all made from these.
#[derive(Debug, Clone)]
pub struct StatsSnapshot {
    /// Since the server started.
    pub uptime: Duration,
    /// Frames run.
    pub frames: u64,
    /// Fixed ticks run.
    pub ticks: u64,
    /// Players now.
    pub players: usize,
    /// The most players at once.
    pub players_max: usize,
    /// Rooms with players now.
    pub rooms: usize,
    /// Chat lines relayed and dropped.
    pub chat: ChatCounts,
    /// The news interval and the overload episodes (zero when graceful overload does not run).
    pub overload: OverloadCounts,
    /// Tick durations.
    pub tick: TickSummary,
    /// The network's counters.
    pub net: NetStats,
}

impl StatsSnapshot {
    /// Reads the counters; `players` and `rooms` are counted by the caller (see
    /// [`StatsSource`]).
    pub fn read(stats: &ServerStats, net: &NetStats, players: usize, rooms: usize) -> Self {
        Self {
            uptime: stats.started.elapsed(),
            frames: stats.frames,
            ticks: stats.ticks,
            players,
            players_max: stats.players_max.max(players),
            rooms,
            chat: stats.chat,
            overload: stats.overload,
            tick: stats.tick.summary(),
            net: net.clone(),
        }
    }
}

/// Reads a [`StatsSnapshot`] from a system: the counters, the players and the rooms.
#[derive(SystemParam)]
pub struct StatsSource<'w, 's> {
    stats: Res<'w, ServerStats>,
    net: Res<'w, NetStats>,
    players: Query<'w, 's, (), With<Player>>,
    rooms: Query<'w, 's, &'static Room>,
}

impl StatsSource<'_, '_> {
    /// The snapshot now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot::read(&self.stats, &self.net, self.players.iter().count(), open_rooms(&self.rooms))
    }
}

/// Rooms with at least one member.
fn open_rooms(rooms: &Query<&Room>) -> usize {
    rooms.iter().filter(|r| !r.members().is_empty()).count()
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
            overload: OverloadCounts::default(),
            tick: TickDurations::new(),
            frame_start: None,
            ticked: false,
            interval: self.interval,
            last_report: now,
            last: None,
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

fn end_frame(
    mut stats: ResMut<ServerStats>,
    players: Query<(), With<Player>>,
    chat: Option<Res<ChatCounts>>,
    overload: Option<Res<OverloadCounts>>,
) {
    let stats = &mut *stats;
    if let Some(chat) = chat {
        stats.chat = *chat;
    }
    if let Some(overload) = overload {
        stats.overload = *overload;
    }
    if let Some(start) = stats.frame_start.take()
        && std::mem::take(&mut stats.ticked)
    {
        stats.tick.record(start.elapsed());
    }
    stats.players_max = stats.players_max.max(players.iter().count());
}

/// One line: players, rooms, traffic per second, tick durations, sessions, and the chat lines
/// relayed and dropped (by reason) since the last line: the difference of this snapshot and
/// the last line's.
fn report(mut stats: ResMut<ServerStats>, net: Res<NetStats>, players: Query<(), With<Player>>, rooms: Query<&Room>) {
    let now = Instant::now();
    let elapsed = now.duration_since(stats.last_report);
    if stats.interval.is_zero() || elapsed < stats.interval {
        return;
    }
    let snapshot = StatsSnapshot::read(&stats, &net, players.iter().count(), open_rooms(&rooms));
    let (p50, p99, max) = percentiles(&stats.tick.recent);
    tracing::info!("{}", stats_line(&snapshot, stats.last.as_ref(), elapsed, (p50, p99, max)));
    stats.last = Some(snapshot);
    stats.tick.recent.reset();
    stats.last_report = now;
}

/// The statistics line for `now` against `last` (the previous line's snapshot; none: since
/// start), `elapsed` after it; `recent_tick_ms` are the tick durations since then (p50, p99,
/// max).
fn stats_line(
    now: &StatsSnapshot,
    last: Option<&StatsSnapshot>,
    elapsed: Duration,
    recent_tick_ms: (f64, f64, f64),
) -> String {
    let (net, chat) = (&now.net, &now.chat);
    let (last_net, last_chat) = last.map(|l| (l.net.clone(), l.chat)).unwrap_or_default();
    let secs = elapsed.as_secs_f64().max(f64::EPSILON);
    let rate = |now: u64, before: u64| now.saturating_sub(before) as f64 / secs;
    let (p50, p99, max) = recent_tick_ms;
    // Since start, like the sessions' total: a refusal is rare, and an operator looks for any.
    let refused: Vec<String> = net.refused_by_label().map(|(label, n)| format!("{label} {n}")).collect();
    let dropped: Vec<String> = ChatDrop::ALL
        .iter()
        .map(|r| format!("{} {}", r.as_str(), chat.dropped(*r).saturating_sub(last_chat.dropped(*r))))
        .collect();
    let mut line = format!(
        "players {} in {} rooms | in {:.0} pkt/s {:.0} B/s | out {:.0} pkt/s {:.0} B/s | tick p50 {p50:.2} ms p99 {p99:.2} ms max {max:.2} ms | sessions {} (total {}, refused {} ({})) | chat lines {} relayed, {} dropped ({})",
        now.players,
        now.rooms,
        rate(net.packets_in, last_net.packets_in),
        rate(net.bytes_in, last_net.bytes_in),
        rate(net.packets_out, last_net.packets_out),
        rate(net.bytes_out, last_net.bytes_out),
        net.sessions,
        net.sessions_total,
        net.refused_total(),
        refused.join(", "),
        chat.relayed.saturating_sub(last_chat.relayed),
        chat.dropped_total().saturating_sub(last_chat.dropped_total()),
        dropped.join(", "),
    );
    if now.overload.news_interval_ms > 0 {
        let episodes = now.overload.episodes.saturating_sub(last.map_or(0, |l| l.overload.episodes));
        line += &format!(" | news every {} ms, {episodes} overload episodes", now.overload.news_interval_ms);
    }
    line
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
    /// Connections closed on arrival, by reason (every reason, zero or not).
    refused: std::collections::BTreeMap<&'a str, u64>,
    players_max: usize,
    disconnects: std::collections::BTreeMap<&'a str, u64>,
    chat: ChatSummary<'a>,
    overload: OverloadCounts,
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

impl<'a> Summary<'a> {
    fn of(s: &'a StatsSnapshot) -> Self {
        let net = &s.net;
        Summary {
            frames: s.frames,
            ticks: s.ticks,
            uptime_s: s.uptime.as_secs_f64(),
            tick_ms: TickMs { p50: s.tick.p50_ms, p99: s.tick.p99_ms, max: s.tick.max_ms },
            packets_in: net.packets_in,
            packets_out: net.packets_out,
            bytes_in: net.bytes_in,
            bytes_out: net.bytes_out,
            sessions_total: net.sessions_total,
            refused: net.refused_by_label().collect(),
            players_max: s.players_max,
            disconnects: net.disconnects_by_label().collect(),
            chat: ChatSummary { relayed: s.chat.relayed, dropped: s.chat.dropped_by_label().collect() },
            overload: s.overload,
        }
    }
}

/// Writes the JSON summary when the app exits (after the network shut down, so every session
/// is counted).
fn write_summary_on_exit(
    mut exits: MessageReader<AppExit>,
    stats: Res<ServerStats>,
    net: Res<NetStats>,
    rooms: Query<&Room>,
) {
    if exits.read().next().is_none() {
        return;
    }
    let Some(path) = &stats.json_path else { return };
    // Every player has left by now: the network closed their connections.
    let snapshot = StatsSnapshot::read(&stats, &net, 0, open_rooms(&rooms));
    let written = serde_json::to_string_pretty(&Summary::of(&snapshot))
        .map_err(std::io::Error::other)
        .and_then(|json| std::fs::write(path, json + "\n"));
    match written {
        Ok(()) => tracing::info!(path = %path.display(), "statistics written"),
        Err(e) => tracing::error!(path = %path.display(), error = %e, "cannot write the statistics"),
    }
}

#[cfg(test)]
mod tests {
    use net_plugin::Refusal;

    use super::*;

    fn snapshot_with(durations_us: &[u64]) -> StatsSnapshot {
        let mut tick = TickDurations::new();
        for us in durations_us {
            tick.record(Duration::from_micros(*us));
        }
        let net =
            NetStats { packets_in: 100, bytes_in: 1_000, packets_out: 400, bytes_out: 8_000, ..NetStats::default() };
        StatsSnapshot {
            uptime: Duration::from_secs(10),
            frames: 600,
            ticks: 600,
            players: 3,
            players_max: 4,
            rooms: 1,
            chat: ChatCounts { relayed: 5, dropped: [1, 2] },
            overload: OverloadCounts::default(),
            tick: tick.summary(),
            net,
        }
    }

    #[test]
    fn tick_buckets_count_each_duration_once_in_its_bucket() {
        // 80 µs, 150 µs, 1 ms exactly (le = 0.001 holds it), 20 ms, 2 s (above every bound).
        let tick = snapshot_with(&[80, 150, 1_000, 20_000, 2_000_000]).tick;
        assert_eq!(tick.count, 5);
        assert_eq!(tick.buckets.len(), TICK_BUCKETS_SECONDS.len() + 1);
        assert_eq!(tick.buckets.iter().sum::<u64>(), 5);
        let at = |bound: f64| tick.buckets[TICK_BUCKETS_SECONDS.iter().position(|b| *b == bound).unwrap()];
        assert_eq!((at(0.0001), at(0.0002), at(0.001), at(0.025)), (1, 1, 1, 1));
        assert_eq!(tick.buckets[TICK_BUCKETS_SECONDS.len()], 1, "2 s is above the last bound");
        assert!((tick.sum_seconds - 2.02123).abs() < 1e-9, "{}", tick.sum_seconds);
        // Percentiles are the histogram's, to within its precision (0.1%).
        assert!((2000.0..2002.0).contains(&tick.max_ms), "{}", tick.max_ms);
    }

    #[test]
    fn the_line_is_the_difference_of_two_snapshots() {
        let before = snapshot_with(&[]);
        let mut now = before.clone();
        now.net.packets_in += 50;
        now.net.bytes_out += 4_000;
        now.chat.relayed += 2;
        now.chat.dropped[1] += 3;
        let line = stats_line(&now, Some(&before), Duration::from_secs(2), (0.5, 1.0, 2.0));
        assert!(line.starts_with("players 3 in 1 rooms | in 25 pkt/s 0 B/s | out 0 pkt/s 2000 B/s"), "{line}");
        assert!(line.contains("tick p50 0.50 ms p99 1.00 ms max 2.00 ms"), "{line}");
        assert!(line.ends_with("chat lines 2 relayed, 3 dropped (player_rate 0, room_budget 3)"), "{line}");
        assert!(
            line.contains("refused 0 (server_full 0, per_address 0, not_accepting 0, socket_setup 0)"),
            "every reason: {line}"
        );
        now.net.refused_by[Refusal::PerAddress as usize] = 65;
        now.net.refused_by[Refusal::NotAccepting as usize] = 2;
        let line = stats_line(&now, Some(&before), Duration::from_secs(2), (0.5, 1.0, 2.0));
        assert!(
            line.contains("(total 0, refused 67 (server_full 0, per_address 65, not_accepting 2, socket_setup 0))"),
            "refusals since start, by reason: {line}"
        );
        // The first line counts since start.
        let first = stats_line(&before, None, Duration::from_secs(10), (0.0, 0.0, 0.0));
        assert!(first.contains("in 10 pkt/s 100 B/s | out 40 pkt/s 800 B/s"), "{first}");
        // Graceful overload, when it runs: the interval now, the episodes since the last line.
        now.overload = OverloadCounts { news_interval_ms: 600, episodes: 3 };
        let line = stats_line(&now, Some(&before), Duration::from_secs(2), (0.5, 1.0, 2.0));
        assert!(line.ends_with("room_budget 3) | news every 600 ms, 3 overload episodes"), "{line}");
    }

    #[test]
    fn the_summary_is_the_snapshot() {
        let snapshot = snapshot_with(&[1_000, 3_000]);
        let json = serde_json::to_value(Summary::of(&snapshot)).unwrap();
        assert_eq!(json["packets_in"], 100);
        assert_eq!(json["packets_out"], 400);
        assert_eq!(json["players_max"], 4);
        assert_eq!(json["tick_ms"]["max"], snapshot.tick.max_ms);
        assert_eq!(json["chat"]["dropped"]["room_budget"], 2);
        assert_eq!(json["refused"]["per_address"], 0, "every reason, zero or not");
        let mut refusing = snapshot.clone();
        refusing.net.refused_by[Refusal::ServerFull as usize] = 3;
        let json = serde_json::to_value(Summary::of(&refusing)).unwrap();
        assert_eq!(json["refused"]["server_full"], 3);
        assert_eq!(json["overload"]["episodes"], 0);
    }
}
