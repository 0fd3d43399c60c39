//! `client_bot attack` against the real server, in-process over loopback, with small counts and
//! durations: each kind runs to its end and reports figures of the right shape. Whether the
//! server meets the targets at full size is measured against the release build (see
//! `docs/benchmarks.md`), not here.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use bevy_app::Update;
use bevy_ecs::prelude::*;
use client_bot::attack::{self, AttackArgs, AttackReport};
use net_plugin::testing::AppThread;
use net_plugin::{Connection, Outbox, ServerPlugin};
use server::ServerConfig;
use shared::S_Chat;

fn start_server(config: ServerConfig) -> (AppThread, SocketAddr) {
    let config = ServerConfig { bind: "127.0.0.1:0".into(), stats_interval: Duration::ZERO, ..config };
    let net = ServerPlugin::bind(&config.bind, config.net.clone()).unwrap();
    let addr = net.local_addr();
    (AppThread::spawn(move || server::app(&config, net, None)), addr)
}

/// `client_bot attack` with these flags, against `addr`.
fn args(addr: SocketAddr, flags: &[&str]) -> AttackArgs {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        attack: AttackArgs,
    }
    let addr = format!("--addr={addr}");
    let argv = ["attack", addr.as_str()].into_iter().chain(flags.iter().copied());
    <Cli as clap::Parser>::try_parse_from(argv).unwrap().attack
}

/// The report as JSON, checked to hold `keys` (`null` for a figure the run could not take,
/// such as a release of memory the host did not show in time).
fn json_with(report: &AttackReport, keys: &[&str]) -> serde_json::Value {
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    for key in keys {
        assert!(json.get(key).is_some(), "{key} in {json:#}");
    }
    json
}

/// The server's chat counters: what it relayed and dropped, to hold the clients' figures to.
fn chat_counts(server: &AppThread) -> server::ChatCounts {
    server.run(|app| app.world().resource::<server::ServerStats>().chat)
}

#[test]
fn chat_burst_members_read_the_relayed_lines_and_time_their_echoes() {
    let (server, addr) = start_server(ServerConfig::default());
    let json_path = std::env::temp_dir().join(format!("attack-chat-burst-{}.json", std::process::id()));
    let mut a = args(
        addr,
        &["--kind=chat-burst", "--members=3", "--bursters=3", "--lines=20", "--warmup=500ms", "--duration=1500ms"],
    );
    a.json = Some(json_path.clone());
    let AttackReport::ChatBurst(r) = attack::run(&a).unwrap() else { panic!("another kind's report") };
    assert_eq!((r.members_entered, r.bursters_entered), (3, 3), "{r:#?}");
    assert_eq!(r.lines_sent, 3 * 20);
    assert_eq!(r.burst_bytes, 3 * 20 * 806, "each burst is 20 lines of 806 bytes, all written");
    // The server read every line; the default player rate (bursts of 10) let about half of
    // each burst through and dropped the rest.
    let chat = chat_counts(&server);
    assert_eq!(chat.relayed + chat.dropped_total(), 60, "{chat:?}");
    assert!(chat.dropped(server::ChatDrop::PlayerRate) >= 3 * 5, "{chat:?}");
    // Each member read exactly the lines the server relayed: none lost, none twice.
    assert_eq!(r.lines_relayed_min_per_member, chat.relayed, "{r:#?} {chat:?}");
    assert_eq!(r.lines_relayed_to_members, 3 * chat.relayed, "{r:#?} {chat:?}");
    assert!(r.rtt_before_burst_ms.count > 0 && r.rtt_ms.count > 0, "echoes before and after the burst: {r:#?}");
    // The course's room (no view radius) echoes a tick's last move: two moves that a loaded
    // machine reads in one tick get one echo. Most moves (one every 250 ms) stand alone.
    let moves = r.rtt_before_burst_ms.count + r.rtt_ms.count + r.echo_lost;
    assert!(r.echo_lost * 4 <= moves, "at most a quarter of the members' moves unechoed: {r:#?}");
    // A burst of 48 KB per member is far below any cap: nobody is cut.
    assert_eq!(r.members_connected_at_end, 3, "{r:#?}");

    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(written["kind"], "chat-burst");
    for key in ["members_connected_at_end", "lines_relayed_to_members", "rtt_ms", "target", "params"] {
        assert!(written.get(key).is_some(), "{key} in {written:#}");
    }
    // The file says what the report says.
    assert_eq!(written["lines_relayed_to_members"], r.lines_relayed_to_members);
    assert_eq!(written["rtt_ms"]["p99"].as_f64(), Some(r.rtt_ms.p99));
    assert_eq!(written["target"]["met"].as_bool(), r.target.met);
    let _ = std::fs::remove_file(json_path);
}

