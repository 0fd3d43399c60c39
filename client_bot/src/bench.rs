//! The scenario runner: `client_bot bench --scenario s1`.
//!
//! It builds nothing: it starts the release `server` binary found next to its own (or
//! `--server PATH`) with `--stats-json`, and the bots as a second process of this binary, each
//! pinned to its own core with `taskset` when present. It raises its open-file limit (the
//! children inherit it), samples the server's CPU time (user + system, from `/proc/PID/stat`)
//! and resident memory while the scenario runs, and prints one result row per run; `--json`
//! writes them all.
//!
//! With `--floor`, S5 is run by [`floor_bench`](crate::floor_bench) instead: the server and then
//! the syscall floor under the light load, and their ratio.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::light_load::LOAD_CPU_LIMIT_PCT;
pub use crate::procfs::{cpu_seconds, rss_kib};
use crate::{BotTransport, Report};

/// The scenarios of `docs/benchmarks.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// The course's load test: 500 bots in one room, a move every 250 ms, 60 s.
    S1,
    /// 1,000 bots in one room, same rate, 60 s.
    S2,
    /// Connect storm: 5,000 bots at once, rooms of 500; time until all have their list.
    S3,
    /// 9,000 idle sessions, rooms of 500: server memory per session.
    S4,
    /// Interest management: 10,000 bots in one room, a world 2,000 wide, random spawn points,
    /// view radius 80, walking, a move every 250 ms, 60 s.
    S5,
    /// Soak: 300 movers for 10 minutes, with 20 connections a second coming and going and 3 a
    /// second sending garbage; server memory every 10 s and its slope after a 2-minute warm-up.
    S6,
    /// A wave: 10,000 idle bots join (rooms of 1,000, the default), stay 10 s and leave; server
    /// memory before, at the peak, and 30 s after they left.
    Wave,
}

/// A scenario's open world: players spread out and see only those near them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WorldPlan {
    /// The world's width: bounds ±size/2 in x and z; players spawn at random inside them.
    pub size: u32,
    /// The view radius (the margin is the server's default, 10%).
    pub view_radius: f32,
}

/// A scenario's parameters.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Bots.
    pub bots: u32,
    /// Seconds the bots move (or idle).
    pub duration_s: u64,
    /// Players per room (0: one room).
    pub room_capacity: usize,
    /// Bots connected per second (0: all at once).
    pub ramp_rate: u32,
    /// No moves.
    pub idle: bool,
    /// Side traffic: connections a second that connect, read their list and close.
    pub churn_rate: u32,
    /// Side traffic: connections a second that send random bytes.
    pub garbage_rate: u32,
    /// Seconds the server is watched after the bots left, before it is stopped.
    pub settle_s: u64,
    /// An open world with interest management, the bots walking in it; `None`: the course's
    /// room, where everyone sees everyone and bots jump within ±50.
    pub world: Option<WorldPlan>,
}

impl Scenario {
    /// The parameters the scenario is defined by.
    pub fn plan(self) -> Plan {
        let plan = |bots, duration_s, room_capacity, ramp_rate, idle| Plan {
            bots,
            duration_s,
            room_capacity,
            ramp_rate,
            idle,
            churn_rate: 0,
            garbage_rate: 0,
            settle_s: 0,
            world: None,
        };
        match self {
            // One room (capacity 0), as the course's load test; 1,000 would hold them too.
            Scenario::S1 => plan(500, 60, 0, 1000, false),
            Scenario::S2 => plan(1000, 60, 0, 1000, false),
            Scenario::S3 => plan(5000, 5, 500, 0, true),
            Scenario::S4 => plan(9000, 10, 500, 3000, true),
            Scenario::Wave => Plan { settle_s: 30, ..plan(10_000, 10, 1000, 3000, true) },
            Scenario::S6 => Plan { churn_rate: 20, garbage_rate: 3, ..plan(300, 600, 1000, 1000, false) },
            Scenario::S5 => {
                Plan { world: Some(WorldPlan { size: 2000, view_radius: 80.0 }), ..plan(10_000, 60, 0, 1000, false) }
            }
        }
    }
}

