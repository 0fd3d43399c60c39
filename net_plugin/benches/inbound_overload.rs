//! Scenario benchmark: the inbound queue under overload.
//!
//! `BENCH_N` raw TCP clients (threads of this process, default 200) each write moves as fast as
//! the socket takes them, with no rate limit, at a server whose frames are slow (each frame sleeps
//! `BENCH_FRAME_MS`, default 16 ms, and the queue holds `BENCH_QUEUE` packets, default 1,024):
//! the readers fill the queue at once and then wait for the ECS nearly all the time.
//!
//! Prints, per second of the run: packets delivered, times a reader waited for room and the
//! wake-ups that cost (one per wait with the fair semaphore; with the earlier 1 ms sleep-and-retry,
//! one per retry, which is what its counter counted), and the CPU seconds of the I/O threads.
//! `cargo bench -p net_plugin --bench inbound_overload`.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bevy_app::{App, Update};
use bevy_ecs::prelude::*;
use net_plugin::testing::AppThread;
use net_plugin::{NetConfig, NetStats, Received, ServerPlugin};
use shared::{C_Move, encode_to_vec};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// CPU seconds (user + system) of this process's threads whose name starts with `prefix`.
fn threads_cpu_seconds(prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0.0 };
    tasks
        .flatten()
        .filter_map(|task| {
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            if !comm.trim().starts_with(prefix) {
                return None;
            }
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
            // After the name: state is field 3; utime and stime are fields 14 and 15.
            let ticks = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
            Some((ticks(14) + ticks(15)) / 100.0)
        })
        .sum()
}

#[derive(Resource)]
struct SlowFrame(Duration);

fn slow_frame(frame: Res<SlowFrame>, mut moves: MessageReader<Received<C_Move>>) {
    moves.read().for_each(drop);
    std::thread::sleep(frame.0);
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then only check it builds.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n = env_or("BENCH_N", 200) as usize;
    let frame = Duration::from_millis(env_or("BENCH_FRAME_MS", 16));
    let queue = env_or("BENCH_QUEUE", 1024) as usize;
    let seconds = env_or("BENCH_SECONDS", 5);
    let config = NetConfig {
        inbound_rate: None,
        inbound_queue: queue,
        max_packet_size: 4096,
        io_threads: 1,
        ..NetConfig::default()
    };
    let net = ServerPlugin::bind("127.0.0.1:0", config).expect("bind a loopback port");
    let addr = net.local_addr();
    let server = AppThread::spawn(move || {
        let mut app = App::new();
        app.add_plugins(net).insert_resource(SlowFrame(frame)).add_systems(Update, slow_frame);
        app
    });

    let stop = Arc::new(AtomicBool::new(false));
    let move_bytes: Vec<u8> =
        (0..64).flat_map(|i| encode_to_vec(&C_Move { pos_x: i as f32, pos_y: 0.0, pos_z: 0.0 }).unwrap()).collect();
    let clients: Vec<_> = (0..n)
        .map(|_| {
            let stop = stop.clone();
            let bytes = move_bytes.clone();
            std::thread::spawn(move || {
                let Ok(mut stream) = TcpStream::connect(addr) else { return };
                let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
                while !stop.load(Ordering::Relaxed) {
                    if let Err(e) = stream.write_all(&bytes)
                        && !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
                    {
                        return;
                    }
                }
            })
        })
        .collect();

    // Warm up: every client connected and the queue full.
    std::thread::sleep(Duration::from_secs(1));
    let stats = |server: &AppThread| server.run(|app| app.world().resource::<NetStats>().clone());
    let (before, cpu_before, t0) = (stats(&server), threads_cpu_seconds("net-server-io"), Instant::now());
    std::thread::sleep(Duration::from_secs(seconds));
    let (after, cpu_after, elapsed) =
        (stats(&server), threads_cpu_seconds("net-server-io"), t0.elapsed().as_secs_f64());
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let _ = client.join();
    }
    drop(server);

    let per_second = |a: u64, b: u64| (b - a) as f64 / elapsed;
    println!(
        "inbound_overload n={n} frame={frame:?} queue={queue}: sessions {}, delivered {:.0}/s, \
         waits (= wake-ups) {:.0}/s, I/O threads' CPU {:.1}% of a core",
        after.sessions,
        per_second(before.packets_in, after.packets_in),
        per_second(before.inbound_waits, after.inbound_waits),
        (cpu_after - cpu_before) / elapsed * 100.0,
    );
}
