//! The attacker's tools: `client_bot attack --kind <KIND>`, the measurements of issue 8's
//! targets (see `docs/benchmarks.md`, "Abuse resistance").
//!
//! Each kind talks to a server already running at `--addr` (loopback only: these are attacks,
//! and the sockstat figures are this host's), starts nothing, stops by itself, and prints its
//! figures as JSON (`--json PATH` writes them too, so a run can be repeated and compared):
//!
//! | kind | what it does | target |
//! |---|---|---|
//! | `chat-burst` | 20 members move every 250 ms and read; then 50 bursters each write 200 chat lines of 200 characters outside the BMP in one write, and stay | every member stays connected, its echo p99 < 50 ms |
//! | `slow-reader` | one member reads at 2 Mbit/s while 10 clients chat as fast as the server's packet rate limit lets them, 60 s | the slow reader stays connected |
//! | `non-readers` | 50 movers move while 1,000 connections that never read sit in the room; the host's TCP memory is sampled until 15 s after the last is cut | the server's sockets under 300 MB at the peak (the attacker's own receive buffers are on its machine on the internet; on loopback they count in the host's figure, reported too), the host back to its baseline within 15 s |
//! | `garbage` | 200 connections send random bytes for 60 s, reconnecting when closed | the server's log stays short (< 100 lines; counted by the operator) |
//! | `admin-idle` | 1,000 connections to the admin endpoint (`--admin`) that send nothing, reopened when closed, 30 s; `/healthz` probed every 250 ms | every probe answered 200 within 100 ms (issue 16) |
//! | `admin-slowloris` | 200 connections sending a request head a byte every 100 ms, reopened when closed | the same |
//! | `admin-feed` | 500 connections asking for the console's feed, reopened when closed | the same |
//! | `admin-api` | a room of 1,000 (50 moving), 10 s alone, then 32 clients looping `GET /api/rooms/1` for 20 s | the same, the tick p99 raised by at most 1 ms, the movers' round trip p99 under 25 ms |
//!
//! The exit code is 0 when the kind's target was met, 1 when it was not (or the run failed), 2
//! for a bad flag.

mod admin;
mod bucket;
mod chat_burst;
mod client;
mod garbage;
mod non_readers;
pub mod procfs;
mod slow_reader;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

pub use admin::{AdminPlan, AdminReport};
pub use bucket::TokenBucket;
pub use chat_burst::{ChatBurstPlan, ChatBurstReport};
pub use garbage::{GarbagePlan, GarbageReport};
pub use non_readers::{NonReadersPlan, NonReadersReport, Sample, release_after};
pub use slow_reader::{SlowReaderPlan, SlowReaderReport};

use crate::RttMs;

/// The attacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Members that read and move; bursters that each write 200 long chat lines at once.
    ChatBurst,
    /// One member reading at a capped rate while others chat at the packet rate limit.
    SlowReader,
    /// Connections that never read, in a room where movers move; the host's TCP memory.
    NonReaders,
    /// Connections sending random bytes, reconnecting when closed.
    Garbage,
    /// Admin connections that send nothing; `/healthz` probed.
    AdminIdle,
    /// Admin connections sending their request head a byte at a time; `/healthz` probed.
    AdminSlowloris,
    /// Admin connections reading the console's feed; `/healthz` probed.
    AdminFeed,
    /// Clients looping an admin API request beside a room of players; `/healthz` probed.
    AdminApi,
}

impl Kind {
    /// One of the admin endpoint's.
    pub fn is_admin(self) -> bool {
        matches!(self, Kind::AdminIdle | Kind::AdminSlowloris | Kind::AdminFeed | Kind::AdminApi)
    }
}

