//! The WebSocket transport (RFC 6455), server side: the HTTP upgrade, then a sans-IO codec that
//! strips the frame headers of what a client sends and adds them to what it is sent.
//!
//! # Why its own codec, over the session core
//!
//! A WebSocket connection is a TCP socket with a header before each message. Keeping the socket
//! a plain `TcpStream` lets every rule of the session core apply unchanged: the session task reads
//! it (and passes the bytes through [`WsInbound`] before the course's framing), the writer
//! writes it (each flushed frame behind one [`data_header`], so everything a client gets in a
//! frame is **one** binary message, written with one vectored write as on TCP), and the stall,
//! backlog and budget cuts see the same queue. A crate's `WebSocketStream` would need its own
//! writer and read buffers (tokio-tungstenite's defaults: a 128 KiB read buffer per connection
//! and messages of up to 64 MiB).
//!
//! Received messages are never reassembled: a data frame's payload is unmasked in the read
//! buffer and fed to the course's framing as it arrives, so the only buffers are that framing's
//! (bounded by `max_packet_size`) and the 125 bytes of a control frame. A message must hold
//! whole course frames: one that ends inside a frame closes the connection (1007), as do a
//! text message (1003), a frame or message above the limits (1009) and any frame the RFC
//! forbids from a client (1002: unmasked, reserved bits, unknown opcodes, a bad fragment).

use std::borrow::Cow;
use std::io;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use sha1::{Digest, Sha1};
use shared::PacketSet;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::core::InboundRules;
use crate::{DisconnectReason, WebSocketConfig};

/// The largest upgrade request read: a browser's is well under 1 KiB, cookies aside.
const MAX_REQUEST: usize = 4096;

/// The GUID the accept key is derived with (RFC 6455, 1.3).
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The opcodes (RFC 6455, 5.2).
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// The largest control frame payload.
const MAX_CONTROL: usize = 125;

/// A file the WebSocket port serves to a plain `GET` (no upgrade): the play page and its module,
/// so a browser needs nothing but the game server's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebFile {
    /// The request path, `/` or `/packets.js`.
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its contents.
    pub body: &'static str,
}

/// Which end of the connection this is: a server's frames are plain, a client's are masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The server: reads masked frames, writes plain ones.
    Server,
    /// A client (the bots): writes masked frames, reads plain ones.
    Client,
}

/// A mask key for a client's frame. RFC 6455 asks for keys a page's script cannot predict, a
/// defence of proxies against scripts in browsers; this client is a native program (the bots),
/// so a fast generator does.
fn mask_key() -> [u8; 4] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let mut x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    (x as u32).to_le_bytes()
}

/// Why an upgrade was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    /// The request did not come whole within the handshake timeout.
    #[error("no complete upgrade request within {0:?}")]
    Timeout(Duration),
    /// The socket failed or closed.
    #[error("socket: {0}")]
    Io(#[from] io::Error),
    /// The request is not a WebSocket upgrade we accept; answered with this status.
    #[error("refused with {status}: {why}")]
    Refused {
        /// The HTTP status sent.
        status: &'static str,
        /// Why, for the log and the response's body.
        why: &'static str,
    },
    /// A plain `GET` was answered with one of the served files; the connection ends there.
    #[error("served {0}")]
    Served(&'static str),
    /// The server did not upgrade (a client's handshake).
    #[error("the server did not upgrade: {0}")]
    NotUpgraded(String),
}

/// Reads the upgrade request from `stream` (within the handshake timeout) and answers it: `101`
/// when it is a WebSocket upgrade we accept, an HTTP error otherwise (then the connection is
/// to be dropped). `stream` is the socket, or TLS over it on a `wss://` port.
pub(crate) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    config: &WebSocketConfig,
    files: &[WebFile],
) -> Result<(), HandshakeError> {
    let request = tokio::time::timeout(config.handshake_timeout, read_request(stream))
        .await
        .map_err(|_| HandshakeError::Timeout(config.handshake_timeout))??;
    if let Some(file) = requested_file(&request, files) {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
            file.content_type,
            file.body.len()
        );
        let write = async {
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(file.body.as_bytes()).await?;
            stream.shutdown().await
        };
        tokio::time::timeout(config.handshake_timeout, write)
            .await
            .map_err(|_| HandshakeError::Timeout(config.handshake_timeout))??;
        return Err(HandshakeError::Served(file.path));
    }
    match answer(&request, config) {
        Ok(key) => {
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                accept_key(&key)
            );
            stream.write_all(response.as_bytes()).await?;
            // Over TLS, the records may still be in the TLS layer's buffer.
            stream.flush().await?;
            Ok(())
        }
        Err(HandshakeError::Refused { status, why }) => {
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{why}",
                why.len()
            );
            // The refusal is a courtesy: a peer that does not take it is dropped all the same.
            let refuse = async {
                stream.write_all(response.as_bytes()).await?;
                stream.shutdown().await
            };
            let _ = tokio::time::timeout(config.handshake_timeout, refuse).await;
            Err(HandshakeError::Refused { status, why })
        }
        Err(other) => Err(other),
    }
}

