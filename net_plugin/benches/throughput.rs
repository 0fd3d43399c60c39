//! Scenario benchmark: N client sessions × M moves through the plugin, in both directions.
//!
//! The server (this process, pinned to core 0 when `taskset` exists) runs the plugin with one
//! game system, a room: each `C_Move` received is broadcast as `S_BroadcastMove` to all N
//! sessions. The load (a child process of this binary, pinned to core 1) opens N connections
//! with the plugin's client side; each keeps W moves in flight (it sends another when the echo
//! of its own comes back), so the run is closed-loop and measures what the server sustains.
//!
//! Prints moves in/s, packets delivered/s, and the server process's CPU time per delivered
//! packet. `cargo bench -p net_plugin --bench throughput`; `BENCH_N`, `BENCH_M`, `BENCH_W`,
//! `BENCH_FRAME_MS` change the scenario.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bevy_app::{App, AppExit, Update};
use bevy_ecs::prelude::*;
use net_plugin::{
    ClientOutbox, ClientPlugin, ClientReceived, Connected, Connector, NetConfig, NetStats, Outbox, Received,
    ServerPlugin,
};
use shared::{C_Move, S_BroadcastMove};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then only check it builds.
    if !std::env::args().any(|a| a == "--bench") && std::env::var("BENCH_ROLE").is_err() {
        return;
    }
    match std::env::var("BENCH_ROLE").as_deref() {
        Ok("client") => run_load(),
        _ => run_server(),
    }
}

/// CPU seconds (user + system) this process has used, from `/proc/self/stat` (in 1/100 s).
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state is field 3; utime and stime are fields 14 and 15.
    let ticks = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(14) + ticks(15)) / 100.0
}

