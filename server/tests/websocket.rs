//! Browser players: a WebSocket client and a TCP client in one room see each other enter, move,
//! chat and leave, with and without a view radius; the transport is set from the settings file
//! and `--ws-bind`.

mod support;

use std::net::SocketAddr;
use std::path::Path;

use net_plugin::ServerPlugin;
use net_plugin::testing::AppThread;
use server::ServerConfig;
use support::process::spawn;
use support::{CourseClient, Msg, test_config};

/// The server app with the WebSocket transport on a free loopback port: its TCP and WebSocket
/// addresses.
fn start_both(mut config: ServerConfig) -> (AppThread, SocketAddr, SocketAddr) {
    config.net.websocket.bind = Some("127.0.0.1:0".into());
    let net = ServerPlugin::bind(&config.bind, config.net.clone()).expect("bind loopback");
    let (tcp, ws) = (net.local_addr(), net.websocket_addr().expect("the transport is on"));
    (AppThread::spawn(move || server::app(&config, net, None)), tcp, ws)
}

fn play_together(config: ServerConfig) {
    let (_server, tcp_addr, ws_addr) = start_both(config);
    let mut tcp = CourseClient::connect(tcp_addr);
    tcp.enter();
    let mut web = CourseClient::connect_ws(ws_addr);
    let listed = web.enter();
    assert!(listed.iter().any(|p| p.1 == tcp.my_id() && !p.0), "the web player's list holds the TCP player");
    let (t, w) = (tcp.my_id(), web.my_id());
    tcp.recv_until(|m| matches!(m, Msg::Enter { id, .. } if *id == w));

    web.send_move(1.0, 0.0, 2.0);
    tcp.recv_until(|m| matches!(m, Msg::Move { id, x, z, .. } if *id == w && *x == 1.0 && *z == 2.0));
    tcp.send_move(-1.0, 0.0, -2.0);
    web.recv_until(|m| matches!(m, Msg::Move { id, x, z, .. } if *id == t && *x == -1.0 && *z == -2.0));

    web.send_chat("hello from the browser");
    tcp.recv_until(|m| matches!(m, Msg::Chat { id, text } if *id == w && text == "hello from the browser"));
    tcp.send_chat("hello from the course client");
    web.recv_until(|m| matches!(m, Msg::Chat { id, text } if *id == t && text == "hello from the course client"));

    web.send_leave();
    tcp.recv_until(|m| *m == Msg::Leave { id: w });
    drop(web);
    // And the other way round: the TCP player leaves by closing its socket.
    let mut web = CourseClient::connect_ws(ws_addr);
    web.enter();
    let w2 = web.my_id();
    tcp.recv_until(|m| matches!(m, Msg::Enter { id, .. } if *id == w2));
    drop(tcp);
    web.recv_until(|m| *m == Msg::Leave { id: t });
}

#[test]
fn a_web_player_and_a_tcp_player_see_each_other() {
    play_together(test_config());
}

#[test]
fn a_web_player_and_a_tcp_player_see_each_other_within_a_view_radius() {
    let mut config = test_config();
    config.world.view_radius = 50.0;
    play_together(config);
}

#[test]
fn the_settings_file_and_the_flag_turn_the_transport_on() {
    let config =
        ServerConfig::parse(Path::new("test.toml"), "[net.websocket]\nbind = \"127.0.0.1:0\"\nmax_message = 1024\n")
            .expect("valid settings");
    assert_eq!(config.net.websocket.bind.as_deref(), Some("127.0.0.1:0"));
    assert_eq!(config.net.websocket.max_message, 1024);
    assert_eq!(ServerConfig::default().net.websocket.bind, None, "off by default");

    let mut server = spawn(&["--ws-bind", "127.0.0.1:0"]);
    let line = server.wait_for_line("listening for WebSocket clients on");
    let addr: SocketAddr = line.rsplit(' ').next().unwrap().trim().parse().expect("an address in the line");
    let mut web = CourseClient::connect_ws(addr);
    web.enter();
    web.send_chat("hi");
    web.recv_until(|m| matches!(m, Msg::Chat { text, .. } if text == "hi"));
}

#[test]
fn tls_is_set_in_the_settings_file_and_a_bad_certificate_stops_the_start() {
    let settings = "[net.websocket]\nbind = \"127.0.0.1:0\"\ntls_cert = \"/nonexistent/cert.pem\"\ntls_key = \"/nonexistent/key.pem\"\n";
    let config = ServerConfig::parse(Path::new("test.toml"), settings).expect("valid settings");
    assert_eq!(config.net.websocket.tls_cert.as_deref(), Some(Path::new("/nonexistent/cert.pem")));
    assert_eq!(config.net.websocket.tls_key.as_deref(), Some(Path::new("/nonexistent/key.pem")));
    assert_eq!(ServerConfig::default().net.websocket.tls_cert, None, "plain ws:// by default");

    // The files are read at start-up: a missing one is a bad setting (exit 2), named.
    let (dir, file) =
        support::process::settings_file("bad-certificate", &format!("bind = \"127.0.0.1:0\"\n{settings}"));
    let (code, stderr) = support::process::run(&["--config", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("net.websocket.tls_cert /nonexistent/cert.pem"), "{stderr}");
    let flags =
        ["--ws-bind", "127.0.0.1:0", "--ws-tls-cert", "/nonexistent/c.pem", "--ws-tls-key", "/nonexistent/k.pem"];
    let (code, stderr) = support::process::run(&[&["--bind", "127.0.0.1:0"][..], &flags].concat());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("/nonexistent/c.pem"), "{stderr}");
    let (code, stderr) = support::process::run(&["--bind", "127.0.0.1:0", "--ws-tls-cert", "c.pem"]);
    assert_eq!(code, 2, "a certificate without its key: {stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_websocket_port_serves_the_play_page_and_its_module() {
    let (_server, _, ws_addr) = start_both(test_config());
    let page = support::http(ws_addr, "GET", "/", &[]);
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").is_some_and(|t| t.starts_with("text/html")));
    assert!(page.body.contains("from './packets.js'"), "the page imports the module");
    let module = support::http(ws_addr, "GET", "/packets.js", &[]);
    assert_eq!(module.status, 200);
    assert_eq!(module.body, shared::js::PACKETS_JS);
    assert_eq!(support::http(ws_addr, "GET", "/nothing", &[]).status, 426, "anything else wants an upgrade");
    // And the port still upgrades.
    let mut web = CourseClient::connect_ws(ws_addr);
    web.enter();
}
