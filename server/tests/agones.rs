//! Agones, without Kubernetes: the server (in the test, or the binary with `--agones`) against
//! a fake SDK sidecar (`agones_fake`: a gRPC server on loopback built from the SDK's own .proto
//! files) that records every call and fails on demand. Feature `agones` only.

#![cfg(feature = "agones")]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use agones_fake::{Call, FakeSidecar, Rpc};
use net_plugin::ServerPlugin;
use net_plugin::testing::AppThread;
use server::agones::AgonesPlugin;
use server::{AgonesConfig, ServerConfig, StopRequested};
use support::process::{server_command, spawn_command};
use support::{Msg, WAIT, join, test_config};

/// The connection limit of these tests: the Counter's capacity.
const CAPACITY: usize = 50;

fn agones(health_interval: Duration) -> AgonesConfig {
    AgonesConfig { enabled: true, health_interval, shutdown_when_empty: false }
}

/// The server app with the Agones plugin talking to `port`.
fn start(agones: AgonesConfig, port: u16) -> (AppThread, SocketAddr) {
    let mut config = ServerConfig { drain_timeout: Duration::from_secs(60), ..test_config() };
    config.net.max_connections = CAPACITY;
    let net = ServerPlugin::bind(&config.bind, config.net.clone()).expect("bind loopback");
    let addr = net.local_addr();
    let app = AppThread::spawn(move || {
        let mut app = server::app(&config, net, None);
        app.add_plugins(AgonesPlugin { config: agones, capacity: CAPACITY, sdk_port: Some(port) });
        app
    });
    (app, addr)
}

fn count(calls: &[Call], call: &Call) -> usize {
    calls.iter().filter(|c| *c == call).count()
}

fn health_pings_between(sidecar: &FakeSidecar, from: Instant, to: Instant) -> usize {
    sidecar.records().iter().filter(|r| r.call == Call::Health && r.at > from && r.at < to).count()
}

fn wait_players(sidecar: &FakeSidecar, players: i64) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if sidecar.players() == (players, CAPACITY as i64) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn ready_after_the_first_frame_then_health_pings_that_stop_while_the_loop_is_blocked() {
    let sidecar = FakeSidecar::start();
    let (server, _addr) = start(agones(Duration::from_millis(100)), sidecar.port());
    assert!(sidecar.wait_for(WAIT, |calls| calls.contains(&Call::Ready)), "{:?}", sidecar.calls());
    assert_eq!(sidecar.state(), "Ready");
    assert!(sidecar.wait_for(WAIT, |calls| count(calls, &Call::Health) >= 3), "pings while the loop runs");

    // The game loop is stuck for 2.5 s: no pings after the first second (a ping already on its
    // way may land late on a loaded machine), where 10 would have come.
    let blocked = Instant::now();
    server.run(|_| std::thread::sleep(Duration::from_millis(2500)));
    let unblocked = Instant::now();
    let during = health_pings_between(&sidecar, blocked + Duration::from_secs(1), unblocked);
    assert_eq!(during, 0, "pings while the loop was blocked: {:?}", sidecar.records());
    // And they come back with the loop.
    let deadline = Instant::now() + WAIT;
    while health_pings_between(&sidecar, unblocked, Instant::now()) < 2 {
        assert!(Instant::now() < deadline, "pings resume");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(count(&sidecar.calls(), &Call::Ready), 1, "Ready once");
}

#[test]
fn the_players_counter_follows_connects_and_leaves() {
    let sidecar = FakeSidecar::start();
    let (_server, addr) = start(agones(Duration::from_secs(1)), sidecar.port());
    assert!(wait_players(&sidecar, 0), "capacity set to the connection limit: {:?}", sidecar.players());
    let (mut a, _) = join(addr);
    let (b, _) = join(addr);
    assert!(wait_players(&sidecar, 2), "{:?}", sidecar.players());
    a.send_leave();
    assert!(wait_players(&sidecar, 1), "a C_LeaveGame is a leave: {:?}", sidecar.players());
    drop(b);
    assert!(wait_players(&sidecar, 0), "so is a dropped connection: {:?}", sidecar.players());
    // Always a value, never a difference: a retried call cannot skew it.
    let updates: Vec<_> = sidecar.calls().into_iter().filter(|c| matches!(c, Call::UpdateCounter { .. })).collect();
    assert!(updates.iter().all(|c| matches!(c, Call::UpdateCounter { diff: 0, name, .. } if name == "players")));
}

#[test]
fn shutdown_comes_when_the_drain_is_over_not_when_it_begins() {
    let sidecar = FakeSidecar::start();
    let (mut server, addr) = start(agones(Duration::from_millis(200)), sidecar.port());
    let (mut player, _) = join(addr);
    assert!(wait_players(&sidecar, 1));
    server.run(|app| {
        app.world_mut().write_message(StopRequested);
    });
    player.recv_until(|m| matches!(m, Msg::Chat { id: 0, text } if text.contains("shutting down")));
    // The drain goes on while the player plays: no Shutdown yet, pings go on.
    let id = player.my_id();
    player.send_move(1.0, 0.0, 1.0);
    player.recv_until(|m| *m == Msg::Move { id, x: 1.0, y: 0.0, z: 1.0 });
    let pings = count(&sidecar.calls(), &Call::Health);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!sidecar.calls().contains(&Call::Shutdown), "{:?}", sidecar.calls());
    assert!(count(&sidecar.calls(), &Call::Health) > pings, "healthy while draining");

    drop(player);
    assert!(server.wait_exit(WAIT).is_some(), "the drain ends with the last player");
    // The exit waited for the acknowledgement.
    let calls = sidecar.calls();
    assert_eq!(count(&calls, &Call::Shutdown), 1, "{calls:?}");
    assert_eq!(sidecar.state(), "Shutdown");
    assert_eq!(sidecar.players().0, 0);
}

