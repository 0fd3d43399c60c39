//! The admin endpoint over real HTTP on loopback: every route, the token rule, bad requests,
//! metrics that move with the players, kicks, the console's feed, and a stuck game loop.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use bevy_app::Last;
use bevy_ecs::prelude::Res;
use net_plugin::testing::{Recorded, record};
use net_plugin::{DisconnectReason, Disconnected};
use server::admin::metrics::sample;
use server::{Lifecycle, Phase, ServerConfig, StopRequested};
use support::{HttpResponse, Msg, WAIT, http, http_from, http_get_until, http_raw, join, start_admin, test_config};

const TOKEN: &str = "t0ken-for-the-tests";

fn with_token() -> ServerConfig {
    let mut config = test_config();
    config.admin.token = Some(TOKEN.into());
    config
}

fn get(admin: SocketAddr, path: &str) -> HttpResponse {
    http(admin, "GET", path, &[("Authorization", &format!("Bearer {TOKEN}"))])
}

fn post(admin: SocketAddr, path: &str) -> HttpResponse {
    http(admin, "POST", path, &[("Authorization", &format!("Bearer {TOKEN}"))])
}

/// Polls `path` until `done` holds for its response (the game answers at the end of a frame,
/// and the network's counters move a frame after the bytes).
fn get_until(admin: SocketAddr, path: &str, done: impl Fn(&HttpResponse) -> bool) -> HttpResponse {
    http_get_until(admin, path, &[("Authorization", &format!("Bearer {TOKEN}"))], done)
}

fn metric(text: &str, name: &str, labels: &str) -> f64 {
    sample(text, name, labels).unwrap_or_else(|| panic!("{name}{{{labels}}} in\n{text}"))
}

#[test]
fn health_checks_need_no_token_and_everything_else_does() {
    let (_server, _, admin) = start_admin(with_token(), |_| {});
    let health = get_until(admin, "/healthz", |r| r.status == 200);
    assert_eq!(health.status, 200, "{health:?}");
    let plain = http(admin, "GET", "/healthz", &[]);
    assert_eq!(plain.status, 200, "no token needed: {plain:?}");
    assert!(plain.body.starts_with("ok"), "{plain:?}");
    let ready = http(admin, "GET", "/readyz", &[]);
    assert_eq!((ready.status, ready.body.trim()), (200, "ready: accepting"));

    // Without the token, or with a wrong one, every other path is the same 401: it tells
    // nothing, not even whether the path exists.
    let wrong = [("Authorization", "Bearer not-the-token")];
    let mut bodies = Vec::new();
    // Each from an address of its own: wrong tokens from one address are throttled (another test).
    let mut from = (2..).map(|i| std::net::IpAddr::from([127, 0, 1, i]));
    for (method, path) in [
        ("GET", "/metrics"),
        ("GET", "/api/rooms"),
        ("GET", "/api/rooms/1"),
        ("POST", "/api/players/1/kick"),
        ("GET", "/api/console/feed"),
        ("GET", "/"),
        ("GET", "/app.js"),
        ("GET", "/no/such/path"),
        ("DELETE", "/healthz/x"),
    ] {
        for headers in [&[][..], &wrong[..]] {
            let r = http_from(from.next().unwrap(), admin, method, path, headers);
            assert_eq!(r.status, 401, "{method} {path} {headers:?}: {r:?}");
            assert!(r.header("www-authenticate").is_some_and(|v| v.starts_with("Basic")), "{r:?}");
            bodies.push(r.body);
        }
    }
    bodies.dedup();
    assert_eq!(bodies, [r#"{"error":"unauthorized"}"#]);

    // With it, as a bearer token or as a browser's Basic password.
    assert_eq!(get(admin, "/api/rooms").status, 200);
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("operator:{TOKEN}")));
    let page = http(admin, "GET", "/", &[("Authorization", &basic)]);
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").is_some_and(|t| t.starts_with("text/html")), "{page:?}");
    assert!(page.body.contains("<script src=\"/app.js\"></script>"));
    let script = get(admin, "/app.js");
    assert!(
        script.header("content-type").is_some_and(|t| t.starts_with("text/javascript"))
            && script.body.contains("EventSource")
    );
    assert_eq!(get(admin, "/no/such/path").status, 404);
}

