//! Failures that must not take anything else down: a port in use, a bad address, a panic inside
//! one session's task, a panic in the writer or the accept loop (supervised).

mod support;

use bevy_app::{App, Update};
use net_plugin::testing::{AppThread, RawClient, record};
use net_plugin::{BindError, Connected, DisconnectReason, Disconnected, NetConfig, ServerPlugin};
use shared::{
    C_Chat, ClientPacket, DecodeError, Direction, EncodeError, PacketSet, PacketTypeVisitor, PacketVisitor,
    ServerPacket,
};
use support::{WAIT, echo_chat, recorded, wait_recorded};

#[test]
fn a_port_in_use_is_an_error_not_a_panic() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let error = ServerPlugin::bind(addr, NetConfig::default()).err().expect("the port is taken");
    assert!(
        matches!(&error, BindError::Bind { addr: a, source } if *a == addr && source.kind() == std::io::ErrorKind::AddrInUse)
    );
    assert!(error.to_string().starts_with(&format!("cannot listen on {addr}: ")), "{error}");
}

#[test]
fn an_address_that_does_not_resolve() {
    let error = ServerPlugin::bind("no-such-host.invalid:7777", NetConfig::default()).err().expect("unresolvable");
    assert!(matches!(error, BindError::Resolve { .. }), "{error}");
    let error = ServerPlugin::bind("127.0.0.1:99999", NetConfig::default()).err().expect("bad port");
    assert!(matches!(error, BindError::Resolve { .. }), "{error}");
}

#[test]
fn an_invalid_configuration() {
    let config = NetConfig { max_packet_size: 2, ..NetConfig::default() };
    let error = ServerPlugin::bind("127.0.0.1:0", config).err().expect("invalid");
    assert_eq!(
        error.to_string(),
        "invalid network configuration: net.max_packet_size must be between 4 and 65535 bytes"
    );
}

/// The client packets, except that decoding a chat line "boom" panics: a stand-in for a bug in
/// a session task.
#[derive(Debug)]
struct Explosive(ClientPacket);

impl PacketSet for Explosive {
    const DIRECTION: Direction = Direction::ClientToServer;

    fn id(&self) -> u16 {
        self.0.id()
    }

    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn decode_body(id: u16, body: &[u8]) -> Result<Self, DecodeError> {
        let packet = ClientPacket::decode_body(id, body)?;
        if matches!(&packet, ClientPacket::Chat(C_Chat { chat }) if chat == "boom") {
            panic!("boom");
        }
        Ok(Explosive(packet))
    }

    fn wire_len(&self) -> Result<usize, EncodeError> {
        self.0.wire_len()
    }

    fn encode<B: bytes::BufMut>(&self, buf: &mut B) -> Result<usize, EncodeError> {
        self.0.encode(buf)
    }

    fn visit<V: PacketVisitor>(self, visitor: &mut V) {
        self.0.visit(visitor)
    }

    fn visit_types<V: PacketTypeVisitor>(visitor: &mut V) {
        ClientPacket::visit_types(visitor)
    }
}

#[test]
fn a_panic_in_a_session_task_ends_that_session_only() {
    let net = ServerPlugin::<Explosive>::bind_with_packets("127.0.0.1:0", NetConfig::default()).unwrap();
    let addr = net.local_addr();
    let server = AppThread::spawn(move || {
        let mut app = App::new();
        app.add_plugins(net).add_systems(Update, echo_chat);
        record::<Connected>(&mut app);
        record::<Disconnected>(&mut app);
        app
    });
    let mut healthy = RawClient::connect(addr);
    let mut doomed = RawClient::connect(addr);
    assert!(wait_recorded::<Connected>(&server, 2));
    doomed.send(&C_Chat { chat: "boom".into() });
    assert!(doomed.wait_closed(WAIT));
    assert!(wait_recorded::<Disconnected>(&server, 1));
    assert_eq!(recorded::<Disconnected>(&server)[0].reason, DisconnectReason::InternalError("boom".into()));
    // The server and the other session carry on, and new sessions are accepted.
    healthy.send(&C_Chat { chat: "still alive?".into() });
    assert!(matches!(healthy.recv::<ServerPacket>(WAIT), Some(ServerPacket::Chat(c)) if c.chat == "still alive?"));
    let mut newcomer = RawClient::connect(addr);
    newcomer.send(&C_Chat { chat: "hello".into() });
    assert!(matches!(newcomer.recv::<ServerPacket>(WAIT), Some(ServerPacket::Chat(c)) if c.chat == "hello"));
    assert_eq!(recorded::<Disconnected>(&server).len(), 1);
}

/// A server echoing chat, with a handle on its injectable faults.
fn echo_server() -> (AppThread, std::net::SocketAddr, std::sync::Arc<net_plugin::Faults>) {
    let net = ServerPlugin::bind("127.0.0.1:0", NetConfig::default()).unwrap();
    let addr = net.local_addr();
    let server = AppThread::spawn(move || {
        let mut app = App::new();
        app.add_plugins(net).add_systems(Update, echo_chat);
        record::<Connected>(&mut app);
        app
    });
    let faults = server.run(|app| app.world().resource::<net_plugin::NetFaults>().0.clone());
    (server, addr, faults)
}

fn echoed(client: &mut RawClient, text: &str) -> bool {
    client.send(&C_Chat { chat: text.into() });
    matches!(client.recv::<ServerPacket>(WAIT), Some(ServerPacket::Chat(c)) if c.chat == text)
}

#[test]
fn the_writer_is_restarted_after_a_panic_and_loses_nothing() {
    let (server, addr, faults) = echo_server();
    let mut client = RawClient::connect(addr);
    assert!(echoed(&mut client, "before"));
    // The writer panics at its next pass, the one that would write this echo: the restarted
    // writer finds the session's bytes and writes them.
    faults.panic_writer_once();
    assert!(echoed(&mut client, "during"));
    assert!(echoed(&mut client, "after"));
    let mut newcomer = RawClient::connect(addr);
    assert!(echoed(&mut newcomer, "new"));
    drop(server);
}

#[test]
fn the_accept_loop_is_restarted_after_a_panic() {
    let (server, addr, faults) = echo_server();
    faults.panic_accept_loop_once();
    // The connection accepted when it panicked is dropped; the next ones are served.
    let mut unlucky = RawClient::connect(addr);
    assert!(unlucky.wait_closed(WAIT));
    let mut client = RawClient::connect(addr);
    assert!(echoed(&mut client, "accepted again"));
    assert_eq!(recorded::<Connected>(&server).len(), 1);
}

#[test]
fn a_task_that_keeps_panicking_stops_the_server_with_an_error() {
    let (mut server, addr, faults) = echo_server();
    let mut client = RawClient::connect(addr);
    // Five restarts are allowed in a minute; the sixth panic is one too many.
    for i in 0..5 {
        faults.panic_writer_once();
        assert!(echoed(&mut client, &format!("restart {i}")));
    }
    faults.panic_writer_once();
    client.send(&C_Chat { chat: "the last straw".into() });
    assert_eq!(server.wait_exit(WAIT), Some(bevy_app::AppExit::error()));
}
