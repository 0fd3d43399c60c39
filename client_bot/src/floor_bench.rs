//! S5 against the syscall floor: `client_bot bench --scenario s5 --floor`.
//!
//! Absolute CPU figures on a shared machine say little: the same binary measures 20% apart from
//! one hour to the next. A ratio to what the machine's kernel costs for the same traffic, both
//! measured in the same run, says how far the server is from the best any server could do. So
//! each run is two phases under the same [light load](crate::light_load) (the same connections,
//! seed, rhythm and window):
//!
//! 1. the release server with the scenario's settings (S5: one room, a world of 2,000, random
//!    spawn, view radius 80), whose CPU over the window and bytes written per move are
//!    measured;
//! 2. the [floor](crate::floor) answering each move with that many bytes, whose CPU over the
//!    window is measured the same way.
//!
//! The server or the floor runs on core 0, the load on core 1 (with `taskset`, unless
//! `--no-pin`). The ratio is server CPU / floor CPU. A run whose load used
//! [`LOAD_CPU_LIMIT_PCT`](crate::light_load::LOAD_CPU_LIMIT_PCT) or more of its core in either
//! phase, fell behind its rhythm or lost connections is reported as not valid: its figures
//! measure the load, not the server.

use std::path::Path;
use std::process::{Command, Stdio};

use serde::Serialize;

use crate::BotTransport;
use crate::bench::{self, BenchArgs, Guard, Plan};
use crate::light_load::LoadReport;

/// One run's results: both phases and their ratio.
#[derive(Debug, Clone, Serialize)]
pub struct FloorResult {
    /// Which run, from 1.
    pub run: u32,
    /// The scenario's parameters (its bots are the load's connections).
    pub plan: Plan,
    /// The server and the floor on core 0, the load on core 1.
    pub pinned: bool,
    /// The floor's answer: the server's bytes written per move over its window, rounded.
    pub answer_bytes: u32,
    /// The server's CPU over the window, % of one core.
    pub server_cpu_pct: f64,
    /// The floor's CPU over the window, % of one core.
    pub floor_cpu_pct: f64,
    /// `server_cpu_pct / floor_cpu_pct`.
    pub ratio: f64,
    /// The load's CPU, the highest of the two phases, % of one core.
    pub load_cpu_pct: f64,
    /// No reason below.
    pub valid: bool,
    /// Why the run is not valid, each reason prefixed by its phase.
    pub not_valid_because: Vec<String>,
    /// The load's report against the server.
    pub server_load: LoadReport,
    /// The load's report against the floor.
    pub floor_load: LoadReport,
}

/// The header of [`row`].
pub const HEADER: &str =
    "scenario run conns bytes/move server_cpu% floor_cpu% ratio load_cpu%(server/floor) moves/s result";

/// One result row.
pub fn row(r: &FloorResult) -> String {
    let w = &r.server_load.window;
    format!(
        "S5-floor {} {} {} {:.1} {:.1} {:.2}x {:.1}/{:.1} {:.0} {}",
        r.run,
        r.plan.bots,
        r.answer_bytes,
        r.server_cpu_pct,
        r.floor_cpu_pct,
        r.ratio,
        r.server_load.window.load_cpu_pct,
        r.floor_load.window.load_cpu_pct,
        w.moves_sent as f64 / w.seconds,
        if r.valid { "valid".to_string() } else { format!("NOT VALID: {}", r.not_valid_because.join("; ")) },
    )
}

/// The floor's answer for a server that wrote `bytes_per_move`: at least one byte.
pub fn answer_bytes(bytes_per_move: f64) -> u32 {
    if bytes_per_move.is_finite() { bytes_per_move.round().clamp(1.0, 1_048_576.0) as u32 } else { 1 }
}

