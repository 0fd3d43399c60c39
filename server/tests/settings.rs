//! The settings file, read as the server reads it (`ServerConfig::load`, which is what
//! `--config PATH` does): a line left out means the built-in default, `"off"` turns an optional
//! setting off, `assets/server.toml` holds every default, and settings from a file reach the
//! running server.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use net_plugin::{DisconnectKind, Keepalive, NetConfig, NetStats, RateLimit};
use server::{
    AdminConfig, AgonesConfig, ChatConfig, ConfigError, LineRate, NewsPace, ServerConfig, ServerStats, Spawn,
    ViewMargin,
};
use support::{CourseClient, Msg, WAIT, http, join, move_bytes};

/// Writes `text` to a settings file of its own and loads it as `--config` would.
fn load(text: &str) -> Result<ServerConfig, ConfigError> {
    static FILES: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("s{}.toml", FILES.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&path, text).unwrap();
    let (config, used) = ServerConfig::load(Some(&path))?;
    assert_eq!(used, Some(path));
    config.validate()?;
    Ok(config)
}

/// The test server's own lines (loopback, any port, no statistics lines), then `net`.
fn load_net(net: &str) -> ServerConfig {
    load(&format!("bind = \"127.0.0.1:0\"\nstats_interval = \"off\"\n\n[net]\n{net}")).expect("valid settings")
}

#[test]
fn off_in_the_file_turns_each_optional_setting_off() {
    let config =
        load_net("inbound_rate = \"off\"\nkeepalive = \"off\"\nidle_timeout = \"off\"\nmax_total_backlog = \"off\"\n");
    assert_eq!(config.net.inbound_rate, None);
    assert_eq!(config.net.max_total_backlog, None);
    assert_eq!(config.net.keepalive, None);
    assert_eq!(config.net.idle_timeout, None);
    assert_eq!(config.stats_interval, Duration::ZERO);
    // Nothing else moved.
    let expected = NetConfig { inbound_rate: None, keepalive: None, max_total_backlog: None, ..NetConfig::default() };
    assert_eq!(config.net, expected);
}

#[test]
fn off_in_the_file_turns_the_chat_limits_off_and_values_set_them() {
    let config = load("[chat]\nplayer_rate = \"off\"\nroom_bytes_per_second = \"off\"\n").unwrap();
    assert_eq!(config.chat, ChatConfig { player_rate: None, room_bytes_per_second: None, ..ChatConfig::default() });
    let config = load("[chat]\nplayer_rate = { per_second = 2, burst = 3 }\nroom_bytes_per_second = 1000\n").unwrap();
    assert_eq!(config.chat.player_rate, Some(LineRate { per_second: 2, burst: 3 }));
    assert_eq!(config.chat.room_bytes_per_second, Some(1000));
    // Left out: on, at the defaults.
    let config = load("[chat]\nmax_chars = 50\n").unwrap();
    assert_eq!(config.chat.player_rate, Some(LineRate { per_second: 5, burst: 10 }));
    assert_eq!(config.chat.room_bytes_per_second, Some(256 * 1024));
    let message = |text: &str| load(text).unwrap_err().to_string();
    let m = message("[chat]\nplayer_rate = { per_second = 0, burst = 3 }\n");
    assert!(m.contains("chat.player_rate needs per_second and burst of at least 1"), "{m}");
    let m = message("[chat]\nroom_bytes_per_second = 0\n");
    assert!(m.contains("chat.room_bytes_per_second must be at least 1"), "{m}");
    let m = message("[chat]\nroom_bytes_per_second = \"none\"\n");
    assert!(m.contains("line 2") && m.contains("or \"off\""), "{m}");
}

#[test]
fn the_drain_timeout_is_30_s_by_default_and_off_stops_at_once() {
    assert_eq!(load("").unwrap().drain_timeout, Duration::from_secs(30));
    assert_eq!(load("drain_timeout = \"off\"\n").unwrap().drain_timeout, Duration::ZERO);
    assert_eq!(load("drain_timeout = \"0s\"\n").unwrap().drain_timeout, Duration::ZERO);
    assert_eq!(load("drain_timeout = \"2m\"\n").unwrap().drain_timeout, Duration::from_secs(120));
    let m = load("drain_timeout = \"soon\"\n").unwrap_err().to_string();
    assert!(m.contains("line 1") && m.contains("or \"off\""), "{m}");
}