#[test]
fn without_a_token_on_loopback_nothing_is_asked() {
    let (_server, _, admin) = start_admin(test_config(), |_| {});
    assert_eq!(http(admin, "GET", "/api/rooms", &[]).status, 200);
    assert_eq!(http(admin, "GET", "/metrics", &[]).status, 200);
}

#[test]
fn metrics_move_when_players_connect_and_move() {
    let (_server, addr, admin) = start_admin(with_token(), |_| {});
    let game = {
        let r = get_until(admin, "/metrics", |r| r.status == 200);
        assert!(r.header("content-type").is_some_and(|t| t.starts_with("application/openmetrics-text")), "{r:?}");
        r.body
    };
    assert_eq!(metric(&game, "gameserver_players", ""), 0.0);

    let mut clients: Vec<_> = (0..3).map(|_| join(addr).0).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.send_move(i as f32, 0.0, 1.0);
    }
    // Every client sees every move (each mover's echo and the others'): the server handled them.
    for c in &mut clients {
        let mut moves = 0;
        while moves < 3 {
            if let Msg::Move { .. } = c.recv(WAIT).expect("the moves") {
                moves += 1;
            }
        }
    }
    let after = get_until(admin, "/metrics", |r| {
        sample(&r.body, "gameserver_packets_received_total", "packet=\"C_Move\"") == Some(3.0)
    })
    .body;
    assert_eq!(metric(&after, "gameserver_players", ""), 3.0);
    assert_eq!(metric(&after, "gameserver_rooms", ""), 1.0);
    assert_eq!(metric(&after, "gameserver_connections_open", ""), 3.0);
    assert_eq!(metric(&after, "gameserver_connections_total", ""), 3.0);
    assert_eq!(metric(&after, "gameserver_packets_received_total", "packet=\"C_Move\""), 3.0);
    // Each move goes to the room of 3; each newcomer is told of itself and those before it.
    assert!(metric(&after, "gameserver_packets_sent_total", "packet=\"S_BroadcastMove\"") >= 9.0, "{after}");
    assert_eq!(metric(&after, "gameserver_packets_sent_total", "packet=\"S_BroadcastEnterGame\""), 6.0);
    assert_eq!(metric(&after, "gameserver_received_bytes_total", ""), 48.0, "three C_Move of 16 bytes");
    assert!(metric(&after, "gameserver_sent_bytes_total", "") > 0.0);
    for (name, labels) in [
        ("gameserver_frames_total", ""),
        ("gameserver_ticks_total", ""),
        ("gameserver_tick_duration_seconds_count", ""),
    ] {
        assert!(metric(&after, name, labels) > metric(&game, name, labels), "{name} moves");
    }
    assert_eq!(
        metric(&after, "gameserver_tick_duration_seconds_bucket", "le=\"+Inf\""),
        metric(&after, "gameserver_tick_duration_seconds_count", "")
    );

    drop(clients);
    let gone = get_until(admin, "/metrics", |r| sample(&r.body, "gameserver_players", "") == Some(0.0)).body;
    assert_eq!(metric(&gone, "gameserver_disconnects_total", "reason=\"closed_by_peer\""), 3.0);
    assert_eq!(metric(&gone, "gameserver_connections_open", ""), 0.0);
}