/// Flags of `client_bot attack`. A flag left out takes its kind's default (in brackets); a flag
/// of another kind is refused.
#[derive(Debug, Clone, Args)]
pub struct AttackArgs {
    /// Which attack.
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// The server's address; loopback only.
    #[arg(long, default_value = "127.0.0.1:7777")]
    pub addr: SocketAddr,
    /// Also write the report here as JSON (it is always printed on stdout).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Seed of the random bytes (garbage).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How long the attack lasts: chat-burst from the burst (default 30s), slow-reader (default 60s), garbage
    /// (default 60s); non-readers: the longest it waits for every non-reader to be cut (default 300s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Move this often (chat-burst's members, non-readers' movers) (default 250ms).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub move_interval: Option<Duration>,
    /// chat-burst: members that read and move (default 20).
    #[arg(long)]
    pub members: Option<u32>,
    /// chat-burst: connections that each send one burst of chat (default 50).
    #[arg(long)]
    pub bursters: Option<u32>,
    /// chat-burst: chat lines in each burst, sent in one write (default 200).
    #[arg(long)]
    pub lines: Option<u32>,
    /// chat-burst: how long the members move before the burst (default 2s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub warmup: Option<Duration>,
    /// chat-burst, slow-reader: characters per chat line (default 200, the server's default limit).
    #[arg(long)]
    pub line_chars: Option<u32>,
    /// chat-burst, slow-reader: the character lines are made of (default '😀', outside the BMP: 4
    /// bytes each on the wire).
    #[arg(long)]
    pub line_char: Option<char>,
    /// slow-reader: clients that chat (default 10).
    #[arg(long)]
    pub chatters: Option<u32>,
    /// slow-reader: chat lines per second per chatter (default 100, the server's packet rate limit; a
    /// server with a lower chat limit drops the excess, so this is chat "at the limit" either
    /// way).
    #[arg(long)]
    pub chat_rate: Option<f64>,
    /// slow-reader: the slow member's read rate in bits per second, with k/M/G suffixes (default 2M).
    #[arg(long, value_parser = parse_bits_per_second)]
    pub read_rate: Option<u64>,
    /// non-readers: connections that never read (default 1000).
    #[arg(long)]
    pub non_readers: Option<u32>,
    /// non-readers: connections that move (and read) (default 50).
    #[arg(long)]
    pub movers: Option<u32>,
    /// non-readers: how long to keep sampling after the last non-reader was cut (default 15s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub settle: Option<Duration>,
    /// non-readers: the non-readers' SO_RCVBUF in bytes (default: the kernel's) (small values
    /// make a quick test).
    #[arg(long)]
    pub rcvbuf: Option<usize>,
    /// garbage: connections sending random bytes at once (default 200).
    #[arg(long)]
    pub connections: Option<u32>,
    /// garbage: bytes per write (default 1024).
    #[arg(long)]
    pub chunk: Option<usize>,
    /// non-readers: each non-reader also sends a `C_Ping` this often (still never reading)
    /// (default never).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub ping_interval: Option<Duration>,
    /// The server's process id, to sample its resident memory during the run (every kind).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// admin-*: the admin endpoint's address; loopback only (default 127.0.0.1:9100).
    #[arg(long)]
    pub admin: Option<SocketAddr>,
    /// admin-*: the admin token, if the endpoint asks for one (default: the environment variable
    /// GAMESERVER_ADMIN_TOKEN, if set).
    #[arg(long)]
    pub token: Option<String>,
    /// admin-*: loopback addresses the attacker connects from, 127.0.9.1 on (default 1).
    #[arg(long)]
    pub sources: Option<u32>,
    /// admin-*: between two /healthz probes (default 250ms).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub probe_interval: Option<Duration>,
    /// admin-api: players in the room (default 1000).
    #[arg(long)]
    pub players: Option<u32>,
    /// admin-api: the request the clients loop (default /api/rooms/1).
    #[arg(long)]
    pub path: Option<String>,
}