#[test]
fn the_server_survives_a_sidecar_restart() {
    let mut sidecar = FakeSidecar::start();
    let (_server, addr) = start(agones(Duration::from_millis(100)), sidecar.port());
    let (mut player, _) = join(addr);
    assert!(wait_players(&sidecar, 1));
    assert!(sidecar.wait_for(WAIT, |calls| calls.contains(&Call::Ready)));

    // The sidecar is gone for a while: the game goes on.
    sidecar.stop();
    let id = player.my_id();
    for x in 0..5 {
        player.send_move(x as f32, 0.0, 0.0);
        player.recv_until(|m| *m == Msg::Move { id, x: x as f32, y: 0.0, z: 0.0 });
        std::thread::sleep(Duration::from_millis(100));
    }
    sidecar.restart();
    // Health pings reach the new sidecar, and the Counter its changes.
    let new_pings =
        |s: &FakeSidecar| s.records().iter().filter(|r| r.incarnation == 1 && r.call == Call::Health).count();
    let deadline = Instant::now() + Duration::from_secs(20);
    while new_pings(&sidecar) < 3 {
        assert!(Instant::now() < deadline, "pings after the restart: {:?}", sidecar.records());
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_second, _) = join(addr);
    assert!(wait_players(&sidecar, 2));
    assert_eq!(count(&sidecar.calls(), &Call::Ready), 1, "Ready is not repeated");
}

#[test]
fn failed_calls_are_retried_with_backoff_and_never_stop_the_game() {
    let sidecar = FakeSidecar::start();
    sidecar.fail(Rpc::UpdateCounter, None);
    sidecar.fail(Rpc::Ready, Some(2));
    let (_server, addr) = start(agones(Duration::from_millis(200)), sidecar.port());
    // The game goes on.
    let (mut player, _) = join(addr);
    player.send_chat("hello");
    player.recv_until(|m| matches!(m, Msg::Chat { text, .. } if text == "hello"));
    // Ready failed twice, then went through; the Counter's failures did not hold it back.
    assert!(sidecar.wait_for(WAIT, |calls| count(calls, &Call::Ready) == 3), "{:?}", sidecar.calls());
    assert_eq!(sidecar.state(), "Ready");
    // The Counter is retried, less and less often (each pass tries its capacity and its count:
    // two calls close together, then the pass's backoff).
    let is_update = |c: &Call| matches!(c, Call::UpdateCounter { .. });
    assert!(sidecar.wait_for(WAIT, |calls| calls.iter().filter(|c| is_update(c)).count() >= 10));
    let times: Vec<Instant> = sidecar.records().iter().filter(|r| is_update(&r.call)).map(|r| r.at).collect();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    let (early, late) = (gaps[0].max(gaps[1]), gaps[gaps.len() - 1].max(gaps[gaps.len() - 2]));
    assert!(late > early * 2, "backoff: gaps {gaps:?}");
    sidecar.heal(Rpc::UpdateCounter);
    assert!(wait_players(&sidecar, 1), "the Counter catches up: {:?}", sidecar.players());
}

#[test]
fn without_a_sidecar_the_game_goes_on() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (server, addr) = start(agones(Duration::from_millis(100)), port);
    let (mut a, _) = join(addr);
    let (_b, listed) = join(addr);
    assert_eq!(listed.len(), 2);
    a.send_chat("anyone?");
    a.recv_until(|m| matches!(m, Msg::Chat { text, .. } if text == "anyone?"));
    let started = Instant::now();
    server.exit();
    assert!(started.elapsed() < Duration::from_secs(5), "the exit does not wait for an absent sidecar");
}

#[test]
fn shutdown_when_empty_stops_after_an_allocated_session_only() {
    let sidecar = FakeSidecar::start();
    let config = AgonesConfig { shutdown_when_empty: true, ..agones(Duration::from_millis(200)) };
    let (mut server, addr) = start(config, sidecar.port());
    assert!(sidecar.wait_for(WAIT, |calls| calls.contains(&Call::Ready)));
    // Before an allocation, players come and go and the server stays.
    drop(join(addr));
    assert!(wait_players(&sidecar, 0));
    assert!(server.wait_exit(Duration::from_millis(500)).is_none(), "still running");

    sidecar.set_state("Allocated");
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.wait_exit(Duration::from_millis(300)).is_none(), "allocated, waiting for its players");
    let (player, _) = join(addr);
    assert!(wait_players(&sidecar, 1));
    drop(player);
    assert!(server.wait_exit(WAIT).is_some(), "the session is over");
    assert_eq!(count(&sidecar.calls(), &Call::Shutdown), 1);
}

#[test]
fn the_binary_with_agones_is_ready_pings_and_shuts_down_after_sigterm() {
    let sidecar = FakeSidecar::start();
    let mut command = server_command();
    command.env("AGONES_SDK_GRPC_PORT", sidecar.port().to_string());
    let mut server = spawn_command(command, &["--agones", "--max-connections", "50"]);
    assert!(sidecar.wait_for(WAIT, |calls| calls.contains(&Call::Ready)), "{:?}", server.log());
    assert!(sidecar.wait_for(WAIT, |calls| count(calls, &Call::Health) >= 1), "the default interval: 2 s");
    assert!(wait_players(&sidecar, 0));
    let (player, _) = join(server.addr);
    assert!(wait_players(&sidecar, 1));
    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!sidecar.calls().contains(&Call::Shutdown), "not while a player drains");
    drop(player);
    let (code, _) = server.wait();
    assert_eq!(code, 0, "{:?}", server.log());
    assert_eq!(count(&sidecar.calls(), &Call::Shutdown), 1, "{:?}", server.log());
}
