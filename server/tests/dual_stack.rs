//! The default bind, `[::]:7777`: one socket for IPv6 and IPv4 clients alike where the host has
//! IPv6 (the course's client connects to the first address its host name resolves to, which
//! can be IPv6), and `0.0.0.0` with a log line where it has none. The second case is tested by
//! telling the network plugin the host has no IPv6 (`Ipv6Host::Unavailable`).

mod support;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use net_plugin::testing::AppThread;
use net_plugin::{Ipv6Host, ServerPlugin};
use server::ServerConfig;
use support::process::spawn;
use support::{Msg, join, test_config};

/// Whether this host can listen on IPv6 loopback at all.
fn host_has_ipv6() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

fn on_port(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

/// Two players, one over IPv4 and one over IPv6 (when the host has it), see each other.
fn ipv4_and_ipv6_players_meet(port: u16) {
    let (mut v4, _) = join(on_port(Ipv4Addr::LOCALHOST.into(), port));
    if !host_has_ipv6() {
        eprintln!("this host has no IPv6: only the IPv4 client was tried");
        return;
    }
    let (v6, listed) = join(on_port(Ipv6Addr::LOCALHOST.into(), port));
    assert!(listed.iter().any(|p| p.1 == v4.my_id()), "the IPv6 player's list holds the IPv4 one: {listed:?}");
    let id = v6.my_id();
    v4.recv_until(|m| matches!(m, Msg::Enter { id: entered, .. } if *entered == id));
}

#[test]
fn the_default_bind_is_every_interface_in_both_families() {
    assert_eq!(ServerConfig::default().bind, "[::]:7777");
}

#[test]
fn listening_on_the_ipv6_wildcard_takes_ipv4_and_ipv6_clients() {
    let config = ServerConfig { bind: "[::]:0".into(), ..test_config() };
    let net = ServerPlugin::bind(&config.bind, config.net.clone()).expect("bind [::]:0 (or its fallback)");
    let addr = net.local_addr();
    if host_has_ipv6() {
        assert_eq!(addr.ip(), IpAddr::from(Ipv6Addr::UNSPECIFIED), "one dual-stack socket");
    } else {
        assert_eq!(addr.ip(), IpAddr::from(Ipv4Addr::UNSPECIFIED), "the fallback on a host without IPv6");
    }
    let _server = AppThread::spawn(move || server::app(&config, net, None));
    ipv4_and_ipv6_players_meet(addr.port());
}

#[test]
fn the_binary_listens_dual_stack_on_the_ipv6_wildcard() {
    let mut server = spawn(&["--bind", "[::]:0", "--drain-timeout", "off"]);
    if host_has_ipv6() {
        assert!(server.addr.is_ipv6(), "listening on {}", server.addr);
    }
    ipv4_and_ipv6_players_meet(server.addr.port());
    server.signal("TERM");
    assert_eq!(server.wait().0, 0);
}

/// A log writer for one thread's subscriber: what the server logs, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn without_ipv6_the_ipv6_wildcard_falls_back_to_ipv4_with_a_log_line() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let config = ServerConfig { bind: "[::]:0".into(), ..test_config() };
    let net = tracing::subscriber::with_default(subscriber, || {
        ServerPlugin::bind_on_host(&config.bind, config.net.clone(), Ipv6Host::Unavailable)
    })
    .expect("the IPv4 fallback binds");
    let addr = net.local_addr();
    assert_eq!(addr.ip(), IpAddr::from(Ipv4Addr::UNSPECIFIED), "{addr}");
    let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("IPv6 is unavailable on this host: listening on IPv4 only"), "{log}");

    let _server = AppThread::spawn(move || server::app(&config, net, None));
    let (_v4, _) = join(on_port(Ipv4Addr::LOCALHOST.into(), addr.port()));
    if host_has_ipv6() {
        let v6 = std::net::TcpStream::connect(on_port(Ipv6Addr::LOCALHOST.into(), addr.port()));
        assert!(v6.is_err(), "nothing listens on IPv6");
    }
}

#[test]
fn a_specific_ipv6_address_does_not_fall_back() {
    let config = test_config();
    let refused: Result<ServerPlugin, _> =
        ServerPlugin::bind_on_host("[::1]:0", config.net.clone(), Ipv6Host::Unavailable);
    let message = refused.err().expect("no fallback for an address that is not the wildcard").to_string();
    assert!(message.contains("cannot listen on [::1]:0"), "{message}");
}