#[test]
fn slow_reader_reads_at_its_rate_while_others_chat() {
    let (server, addr) = start_server(ServerConfig::default());
    let a = args(addr, &["--kind=slow-reader", "--chatters=2", "--chat-rate=20", "--read-rate=2M", "--duration=2s"]);
    let report = attack::run(&a).unwrap();
    let AttackReport::SlowReader(r) = &report else { panic!("another kind's report") };
    assert_eq!(r.chatters_entered, 2);
    assert!(r.lines_sent > 0 && r.slow_reader_lines > 0, "{r:#?}");
    // It reads nothing the server did not relay, and is not cut for reading slowly.
    assert!(r.slow_reader_lines <= chat_counts(&server).relayed, "{r:#?}");
    assert!(r.slow_reader_connected_at_end, "{r:#?}");
    // The cap holds: what was read is at most its rate over the run, plus one burst.
    let cap_bits = 2e6 * r.duration_s + 16.0 * 1024.0 * 8.0;
    assert!((r.slow_reader_bytes_read as f64) * 8.0 <= cap_bits, "{r:#?}");
    let json = json_with(&report, &["slow_reader_connected_at_end", "slow_reader_bytes_read", "target"]);
    assert_eq!(json["kind"], "slow-reader");
}

/// The non-readers' flags for a small run against a server that cuts quickly.
const SMALL_NON_READERS: [&str; 7] = [
    "--kind=non-readers",
    "--non-readers=5",
    "--movers=3",
    "--move-interval=20ms",
    "--rcvbuf=4096",
    "--settle=1s",
    "--duration=60s",
];

/// A server whose network cuts quickly: tiny kernel send buffers, the smallest backlog cap
/// (one largest packet; the ceiling is 4 times it) and a 1 s stall.
fn quick_cutting_server() -> ServerConfig {
    let mut config = ServerConfig::default();
    config.net.write_stall_timeout = Duration::from_secs(1);
    config.net.send_buffer = Some(4096);
    config.net.outbound_backlog = shared::MAX_PACKET_LEN;
    config
}

/// Sends every connection a 4 KB chat line each frame (~240 KB/s): a connection that does not
/// read passes the backlog ceiling (256 KiB) within about a second, whatever the stall rule
/// does.
fn flood_everyone(connections: Query<Entity, With<Connection>>, mut outbox: Outbox) {
    let line = S_Chat { player_id: 0, chat: "z".repeat(2000) };
    outbox.broadcast(connections.iter(), &line);
}

#[test]
fn non_readers_are_seen_cut_and_the_hosts_tcp_memory_is_sampled_throughout() {
    let (server, addr) = start_server(quick_cutting_server());
    server.run(|app| {
        app.add_systems(Update, flood_everyone);
    });
    let report = attack::run(&args(addr, &SMALL_NON_READERS)).unwrap();
    let AttackReport::NonReaders(r) = &report else { panic!("another kind's report") };
    assert_eq!((r.non_readers_connected, r.not_cut), (5, 0), "{r:#?}");
    // Cut at the ceiling: reset, which the non-readers see without reading.
    assert_eq!(r.cut.get("reset"), Some(&5), "{r:#?}");
    assert_eq!(r.movers_entered, 3);
    let (first, last) = (r.first_cut_s.unwrap(), r.last_cut_s.unwrap());
    assert!(r.attack_started_s <= first && first <= last, "{r:#?}");
    // Sampled before (the 3 s baseline), during and after, a second apart.
    assert!(r.samples.len() >= 4, "{r:#?}");
    assert!(r.samples.iter().any(|s| s.t_s < r.attack_started_s) && r.samples.iter().any(|s| s.t_s > last));
    assert!(r.samples.windows(2).all(|w| w[0].t_s < w[1].t_s));
    assert!(r.samples.iter().all(|s| s.non_readers_open <= 5));
    assert_eq!(r.samples.last().unwrap().non_readers_open, 0, "the run ends after the last cut");
    assert!(r.peak_tcp_inuse > 0, "{r:#?}");
    let json = json_with(&report, &["baseline_mb", "peak_mb", "peak_over_baseline_mb", "released_after_s", "samples"]);
    assert_eq!(json["kind"], "non-readers");
    assert!(json["samples"][0]["tcp_mem_pages"].as_u64().is_some());
}

