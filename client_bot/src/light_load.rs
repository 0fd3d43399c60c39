//! The light load: `client_bot light-load --connections N`.
//!
//! S5's traffic with none of the bots' checks, so that the load generator is never what limits
//! a measurement: N connections that send a `C_Move` every 250 ms, all at once (the course's
//! DummyClient's rhythm), each walking at most `--step` per move from a random start inside
//! ±`--half`, and that read and discard whatever comes back. It is the reference `walkers.c` of
//! `../shared/bench/` in safe Rust, with the same rhythm, walk and syscalls (one write per
//! move; reads until the socket would block): one thread over epoll (through `mio`), no
//! runtime, no parsing (unless `--echoes` asks for the echoes to be counted: see
//! [`echoes`](crate::echoes)).
//!
//! The real server needs nothing before a move (a connection enters its room on connect), so
//! the same load drives the real server and the floor (see [`floor`](crate::floor)).
//!
//! The run: connect (1,000 at a time, 100 ms apart, as the reference), wait 2 s for the server
//! to take them in, then move for `--warm-up` and then for `--window`; what is reported per
//! second is counted over the window only: moves sent, bytes read, the load's own CPU and,
//! with `--watch PID`, the CPU of the server under load. Then it reads on for `--linger`
//! without moving (so that the answers to the last moves are counted in the totals) and closes
//! everything.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use shared::C_Move;

use crate::echoes::{EchoCounts, EchoReport, EchoTracker};
use crate::procfs::cpu_seconds;

/// At or above this share of its core (%), the load generator may have been what limited the
/// run, and the run is not valid.
pub const LOAD_CPU_LIMIT_PCT: f64 = 90.0;

/// Below this share of the moves the rhythm asks for in the window (%), the load fell behind.
pub const MOVES_LIMIT_PCT: f64 = 95.0;

/// Connections opened before a pause, and the pause: the reference's pace.
const CONNECT_BATCH: u32 = 1000;
const CONNECT_PAUSE: Duration = Duration::from_millis(100);

/// Time given to the server to take every connection in before the first move.
const SETTLE: Duration = Duration::from_secs(2);

/// Flags of `client_bot light-load`.
#[derive(Debug, Clone, Args)]
pub struct LightLoadArgs {
    /// The server's address (loopback only).
    #[arg(long, default_value = "127.0.0.1:7777")]
    pub addr: SocketAddr,
    /// Connections.
    #[arg(long, default_value_t = 10)]
    pub connections: u32,
    /// Moving before the window opens.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub warm_up: Duration,
    /// Moving while CPU, moves and bytes are counted.
    #[arg(long, default_value = "40s", value_parser = humantime::parse_duration)]
    pub window: Duration,
    /// Reading, no longer moving, after the window.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub linger: Duration,
    /// Time between a connection's moves.
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Positions stay inside ±HALF in x and z (S5's world of 2,000: 1000).
    #[arg(long, default_value_t = 1000.0)]
    pub half: f32,
    /// The farthest a move goes in x and in z (S5's walk: 5).
    #[arg(long, default_value_t = 5.0)]
    pub step: f32,
    /// Also report this process's CPU over the window (the server under load).
    #[arg(long, value_name = "PID")]
    pub watch: Option<u32>,
    /// Seed of the starting points and the walk.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the report here as JSON.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Also count each connection's echoes (its own moves coming back), the lost ones and the
    /// round trip, for the moves sent in the window. It parses what comes back, which costs the
    /// load CPU: not for comparisons with the floor.
    #[arg(long)]
    pub echoes: bool,
}

impl LightLoadArgs {
    /// Refuses what the load cannot do or must not: non-loopback targets, a window of nothing.
    pub fn validate(&self) -> Result<(), String> {
        if !self.addr.ip().is_loopback() {
            return Err(format!("the light load only talks to loopback, not {}", self.addr));
        }
        if self.connections == 0 || self.interval.is_zero() || self.window.is_zero() {
            return Err("--connections, --interval and --window must be more than zero".into());
        }
        if !(self.half.is_finite() && self.half >= 0.0 && self.step.is_finite() && self.step >= 0.0) {
            return Err("--half and --step are distances, zero or more".into());
        }
        Ok(())
    }
}

/// What was counted over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Its length, seconds (as measured).
    pub seconds: f64,
    /// Moves written whole.
    pub moves_sent: u64,
    /// Moves the rhythm asked for: connections opened × the move times the schedule puts
    /// inside the window (whether or not the load kept to it).
    pub moves_due: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// `bytes_read / moves_sent`: what the server writes per move it receives.
    pub bytes_per_move: f64,
    /// The load's own CPU (user + system), % of one core.
    pub load_cpu_pct: f64,
    /// The CPU of `--watch`'s process, % of one core.
    pub watched_cpu_pct: Option<f64>,
}