#[test]
fn rooms_list_their_players_with_positions_peers_and_packets() {
    let mut config = with_token();
    config.room.capacity = 2;
    let (server, addr, admin) = start_admin(config, |_| {});
    let (mut a, _) = join(addr);
    let (mut b, _) = join(addr);
    let (mut c, _) = join(addr);
    a.send_move(5.0, 0.0, -7.5);
    a.recv_until(|m| matches!(m, Msg::Move { x: 5.0, .. }));

    let list = get_until(admin, "/api/rooms", |r| r.json()["players"] == 3).json();
    assert_eq!(list["capacity"], 2);
    assert_eq!(list["rooms"], serde_json::json!([{"id": 1, "players": 2}, {"id": 2, "players": 1}]));

    let room = get_until(admin, "/api/rooms/1", |r| r.json()["players"][0]["packets_in"] == 1).json();
    assert_eq!((room["id"].as_u64(), room["player_count"].as_u64()), (Some(1), Some(2)));
    assert!(room["view_radius"].is_null());
    let players = room["players"].as_array().unwrap();
    assert_eq!(players.len(), 2);
    let first = &players[0];
    assert_eq!(first["id"], a.my_id());
    assert_eq!((first["x"].as_f64(), first["y"].as_f64(), first["z"].as_f64()), (Some(5.0), Some(0.0), Some(-7.5)));
    assert_eq!(first["peer"], a.stream.local_addr().unwrap().to_string());
    assert_eq!(first["packets_in"], 1, "its one move");
    // Its list, its enter, b's enter, its move's echo.
    assert!(first["packets_out"].as_u64().unwrap() >= 4, "{first}");
    assert!(first["connected_since"].as_str().is_some_and(|t| t.ends_with('Z') && t.len() >= 20), "{first}");
    assert_eq!(players[1]["id"], b.my_id());
    assert_eq!(players[1]["peer"], b.stream.local_addr().unwrap().to_string());
    let second = get(admin, "/api/rooms/2").json();
    assert_eq!(second["players"][0]["id"], c.my_id());

    let missing = get(admin, "/api/rooms/99");
    assert_eq!((missing.status, missing.json()["error"].as_str()), (404, Some("no room 99")));
    for bad in ["/api/rooms/abc", "/api/rooms/-1", "/api/rooms/99999999999"] {
        assert_eq!(get(admin, bad).status, 400, "{bad}");
    }
    b.send_leave();
    c.send_leave();
    let list = get_until(admin, "/api/rooms", |r| r.json()["players"] == 1).json();
    assert_eq!(list["rooms"], serde_json::json!([{"id": 1, "players": 1}]), "an emptied room closes");
    drop(server);
}

#[test]
fn a_kick_closes_the_connection_with_its_own_reason() {
    let (server, addr, admin) = start_admin(with_token(), record::<Disconnected>);
    let (mut victim, _) = join(addr);
    let (mut witness, _) = join(addr);
    let id = victim.my_id();
    get_until(admin, "/api/rooms", |r| r.json()["players"] == 2);

    let kicked = post(admin, &format!("/api/players/{id}/kick"));
    assert_eq!(kicked.status, 200, "{kicked:?}");
    let body = kicked.json();
    assert_eq!((body["id"].as_i64(), body["room"].as_u64()), (Some(i64::from(id)), Some(1)));
    assert_eq!(body["peer"], victim.stream.local_addr().unwrap().to_string());
    assert!(victim.closed(), "the kicked client sees its connection closed");
    witness.recv_until(|m| *m == Msg::Leave { id });

    // Game code saw it go like any other disconnect, with its reason.
    assert!(server.wait_until(WAIT, |app| !app.world().resource::<Recorded<Disconnected>>().0.is_empty()));
    let reasons: Vec<DisconnectReason> =
        server.run(|app| app.world().resource::<Recorded<Disconnected>>().0.iter().map(|d| d.reason.clone()).collect());
    assert_eq!(reasons, [DisconnectReason::KickedByOperator]);
    assert_eq!(DisconnectReason::KickedByOperator.to_string(), "kicked by an operator");
    let text = get_until(admin, "/metrics", |r| {
        sample(&r.body, "gameserver_disconnects_total", "reason=\"kicked_by_operator\"") == Some(1.0)
    })
    .body;
    assert_eq!(metric(&text, "gameserver_players", ""), 1.0);

    let again = post(admin, &format!("/api/players/{id}/kick"));
    assert_eq!((again.status, again.json()["error"].as_str()), (404, Some(&*format!("no connected player {id}"))));
    assert_eq!(post(admin, "/api/players/someone/kick").status, 400);
    assert_eq!(get(admin, &format!("/api/players/{}/kick", witness.my_id())).status, 405, "a kick is a POST");
    let foreign = http(
        admin,
        "POST",
        &format!("/api/players/{}/kick", witness.my_id()),
        &[("Authorization", &format!("Bearer {TOKEN}")), ("Origin", "http://elsewhere.example")],
    );
    assert_eq!(foreign.status, 403, "{foreign:?}");
    assert_eq!(witness.recv(Duration::from_millis(300)), None, "the witness stays, told nothing");
}