#[test]
fn agones_settings_have_their_defaults_and_ranges() {
    let defaults = load("").unwrap().agones;
    assert_eq!(
        defaults,
        AgonesConfig { enabled: false, health_interval: Duration::from_secs(2), shutdown_when_empty: false }
    );
    let agones = load("[agones]\nhealth_interval = \"500ms\"\nshutdown_when_empty = true\n").unwrap().agones;
    assert_eq!((agones.health_interval, agones.shutdown_when_empty), (Duration::from_millis(500), true));
    let m = load("[agones]\nhealth_interval = \"0s\"\n").unwrap_err().to_string();
    assert!(m.contains("agones.health_interval must be at least 10ms"), "{m}");
    let m = load("[agones]\nhealth = \"2s\"\n").unwrap_err().to_string();
    assert!(m.contains("line 2") && m.contains("unknown field `health`"), "{m}");
    // Turning it on needs a build with the feature.
    let enabled = load("[agones]\nenabled = true\n");
    if cfg!(feature = "agones") {
        assert!(enabled.unwrap().agones.enabled);
    } else {
        let m = enabled.unwrap_err().to_string();
        assert!(m.contains("this build lacks Agones support"), "{m}");
    }
}

#[test]
fn rooms_hold_1000_by_default_and_capacity_0_is_one_room() {
    assert_eq!(load("").unwrap().room.capacity, 1000);
    assert_eq!(load("[room]\ncapacity = 0\n").unwrap().room.capacity, 0);
}

#[test]
fn a_missing_line_means_the_built_in_default_even_when_that_is_on() {
    let config = load("[net]\nmax_connections = 5\n").unwrap();
    assert_eq!(config.net.max_connections, 5);
    assert_eq!(config.net.inbound_rate, Some(RateLimit { per_second: 100, burst: 200 }));
    assert_eq!(config.net.keepalive, Some(Keepalive::default()));
    assert_eq!(config.net.idle_timeout, None);
    assert_eq!(config.stats_interval, Duration::from_secs(5));
    assert_eq!(load("").unwrap(), ServerConfig::default());
}

#[test]
fn optional_settings_take_values_too() {
    let config = load(
        "stats_interval = \"250ms\"\n[net]\nidle_timeout = \"2m\"\ninbound_rate = { per_second = 5, burst = 7 }\n\
         [net.keepalive]\nidle = \"7s\"\ninterval = \"1s\"\nretries = 2\n",
    )
    .unwrap();
    assert_eq!(config.stats_interval, Duration::from_millis(250));
    assert_eq!(config.net.idle_timeout, Some(Duration::from_secs(120)));
    assert_eq!(config.net.inbound_rate, Some(RateLimit { per_second: 5, burst: 7 }));
    let keepalive = Keepalive { idle: Duration::from_secs(7), interval: Duration::from_secs(1), retries: 2 };
    assert_eq!(config.net.keepalive, Some(keepalive));
    assert_eq!(load("stats_interval = \"0s\"\n").unwrap().stats_interval, Duration::ZERO);
}

#[test]
fn a_wrong_optional_value_names_its_line_and_the_off_spelling() {
    let message = |text: &str| load(text).unwrap_err().to_string();
    let m = message("bind = \"127.0.0.1:0\"\n[net]\ninbound_rate = \"none\"\n");
    assert!(m.contains("line 3") && m.contains("or \"off\""), "{m}");
    let m = message("[net]\nidle_timeout = \"soon\"\n");
    assert!(m.contains("line 2") && m.contains("or \"off\""), "{m}");
    // "Off" is a word of its own, not a spelling of false or zero.
    let m = message("[net]\nkeepalive = false\n");
    assert!(m.contains("line 2"), "{m}");
    let m = message("[net]\nkeepalive = \"OFF\"\n");
    assert!(m.contains("line 2"), "{m}");
    // The table's own checks still apply.
    let m = message("[net]\nkeepalive = { idle = \"30s\", retries = 3 }\n");
    assert!(m.contains("line 2") && m.contains("missing field `interval`"), "{m}");
    let m = message("[net]\ninbound_rate = { per_second = 1, burst = 2, bursts = 3 }\n");
    assert!(m.contains("unknown field `bursts`"), "{m}");
    let m = message("[net]\ninbound_rate = { per_second = 0, burst = 2 }\n");
    assert!(m.contains("net.inbound_rate needs per_second and burst of at least 1"), "{m}");
}

