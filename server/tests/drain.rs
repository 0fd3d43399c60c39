//! Graceful drain, as an operator sees it: the binary gets SIGTERM with players connected,
//! refuses newcomers at once, tells every player once (a line from player 0), lets them play on,
//! and exits 0 when they have left, or at `drain_timeout` when they do not. A second signal
//! still exits at once. (`tests/binary.rs` covers `drain_timeout = "off"`, the immediate stop.)

mod support;

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use server::{DrainPlugin, Lifecycle, Phase, StopRequested};
use support::process::{Running, settings_file, spawn};
use support::{CourseClient, Msg, WAIT, http, http_get_until, join, test_config};

/// The notice every player gets, once.
fn is_drain_notice(m: &Msg) -> bool {
    matches!(m, Msg::Chat { id: 0, text } if text.contains("shutting down"))
}

/// Waits until connecting to `addr` is refused; returns how long that took.
fn refused_within(addr: SocketAddr, timeout: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return Some(start.elapsed()),
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    None
}

fn still_running(server: &mut Running) -> bool {
    server.child.try_wait().unwrap().is_none()
}

#[test]
fn sigterm_refuses_newcomers_tells_players_lets_them_play_and_exits_0_when_they_leave() {
    let mut server = spawn(&["--drain-timeout", "60s"]);
    let (mut a, _) = join(server.addr);
    let (mut b, _) = join(server.addr);
    let a_id = a.my_id();
    a.recv_until(|m| matches!(m, Msg::Enter { id, .. } if *id != a_id));

    server.signal("TERM");
    // Newcomers are refused by the kernel: the listening socket is closed.
    let refused = refused_within(server.addr, WAIT);
    assert!(refused.is_some(), "new connections are refused during a drain: {:?}", server.log());
    // Each player is told once.
    for c in [&mut a, &mut b] {
        c.recv_until(is_drain_notice);
    }
    // Play goes on: a move is broadcast to the room, the mover included.
    let id = a_id;
    a.send_move(3.0, 0.0, 4.0);
    for c in [&mut a, &mut b] {
        let skipped = c.recv_until(|m| *m == Msg::Move { id, x: 3.0, y: 0.0, z: 4.0 });
        assert!(!skipped.iter().any(is_drain_notice), "told once: {skipped:?}");
    }
    b.send_chat("gg");
    a.recv_until(|m| matches!(m, Msg::Chat { text, .. } if text == "gg"));
    assert!(still_running(&mut server), "players are still there");

    // One leaves the game (C_LeaveGame), the other drops its connection.
    b.send_leave();
    a.recv_until(|m| matches!(m, Msg::Leave { .. }));
    // Two barriers: frames after the leave ran, and the second ping was read in a frame after
    // the first was answered, so the server went on after the frames that handled the leave.
    a.sync();
    a.sync();
    assert!(still_running(&mut server), "one player is still there");
    drop(a);
    let (code, took) = server.wait();
    assert_eq!(code, 0, "{:?}", server.log());
    assert!(took < Duration::from_secs(5), "exited {took:?} after the last player left");
    let log = server.log();
    assert!(log.iter().any(|l| l.contains("draining")), "{log:?}");
    assert!(log.iter().any(|l| l.contains("the last player has left")), "{log:?}");
    assert!(b.closed(), "the player who only left the game is closed by the exit");
}

#[test]
fn players_who_stay_are_closed_at_the_drain_timeout_from_the_settings_file() {
    let (dir, settings) = settings_file("drain-timeout", "drain_timeout = \"1500ms\"\n");
    let stats = dir.join("stats.json");
    let mut server = spawn(&["--config", settings.to_str().unwrap(), "--stats-json", stats.to_str().unwrap()]);
    let (mut stays, _) = join(server.addr);

    server.signal("TERM");
    let signalled = Instant::now();
    let skipped = stays.recv_until(is_drain_notice);
    assert!(skipped.is_empty(), "{skipped:?}");
    let (code, _) = server.wait();
    let took = signalled.elapsed();
    assert_eq!(code, 0, "{:?}", server.log());
    assert!(took >= Duration::from_millis(1400), "it waited for the timeout: {took:?}");
    assert!(took < Duration::from_secs(8), "and not much longer: {took:?}");
    assert!(stays.closed());
    assert!(server.log().iter().any(|l| l.contains("drain timeout")));
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(json["disconnects"]["shutdown"], 1, "closed by the exit: {json}");
}