/// Puts the two phases together: the ratio and the verdict.
pub fn result(
    run: u32,
    plan: &Plan,
    pinned: bool,
    answer_bytes: u32,
    server_load: LoadReport,
    floor_load: LoadReport,
) -> FloorResult {
    let server_cpu_pct = server_load.window.watched_cpu_pct.unwrap_or(f64::NAN);
    let floor_cpu_pct = floor_load.window.watched_cpu_pct.unwrap_or(f64::NAN);
    let mut why: Vec<String> = server_load.not_valid_because().into_iter().map(|w| format!("server: {w}")).collect();
    why.extend(floor_load.not_valid_because().into_iter().map(|w| format!("floor: {w}")));
    if !(server_cpu_pct.is_finite() && floor_cpu_pct.is_finite() && floor_cpu_pct > 0.0) {
        why.push("no CPU figure for the server or the floor".into());
    }
    FloorResult {
        run,
        plan: plan.clone(),
        pinned,
        answer_bytes,
        server_cpu_pct,
        floor_cpu_pct,
        ratio: server_cpu_pct / floor_cpu_pct,
        load_cpu_pct: server_load.window.load_cpu_pct.max(floor_load.window.load_cpu_pct),
        valid: why.is_empty(),
        not_valid_because: why,
        server_load,
        floor_load,
    }
}

/// The light load's command line: `connections` against `addr`, watching `pid`, the run
/// number as seed (the same in both phases of a run), its report to `json`.
pub fn load_command(
    args: &BenchArgs,
    plan: &Plan,
    run: u32,
    exe: &Path,
    addr: std::net::SocketAddr,
    pid: u32,
    json: &Path,
    core: Option<usize>,
) -> Command {
    let mut c = bench::command(exe, core);
    c.arg("light-load")
        .arg(format!("--addr={addr}"))
        .arg(format!("--connections={}", plan.bots))
        .arg(format!("--warm-up={}", humantime::format_duration(args.warm_up)))
        .arg(format!("--window={}", humantime::format_duration(args.window)))
        .arg(format!("--watch={pid}"))
        .arg(format!("--seed={run}"))
        .arg("--json")
        .arg(json);
    if let Some(world) = plan.world {
        c.arg(format!("--half={}", world.size as f32 / 2.0));
    }
    c.env("RUST_LOG", "warn");
    c
}

/// The floor's command line.
pub fn floor_command(exe: &Path, answer_bytes: u32, core: Option<usize>) -> Command {
    let mut c = bench::command(exe, core);
    c.arg("floor").arg("--port=0").arg(format!("--answer-bytes={answer_bytes}")).env("RUST_LOG", "warn");
    c
}

/// Runs `args.runs` runs; prints a row each, writes `--json`.
pub fn run(args: &BenchArgs) -> Result<Vec<FloorResult>, String> {
    bench::repeat(args, run_once, row)
}