#[test]
fn settings_written_out_read_back_the_same() {
    let all_off = ServerConfig {
        stats_interval: Duration::ZERO,
        drain_timeout: Duration::ZERO,
        chat: ChatConfig { player_rate: None, room_bytes_per_second: None, ..ChatConfig::default() },
        net: NetConfig { inbound_rate: None, keepalive: None, idle_timeout: None, ..NetConfig::default() },
        ..ServerConfig::default()
    };
    let all_on = ServerConfig {
        net: NetConfig { idle_timeout: Some(Duration::from_millis(1500)), ..NetConfig::default() },
        ..ServerConfig::default()
    };
    let client_side = ServerConfig { net: NetConfig::client_default(), ..ServerConfig::default() };
    for config in [all_off.clone(), all_on, client_side, ServerConfig::default()] {
        let text = toml::to_string(&config).unwrap();
        assert_eq!(ServerConfig::parse(Path::new("written"), &text).unwrap(), config, "{text}");
    }
    let text = toml::to_string(&all_off).unwrap();
    for line in [
        "stats_interval = \"off\"",
        "drain_timeout = \"off\"",
        "inbound_rate = \"off\"",
        "keepalive = \"off\"",
        "idle_timeout = \"off\"",
        "player_rate = \"off\"",
        "room_bytes_per_second = \"off\"",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

fn shipped_file() -> (PathBuf, String) {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/server.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

/// Every setting's dotted name (`net.keepalive.idle`) in a TOML table.
fn keys(table: &toml::Table, prefix: &str, out: &mut BTreeSet<String>) {
    for (key, value) in table {
        let name = format!("{prefix}{key}");
        match value {
            toml::Value::Table(inner) => keys(inner, &format!("{name}."), out),
            _ => {
                out.insert(name);
            }
        }
    }
}

/// The settings the built-in defaults have and `text` does not spell out (or the reverse).
/// `net.io_threads` depends on the machine, so the file leaves it to the default.
fn settings_not_written_out(text: &str) -> BTreeSet<String> {
    let mut defaults = BTreeSet::new();
    keys(&toml::Table::try_from(ServerConfig::default()).unwrap(), "", &mut defaults);
    defaults.remove("net.io_threads");
    let mut written = BTreeSet::new();
    keys(&text.parse::<toml::Table>().unwrap(), "", &mut written);
    defaults.symmetric_difference(&written).cloned().collect()
}

#[test]
fn the_shipped_file_spells_out_every_built_in_default() {
    let (path, text) = shipped_file();
    assert_eq!(ServerConfig::parse(&path, &text).unwrap(), ServerConfig::default());
    assert_eq!(settings_not_written_out(&text), BTreeSet::new());
    // Comparing parsed settings alone could never fail on a line left out (it reads as its
    // default); the check of written-out names does.
    let without_rate: String =
        text.lines().filter(|l| !l.starts_with("inbound_rate")).map(|l| format!("{l}\n")).collect();
    assert_eq!(ServerConfig::parse(&path, &without_rate).unwrap(), ServerConfig::default());
    assert!(settings_not_written_out(&without_rate).contains("net.inbound_rate.burst"));
    let rate_off = text.replace("inbound_rate = { per_second = 100, burst = 200 }", "inbound_rate = \"off\"");
    assert_ne!(ServerConfig::parse(&path, &rate_off).unwrap(), ServerConfig::default());
}

#[test]
fn the_shipped_files_examples_do_what_its_comments_say() {
    let (_, text) = shipped_file();
    let comments: String = text.lines().filter(|l| l.starts_with('#')).collect::<Vec<_>>().join("\n");
    let net = |line: &str| {
        assert!(comments.contains(line), "the file's comments show {line:?}");
        load(&format!("[net]\n{line}\n")).unwrap().net
    };
    assert_eq!(net("inbound_rate = \"off\"").inbound_rate, None);
    assert_eq!(net("keepalive = \"off\"").keepalive, None);
    assert_eq!(net("idle_timeout = \"2m\"").idle_timeout, Some(Duration::from_secs(120)));
    assert_eq!(net("io_threads = 1").io_threads, 1);
    assert_eq!(net("max_total_backlog = \"off\"").max_total_backlog, None);
    assert!(comments.contains("Default: 134217728 (128 MiB)"));
    assert_eq!(NetConfig::default().max_total_backlog, Some(128 << 20));
    let m = load("[net]\nmax_total_backlog = 1000\n").unwrap_err().to_string();
    assert!(m.contains("net.max_total_backlog must hold at least one packet"), "{m}");
    let chat = |line: &str| {
        assert!(comments.contains(line), "the file's comments show {line:?}");
        load(&format!("[chat]\n{line}\n")).unwrap().chat
    };
    assert_eq!(chat("player_rate = \"off\"").player_rate, None);
    assert_eq!(chat("room_bytes_per_second = \"off\"").room_bytes_per_second, None);
    // "a line of 30 characters is 70 bytes".
    assert!(comments.contains("a line of 30 characters is 70 bytes"));
    let line = shared::S_Chat { player_id: 1, chat: "x".repeat(30) };
    assert_eq!(shared::wire_len(&line).unwrap(), 70);
    // "Durations are written like "250ms", "5s", "1m"."
    for (written, meant) in [("250ms", 250), ("5s", 5_000), ("1m", 60_000)] {
        assert!(comments.contains(&format!("\"{written}\"")));
        let config = load(&format!("[net]\nclose_linger = \"{written}\"\n")).unwrap();
        assert_eq!(config.net.close_linger, Duration::from_millis(meant));
    }
    // "0 = the tick rate".
    assert!(text.contains("frame_hz = 0") && comments.contains("0 = the tick rate"));
    assert_eq!(load("tick_hz = 50\nframe_hz = 0\n").unwrap().frame_period(), Duration::from_millis(20));
    // "One statistics line this often ("off", or "0s": never)."
    assert!(comments.contains("(\"off\", or \"0s\": never)"));
    // ""off" (or "0s"): stop at once."
    assert!(comments.contains("\"off\" (or \"0s\"): stop at"));
    assert_eq!(load("drain_timeout = \"off\"\n").unwrap().drain_timeout, Duration::ZERO);
    assert_eq!(load("stats_interval = \"off\"\n").unwrap().stats_interval, Duration::ZERO);
}

#[test]
fn with_the_inbound_rate_off_a_burst_of_500_packets_is_served() {
    let (server, addr) = support::start(load_net("inbound_rate = \"off\"\n"));
    let (mut client, _) = join(addr);
    let burst: Vec<u8> = (0..500).flat_map(|i| move_bytes(i as f32, 0.0, 0.0)).collect();
    client.send(&burst);
    client.send_chat("still here");
    client.recv_until(|m| matches!(m, Msg::Chat { text, .. } if text == "still here"));
    let stats = server.run(|app| app.world().resource::<NetStats>().clone());
    assert_eq!(stats.disconnects(DisconnectKind::InboundFlood), 0);
    assert!(stats.packets_in >= 501, "{stats:?}");
}

#[test]
fn with_the_default_inbound_rate_the_same_burst_closes_the_connection() {
    let (server, addr) = support::start(load_net(""));
    let (mut client, _) = join(addr);
    let burst: Vec<u8> = (0..500).flat_map(|i| move_bytes(i as f32, 0.0, 0.0)).collect();
    client.send(&burst);
    assert!(client.closed(), "the flood closes the connection");
    assert!(
        server
            .wait_until(WAIT, |app| app.world().resource::<NetStats>().disconnects(DisconnectKind::InboundFlood) == 1)
    );
}

/// The kernel's view of one TCP socket, from `/proc/net/tcp`.
#[cfg(target_os = "linux")]
#[derive(Debug, PartialEq)]
struct KernelTimer {
    /// `tr`: 0 none, 1 retransmit, 2 `sk_timer` (for an established socket: keepalive), 4 probe.
    kind: u8,
    /// `tm->when`, in clock ticks.
    ticks: u64,
}

/// Clock ticks per second in `/proc` (`USER_HZ`), fixed at 100 by Linux's user-space ABI.
#[cfg(target_os = "linux")]
const USER_HZ: u64 = 100;

/// The timer of the established socket from `local` to `remote`, once no retransmission is
/// pending (that would hide the keepalive timer).
#[cfg(target_os = "linux")]
fn socket_timer(local: SocketAddr, remote: SocketAddr) -> KernelTimer {
    let hex = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => format!("{:08X}:{:04X}", u32::from_ne_bytes(v4.ip().octets()), v4.port()),
        SocketAddr::V6(_) => panic!("the tests listen on IPv4"),
    };
    let (local, remote) = (hex(local), hex(remote));
    let deadline = Instant::now() + WAIT;
    loop {
        let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
        let line = table
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.len() > 5 && f[1] == local && f[2] == remote)
            .expect("the server's side of the connection");
        assert_eq!(line[3], "01", "established");
        let (kind, when) = line[5].split_once(':').unwrap();
        let timer = KernelTimer { kind: kind.parse().unwrap(), ticks: u64::from_str_radix(when, 16).unwrap() };
        if timer.kind != 1 || Instant::now() > deadline {
            return timer;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Joins, and returns the timer of the server's socket for this client.
#[cfg(target_os = "linux")]
fn servers_socket_timer(config: ServerConfig) -> KernelTimer {
    let (_server, addr) = support::start(config);
    let (client, _): (CourseClient, _) = join(addr);
    socket_timer(addr, client.stream.local_addr().unwrap())
}

#[cfg(target_os = "linux")]
#[test]
fn keepalive_from_the_file_reaches_the_accepted_socket() {
    let off = servers_socket_timer(load_net("keepalive = \"off\"\n"));
    assert_eq!(off, KernelTimer { kind: 0, ticks: 0 }, "no keepalive timer");

    let short = servers_socket_timer(load_net("keepalive = { idle = \"7s\", interval = \"1s\", retries = 2 }\n"));
    assert_eq!(short.kind, 2, "a keepalive timer: {short:?}");
    assert!((1..=7 * USER_HZ).contains(&short.ticks), "the first probe within 7 s: {short:?}");

    let default = servers_socket_timer(load_net(""));
    assert_eq!(default.kind, 2, "keepalive is on by default: {default:?}");
    assert!((20 * USER_HZ..=30 * USER_HZ).contains(&default.ticks), "the first probe within 30 s: {default:?}");
}

#[test]
fn interest_settings_from_the_file_reach_the_running_server() {
    let (_, text) = shipped_file();
    assert!(
        text.contains("view_radius = 0.0")
            && text.contains("view_margin = \"10%\"")
            && text.contains("spawn = \"origin\"")
    );
    let defaults = load("").unwrap().world;
    assert_eq!(
        (defaults.view_radius, defaults.view_margin, defaults.spawn),
        (0.0, ViewMargin::Percent(10.0), Spawn::Origin)
    );
    let world = load("[world]\nview_radius = 10.0\nview_margin = 2.5\nspawn = \"random\"\n").unwrap().world;
    assert_eq!((world.view_radius, world.view_margin, world.spawn), (10.0, ViewMargin::Units(2.5), Spawn::Random));
    let m = load("[world]\nview_radius = -3.0\n").unwrap_err().to_string();
    assert!(m.contains("world.view_radius"), "{m}");
    let m = load("[world]\nspawn = \"anywhere\"\n").unwrap_err().to_string();
    assert!(m.contains("line 2"), "{m}");

    // A radius of 10 with the default margin (1): a player 11 away is out of view; at 10 it is in.
    let config = load("bind = \"127.0.0.1:0\"\nstats_interval = \"off\"\n[world]\nview_radius = 10.0\n").unwrap();
    let (_server, addr) = support::start(config);
    let (mut far, _) = join(addr);
    far.send_move(11.0, 0.0, 0.0);
    let id = far.my_id();
    far.recv_until(|m| *m == Msg::Move { id, x: 11.0, y: 0.0, z: 0.0 });
    let (_newcomer, listed) = join(addr);
    assert_eq!(listed.len(), 1, "only itself: {listed:?}");
    far.send_move(10.0, 0.0, 0.0);
    let before = far.recv_until(|m| *m == Msg::Move { id, x: 10.0, y: 0.0, z: 0.0 });
    assert!(matches!(before[..], [Msg::Enter { .. }]), "{before:?}");
}

/// `view_delay`: others' moves wait for the observer's next answer (its own move's echo), and
/// then each player's newest position is told; "off" sends every move in its tick. 300 ms by
/// default. (A still observer told when the delay is up: the next test.)
#[test]
fn view_delay_from_the_file_holds_view_traffic_until_the_next_answer_and_off_sends_it_at_once() {
    assert_eq!(ServerConfig::default().world.view_delay, Duration::from_millis(300));
    let world = |delay: &str| {
        format!("bind = \"127.0.0.1:0\"\nstats_interval = \"off\"\n[world]\nview_radius = 10.0\nview_delay = {delay}\n")
    };
    // Held: a long delay, so only the observer's own move can release it.
    let (_server, addr) = support::start(load(&world("\"30s\"")).unwrap());
    let (mut observer, _) = join(addr);
    let (mut mover, _) = join(addr);
    assert_eq!(observer.sync(), vec![Msg::Enter { id: mover.my_id(), x: 0.0, y: 0.0, z: 0.0 }]);
    let (me, them) = (observer.my_id(), mover.my_id());
    for x in [1.0, 2.0] {
        mover.send_move(x, 0.0, 0.0);
        mover.recv_until(|m| *m == Msg::Move { id: them, x, y: 0.0, z: 0.0 });
    }
    assert_eq!(observer.drain(), vec![], "held until the observer's next answer");
    observer.send_move(0.0, 0.0, 1.0);
    let before = observer.recv_until(|m| *m == Msg::Move { id: me, x: 0.0, y: 0.0, z: 1.0 });
    assert_eq!(before, vec![Msg::Move { id: them, x: 2.0, y: 0.0, z: 0.0 }], "the newest position, before the echo");
    assert_eq!(observer.sync(), vec![], "told once");

    // Off: the move arrives without the observer doing anything (no ping, no move of its own).
    let (_server, addr) = support::start(load(&world("\"off\"")).unwrap());
    let (mut observer, _) = join(addr);
    let (mut mover, _) = join(addr);
    assert_eq!(observer.sync(), vec![Msg::Enter { id: mover.my_id(), x: 0.0, y: 0.0, z: 0.0 }]);
    let them = mover.my_id();
    mover.send_move(1.0, 0.0, 0.0);
    assert_eq!(observer.recv(WAIT), Some(Msg::Move { id: them, x: 1.0, y: 0.0, z: 0.0 }));
}

/// The server app on this thread, game time stepped by hand: each frame runs exactly one tick
/// (10 ms at `tick_hz = 100`), however long the machine takes for it.
struct Stepped {
    app: bevy_app::App,
    /// Frames (and so ticks) run so far.
    frames: u64,
}

impl Stepped {
    fn new(config: ServerConfig) -> (Self, SocketAddr) {
        let net = net_plugin::ServerPlugin::bind(&config.bind, config.net.clone()).expect("bind loopback");
        let addr = net.local_addr();
        let mut app = server::app(&config, net, None);
        app.insert_resource(bevy_time::TimeUpdateStrategy::FixedTimesteps(1));
        (Self { app: net_plugin::testing::ready(app), frames: 0 }, addr)
    }

    /// Runs frames until `c` reads a packet matching `want`; returns the ones before it.
    fn until(&mut self, c: &mut CourseClient, mut want: impl FnMut(&Msg) -> bool) -> Vec<Msg> {
        let deadline = Instant::now() + WAIT;
        let mut skipped = Vec::new();
        loop {
            self.app.update();
            self.frames += 1;
            while let Some(m) = c.recv(Duration::from_millis(20)) {
                if want(&m) {
                    return skipped;
                }
                skipped.push(m);
            }
            assert!(Instant::now() < deadline, "never came; got {skipped:?}");
        }
    }

    /// Connects a player and runs frames until it entered.
    fn join(&mut self, addr: SocketAddr) -> CourseClient {
        let mut c = CourseClient::connect(addr);
        let mut id = None;
        self.until(&mut c, |m| match m {
            Msg::List(players) => {
                id = players.iter().find(|p| p.0).map(|p| p.1);
                false
            }
            Msg::Enter { id: entered, .. } => Some(*entered) == id,
            _ => false,
        });
        c.id = id;
        c
    }

    /// Sends a move, waits until the server's I/O side read it (no frame runs meanwhile), then
    /// runs frames until its echo: one, unless the read raced the frame.
    fn walk(&mut self, c: &mut CourseClient, x: f32, z: f32) -> Vec<Msg> {
        let before = net_plugin::testing::io_stats(self.app.world()).bytes_in;
        c.send_move(x, 0.0, z);
        let deadline = Instant::now() + WAIT;
        while net_plugin::testing::io_stats(self.app.world()).bytes_in < before + 16 {
            assert!(Instant::now() < deadline, "the server never read the move");
            std::thread::sleep(Duration::from_millis(1));
        }
        let id = c.my_id();
        self.until(c, |m| *m == Msg::Move { id, x, y: 0.0, z })
    }
}

/// A stepped server, 100 ticks a second, R = 10 and the `[world]` settings `world` adds; an
/// observer and a mover who see each other at the origin; the observer just answered (the echo
/// of a move of its own: it is told now, and next when the delay is up). Returns the frame it
/// was answered at too.
fn observer_answered(world: &str) -> (Stepped, CourseClient, CourseClient, u64) {
    let text = format!(
        "bind = \"127.0.0.1:0\"\nstats_interval = \"off\"\ntick_hz = 100\n[world]\nview_radius = 10.0\n{world}"
    );
    let (mut server, addr) = Stepped::new(load(&text).unwrap());
    let mut observer = server.join(addr);
    let mover = server.join(addr);
    assert_eq!(observer.recv(WAIT), Some(Msg::Enter { id: mover.my_id(), x: 0.0, y: 0.0, z: 0.0 }));
    assert_eq!(server.walk(&mut observer, 0.0, 1.0), vec![]);
    let answered = server.frames;
    (server, observer, mover, answered)
}

/// `view_delay`: a player that does not move is told when the delay is up, once, of the newest
/// position of each player in its view, however many moves it made meanwhile. With game time
/// stepped by hand, "the delay is up" is a count of ticks, not a race with the machine's load.
#[test]
fn a_still_observer_is_told_the_newest_position_once_when_the_delay_is_up() {
    const DELAY_TICKS: u64 = 1000;
    let (mut server, mut observer, mut mover, answered) = observer_answered("view_delay = \"10s\"\n");
    let them = mover.my_id();
    // Three moves, a tick or so apart (the first answer tells the mover the observer's move).
    let me = observer.my_id();
    assert_eq!(server.walk(&mut mover, 1.0, 0.0), vec![Msg::Move { id: me, x: 0.0, y: 0.0, z: 1.0 }]);
    for x in [2.0, 3.0] {
        assert_eq!(server.walk(&mut mover, x, 0.0), vec![]);
    }
    assert!(server.frames - answered < 100, "the moves took a few ticks: {}", server.frames - answered);
    // Frames in steps of 50 until the observer hears something.
    let deadline = Instant::now() + WAIT;
    let told = loop {
        for _ in 0..50 {
            server.app.update();
            server.frames += 1;
        }
        if let Some(m) = observer.recv(Duration::from_millis(5)) {
            break m;
        }
        assert!(Instant::now() < deadline, "never told");
    };
    let waited = server.frames - answered;
    assert!(waited >= DELAY_TICKS - 50, "told after {waited} ticks, before the delay was up");
    assert_eq!(told, Msg::Move { id: them, x: 3.0, y: 0.0, z: 0.0 }, "the newest position only");
    // A ping is an answer too: nothing new to tell.
    observer.send(&support::ping_bytes(7));
    assert_eq!(server.until(&mut observer, |m| *m == Msg::Pong(7)), vec![], "once");
}

/// `view_delay` counts ticks for all of the news, leaves and enters as well as moves: a leave an
/// observer is owed waits for its due tick however long the frames take by the wall clock (here
/// each takes longer than the whole delay), and goes then although nothing in its view moved.
#[test]
fn a_held_leave_goes_at_the_observers_due_tick_whatever_the_wall_clock_says() {
    const DELAY_TICKS: u64 = 10;
    let (mut server, mut observer, mut mover, answered) =
        observer_answered("view_delay = \"100ms\"\noverload_news_max = \"off\"\n");
    let them = mover.my_id();
    // The mover walks out of view (beyond R + M = 11): the observer is owed a leave.
    server.walk(&mut mover, 50.0, 0.0);
    assert!(server.frames - answered < DELAY_TICKS - 2, "the premise: the walk took a few ticks");
    let told = loop {
        // Each frame 150 ms apart by the wall clock, past the whole 100 ms delay.
        std::thread::sleep(Duration::from_millis(150));
        server.app.update();
        server.frames += 1;
        if let Some(m) = observer.recv(Duration::from_millis(20)) {
            break m;
        }
        assert!(server.frames - answered <= DELAY_TICKS + 1, "never told");
    };
    assert_eq!(told, Msg::Leave { id: them });
    let waited = server.frames - answered;
    // One frame less if the echo that set `answered` was read a frame late.
    assert!((DELAY_TICKS - 1..=DELAY_TICKS).contains(&waited), "told after {waited} ticks, not at the due tick");
    observer.send(&support::ping_bytes(8));
    assert_eq!(server.until(&mut observer, |m| *m == Msg::Pong(8)), vec![], "once");
}

/// `overload_news_max`: graceful overload, on by default (1,200 ms) wherever there is news to
/// thin (a view radius and a view delay); a value from the file bounds the stretch, `"off"` turns
/// it off, 0 is refused.
#[test]
fn overload_news_max_from_the_file_reaches_the_running_server_and_off_turns_it_off() {
    assert_eq!(ServerConfig::default().world.overload_news_max, Some(Duration::from_millis(1200)));
    let (_, text) = shipped_file();
    assert!(text.contains("overload_news_max = \"1200ms\""));
    let world = |radius: f32, max: &str| {
        format!(
            "bind = \"127.0.0.1:0\"\nstats_interval = \"off\"\n[world]\nview_radius = {radius:?}\noverload_news_max = {max}\n"
        )
    };
    assert_eq!(load(&world(10.0, "\"2s\"")).unwrap().world.overload_news_max, Some(Duration::from_secs(2)));
    assert_eq!(load(&world(10.0, "\"off\"")).unwrap().world.overload_news_max, None);
    let m = load(&world(10.0, "\"0s\"")).unwrap_err().to_string();
    assert!(m.contains("world.overload_news_max"), "{m}");

    // Running: on, the news interval starts at view_delay (300 ms) and may stretch to the file's
    // bound, and the statistics show it; off, or without a radius, nothing of it runs.
    let ms = |d: Duration| d.as_millis() as u64;
    for (text, expected) in
        [(world(10.0, "\"2s\""), Some((300, 2000))), (world(10.0, "\"off\""), None), (world(0.0, "\"2s\""), None)]
    {
        let (server, _) = support::start(load(&text).unwrap());
        let pace =
            server.run(move |app| app.world().get_resource::<NewsPace>().map(|p| (ms(p.interval()), ms(p.max()))));
        assert_eq!(pace, expected, "{text}");
        let gauge = expected.map_or(0, |(now, _)| now);
        assert!(server.wait_until(WAIT, move |app| {
            let stats = app.world().resource::<ServerStats>();
            stats.frames > 2 && stats.overload.news_interval_ms == gauge
        }));
    }
}

#[test]
fn the_admin_endpoint_is_off_unless_bound_and_a_network_address_needs_a_token() {
    let (_, text) = shipped_file();
    assert!(text.contains("[admin]\n") && text.contains("bind = \"off\"") && text.contains("token = \"off\""));
    assert!(text.contains("token_file = \"off\"") && text.contains("allowed_hosts = []"));
    assert_eq!(load("").unwrap().admin, AdminConfig::default());
    assert_eq!(
        AdminConfig::default(),
        AdminConfig { bind: None, token: None, token_file: None, allowed_hosts: Vec::new() }
    );
    let admin = |text: &str| load(&format!("[admin]\n{text}")).map(|c| c.admin);
    let message = |text: &str| admin(text).unwrap_err().to_string();
    assert_eq!(admin("bind = \"127.0.0.1:9100\"\n").unwrap().bind.as_deref(), Some("127.0.0.1:9100"));
    assert!(admin("bind = \"[::1]:9100\"\n").is_ok(), "IPv6 loopback");
    let m = message("bind = \"0.0.0.0:9100\"\n");
    assert!(m.contains("admin.token is required when admin.bind (0.0.0.0:9100) is not a loopback address"), "{m}");
    let open = admin("bind = \"0.0.0.0:9100\"\ntoken = \"s3cret-s3cret-s3cret\"\n").unwrap();
    assert_eq!(open.token.as_deref(), Some("s3cret-s3cret-s3cret"));
    assert!(!format!("{open:?}").contains("s3cret"), "printing the settings does not show the token");
    // A short token is refused at start-up, with a message that says why and what to do.
    let m = message("bind = \"127.0.0.1:9100\"\ntoken = \"x\"\n");
    assert!(m.contains("admin.token must be at least 16 characters, not 1"), "{m}");
    let m = message("bind = \"127.0.0.1:9100\"\ntoken = \"0123456789abcde\"\n");
    assert!(m.contains("at least 16 characters, not 15"), "{m}");
    assert!(admin("bind = \"127.0.0.1:9100\"\ntoken = \"0123456789abcdef\"\n").is_ok(), "16 is enough");
    let m = message("bind = \"localhost:9100\"\n");
    assert!(m.contains("admin.bind must be an IP address and port"), "{m}");
    let m = message("bind = \"127.0.0.1:9100\"\ntoken = \"two words\"\n");
    assert!(m.contains("admin.token must be printable ASCII without spaces"), "{m}");
    let m = message("token = \"\"\nbind = \"127.0.0.1:9100\"\n");
    assert!(m.contains("admin.token must be"), "{m}");
    let m = message("bind = \"127.0.0.1:9100\"\nallowed_hosts = [\"http://x/\"]\n");
    assert!(m.contains("admin.allowed_hosts entries are host names"), "{m}");
    assert_eq!(
        admin("allowed_hosts = [\"admin.example.com\", \"ops:8443\"]\n").unwrap().allowed_hosts,
        ["admin.example.com", "ops:8443"]
    );

    // The token from a file (a mounted secret); its final newline is not part of it.
    let secret = std::env::temp_dir().join(format!("admin-token-{}", std::process::id()));
    std::fs::write(&secret, "from-a-mounted-secret\n").unwrap();
    let with_file = format!("bind = \"0.0.0.0:9100\"\ntoken_file = {:?}\n", secret.to_str().unwrap());
    let from_file = admin(&with_file).unwrap();
    assert_eq!(from_file.token().unwrap().as_deref(), Some("from-a-mounted-secret"));
    let m = message(&format!("{with_file}token = \"0123456789abcdef\"\n"));
    assert!(m.contains("admin.token and admin.token_file: set one, not both"), "{m}");
    std::fs::write(&secret, "short\n").unwrap();
    assert!(message(&with_file).contains("at least 16 characters, not 5"));
    std::fs::remove_file(&secret).unwrap();
    let m = message(&with_file);
    assert!(m.contains("admin.token_file: cannot read"), "{m}");
    // "off" is none.
    assert_eq!(admin("token_file = \"off\"\n").unwrap().token_file, None);
    let m = message("bind = 9100\n");
    assert!(m.contains("line 2"), "{m}");

    // From the file to the running endpoint: it serves where the file says and asks for its token.
    let config = load(
        "bind = \"127.0.0.1:0\"\nstats_interval = \"off\"\n[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"from-the-file-1234\"\n",
    )
    .unwrap();
    let (_server, _, admin) = support::start_admin(config, |_| {});
    assert_eq!(http(admin, "GET", "/api/rooms", &[]).status, 401);
    assert_eq!(http(admin, "GET", "/api/rooms", &[("Authorization", "Bearer from-the-file-1234")]).status, 200);
}
