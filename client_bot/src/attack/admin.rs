//! The admin endpoint under attack (issue 16): `admin-idle`, `admin-slowloris`, `admin-feed`
//! and `admin-api`, each with `/healthz` probed on a fresh connection every `probe_interval`
//! (250 ms), as an orchestrator's liveness probe would.
//!
//! - `admin-idle`: `connections` connections that send nothing, reopened as soon as the server
//!   closes one (an attacker who wants the slots back at once).
//! - `admin-slowloris`: the same, each sending a request head a byte every 100 ms.
//! - `admin-feed`: the same, each asking for the console's feed (with `--token`, if given) and
//!   reading it.
//! - `admin-api`: `players` players in the game's room (of which `movers` move every
//!   `move_interval`, timing their echoes), first alone for `warmup`, then with `connections`
//!   clients looping `GET path` (default `/api/rooms/1`, the heaviest: every player of a room)
//!   on kept-alive connections for `duration`. The tick's p50/p99 of each phase are read from the
//!   histogram in `/metrics` (interpolated in its buckets), the movers' round trips measured.
//!
//! The attackers connect from `sources` loopback addresses of their own (127.0.9.1, 127.0.9.2…;
//! 1 by default, one per client for admin-api), the probe from 127.0.0.1. Targets: every probe answered 200 within 100 ms;
//! for `admin-api` also the tick p99 raised by at most 1 ms and the movers' round trip p99
//! under 25 ms.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::client::{self, Behaviour, Shared};
use super::{Kind, ServerRss, Target, rtt_summary};
use crate::RttMs;

/// The longest a probe may take to count as answered.
pub const PROBE_TARGET: Duration = Duration::from_millis(100);
/// How much the attack may raise the tick p99 (admin-api).
pub const TICK_P99_RISE_MS: f64 = 1.0;
/// The movers' round trip p99 under the attack (admin-api).
pub const MOVER_P99_MS: f64 = 25.0;
/// How long a probe waits for its answer at most.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the holders look at their connections (and a slowloris sends a byte).
const HOLD_TICK: Duration = Duration::from_millis(100);

/// What an admin run does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminPlan {
    /// Which of the four.
    pub attack: Kind,
    /// The admin endpoint.
    pub admin: SocketAddr,
    /// The attacker's connections (API clients for admin-api).
    pub connections: u32,
    /// Loopback addresses the attacker connects from.
    pub sources: u32,
    /// The admin token, if the endpoint asks for one (the feed and the API use it).
    #[serde(skip)]
    pub token: Option<String>,
    /// Between two probes.
    #[serde(with = "humantime_serde")]
    pub probe_interval: Duration,
    /// How long the attack lasts.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// admin-api: the request looped.
    pub path: String,
    /// admin-api: players in the room.
    pub players: u32,
    /// admin-api: players that move.
    pub movers: u32,
    /// admin-api: how often movers move.
    #[serde(with = "humantime_serde")]
    pub move_interval: Duration,
    /// admin-api: the phase without the attack, before it.
    #[serde(with = "humantime_serde")]
    pub warmup: Duration,
}

/// The probes' answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Probes {
    /// Probes sent.
    pub sent: u64,
    /// Answered 200.
    pub ok: u64,
    /// Answered 200 within [`PROBE_TARGET`].
    pub ok_within_target: u64,
    /// Each probe's time (connect to the end of the answer), ms.
    pub ms: RttMs,
}

/// One phase of admin-api.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// The tick's p50 and p99 over the phase, ms, interpolated in `/metrics`' histogram buckets.
    pub tick_p50_ms: f64,
    pub tick_p99_ms: f64,
    /// The movers' round trips (move sent to its echo read), ms.
    pub mover_rtt_ms: RttMs,
    /// API requests answered (200), and per second.
    pub api_requests: u64,
    pub api_per_second: f64,
    /// API requests not answered 200 (or failed).
    pub api_failures: u64,
    /// Snapshots the game built, and their mean cost, µs (from `/metrics`).
    pub snapshots: f64,
    pub snapshot_mean_us: f64,
}

