//! The WebSocket transport over real loopback sockets, with a standard client
//! (tokio-tungstenite): WebSocket and TCP peers share the server's game, its limits and its
//! rules; each bad input closes its sender alone, with the right close code.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bevy_app::Update;
use futures_util::{SinkExt, StreamExt};
use net_plugin::testing::{AppThread, RawClient};
use net_plugin::testing::{Recorded, record};
use net_plugin::{
    ClientOutbox, ClientPlugin, ClientReceived, ClientTls, ConnectFailed, ConnectOptions, Connected, Connection,
    Connector, DisconnectKind, Disconnected, NetConfig, NetStats, Refusal, ServerPlugin, Transport, WebSocketAddr,
    WebSocketConfig,
};
use shared::{C_Chat, C_Move, FrameDecoder, S_BroadcastMove, S_Chat, ServerPacket, encode_to_vec};
use support::{WAIT, broadcast_moves, echo_chat, recorded, start_server_with, wait_recorded};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A config with the WebSocket transport on, on a free loopback port.
fn ws_config() -> NetConfig {
    NetConfig {
        websocket: WebSocketConfig { bind: Some("127.0.0.1:0".into()), ..WebSocketConfig::default() },
        ..NetConfig::default()
    }
}

/// A server echoing chat and broadcasting moves, with `config`; its TCP and WebSocket addresses.
fn start(config: NetConfig) -> (AppThread, SocketAddr, SocketAddr) {
    let (server, tcp) = start_server_with(config, |app| {
        app.add_systems(Update, (echo_chat, broadcast_moves));
    });
    let ws = server.run(|app| app.world().resource::<WebSocketAddr>().0);
    (server, tcp, ws)
}

async fn connect(addr: SocketAddr) -> Ws {
    let (ws, response) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await.expect("upgrade");
    assert_eq!(response.status(), 101);
    ws
}

/// The packets of the next binary message, which must hold whole frames.
async fn recv_message(ws: &mut Ws) -> Option<Vec<ServerPacket>> {
    loop {
        let next = tokio::time::timeout(WAIT, ws.next()).await;
        let Ok(Some(Ok(next))) = next else {
            eprintln!("no message: {next:?}");
            return None;
        };
        match next {
            Message::Binary(bytes) => {
                let mut frames = FrameDecoder::new(shared::MAX_PACKET_LEN);
                frames.extend_from_slice(&bytes);
                let mut packets = Vec::new();
                while let Some(frame) = frames.next_frame().expect("valid frames") {
                    packets.push(shared::decode::<ServerPacket>(frame).expect("valid packets"));
                }
                assert_eq!(frames.buffered(), 0, "a message holds whole frames");
                return Some(packets);
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a binary message, got {other:?}"),
        }
    }
}

/// Waits for a packet matching `wanted` among the next messages.
async fn recv_until(ws: &mut Ws, wanted: impl Fn(&ServerPacket) -> bool) -> ServerPacket {
    loop {
        let packets = recv_message(ws).await.expect("a message before the timeout");
        if let Some(p) = packets.into_iter().find(&wanted) {
            return p;
        }
    }
}

/// The close frame the server sends, after skipping other messages.
async fn recv_close(ws: &mut Ws) -> (CloseCode, String) {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("closed in time") {
            Some(Ok(Message::Close(Some(frame)))) => return (frame.code, frame.reason.to_string()),
            Some(Ok(Message::Close(None))) | None => panic!("closed without a close frame"),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("the socket failed before a close frame: {e}"),
        }
    }
}