#[test]
fn non_readers_that_ping_are_cut_for_the_stall() {
    // With the room's real traffic only, and a ping now and then (never reading).
    let (_server, addr) = start_server(quick_cutting_server());
    let flags: Vec<&str> = SMALL_NON_READERS.into_iter().chain(["--ping-interval=500ms"]).collect();
    let report = attack::run(&args(addr, &flags)).unwrap();
    let AttackReport::NonReaders(r) = &report else { panic!("another kind's report") };
    assert_eq!(r.params.ping_interval, Some(Duration::from_millis(500)));
    assert_eq!((r.non_readers_connected, r.not_cut), (5, 0), "{r:#?}");
    assert_eq!(r.cut.get("reset"), Some(&5), "reset, not closed gracefully: {r:#?}");
}

#[test]
fn a_non_readers_run_that_gives_up_closes_the_rest_and_samples_the_release() {
    // The default server cuts nobody within a second: its buffers take minutes to fill at a
    // room's pace.
    let (_server, addr) = start_server(ServerConfig::default());
    let flags = ["--kind=non-readers", "--non-readers=5", "--movers=2", "--settle=1s", "--duration=1s"];
    let report = attack::run(&args(addr, &flags)).unwrap();
    let AttackReport::NonReaders(r) = &report else { panic!("another kind's report") };
    assert_eq!((r.non_readers_connected, r.not_cut), (5, 5), "{r:#?}");
    assert!(r.cut.is_empty() && r.last_cut_s.is_none(), "{r:#?}");
    let gave_up = r.gave_up_s.expect("it gave up");
    assert!(gave_up >= r.attack_started_s + 1.0, "{r:#?}");
    assert!(r.samples.iter().any(|s| s.t_s > gave_up), "sampled after closing them: {r:#?}");
    assert_eq!(r.target.met, Some(false), "a non-reader the server did not cut misses the target");
}

/// Issue 8: "a non-reader (cut within the stall timeout, abortive close observed)", with the
/// traffic a room really sends (movers' moves, a few dozen bytes a frame), from clients that
/// never send a byte after entering (the writer's news of a full socket re-arms their session's
/// timers).
#[test]
fn silent_non_readers_are_cut_at_the_stall_timeout() {
    let (_server, addr) = start_server(quick_cutting_server());
    let report = attack::run(&args(addr, &SMALL_NON_READERS)).unwrap();
    let AttackReport::NonReaders(r) = &report else { panic!("another kind's report") };
    assert_eq!((r.non_readers_connected, r.not_cut), (5, 0), "{r:#?}");
    assert_eq!(r.cut.get("reset"), Some(&5), "{r:#?}");
}

#[test]
fn garbage_connections_are_closed_and_reopened() {
    let (_server, addr) = start_server(ServerConfig::default());
    // The in-process server's memory is this process's.
    let pid = format!("--server-pid={}", std::process::id());
    let a = args(addr, &["--kind=garbage", "--connections=4", "--duration=1s", &pid]);
    let report = attack::run(&a).unwrap();
    let AttackReport::Garbage(r) = &report else { panic!("another kind's report") };
    // Random bytes are a bad frame within the first few kilobytes (a size above 4096 or below
    // 4, or an unknown id), so the server closes each connection and the sender reconnects.
    assert!(r.connections_made > 4 && r.closed_by_server > 0, "{r:#?}");
    assert_eq!(r.connections_made, r.closed_by_server + r.open_at_end);
    assert!(r.bytes_sent > 0);
    assert_eq!(r.target.met, None, "the log lines are counted outside");
    let rss = r.server_rss.as_ref().expect("sampled with --server-pid");
    assert!(rss.before_mb > 0.0 && rss.end_mb > 0.0, "{rss:?}");
}

fn bots() -> Command {
    Command::new(env!("CARGO_BIN_EXE_client_bot"))
}

#[test]
fn the_attack_subcommand_prints_its_report_as_json() {
    let (_server, addr) = start_server(ServerConfig::default());
    let out = bots()
        .args(["attack", "--kind", "garbage", "--connections", "2", "--duration", "500ms", "--addr"])
        .arg(addr.to_string())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["kind"], "garbage");
    assert!(report["connections_made"].as_u64().is_some_and(|n| n >= 2), "{report:#}");
}