/// Flags of `client_bot bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Which scenario.
    #[arg(long, value_enum)]
    pub scenario: Scenario,
    /// How many times to run it.
    #[arg(long, default_value_t = 1)]
    pub runs: u32,
    /// The server binary. Default: `server` next to this binary (build it with
    /// `cargo build --release -p server`).
    #[arg(long, value_name = "PATH")]
    pub server: Option<PathBuf>,
    /// Write every run's results here as JSON.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Override the scenario's number of bots.
    #[arg(long)]
    pub bots: Option<u32>,
    /// Override the scenario's duration.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Extra flags for the bots, e.g. `--bot-arg=--move-pattern=spread`; one the scenario sets
    /// (e.g. `--ramp-rate`) replaces the scenario's value.
    #[arg(long = "bot-arg", value_name = "FLAG", allow_hyphen_values = true)]
    pub bot_args: Vec<String>,
    /// Extra flags for the server, e.g. `--server-arg=--tick-hz=20`; one the scenario sets (e.g.
    /// `--room-capacity`) replaces the scenario's value.
    #[arg(long = "server-arg", value_name = "FLAG", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
    /// Do not pin the server and the bots to different cores.
    #[arg(long)]
    pub no_pin: bool,
    /// How the bots reach the server: `ws` turns the server's WebSocket transport on
    /// (`--ws-bind 127.0.0.1:0`) and connects every bot over it, to compare a scenario over
    /// WebSocket with the same over TCP. Side traffic (churn, garbage) stays on TCP.
    #[arg(long, value_enum, default_value_t = BotTransport::Tcp)]
    pub transport: BotTransport,
    /// S5 against the syscall floor (see [`floor_bench`](crate::floor_bench)): the server, then
    /// the floor with the server's bytes per move, each under the light load instead of the
    /// bots; reports both CPU figures and their ratio. S5 only.
    #[arg(long)]
    pub floor: bool,
    /// With `--floor`: how long the load moves before CPU is counted.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration, requires = "floor")]
    pub warm_up: Duration,
    /// With `--floor`: how long CPU, moves and bytes are counted.
    #[arg(long, default_value = "40s", value_parser = humantime::parse_duration, requires = "floor")]
    pub window: Duration,
}

/// Flags the runner must set itself, with the reason: it reads the children's results and
/// events through them, and reports the plan's bots and duration.
const RESERVED_BOT_FLAGS: [(&str, &str); 5] = [
    ("--addr", "the bots connect to the server the runner started"),
    ("--json", "the runner reads the bots' report from its own file"),
    ("--events", "the runner reads the bots' progress events"),
    ("--bots", "use bench's own --bots"),
    ("--duration", "use bench's own --duration"),
];
const RESERVED_SERVER_FLAGS: [(&str, &str); 1] = [("--stats-json", "the runner reads the server's summary")];

/// The flag an extra argument names (`--flag` or `--flag=value`); `None` for a value.
fn flag_name(arg: &str) -> Option<&str> {
    arg.starts_with("--").then(|| arg.split_once('=').map_or(arg, |(name, _)| name))
}

/// A child's command line: the runner's `own` flags (with their values), then the user's
/// `extra`. A flag named among the extras is left out of the runner's, so the user's value
/// replaces it: both binaries refuse a flag given twice.
fn child_args(own: Vec<(&str, Option<OsString>)>, extra: &[String]) -> Vec<OsString> {
    let named: Vec<&str> = extra.iter().filter_map(|a| flag_name(a)).collect();
    let mut argv = Vec::new();
    for (flag, value) in own.into_iter().filter(|(flag, _)| !named.contains(flag)) {
        argv.push(OsString::from(flag));
        argv.extend(value);
    }
    argv.extend(extra.iter().map(OsString::from));
    argv
}

impl BenchArgs {
    /// Refuses extra flags that would take from the runner what it needs to run and report.
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            ("--bot-arg", &self.bot_args, &RESERVED_BOT_FLAGS[..]),
            ("--server-arg", &self.server_args, &RESERVED_SERVER_FLAGS[..]),
        ];
        for (option, extra, reserved) in checks {
            for name in extra.iter().filter_map(|a| flag_name(a)) {
                if let Some((flag, why)) = reserved.iter().find(|(flag, _)| *flag == name) {
                    return Err(format!("{option} cannot set {flag}: {why}"));
                }
            }
        }
        if self.floor {
            if self.scenario != Scenario::S5 {
                return Err("--floor measures S5 only: the floor answers moves, one per read".into());
            }
            if !self.bot_args.is_empty() {
                return Err("--bot-arg does not apply to --floor: the light load, not the bots, drives it".into());
            }
            if self.duration.is_some() {
                return Err("--floor runs for --warm-up, then --window; --duration does not apply".into());
            }
            if self.window.is_zero() {
                return Err("--window must be more than zero".into());
            }
            if self.transport != BotTransport::Tcp {
                return Err("--floor's light load and floor speak TCP only; --transport does not apply".into());
            }
        }
        Ok(())
    }

    /// The scenario's parameters, with `--bots` and `--duration` applied (whole seconds, at
    /// least one).
    pub fn plan(&self) -> Plan {
        let mut plan = self.scenario.plan();
        if let Some(bots) = self.bots {
            plan.bots = bots;
        }
        if let Some(d) = self.duration {
            plan.duration_s = d.as_secs().max(1);
        }
        plan
    }
}

