//! What the server's end-to-end tests share: the server on a thread, and a client written
//! straight from `PROTOCOL.md`'s byte layout, not through `shared`, so that a bug shared by our
//! encoder and decoder cannot hide.

#![allow(dead_code)]

pub mod process;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use net_plugin::ServerPlugin;
use net_plugin::testing::AppThread;
use server::ServerConfig;

/// Long enough for anything on loopback, even on a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long silence must last to count as "nothing more comes".
pub const QUIET: Duration = Duration::from_millis(400);

/// A test configuration: loopback, port 0, no statistics lines.
pub fn test_config() -> ServerConfig {
    ServerConfig { bind: "127.0.0.1:0".into(), stats_interval: Duration::ZERO, ..ServerConfig::default() }
}

/// The server app, as the binary builds it, on a thread.
pub fn start(config: ServerConfig) -> (AppThread, SocketAddr) {
    let net = ServerPlugin::bind(&config.bind, config.net.clone()).expect("bind loopback");
    let addr = net.local_addr();
    (AppThread::spawn(move || server::app(&config, net, None)), addr)
}

/// One `S_PlayerList` entry: (isSelf, playerId, posX, posY, posZ).
pub type Listed = (bool, i32, f32, f32, f32);

/// How many times `other` was announced to a client: in its list and in the packets after it.
pub fn times_told(list: &[Listed], after: &[Msg], other: i32) -> usize {
    list.iter().filter(|p| p.1 == other).count()
        + after.iter().filter(|m| matches!(m, Msg::Enter { id, .. } if *id == other)).count()
}

