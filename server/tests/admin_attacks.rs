//! The admin endpoint under attack, over real sockets on loopback, with a healthy user beside
//! the attacker: `/healthz` probed every 250 ms, as an orchestrator would, answers every probe
//! while idle connections, a header slowloris or a crowd of console feeds hold what they can;
//! DNS-rebinding requests are refused; no page may frame the console; wrong tokens are
//! throttled per address; and however many API requests come, the game builds a bounded number
//! of snapshots.
//!
//! The attackers connect from addresses of their own in 127.0.0.0/8 (one, or many), as they
//! would from the internet; the probe and the operator from 127.0.0.1. No timing is asserted
//! but generous bounds (a probe answered within 5 s).

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use server::ServerConfig;
use server::admin::metrics::sample;
use support::{Msg, connect_from, http, http_from, http_get_until, join, start_admin, test_config};

const TOKEN: &str = "a-token-of-twenty-chars";
const PROBE_PERIOD: Duration = Duration::from_millis(250);
/// The longest a probe may take here: far beyond any orchestrator's timeout, so the test does
/// not depend on the machine's speed, and far below "never".
const PROBE_BOUND: Duration = Duration::from_secs(5);

fn with_token() -> ServerConfig {
    let mut config = test_config();
    config.admin.token = Some(TOKEN.into());
    config
}

/// The header carrying [`TOKEN`].
const AUTH: [(&str, &str); 1] = [("Authorization", "Bearer a-token-of-twenty-chars")];

/// The attacker's `i`th address: 127.0.2.x (one address) or spread over 127.3-4.x.x (many).
fn attacker(i: usize, many: bool) -> IpAddr {
    if many { IpAddr::from([127, 3 + (i / 250) as u8, (i % 250) as u8, 1]) } else { IpAddr::from([127, 0, 2, 1]) }
}

/// Probes `/healthz` every [`PROBE_PERIOD`] on a fresh connection until `stop`: each probe's
/// status (0: no answer) and time.
fn prober(admin: SocketAddr, stop: Arc<AtomicBool>) -> JoinHandle<Vec<(u16, Duration)>> {
    std::thread::spawn(move || {
        let mut probes = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let status = probe(admin);
            probes.push((status, started.elapsed()));
            std::thread::sleep(PROBE_PERIOD.saturating_sub(started.elapsed()));
        }
        probes
    })
}