/// A light load run's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Connections asked for.
    pub connections: u32,
    /// Connections opened.
    pub connected: u32,
    /// Connections the server closed (or that failed) before the end.
    pub closed_early: u32,
    /// Moves written whole, whole run.
    pub moves_sent: u64,
    /// Moves not written whole (the socket was full, or failed).
    pub moves_failed: u64,
    /// Bytes read, whole run.
    pub bytes_read: u64,
    /// The window's counts.
    pub window: Window,
    /// With `--echoes`: the echoes of the moves sent in the window.
    #[serde(default)]
    pub echoes: Option<EchoReport>,
}

impl LoadReport {
    /// Why a measurement made under this load is not valid; empty when it is. A load that
    /// saturated its core, fell behind its rhythm or lost connections measured itself, not
    /// the server.
    pub fn not_valid_because(&self) -> Vec<String> {
        let mut why = Vec::new();
        let w = &self.window;
        if w.load_cpu_pct >= LOAD_CPU_LIMIT_PCT {
            why.push(format!(
                "the load generator used {:.0}% of its core (limit {LOAD_CPU_LIMIT_PCT:.0}%)",
                w.load_cpu_pct
            ));
        }
        if (w.moves_sent as f64) < w.moves_due as f64 * MOVES_LIMIT_PCT / 100.0 {
            why.push(format!("the load sent {} of the {} moves due in the window", w.moves_sent, w.moves_due));
        }
        if self.connected < self.connections {
            why.push(format!("{} of {} connections opened", self.connected, self.connections));
        }
        if self.closed_early > 0 {
            why.push(format!("{} connections closed early", self.closed_early));
        }
        why
    }
}

/// One connection: its socket, where it stands, and with `--echoes` its moves in flight.
struct Walker {
    stream: Option<TcpStream>,
    x: f32,
    z: f32,
    echoes: Option<EchoTracker>,
}

/// The counters at an instant: when, moves, bytes, own CPU, watched CPU.
#[derive(Clone, Copy)]
struct Mark {
    at: Instant,
    moves: u64,
    bytes: u64,
    cpu: f64,
    watched: Option<f64>,
}