#[test]
fn attack_flags_are_documented_and_bad_ones_are_one_line_and_exit_code_2() {
    let out = bots().args(["attack", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "--kind",
        "chat-burst",
        "slow-reader",
        "non-readers",
        "garbage",
        "--addr",
        "--json",
        "--duration",
        "--members",
        "--bursters",
        "--lines",
        "--chatters",
        "--chat-rate",
        "--read-rate",
        "--non-readers",
        "--movers",
        "--settle",
        "--connections",
    ] {
        assert!(help.contains(word), "attack --help mentions {word}");
    }
    for args in [
        &["attack"][..],
        &["attack", "--kind", "flood"],
        &["attack", "--kind", "garbage", "--addr", "192.0.2.1:7777"],
        &["attack", "--kind", "garbage", "--members", "3"],
        &["attack", "--kind", "slow-reader", "--read-rate", "fast"],
    ] {
        let out = bots().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
    }
}

/// The game and its admin endpoint, in-process, with `token`.
fn start_server_with_admin(token: Option<&str>) -> (AppThread, SocketAddr, SocketAddr) {
    let mut config =
        ServerConfig { bind: "127.0.0.1:0".into(), stats_interval: Duration::ZERO, ..ServerConfig::default() };
    config.admin.bind = Some("127.0.0.1:0".into());
    config.admin.token = token.map(str::to_owned);
    let net = ServerPlugin::bind(&config.bind, config.net.clone()).unwrap();
    let addr = net.local_addr();
    let admin = server::AdminPlugin::bind(&config.admin, config.net.max_connections).unwrap().unwrap();
    let admin_addr = admin.local_addr();
    let app = AppThread::spawn(move || {
        let mut app = server::app(&config, net, None);
        app.add_plugins(admin);
        app
    });
    (app, addr, admin_addr)
}

#[test]
fn admin_attacks_probe_the_health_check_beside_the_attacker() {
    let token = "a-token-for-the-attack-test";
    let (_server, addr, admin) = start_server_with_admin(Some(token));
    let admin_flag = format!("--admin={admin}");
    let token_flag = format!("--token={token}");
    for kind in ["admin-idle", "admin-slowloris", "admin-feed"] {
        let kind_flag = format!("--kind={kind}");
        let a =
            args(addr, &[&kind_flag, &admin_flag, &token_flag, "--connections=80", "--sources=3", "--duration=1500ms"]);
        let report = attack::run(&a).unwrap();
        let AttackReport::Admin(r) = &report else { panic!("another kind's report") };
        // Every probe is answered (how fast is for the release build to say).
        assert!(r.probes.sent >= 3 && r.probes.ok == r.probes.sent, "{kind}: {r:#?}");
        assert!(r.attacker_connections >= 80, "{kind}: {r:#?}");
        // 80 from 3 addresses is over the per-address share (16): the server closed some.
        assert!(r.attacker_closed_by_server > 0, "{kind}: {r:#?}");
        let json = json_with(&report, &["probes", "params", "target"]);
        assert_eq!(json["kind"], "admin");
        assert_eq!(json["params"]["attack"], kind);
        assert!(json["params"].get("token").is_none(), "the token is not written out");
    }
    let a = args(
        addr,
        &[
            "--kind=admin-api",
            &admin_flag,
            &token_flag,
            "--connections=2",
            "--players=6",
            "--movers=2",
            "--warmup=1s",
            "--duration=1s",
        ],
    );
    let AttackReport::Admin(r) = attack::run(&a).unwrap() else { panic!("another kind's report") };
    let (before, during) = (r.before.as_ref().unwrap(), r.during.as_ref().unwrap());
    assert!(during.api_requests > 0 && during.api_failures == 0, "{r:#?}");
    assert!(before.mover_rtt_ms.count > 0 && during.mover_rtt_ms.count > 0, "{r:#?}");
    assert!(before.tick_p99_ms > 0.0 && during.tick_p99_ms > 0.0, "{r:#?}");
    assert!(during.snapshots >= 1.0 && during.snapshots <= 20.0, "at most ~10 a second: {r:#?}");
    assert!(r.probes.sent >= 3 && r.probes.ok == r.probes.sent, "{r:#?}");
}