/// A server packet, decoded by hand.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    /// id 1
    Enter { id: i32, x: f32, y: f32, z: f32 },
    /// id 3
    Leave { id: i32 },
    /// id 4: (isSelf, playerId, x, y, z)
    List(Vec<Listed>),
    /// id 6
    Move { id: i32, x: f32, y: f32, z: f32 },
    /// id 8
    Chat { id: i32, text: String },
    /// id 10: clientTime
    Pong(i64),
    /// Anything else: id and body.
    Other(u16, Vec<u8>),
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn f32_at(b: &[u8], at: usize) -> f32 {
    f32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Decodes one whole packet by the table in PROTOCOL.md.
pub fn decode(packet: &[u8]) -> Msg {
    let size = u16::from_le_bytes([packet[0], packet[1]]) as usize;
    assert_eq!(size, packet.len(), "size counts the whole packet");
    let id = u16::from_le_bytes([packet[2], packet[3]]);
    let b = &packet[4..];
    match id {
        1 => {
            assert_eq!(b.len(), 16);
            Msg::Enter { id: i32_at(b, 0), x: f32_at(b, 4), y: f32_at(b, 8), z: f32_at(b, 12) }
        }
        3 => {
            assert_eq!(b.len(), 4);
            Msg::Leave { id: i32_at(b, 0) }
        }
        4 => {
            let count = u16::from_le_bytes([b[0], b[1]]) as usize;
            assert_eq!(b.len(), 2 + count * 17);
            Msg::List(
                (0..count)
                    .map(|i| {
                        let e = 2 + i * 17;
                        (b[e] != 0, i32_at(b, e + 1), f32_at(b, e + 5), f32_at(b, e + 9), f32_at(b, e + 13))
                    })
                    .collect(),
            )
        }
        6 => {
            assert_eq!(b.len(), 16);
            Msg::Move { id: i32_at(b, 0), x: f32_at(b, 4), y: f32_at(b, 8), z: f32_at(b, 12) }
        }
        8 => {
            let len = u16::from_le_bytes([b[4], b[5]]) as usize;
            assert_eq!(b.len(), 6 + len);
            let units: Vec<u16> = b[6..].chunks(2).map(|p| u16::from_le_bytes([p[0], p[1]])).collect();
            Msg::Chat { id: i32_at(b, 0), text: String::from_utf16(&units).expect("valid UTF-16") }
        }
        10 => {
            assert_eq!(b.len(), 8);
            Msg::Pong(i64::from_le_bytes(b.try_into().unwrap()))
        }
        other => Msg::Other(other, b.to_vec()),
    }
}

/// `C_Move` by hand: size 16, id 5, three floats.
pub fn move_bytes(x: f32, y: f32, z: f32) -> Vec<u8> {
    let mut b = vec![16, 0, 5, 0];
    for v in [x, y, z] {
        b.extend(v.to_le_bytes());
    }
    b
}

/// `C_LeaveGame` by hand.
pub const LEAVE_BYTES: [u8; 4] = [4, 0, 2, 0];

/// `C_Chat` by hand: size, id 7, UTF-16 byte length, UTF-16LE units.
pub fn chat_bytes(text: &str) -> Vec<u8> {
    let units: Vec<u16> = text.encode_utf16().collect();
    let size = 4 + 2 + units.len() * 2;
    let mut b = Vec::with_capacity(size);
    b.extend((size as u16).to_le_bytes());
    b.extend(7u16.to_le_bytes());
    b.extend(((units.len() * 2) as u16).to_le_bytes());
    units.iter().for_each(|u| b.extend(u.to_le_bytes()));
    b
}

/// `C_Ping` by hand: size 12, id 9, clientTime as an i64.
pub fn ping_bytes(client_time: i64) -> Vec<u8> {
    let mut b = vec![12, 0, 9, 0];
    b.extend(client_time.to_le_bytes());
    b
}

/// What one read brought.
#[derive(Debug, PartialEq, Eq)]
enum ReadOutcome {
    Data,
    Closed,
    TimedOut,
}

/// The course's client, as bytes on a socket.
pub struct CourseClient {
    pub stream: TcpStream,
    /// Over the WebSocket transport: the same bytes, in binary messages on this socket.
    ws: Option<tungstenite::WebSocket<TcpStream>>,
    buf: Vec<u8>,
    /// This client's player id, once its own enter was seen.
    pub id: Option<i32>,
}

impl CourseClient {
    pub fn connect(addr: SocketAddr) -> Self {
        Self::from_stream(TcpStream::connect(addr).expect("connect"))
    }

    /// A client on a socket connected (and set up) by the test.
    pub fn from_stream(stream: TcpStream) -> Self {
        stream.set_nodelay(true).unwrap();
        Self { stream, ws: None, buf: Vec::new(), id: None }
    }

    /// A client of the WebSocket transport at `addr`, as a browser's page would be.
    pub fn connect_ws(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        let (ws, _) = tungstenite::client(format!("ws://{addr}/"), stream.try_clone().unwrap()).expect("upgrade");
        Self { stream, ws: Some(ws), buf: Vec::new(), id: None }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        match &mut self.ws {
            Some(ws) => ws.send(tungstenite::Message::Binary(bytes.to_vec().into())).expect("send"),
            None => self.stream.write_all(bytes).expect("send"),
        }
    }

    pub fn send_move(&mut self, x: f32, y: f32, z: f32) {
        self.send(&move_bytes(x, y, z));
    }

    pub fn send_leave(&mut self) {
        self.send(&LEAVE_BYTES);
    }

    pub fn send_chat(&mut self, text: &str) {
        self.send(&chat_bytes(text));
    }

    /// Reads once, waiting until `deadline` at the most.
    fn read_until(&mut self, deadline: Instant) -> ReadOutcome {
        let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
            return ReadOutcome::TimedOut;
        };
        self.stream.set_read_timeout(Some(left)).unwrap();
        if let Some(ws) = &mut self.ws {
            return match ws.read() {
                Ok(tungstenite::Message::Binary(bytes)) => {
                    self.buf.extend_from_slice(&bytes);
                    ReadOutcome::Data
                }
                Ok(tungstenite::Message::Close(_)) => ReadOutcome::Closed,
                Ok(_) => ReadOutcome::Data,
                Err(tungstenite::Error::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    ReadOutcome::TimedOut
                }
                Err(_) => ReadOutcome::Closed,
            };
        }
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) => ReadOutcome::Closed,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                ReadOutcome::Data
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => ReadOutcome::TimedOut,
            Err(e) if e.kind() == ErrorKind::Interrupted => ReadOutcome::Data,
            Err(_) => ReadOutcome::Closed,
        }
    }

    /// The next packet within `timeout`, or `None` (silence or closed).
    pub fn recv(&mut self, timeout: Duration) -> Option<Msg> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.buf.len() >= 2 {
                let size = u16::from_le_bytes([self.buf[0], self.buf[1]]) as usize;
                assert!(size >= 4, "the server sent a packet size of {size}");
                if self.buf.len() >= size {
                    let packet: Vec<u8> = self.buf.drain(..size).collect();
                    return Some(decode(&packet));
                }
            }
            if self.read_until(deadline) != ReadOutcome::Data {
                return None;
            }
        }
    }

    /// Everything that arrives until `QUIET` passes without a packet. Only for what must *not*
    /// come yet (news held for the next answer, say): to read what has come, [`sync`] ends at
    /// a packet instead of at a silence an idle or a slow server would both keep.
    ///
    /// [`sync`]: Self::sync
    pub fn drain(&mut self) -> Vec<Msg> {
        std::iter::from_fn(|| self.recv(QUIET)).collect()
    }

    /// A barrier: sends a `C_Ping` and returns everything that arrives before its `S_Pong`.
    /// The server answers a ping in the frame that reads it, after the frame's game systems,
    /// and a connection's packets leave in order (held news with them), so this is everything
    /// the server sent this client before it read the ping. What another client's packet
    /// caused is in it once that client saw it handled (its echo, its own pong). A move is
    /// applied at the next tick, which may come a frame after its sender's ping: so after a
    /// move, wait for its echo first.
    pub fn sync(&mut self) -> Vec<Msg> {
        static NEXT: AtomicI64 = AtomicI64::new(1);
        let token = NEXT.fetch_add(1, Ordering::Relaxed) + 0x5EED_0000;
        self.send(&ping_bytes(token));
        self.recv_until(|m| *m == Msg::Pong(token))
    }

    /// Reads the enter sequence a newcomer gets: one or more `S_PlayerList`, then its own
    /// `S_BroadcastEnterGame`. Returns the listed players; sets `id`.
    pub fn enter(&mut self) -> Vec<Listed> {
        let mut listed = Vec::new();
        loop {
            match self.recv(WAIT).expect("the enter sequence") {
                Msg::List(players) => listed.extend(players),
                Msg::Enter { id, x, y, z } => {
                    let me: Vec<_> = listed.iter().filter(|p| p.0).collect();
                    assert_eq!(me.len(), 1, "exactly one isSelf in the list");
                    assert_eq!(me[0].1, id, "the list's isSelf is the player who entered");
                    let spawn = (me[0].2, me[0].3, me[0].4);
                    assert_eq!((x, y, z), spawn, "players enter where their list says they are");
                    self.id = Some(id);
                    return listed;
                }
                other => panic!("unexpected {other:?} before the enter"),
            }
        }
    }

    /// Reads until a packet matching `want` arrives (or panics after `WAIT`), returning the ones
    /// skipped on the way.
    pub fn recv_until(&mut self, want: impl Fn(&Msg) -> bool) -> Vec<Msg> {
        let mut skipped = Vec::new();
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Some(m) if want(&m) => return skipped,
                Some(m) => skipped.push(m),
                None => panic!("never received the expected packet; got {skipped:?}"),
            }
        }
    }

    /// Whether the server closes the connection within `WAIT` (whatever arrives meanwhile).
    pub fn closed(&mut self) -> bool {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.read_until(deadline) {
                ReadOutcome::Data => {}
                ReadOutcome::Closed => return true,
                ReadOutcome::TimedOut => return false,
            }
        }
    }

    pub fn my_id(&self) -> i32 {
        self.id.expect("entered")
    }
}