/// `2M`, `2000k`, `2000000`: bits per second (decimal prefixes, as link speeds are given).
pub fn parse_bits_per_second(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (number, scale) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1e3),
        Some((i, 'm' | 'M')) => (&s[..i], 1e6),
        Some((i, 'g' | 'G')) => (&s[..i], 1e9),
        _ => (s, 1.0),
    };
    let value: f64 = number.trim().parse().map_err(|_| format!("{s:?} is not a rate like 2M or 2000000"))?;
    let bits = value * scale;
    if !bits.is_finite() || bits < 8.0 {
        return Err(format!("{s:?}: a rate of at least 8 bits per second (one byte)"));
    }
    Ok(bits as u64)
}

/// What a run does, with every default filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Plan {
    /// `chat-burst`.
    ChatBurst(ChatBurstPlan),
    /// `slow-reader`.
    SlowReader(SlowReaderPlan),
    /// `non-readers`.
    NonReaders(NonReadersPlan),
    /// `garbage`.
    Garbage(GarbagePlan),
    /// `admin-*`.
    Admin(AdminPlan),
}

impl AttackArgs {
    /// The flags given that `kind` does not use, by name.
    fn foreign_flags(&self) -> Vec<&'static str> {
        use Kind::*;
        const ADMIN: &[Kind] = &[AdminIdle, AdminSlowloris, AdminFeed, AdminApi];
        let flags: [(&str, bool, &[Kind]); 24] = [
            ("--move-interval", self.move_interval.is_some(), &[ChatBurst, NonReaders, AdminApi]),
            ("--members", self.members.is_some(), &[ChatBurst]),
            ("--bursters", self.bursters.is_some(), &[ChatBurst]),
            ("--lines", self.lines.is_some(), &[ChatBurst]),
            ("--warmup", self.warmup.is_some(), &[ChatBurst, AdminApi]),
            ("--line-chars", self.line_chars.is_some(), &[ChatBurst, SlowReader]),
            ("--line-char", self.line_char.is_some(), &[ChatBurst, SlowReader]),
            ("--chatters", self.chatters.is_some(), &[SlowReader]),
            ("--chat-rate", self.chat_rate.is_some(), &[SlowReader]),
            ("--read-rate", self.read_rate.is_some(), &[SlowReader]),
            ("--non-readers", self.non_readers.is_some(), &[NonReaders]),
            ("--movers", self.movers.is_some(), &[NonReaders, AdminApi]),
            ("--settle", self.settle.is_some(), &[NonReaders]),
            ("--rcvbuf", self.rcvbuf.is_some(), &[NonReaders]),
            ("--connections", self.connections.is_some(), &[Garbage, AdminIdle, AdminSlowloris, AdminFeed, AdminApi]),
            ("--chunk", self.chunk.is_some(), &[Garbage]),
            ("--ping-interval", self.ping_interval.is_some(), &[NonReaders]),
            (
                "--duration",
                self.duration.is_some(),
                &[ChatBurst, SlowReader, NonReaders, Garbage, AdminIdle, AdminSlowloris, AdminFeed, AdminApi],
            ),
            ("--admin", self.admin.is_some(), ADMIN),
            ("--token", self.token.is_some(), ADMIN),
            ("--sources", self.sources.is_some(), ADMIN),
            ("--probe-interval", self.probe_interval.is_some(), ADMIN),
            ("--players", self.players.is_some(), &[AdminApi]),
            ("--path", self.path.is_some(), &[AdminApi]),
        ];
        flags.iter().filter(|(_, given, kinds)| *given && !kinds.contains(&self.kind)).map(|(f, _, _)| *f).collect()
    }

    /// The run's plan: the kind's defaults, with the flags given; or why the flags make no
    /// sense (a flag of another kind, a count of 0, an address that is not loopback).
    pub fn plan(&self) -> Result<Plan, String> {
        if !self.addr.ip().is_loopback() {
            return Err(format!("--addr {}: attacks run against this machine only (a loopback address)", self.addr));
        }
        if let Some(flag) = self.foreign_flags().first() {
            let kind = self.kind.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
            return Err(format!("{flag} is not a flag of --kind {kind}"));
        }
        let at_least_one = |name: &str, v: u32| if v == 0 { Err(format!("{name} must be at least 1")) } else { Ok(v) };
        let positive =
            |name: &str, d: Duration| if d.is_zero() { Err(format!("{name} must be above 0")) } else { Ok(d) };
        let move_interval = positive("--move-interval", self.move_interval.unwrap_or(Duration::from_millis(250)))?;
        let line_chars = at_least_one("--line-chars", self.line_chars.unwrap_or(200))?;
        let line_char = self.line_char.unwrap_or('😀');
        Ok(match self.kind {
            Kind::ChatBurst => {
                let lines = at_least_one("--lines", self.lines.unwrap_or(200))?;
                // One write: the whole burst must be encodable (each line fits a packet).
                client::chat_line(line_char, line_chars)?;
                Plan::ChatBurst(ChatBurstPlan {
                    members: at_least_one("--members", self.members.unwrap_or(20))?,
                    bursters: self.bursters.unwrap_or(50),
                    lines,
                    line_chars,
                    line_char,
                    move_interval,
                    warmup: self.warmup.unwrap_or(Duration::from_secs(2)),
                    duration: positive("--duration", self.duration.unwrap_or(Duration::from_secs(30)))?,
                })
            }
            Kind::SlowReader => {
                client::chat_line(line_char, line_chars)?;
                let chat_rate = self.chat_rate.unwrap_or(100.0);
                if !(chat_rate.is_finite() && chat_rate > 0.0) {
                    return Err("--chat-rate must be above 0".into());
                }
                Plan::SlowReader(SlowReaderPlan {
                    chatters: self.chatters.unwrap_or(10),
                    chat_rate,
                    line_chars,
                    line_char,
                    read_rate_bps: self.read_rate.unwrap_or(2_000_000),
                    duration: positive("--duration", self.duration.unwrap_or(Duration::from_secs(60)))?,
                })
            }
            Kind::NonReaders => Plan::NonReaders(NonReadersPlan {
                non_readers: at_least_one("--non-readers", self.non_readers.unwrap_or(1000))?,
                movers: self.movers.unwrap_or(50),
                move_interval,
                max_duration: positive("--duration", self.duration.unwrap_or(Duration::from_secs(300)))?,
                settle: self.settle.unwrap_or(Duration::from_secs(15)),
                baseline: Duration::from_secs(3),
                rcvbuf: self.rcvbuf,
                ping_interval: match self.ping_interval {
                    Some(d) => Some(positive("--ping-interval", d)?),
                    None => None,
                },
            }),
            Kind::Garbage => Plan::Garbage(GarbagePlan {
                connections: at_least_one("--connections", self.connections.unwrap_or(200))?,
                chunk: self.chunk.unwrap_or(1024).max(1),
                duration: positive("--duration", self.duration.unwrap_or(Duration::from_secs(60)))?,
                seed: self.seed,
            }),
            kind => {
                let admin = self.admin.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9100)));
                if !admin.ip().is_loopback() {
                    return Err(format!("--admin {admin}: attacks run against this machine only (a loopback address)"));
                }
                let connections = self.connections.unwrap_or(match kind {
                    Kind::AdminIdle => 1000,
                    Kind::AdminSlowloris => 200,
                    Kind::AdminFeed => 500,
                    _ => 32,
                });
                let path = self.path.clone().unwrap_or_else(|| "/api/rooms/1".into());
                if !path.starts_with('/') || path.bytes().any(|b| b.is_ascii_whitespace()) {
                    return Err(format!("--path {path:?}: a path such as /api/rooms/1"));
                }
                let players = self.players.unwrap_or(1000);
                Plan::Admin(AdminPlan {
                    attack: kind,
                    admin,
                    connections: at_least_one("--connections", connections)?,
                    // admin-api's clients are so many scripts, each from its own address (from one,
                    // the endpoint's per-address share would close half of them).
                    sources: at_least_one(
                        "--sources",
                        self.sources.unwrap_or(if kind == Kind::AdminApi { connections } else { 1 }),
                    )?,
                    token: self.token.clone().or_else(|| std::env::var("GAMESERVER_ADMIN_TOKEN").ok()),
                    probe_interval: positive(
                        "--probe-interval",
                        self.probe_interval.unwrap_or(Duration::from_millis(250)),
                    )?,
                    duration: positive(
                        "--duration",
                        self.duration.unwrap_or(Duration::from_secs(if kind == Kind::AdminApi { 20 } else { 30 })),
                    )?,
                    path,
                    players,
                    movers: self.movers.unwrap_or(50).min(players),
                    move_interval,
                    warmup: positive("--warmup", self.warmup.unwrap_or(Duration::from_secs(10)))?,
                })
            }
        })
    }
}