/// One run's results.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// The scenario.
    pub scenario: Scenario,
    /// Its parameters.
    pub plan: Plan,
    /// Which run, from 1.
    pub run: u32,
    /// Server and bots pinned to cores 0 and 1.
    pub pinned: bool,
    /// How the bots reached the server.
    pub transport: BotTransport,
    /// Server CPU while the bots moved (after all entered, until they stopped), % of one core.
    pub server_cpu_pct: f64,
    /// Server CPU over the whole run, seconds.
    pub server_cpu_s: f64,
    /// The bots' own CPU over the same window as `server_cpu_pct`, % of one core: at
    /// [`LOAD_CPU_LIMIT_PCT`] or more the bots, not the server, set the pace, and the row says
    /// `load-saturated`.
    pub bots_cpu_pct: f64,
    /// Server packets sent per server CPU-second, whole run.
    pub packets_per_cpu_s: f64,
    /// Server resident memory before the bots connected, KiB.
    pub rss_before_kib: u64,
    /// The highest resident memory seen, KiB.
    pub rss_peak_kib: u64,
    /// Resident memory with every session open, at the end of the scenario, KiB.
    pub rss_sessions_kib: u64,
    /// (`rss_sessions_kib` − `rss_before_kib`) per connected bot, KiB.
    pub rss_per_session_kib: f64,
    /// Resident memory `settle_s` after the bots left (their connections closed), KiB; the
    /// last sample before the server is stopped when the plan has no settling time.
    pub rss_after_kib: u64,
    /// Resident memory every [`rss_sample_period`] from the bots' start: (seconds, KiB).
    pub rss_samples: Vec<(f64, u64)>,
    /// How fast resident memory grew while the bots ran, after [`warm_up`]: the least-squares
    /// slope of the samples, MiB per hour. `None` with fewer than 3 samples after the warm-up.
    pub rss_slope_mib_per_h: Option<f64>,
    /// The server's own summary (`--stats-json`).
    pub server: serde_json::Value,
    /// The bots' report.
    pub bots: Report,
}