/// What an admin run found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminReport {
    /// The plan.
    pub params: AdminPlan,
    /// The probes during the attack.
    pub probes: Probes,
    /// Attacker connections opened (reopened ones included).
    pub attacker_connections: u64,
    /// Attacker connections the server closed.
    pub attacker_closed_by_server: u64,
    /// admin-api: the phase before the attack.
    pub before: Option<Phase>,
    /// admin-api: the attack.
    pub during: Option<Phase>,
    /// The server's memory, with `--server-pid`.
    pub server_rss: Option<ServerRss>,
    /// Whether the targets were met.
    pub target: Target,
}

/// Probes `/healthz` every `interval` from 127.0.0.1 until `stop`; each probe's status (0: no
/// answer) and time.
fn probe_loop(admin: SocketAddr, interval: Duration, stop: &AtomicBool) -> Vec<(u16, Duration)> {
    let mut probes = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        probes.push((probe(admin), started.elapsed()));
        std::thread::sleep(interval.saturating_sub(started.elapsed()));
    }
    probes
}

/// One probe, as the kubelet sends it: its own connection, `Host: IP:PORT`, no token.
fn probe(admin: SocketAddr) -> u16 {
    let Ok(mut stream) = TcpStream::connect_timeout(&admin, PROBE_TIMEOUT) else { return 0 };
    let _ = stream.set_read_timeout(Some(PROBE_TIMEOUT));
    let request =
        format!("GET /healthz HTTP/1.1\r\nHost: {admin}\r\nUser-Agent: kube-probe\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return 0;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    status_of(&answer)
}

fn status_of(answer: &[u8]) -> u16 {
    String::from_utf8_lossy(answer.get(..answer.len().min(16)).unwrap_or_default())
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn summarise_probes(probes: &[(u16, Duration)]) -> Probes {
    Probes {
        sent: probes.len() as u64,
        ok: probes.iter().filter(|(s, _)| *s == 200).count() as u64,
        ok_within_target: probes.iter().filter(|(s, t)| *s == 200 && *t <= PROBE_TARGET).count() as u64,
        ms: rtt_summary(probes.iter().map(|(_, t)| t.as_secs_f64() * 1000.0)),
    }
}

/// The attacker's `i`th source address.
fn source(i: u32, sources: u32) -> IpAddr {
    let n = i % sources.max(1);
    IpAddr::from([127, 9, (n / 250) as u8, (n % 250 + 1) as u8])
}

fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(to), socket2::Type::STREAM, None)?;
    if to.is_ipv4() {
        socket.bind(&SocketAddr::new(from, 0).into())?;
    }
    socket.connect_timeout(&to.into(), client::CONNECT_TIMEOUT)?;
    Ok(socket.into())
}

fn authorization(token: Option<&str>) -> String {
    token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default()
}