/// A target of issue 8 and whether the run met it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// The target, in words.
    pub what: String,
    /// Whether this run met it; `None` when it is measured outside (garbage's log lines).
    pub met: Option<bool>,
}

/// A run's figures. Printed and written (`--json`) with a `"kind"` field naming the attack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AttackReport {
    /// `chat-burst`.
    ChatBurst(ChatBurstReport),
    /// `slow-reader`.
    SlowReader(SlowReaderReport),
    /// `non-readers`.
    NonReaders(NonReadersReport),
    /// `garbage`.
    Garbage(GarbageReport),
    /// `admin-*` (its `params.attack` says which).
    Admin(AdminReport),
}

impl AttackReport {
    /// The run's target.
    pub fn target(&self) -> &Target {
        match self {
            AttackReport::ChatBurst(r) => &r.target,
            AttackReport::SlowReader(r) => &r.target,
            AttackReport::NonReaders(r) => &r.target,
            AttackReport::Garbage(r) => &r.target,
            AttackReport::Admin(r) => &r.target,
        }
    }

    fn server_rss_mut(&mut self) -> &mut Option<ServerRss> {
        match self {
            AttackReport::ChatBurst(r) => &mut r.server_rss,
            AttackReport::SlowReader(r) => &mut r.server_rss,
            AttackReport::NonReaders(r) => &mut r.server_rss,
            AttackReport::Garbage(r) => &mut r.server_rss,
            AttackReport::Admin(r) => &mut r.server_rss,
        }
    }