/// Runs the load to its end; writes `--json` if given.
pub fn run(args: &LightLoadArgs) -> Result<LoadReport, String> {
    args.validate()?;
    let mut rng = SmallRng::seed_from_u64(args.seed);
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut walkers = Vec::with_capacity(args.connections as usize);
    for i in 0..args.connections {
        let x = rng.random_range(-1.0..=1.0) * args.half;
        let z = rng.random_range(-1.0..=1.0) * args.half;
        let echoes = args.echoes.then(EchoTracker::default);
        walkers.push(Walker { stream: connect(&poll, args.addr, i).ok(), x, z, echoes });
        if i % CONNECT_BATCH == CONNECT_BATCH - 1 {
            std::thread::sleep(CONNECT_PAUSE);
        }
    }
    let connected = walkers.iter().filter(|w| w.stream.is_some()).count() as u32;
    let mut report = LoadReport {
        connections: args.connections,
        connected,
        closed_early: 0,
        moves_sent: 0,
        moves_failed: 0,
        bytes_read: 0,
        window: Window {
            seconds: 0.0,
            moves_sent: 0,
            moves_due: 0,
            bytes_read: 0,
            bytes_per_move: 0.0,
            load_cpu_pct: 0.0,
            watched_cpu_pct: None,
        },
        echoes: None,
    };
    let mut echoes = EchoCounts::default();

    let me = std::process::id();
    let mark = |report: &LoadReport| Mark {
        at: Instant::now(),
        moves: report.moves_sent,
        bytes: report.bytes_read,
        cpu: cpu_seconds(me).unwrap_or(0.0),
        watched: args.watch.and_then(cpu_seconds),
    };
    let first_move = Instant::now() + SETTLE;
    let window_start = first_move + args.warm_up;
    let window_end = window_start + args.window;
    let end = window_end + args.linger;
    let mut next_move = first_move;
    let (mut opened, mut closed) = (None, None);
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let now = Instant::now();
        if opened.is_none() && now >= window_start {
            opened = Some(mark(&report));
        }
        if closed.is_none() && now >= window_end {
            closed = Some(mark(&report));
        }
        if now >= end {
            break;
        }
        if now >= next_move && next_move < window_end {
            let counts = now >= window_start && now < window_end;
            move_all(&mut walkers, &mut rng, args, &mut report, (&mut echoes, counts));
            next_move += args.interval;
        }
        let mut wake = end;
        if next_move < window_end {
            wake = wake.min(next_move);
        }
        if opened.is_none() {
            wake = wake.min(window_start);
        }
        if closed.is_none() {
            wake = wake.min(window_end);
        }
        match poll.poll(&mut events, Some(wake.saturating_duration_since(Instant::now()))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.to_string()),
        }
        for event in &events {
            let Some(walker) = walkers.get_mut(event.token().0) else { continue };
            if !drain(walker, &mut buf, &mut report.bytes_read, &mut echoes) {
                report.closed_early += 1;
            }
        }
    }
    let (Some(opened), Some(closed)) = (opened, closed) else { return Err("the window never closed".into()) };
    let seconds = closed.at.duration_since(opened.at).as_secs_f64().max(f64::MIN_POSITIVE);
    let moves = closed.moves - opened.moves;
    let bytes = closed.bytes - opened.bytes;
    report.window = Window {
        seconds,
        moves_sent: moves,
        moves_due: u64::from(connected) * rounds_due(args.warm_up, args.window, args.interval),
        bytes_read: bytes,
        bytes_per_move: bytes as f64 / moves.max(1) as f64,
        load_cpu_pct: 100.0 * (closed.cpu - opened.cpu) / seconds,
        watched_cpu_pct: opened.watched.zip(closed.watched).map(|(a, b)| 100.0 * (b - a) / seconds),
    };
    if args.echoes {
        walkers.iter_mut().filter_map(|w| w.echoes.as_mut()).for_each(|t| t.finish(&mut echoes));
        report.echoes = Some(echoes.report());
    }
    // Dropping the walkers closes every connection.
    drop(walkers);
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, json + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(report)
}

/// How many move times, one every `interval` from the first move, fall in the window from
/// `warm_up` to `warm_up + window` after it (its start included, its end not).
pub fn rounds_due(warm_up: Duration, window: Duration, interval: Duration) -> u64 {
    let first = warm_up.as_nanos().div_ceil(interval.as_nanos().max(1));
    let end = (warm_up + window).as_nanos().div_ceil(interval.as_nanos().max(1));
    u64::try_from(end - first).unwrap_or(u64::MAX)
}

/// Opens connection `i` (blocking, as the reference), then hands it to `poll` non-blocking.
fn connect(poll: &Poll, addr: SocketAddr, i: u32) -> io::Result<TcpStream> {
    let stream = std::net::TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_nonblocking(true)?;
    let mut stream = TcpStream::from_std(stream);
    poll.registry().register(&mut stream, Token(i as usize), Interest::READABLE)?;
    Ok(stream)
}