#[test]
fn a_second_signal_during_a_drain_exits_at_once() {
    let mut server = spawn(&["--drain-timeout", "60s"]);
    let (mut player, _) = join(server.addr);
    server.signal("INT");
    player.recv_until(is_drain_notice);
    assert!(still_running(&mut server));
    server.signal("INT");
    let (code, took) = server.wait();
    assert_eq!(code, 128 + 2, "128 + SIGINT's number: {:?}", server.log());
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn with_nobody_connected_a_stop_exits_at_once() {
    let mut server = spawn(&["--drain-timeout", "60s"]);
    server.wait_for_line("server running");
    server.signal("TERM");
    let (code, took) = server.wait();
    assert_eq!(code, 0);
    assert!(took < Duration::from_secs(3), "{took:?}");
}

/// The drain's state in the one `Lifecycle`, through a whole drain in the app: accepting, then
/// draining (with its deadline, not ready), then shutting down.
#[test]
fn the_lifecycle_follows_the_drain() {
    let config = server::ServerConfig { drain_timeout: Duration::from_secs(60), ..test_config() };
    let (app, addr) = support::start(config);
    let lifecycle = app.run(|app| app.world().resource::<Lifecycle>().clone());
    assert!(app.wait_until(WAIT, |app| app.world().resource::<Lifecycle>().is_ready()));
    assert_eq!((lifecycle.phase(), lifecycle.drain_window()), (Phase::Accepting, None));
    let (player, _) = join(addr);

    app.run(|app| {
        app.world_mut().write_message(StopRequested);
    });
    assert!(app.wait_until(WAIT, |app| app.world().resource::<Lifecycle>().phase() == Phase::Draining));
    let window = lifecycle.drain_window().expect("a drain has its window");
    assert_eq!(window.deadline - window.since, Duration::from_secs(60));
    assert!(!lifecycle.is_ready());
    assert!(!app.run(|app| app.world().resource::<net_plugin::ListenerControl>().is_accepting()));
    // Asking again changes nothing.
    app.run(|app| {
        app.world_mut().write_message(StopRequested);
    });
    // Two frames later it was read (a job runs between frames).
    app.run(|_| {});
    app.run(|_| {});
    assert_eq!((lifecycle.phase(), lifecycle.drain_window()), (Phase::Draining, Some(window)));

    drop(player);
    let mut app = app;
    assert!(app.wait_exit(WAIT).is_some(), "the app exits when its last player left");
    assert_eq!(lifecycle.phase(), Phase::ShuttingDown);
}

/// What a load balancer sees of a drain, with the admin endpoint on: a real SIGTERM turns
/// `/readyz` to 503 for the whole drain, while `/healthz` stays 200 and `/metrics` says
/// `draining`.
#[test]
fn with_the_admin_endpoint_on_readyz_is_503_while_draining() {
    let mut server = spawn(&["--drain-timeout", "60s", "--admin", "127.0.0.1:0"]);
    let admin = server.admin_addr();
    let (mut player, _) = join(server.addr);
    let ready = http_get_until(admin, "/readyz", &[], |r| r.status == 200);
    assert_eq!((ready.status, ready.body.trim()), (200, "ready: accepting"));
    assert_eq!(phase_gauge(admin, "accepting"), 1.0);

    server.signal("TERM");
    let draining = http_get_until(admin, "/readyz", &[], |r| r.status != 200);
    assert_eq!((draining.status, draining.body.trim()), (503, "not ready: draining"));
    player.recv_until(is_drain_notice);
    assert_eq!(http(admin, "GET", "/healthz", &[]).status, 200, "draining, the loop still turns");
    assert_eq!((phase_gauge(admin, "draining"), phase_gauge(admin, "accepting")), (1.0, 0.0));
    // Still draining while the player plays on.
    player.send_chat("still here");
    player.recv_until(|m| matches!(m, Msg::Chat { text, .. } if text == "still here"));
    assert_eq!(http(admin, "GET", "/readyz", &[]).status, 503);

    drop(player);
    assert_eq!(server.wait().0, 0, "{:?}", server.log());
}

/// `gameserver_phase{phase}` from `/metrics`.
fn phase_gauge(admin: SocketAddr, phase: &str) -> f64 {
    let text = http_get_until(admin, "/metrics", &[], |r| r.status == 200).body;
    server::admin::metrics::sample(&text, "gameserver_phase", &format!("phase=\"{phase}\""))
        .unwrap_or_else(|| panic!("gameserver_phase{{phase={phase:?}}} in\n{text}"))
}

/// A course client that never left, and a drain plugin with no timeout: the stop is immediate.
#[test]
fn without_a_timeout_a_stop_is_the_immediate_exit() {
    let config = server::ServerConfig { drain_timeout: Duration::ZERO, ..test_config() };
    let (mut app, addr) = support::start(config);
    let (mut player, _): (CourseClient, _) = join(addr);
    app.run(|app| {
        assert!(app.is_plugin_added::<DrainPlugin>());
        app.world_mut().write_message(StopRequested);
    });
    assert!(app.wait_exit(WAIT).is_some());
    // Everything until the close: the app exited, so the connection ends.
    let got: Vec<Msg> = std::iter::from_fn(|| player.recv(WAIT)).collect();
    assert!(got.iter().all(|m| !is_drain_notice(m)), "nobody is told: there is no drain: {got:?}");
    assert!(player.closed());
}