fn run_once(
    args: &BenchArgs,
    plan: &Plan,
    run: u32,
    server: &Path,
    exe: &Path,
    pinned: bool,
) -> Result<FloorResult, String> {
    let dir = std::env::temp_dir().join(format!("client_bot-floor-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let core = |n| pinned.then_some(n);

    // 1. The server under the load.
    let command = bench::server_command(args, plan, server, &dir.join("server.json"), core(0));
    let server_load = measure(
        command,
        server,
        |addr, pid| load_command(args, plan, run, exe, addr, pid, &dir.join("load-server.json"), core(1)),
        &dir.join("load-server.json"),
    )?;
    let answer = answer_bytes(server_load.window.bytes_per_move);

    // 2. The floor, answering as much per move, under the same load.
    let floor_load = measure(
        floor_command(exe, answer, core(0)),
        exe,
        |addr, pid| load_command(args, plan, run, exe, addr, pid, &dir.join("load-floor.json"), core(1)),
        &dir.join("load-floor.json"),
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(result(run, plan, pinned, answer, server_load, floor_load))
}

/// Starts `target` (which logs `listening on ADDR`), runs the load made by `load` against it
/// to its end, stops the target, and reads the load's report from `json`.
fn measure(
    mut target: Command,
    program: &Path,
    load: impl FnOnce(std::net::SocketAddr, u32) -> Command,
    json: &Path,
) -> Result<LoadReport, String> {
    let mut child = target
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let target = Guard(child);
    let pid = target.0.id();
    let addr = bench::listening_addr(stderr, BotTransport::Tcp)?;
    let status = load(addr, pid).stdout(Stdio::null()).status().map_err(|e| format!("cannot start the load: {e}"))?;
    // Stopped at once: nothing of it is read after the window.
    drop(target);
    // A load that ran but was not valid (exit code 1) still reports: the verdict is the run's.
    std::fs::read_to_string(json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .ok_or_else(|| format!("the light load wrote no report ({status})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::light_load::Window;

    fn load(load_cpu_pct: f64, watched_cpu_pct: Option<f64>) -> LoadReport {
        LoadReport {
            connections: 10,
            connected: 10,
            closed_early: 0,
            moves_sent: 400,
            moves_failed: 0,
            bytes_read: 400_000,
            window: Window {
                seconds: 10.0,
                moves_sent: 400,
                moves_due: 400,
                bytes_read: 400_000,
                bytes_per_move: 1000.0,
                load_cpu_pct,
                watched_cpu_pct,
            },
            echoes: None,
        }
    }

    fn plan() -> Plan {
        bench::Scenario::S5.plan()
    }

    #[test]
    fn the_ratio_is_server_cpu_over_floor_cpu_and_the_load_reported_is_its_busier_phase() {
        let r = result(1, &plan(), true, 1000, load(30.0, Some(60.0)), load(40.0, Some(40.0)));
        assert!(r.valid, "{:?}", r.not_valid_because);
        assert_eq!((r.server_cpu_pct, r.floor_cpu_pct, r.ratio, r.load_cpu_pct), (60.0, 40.0, 1.5, 40.0));
        assert!(row(&r).contains(" 1.50x ") && row(&r).ends_with("valid"), "{}", row(&r));
    }

    #[test]
    fn a_load_saturated_in_either_phase_makes_the_run_not_valid() {
        let r = result(1, &plan(), true, 1000, load(30.0, Some(60.0)), load(95.0, Some(40.0)));
        assert!(!r.valid);
        assert!(matches!(&r.not_valid_because[..], [one] if one.starts_with("floor: ") && one.contains("95%")));
        assert!(row(&r).contains("NOT VALID: floor: the load generator used 95% of its core"), "{}", row(&r));
        let r = result(1, &plan(), true, 1000, load(91.0, Some(60.0)), load(20.0, Some(40.0)));
        assert!(!r.valid && r.not_valid_because[0].starts_with("server: "));
        assert_eq!(r.load_cpu_pct, 91.0);
        let r = result(1, &plan(), true, 1000, load(30.0, Some(60.0)), load(20.0, None));
        assert!(!r.valid, "no figure for the floor, no ratio");
    }

    #[test]
    fn the_floors_answer_is_the_servers_bytes_per_move_rounded_and_at_least_one() {
        assert_eq!(answer_bytes(1045.6), 1046);
        assert_eq!(answer_bytes(0.2), 1);
        assert_eq!(answer_bytes(f64::NAN), 1);
    }

    #[test]
    fn the_load_gets_the_scenarios_connections_and_world_and_watches_the_target() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let args = <Cli as clap::Parser>::try_parse_from([
            "bench",
            "--scenario=s5",
            "--floor",
            "--bots=5000",
            "--warm-up=10s",
            "--window=20s",
        ])
        .unwrap()
        .bench;
        args.validate().unwrap();
        let plan = args.plan();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 4321));
        let c = load_command(&args, &plan, 2, Path::new("/bin/client_bot"), addr, 77, Path::new("l.json"), Some(1));
        let argv: Vec<String> = c.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(c.get_program(), "taskset");
        assert_eq!(argv[..4], ["-c", "1", "/bin/client_bot", "light-load"]);
        for expected in [
            "--addr=127.0.0.1:4321",
            "--connections=5000",
            "--warm-up=10s",
            "--window=20s",
            "--watch=77",
            "--seed=2",
            "--half=1000",
        ] {
            assert!(argv.iter().any(|a| a == expected), "{expected} in {argv:?}");
        }
        let c = floor_command(Path::new("/bin/client_bot"), 812, Some(0));
        let argv: Vec<String> = c.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(argv, ["-c", "0", "/bin/client_bot", "floor", "--port=0", "--answer-bytes=812"]);
    }
}