/// Connects and reads the enter sequence.
pub fn join(addr: SocketAddr) -> (CourseClient, Vec<Listed>) {
    let mut c = CourseClient::connect(addr);
    let listed = c.enter();
    (c, listed)
}

/// Connects two clients while the app is paused between frames (`app` is the paused app), each
/// sending a `C_Ping` with clientTime 1, and waits until the server's I/O side read both pings:
/// both sessions are open and queued, so both enter in the app's next frame.
pub fn connect_both(app: &mut bevy_app::App, addr: SocketAddr) -> (CourseClient, CourseClient) {
    let before = net_plugin::testing::io_stats(app.world()).bytes_in;
    let mut pair = (CourseClient::connect(addr), CourseClient::connect(addr));
    pair.0.send(&ping_bytes(1));
    pair.1.send(&ping_bytes(1));
    let deadline = Instant::now() + WAIT;
    while net_plugin::testing::io_stats(app.world()).bytes_in < before + 2 * 12 {
        assert!(Instant::now() < deadline, "the server never read the pings");
        std::thread::sleep(Duration::from_millis(1));
    }
    pair
}

/// The server app with the admin endpoint on (on a loopback port of its own unless the config
/// says where), on a thread; `extra` adds to the app (a recorder, say). Returns the app, the
/// game's address and the admin endpoint's.
pub fn start_admin(
    mut config: ServerConfig,
    extra: impl FnOnce(&mut bevy_app::App) + Send + 'static,
) -> (AppThread, SocketAddr, SocketAddr) {
    config.admin.bind.get_or_insert_with(|| "127.0.0.1:0".into());
    let net = ServerPlugin::bind(&config.bind, config.net.clone()).expect("bind loopback");
    let addr = net.local_addr();
    let admin = server::AdminPlugin::bind(&config.admin, config.net.max_connections)
        .expect("the admin endpoint binds")
        .expect("the admin endpoint is on");
    let admin_addr = admin.local_addr();
    let app = AppThread::spawn(move || {
        let mut app = server::app(&config, net, None);
        app.add_plugins(admin);
        extra(&mut app);
        app
    });
    (app, addr, admin_addr)
}

