//! The host's own clients: the course's DummyClient, run on the server's machine, connects to
//! the first address of the host's name, a non-loopback address of this machine, not to
//! 127.0.0.1. Such connections count as local, like loopback, for `max_connections_per_ip`: 500
//! of them are served on the defaults. Tried the way it happens, from a real non-loopback
//! address of the host: the test runs itself again inside a network namespace of its own (so no
//! address of the real machine is used), where `10.213.0.1` is on an interface, and there runs
//! the `server` binary and its clients. The same rule turned off (`per_ip_counts_loopback`)
//! refuses the 65th, which the statistics line, `--stats-json` and `/metrics` count by reason.
//!
//! Without `unshare` and `ip`, or the right to make a namespace, the test says why and passes;
//! under CI (the variable `CI` set) it fails instead: `.ci/run` installs what it needs.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};

use support::process::{Running, server_command, settings_file, spawn_command};
use support::{CourseClient, Msg, WAIT, http, ping_bytes};

/// Set in the copy of this test that runs inside the namespace.
const INSIDE: &str = "HOST_ADDRESS_TEST_INSIDE";

/// The host's address inside the namespace: a private address, in a namespace with no way out.
const HOST: &str = "10.213.0.1";

/// Sessions from the host's own address: far beyond the default `max_connections_per_ip` (64).
const SESSIONS: usize = 500;

/// The name of this test, for running it again inside the namespace.
const TEST: &str = "clients_on_the_hosts_own_address_are_local_like_loopback";

#[test]
fn clients_on_the_hosts_own_address_are_local_like_loopback() {
    if std::env::var_os(INSIDE).is_some() {
        inside_the_namespace();
        return;
    }
    let Some(unshare) = namespace_command() else { return };
    // Inside: loopback up (for the admin endpoint), the host's address on an interface of its own
    // (a dummy, or a veth pair where the kernel has no dummy), then this test again.
    let script = format!(
        "set -e; ip link set lo up; \
         if ip link add h0 type dummy 2>/dev/null; then :; else ip link add h0 type veth peer name h1; ip link set h1 up; fi; \
         ip addr add {HOST}/24 dev h0; ip link set h0 up; \
         exec \"$0\" --exact {TEST} --nocapture --test-threads 1"
    );
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(unshare[0])
        .args(&unshare[1..])
        .args(["sh", "-c", &script])
        .arg(&exe)
        .env(INSIDE, "1")
        .stdin(Stdio::null())
        .output()
        .expect("run the test inside a network namespace");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "inside the namespace:\n{stdout}\n{stderr}");
    assert!(stdout.contains("test result: ok. 1 passed"), "the test ran inside:\n{stdout}\n{stderr}");
}

/// The `unshare` command line that makes a network namespace here, or `None` (after saying why)
/// when this machine cannot: panics instead under CI.
fn namespace_command() -> Option<Vec<&'static str>> {
    let skip = |why: String| {
        assert!(std::env::var_os("CI").is_none(), "under CI this test must run: {why}");
        eprintln!("skipped: {why}");
        None
    };
    if Command::new("ip").arg("-V").output().is_err() {
        return skip("no `ip` command (iproute2)".into());
    }
    // An unprivileged user needs a user namespace too; root may not be allowed one (a container's
    // seccomp profile) but can make a network namespace alone.
    let mut why = String::new();
    for args in [&["unshare", "--net", "--map-root-user"][..], &["unshare", "--net"]] {
        match Command::new(args[0]).args(&args[1..]).args(["ip", "link", "set", "lo", "up"]).output() {
            Ok(out) if out.status.success() => return Some(args.to_vec()),
            Ok(out) => why = format!("`{}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()),
            Err(e) => return skip(format!("no `unshare` command (util-linux): {e}")),
        }
    }
    skip(format!("cannot make a network namespace: {why}"))
}

/// The server binary on `HOST`, with `args`; its statistics line every second.
fn start(args: &[&str]) -> Running {
    let bind = format!("{HOST}:0");
    let mut all = vec!["--bind", &bind, "--drain-timeout", "off", "--stats-interval", "1s"];
    all.extend_from_slice(args);
    spawn_command(server_command(), &all)
}

/// Connects from the host's own address and checks it is that one, not loopback.
fn connect(addr: SocketAddr) -> CourseClient {
    let client = CourseClient::connect(addr);
    let source = client.stream.local_addr().unwrap().ip();
    assert_eq!(source, HOST.parse::<IpAddr>().unwrap(), "the client's source is the host's own address");
    assert!(!source.is_loopback());
    client
}

/// Whether the server serves `client`: a `C_Ping` is answered after everything sent before it.
fn served(client: &mut CourseClient, n: i64) -> bool {
    client.send(&ping_bytes(n));
    while let Some(msg) = client.recv(WAIT) {
        if msg == Msg::Pong(n) {
            return true;
        }
    }
    false
}

/// Stops the server and reads its `--stats-json`.
fn stop(mut server: Running, stats: &std::path::Path) -> serde_json::Value {
    server.signal("TERM");
    let (code, _) = server.wait();
    assert_eq!(code, 0, "{:?}", server.log());
    serde_json::from_str(&std::fs::read_to_string(stats).unwrap()).unwrap()
}

fn inside_the_namespace() {
    let dir = std::env::temp_dir().join(format!("host-address-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // On the defaults: 500 sessions from the host's own address, every one served.
    let stats = dir.join("defaults.json");
    let server = start(&["--stats-json", stats.to_str().unwrap()]);
    let mut clients: Vec<CourseClient> = (0..SESSIONS).map(|_| connect(server.addr)).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        assert!(served(client, i as i64), "session {i} of {SESSIONS} from the host's own address is served");
    }
    let json = stop(server, &stats);
    assert_eq!(json["sessions_total"], SESSIONS as u64, "{json}");
    for (reason, n) in json["refused"].as_object().expect("refusals by reason") {
        assert_eq!(n, 0, "refused for {reason}: {json}");
    }
    drop(clients);

    // The same rule turned off: the 65th is refused, and every report says why.
    let (_, settings) = settings_file("host-address", "[net]\nper_ip_counts_loopback = true\n");
    let stats = dir.join("counted.json");
    let mut server = start(&[
        "--config",
        settings.to_str().unwrap(),
        "--stats-json",
        stats.to_str().unwrap(),
        "--admin",
        "127.0.0.1:0",
    ]);
    let admin = server.admin_addr();
    let mut clients: Vec<CourseClient> = (0..64).map(|_| connect(server.addr)).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        assert!(served(client, i as i64), "session {i} within the limit is served");
    }
    let mut refused = connect(server.addr);
    assert!(refused.closed(), "the 65th from one address is closed when the host's own count");
    let line = server.wait_for_line("per_address 1");
    assert!(
        line.contains("refused 1 (server_full 0, per_address 1, not_accepting 0, socket_setup 0)"),
        "the statistics line: {line}"
    );
    let metrics = http(admin, "GET", "/metrics", &[]);
    assert!(
        metrics.body.contains("gameserver_connections_refused_total{reason=\"per_address\"} 1"),
        "/metrics: {}",
        metrics.body
    );
    let json = stop(server, &stats);
    assert_eq!(json["refused"]["per_address"], 1, "{json}");
    assert_eq!(json["refused"]["server_full"], 0, "{json}");
    drop(clients);
    let _ = std::fs::remove_dir_all(dir);
}
