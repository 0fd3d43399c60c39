//! The syscall floor and the light load of `client_bot bench --floor`, over real TCP on
//! loopback with a few connections: the floor answers each whole move once, the light load's
//! moves reach the floor and the real server, which takes them and echoes them. How fast either
//! is, is measured in release mode (`docs/benchmarks.md`), not here.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bevy_app::Update;
use bevy_ecs::prelude::*;
use client_bot::floor::{Floor, MOVE_BYTES};
use client_bot::light_load::{self, LightLoadArgs, LoadReport};
use net_plugin::testing::AppThread;
use net_plugin::{Received, ServerPlugin};
use server::ServerConfig;
use shared::C_Move;

/// Long enough for anything on loopback: a liveness bound, not a measurement.
const PATIENCE: Duration = Duration::from_secs(10);

/// A floor answering `answer` bytes per move, on its own thread; stopped when dropped.
struct FloorThread {
    addr: SocketAddr,
    stop: client_bot::floor::Stop,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl FloorThread {
    fn start(answer: usize) -> FloorThread {
        Self::start_with_tick(answer, None)
    }

    fn start_with_tick(answer: usize, tick: Option<Duration>) -> FloorThread {
        let floor = Floor::bind(0, answer).unwrap().with_tick(tick);
        let addr = floor.local_addr();
        let stop = floor.stopper();
        FloorThread { addr, stop, thread: Some(std::thread::spawn(move || floor.run())) }
    }
}

impl Drop for FloorThread {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(thread) = self.thread.take() {
            let ran = thread.join().expect("the floor did not panic");
            if !std::thread::panicking() {
                ran.expect("the floor stops cleanly");
            }
        }
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

#[test]
fn the_floor_writes_one_answer_per_whole_move_and_carries_the_rest_over() {
    let floor = FloorThread::start(100);
    let mut a = connect(floor.addr);
    // One move and 4 bytes of the next: one answer, the 4 bytes kept.
    a.write_all(&[1; MOVE_BYTES + 4]).unwrap();
    let mut answer = vec![7u8; 100];
    a.read_exact(&mut answer).unwrap();
    assert_eq!(answer, [0; 100], "the prebuilt answer");
    // The 12 bytes that complete it, and two moves in one write: three answers.
    a.write_all(&[2; 12 + 2 * MOVE_BYTES]).unwrap();
    let mut answers = vec![7u8; 300];
    a.read_exact(&mut answers).unwrap();
    assert!(answers.iter().all(|b| *b == 0));

    // Other connections at once, each with its own count and a move left unfinished: nothing
    // more than one answer per whole move comes back before the floor closes them.
    let mut others: Vec<TcpStream> = (0..3).map(|_| connect(floor.addr)).collect();
    for (k, stream) in others.iter_mut().enumerate() {
        for _ in 0..=k {
            stream.write_all(&[3; MOVE_BYTES]).unwrap();
        }
        stream.write_all(&[3; 7]).unwrap();
    }
    for (k, mut stream) in others.into_iter().enumerate() {
        stream.shutdown(Shutdown::Write).unwrap();
        let mut all = Vec::new();
        stream.read_to_end(&mut all).unwrap();
        assert_eq!(all.len(), 100 * (k + 1), "connection {k}: {} whole moves", k + 1);
    }
    a.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    a.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "the first connection had every answer already");
}

#[test]
fn with_a_tick_the_floor_answers_each_move_at_the_next_tick_not_at_once() {
    let floor = FloorThread::start_with_tick(100, Some(Duration::from_secs(2)));
    let mut a = connect(floor.addr);
    a.write_all(&[1; 2 * MOVE_BYTES + 3]).unwrap();
    // The tick is 2 s away: nothing yet.
    a.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let early = a.read(&mut [0u8; 1]);
    assert!(early.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock), "{early:?}");
    // At the tick: one answer per whole move.
    a.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut answers = vec![7u8; 200];
    a.read_exact(&mut answers).unwrap();
    assert!(answers.iter().all(|b| *b == 0));
    a.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    a.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "two answers, not three: the 3 bytes are no move");
}

