//! Bots against the real server, in-process over loopback: a clean run reports clean figures.

use std::time::Duration;

use client_bot::BotConfig;
use net_plugin::ServerPlugin;
use net_plugin::testing::AppThread;
use server::{ChatConfig, LineRate, RoomConfig, ServerConfig};

fn start_server(config: ServerConfig) -> (AppThread, std::net::SocketAddr) {
    let config = ServerConfig { bind: "127.0.0.1:0".into(), stats_interval: Duration::ZERO, ..config };
    let net = ServerPlugin::bind(&config.bind, config.net.clone()).unwrap();
    let addr = net.local_addr();
    (AppThread::spawn(move || server::app(&config, net, None)), addr)
}

/// A 2 s run at the DummyClient's move every 250 ms. Not faster: the server applies a player's
/// moves once per tick, the last one winning, so two moves of a bot that reach a server stalled
/// for a move interval are echoed once and the earlier counts as lost, which makes the run
/// unclean. The in-process server shares two loaded cores with the bots.
fn quick(addr: std::net::SocketAddr, bots: u32) -> BotConfig {
    BotConfig {
        addr,
        bots,
        duration: Duration::from_secs(2),
        move_interval: Duration::from_millis(250),
        quiet: true,
        ..BotConfig::default()
    }
}

#[test]
fn a_clean_run_against_the_server() {
    let (_server, addr) = start_server(ServerConfig::default());
    let json = std::env::temp_dir().join(format!("bots-{}.json", std::process::id()));
    let config =
        BotConfig { chat_interval: Some(Duration::from_millis(300)), json: Some(json.clone()), ..quick(addr, 30) };
    let report = client_bot::run(config).unwrap();
    assert!(report.clean(), "{report}");
    assert_eq!((report.bots, report.connected, report.entered), (30, 30, 30));
    // 2 s at a move every 250 ms: at most one move per beat, 8 beats (9 for rounding), per bot.
    // How many beats a loaded machine lets the bots keep is timing: a quarter is asked for.
    assert!((30 * 2..=30 * 9).contains(&report.moves_sent), "{report}");
    assert_eq!(report.rtt_ms.count, report.moves_sent, "every move echoed");
    assert!(report.rtt_ms.p50 > 0.0 && report.rtt_ms.p99 >= report.rtt_ms.p50);
    assert!(report.chat_sent > 0);
    assert!(report.packets_received > report.moves_sent * 30 / 2, "bots see each other's moves");
    assert!(report.all_entered_s.is_some());

    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for key in [
        "bots",
        "connected",
        "connect_failures",
        "moves_sent",
        "echo_lost",
        "packets_received",
        "violations",
        "final_state_mismatches",
    ] {
        assert!(written[key].as_u64().is_some(), "{key} in {written}");
    }
    for key in ["p50", "p90", "p99", "max"] {
        assert!(written["rtt_ms"][key].as_f64().is_some(), "rtt_ms.{key}");
    }
    assert!(written["disconnects"].is_object());
    let _ = std::fs::remove_file(json);
}

#[test]
fn rooms_with_a_capacity_are_checked_per_room() {
    let (_server, addr) = start_server(ServerConfig { room: RoomConfig { capacity: 7 }, ..ServerConfig::default() });
    let report = client_bot::run(quick(addr, 20)).unwrap();
    assert!(report.clean(), "{report}");
    // The premise: the bots were in rooms of at most 7, not in one room. Each bot received one
    // list and at most 7 enters (its own and later comers'), and each move went to at most the
    // 7 members of the mover's room; in one room of 20 it would have gone to 20.
    assert!(report.moves_sent >= 20 * 2, "{report}");
    assert!(report.packets_received <= report.moves_sent * 7 + 20 * 8, "{report}");
}