/// Reads up to the end of the request's headers, at most [`MAX_REQUEST`] bytes. A client must
/// wait for the `101` before it sends a frame (RFC 6455, 4.1), so nothing follows the headers.
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, HandshakeError> {
    let mut request = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        request.extend_from_slice(&chunk[..n]);
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            if end + 4 != request.len() {
                return Err(HandshakeError::Refused {
                    status: "400 Bad Request",
                    why: "data after the upgrade request, before the upgrade",
                });
            }
            return Ok(request);
        }
        if request.len() > MAX_REQUEST {
            return Err(HandshakeError::Refused {
                status: "431 Request Header Fields Too Large",
                why: "upgrade request too large",
            });
        }
    }
}

/// The served file a plain `GET` (one without `Upgrade`) asks for, if any.
fn requested_file(request: &[u8], files: &[WebFile]) -> Option<WebFile> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Request::new(&mut headers);
    parsed.parse(request).ok()?;
    let upgrade = parsed.headers.iter().any(|h| h.name.eq_ignore_ascii_case("Upgrade"));
    if parsed.method != Some("GET") || upgrade {
        return None;
    }
    let path = parsed.path?.split('?').next()?;
    files.iter().find(|f| f.path == path).copied()
}

/// Checks an upgrade request; returns its `Sec-WebSocket-Key`.
fn answer(request: &[u8], config: &WebSocketConfig) -> Result<String, HandshakeError> {
    let bad = |why| HandshakeError::Refused { status: "400 Bad Request", why };
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(request) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(bad("not an HTTP/1.1 request")),
    }
    if parsed.method != Some("GET") {
        return Err(HandshakeError::Refused { status: "405 Method Not Allowed", why: "only GET upgrades" });
    }
    let header = |name: &str| {
        parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    let has_token = |name: &str, token: &str| {
        header(name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has_token("Upgrade", "websocket") || !has_token("Connection", "upgrade") {
        return Err(HandshakeError::Refused {
            status: "426 Upgrade Required",
            why: "this port speaks WebSocket: connect with ws:// (binary messages of course frames)",
        });
    }
    if header("Sec-WebSocket-Version") != Some("13") {
        return Err(bad("Sec-WebSocket-Version must be 13"));
    }
    let key = header("Sec-WebSocket-Key")
        .filter(|k| base64::engine::general_purpose::STANDARD.decode(k).is_ok_and(|raw| raw.len() == 16));
    let Some(key) = key else { return Err(bad("a Sec-WebSocket-Key of 16 bytes in base64 is required")) };
    if let Some(origin) = header("Origin")
        && !config.allowed_origins.is_empty()
        && !config.allowed_origins.iter().any(|allowed| allowed == origin)
    {
        return Err(HandshakeError::Refused { status: "403 Forbidden", why: "origin not allowed" });
    }
    Ok(key.to_string())
}

/// Upgrades a connected socket as a client (the bots): sends the request, reads the `101` and
/// checks its accept key.
pub(crate) async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    host: std::net::SocketAddr,
) -> Result<(), HandshakeError> {
    let key: Vec<u8> = (0..4).flat_map(|_| mask_key()).collect();
    let key = base64::engine::general_purpose::STANDARD.encode(key);
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    // A byte at a time up to the end of the headers, so that no frame sent right after them is
    // taken from the session: a handshake's few hundred reads, once per connection.
    let mut response = Vec::with_capacity(256);
    while !response.ends_with(b"\r\n\r\n") {
        if response.len() > MAX_REQUEST {
            return Err(HandshakeError::NotUpgraded("response headers too large".into()));
        }
        response.push(stream.read_u8().await?);
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Response::new(&mut headers);
    if !matches!(parsed.parse(&response), Ok(httparse::Status::Complete(_))) {
        return Err(HandshakeError::NotUpgraded("not an HTTP response".into()));
    }
    if parsed.code != Some(101) {
        return Err(HandshakeError::NotUpgraded(format!("status {:?} {:?}", parsed.code, parsed.reason)));
    }
    let accept = parsed.headers.iter().find(|h| h.name.eq_ignore_ascii_case("Sec-WebSocket-Accept")).map(|h| h.value);
    if accept != Some(accept_key(&key).as_bytes()) {
        return Err(HandshakeError::NotUpgraded("wrong Sec-WebSocket-Accept".into()));
    }
    Ok(())
}

/// `Sec-WebSocket-Accept` for a client's key.
fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(ACCEPT_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// The header of a frame (FIN set) of `len` payload bytes, with `mask` (a client's) if any.
fn header(opcode: u8, len: usize, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut h = Vec::with_capacity(14);
    h.push(0x80 | opcode);
    let masked = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        h.push(masked | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        h.push(masked | 126);
        h.extend_from_slice(&len.to_be_bytes());
    } else {
        h.push(masked | 127);
        h.extend_from_slice(&(len as u64).to_be_bytes());
    }
    if let Some(mask) = mask {
        h.extend_from_slice(&mask);
    }
    h
}

fn apply_mask(bytes: &mut [u8], mask: [u8; 4]) {
    for (i, b) in bytes.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
}

/// A flushed frame's bytes as one binary message: its header, and its payload. A server's
/// payload goes as it is (no copy); a client's is masked, in a copy.
pub(crate) fn message(payload: Bytes, role: Role) -> (Bytes, Bytes) {
    match role {
        Role::Server => (Bytes::from(header(BINARY, payload.len(), None)), payload),
        Role::Client => {
            let mask = mask_key();
            let mut masked = payload.to_vec();
            apply_mask(&mut masked, mask);
            (Bytes::from(header(BINARY, masked.len(), Some(mask))), Bytes::from(masked))
        }
    }
}

/// A whole control frame (ping, pong, close) with `payload` (at most 125 bytes).
fn control(opcode: u8, payload: &[u8], role: Role) -> Bytes {
    let payload = &payload[..payload.len().min(MAX_CONTROL)];
    let mask = (role == Role::Client).then(mask_key);
    let mut frame = header(opcode, payload.len(), mask);
    let start = frame.len();
    frame.extend_from_slice(payload);
    if let Some(mask) = mask {
        apply_mask(&mut frame[start..], mask);
    }
    Bytes::from(frame)
}

/// The close frame telling the peer why its session ends.
pub(crate) fn close_frame(reason: &DisconnectReason, role: Role) -> Bytes {
    let (code, text) = close_code(reason);
    let mut payload = code.to_be_bytes().to_vec();
    // At most 123 bytes of UTF-8, cut at a character's boundary.
    let mut end = text.len().min(MAX_CONTROL - 2);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(&text.as_bytes()[..end]);
    control(CLOSE, &payload, role)
}

/// The close code (RFC 6455, 7.4.1) and reason for why a session ends.
fn close_code(reason: &DisconnectReason) -> (u16, Cow<'static, str>) {
    match reason {
        DisconnectReason::WebSocketProtocol { code, reason } => (*code, Cow::Borrowed(reason)),
        DisconnectReason::ClosedByPeer | DisconnectReason::ClosedByApp(_) | DisconnectReason::KickedByOperator => {
            (1000, Cow::Owned(reason.to_string()))
        }
        DisconnectReason::Shutdown => (1001, Cow::Borrowed("the server is shutting down")),
        DisconnectReason::MalformedFrame(_)
        | DisconnectReason::MalformedPacket(_)
        | DisconnectReason::UnexpectedPacket { .. } => (1007, Cow::Owned(reason.to_string())),
        DisconnectReason::InternalError(_) => (1011, Cow::Borrowed("internal error")),
        _ => (1008, Cow::Owned(reason.to_string())),
    }
}

fn violation(code: u16, reason: &'static str) -> DisconnectReason {
    DisconnectReason::WebSocketProtocol { code, reason }
}

/// The frame being read.
#[derive(Debug, Clone, Copy)]
struct Frame {
    opcode: u8,
    fin: bool,
    remaining: u64,
    mask: [u8; 4],
    /// Payload bytes unmasked so far (the mask's phase).
    done: usize,
}

/// The inbound half of a WebSocket session, and its keepalive: frames in, course bytes to the
/// session's rules, control replies out. No I/O: the session task reads and writes.
#[derive(Debug)]
pub(crate) struct WsInbound {
    role: Role,
    max_frame: u64,
    max_message: u64,
    ping_interval: Option<Duration>,
    ping_timeout: Duration,
    /// The header being read (at most 2 + 8 + 4 bytes).
    header: [u8; 14],
    header_len: usize,
    frame: Option<Frame>,
    /// Inside a fragmented data message (a frame without FIN was read).
    in_message: bool,
    /// Bytes of the current message so far.
    message_len: u64,
    /// A control frame's payload.
    control: [u8; MAX_CONTROL],
    control_len: usize,
    /// When the next keepalive ping goes out.
    next_ping: Option<Instant>,
    /// When the unanswered ping went out.
    awaiting_pong: Option<Instant>,
    /// When a client's ping was last answered.
    last_pong_sent: Option<Instant>,
}

impl WsInbound {
    /// The codec for a session upgraded at `now`.
    pub fn new(config: &WebSocketConfig, role: Role, now: Instant) -> Self {
        Self {
            role,
            max_frame: config.max_frame as u64,
            max_message: config.max_message as u64,
            ping_interval: config.ping_interval,
            ping_timeout: config.ping_timeout,
            header: [0; 14],
            header_len: 0,
            frame: None,
            in_message: false,
            message_len: 0,
            control: [0; MAX_CONTROL],
            control_len: 0,
            next_ping: config.ping_interval.map(|every| now + every),
            awaiting_pong: None,
            last_pong_sent: None,
        }
    }

    /// Takes `bytes` read at `now` (unmasked in place): course bytes go to `rules`, which put
    /// whole packets in `packets`; frames to send back (pongs) go to `replies`. The first rule
    /// broken, of either layer, is returned; the packets before it are the peer's. A close
    /// frame from the peer ends the session as [`DisconnectReason::ClosedByPeer`].
    pub fn receive<In: PacketSet>(
        &mut self,
        mut bytes: &mut [u8],
        now: Instant,
        rules: &mut InboundRules<In>,
        packets: &mut Vec<In>,
        replies: &mut Vec<Bytes>,
    ) -> Result<(), DisconnectReason> {
        loop {
            let Some(mut frame) = self.frame else {
                if bytes.is_empty() {
                    return Ok(());
                }
                let taken = self.read_header(bytes)?;
                bytes = &mut bytes[taken..];
                if let Some(frame) = self.frame
                    && frame.remaining == 0
                {
                    self.end_frame(frame, now, rules, replies)?;
                }
                continue;
            };
            if bytes.is_empty() {
                return Ok(());
            }
            let n = (frame.remaining.min(bytes.len() as u64)) as usize;
            let (payload, rest) = std::mem::take(&mut bytes).split_at_mut(n);
            bytes = rest;
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= frame.mask[(frame.done + i) % 4];
            }
            frame.done += n;
            frame.remaining -= n as u64;
            self.frame = Some(frame);
            if frame.opcode >= CLOSE {
                self.control[self.control_len..self.control_len + n].copy_from_slice(payload);
                self.control_len += n;
            } else {
                rules.receive(payload, now, packets)?;
            }
            if frame.remaining == 0 {
                self.end_frame(frame, now, rules, replies)?;
            }
        }
    }

    /// Reads header bytes from `bytes`; returns how many it took. Once the header is whole, the
    /// frame it starts is checked and becomes the current one.
    fn read_header(&mut self, bytes: &[u8]) -> Result<usize, DisconnectReason> {
        let mut taken = 0;
        while taken < bytes.len() {
            self.header[self.header_len] = bytes[taken];
            self.header_len += 1;
            taken += 1;
            if self.header_len < 2 {
                continue;
            }
            let (b0, b1) = (self.header[0], self.header[1]);
            let extra = match b1 & 0x7F {
                126 => 2,
                127 => 8,
                _ => 0,
            };
            let needed = 2 + extra + if b1 & 0x80 != 0 { 4 } else { 0 };
            if self.header_len == 2 {
                if b0 & 0x70 != 0 {
                    return Err(violation(1002, "reserved bits set: no extension was agreed"));
                }
                if b1 & 0x80 == 0 && self.role == Role::Server {
                    return Err(violation(1002, "a client's frames must be masked"));
                }
                if b1 & 0x80 != 0 && self.role == Role::Client {
                    return Err(violation(1002, "a server's frames must not be masked"));
                }
            }
            if self.header_len < needed {
                continue;
            }
            let len = match extra {
                0 => u64::from(b1 & 0x7F),
                2 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
                _ => u64::from_be_bytes(self.header[2..10].try_into().unwrap_or_default()),
            };
            // A server's frames are not masked: a mask of zeros changes nothing.
            let mask = self.header[2 + extra..needed].try_into().unwrap_or_default();
            self.header_len = 0;
            let frame = Frame { opcode: b0 & 0x0F, fin: b0 & 0x80 != 0, remaining: len, mask, done: 0 };
            self.start_frame(frame)?;
            self.frame = Some(frame);
            return Ok(taken);
        }
        Ok(taken)
    }

    /// Checks a frame against the RFC and the limits as its header completes.
    fn start_frame(&mut self, frame: Frame) -> Result<(), DisconnectReason> {
        match frame.opcode {
            CLOSE | PING | PONG => {
                if !frame.fin || frame.remaining > MAX_CONTROL as u64 {
                    return Err(violation(1002, "a control frame must be whole and at most 125 bytes"));
                }
                self.control_len = 0;
                return Ok(());
            }
            TEXT => return Err(violation(1003, "text messages are not accepted: send binary course frames")),
            BINARY if self.in_message => return Err(violation(1002, "a new message inside a fragmented one")),
            CONTINUATION if !self.in_message => return Err(violation(1002, "a continuation without a message")),
            BINARY | CONTINUATION => {}
            _ => return Err(violation(1002, "unknown opcode")),
        }
        if frame.remaining > self.max_frame {
            return Err(violation(1009, "frame too large"));
        }
        self.message_len += frame.remaining;
        if self.message_len > self.max_message {
            return Err(violation(1009, "message too large"));
        }
        self.in_message = !frame.fin;
        Ok(())
    }

    /// A frame's payload is all read.
    fn end_frame<In: PacketSet>(
        &mut self,
        frame: Frame,
        now: Instant,
        rules: &InboundRules<In>,
        replies: &mut Vec<Bytes>,
    ) -> Result<(), DisconnectReason> {
        self.frame = None;
        match frame.opcode {
            CLOSE => return Err(DisconnectReason::ClosedByPeer),
            PING => {
                let due = match (self.last_pong_sent, self.ping_interval) {
                    (Some(last), Some(every)) => now >= last + every,
                    _ => true,
                };
                if due {
                    self.last_pong_sent = Some(now);
                    replies.push(control(PONG, &self.control[..self.control_len], self.role));
                }
            }
            PONG => self.awaiting_pong = None,
            _ if frame.fin => {
                self.message_len = 0;
                if rules.buffered() > 0 {
                    return Err(violation(1007, "a message ended inside a course frame"));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// When the keepalive next needs the session task: a ping to send, or a pong overdue.
    pub fn deadline(&self) -> Option<Instant> {
        let overdue = self.awaiting_pong.map(|since| since + self.ping_timeout);
        match (self.next_ping, overdue) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The keepalive at `now`: a ping to send goes to `replies`; a ping unanswered for the ping
    /// timeout ends the session.
    pub fn check_timers(&mut self, now: Instant, replies: &mut Vec<Bytes>) -> Result<(), DisconnectReason> {
        if let Some(since) = self.awaiting_pong
            && now >= since + self.ping_timeout
        {
            return Err(DisconnectReason::IdleTimeout(self.ping_timeout));
        }
        if let (Some(at), Some(every)) = (self.next_ping, self.ping_interval)
            && now >= at
        {
            replies.push(control(PING, b"", self.role));
            self.awaiting_pong.get_or_insert(now);
            self.next_ping = Some(now + every);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use shared::{C_Chat, ClientPacket, S_Chat, ServerPacket};

    use super::*;
    use crate::NetConfig;

    /// A client's masked frame.
    fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut f = vec![first];
        if payload.len() < 126 {
            f.push(0x80 | payload.len() as u8);
        } else if let Ok(len) = u16::try_from(payload.len()) {
            f.push(0x80 | 126);
            f.extend_from_slice(&len.to_be_bytes());
        } else {
            f.push(0x80 | 127);
            f.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    }

    fn chat(text: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        shared::encode(&C_Chat { chat: text.into() }, &mut bytes).unwrap();
        bytes
    }

    struct Peer {
        ws: WsInbound,
        rules: InboundRules<ClientPacket>,
        now: Instant,
    }

    impl Peer {
        fn new() -> Self {
            let now = Instant::now();
            Self {
                ws: WsInbound::new(&WebSocketConfig::default(), Role::Server, now),
                rules: InboundRules::new(&NetConfig::default(), now),
                now,
            }
        }

        fn feed(
            &mut self,
            bytes: &[u8],
            split: usize,
        ) -> (Vec<ClientPacket>, Vec<Bytes>, Result<(), DisconnectReason>) {
            let (mut packets, mut replies) = (Vec::new(), Vec::new());
            let mut bytes = bytes.to_vec();
            for piece in bytes.chunks_mut(split.max(1)) {
                if let Err(e) = self.ws.receive(piece, self.now, &mut self.rules, &mut packets, &mut replies) {
                    return (packets, replies, Err(e));
                }
            }
            (packets, replies, Ok(()))
        }
    }

    #[test]
    fn the_accept_key_is_the_rfcs_example() {
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn whole_frames_in_one_or_many_messages_come_out_whatever_the_split() {
        let mut two = chat("a");
        two.extend(chat("b"));
        let mut stream = masked(0x80 | BINARY, &two);
        // A fragmented message: its fragments' payloads join, a ping between them.
        let third = chat(&"c".repeat(300));
        stream.extend(masked(BINARY, &third[..100]));
        stream.extend(masked(0x80 | PING, b"hi"));
        stream.extend(masked(0x80 | CONTINUATION, &third[100..]));
        for split in [1, 3, 7, stream.len()] {
            let (packets, replies, result) = Peer::new().feed(&stream, split);
            assert_eq!(result, Ok(()), "split {split}");
            assert_eq!(packets.len(), 3, "split {split}");
            assert_eq!(replies, vec![control(PONG, b"hi", Role::Server)]);
        }
    }

    #[test]
    fn each_bad_input_has_its_close_code() {
        let code = |bytes: &[u8]| match Peer::new().feed(bytes, 1000).2 {
            Err(DisconnectReason::WebSocketProtocol { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(&masked(0x80 | TEXT, b"hello")), 1003);
        let whole = chat("hello");
        assert_eq!(code(&masked(0x80 | BINARY, &whole[..whole.len() - 1])), 1007);
        assert_eq!(code(&masked(0x80 | BINARY, &vec![0; 70 * 1024][..])), 1009);
        let mut unmasked = masked(0x80 | BINARY, &whole);
        unmasked[1] &= 0x7F;
        assert_eq!(code(&unmasked), 1002);
        assert_eq!(code(&masked(0x80 | CONTINUATION, &whole)), 1002);
        assert_eq!(code(&masked(0x80 | 0x40 | BINARY, &whole)), 1002);
        let (_, _, closed) = Peer::new().feed(&masked(0x80 | CLOSE, &1000u16.to_be_bytes()), 1);
        assert_eq!(closed, Err(DisconnectReason::ClosedByPeer));
    }

    #[test]
    fn the_packets_before_a_fault_are_delivered() {
        let mut stream = masked(0x80 | BINARY, &chat("first"));
        stream.extend(masked(0x80 | TEXT, b"no"));
        let (packets, _, result) = Peer::new().feed(&stream, 5);
        assert_eq!(packets.len(), 1);
        assert!(result.is_err());
    }

    #[test]
    fn a_ping_flood_is_answered_once_per_interval() {
        let mut peer = Peer::new();
        let mut stream = Vec::new();
        for _ in 0..50 {
            stream.extend(masked(0x80 | PING, b"x"));
        }
        let (_, replies, result) = peer.feed(&stream, 64);
        assert_eq!(result, Ok(()));
        assert_eq!(replies.len(), 1);
    }

    #[test]
    fn the_keepalive_pings_and_ends_a_peer_that_never_answers() {
        let mut peer = Peer::new();
        let start = peer.now;
        let every = WebSocketConfig::default().ping_interval.unwrap();
        let mut replies = Vec::new();
        assert_eq!(peer.ws.deadline(), Some(start + every));
        peer.ws.check_timers(start + every, &mut replies).unwrap();
        assert_eq!(replies, vec![control(PING, b"", Role::Server)]);
        // A pong clears the wait.
        peer.now = start + every + Duration::from_secs(1);
        assert_eq!(peer.feed(&masked(0x80 | PONG, b""), 100).2, Ok(()));
        // The next ping (sent at 2 × every) is not answered.
        peer.ws.check_timers(start + every * 2, &mut replies).unwrap();
        assert_eq!(replies.len(), 2);
        assert!(peer.ws.check_timers(start + every * 2 + Duration::from_secs(9), &mut replies).is_ok());
        let late = start + every * 2 + WebSocketConfig::default().ping_timeout;
        assert!(matches!(peer.ws.check_timers(late, &mut replies), Err(DisconnectReason::IdleTimeout(_))));
    }

    #[test]
    fn server_frames_use_the_shortest_length() {
        let data_header = |len| message(Bytes::from(vec![0; len]), Role::Server).0;
        assert_eq!(&data_header(5)[..], &[0x82, 5]);
        assert_eq!(&data_header(300)[..], &[0x82, 126, 1, 44]);
        assert_eq!(&data_header(70_000)[..], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        let close = close_frame(&violation(1003, "text"), Role::Server);
        assert_eq!(&close[..], &[0x88, 6, 0x03, 0xEB, b't', b'e', b'x', b't']);
    }

    #[test]
    fn a_client_reads_plain_frames_and_masks_what_it_sends() {
        let now = Instant::now();
        let mut ws = WsInbound::new(&WebSocketConfig::default(), Role::Client, now);
        let mut rules = InboundRules::<ServerPacket>::new(&NetConfig::client_default(), now);
        let mut bytes = Vec::new();
        shared::encode(&S_Chat { player_id: 7, chat: "hi".into() }, &mut bytes).unwrap();
        let (header, payload) = message(Bytes::from(bytes.clone()), Role::Server);
        let mut frame = [&header[..], &payload[..]].concat();
        let (mut packets, mut replies) = (Vec::new(), Vec::new());
        ws.receive(&mut frame, now, &mut rules, &mut packets, &mut replies).unwrap();
        assert_eq!(packets.len(), 1);
        // What a client sends is masked: a server's codec unmasks it back.
        let (header, masked) = message(Bytes::from(chat("back")), Role::Client);
        assert_ne!(&masked[..], &chat("back")[..]);
        let mut peer = Peer::new();
        let (echoed, _, result) = peer.feed(&[&header[..], &masked[..]].concat(), 3);
        assert_eq!((echoed.len(), result), (1, Ok(())));
        // A masked frame from a server is refused.
        let mut masked_from_server = [&header[..], &masked[..]].concat();
        let refused = ws.receive(&mut masked_from_server, now, &mut rules, &mut packets, &mut replies);
        assert!(matches!(refused, Err(DisconnectReason::WebSocketProtocol { code: 1002, .. })));
    }

    #[test]
    fn plain_gets_are_served_the_listed_files_only() {
        let files = [WebFile { path: "/", content_type: "text/html", body: "page" }];
        let get =
            |line: &str, extra: &str| requested_file(format!("{line}\r\nHost: x\r\n{extra}\r\n").as_bytes(), &files);
        assert_eq!(get("GET / HTTP/1.1", ""), Some(files[0]));
        assert_eq!(get("GET /?room=2 HTTP/1.1", ""), Some(files[0]));
        assert_eq!(get("GET /other HTTP/1.1", ""), None);
        assert_eq!(get("POST / HTTP/1.1", ""), None);
        assert_eq!(get("GET / HTTP/1.1", "Upgrade: websocket\r\n"), None, "an upgrade is not a page request");
    }

    #[test]
    fn upgrades_are_checked() {
        let config = WebSocketConfig { allowed_origins: vec!["https://ok.example".into()], ..Default::default() };
        let request = |extra: &str| {
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
            )
        };
        assert_eq!(answer(request("").as_bytes(), &config).unwrap(), "dGhlIHNhbXBsZSBub25jZQ==");
        assert!(answer(request("Origin: https://ok.example\r\n").as_bytes(), &config).is_ok());
        assert!(matches!(
            answer(request("Origin: https://evil.example\r\n").as_bytes(), &config),
            Err(HandshakeError::Refused { status: "403 Forbidden", .. })
        ));
        assert!(matches!(
            answer(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &config),
            Err(HandshakeError::Refused { status: "426 Upgrade Required", .. })
        ));
    }
}