fn taskset_available() -> bool {
    Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A command, pinned to `core` when asked.
pub(crate) fn command(program: &Path, core: Option<usize>) -> Command {
    match core {
        Some(core) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(core.to_string()).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// How often resident memory is sampled while the bots run: every 10 s, or a twentieth of a
/// shorter run, so that a short run (a test's) has samples too.
pub fn rss_sample_period(duration_s: u64) -> Duration {
    Duration::from_secs(10).min(Duration::from_secs_f64(duration_s as f64 / 20.0)).max(Duration::from_millis(50))
}

/// How long the memory slope leaves out at the start, while the server's memory fills to its
/// working size (allocator pools, buffers, the first players' state): 2 minutes, or a fifth of a
/// shorter run.
pub fn warm_up(duration_s: u64) -> Duration {
    Duration::from_secs(120).min(Duration::from_secs_f64(duration_s as f64 / 5.0))
}

/// The least-squares slope of `points` (y per unit of x); `None` for fewer than 3 points or
/// points all at one x.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 3 {
        return None;
    }
    let n = points.len() as f64;
    let (mx, my) = points.iter().fold((0.0, 0.0), |(x, y), p| (x + p.0 / n, y + p.1 / n));
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// The slope of resident memory samples (seconds, KiB) taken from `from` to `to` seconds, in
/// MiB per hour.
pub fn rss_slope_mib_per_h(samples: &[(f64, u64)], from: f64, to: f64) -> Option<f64> {
    let points: Vec<(f64, f64)> =
        samples.iter().filter(|(t, _)| (from..=to).contains(t)).map(|(t, kib)| (*t, *kib as f64)).collect();
    slope(&points).map(|kib_per_s| kib_per_s * 3600.0 / 1024.0)
}

/// Kills a child on drop, so a failed run leaves no server behind.
pub(crate) struct Guard(pub(crate) Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server binary: `--server`, or `server` next to this binary.
pub(crate) fn server_path(args: &BenchArgs, exe: &Path) -> Result<PathBuf, String> {
    let server = args.server.clone().unwrap_or_else(|| exe.with_file_name("server"));
    if !server.exists() {
        return Err(format!(
            "no server binary at {}; build it with `cargo build --release -p server`",
            server.display()
        ));
    }
    Ok(server)
}

/// Whether the server and its load go to cores 0 and 1: unless `--no-pin`, with `taskset` and
/// two cores.
pub(crate) fn can_pin(args: &BenchArgs) -> bool {
    !args.no_pin && taskset_available() && cores() >= 2
}

/// Runs the scenario `args.runs` times; returns the results.
pub fn run(args: &BenchArgs) -> Result<Vec<RunResult>, String> {
    repeat(args, run_once, row)
}

/// Runs `once` `args.runs` times (the open-file limit raised, pinned where it can be), printing
/// `row` of each result; writes them all to `--json`. The scenarios' and the floor's loop.
pub(crate) fn repeat<R: Serialize>(
    args: &BenchArgs,
    once: impl Fn(&BenchArgs, &Plan, u32, &Path, &Path, bool) -> Result<R, String>,
    row: impl Fn(&R) -> String,
) -> Result<Vec<R>, String> {
    args.validate()?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let server = server_path(args, &exe)?;
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!(error = %e, "cannot raise the open-file limit");
    }
    let pinned = can_pin(args);
    let plan = args.plan();
    let mut results = Vec::new();
    for run in 1..=args.runs {
        let result = once(args, &plan, run, &server, &exe, pinned)?;
        println!("{}", row(&result));
        results.push(result);
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
        std::fs::write(path, json + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(results)
}

/// The header of [`row`].
pub const HEADER: &str = "scenario run bots entered all_entered_s server_cpu% bots_cpu% pkts/cpu_s rtt_p50 rtt_p99 tick_p99 lost viol mism rss_kib/session rss_mib_before/peak/after rss_mib/h result";

/// One result row.
pub fn row(r: &RunResult) -> String {
    format!(
        "{:?} {} {} {} {} {:.1} {:.1} {:.2}M {:.1} {:.1} {:.2} {} {} {} {:.2} {:.1}/{:.1}/{:.1} {} {}",
        r.scenario,
        r.run,
        r.plan.bots,
        r.bots.entered,
        r.bots.all_entered_s.map_or("-".into(), |s| format!("{s:.2}")),
        r.server_cpu_pct,
        r.bots_cpu_pct,
        r.packets_per_cpu_s / 1e6,
        r.bots.rtt_ms.p50,
        r.bots.rtt_ms.p99,
        r.server["tick_ms"]["p99"].as_f64().unwrap_or(f64::NAN),
        r.bots.echo_lost,
        r.bots.violations,
        r.bots.final_state_mismatches + r.bots.view_mismatches,
        r.rss_per_session_kib,
        r.rss_before_kib as f64 / 1024.0,
        r.rss_peak_kib as f64 / 1024.0,
        r.rss_after_kib as f64 / 1024.0,
        r.rss_slope_mib_per_h.map_or("-".into(), |s| format!("{s:+.2}")),
        match (r.bots.clean(), r.bots_cpu_pct >= LOAD_CPU_LIMIT_PCT) {
            (true, false) => "clean",
            (true, true) => "clean,load-saturated",
            (false, false) => "PROBLEMS",
            (false, true) => "PROBLEMS,load-saturated",
        },
    )
}

/// The server's command line for a run of `plan`: an ephemeral port (read back from its log),
/// no periodic statistics line, its summary to `stats_json`, the scenario's room capacity and
/// room for every bot, no drain (the runner's SIGTERM stops it at once, whatever is still
/// connected); then the `--server-arg`s.
pub(crate) fn server_command(
    args: &BenchArgs,
    plan: &Plan,
    server: &Path,
    stats_json: &Path,
    core: Option<usize>,
) -> Command {
    let mut own = vec![
        ("--bind", Some("127.0.0.1:0".into())),
        ("--stats-interval", Some("0s".into())),
        ("--stats-json", Some(stats_json.into())),
        ("--drain-timeout", Some("off".into())),
        ("--room-capacity", Some(plan.room_capacity.to_string().into())),
        ("--max-connections", Some((plan.bots as usize + 1000).to_string().into())),
    ];
    if let Some(world) = plan.world {
        own.push(("--world-size", Some(world.size.to_string().into())));
        own.push(("--spawn", Some("random".into())));
        own.push(("--view-radius", Some(world.view_radius.to_string().into())));
    }
    if args.transport == BotTransport::Ws {
        own.push(("--ws-bind", Some("127.0.0.1:0".into())));
    }
    let mut c = command(server, core);
    c.args(child_args(own, &args.server_args)).env("RUST_LOG", "warn,net_plugin::server=info");
    c
}

/// The bots' command line for run number `run` of `plan` against `addr`: the scenario's bots,
/// duration, ramp and idleness, the run number as seed, progress events on stdout for the
/// runner, the report to `report_json`; then the `--bot-arg`s.
fn bots_command(
    args: &BenchArgs,
    plan: &Plan,
    run: u32,
    exe: &Path,
    addr: SocketAddr,
    report_json: &Path,
    core: Option<usize>,
) -> Command {
    let mut own = vec![
        ("--addr", Some(addr.to_string().into())),
        ("--bots", Some(plan.bots.to_string().into())),
        ("--duration", Some(format!("{}s", plan.duration_s).into())),
        ("--ramp-rate", Some(plan.ramp_rate.to_string().into())),
        ("--seed", Some(run.to_string().into())),
        ("--events", None),
        ("--quiet", None),
        ("--json", Some(report_json.into())),
    ];
    if plan.idle {
        own.push(("--idle", None));
    }
    if args.transport == BotTransport::Ws {
        own.push(("--transport", Some("ws".into())));
    }
    if plan.churn_rate > 0 {
        own.push(("--churn-rate", Some(plan.churn_rate.to_string().into())));
    }
    if plan.garbage_rate > 0 {
        own.push(("--garbage-rate", Some(plan.garbage_rate.to_string().into())));
    }
    if let Some(world) = plan.world {
        own.push(("--walk", None));
        own.push(("--world-size", Some(world.size.to_string().into())));
        own.push(("--view-radius", Some(world.view_radius.to_string().into())));
    }
    let mut c = command(exe, core);
    c.args(child_args(own, &args.bot_args)).env("RUST_LOG", "warn");
    c
}

fn run_once(
    args: &BenchArgs,
    plan: &Plan,
    run: u32,
    server: &Path,
    exe: &Path,
    pinned: bool,
) -> Result<RunResult, String> {
    let dir = std::env::temp_dir().join(format!("client_bot-bench-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let server_json = dir.join("server.json");
    let bots_json = dir.join("bots.json");

    // The server, on core 0.
    let mut child = server_command(args, plan, server, &server_json, pinned.then_some(0))
        .current_dir(&dir)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", server.display()))?;
    let stderr = child.stderr.take().ok_or("no server stderr")?;
    let mut server_child = Guard(child);
    let pid = server_child.0.id();
    let addr = listening_addr(stderr, args.transport)?;

    std::thread::sleep(Duration::from_millis(500));
    let rss_before = rss_kib(pid).unwrap_or(0);
    let cpu_start = cpu_seconds(pid).unwrap_or(0.0);

    // The bots, on core 1.
    let mut bots = bots_command(args, plan, run, exe, addr, &bots_json, pinned.then_some(1))
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the bots: {e}"))?;
    let events = line_channel(bots.stdout.take().ok_or("no bots stdout")?);
    // `taskset` runs the bots in its own process: this is theirs.
    let bots_pid = bots.id();
    let bots_started = Instant::now();
    let period = rss_sample_period(plan.duration_s);
    let mut rss_samples = Vec::new();
    let mut next_sample = bots_started;
    let mut sample = |samples: &mut Vec<(f64, u64)>| {
        if Instant::now() >= next_sample {
            samples.push((bots_started.elapsed().as_secs_f64(), rss_kib(pid).unwrap_or(0)));
            next_sample += period;
        }
    };

    let mut rss_peak = rss_before;
    let mut rss_sessions = rss_before;
    // (when, server CPU seconds, bots' CPU seconds) as all bots entered, and as they stopped
    // moving.
    let mut entered: Option<(Instant, f64, f64)> = None;
    let mut stopped: Option<(Instant, f64, f64)> = None;
    let cpus = || (Instant::now(), cpu_seconds(pid).unwrap_or(0.0), cpu_seconds(bots_pid).unwrap_or(0.0));
    loop {
        match events.recv_timeout(period.min(Duration::from_millis(250))) {
            Ok(line) if line.starts_with("EVENT entered_all") => {
                entered = Some(cpus());
            }
            Ok(line) if line.starts_with("EVENT stopped") => {
                stopped = Some(cpus());
                rss_sessions = rss_kib(pid).unwrap_or(0);
            }
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        rss_peak = rss_peak.max(rss_kib(pid).unwrap_or(0));
        sample(&mut rss_samples);
    }
    let _ = bots.wait();
    let cpu_end = cpu_seconds(pid).unwrap_or(0.0);
    // The bots are gone: watch the server give their memory back.
    let settled = Instant::now() + Duration::from_secs(plan.settle_s);
    while Instant::now() < settled {
        std::thread::sleep(period.min(Duration::from_millis(250)));
        sample(&mut rss_samples);
    }
    let rss_after = rss_kib(pid).unwrap_or(0);
    let moving_until = stopped.map_or(f64::MAX, |(t, ..)| t.duration_since(bots_started).as_secs_f64());
    let rss_slope = rss_slope_mib_per_h(&rss_samples, warm_up(plan.duration_s).as_secs_f64(), moving_until);

    // Stop the server as an operator would, and read its summary.
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server_child.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let server_summary: serde_json::Value = std::fs::read_to_string(&server_json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .ok_or("the server wrote no statistics")?;
    let report: Report = std::fs::read_to_string(&bots_json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .ok_or("the bots wrote no report")?;
    let _ = std::fs::remove_dir_all(&dir);

    let (server_cpu_pct, bots_cpu_pct) = match (entered, stopped) {
        (Some((t0, s0, b0)), Some((t1, s1, b1))) if t1 > t0 => {
            let seconds = t1.duration_since(t0).as_secs_f64();
            (100.0 * (s1 - s0) / seconds, 100.0 * (b1 - b0) / seconds)
        }
        _ => (f64::NAN, f64::NAN),
    };
    let server_cpu_s = cpu_end - cpu_start;
    let packets_out = server_summary["packets_out"].as_f64().unwrap_or(0.0);
    Ok(RunResult {
        scenario: args.scenario,
        plan: plan.clone(),
        run,
        pinned,
        transport: args.transport,
        server_cpu_pct,
        server_cpu_s,
        bots_cpu_pct,
        packets_per_cpu_s: packets_out / server_cpu_s.max(0.01),
        rss_before_kib: rss_before,
        rss_peak_kib: rss_peak,
        rss_sessions_kib: rss_sessions,
        rss_per_session_kib: rss_sessions.saturating_sub(rss_before) as f64 / f64::from(report.connected.max(1)),
        rss_after_kib: rss_after,
        rss_samples,
        rss_slope_mib_per_h: rss_slope,
        server: server_summary,
        bots: report,
    })
}

/// Reads lines in a thread, so the runner can wait with a timeout.
fn line_channel(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for the server's line naming the address the bots of `transport` connect to: `listening
/// on ADDR` (TCP) or `listening for WebSocket clients on ADDR`.
pub(crate) fn listening_addr(
    stderr: impl std::io::Read + Send + 'static,
    transport: BotTransport,
) -> Result<SocketAddr, String> {
    let lines = line_channel(stderr);
    let deadline = Instant::now() + Duration::from_secs(10);
    let announce = match transport {
        BotTransport::Tcp => "listening on ",
        BotTransport::Ws => "listening for WebSocket clients on ",
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines.recv_timeout(left).map_err(|_| "the server did not report its address".to_string())?;
        if let Some(addr) = line.split(announce).nth(1) {
            let addr = addr.trim().parse().map_err(|e| format!("bad address in {line:?}: {e}"))?;
            // Keep draining its stderr so it never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return Ok(addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_cpu_and_memory() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).is_some_and(|s| s >= 0.0));
        assert!(rss_kib(pid).is_some_and(|kib| kib > 0));
        assert_eq!(cpu_seconds(u32::MAX), None);
    }

    /// `client_bot bench` with these flags.
    fn bench(flags: &[&str]) -> BenchArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            bench: BenchArgs,
        }
        <Cli as clap::Parser>::try_parse_from(["bench"].iter().chain(flags)).unwrap().bench
    }

    /// The bots' flags as the bots binary reads them.
    fn parse_bots(c: &Command) -> crate::BotConfig {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            bots: crate::BotConfig,
        }
        let argv = std::iter::once(c.get_program()).chain(c.get_args());
        match <Cli as clap::Parser>::try_parse_from(argv) {
            Ok(cli) => cli.bots,
            Err(e) => panic!("the bots would refuse {:?}: {e}", c.get_args().collect::<Vec<_>>()),
        }
    }

    /// The values a command gives `flag` (as `--flag VALUE` or `--flag=VALUE`).
    fn values(c: &Command, flag: &str) -> Vec<String> {
        let args: Vec<String> = c.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let mut found = Vec::new();
        for (i, arg) in args.iter().enumerate() {
            if arg == flag {
                found.extend(args.get(i + 1).cloned());
            } else if let Some(value) = arg.strip_prefix(flag).and_then(|rest| rest.strip_prefix('=')) {
                found.push(value.to_string());
            }
        }
        found
    }

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 4321))
    }

    #[test]
    fn each_scenario_reaches_the_server_and_the_bots_it_starts() {
        for scenario in Scenario::value_variants() {
            let name = scenario.to_possible_value().unwrap().get_name().to_string();
            let args = bench(&["--scenario", &name]);
            let plan = scenario.plan();
            let stats = Path::new("/tmp/run/server.json");
            let server = server_command(&args, &plan, Path::new("/bin/server"), stats, None);
            assert_eq!(server.get_program(), "/bin/server");
            assert_eq!(values(&server, "--room-capacity"), [plan.room_capacity.to_string()], "{name}");
            let max: Vec<usize> = values(&server, "--max-connections").iter().map(|v| v.parse().unwrap()).collect();
            assert!(matches!(max[..], [max] if max >= plan.bots as usize), "{name}: {max:?} for {} bots", plan.bots);
            assert_eq!(values(&server, "--stats-json"), ["/tmp/run/server.json"]);
            assert_eq!(values(&server, "--bind"), ["127.0.0.1:0"], "the runner reads the port from the log");
            assert_eq!(values(&server, "--drain-timeout"), ["off"], "the runner's SIGTERM stops it at once");

            let report = Path::new("/tmp/run/bots.json");
            let bots = parse_bots(&bots_command(&args, &plan, 3, Path::new("/bin/client_bot"), addr(), report, None));
            assert_eq!(bots.addr, addr());
            assert_eq!(bots.bots, plan.bots, "{name}");
            assert_eq!(bots.duration, Duration::from_secs(plan.duration_s), "{name}");
            assert_eq!(bots.ramp_rate, plan.ramp_rate, "{name}");
            assert_eq!(bots.idle, plan.idle, "{name}");
            assert_eq!((bots.churn_rate, bots.garbage_rate), (plan.churn_rate, plan.garbage_rate), "{name}");
            assert_eq!(bots.seed, 3, "each run its own seed");
            assert!(bots.events, "the runner reads the bots' progress events");
            assert_eq!(bots.json.as_deref(), Some(report));
            match plan.world {
                Some(world) => {
                    assert_eq!(values(&server, "--world-size"), [world.size.to_string()], "{name}");
                    assert_eq!(values(&server, "--spawn"), ["random"], "{name}");
                    assert_eq!(values(&server, "--view-radius"), [world.view_radius.to_string()], "{name}");
                    assert!(bots.walk, "{name}");
                    assert_eq!((bots.world_size, bots.view_radius), (world.size as f32, world.view_radius), "{name}");
                }
                None => {
                    for flag in ["--world-size", "--spawn", "--view-radius"] {
                        assert!(values(&server, flag).is_empty(), "{name}: the course's room, no {flag}");
                    }
                    assert!(!bots.walk && bots.view_radius == 0.0, "{name}");
                }
            }
        }
    }

    #[test]
    fn the_one_room_scenarios_stay_in_one_room_and_the_others_fit_their_rooms() {
        for scenario in [Scenario::S1, Scenario::S2] {
            assert_eq!(scenario.plan().room_capacity, 0, "{scenario:?}: one room, whatever the server's default");
        }
        let soak = Scenario::S6.plan();
        assert_eq!((soak.bots, soak.duration_s, soak.churn_rate), (300, 600, 20));
        assert!(soak.garbage_rate > 0 && soak.room_capacity >= soak.bots as usize, "the movers share a room");
        let wave = Scenario::Wave.plan();
        assert_eq!((wave.bots, wave.idle, wave.settle_s), (10_000, true, 30));
    }

    #[test]
    fn memory_is_sampled_every_10_s_and_its_slope_left_out_for_2_minutes_or_a_fifth_of_a_short_run() {
        assert_eq!(rss_sample_period(600), Duration::from_secs(10));
        assert_eq!(rss_sample_period(3600), Duration::from_secs(10));
        assert_eq!(rss_sample_period(4), Duration::from_millis(200));
        assert_eq!(warm_up(600), Duration::from_secs(120));
        assert_eq!(warm_up(3600), Duration::from_secs(120));
        assert_eq!(warm_up(10), Duration::from_secs(2));
    }

    #[test]
    fn the_slope_is_least_squares_over_the_samples_after_the_warm_up() {
        assert_eq!(slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]), Some(2.0));
        // Noise around a flat line: the fit, not the last minus the first.
        assert_eq!(slope(&[(0.0, 10.0), (1.0, 12.0), (2.0, 8.0), (3.0, 10.0)]), Some(-0.4));
        assert_eq!(slope(&[(0.0, 1.0), (1.0, 3.0)]), None, "too few points");
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 3.0), (1.0, 2.0)]), None, "no spread in time");
        // 1 KiB more every 10 s is 360 KiB an hour: 0.35 MiB/h. The warm-up's 50 MiB climb and
        // what follows the moving phase are left out.
        let mut samples: Vec<(f64, u64)> = (0..12).map(|i| (f64::from(i) * 10.0, 1000 + 5000 * i as u64)).collect();
        samples.extend((12..60).map(|i| (f64::from(i) * 10.0, 70_000 + i as u64)));
        samples.push((610.0, 5000));
        let mib_per_h = rss_slope_mib_per_h(&samples, 120.0, 600.0).unwrap();
        assert!((mib_per_h - 360.0 / 1024.0).abs() < 1e-9, "{mib_per_h}");
        assert_eq!(rss_slope_mib_per_h(&samples, 700.0, 800.0), None);
    }

    #[test]
    fn s5_is_ten_thousand_walkers_in_one_open_world() {
        let args = bench(&["--scenario", "s5"]);
        let plan = args.plan();
        let server = server_command(&args, &plan, Path::new("server"), Path::new("s.json"), None);
        assert_eq!(values(&server, "--room-capacity"), ["0"], "one room, however large");
        assert_eq!(values(&server, "--world-size"), ["2000"]);
        assert_eq!(values(&server, "--view-radius"), ["80"]);
        let bots = parse_bots(&bots_command(&args, &plan, 1, Path::new("bots"), addr(), Path::new("b.json"), None));
        assert_eq!((bots.bots, bots.duration), (10_000, Duration::from_secs(60)));
        // The DummyClient's timing: every bot moves at once, every 250 ms.
        assert_eq!((bots.move_interval, bots.move_pattern), (Duration::from_millis(250), crate::MovePattern::Burst));
        assert_eq!((bots.walk, bots.walk_speed, bots.world_size), (true, 5.0, 2000.0));
        assert_eq!((bots.view_radius, bots.view_margin.of(80.0)), (80.0, 8.0), "the server's default margin");
        // The variants the issue asks for: spread moves, a 20 Hz tick.
        let args = bench(&["--scenario=s5", "--bot-arg=--move-pattern=spread", "--server-arg=--tick-hz=20"]);
        let plan = args.plan();
        let bots = parse_bots(&bots_command(&args, &plan, 1, Path::new("bots"), addr(), Path::new("b.json"), None));
        assert_eq!((bots.move_pattern, bots.walk), (crate::MovePattern::Spread, true));
        let server = server_command(&args, &plan, Path::new("server"), Path::new("s.json"), None);
        assert_eq!(values(&server, "--tick-hz"), ["20"]);
    }

    #[test]
    fn bots_and_duration_flags_replace_the_scenarios() {
        let args = bench(&["--scenario", "s2", "--bots", "20", "--duration", "2500ms"]);
        let plan = args.plan();
        assert_eq!((plan.bots, plan.duration_s, plan.ramp_rate), (20, 2, Scenario::S2.plan().ramp_rate));
        let bots = parse_bots(&bots_command(&args, &plan, 1, Path::new("bots"), addr(), Path::new("b.json"), None));
        assert_eq!((bots.bots, bots.duration), (20, Duration::from_secs(2)));
        let server = server_command(&args, &plan, Path::new("server"), Path::new("s.json"), None);
        assert_eq!(values(&server, "--max-connections"), ["1020"]);
        assert_eq!(bench(&["--scenario", "s1", "--duration", "10ms"]).plan().duration_s, 1, "at least a second");
    }

    #[test]
    fn extra_flags_replace_the_scenarios_values_and_add_others() {
        let args = bench(&[
            "--scenario=s3",
            "--bot-arg=--ramp-rate=5",
            "--bot-arg=--move-pattern",
            "--bot-arg=spread",
            "--bot-arg=--seed=42",
            "--server-arg=--room-capacity=7",
            "--server-arg=--tick-hz=20",
        ]);
        args.validate().unwrap();
        let plan = args.plan();
        let bots = parse_bots(&bots_command(&args, &plan, 1, Path::new("bots"), addr(), Path::new("b.json"), None));
        assert_eq!((bots.ramp_rate, bots.move_pattern, bots.seed), (5, crate::MovePattern::Spread, 42));
        assert_eq!((bots.bots, bots.idle), (5000, true), "the rest of the scenario stays");
        let server = server_command(&args, &plan, Path::new("server"), Path::new("s.json"), None);
        assert_eq!(values(&server, "--room-capacity"), ["7"]);
        assert_eq!(values(&server, "--tick-hz"), ["20"]);
        assert_eq!(values(&server, "--max-connections"), ["6000"]);
    }

    #[test]
    fn extra_flags_cannot_take_what_the_runner_reads() {
        for (flag, refused) in [
            ("--bot-arg=--json=x.json", "--bot-arg cannot set --json"),
            ("--bot-arg=--addr", "--bot-arg cannot set --addr"),
            ("--bot-arg=--bots=3", "use bench's own --bots"),
            ("--server-arg=--stats-json=x.json", "--server-arg cannot set --stats-json"),
        ] {
            let err = bench(&["--scenario=s1", flag]).validate().unwrap_err();
            assert!(err.contains(refused), "{flag}: {err}");
        }
        bench(&["--scenario=s1", "--bot-arg=--move-pattern=spread", "--server-arg=--tick-hz=20"]).validate().unwrap();
    }

    #[test]
    fn pinned_processes_run_under_taskset_on_their_core() {
        let c = command(Path::new("/bin/server"), Some(1));
        assert_eq!(c.get_program(), "taskset");
        assert_eq!(c.get_args().collect::<Vec<_>>(), ["-c", "1", "/bin/server"]);
        assert_eq!(command(Path::new("/bin/server"), None).get_program(), "/bin/server");
    }

    #[test]
    fn over_websocket_the_server_opens_its_port_and_the_bots_connect_to_it() {
        let args = bench(&["--scenario", "s1", "--transport", "ws"]);
        let plan = args.plan();
        let server = server_command(&args, &plan, Path::new("/bin/server"), Path::new("/tmp/s.json"), None);
        assert_eq!(values(&server, "--ws-bind"), ["127.0.0.1:0"]);
        let bots =
            parse_bots(&bots_command(&args, &plan, 1, Path::new("/bin/client_bot"), addr(), Path::new("/tmp/b"), None));
        assert_eq!(bots.transport, BotTransport::Ws);
        // Over TCP, neither.
        let args = bench(&["--scenario", "s1"]);
        let server = server_command(&args, &plan, Path::new("/bin/server"), Path::new("/tmp/s.json"), None);
        assert!(values(&server, "--ws-bind").is_empty());
        let bots =
            parse_bots(&bots_command(&args, &plan, 1, Path::new("/bin/client_bot"), addr(), Path::new("/tmp/b"), None));
        assert_eq!(bots.transport, BotTransport::Tcp);
        // The floor's load speaks TCP only.
        assert!(bench(&["--scenario", "s5", "--floor", "--transport", "ws"]).validate().is_err());
    }

    #[test]
    fn the_bots_address_is_read_from_the_line_of_their_transport() {
        let log = "INFO listening on 127.0.0.1:4001\nINFO listening for WebSocket clients on 127.0.0.1:4002\n";
        let tcp = listening_addr(std::io::Cursor::new(log.as_bytes().to_vec()), BotTransport::Tcp).unwrap();
        assert_eq!(tcp, "127.0.0.1:4001".parse().unwrap());
        let ws = listening_addr(std::io::Cursor::new(log.as_bytes().to_vec()), BotTransport::Ws).unwrap();
        assert_eq!(ws, "127.0.0.1:4002".parse().unwrap());
    }
}