fn tcp_recv_until(client: &mut RawClient, wanted: impl Fn(&ServerPacket) -> bool) -> ServerPacket {
    std::iter::from_fn(|| client.recv::<ServerPacket>(WAIT)).find(wanted).expect("the TCP client gets it")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_tcp_clients_share_the_game() {
    let (server, tcp_addr, ws_addr) = start(ws_config());
    let mut tcp = RawClient::connect(tcp_addr);
    let mut ws = connect(ws_addr).await;
    assert!(wait_recorded::<Connected>(&server, 2));
    let transports = server.run(|app| {
        let mut q = app.world_mut().query::<&Connection>();
        let mut t: Vec<_> = q.iter(app.world()).map(Connection::transport).collect();
        t.sort_by_key(|t| t.as_str());
        t
    });
    assert_eq!(transports, [Transport::Tcp, Transport::WebSocket]);
    let counted = |app: &mut bevy_app::App| {
        let stats = app.world().resource::<NetStats>();
        (stats.sessions, stats.sessions_websocket) == (2, 1)
    };
    assert!(server.wait_until(WAIT, counted), "the statistics count the WebSocket session");

    // The WebSocket client's move reaches both; so does the TCP client's.
    let mv = C_Move { pos_x: 1.5, pos_y: 0.0, pos_z: -2.0 };
    ws.send(Message::Binary(encode_to_vec(&mv).unwrap().into())).await.unwrap();
    let moved = |x: f32| move |p: &ServerPacket| matches!(p, ServerPacket::BroadcastMove(S_BroadcastMove { pos_x, .. }) if *pos_x == x);
    recv_until(&mut ws, moved(1.5)).await;
    tokio::task::block_in_place(|| tcp_recv_until(&mut tcp, moved(1.5)));
    tcp.send(&C_Move { pos_x: 7.0, pos_y: 0.0, pos_z: 0.0 });
    recv_until(&mut ws, moved(7.0)).await;
    tokio::task::block_in_place(|| tcp_recv_until(&mut tcp, moved(7.0)));

    // Two packets in one message.
    let mut two = encode_to_vec(&C_Chat { chat: "one".into() }).unwrap();
    two.extend(encode_to_vec(&C_Chat { chat: "two".into() }).unwrap());
    ws.send(Message::Binary(two.into())).await.unwrap();
    let mut chats = Vec::new();
    while chats.len() < 2 {
        for p in recv_message(&mut ws).await.expect("the echoes") {
            if let ServerPacket::Chat(S_Chat { chat, .. }) = p {
                chats.push(chat);
            }
        }
    }
    assert_eq!(chats, ["one", "two"]);

    // The WebSocket client leaves with a close handshake: the server sees it leave cleanly.
    ws.close(None).await.unwrap();
    assert!(wait_recorded::<Disconnected>(&server, 1));
    let gone = recorded::<Disconnected>(&server);
    assert_eq!(gone[0].reason.kind(), DisconnectKind::ClosedByPeer);
    server.exit();
}

/// A healthy WebSocket client and a healthy TCP client beside a bad one: only the bad one goes,
/// with `code`.
async fn bad_input(config: NetConfig, bad: Message, code: CloseCode) -> String {
    let (server, tcp_addr, ws_addr) = start(config);
    let mut tcp = RawClient::connect(tcp_addr);
    let mut healthy = connect(ws_addr).await;
    let mut offender = connect(ws_addr).await;
    assert!(wait_recorded::<Connected>(&server, 3));
    offender.send(bad).await.unwrap();
    let (got, reason) = recv_close(&mut offender).await;
    assert_eq!(got, code, "close code ({reason})");
    assert!(wait_recorded::<Disconnected>(&server, 1));

    let chat = |p: &ServerPacket| matches!(p, ServerPacket::Chat(S_Chat { chat, .. }) if chat == "still here");
    healthy.send(Message::Binary(encode_to_vec(&C_Chat { chat: "still here".into() }).unwrap().into())).await.unwrap();
    recv_until(&mut healthy, chat).await;
    tokio::task::block_in_place(|| {
        tcp.send(&C_Chat { chat: "still here".into() });
        tcp_recv_until(&mut tcp, chat);
    });
    let gone = recorded::<Disconnected>(&server);
    assert_eq!(gone.len(), 1, "only the offender left: {gone:?}");
    server.exit();
    reason
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_message_closes_its_sender_only() {
    let reason = bad_input(ws_config(), Message::Text("hello".into()), CloseCode::Unsupported).await;
    assert!(reason.contains("text"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_ending_inside_a_frame_closes_its_sender_only() {
    let whole = encode_to_vec(&C_Chat { chat: "cut short".into() }).unwrap();
    let bad = Message::Binary(whole[..whole.len() - 2].to_vec().into());
    bad_input(ws_config(), bad, CloseCode::Invalid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_closes_its_sender_only() {
    let mut config = ws_config();
    config.websocket.max_message = 1024;
    config.websocket.max_frame = 1024;
    let bad = Message::Binary(vec![0u8; 4096].into());
    bad_input(config, bad, CloseCode::Size).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_course_frame_closes_with_invalid_data() {
    // A size below the header's: the course framing's own rule, told as a close code.
    bad_input(ws_config(), Message::Binary(vec![1, 0, 3, 0].into()), CloseCode::Invalid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_transports_count_against_one_connection_limit() {
    let config = NetConfig { max_connections: 1, ..ws_config() };
    let (server, tcp_addr, ws_addr) = start(config);
    let tcp = RawClient::connect(tcp_addr);
    assert!(wait_recorded::<Connected>(&server, 1));
    // The server is full: the WebSocket client is closed before its upgrade.
    let refused = tokio_tungstenite::connect_async(format!("ws://{ws_addr}/")).await;
    assert!(refused.is_err(), "no upgrade at the limit");
    assert!(server.wait_until(WAIT, |app| app.world().resource::<NetStats>().refused(Refusal::ServerFull) >= 1));
    drop(tcp.stream().shutdown(std::net::Shutdown::Both));
    assert!(wait_recorded::<Disconnected>(&server, 1));
    // Once the TCP client has gone, a WebSocket client takes its place.
    let mut ws = connect(ws_addr).await;
    assert!(wait_recorded::<Connected>(&server, 2));
    ws.close(None).await.unwrap();
    server.exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_upgrades_is_closed_at_the_handshake_timeout() {
    let mut config = ws_config();
    config.websocket.handshake_timeout = Duration::from_millis(200);
    let (server, _, ws_addr) = start(config);
    let mut silent = tokio::task::block_in_place(|| RawClient::connect(ws_addr));
    assert!(tokio::task::block_in_place(|| silent.wait_closed(WAIT)), "closed without a request");
    // A plain HTTP request is told to upgrade.
    let mut http = tokio::task::block_in_place(|| RawClient::connect(ws_addr));
    http.send_bytes(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut response = Vec::new();
    tokio::task::block_in_place(|| {
        use std::io::Read;
        http.stream().set_read_timeout(Some(WAIT)).unwrap();
        let _ = (&mut http.stream()).read_to_end(&mut response);
    });
    assert!(response.starts_with(b"HTTP/1.1 426"), "{}", String::from_utf8_lossy(&response));
    assert!(recorded::<Connected>(&server).is_empty(), "neither became a connection");
    server.exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_outside_the_allowed_list_are_refused() {
    let mut config = ws_config();
    config.websocket.allowed_origins = vec!["https://game.example".into()];
    let (server, _, ws_addr) = start(config);
    let request = |origin: &str| {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{ws_addr}/").into_client_request().unwrap();
        request.headers_mut().insert("Origin", origin.parse().unwrap());
        request
    };
    assert!(tokio_tungstenite::connect_async(request("https://evil.example")).await.is_err());
    let (mut ws, _) = tokio_tungstenite::connect_async(request("https://game.example")).await.expect("allowed");
    // A native client sends no Origin: always allowed.
    let mut native = connect(ws_addr).await;
    assert!(wait_recorded::<Connected>(&server, 2));
    ws.close(None).await.unwrap();
    native.close(None).await.unwrap();
    server.exit();
}

#[test]
fn the_transport_is_off_unless_bound() {
    let net = ServerPlugin::bind("127.0.0.1:0", NetConfig::default()).unwrap();
    assert_eq!(net.websocket_addr(), None);
    let on = ServerPlugin::bind("127.0.0.1:0", ws_config()).unwrap();
    assert!(on.websocket_addr().is_some_and(|a| a.port() != 0));
}

#[derive(bevy_ecs::resource::Resource)]
struct Target(SocketAddr);

fn connect_over_ws(
    mut connector: Connector,
    target: bevy_ecs::system::Res<Target>,
    mut done: bevy_ecs::system::Local<bool>,
) {
    if !std::mem::replace(&mut *done, true) {
        connector.connect_over(target.0, Transport::WebSocket);
    }
}

fn chat_on_connect(mut connected: bevy_ecs::message::MessageReader<Connected>, mut outbox: ClientOutbox) {
    for c in connected.read() {
        // Two frames' worth in one flush, and a packet large enough for a 16-bit length.
        outbox.send(c.entity, &C_Chat { chat: "from the client plugin".into() });
        outbox.send(c.entity, &C_Chat { chat: "x".repeat(300) });
    }
}

#[test]
fn the_client_plugin_connects_over_websocket_as_a_browser_would() {
    use net_plugin::testing::{Recorded, record};
    let (server, _, ws_addr) = start(ws_config());
    let client = AppThread::spawn(move || {
        let mut app = bevy_app::App::new();
        app.add_plugins(ClientPlugin::new(NetConfig::client_default()).unwrap())
            .insert_resource(Target(ws_addr))
            .add_systems(Update, (connect_over_ws, chat_on_connect));
        record::<Connected>(&mut app);
        record::<ClientReceived<S_Chat>>(&mut app);
        app
    });
    let echoed = client.wait_until(WAIT, |app| app.world().resource::<Recorded<ClientReceived<S_Chat>>>().0.len() >= 2);
    assert!(echoed, "both chat lines came back");
    let chats: Vec<String> = client.run(|app| {
        app.world().resource::<Recorded<ClientReceived<S_Chat>>>().0.iter().map(|r| r.packet.chat.clone()).collect()
    });
    assert_eq!(chats, ["from the client plugin".to_string(), "x".repeat(300)]);
    let transports = server.run(|app| {
        let mut q = app.world_mut().query::<&Connection>();
        q.iter(app.world()).map(Connection::transport).collect::<Vec<_>>()
    });
    assert_eq!(transports, [Transport::WebSocket]);
    client.exit();
    assert!(wait_recorded::<Disconnected>(&server, 1));
    let gone = recorded::<Disconnected>(&server);
    assert_eq!(gone[0].reason.kind(), DisconnectKind::ClosedByPeer, "the client said goodbye: {gone:?}");
    server.exit();
}

/// A self-signed certificate for `localhost`, written as PEM files for the settings; the
/// certificate itself, for the client to trust.
fn localhost_certificate(
    name: &str,
) -> (std::path::PathBuf, std::path::PathBuf, rustls::pki_types::CertificateDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("a certificate");
    let dir = std::env::temp_dir().join(format!("net_plugin-tls-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (cert, key, certified.cert.der().clone())
}

/// A `wss://` client that trusts only `trusted`.
async fn connect_tls(addr: SocketAddr, trusted: rustls::pki_types::CertificateDer<'static>) -> Ws {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(client));
    let url = format!("wss://localhost:{}/", addr.port());
    let (ws, response) = tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector))
        .await
        .expect("a wss upgrade");
    assert_eq!(response.status(), 101);
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wss_client_plays_beside_a_tcp_client() {
    let (cert, key, trusted) = localhost_certificate("plays");
    let mut config = ws_config();
    (config.websocket.tls_cert, config.websocket.tls_key) = (Some(cert), Some(key));
    let (server, tcp_addr, ws_addr) = start(config);
    let mut tcp = RawClient::connect(tcp_addr);
    let mut ws = connect_tls(ws_addr, trusted).await;
    assert!(wait_recorded::<Connected>(&server, 2));

    // Moves both ways.
    let moved = |x: f32| move |p: &ServerPacket| matches!(p, ServerPacket::BroadcastMove(S_BroadcastMove { pos_x, .. }) if *pos_x == x);
    ws.send(Message::Binary(encode_to_vec(&C_Move { pos_x: 3.5, pos_y: 0.0, pos_z: 1.0 }).unwrap().into()))
        .await
        .unwrap();
    recv_until(&mut ws, moved(3.5)).await;
    tokio::task::block_in_place(|| tcp_recv_until(&mut tcp, moved(3.5)));
    tcp.send(&C_Move { pos_x: 9.0, pos_y: 0.0, pos_z: 0.0 });
    recv_until(&mut ws, moved(9.0)).await;

    // Chat, short and near the packet size limit.
    let long = "x".repeat(1500);
    for text in ["over tls", long.as_str()] {
        ws.send(Message::Binary(encode_to_vec(&C_Chat { chat: text.into() }).unwrap().into())).await.unwrap();
        let said = |p: &ServerPacket| matches!(p, ServerPacket::Chat(S_Chat { chat, .. }) if chat == text);
        recv_until(&mut ws, said).await;
    }

    // A clean close over TLS.
    ws.close(None).await.unwrap();
    assert!(wait_recorded::<Disconnected>(&server, 1));
    assert_eq!(recorded::<Disconnected>(&server)[0].reason.kind(), DisconnectKind::ClosedByPeer);
    server.exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_port_refuses_plain_and_silent_clients_and_takes_the_next() {
    let (cert, key, trusted) = localhost_certificate("refused");
    let mut config = ws_config();
    (config.websocket.tls_cert, config.websocket.tls_key) = (Some(cert), Some(key));
    config.websocket.handshake_timeout = Duration::from_millis(300);
    let (server, _, ws_addr) = start(config);
    let refused = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(format!("ws://{ws_addr}/"))).await;
    assert!(matches!(refused, Ok(Err(_))), "refused, promptly: {refused:?}");
    // A connection that never finishes the TLS handshake is closed at the handshake timeout.
    let mut silent = tokio::task::block_in_place(|| RawClient::connect(ws_addr));
    assert!(tokio::task::block_in_place(|| silent.wait_closed(WAIT)), "closed without a handshake");
    assert!(recorded::<Connected>(&server).is_empty(), "neither became a connection");
    // The port still takes wss:// clients.
    let mut ws = connect_tls(ws_addr, trusted).await;
    assert!(wait_recorded::<Connected>(&server, 1));
    ws.close(None).await.unwrap();
    server.exit();
}

#[test]
fn certificate_files_that_do_not_load_are_a_start_up_error() {
    let (cert, key, _) = localhost_certificate("bad");
    let with = |cert: Option<&std::path::Path>, key: Option<&std::path::Path>| {
        let mut config = ws_config();
        (config.websocket.tls_cert, config.websocket.tls_key) = (cert.map(Into::into), key.map(Into::into));
        match ServerPlugin::bind("127.0.0.1:0", config) {
            Err(net_plugin::BindError::Config(why)) => why,
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("started"),
        }
    };
    let missing = std::path::Path::new("/nonexistent/cert.pem");
    assert!(with(Some(missing), Some(&key)).contains("tls_cert"));
    // The key file given as the certificate: no certificate in it.
    assert!(with(Some(&key), Some(&key)).contains("tls_cert"));
    assert!(with(Some(&cert), Some(&cert)).contains("tls_key"));
    assert!(with(Some(&cert), None).contains("go together"));
    assert!(
        ServerPlugin::bind("127.0.0.1:0", {
            let mut config = ws_config();
            (config.websocket.tls_cert, config.websocket.tls_key) = (Some(cert), Some(key));
            config
        })
        .is_ok()
    );
}

#[derive(bevy_ecs::prelude::Resource)]
struct WssTarget(SocketAddr, ConnectOptions);

/// The client side over `wss://`: one connection, which chats once connected.
fn wss_client(addr: SocketAddr, options: ConnectOptions) -> AppThread {
    fn connect_once(
        mut connector: Connector,
        target: bevy_ecs::prelude::Res<WssTarget>,
        mut done: bevy_ecs::prelude::Local<bool>,
    ) {
        if !*done {
            connector.connect_with(target.0, target.1.clone());
            *done = true;
        }
    }
    fn chat(mut connected: bevy_ecs::prelude::MessageReader<Connected>, mut outbox: ClientOutbox) {
        for c in connected.read() {
            outbox.send(c.entity, &C_Chat { chat: "over wss".into() });
        }
    }
    AppThread::spawn(move || {
        let mut app = bevy_app::App::new();
        app.add_plugins(ClientPlugin::new(NetConfig::client_default()).unwrap())
            .insert_resource(WssTarget(addr, options))
            .add_systems(Update, (connect_once, chat));
        record::<ConnectFailed>(&mut app);
        record::<ClientReceived<S_Chat>>(&mut app);
        app
    })
}

#[test]
fn the_client_side_speaks_wss_and_refuses_a_certificate_it_does_not_trust() {
    let (cert, key, _) = localhost_certificate("client-side");
    let mut config = ws_config();
    (config.websocket.tls_cert, config.websocket.tls_key) = (Some(cert.clone()), Some(key));
    let (_server, _, ws_addr) = start(config);

    let trusted = ClientTls::new("localhost", Some(&cert)).expect("the test's CA");
    let client = wss_client(ws_addr, ConnectOptions { transport: Transport::WebSocket, tls: Some(trusted) });
    assert!(client.wait_until(WAIT, |app| app.world().resource::<Recorded<ClientReceived<S_Chat>>>().0.len() == 1));
    let echoed = client.run(|app| app.world().resource::<Recorded<ClientReceived<S_Chat>>>().0[0].packet.chat.clone());
    assert_eq!(echoed, "over wss");

    // Another certificate for the same name: the server's is not trusted, and the failure says so.
    let (other, _, _) = localhost_certificate("client-side-other");
    let wrong = ClientTls::new("localhost", Some(&other)).expect("a CA file");
    let client = wss_client(ws_addr, ConnectOptions { transport: Transport::WebSocket, tls: Some(wrong) });
    assert!(client.wait_until(WAIT, |app| app.world().resource::<Recorded<ConnectFailed>>().0.len() == 1));
    let error = client.run(|app| app.world().resource::<Recorded<ConnectFailed>>().0[0].error.to_string());
    assert!(error.contains("TLS handshake") && error.contains("certificate"), "{error}");

    // A CA file without a certificate is refused before any connection.
    let empty = std::env::temp_dir().join(format!("net_plugin-tls-{}-empty.pem", std::process::id()));
    std::fs::write(&empty, "").unwrap();
    assert!(ClientTls::new("localhost", Some(&empty)).unwrap_err().contains("no certificate"));
}