/// One step of every walker, each sent as one `C_Move` with one write; with `--echoes` each
/// noted in flight (counted when `counts`: inside the window).
fn move_all(
    walkers: &mut [Walker],
    rng: &mut SmallRng,
    args: &LightLoadArgs,
    report: &mut LoadReport,
    (echoes, counts): (&mut EchoCounts, bool),
) {
    let mut packet = [0u8; crate::floor::MOVE_BYTES];
    let now = Instant::now();
    for walker in walkers {
        let Some(stream) = &mut walker.stream else { continue };
        walker.x = (walker.x + rng.random_range(-1.0..=1.0) * args.step).clamp(-args.half, args.half);
        walker.z = (walker.z + rng.random_range(-1.0..=1.0) * args.step).clamp(-args.half, args.half);
        let mv = C_Move { pos_x: walker.x, pos_y: 0.0, pos_z: walker.z };
        let mut out = &mut packet[..];
        if shared::encode(&mv, &mut out).is_err() {
            report.moves_failed += 1;
            continue;
        }
        match stream.write(&packet) {
            Ok(n) if n == packet.len() => {
                report.moves_sent += 1;
                if let Some(tracker) = &mut walker.echoes {
                    tracker.sent(walker.x, walker.z, now, counts, echoes);
                }
            }
            // A part written would misframe the stream from here on; the server would drop
            // the connection, and the report says so.
            _ => report.moves_failed += 1,
        }
    }
}

/// Reads a walker's socket until it would block, counting the bytes (and with `--echoes` the
/// echoes in them); `false` when the server closed it or it failed (the walker is then closed
/// too, once).
fn drain(walker: &mut Walker, buf: &mut [u8], bytes: &mut u64, echoes: &mut EchoCounts) -> bool {
    let Some(stream) = &mut walker.stream else { return true };
    loop {
        match stream.read(buf) {
            Ok(0) => break,
            Ok(n) => {
                *bytes += n as u64;
                if let Some(tracker) = &mut walker.echoes {
                    tracker.received(&buf[..n], Instant::now(), echoes);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    walker.stream = None;
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(load_cpu_pct: f64, moves_sent: u64, connected: u32, closed_early: u32) -> LoadReport {
        LoadReport {
            connections: 100,
            connected,
            closed_early,
            moves_sent,
            moves_failed: 0,
            bytes_read: 0,
            window: Window {
                seconds: 10.0,
                moves_sent,
                moves_due: 4000,
                bytes_read: 0,
                bytes_per_move: 0.0,
                load_cpu_pct,
                watched_cpu_pct: Some(50.0),
            },
            echoes: None,
        }
    }

    #[test]
    fn a_load_below_its_limits_makes_a_valid_run() {
        assert_eq!(report(89.9, 4000, 100, 0).not_valid_because(), Vec::<String>::new());
        assert!(report(10.0, 3800, 100, 0).not_valid_because().is_empty(), "95% of the moves due is enough");
    }

    #[test]
    fn a_saturated_or_late_or_short_load_makes_a_run_not_valid() {
        let why = report(90.0, 4000, 100, 0).not_valid_because();
        assert!(matches!(&why[..], [one] if one.contains("90% of its core")), "{why:?}");
        let why = report(20.0, 3799, 100, 0).not_valid_because();
        assert!(matches!(&why[..], [one] if one.contains("3799 of the 4000 moves")), "{why:?}");
        assert_eq!(report(20.0, 4000, 99, 0).not_valid_because(), ["99 of 100 connections opened"]);
        assert_eq!(report(20.0, 4000, 100, 2).not_valid_because(), ["2 connections closed early"]);
        assert_eq!(report(95.0, 10, 50, 1).not_valid_because().len(), 4, "every reason is given");
    }

    #[test]
    fn the_moves_due_follow_the_schedule_not_what_was_sent() {
        let ms = Duration::from_millis;
        assert_eq!(rounds_due(ms(15_000), ms(40_000), ms(250)), 160);
        assert_eq!(rounds_due(Duration::ZERO, ms(1000), ms(250)), 4, "at 0, 250, 500 and 750 ms");
        assert_eq!(rounds_due(ms(100), ms(1000), ms(250)), 4, "at 250, 500, 750 and 1,000 ms");
        assert_eq!(rounds_due(ms(100), ms(100), ms(250)), 0);
    }

    #[test]
    fn only_loopback_is_loaded() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            load: LightLoadArgs,
        }
        let parse = |flags: &[&str]| {
            <Cli as clap::Parser>::try_parse_from(["light-load"].iter().chain(flags)).unwrap().load.validate()
        };
        assert!(parse(&["--addr=10.0.0.1:7777"]).unwrap_err().contains("loopback"));
        assert!(parse(&["--addr=[::1]:7777"]).is_ok());
        assert!(parse(&["--connections=0"]).is_err());
        assert!(parse(&["--step=-1"]).is_err());
    }
}