#[test]
fn the_servers_notices_of_dropped_chat_are_counted_and_no_violation() {
    // One line a second per player: bots chatting every 100 ms have most lines dropped, and are
    // told so by player 0, whom no room lists.
    let chat = ChatConfig { player_rate: Some(LineRate { per_second: 1, burst: 1 }), ..ChatConfig::default() };
    let (_server, addr) = start_server(ServerConfig { chat, ..ServerConfig::default() });
    let config = BotConfig { chat_interval: Some(Duration::from_millis(100)), ..quick(addr, 5) };
    let report = client_bot::run(config).unwrap();
    assert!(report.clean(), "{report}");
    assert!(report.chat_sent >= 5 * 5, "{report}");
    assert!(report.chat_notices > 0, "{report}");
    assert!(report.to_string().contains("server notices"));
}

#[test]
fn idle_bots_connect_enter_and_send_nothing() {
    let (_server, addr) = start_server(ServerConfig::default());
    let report = client_bot::run(BotConfig { idle: true, ramp_rate: 0, ..quick(addr, 25) }).unwrap();
    assert!(report.clean(), "{report}");
    assert_eq!((report.entered, report.moves_sent), (25, 0));
}

/// The moves a recording server received, in order.
#[derive(bevy_ecs::resource::Resource, Default, Clone)]
struct Moves(Vec<[f32; 3]>);

fn recorded_moves(seed: u64) -> Vec<[f32; 3]> {
    use bevy_ecs::prelude::*;
    use net_plugin::Received;
    let (server, addr) = start_server(ServerConfig::default());
    server.run(|app| {
        app.init_resource::<Moves>().add_systems(
            bevy_app::PreUpdate,
            (|mut moves: MessageReader<Received<shared::C_Move>>, mut seen: ResMut<Moves>| {
                seen.0.extend(moves.read().map(|m| [m.packet.pos_x, m.packet.pos_y, m.packet.pos_z]));
            })
            .after(net_plugin::NetSystems::Receive),
        );
    });
    let report = client_bot::run(BotConfig { seed, ..quick(addr, 1) }).unwrap();
    assert!(report.clean(), "{report}");
    server.run(|app| app.world().resource::<Moves>().0.clone())
}

#[test]
fn the_seed_makes_a_run_repeatable() {
    let (a, b, c) = (recorded_moves(7), recorded_moves(7), recorded_moves(8));
    // How many moves a run sends depends on the machine; the first few decide. Three moves are
    // six random integers in [-50, 49]: two seeds agree on them by chance once in 10^12.
    let n = a.len().min(b.len()).min(c.len()).min(10);
    assert!(n >= 3, "at least 3 moves each, got {}, {} and {}", a.len(), b.len(), c.len());
    assert_eq!(a[..n], b[..n], "the same seed, the same moves");
    assert_ne!(a[..n], c[..n], "another seed, other moves");
    for [x, y, z] in &a {
        assert!((-50.0..=49.0).contains(x) && (-50.0..=49.0).contains(z) && *y == 0.0);
        assert_eq!((x.fract(), z.fract()), (0.0, 0.0), "integer coordinates, as the DummyClient");
    }
}

/// A server with a square world 100 wide, random spawn points and, if `radius` is above 0,
/// interest management with the default margin (10%).
fn world_server(radius: f32) -> (AppThread, std::net::SocketAddr) {
    let world = server::WorldConfig {
        min: [-50.0, -10.0, -50.0],
        max: [50.0, 10.0, 50.0],
        spawn: server::Spawn::Random,
        view_radius: radius,
        ..server::WorldConfig::default()
    };
    start_server(ServerConfig { world, ..ServerConfig::default() })
}

/// Bots walking in that world, checking the view rule for a radius of 20.
fn walkers(addr: std::net::SocketAddr) -> BotConfig {
    BotConfig { walk: true, walk_speed: 5.0, world_size: 100.0, view_radius: 20.0, ..quick(addr, 40) }
}