    /// As printed: pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report is plain data")
    }
}

/// The server's resident memory during a run (`--server-pid`), MB: what the attack cost it in
/// user space (backlogs, buffers), beside the kernel's TCP memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerRss {
    /// When the attack started.
    pub before_mb: f64,
    /// The highest sample (every 250 ms).
    pub peak_mb: f64,
    /// When it ended.
    pub end_mb: f64,
}

/// Samples a process's resident memory on a thread until finished.
struct RssWatch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<ServerRss>,
}

impl RssWatch {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mb = || crate::bench::rss_kib(pid).map_or(0.0, |kib| kib as f64 * 1024.0 / 1e6);
            let before_mb = mb();
            let mut peak_mb = before_mb;
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                peak_mb = peak_mb.max(mb());
            }
            ServerRss { before_mb, peak_mb, end_mb: mb() }
        });
        Self { stop, thread }
    }

    fn finish(self) -> ServerRss {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(ServerRss { before_mb: 0.0, peak_mb: 0.0, end_mb: 0.0 })
    }
}

/// Round trips in milliseconds, summarised.
pub(crate) fn rtt_summary(ms: impl IntoIterator<Item = f64>) -> RttMs {
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("valid bounds");
    for m in ms {
        let _ = h.record(((m * 1000.0) as u64).clamp(1, 600_000_000));
    }
    if h.is_empty() {
        return RttMs::default();
    }
    let at = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    RttMs { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: h.max() as f64 / 1000.0, count: h.len() }
}

/// How connections ended, by how: `{"reset": 3, "closed": 1}`.
pub(crate) fn count_ends<'a>(
    ends: impl IntoIterator<Item = &'a Option<client::Ended>>,
) -> std::collections::BTreeMap<String, u64> {
    let mut by = std::collections::BTreeMap::new();
    for e in ends.into_iter().flatten() {
        *by.entry(e.how.clone()).or_default() += 1;
    }
    by
}