fn taskset_available() -> bool {
    Command::new("taskset").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// A room of everyone: each move goes to every session, the mover included.
fn broadcast_moves(mut moves: MessageReader<Received<C_Move>>, mut outbox: Outbox, mut targets: Local<Vec<Entity>>) {
    targets.clear();
    targets.extend(outbox.connections());
    for m in moves.read() {
        let p = &m.packet;
        let packet = S_BroadcastMove { player_id: 0, pos_x: p.pos_x, pos_y: p.pos_y, pos_z: p.pos_z };
        outbox.broadcast(targets.iter().copied(), &packet);
    }
}

fn run_server() {
    if taskset_available() && std::env::var("BENCH_PINNED").is_err() {
        // Re-run this binary on core 0, so the load's core stays its own.
        let exe = std::env::current_exe().expect("own path");
        let status = Command::new("taskset")
            .arg("-c")
            .arg("0")
            .arg(exe)
            .args(std::env::args().skip(1))
            .env("BENCH_PINNED", "1")
            .status()
            .expect("run under taskset");
        std::process::exit(status.code().unwrap_or(1));
    }
    let n = env_or("BENCH_N", 200);
    let m = env_or("BENCH_M", 300);
    let w = env_or("BENCH_W", 4);
    let frame = Duration::from_millis(env_or("BENCH_FRAME_MS", 16));

    let config = NetConfig { inbound_rate: None, io_threads: 1, ..NetConfig::default() };
    let net = ServerPlugin::bind("127.0.0.1:0", config).expect("bind loopback");
    let addr = net.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let server_stop = stop.clone();
    let server = std::thread::Builder::new()
        .name("server-ecs".into())
        .spawn(move || {
            let mut app = App::new();
            app.add_plugins(net).add_systems(Update, broadcast_moves);
            app.finish();
            app.cleanup();
            let mut ticks: Vec<f64> = Vec::new();
            while !server_stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                app.update();
                let spent = start.elapsed();
                ticks.push(spent.as_secs_f64() * 1e3);
                std::thread::sleep(frame.saturating_sub(spent));
            }
            let stats = app.world().resource::<NetStats>().clone();
            app.world_mut().write_message(AppExit::Success);
            app.update();
            ticks.sort_by(f64::total_cmp);
            (stats, ticks)
        })
        .expect("server thread");

    let exe = std::env::current_exe().expect("own path");
    let mut load = if taskset_available() {
        let mut c = Command::new("taskset");
        c.arg("-c").arg("1").arg(exe);
        c
    } else {
        Command::new(exe)
    };
    let cpu_before = process_cpu_seconds();
    let started = Instant::now();
    let mut child = load
        .env("BENCH_ROLE", "client")
        .env("BENCH_ADDR", addr.to_string())
        .env("BENCH_N", n.to_string())
        .env("BENCH_M", m.to_string())
        .env("BENCH_W", w.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the load process");
    let report = BufReader::new(child.stdout.take().expect("piped")).lines().map_while(Result::ok).last();
    let _ = child.wait();
    let wall = started.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds() - cpu_before;
    stop.store(true, Ordering::Relaxed);
    let (stats, ticks) = server.join().expect("server thread");

    let report = report.unwrap_or_default();
    let field = |name: &str| -> f64 {
        report
            .split(&format!("\"{name}\":"))
            .nth(1)
            .and_then(|r| r.split([',', '}']).next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let (moves, delivered, load_secs) = (field("moves"), field("delivered"), field("seconds"));
    let p50 = ticks.get(ticks.len() / 2).copied().unwrap_or(0.0);
    let p99 = ticks.get(ticks.len() * 99 / 100).copied().unwrap_or(0.0);
    println!("scenario: {n} sessions x {m} moves, window {w}, server frame {frame:?}");
    println!("load report: {report}");
    println!(
        "moves in: {:.0}/s  packets delivered: {:.0}/s  (load phase {load_secs:.2} s, wall {wall:.2} s)",
        moves / load_secs,
        delivered / load_secs
    );
    println!(
        "server CPU: {cpu:.2} s = {:.1}% of a core; {:.1} ns per delivered packet; {:.2} M delivered packets per CPU-second",
        100.0 * cpu / wall,
        1e9 * cpu / delivered.max(1.0),
        delivered / cpu.max(1e-9) / 1e6
    );
    println!(
        "server: packets_in {} packets_out {} flushes {} bytes_out {}; frame time p50 {p50:.2} ms p99 {p99:.2} ms",
        stats.packets_in, stats.packets_out, stats.flushes, stats.bytes_out
    );
}

/// One load connection's progress.
#[derive(Component)]
struct Load {
    index: u32,
    sent: u64,
    echoed: u64,
}

#[derive(Resource)]
struct Plan {
    addr: SocketAddr,
    n: u64,
    m: u64,
    w: u64,
    connected: u64,
    delivered: u64,
    started: Option<Instant>,
}

fn connect(mut connector: Connector, plan: Res<Plan>, mut done: Local<bool>) {
    if !*done {
        for _ in 0..plan.n {
            connector.connect(plan.addr);
        }
        *done = true;
    }
}

fn on_connected(mut connected: MessageReader<Connected>, mut commands: Commands, mut plan: ResMut<Plan>) {
    for c in connected.read() {
        commands.entity(c.entity).insert(Load { index: plan.connected as u32, sent: 0, echoed: 0 });
        plan.connected += 1;
    }
}

fn on_broadcast(
    mut moves: MessageReader<ClientReceived<S_BroadcastMove>>,
    mut loads: Query<&mut Load>,
    mut plan: ResMut<Plan>,
) {
    for m in moves.read() {
        plan.delivered += 1;
        if let Ok(mut load) = loads.get_mut(m.from)
            && m.packet.pos_x == load.index as f32
        {
            load.echoed += 1;
        }
    }
}

fn send_moves(mut loads: Query<(Entity, &mut Load)>, mut plan: ResMut<Plan>, mut outbox: ClientOutbox) {
    if plan.connected < plan.n {
        return;
    }
    plan.started.get_or_insert_with(Instant::now);
    for (entity, mut load) in &mut loads {
        while load.sent < plan.m && load.sent - load.echoed < plan.w {
            let mv = C_Move { pos_x: load.index as f32, pos_y: 0.0, pos_z: load.sent as f32 };
            outbox.send(entity, &mv);
            load.sent += 1;
        }
    }
}

fn run_load() {
    let plan = Plan {
        addr: std::env::var("BENCH_ADDR").expect("BENCH_ADDR").parse().expect("an address"),
        n: env_or("BENCH_N", 200),
        m: env_or("BENCH_M", 300),
        w: env_or("BENCH_W", 4),
        connected: 0,
        delivered: 0,
        started: None,
    };
    let expected = plan.n * plan.n * plan.m;
    let mut app = App::new();
    app.add_plugins(ClientPlugin::new(NetConfig { io_threads: 1, ..NetConfig::client_default() }).expect("client"))
        .insert_resource(plan)
        .add_systems(Update, (connect, on_connected, on_broadcast, send_moves).chain());
    app.finish();
    app.cleanup();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        app.update();
        let plan = app.world().resource::<Plan>();
        if plan.delivered >= expected || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let plan = app.world().resource::<Plan>();
    let seconds = plan.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
    println!(
        "{{\"moves\":{},\"delivered\":{},\"expected\":{},\"seconds\":{:.4}}}",
        plan.n * plan.m,
        plan.delivered,
        expected,
        seconds
    );
}