#[test]
fn bad_requests_are_answered_4xx_and_the_endpoint_carries_on() {
    let (_server, _, admin) = start_admin(with_token(), |_| {});
    get_until(admin, "/healthz", |r| r.status == 200);
    let status_of = |answer: &str| answer.split(' ').nth(1).unwrap_or("none").to_string();

    let garbage = http_raw(admin, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 definitely not HTTP\r\n\r\n");
    assert_eq!(status_of(&garbage), "400", "{garbage:?}");
    let long_path = format!("/api/rooms/{}", "1".repeat(2000));
    assert_eq!(get(admin, &long_path).status, 414);
    let big_body = http(
        admin,
        "POST",
        "/api/players/1/kick",
        &[("Authorization", &format!("Bearer {TOKEN}")), ("Content-Length", "1000000")],
    );
    assert_eq!(big_body.status, 413, "{big_body:?}");
    let huge_header = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: {}\r\n\r\n", "a".repeat(64 * 1024));
    let answer = http_raw(admin, huge_header.as_bytes());
    assert!(["431", "400", "none"].contains(&status_of(&answer).as_str()), "{:?}", &answer[..answer.len().min(200)]);
    let bad_version = http_raw(admin, b"GET /healthz HTTP/9.9\r\n\r\n");
    assert!(status_of(&bad_version).starts_with('4') || bad_version.is_empty(), "{bad_version:?}");
    let bad_feed = get(admin, "/api/console/feed?room=abc");
    assert_eq!(bad_feed.status, 400);

    // A client that sends half a request and waits holds a slot for the head timeout only; the
    // endpoint serves others meanwhile.
    let mut slow = TcpStream::connect(admin).unwrap();
    slow.write_all(b"GET /heal").unwrap();
    assert_eq!(http(admin, "GET", "/healthz", &[]).status, 200);
    assert_eq!(get(admin, "/api/rooms").status, 200);
    drop(slow);
}

#[test]
fn a_stuck_game_loop_fails_the_health_check_and_api_calls_then_recovers() {
    let (server, _, admin) = start_admin(with_token(), |_| {});
    get_until(admin, "/healthz", |r| r.status == 200);
    let server = Arc::new(server);
    let stuck = {
        let server = server.clone();
        // The loop is held between two frames for 5 s, as a stuck system would hold it.
        std::thread::spawn(move || server.run(|_| std::thread::sleep(Duration::from_secs(5))))
    };
    std::thread::sleep(Duration::from_millis(1300));
    let health = http(admin, "GET", "/healthz", &[]);
    assert_eq!(health.status, 503, "{health:?}");
    assert!(health.body.contains("no frame for"), "{health:?}");
    let started = Instant::now();
    let rooms = get(admin, "/api/rooms");
    assert_eq!(rooms.status, 503, "{rooms:?}");
    assert!(rooms.json()["error"].as_str().unwrap().contains("did not answer"), "{rooms:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "it waited the answer timeout, not for the loop");
    assert_eq!(rooms.header("retry-after"), Some("1"));
    stuck.join().unwrap();
    assert_eq!(get_until(admin, "/healthz", |r| r.status == 200).status, 200);
    assert_eq!(get(admin, "/api/rooms").status, 200);
}

/// Readiness through a whole stop, asked for as game code would (`StopRequested`): 200 while
/// accepting; 503 while draining (the loop healthy, the phase in `/metrics`); 503 while
/// shutting down (the exit's frame is held here until the test has looked).
#[test]
fn readiness_is_503_while_draining_and_while_shutting_down() {
    let config = ServerConfig { drain_timeout: Duration::from_secs(60), ..test_config() };
    let hold = Arc::new(AtomicBool::new(true));
    let held = hold.clone();
    let (mut server, addr, admin) = start_admin(config, move |app| {
        app.add_systems(Last, move |lifecycle: Res<Lifecycle>| {
            let deadline = Instant::now() + WAIT;
            while lifecycle.phase() == Phase::ShuttingDown && held.load(Ordering::Relaxed) && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(5));
            }
        });
    });
    let ready = get_until(admin, "/readyz", |r| r.status == 200);
    assert_eq!((ready.status, ready.body.trim()), (200, "ready: accepting"));
    let (mut player, _) = join(addr);

    server.run(|app| {
        app.world_mut().write_message(StopRequested);
    });
    let draining = get_until(admin, "/readyz", |r| r.status != 200);
    assert_eq!((draining.status, draining.body.trim()), (503, "not ready: draining"));
    assert_eq!(http(admin, "GET", "/healthz", &[]).status, 200, "draining, the loop still turns");
    let text = get(admin, "/metrics").body;
    assert_eq!(metric(&text, "gameserver_phase", "phase=\"draining\""), 1.0);
    assert_eq!(metric(&text, "gameserver_phase", "phase=\"accepting\""), 0.0);
    player.recv_until(|m| matches!(m, Msg::Chat { id: 0, text } if text.contains("shutting down")));

    // The last player leaves: the drain ends and the exit begins.
    drop(player);
    let closing = get_until(admin, "/readyz", |r| r.body.contains("shutting down"));
    assert_eq!((closing.status, closing.body.trim()), (503, "not ready: shutting down"));
    hold.store(false, Ordering::Relaxed);
    assert!(server.wait_exit(WAIT).is_some());
}