/// Runs the attack `args` describes against its server and returns its figures (also written
/// to `--json`, if given).
pub fn run(args: &AttackArgs) -> Result<AttackReport, String> {
    let plan = args.plan()?;
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!(error = %e, "cannot raise the open-file limit");
    }
    let watch = args.server_pid.map(RssWatch::start);
    let mut report = match plan {
        Plan::ChatBurst(p) => AttackReport::ChatBurst(chat_burst::run(args.addr, &p)?),
        Plan::SlowReader(p) => AttackReport::SlowReader(slow_reader::run(args.addr, &p)?),
        Plan::NonReaders(p) => AttackReport::NonReaders(non_readers::run(args.addr, &p, args.server_pid)?),
        Plan::Garbage(p) => AttackReport::Garbage(garbage::run(args.addr, &p)?),
        Plan::Admin(p) => AttackReport::Admin(admin::run(args.addr, &p)?),
    };
    *report.server_rss_mut() = watch.map(RssWatch::finish);
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json() + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(flags: &[&str]) -> Result<AttackArgs, clap::Error> {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            attack: AttackArgs,
        }
        <Cli as clap::Parser>::try_parse_from(["attack"].iter().chain(flags)).map(|c| c.attack)
    }

    fn plan(flags: &[&str]) -> Result<Plan, String> {
        args(flags).unwrap().plan()
    }

    #[test]
    fn each_kind_defaults_to_the_issues_figures() {
        let Plan::ChatBurst(p) = plan(&["--kind", "chat-burst"]).unwrap() else { panic!() };
        assert_eq!((p.members, p.bursters, p.lines, p.line_chars, p.line_char), (20, 50, 200, 200, '😀'));
        assert_eq!((p.move_interval, p.duration), (Duration::from_millis(250), Duration::from_secs(30)));
        let Plan::SlowReader(p) = plan(&["--kind", "slow-reader"]).unwrap() else { panic!() };
        assert_eq!((p.chatters, p.chat_rate, p.read_rate_bps), (10, 100.0, 2_000_000));
        assert_eq!(p.duration, Duration::from_secs(60));
        let Plan::NonReaders(p) = plan(&["--kind", "non-readers"]).unwrap() else { panic!() };
        assert_eq!((p.non_readers, p.movers, p.settle, p.rcvbuf), (1000, 50, Duration::from_secs(15), None));
        assert_eq!(p.ping_interval, None, "silent by default");
        let Plan::Garbage(p) = plan(&["--kind", "garbage"]).unwrap() else { panic!() };
        assert_eq!((p.connections, p.duration), (200, Duration::from_secs(60)));
        for (kind, connections) in [("admin-idle", 1000), ("admin-slowloris", 200), ("admin-feed", 500)] {
            let Plan::Admin(p) = plan(&["--kind", kind]).unwrap() else { panic!() };
            assert_eq!((p.connections, p.duration, p.sources), (connections, Duration::from_secs(30), 1), "{kind}");
            assert_eq!((p.admin.port(), p.probe_interval), (9100, Duration::from_millis(250)));
        }
        let Plan::Admin(p) = plan(&["--kind", "admin-api"]).unwrap() else { panic!() };
        assert_eq!((p.connections, p.players, p.movers, p.path.as_str()), (32, 1000, 50, "/api/rooms/1"));
        assert_eq!(p.sources, 32, "one address per API client");
        assert_eq!((p.warmup, p.duration), (Duration::from_secs(10), Duration::from_secs(20)));
        let err = plan(&["--kind=admin-idle", "--admin=192.0.2.1:9100"]).unwrap_err();
        assert!(err.contains("loopback"), "{err}");
        assert!(plan(&["--kind=admin-idle", "--players=3"]).unwrap_err().contains("--players"));
        assert!(plan(&["--kind=garbage", "--sources=3"]).unwrap_err().contains("--sources"));
    }

    #[test]
    fn flags_replace_the_defaults() {
        let Plan::ChatBurst(p) =
            plan(&["--kind=chat-burst", "--members=3", "--bursters=2", "--lines=5", "--duration=1s"]).unwrap()
        else {
            panic!()
        };
        assert_eq!((p.members, p.bursters, p.lines, p.duration), (3, 2, 5, Duration::from_secs(1)));
        let Plan::SlowReader(p) = plan(&["--kind=slow-reader", "--read-rate=500k", "--chat-rate=2.5"]).unwrap() else {
            panic!()
        };
        assert_eq!((p.read_rate_bps, p.chat_rate), (500_000, 2.5));
    }

    #[test]
    fn a_flag_of_another_kind_or_a_remote_address_is_refused() {
        let err = plan(&["--kind=garbage", "--members=3"]).unwrap_err();
        assert!(err.contains("--members") && err.contains("garbage"), "{err}");
        let err = plan(&["--kind=chat-burst", "--rcvbuf=4096"]).unwrap_err();
        assert!(err.contains("--rcvbuf"), "{err}");
        let err = plan(&["--kind=garbage", "--addr=192.0.2.1:7777"]).unwrap_err();
        assert!(err.contains("loopback"), "{err}");
        assert!(plan(&["--kind=garbage", "--addr=[::1]:7777"]).is_ok());
        assert!(plan(&["--kind=chat-burst", "--members=0"]).unwrap_err().contains("--members"));
        assert!(plan(&["--kind=non-readers", "--duration=0s"]).unwrap_err().contains("--duration"));
        assert!(plan(&["--kind=chat-burst", "--line-chars=2000"]).unwrap_err().contains("4096"));
        assert!(args(&["--kind=flood"]).is_err());
        assert!(args(&[]).is_err(), "--kind is required");
    }

    #[test]
    fn rates_are_bits_per_second_with_decimal_prefixes() {
        assert_eq!(parse_bits_per_second("2M"), Ok(2_000_000));
        assert_eq!(parse_bits_per_second("2000k"), Ok(2_000_000));
        assert_eq!(parse_bits_per_second("1.5m"), Ok(1_500_000));
        assert_eq!(parse_bits_per_second("64000"), Ok(64_000));
        assert_eq!(parse_bits_per_second("1G"), Ok(1_000_000_000));
        assert!(parse_bits_per_second("fast").is_err());
        assert!(parse_bits_per_second("4").is_err(), "less than a byte a second");
        assert!(parse_bits_per_second("-2M").is_err());
    }

    #[test]
    fn round_trips_are_summarised_in_milliseconds() {
        let s = rtt_summary((1..=100).map(f64::from));
        assert_eq!(s.count, 100);
        assert!((s.p50 - 50.0).abs() < 0.1 && (s.p99 - 99.0).abs() < 0.1 && (s.max - 100.0).abs() < 0.1, "{s:?}");
        assert_eq!(rtt_summary([]), RttMs::default());
    }

    #[test]
    fn reports_name_their_kind_and_target_and_read_back() {
        let report = AttackReport::Garbage(GarbageReport {
            params: GarbagePlan { connections: 2, chunk: 8, duration: Duration::from_secs(1), seed: 1 },
            connections_made: 10,
            closed_by_server: 9,
            open_at_end: 1,
            connect_failures: 0,
            bytes_sent: 80,
            duration_s: 1.0,
            server_rss: Some(ServerRss { before_mb: 6.0, peak_mb: 7.5, end_mb: 6.5 }),
            target: Target { what: "fewer than 100 log lines".into(), met: None },
        });
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["kind"], "garbage");
        assert_eq!(json["connections_made"], 10);
        assert_eq!(json["params"]["duration"], "1s", "durations as people write them");
        assert_eq!(json["target"]["met"], serde_json::Value::Null);
        assert_eq!(json["server_rss"]["peak_mb"], 7.5);
        let back: AttackReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
    }
}
