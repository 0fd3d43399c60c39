//! The `server` binary as an operator runs it: flags, settings errors, the listening line,
//! signals, the statistics file.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::process::{run, server_command, settings_file, spawn, spawn_command};
use support::{CourseClient, Msg, WAIT, join};

#[test]
fn help_lists_every_flag() {
    let out = server_command().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--bind",
        "--tick-hz",
        "--config",
        "--max-connections",
        "--stats-json",
        "--room-capacity",
        "--drain-timeout",
        "--agones",
        "--admin",
        "--admin-token",
        "--admin-token-file",
        "--help",
    ] {
        assert!(help.contains(flag), "--help mentions {flag}");
    }
}

#[test]
fn a_bad_flag_is_one_line_and_exit_code_2() {
    for args in [
        &["--frobnicate"][..],
        &["--tick-hz", "fast"],
        &["--tick-hz", "0"],
        &["--stats-interval", "soon"],
        &["--drain-timeout", "soon"],
        &["--admin", "0.0.0.0:0"],
        &["--admin", "somewhere"],
    ] {
        let (code, stderr) = run(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: one line, got {stderr:?}");
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
}

/// A build without the cargo feature `agones` says so, as a bad setting would.
#[cfg(not(feature = "agones"))]
#[test]
fn agones_without_the_feature_is_one_line_and_exit_code_2() {
    let (code, stderr) = run(&["--agones"]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr:?}");
    assert!(stderr.contains("this build lacks Agones support") && stderr.contains("--features agones"), "{stderr}");
}

#[test]
fn a_bad_settings_file_is_one_line_and_exit_code_2() {
    let dir = std::env::temp_dir().join(format!("server-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        ("tick_hz = \"fast\"\n", "line 1: invalid type: string \"fast\", expected u32"),
        ("bind = \"x\"\n\n[room]\ncapcity = 3\n", "line 4: unknown field `capcity`"),
        ("[net]\nmax_packet_size = 2\n", "net.max_packet_size must be between 4 and 65535 bytes"),
        (
            "[net]\ninbound_rate = \"none\"\n",
            "line 2: invalid type: string \"none\", expected struct RateLimit, or \"off\"",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let path = dir.join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let (code, stderr) = run(&["--config", path.to_str().unwrap()]);
        assert_eq!(code, 2, "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr:?}");
        assert!(stderr.contains(expected), "{stderr:?} should say {expected:?}");
    }
    let (code, stderr) = run(&["--config", "/no/such/file.toml"]);
    assert_eq!(code, 2);
    assert!(stderr.starts_with("error: cannot read /no/such/file.toml"), "{stderr}");
}

#[test]
fn a_port_in_use_is_a_clear_error_and_a_non_zero_exit() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, stderr) = run(&["--bind", &addr]);
    assert_eq!(code, 1);
    assert!(stderr.contains(&format!("cannot listen on {addr}")), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn sigterm_with_clients_connected_flushes_closes_and_exits_0() {
    let stats = std::env::temp_dir().join(format!("server-stats-{}.json", std::process::id()));
    // No drain: the immediate stop (draining is tests/drain.rs).
    let mut server = spawn(&["--drain-timeout", "0s", "--stats-json", stats.to_str().unwrap()]);
    let mut clients: Vec<_> = (0..3).map(|_| join(server.addr).0).collect();
    clients[0].send_chat("bye all");
    for c in &mut clients {
        c.recv_until(|m| matches!(m, Msg::Chat { .. }));
    }
    server.signal("TERM");
    let (code, took) = server.wait();
    assert_eq!(code, 0, "{:?}", server.log());
    assert!(took < Duration::from_secs(5), "stopped in {took:?}");
    for c in &mut clients {
        assert!(c.closed(), "every connection is closed");
    }
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    for key in ["frames", "packets_in", "packets_out", "bytes_in", "bytes_out", "sessions_total"] {
        assert!(json[key].as_u64().is_some(), "{key} in {json}");
    }
    for key in ["p50", "p99", "max"] {
        assert!(json["tick_ms"][key].as_f64().is_some(), "tick_ms.{key} in {json}");
    }
    assert_eq!(json["sessions_total"], 3);
    assert_eq!(json["disconnects"]["shutdown"], 3, "{json}");
    assert!(json["frames"].as_u64().unwrap() > 0);
    assert!(json["packets_in"].as_u64().unwrap() >= 1);
    let _ = std::fs::remove_file(stats);
}

#[test]
fn sigint_stops_it_too() {
    let mut server = spawn(&["--drain-timeout", "off"]);
    let (_client, _) = join(server.addr);
    server.signal("INT");
    let (code, took) = server.wait();
    assert_eq!(code, 0);
    assert!(took < Duration::from_secs(5));
    assert!(server.log().iter().any(|l| l.contains("stopped")));
}

#[test]
fn flags_override_the_settings_file() {
    let dir = std::env::temp_dir().join(format!("server-flags-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.toml");
    std::fs::write(&path, "tick_hz = 7\n[room]\ncapacity = 2\n").unwrap();
    let mut server = spawn(&["--config", path.to_str().unwrap(), "--tick-hz", "20"]);
    let line = server.wait_for_line("tick_hz=");
    assert!(line.contains("tick_hz=20") && line.contains("room_capacity=2"), "{line:?}");
    server.signal("TERM");
    assert_eq!(server.wait().0, 0);
}

#[test]
fn dropped_chat_lines_are_counted_by_reason_in_the_statistics_line_and_file() {
    // One line at once, then one a second: of three lines sent together, two are dropped.
    let (dir, settings) = settings_file("chat-stats", "[chat]\nplayer_rate = { per_second = 1, burst = 1 }\n");
    let stats = dir.join("stats.json");
    let mut server = spawn(&[
        "--drain-timeout",
        "off",
        "--config",
        settings.to_str().unwrap(),
        "--stats-interval",
        "100ms",
        "--stats-json",
        stats.to_str().unwrap(),
    ]);
    let (mut client, _) = join(server.addr);
    let lines: Vec<u8> = ["one", "two", "three"].iter().flat_map(|t| support::chat_bytes(t)).collect();
    client.send(&lines);
    client.recv_until(|m| matches!(m, Msg::Chat { id: 0, .. }));

    // The statistics lines count them, each over its own interval.
    let number_before = |line: &str, words: &str| -> u64 {
        let head = line.split(words).next().unwrap_or("");
        head.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0)
    };
    let (mut relayed, mut dropped, mut player_rate) = (0, 0, 0);
    let deadline = Instant::now() + WAIT;
    while (relayed, dropped, player_rate) != (1, 2, 2) && Instant::now() < deadline {
        let Ok(line) = server.stderr.recv_timeout(WAIT) else { break };
        if let Some(chat) = line.split("| chat lines ").nth(1) {
            relayed += number_before(chat, " relayed");
            dropped += number_before(chat, " dropped");
            player_rate += number_before(chat, ", room_budget");
            assert!(chat.contains("room_budget 0"), "{line}");
        }
    }
    assert_eq!((relayed, dropped, player_rate), (1, 2, 2), "the statistics lines count the chat lines");

    server.signal("TERM");
    assert_eq!(server.wait().0, 0);
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(json["chat"]["relayed"], 1, "{json}");
    assert_eq!(json["chat"]["dropped"]["player_rate"], 2, "{json}");
    assert_eq!(json["chat"]["dropped"]["room_budget"], 0, "every reason is listed: {json}");
    assert_eq!(json["disconnects"]["shutdown"], 1, "the sender was not disconnected: {json}");
}

/// A client that stops reading while the server has megabytes queued for it: its receive
/// buffer is tiny, so its kernel holds almost nothing of them.
fn stalled_client(addr: SocketAddr) -> CourseClient {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    CourseClient::from_stream(socket.into())
}

/// The most a TCP send buffer may grow to on this machine (`tcp_wmem`'s maximum): at most what
/// the server's kernel can take off its hands for a client that does not read (the network
/// plugin's `send_buffer` keeps it smaller by default).
fn largest_send_buffer() -> usize {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem").unwrap_or_default();
    text.split_whitespace().nth(2).and_then(|n| n.parse().ok()).unwrap_or(4 << 20)
}

#[test]
fn a_second_signal_exits_at_once_while_the_graceful_exit_waits() {
    // A graceful exit that would wait a minute for a client that does not read; chat lines of
    // 2,000 characters (4,010 bytes relayed), any number of them at once (no chat limits).
    let dir = std::env::temp_dir().join(format!("server-second-signal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let settings = dir.join("slow-exit.toml");
    std::fs::write(
        &settings,
        "[chat]\nmax_chars = 2000\nplayer_rate = \"off\"\nroom_bytes_per_second = \"off\"\n\n\
         [net]\ninbound_rate = \"off\"\noutbound_backlog = 67108864\n\
         close_linger = \"60s\"\nshutdown_timeout = \"60s\"\n",
    )
    .unwrap();
    let mut server = spawn(&["--drain-timeout", "off", "--config", settings.to_str().unwrap()]);
    let mut stalled = stalled_client(server.addr);
    stalled.enter();
    let stalled_id = stalled.my_id();
    let (mut reader, _) = join(server.addr);
    // The stalled client sends lines that the room, itself included, receives: 2 MB more than
    // the server's kernel can hold for it, so that much waits in the server. It never reads.
    let line = support::chat_bytes(&"x".repeat(2000));
    let lines = (largest_send_buffer() + (2 << 20)) / (line.len() + 4) + 1;
    let mut writer = stalled.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        for _ in 0..lines {
            std::io::Write::write_all(&mut writer, &line).unwrap();
        }
    });
    // The reader sees every line, so each is queued for the stalled client too.
    let mut seen = 0;
    while seen < lines {
        match reader.recv(WAIT).expect("the relayed lines") {
            Msg::Chat { id, .. } if id == stalled_id => seen += 1,
            _ => {}
        }
    }
    sender.join().unwrap();

    server.signal("TERM");
    std::thread::sleep(Duration::from_secs(1));
    let still_running = server.child.try_wait().unwrap().is_none();
    assert!(still_running, "the graceful exit waits for the stalled client: {:?}", server.log());
    server.signal("TERM");
    let (code, took) = server.wait();
    assert_eq!(code, 128 + 15, "128 + SIGTERM's number: {:?}", server.log());
    assert!(took < Duration::from_secs(3), "exited {took:?} after the second signal");
    drop(stalled);
}

/// Random bytes from a small generator of the test's own (xorshift): the test needs no exact
/// sequence, only bytes no client would send.
struct Noise(u64);

impl Noise {
    fn fill(&mut self, bytes: &mut [u8]) {
        for b in bytes {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
    }
}

/// One garbage sender until `until`: connects, writes random bytes until the server closes the
/// connection, and connects again. Returns the connections it made.
fn send_garbage(addr: SocketAddr, seed: u64, until: Instant) -> u64 {
    use std::io::Write;
    let mut noise = Noise(seed | 1);
    let mut chunk = [0u8; 64];
    let mut connections = 0;
    while Instant::now() < until {
        let Ok(mut stream) = std::net::TcpStream::connect(addr) else { continue };
        connections += 1;
        while Instant::now() < until {
            noise.fill(&mut chunk);
            if stream.write_all(&chunk).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Reconnect at a pace a loaded test machine keeps up with (hundreds a second in all).
        std::thread::sleep(Duration::from_millis(100));
    }
    connections
}

#[test]
fn garbage_from_200_connections_writes_a_few_log_lines_at_the_default_level() {
    let stats = std::env::temp_dir().join(format!("server-garbage-{}.json", std::process::id()));
    let mut command = server_command();
    command.env_remove("RUST_LOG");
    let mut server = spawn_command(command, &["--drain-timeout", "off", "--stats-json", stats.to_str().unwrap()]);
    let addr = server.addr;
    let until = Instant::now() + Duration::from_secs(4);
    let senders: Vec<_> =
        (0..200u64).map(|i| std::thread::spawn(move || send_garbage(addr, 0x5EED + i * 7919, until))).collect();
    let connections: u64 = senders.into_iter().map(|s| s.join().unwrap()).sum();
    server.signal("TERM");
    assert_eq!(server.wait().0, 0);
    // Everything it wrote, from its start to its exit (`log` reads to the pipe's end).
    let log = server.log();

    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    let faults: u64 = ["malformed_frame", "malformed_packet", "unexpected_packet", "inbound_flood", "invalid_input"]
        .iter()
        .filter_map(|k| json["disconnects"][k].as_u64())
        .sum();
    assert!(connections >= 400, "the senders reconnected after each close: {connections}");
    assert!(faults >= 400, "the server closed them for their garbage: {json}");
    // At `info`, a periodic summary by kind instead of a line per faulty client.
    assert!(log.len() < 40, "{} lines for {faults} faulty connections:\n{}", log.len(), log.join("\n"));
    assert!(log.iter().any(|l| l.contains("WARN") && l.contains("connection(s) closed for")), "{log:?}");
    // Every fault is in a summary, the last seconds' too (told at shutdown).
    let summarised: u64 = log
        .iter()
        .filter_map(|l| l.split(" connections=").nth(1))
        .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(summarised, faults, "{}", log.join("\n"));
    let _ = std::fs::remove_file(stats);
}

/// The value of a sample in a metrics text.
fn metric(text: &str, name: &str, labels: &str) -> f64 {
    server::admin::metrics::sample(text, name, labels).unwrap_or_else(|| panic!("{name}{{{labels}}} in\n{text}"))
}

#[test]
fn the_admin_endpoint_reports_the_numbers_the_statistics_file_gets() {
    let stats = std::env::temp_dir().join(format!("server-admin-stats-{}.json", std::process::id()));
    // No drain: the clients are still connected when the SIGTERM comes.
    let mut server = spawn(&[
        "--admin",
        "127.0.0.1:0",
        "--admin-token",
        "tok-tok-tok-tok-tok",
        "--drain-timeout",
        "off",
        "--stats-json",
        stats.to_str().unwrap(),
    ]);
    let admin = server.admin_addr();
    assert!(server.wait_for_line("admin endpoint on").contains("token required"));
    let auth = [("Authorization", "Bearer tok-tok-tok-tok-tok")];
    let mut clients: Vec<_> = (0..2).map(|_| join(server.addr).0).collect();
    for c in &mut clients {
        c.send_move(1.0, 0.0, 1.0);
    }
    let deadline = Instant::now() + WAIT;
    let text = loop {
        let text = support::http(admin, "GET", "/metrics", &auth).body;
        let moves = server::admin::metrics::sample(&text, "gameserver_packets_received_total", "packet=\"C_Move\"");
        if moves == Some(2.0) || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(support::http(admin, "GET", "/healthz", &[]).status, 200);
    let received: f64 = ["C_LeaveGame", "C_Move", "C_Chat", "C_Ping"]
        .iter()
        .map(|p| metric(&text, "gameserver_packets_received_total", &format!("packet=\"{p}\"")))
        .sum();

    server.signal("TERM");
    assert_eq!(server.wait().0, 0);
    // The clients sent nothing after the scrape: the summary at exit has the same numbers.
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(json["packets_in"].as_f64(), Some(received), "{json}\n{text}");
    assert_eq!(json["bytes_in"].as_f64(), Some(metric(&text, "gameserver_received_bytes_total", "")));
    assert_eq!(json["sessions_total"].as_f64(), Some(metric(&text, "gameserver_connections_total", "")));
    assert_eq!(json["players_max"].as_f64(), Some(metric(&text, "gameserver_players_max", "")));
    let _ = std::fs::remove_file(stats);
}

/// Where the admin token comes from, the first found: a flag (`--admin-token`,
/// `--admin-token-file`), the environment (`GAMESERVER_ADMIN_TOKEN`), the settings file
/// (`token`, `token_file`). A short one stops the start with one line, wherever it came from.
#[test]
fn the_admin_token_comes_from_a_flag_then_the_environment_then_the_settings_file() {
    let (dir, settings) =
        settings_file("admin-token", "[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"from-the-settings-file\"\n");
    let secret = dir.join("token");
    std::fs::write(&secret, "from-a-mounted-secret\n").unwrap();
    let env = server::ADMIN_TOKEN_ENV;
    let config = settings.to_str().unwrap();
    // Which token the server started with asks for: exactly one of them is let in.
    let accepted = |mut server: support::process::Running| {
        let admin = server.admin_addr();
        let tokens = ["from-the-settings-file", "from-the-environment", "from-a-mounted-secret"];
        let ok: Vec<&str> = tokens
            .into_iter()
            .filter(|t| {
                support::http(admin, "GET", "/api/rooms", &[("Authorization", &format!("Bearer {t}"))]).status == 200
            })
            .collect();
        ok
    };
    assert_eq!(accepted(spawn(&["--config", config])), ["from-the-settings-file"]);
    let with_env = || {
        let mut command = server_command();
        command.env(env, "from-the-environment");
        command
    };
    assert_eq!(accepted(spawn_command(with_env(), &["--config", config])), ["from-the-environment"]);
    let flag = ["--config", config, "--admin-token-file", secret.to_str().unwrap()];
    assert_eq!(accepted(spawn_command(with_env(), &flag)), ["from-a-mounted-secret"]);

    let out = server_command().env(env, "short").args(["--bind", "127.0.0.1:0", "--config", config]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("admin.token must be at least 16 characters, not 5"), "{stderr}");
    let (code, stderr) = run(&["--admin", "127.0.0.1:0", "--admin-token", "x"]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}