/// Reads one server-sent event's `event:` and `data:` from a stream.
fn next_event(stream: &mut TcpStream, buffer: &mut String) -> (String, String) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let field = |name: &str| block.lines().find_map(|l| l.strip_prefix(name)).unwrap_or("").trim().to_string();
            if block.contains("data:") {
                return (field("event:"), field("data:"));
            }
            continue;
        }
        assert!(Instant::now() < deadline, "an event within {WAIT:?}: {buffer:?}");
        let mut chunk = [0u8; 16 * 1024];
        let n = stream.read(&mut chunk).expect("the feed");
        assert!(n > 0, "the feed ended");
        buffer.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
}

fn open_feed(admin: SocketAddr, query: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(admin).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let request =
        format!("GET /api/console/feed{query} HTTP/1.1\r\nHost: {admin}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut buffer = String::new();
    while !buffer.contains("\r\n\r\n") {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "the feed's head: {buffer:?}");
        buffer.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
    let at = buffer.find("\r\n\r\n").unwrap() + 4;
    let head: String = buffer.drain(..at).collect();
    (stream, head)
}

#[test]
fn the_console_feed_streams_a_few_updates_a_second() {
    let (_server, addr, admin) = start_admin(with_token(), |_| {});
    let (mut player, _) = join(addr);
    player.send_move(3.0, 0.0, 4.0);
    player.recv_until(|m| matches!(m, Msg::Move { .. }));

    let (mut feed, head) = open_feed(admin, "?room=1");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/event-stream"), "{head}");
    // The body is chunked; the events are whole lines inside the chunks.
    let mut buffer = String::new();
    let started = Instant::now();
    let mut updates = Vec::new();
    while updates.len() < 6 {
        let (event, data) = next_event(&mut feed, &mut buffer);
        assert_eq!(event, "update", "{data}");
        updates.push(serde_json::from_str::<serde_json::Value>(&data).unwrap());
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(800), "at most ~5 updates a second: 6 in {took:?}");
    let last = updates.last().unwrap();
    assert_eq!(last["players"], 1);
    assert_eq!(last["rooms"], serde_json::json!([{"id": 1, "players": 1}]));
    assert_eq!(last["room"]["players"][0]["id"], player.my_id());
    assert_eq!(
        (last["room"]["players"][0]["x"].as_f64(), last["room"]["players"][0]["z"].as_f64()),
        (Some(3.0), Some(4.0))
    );
    assert_eq!(last["tick_buckets"].as_array().unwrap().len(), last["tick_bounds"].as_array().unwrap().len() + 1);
    assert!(last["packets_in"].as_u64().unwrap() >= 1);

    // Only so many consoles at once.
    let mut open: Vec<_> = (1..server::admin::MAX_FEEDS).map(|_| open_feed(admin, "")).collect();
    assert!(open.iter().all(|(_, head)| head.starts_with("HTTP/1.1 200")));
    let (_, refused) = open_feed(admin, "");
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    // One closes: its place is free again.
    drop(open.pop());
    drop(feed);
    let deadline = Instant::now() + WAIT;
    while !open_feed(admin, "").1.starts_with("HTTP/1.1 200") {
        assert!(Instant::now() < deadline, "a closed feed gives its place back");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_second_app_has_its_own_numbers() {
    // Metrics are rendered from each app's own counters: two servers in one process do not mix.
    let (_one, addr_one, admin_one) = start_admin(test_config(), |_| {});
    let (_two, _, admin_two) = start_admin(test_config(), |_| {});
    let (_player, _) = join(addr_one);
    get_until(admin_one, "/api/rooms", |r| r.json()["players"] == 1);
    let two = http(admin_two, "GET", "/metrics", &[]).body;
    assert_eq!(metric(&two, "gameserver_players", ""), 0.0);
    assert_eq!(metric(&two, "gameserver_connections_total", ""), 0.0);
}