/// Keeps `plan.connections` attacker connections open until `stop` (idle, slowloris or feed),
/// reopening each as soon as the server closes it; counts (opened, closed by the server).
fn hold(plan: &AdminPlan, stop: &AtomicBool) -> (u64, u64) {
    let opening = match plan.attack {
        Kind::AdminSlowloris => format!("GET /api/rooms HTTP/1.1\r\nHost: {}\r\n", plan.admin),
        Kind::AdminFeed => format!(
            "GET /api/console/feed?room=1 HTTP/1.1\r\nHost: {}\r\n{}\r\n",
            plan.admin,
            authorization(plan.token.as_deref())
        ),
        _ => String::new(),
    };
    let open = |i: u32| -> Option<TcpStream> {
        let mut stream = connect_from(source(i, plan.sources), plan.admin).ok()?;
        if !opening.is_empty() {
            stream.write_all(opening.as_bytes()).ok()?;
        }
        stream.set_nonblocking(true).ok()?;
        Some(stream)
    };
    let (mut opened, mut closed) = (0u64, 0u64);
    let mut held: Vec<Option<TcpStream>> = (0..plan.connections)
        .map(|i| {
            let s = open(i);
            opened += u64::from(s.is_some());
            s
        })
        .collect();
    let mut scratch = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let tick = Instant::now();
        for (i, slot) in held.iter_mut().enumerate() {
            let alive = match slot {
                Some(stream) => {
                    let written = plan.attack != Kind::AdminSlowloris || stream.write_all(b"X").is_ok();
                    let read = loop {
                        match stream.read(&mut scratch) {
                            Ok(0) => break false,
                            Ok(_) => continue,
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break true,
                            Err(_) => break false,
                        }
                    };
                    written && read
                }
                None => false,
            };
            if !alive {
                closed += u64::from(slot.is_some());
                *slot = open(i as u32);
                opened += u64::from(slot.is_some());
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
        std::thread::sleep(HOLD_TICK.saturating_sub(tick.elapsed()));
    }
    (opened, closed)
}

/// A kept-alive HTTP/1.1 client looping `GET path` until `stop`; counts answers 200 and others.
fn api_client(plan: &AdminPlan, i: u32, stop: &AtomicBool, ok: &AtomicU64, failed: &AtomicU64) {
    let request =
        format!("GET {} HTTP/1.1\r\nHost: {}\r\n{}\r\n", plan.path, plan.admin, authorization(plan.token.as_deref()));
    let mut buffer = Vec::with_capacity(512 * 1024);
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = connect_from(source(i, plan.sources), plan.admin) else {
            failed.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let _ = stream.set_read_timeout(Some(PROBE_TIMEOUT));
        while !stop.load(Ordering::Relaxed) {
            if stream.write_all(request.as_bytes()).is_err() {
                break;
            }
            match read_response(&mut stream, &mut buffer) {
                Some((200, keep)) => {
                    ok.fetch_add(1, Ordering::Relaxed);
                    if !keep {
                        break;
                    }
                }
                _ => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
}

/// Reads one response with a `Content-Length` body: its status and whether the connection stays
/// open.
fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<(u16, bool)> {
    buffer.clear();
    let mut chunk = [0u8; 64 * 1024];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).ok().filter(|n| *n > 0)?;
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let length: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok())?;
    let keep = !head.contains("connection: close");
    while buffer.len() < head_end + length {
        let n = stream.read(&mut chunk).ok().filter(|n| *n > 0)?;
        buffer.extend_from_slice(&chunk[..n]);
    }
    Some((status_of(buffer), keep))
}

/// One `/metrics` scrape: the tick histogram's cumulative buckets (bound in seconds, count) and
/// the snapshot counters.
#[derive(Debug, Clone, Default)]
struct Scrape {
    buckets: Vec<(f64, f64)>,
    snapshots: f64,
    snapshot_seconds: f64,
}

fn scrape(plan: &AdminPlan) -> Result<Scrape, String> {
    let mut stream = TcpStream::connect(plan.admin).map_err(|e| format!("the admin endpoint: {e}"))?;
    let _ = stream.set_read_timeout(Some(PROBE_TIMEOUT));
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: {}\r\n{}Connection: close\r\n\r\n",
        plan.admin,
        authorization(plan.token.as_deref())
    );
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    if status_of(text.as_bytes()) != 200 {
        return Err(format!("/metrics: {}", text.lines().next().unwrap_or("no answer")));
    }
    let value = |line: &str| line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
    let mut out = Scrape::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("gameserver_tick_duration_seconds_bucket{le=\"") {
            let bound = rest.split('"').next().unwrap_or("");
            let bound = if bound == "+Inf" { f64::INFINITY } else { bound.parse().unwrap_or(f64::INFINITY) };
            out.buckets.push((bound, value(line).unwrap_or(0.0)));
        } else if line.starts_with("gameserver_admin_snapshots_total ") {
            out.snapshots = value(line).unwrap_or(0.0);
        } else if line.starts_with("gameserver_admin_snapshot_seconds_total ") {
            out.snapshot_seconds = value(line).unwrap_or(0.0);
        }
    }
    Ok(out)
}