/// The light load: `connections` against `addr`, a second of moves counted, read on for 2 s.
fn load(addr: SocketAddr, connections: u32, half: f32) -> LightLoadArgs {
    LightLoadArgs {
        addr,
        connections,
        warm_up: Duration::ZERO,
        window: Duration::from_secs(1),
        linger: Duration::from_secs(2),
        interval: Duration::from_millis(250),
        half,
        step: 5.0,
        watch: Some(std::process::id()),
        seed: 7,
        json: None,
        echoes: false,
    }
}

fn assert_whole(report: &LoadReport, connections: u32) {
    assert_eq!(
        (report.connections, report.connected, report.closed_early),
        (connections, connections, 0),
        "{report:?}"
    );
    assert_eq!(report.moves_failed, 0, "{report:?}");
    // Every 250 ms from the window's start to its end: 4 rounds of every connection.
    assert_eq!(report.window.moves_due, 4 * u64::from(connections), "{report:?}");
    assert_eq!(report.moves_sent, report.window.moves_due, "no moves outside the window without a warm-up");
    assert!(report.window.watched_cpu_pct.is_some() && report.window.load_cpu_pct >= 0.0, "{report:?}");
}

#[test]
fn the_light_load_moves_every_connection_and_counts_the_floors_answers() {
    let floor = FloorThread::start(64);
    let report = light_load::run(&load(floor.addr, 5, 1000.0)).unwrap();
    assert_whole(&report, 5);
    assert_eq!(report.bytes_read, report.moves_sent * 64, "one answer per move: {report:?}");
    assert!(report.window.bytes_read <= report.bytes_read);
}

/// Counts the moves the server took in.
#[derive(Resource, Clone, Default)]
struct MovesIn(Arc<AtomicU64>);

fn count_moves(mut moves: MessageReader<Received<C_Move>>, count: Res<MovesIn>) {
    count.0.fetch_add(moves.read().count() as u64, Ordering::Relaxed);
}

#[test]
fn the_real_server_takes_the_light_loads_moves_and_echoes_them() {
    // S5's world, scaled: 2,000 wide, random spawn points, view radius 80.
    let world = server::WorldConfig {
        min: [-1000.0, -10.0, -1000.0],
        max: [1000.0, 10.0, 1000.0],
        spawn: server::Spawn::Random,
        view_radius: 80.0,
        ..server::WorldConfig::default()
    };
    let config =
        ServerConfig { bind: "127.0.0.1:0".into(), stats_interval: Duration::ZERO, world, ..ServerConfig::default() };
    let net = ServerPlugin::bind(&config.bind, config.net.clone()).unwrap();
    let addr = net.local_addr();
    let moves_in = MovesIn::default();
    let counted = moves_in.0.clone();
    let server = AppThread::spawn(move || {
        let mut app = server::app(&config, net, None);
        app.insert_resource(moves_in).add_systems(Update, count_moves);
        app
    });

    let report = light_load::run(&LightLoadArgs { echoes: true, ..load(addr, 3, 1000.0) }).unwrap();
    assert_whole(&report, 3);
    // Every move of the window came back to its mover, recognised among the others' moves.
    let echoes = report.echoes.clone().expect("--echoes");
    assert_eq!((echoes.echoed, echoes.lost), (report.window.moves_sent, 0), "{report:?}");
    assert!(echoes.rtt_p50_ms > 0.0 && echoes.rtt_max_ms < 2000.0, "{echoes:?}");
    let sent = report.moves_sent;
    assert!(
        server.wait_until(PATIENCE, move |_| counted.load(Ordering::Relaxed) >= sent),
        "the server took in every move"
    );
    // Each move comes back to its mover at least (an `S_BroadcastMove` is 20 bytes), on top
    // of the player list and the enters.
    assert!(report.bytes_read >= report.moves_sent * 20, "{report:?}");
}