/// One probe as Kubernetes sends it: its own connection, `Host: IP:PORT`, no token.
fn probe(admin: SocketAddr) -> u16 {
    let Ok(mut stream) = TcpStream::connect(admin) else { return 0 };
    stream.set_read_timeout(Some(PROBE_BOUND)).unwrap();
    let request =
        format!("GET /healthz HTTP/1.1\r\nHost: {admin}\r\nUser-Agent: kube-probe/1.33\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return 0;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Every probe answered 200 within [`PROBE_BOUND`], and enough of them to mean something.
fn assert_all_answered(probes: &[(u16, Duration)], attack: &str) {
    assert!(probes.len() >= 6, "{attack}: {probes:?}");
    let failed: Vec<_> = probes.iter().filter(|(status, took)| *status != 200 || *took > PROBE_BOUND).collect();
    assert!(failed.is_empty(), "{attack}: {} of {} probes failed: {failed:?}", failed.len(), probes.len());
}

/// A server being probed.
struct Probed {
    _server: net_plugin::testing::AppThread,
    addr: SocketAddr,
    admin: SocketAddr,
    stop: Arc<AtomicBool>,
    probes: JoinHandle<Vec<(u16, Duration)>>,
}

impl Probed {
    /// Starts the server, waits until it is healthy, and starts the probe.
    fn start(config: ServerConfig) -> Self {
        let (server, addr, admin) = start_admin(config, |_| {});
        assert_eq!(http_get_until(admin, "/healthz", &[], |r| r.status == 200).status, 200);
        let stop = Arc::new(AtomicBool::new(false));
        let probes = prober(admin, stop.clone());
        Self { _server: server, addr, admin, stop, probes }
    }

    /// Stops the probe and checks that it was answered every time.
    fn assert_all_answered(self, attack: &str) {
        self.stop.store(true, Ordering::Relaxed);
        assert_all_answered(&self.probes.join().unwrap(), attack);
    }
}

/// A player beside the attack: it joins, moves and is told its move.
fn a_player_is_served(addr: SocketAddr) {
    let (mut player, _) = join(addr);
    player.send_move(1.0, 0.0, 2.0);
    player.recv_until(|m| matches!(m, Msg::Move { x: 1.0, .. }));
}

#[test]
fn a_thousand_idle_connections_do_not_starve_the_probes() {
    let probed = Probed::start(with_token());
    let (addr, admin) = (probed.addr, probed.admin);
    // 1,000 connections that send nothing: half from one address, half from 500 addresses.
    let mut idle = Vec::new();
    for i in 0..1000 {
        if let Ok(stream) = connect_from(attacker(i, i % 2 == 0), admin) {
            idle.push(stream);
        }
    }
    assert!(idle.len() >= 990, "the attacker's connections were accepted: {}", idle.len());
    std::thread::sleep(Duration::from_secs(2));
    // The operator is served too, and the game.
    let rooms = http(admin, "GET", "/api/rooms", &AUTH);
    assert_eq!(rooms.status, 200, "{rooms:?}");
    a_player_is_served(addr);
    probed.assert_all_answered("1,000 idle connections");
    drop(idle);
}

#[test]
fn a_header_slowloris_does_not_starve_the_probes() {
    let probed = Probed::start(with_token());
    let admin = probed.admin;
    // 200 connections, from one address and from many, each sending its head a byte at a time.
    let mut slow: Vec<TcpStream> = (0..200).filter_map(|i| connect_from(attacker(i, i % 2 == 0), admin).ok()).collect();
    for stream in &mut slow {
        let _ = stream.write_all(b"GET /api/rooms HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        stream.set_nonblocking(true).unwrap();
    }
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        for stream in &mut slow {
            let _ = stream.write_all(b"X");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let rooms = http(admin, "GET", "/api/rooms", &AUTH);
    assert_eq!(rooms.status, 200, "{rooms:?}");
    probed.assert_all_answered("a header slowloris");
}

#[test]
fn many_console_feeds_do_not_starve_the_probes() {
    // On loopback without a token, anyone on the machine may open the console.
    let probed = Probed::start(test_config());
    let admin = probed.admin;
    let mut feeds: Vec<TcpStream> = (0..300)
        .filter_map(|i| {
            let mut stream = connect_from(attacker(i, i % 3 == 0), admin).ok()?;
            let request = format!("GET /api/console/feed?room=1 HTTP/1.1\r\nHost: {admin}\r\n\r\n");
            stream.write_all(request.as_bytes()).ok()?;
            Some(stream)
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    // The API still answers beside them.
    assert_eq!(http(admin, "GET", "/api/rooms", &[]).status, 200);
    probed.assert_all_answered("300 console feeds");
    feeds.clear();
}

#[test]
fn dns_rebinding_requests_are_refused() {
    // The token-less loopback endpoint, the one a page on another site could reach.
    let (_server, addr, admin) = start_admin(test_config(), |_| {});
    let (mut victim, _) = join(addr);
    http_get_until(admin, "/api/rooms", &[], |r| r.json()["players"] == 1);
    let id = victim.my_id();
    let port = admin.port();
    let evil = format!("evil.example:{port}");
    let origin = format!("http://{evil}");
    let rebound = [("Host", evil.as_str()), ("Origin", origin.as_str())];
    // `http` sends its own Host first; a second one makes hyper refuse, so the raw request
    // names only the attacker's.
    let raw = |method: &str, path: &str, headers: &[(&str, &str)]| {
        let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        support::parse_response(&support::http_raw(admin, request.as_bytes()))
    };
    let kick = raw("POST", &format!("/api/players/{id}/kick"), &rebound);
    assert_eq!(kick.status, 421, "{kick:?}");
    let room = raw("GET", "/api/rooms/1", &rebound[..1]);
    assert_eq!(room.status, 421, "{room:?}");
    assert!(!room.body.contains("127.0.0.1"), "no player's address: {room:?}");
    assert_eq!(raw("GET", "/metrics", &[("Host", "127.0.0.1.nip.io:9100")]).status, 421);
    assert_eq!(raw("GET", "/api/rooms", &[]).status, 421, "no Host at all");
    // The victim is still in the game.
    assert_eq!(victim.recv(Duration::from_millis(300)), None);
    let in_rooms = http(admin, "GET", "/api/rooms", &[("Host", &format!("127.0.0.1:{port}"))]).json();
    assert_eq!(in_rooms["players"], 1, "{in_rooms}");

    // The endpoint's own names are served; the probes with any Host.
    let local = format!("localhost:{port}");
    assert_eq!(raw("GET", "/api/rooms/1", &[("Host", &local)]).status, 200);
    assert_eq!(raw("GET", "/api/rooms", &[("Host", &admin.to_string())]).status, 200);
    assert_eq!(raw("GET", "/healthz", &rebound[..1]).status, 200, "a probe names whatever it likes");
    assert_eq!(raw("GET", "/readyz", &[("Host", "10.1.2.3:9100")]).status, 200);
    // A POST from the console's own page, under the endpoint's own name, kicks.
    let own_origin = format!("http://{local}");
    let kicked = raw("POST", &format!("/api/players/{id}/kick"), &[("Host", &local), ("Origin", &own_origin)]);
    assert_eq!(kicked.status, 200, "{kicked:?}");
    assert!(victim.closed());
}

#[test]
fn an_allowed_host_is_served() {
    let mut config = test_config();
    config.admin.allowed_hosts = vec!["admin.example.com".into()];
    let (_server, _, admin) = start_admin(config, |_| {});
    let request = "GET /api/rooms HTTP/1.1\r\nHost: admin.example.com\r\nConnection: close\r\n\r\n";
    let answer = support::parse_response(&support::http_raw(admin, request.as_bytes()));
    assert_eq!(answer.status, 200, "{answer:?}");
    let request = "GET /api/rooms HTTP/1.1\r\nHost: other.example.com\r\nConnection: close\r\n\r\n";
    assert_eq!(support::parse_response(&support::http_raw(admin, request.as_bytes())).status, 421);
}

#[test]
fn no_page_may_frame_the_console() {
    let (_server, _, admin) = start_admin(with_token(), |_| {});
    for (path, headers) in [("/", &AUTH[..]), ("/api/rooms", &AUTH[..]), ("/healthz", &[]), ("/api/rooms", &[])] {
        let r = http(admin, "GET", path, headers);
        let policy = r.header("content-security-policy").unwrap_or_default();
        assert!(policy.contains("frame-ancestors 'none'"), "{path} ({}): {r:?}", r.status);
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}: {r:?}");
    }
}

#[test]
fn wrong_tokens_are_throttled_per_address() {
    let (_server, _, admin) = start_admin(with_token(), |_| {});
    let guesser = IpAddr::from([127, 0, 5, 1]);
    let wrong = [("Authorization", "Bearer a-wrong-guess-of-twenty")];
    for _ in 0..server::admin::FAILURE_BURST {
        let r = http_from(guesser, admin, "GET", "/api/rooms", &wrong);
        assert_eq!(r.status, 401, "{r:?}");
        assert_eq!(r.header("connection"), Some("close"), "a refused request closes its connection");
    }
    let throttled = http_from(guesser, admin, "GET", "/api/rooms", &wrong);
    assert_eq!(throttled.status, 429, "{throttled:?}");
    assert_eq!(throttled.header("retry-after"), Some("1"));
    // Even the right token waits: guessing on cannot tell a right guess.
    assert_eq!(http_from(guesser, admin, "GET", "/api/rooms", &AUTH).status, 429);
    // Others are not throttled; probes never are.
    assert_eq!(http(admin, "GET", "/api/rooms", &AUTH).status, 200);
    assert_eq!(http_from(guesser, admin, "GET", "/healthz", &[]).status, 200);
    // A second later, one more try.
    std::thread::sleep(server::admin::FAILURE_REFILL + Duration::from_millis(100));
    assert_eq!(http_from(guesser, admin, "GET", "/api/rooms", &AUTH).status, 200);
}

/// The count of snapshots the game built, from `/metrics`.
fn snapshots(admin: SocketAddr) -> f64 {
    let text = http(admin, "GET", "/metrics", &AUTH).body;
    sample(&text, "gameserver_admin_snapshots_total", "").unwrap_or_else(|| panic!("{text}"))
}

#[test]
fn a_thousand_requests_cost_the_game_a_bounded_number_of_snapshots() {
    let (_server, addr, admin) = start_admin(with_token(), |_| {});
    let _players: Vec<_> = (0..3).map(|_| join(addr).0).collect();
    http_get_until(admin, "/api/rooms/1", &AUTH, |r| r.status == 200 && r.json()["player_count"] == 3);
    let before = snapshots(admin);
    let started = Instant::now();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..250 {
                    let r = http(admin, "GET", "/api/rooms/1", &AUTH);
                    assert_eq!(r.status, 200, "{r:?}");
                    assert_eq!(r.json()["player_count"], 3);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let took = started.elapsed();
    let built = snapshots(admin) - before;
    // At most one per period (and the one the last scrape waited for).
    let bound = (took.as_secs_f64() / server::admin::SNAPSHOT_PERIOD.as_secs_f64()).ceil() + 2.0;
    assert!(built <= bound, "{built} snapshots for 1,000 requests in {took:?} (at most {bound})");
    assert!(built >= 1.0, "the requests were answered from snapshots built meanwhile");

    // Nobody reads: the game stops building once the demand window has passed (a scrape is a
    // read too: between two scrapes 5 s apart, it builds for the window after the first only).
    std::thread::sleep(server::admin::DEMAND_WINDOW + Duration::from_millis(500));
    let quiet = snapshots(admin);
    std::thread::sleep(Duration::from_secs(5));
    let after = snapshots(admin);
    let window = server::admin::DEMAND_WINDOW.as_secs_f64() / server::admin::SNAPSHOT_PERIOD.as_secs_f64();
    assert!(after - quiet <= window + 3.0, "{quiet} then {after}: none built while nobody reads");
}

/// Reads are paced: looping clients wait their turn (and are all answered) instead of making the
/// endpoint copy answers as fast as they ask; probes are not paced.
#[test]
fn looping_readers_are_paced_and_probes_are_not() {
    let (_server, _, admin) = start_admin(with_token(), |_| {});
    http_get_until(admin, "/api/rooms", &AUTH, |r| r.status == 200);
    let started = Instant::now();
    let readers: Vec<_> = (0..6)
        .map(|_| {
            std::thread::spawn(move || {
                (0..50).filter(|_| http(admin, "GET", "/api/rooms", &AUTH).status == 200).count()
            })
        })
        .collect();
    let probes: Vec<u16> = (0..20).map(|_| http(admin, "GET", "/healthz", &[]).status).collect();
    let answered: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
    let took = started.elapsed();
    assert_eq!(answered, 300, "every read waited its turn and was answered");
    let least = (300.0 - server::admin::READS_BURST) / server::admin::READS_PER_SECOND;
    assert!(took.as_secs_f64() >= least * 0.9, "300 reads in {took:?}: at most the paced rate");
    assert!(probes.iter().all(|s| *s == 200), "{probes:?}");
}