/// The `q` quantile (ms) of the ticks between two scrapes, interpolated linearly in its bucket.
fn tick_quantile_ms(before: &Scrape, after: &Scrape, q: f64) -> f64 {
    let counts: Vec<(f64, f64)> = after
        .buckets
        .iter()
        .zip(before.buckets.iter().map(|b| b.1).chain(std::iter::repeat(0.0)))
        .map(|((bound, a), b)| (*bound, a - b))
        .collect();
    let total = counts.last().map_or(0.0, |c| c.1);
    if total <= 0.0 {
        return 0.0;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for (bound, cumulative) in counts {
        if cumulative >= rank {
            if !bound.is_finite() {
                return lower.0 * 1000.0;
            }
            let share = if cumulative > lower.1 { (rank - lower.1) / (cumulative - lower.1) } else { 1.0 };
            return (lower.0 + (bound - lower.0) * share) * 1000.0;
        }
        lower = (bound, cumulative);
    }
    lower.0 * 1000.0
}

fn phase(before: &Scrape, after: &Scrape, echoes: &[(Instant, f64)], took: Duration, api: (u64, u64)) -> Phase {
    let snapshots = after.snapshots - before.snapshots;
    Phase {
        tick_p50_ms: tick_quantile_ms(before, after, 0.5),
        tick_p99_ms: tick_quantile_ms(before, after, 0.99),
        mover_rtt_ms: rtt_summary(echoes.iter().map(|e| e.1)),
        api_requests: api.0,
        api_per_second: api.0 as f64 / took.as_secs_f64().max(1e-9),
        api_failures: api.1,
        snapshots,
        snapshot_mean_us: if snapshots > 0.0 {
            (after.snapshot_seconds - before.snapshot_seconds) / snapshots * 1e6
        } else {
            0.0
        },
    }
}

/// Runs an admin attack; `game` is the game's address (admin-api's players).
pub fn run(game: SocketAddr, plan: &AdminPlan) -> Result<AdminReport, String> {
    // A server just started answers 503 until its first frame.
    let deadline = Instant::now() + Duration::from_secs(10);
    while probe(plan.admin) != 200 {
        if Instant::now() > deadline {
            return Err(format!("{}/healthz does not answer 200 before the attack", plan.admin));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stop_probe = AtomicBool::new(false);
    let stop_attack = AtomicBool::new(false);
    let (ok, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|scope| {
        if plan.attack != Kind::AdminApi {
            let probes = scope.spawn(|| probe_loop(plan.admin, plan.probe_interval, &stop_probe));
            let holder = scope.spawn(|| hold(plan, &stop_attack));
            std::thread::sleep(plan.duration);
            stop_probe.store(true, Ordering::Relaxed);
            let probes = summarise_probes(&probes.join().unwrap_or_default());
            stop_attack.store(true, Ordering::Relaxed);
            let (opened, closed) = holder.join().unwrap_or_default();
            let met = probes.sent > 0 && probes.ok_within_target == probes.sent;
            return Ok(AdminReport {
                params: plan.clone(),
                target: Target {
                    what: format!("every /healthz probe answered 200 within {PROBE_TARGET:?}"),
                    met: Some(met),
                },
                probes,
                attacker_connections: opened,
                attacker_closed_by_server: closed,
                before: None,
                during: None,
                server_rss: None,
            });
        }

        // admin-api: the room first, then a phase without the attack, then one with it.
        let shared = Arc::new(Shared::default());
        let entered = Arc::new(AtomicU32::new(0));
        let players: Vec<_> = (0..plan.players)
            .map(|i| {
                let b = Behaviour {
                    index: i,
                    move_interval: (i < plan.movers).then_some(plan.move_interval),
                    entered: Some(entered.clone()),
                    ..Behaviour::default()
                };
                let shared = shared.clone();
                let thread = std::thread::Builder::new().stack_size(256 * 1024);
                thread.spawn_scoped(scope, move || client::run(game, &b, &shared))
            })
            .collect::<Result<_, _>>()
            .map_err(|e| format!("cannot start a player: {e}"))?;
        if !client::wait_for(&entered, plan.players, Duration::from_secs(120)) {
            shared.stop.store(true, Ordering::Relaxed);
            return Err(format!("only {} of {} players entered", entered.load(Ordering::Relaxed), plan.players));
        }
        let probes = scope.spawn(|| probe_loop(plan.admin, plan.probe_interval, &stop_probe));
        let t0 = Instant::now();
        let s0 = scrape(plan)?;
        std::thread::sleep(plan.warmup);
        let s1 = scrape(plan)?;
        let t1 = Instant::now();
        let clients: Vec<_> = (0..plan.connections)
            .map(|i| {
                let (stop, ok, failed) = (&stop_attack, &ok, &failed);
                scope.spawn(move || api_client(plan, i, stop, ok, failed))
            })
            .collect();
        std::thread::sleep(plan.duration);
        let s2 = scrape(plan)?;
        let t2 = Instant::now();
        let api = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
        stop_attack.store(true, Ordering::Relaxed);
        stop_probe.store(true, Ordering::Relaxed);
        for c in clients {
            let _ = c.join();
        }
        shared.stop.store(true, Ordering::Relaxed);
        let echoes: Vec<(Instant, f64)> =
            players.into_iter().filter_map(|p| p.join().ok()).flat_map(|o| o.echoes).collect();
        let of = |from: Instant, to: Instant| -> Vec<(Instant, f64)> {
            echoes.iter().filter(|e| e.0 >= from && e.0 < to).copied().collect()
        };
        let before = phase(&s0, &s1, &of(t0, t1), t1 - t0, (0, 0));
        let during = phase(&s1, &s2, &of(t1, t2), t2 - t1, api);
        let probes = summarise_probes(&probes.join().unwrap_or_default());
        let met = probes.sent > 0
            && probes.ok_within_target == probes.sent
            && during.tick_p99_ms <= before.tick_p99_ms + TICK_P99_RISE_MS
            && during.mover_rtt_ms.p99 < MOVER_P99_MS;
        Ok(AdminReport {
            params: plan.clone(),
            target: Target {
                what: format!(
                    "every /healthz probe answered 200 within {PROBE_TARGET:?}; the tick p99 raised by at most \
                     {TICK_P99_RISE_MS} ms; the movers' round trip p99 under {MOVER_P99_MS} ms"
                ),
                met: Some(met),
            },
            probes,
            attacker_connections: u64::from(plan.connections),
            attacker_closed_by_server: 0,
            before: Some(before),
            during: Some(during),
            server_rss: None,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape_of(buckets: &[(f64, f64)]) -> Scrape {
        Scrape { buckets: buckets.to_vec(), ..Scrape::default() }
    }

    #[test]
    fn tick_quantiles_are_interpolated_in_the_buckets_between_two_scrapes() {
        let before = scrape_of(&[(0.001, 10.0), (0.002, 10.0), (f64::INFINITY, 10.0)]);
        // 100 more ticks: 50 under 1 ms, 50 between 1 and 2 ms.
        let after = scrape_of(&[(0.001, 60.0), (0.002, 110.0), (f64::INFINITY, 110.0)]);
        assert!((tick_quantile_ms(&before, &after, 0.5) - 1.0).abs() < 1e-9);
        assert!((tick_quantile_ms(&before, &after, 0.99) - 1.98).abs() < 1e-9);
        assert_eq!(tick_quantile_ms(&after, &after, 0.99), 0.0, "no ticks");
    }

    #[test]
    fn a_status_is_read_from_the_first_line() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r\n"), 200);
        assert_eq!(status_of(b"HTTP/1.1 421 Misdirected"), 421);
        assert_eq!(status_of(b""), 0);
    }
}