#[test]
fn walking_bots_see_the_players_near_them_and_check_it() {
    let (_server, addr) = world_server(20.0);
    let report = client_bot::run(BotConfig { duration: Duration::from_secs(3), ..walkers(addr) }).unwrap();
    assert!(report.clean(), "{report}");
    assert_eq!((report.view_mismatches, report.final_state_mismatches, report.violations), (0, 0, 0));
    // The premise: views are local. In a 100 × 100 world a radius of 20 covers about an eighth
    // of it, so each move reaches far fewer than the 40 bots it would reach in one room.
    assert!(report.packets_received < report.moves_sent * 40 / 2, "{report}");
}

#[test]
fn bots_told_a_radius_the_server_does_not_keep_report_the_views_wrong() {
    // Everyone sees everyone: bots farther apart than 22 are in each other's views.
    let (_server, addr) = world_server(0.0);
    let report = client_bot::run(walkers(addr)).unwrap();
    assert!(report.view_mismatches > 0, "{report}");
    assert!(!report.clean());
    assert_eq!(report.violations, 0, "the protocol itself is kept");
}

#[test]
fn a_clean_run_over_websocket_beside_tcp_bots() {
    let mut config =
        ServerConfig { bind: "127.0.0.1:0".into(), stats_interval: Duration::ZERO, ..ServerConfig::default() };
    config.net.websocket.bind = Some("127.0.0.1:0".into());
    let net = ServerPlugin::bind(&config.bind, config.net.clone()).unwrap();
    let (tcp, ws) = (net.local_addr(), net.websocket_addr().unwrap());
    let _server = AppThread::spawn(move || server::app(&config, net, None));
    let web = std::thread::spawn(move || {
        client_bot::run(BotConfig { transport: client_bot::BotTransport::Ws, ..quick(ws, 10) }).unwrap()
    });
    let native = client_bot::run(quick(tcp, 10)).unwrap();
    let web = web.join().unwrap();
    assert_both_clean(&web, &native);
}

/// Ten bots over each transport, each run clean, every move echoed.
fn assert_both_clean(web: &client_bot::Report, native: &client_bot::Report) {
    for report in [web, native] {
        assert!(report.clean(), "{report}");
        assert_eq!((report.bots, report.connected, report.entered), (10, 10, 10));
        assert_eq!(report.rtt_ms.count, report.moves_sent, "every move echoed");
    }
}

/// A self-signed certificate for `localhost`, written as PEM files under `name`; (cert, key).
fn localhost_certificate(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("a certificate");
    let dir = std::env::temp_dir().join(format!("client_bot-tls-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

#[test]
fn a_clean_run_over_wss_beside_tcp_bots_and_none_with_the_wrong_ca() {
    let (cert, key) = localhost_certificate("wss-bots");
    let mut config =
        ServerConfig { bind: "127.0.0.1:0".into(), stats_interval: Duration::ZERO, ..ServerConfig::default() };
    config.net.websocket.bind = Some("127.0.0.1:0".into());
    (config.net.websocket.tls_cert, config.net.websocket.tls_key) = (Some(cert.clone()), Some(key));
    let net = ServerPlugin::bind(&config.bind, config.net.clone()).unwrap();
    let (tcp, wss) = (net.local_addr(), net.websocket_addr().unwrap());
    let _server = AppThread::spawn(move || server::app(&config, net, None));
    let url: client_bot::BotUrl = format!("wss://localhost:{}/", wss.port()).parse().unwrap();
    let secure = BotConfig { url: Some(url.clone()), ca_cert: Some(cert), ..quick(tcp, 10) };
    let web = std::thread::spawn(move || client_bot::run(secure).unwrap());
    let native = client_bot::run(quick(tcp, 10)).unwrap();
    let web = web.join().unwrap();
    assert_both_clean(&web, &native);

    // A CA that did not sign the server's certificate: no bot connects, and the run says so.
    let (other, _) = localhost_certificate("wss-bots-other");
    let refused = client_bot::run(BotConfig { url: Some(url), ca_cert: Some(other), ..quick(tcp, 3) }).unwrap();
    assert_eq!((refused.connected, refused.connect_failures), (0, 3), "{refused}");
    assert!(!refused.clean());
}