/// An HTTP response, as a client reads it.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("JSON ({e}): {}", self.body))
    }
}

/// Sends one HTTP/1.1 request (`Connection: close`, plus `headers`) and reads the response to
/// its end. Written by hand, so tests can also send what no HTTP library would.
pub fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    parse_response(&http_raw(addr, request.as_bytes()))
}

/// Sends `GET path` (with `headers`) until `done` holds for the response or `WAIT` has passed;
/// returns the last response. For what changes a frame or so later.
pub fn http_get_until(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    done: impl Fn(&HttpResponse) -> bool,
) -> HttpResponse {
    let deadline = Instant::now() + WAIT;
    loop {
        let response = http(addr, "GET", path, headers);
        if done(&response) || Instant::now() > deadline {
            return response;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A TCP connection to `addr` (a loopback address) from the loopback address `from` (any of
/// 127.0.0.0/8 reaches 127.0.0.1 on Linux): a client at an address of its own.
pub fn connect_from(from: std::net::IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(from, 0).into())?;
    socket.connect(&addr.into())?;
    Ok(socket.into())
}

/// [`http`] from the loopback address `from`.
pub fn http_from(
    from: std::net::IpAddr,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut stream = connect_from(from, addr).expect("connect to the admin endpoint");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let _ = stream.write_all(request.as_bytes());
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    parse_response(&String::from_utf8_lossy(&answer))
}

/// Sends raw bytes and returns everything the server answers until it closes.
pub fn http_raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the admin endpoint");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    // A server that refuses a request early may close before it read it all.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Splits a whole response into status, headers and body (de-chunked).
pub fn parse_response(text: &str) -> HttpResponse {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("an HTTP response: {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("a status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(body) } else { body.to_string() };
    HttpResponse { status, headers, body }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}
