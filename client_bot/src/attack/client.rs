//! The attacks' clients: plain blocking sockets, one thread each, so that every byte written
//! and read is the attacker's choice (the bots' `net_plugin` client always reads as fast as it
//! can and frames every write, which an attacker does not).
//!
//! A [`Client`] connects, enters (its `S_PlayerList` says which player it is), and until told to
//! stop: moves every so often and times its own echo, chats at a rate, fires one burst of bytes
//! when told, and reads — as fast as it can, or capped by a [`TokenBucket`].

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shared::{C_Move, FrameDecoder, MAX_PACKET_LEN, Packet, S_BroadcastMove, S_Chat, S_PlayerList};

use super::bucket::TokenBucket;

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a blocking write may wait for the server to take bytes. A server that takes none
/// for this long is not reading this client; the client gives up on it.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest a client sleeps in a read before it looks at its clock and its stop flag.
const POLL: Duration = Duration::from_millis(50);

/// An own move whose echo is not back after this long is counted lost. Long, so that a server
/// that is slow under attack shows as a slow round trip, not as lost moves.
const ECHO_GIVE_UP: Duration = Duration::from_secs(10);

/// The most chat lines a client catches up with in one write after falling behind its rate;
/// behind by more than a second, it skips the rest rather than send a volley the server's
/// packet rate limit (bursts of 200) would punish.
const CHAT_CATCH_UP: u32 = 20;

/// The smallest read a rate-capped client waits to make, so it does not read byte by byte.
const MIN_CAPPED_READ: usize = 1024;

/// Bursts of a rate-capped reader: 16 KiB, about 65 ms at 2 Mbit/s.
pub const READ_BURST: usize = 16 * 1024;

/// Opens a connection, optionally with a receive buffer of `rcvbuf` bytes (set before the
/// handshake, so the window the client advertises follows it).
pub fn connect(addr: SocketAddr, rcvbuf: Option<usize>) -> std::io::Result<TcpStream> {
    let stream = match rcvbuf {
        None => TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?,
        Some(bytes) => {
            let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
            socket.set_recv_buffer_size(bytes)?;
            socket.connect_timeout(&addr.into(), CONNECT_TIMEOUT)?;
            socket.into()
        }
    };
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    Ok(stream)
}

/// Encodes packets back to back, as one write will send them, or says which one cannot be
/// encoded (a string or list too long for the wire format; [`chat_line`] checks its lines).
pub fn encode_all<P: Packet>(packets: impl IntoIterator<Item = P>) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    for p in packets {
        shared::encode(&p, &mut bytes).map_err(|e| e.to_string())?;
    }
    Ok(bytes)
}

/// A chat line of `chars` copies of `c`: outside the Basic Multilingual Plane ('😀') each is
/// two UTF-16 code units, four bytes on the wire, so 200 of them make an 806-byte `C_Chat`
/// relayed as an 810-byte `S_Chat`, the largest a default server relays.
pub fn chat_line(c: char, chars: u32) -> Result<shared::C_Chat, String> {
    let line = shared::C_Chat { chat: std::iter::repeat_n(c, chars as usize).collect() };
    match shared::wire_len(&line) {
        Ok(n) if n <= 4096 => Ok(line),
        Ok(n) => Err(format!("a chat line of {chars} × {c:?} is {n} bytes, above the server's 4096-byte packet limit")),
        Err(e) => Err(e.to_string()),
    }
}

/// Flags every client of a run shares.
#[derive(Debug, Default)]
pub struct Shared {
    /// Set to end the run: every client closes and returns.
    pub stop: AtomicBool,
    /// Set to fire the clients' bursts.
    pub fire: AtomicBool,
}

/// What one client does.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Its number, from 0: part of its move positions, so every move of a run is unique.
    pub index: u32,
    /// Move this often once entered, timing each move's echo.
    pub move_interval: Option<Duration>,
    /// Send this (encoded chat line) at `lines per second` once entered.
    pub chat: Option<(Arc<Vec<u8>>, f64)>,
    /// Write these bytes in one write once [`Shared::fire`] is set.
    pub burst: Option<Arc<Vec<u8>>>,
    /// Read at most this many bytes a second.
    pub read_rate: Option<f64>,
    /// Counted up once the client has entered (its `S_PlayerList` named it).
    pub entered: Option<Arc<AtomicU32>>,
}

/// How a client's connection ended before it was told to stop.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    /// When.
    pub at: Instant,
    /// How: "reset" (ECONNRESET), "closed" (end of stream), "connect failed: …" or another
    /// error.
    pub how: String,
}

/// What one client saw.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Its connection opened.
    pub connected: bool,
    /// It received its player list.
    pub entered: bool,
    /// Bytes read.
    pub bytes_read: u64,
    /// Packets read.
    pub packets: u64,
    /// `S_Chat` lines read.
    pub chat_received: u64,
    /// Moves sent.
    pub moves_sent: u64,
    /// Chat lines sent.
    pub lines_sent: u64,
    /// Bytes of its burst written.
    pub burst_bytes: u64,
    /// Each own move echoed: when it was sent, and its round trip in milliseconds (send until
    /// the echo's bytes were read).
    pub echoes: Vec<(Instant, f64)>,
    /// Own moves never echoed.
    pub echo_lost: u64,
    /// Set when the connection ended before the client was told to stop.
    pub ended: Option<Ended>,
}

fn describe(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::ConnectionReset => "reset".into(),
        ErrorKind::UnexpectedEof => "closed".into(),
        ErrorKind::BrokenPipe => "broken pipe".into(),
        _ => e.to_string(),
    }
}

/// A reading client's state between reads.
struct Client<'a> {
    b: &'a Behaviour,
    stream: TcpStream,
    frames: FrameDecoder,
    out: Outcome,
    self_id: Option<i32>,
    next_move: Option<Instant>,
    next_chat: Option<Instant>,
    pending: VecDeque<([f32; 3], Instant)>,
    seq: u32,
    burst_done: bool,
}

/// Runs a client until `shared.stop` is set or its connection ends; returns what it saw.
pub fn run(addr: SocketAddr, b: &Behaviour, shared: &Shared) -> Outcome {
    let stream = match connect(addr, None) {
        Ok(s) => s,
        Err(e) => {
            let ended = Ended { at: Instant::now(), how: format!("connect failed: {e}") };
            return Outcome { ended: Some(ended), ..Outcome::default() };
        }
    };
    let mut c = Client {
        b,
        stream,
        frames: FrameDecoder::new(MAX_PACKET_LEN),
        out: Outcome { connected: true, ..Outcome::default() },
        self_id: None,
        next_move: None,
        next_chat: None,
        pending: VecDeque::new(),
        seq: 0,
        burst_done: b.burst.is_none(),
    };
    if let Err(e) = c.run(shared) {
        c.out.ended = Some(Ended { at: Instant::now(), how: e });
    }
    c.out.echo_lost += c.pending.len() as u64;
    c.out
}

impl Client<'_> {
    fn run(&mut self, shared: &Shared) -> Result<(), String> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut bucket = self.b.read_rate.map(|rate| TokenBucket::new(rate, READ_BURST, Instant::now()));
        while !shared.stop.load(Ordering::Relaxed) {
            // A reset that arrived while bytes are still queued for reading is reported by
            // `read` only once they are read: a capped reader would learn of it late.
            if let Ok(Some(e)) = self.stream.take_error() {
                return Err(describe(&e));
            }
            let now = Instant::now();
            self.send_due(now, shared)?;
            let mut wait = POLL;
            for at in [self.next_move, self.next_chat].into_iter().flatten() {
                wait = wait.min(at.saturating_duration_since(now));
            }
            if !self.burst_done {
                // Waiting to fire together with the other bursters.
                wait = wait.min(Duration::from_millis(1));
            }
            let mut cap = buf.len();
            if let Some(bucket) = &mut bucket {
                let want = MIN_CAPPED_READ.min(READ_BURST);
                if bucket.available(now) < want {
                    std::thread::sleep(bucket.wait_for(want, now).min(wait).max(Duration::from_micros(100)));
                    continue;
                }
                cap = cap.min(bucket.available(now));
            }
            self.stream.set_read_timeout(Some(wait.max(Duration::from_millis(1)))).map_err(|e| e.to_string())?;
            match self.stream.read(&mut buf[..cap]) {
                Ok(0) => return Err("closed".into()),
                Ok(n) => {
                    let at = Instant::now();
                    if let Some(bucket) = &mut bucket {
                        bucket.take(n, at);
                    }
                    self.out.bytes_read += n as u64;
                    self.frames.extend_from_slice(&buf[..n]);
                    self.on_frames(at)?;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
                Err(e) => return Err(describe(&e)),
            }
        }
        Ok(())
    }

    /// Sends what is due: the burst, a move, chat lines.
    fn send_due(&mut self, now: Instant, shared: &Shared) -> Result<(), String> {
        if !self.burst_done
            && shared.fire.load(Ordering::Relaxed)
            && let Some(burst) = &self.b.burst
        {
            self.burst_done = true;
            self.stream.write_all(burst).map_err(|e| describe(&e))?;
            self.out.burst_bytes = burst.len() as u64;
        }
        if let (Some(at), Some(every)) = (self.next_move, self.b.move_interval)
            && at <= now
        {
            // Unique positions: the echo of this move is this move's. The world's bounds are
            // ±10,000 by default.
            let pos = [(self.seq % 10_000) as f32, 0.0, (self.b.index % 10_000) as f32];
            self.seq += 1;
            let bytes = encode_all([C_Move { pos_x: pos[0], pos_y: pos[1], pos_z: pos[2] }])?;
            self.stream.write_all(&bytes).map_err(|e| describe(&e))?;
            self.pending.push_back((pos, Instant::now()));
            self.out.moves_sent += 1;
            // Keep the cadence; after a stall, no catch-up volley.
            let next = at + every;
            self.next_move = Some(if next > now { next } else { now + every });
        }
        while self.pending.front().is_some_and(|(_, sent)| now.duration_since(*sent) > ECHO_GIVE_UP) {
            self.pending.pop_front();
            self.out.echo_lost += 1;
        }
        if let (Some(mut at), Some((line, rate))) = (self.next_chat, &self.b.chat)
            && at <= now
        {
            let every = Duration::from_secs_f64(1.0 / rate);
            let mut batch = Vec::new();
            let mut n = 0;
            while at <= now && n < CHAT_CATCH_UP {
                batch.extend_from_slice(line);
                at += every;
                n += 1;
            }
            self.stream.write_all(&batch).map_err(|e| describe(&e))?;
            self.out.lines_sent += u64::from(n);
            self.next_chat =
                Some(if now.duration_since(at.min(now)) > Duration::from_secs(1) { now + every } else { at });
        }
        Ok(())
    }

    fn on_frames(&mut self, at: Instant) -> Result<(), String> {
        loop {
            let frame = match self.frames.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(()),
                Err(e) => return Err(format!("bad frame from the server: {e}")),
            };
            self.out.packets += 1;
            let (_, id) = shared::read_header(frame).map_err(|e| e.to_string())?;
            match id {
                S_Chat::ID => self.out.chat_received += 1,
                S_BroadcastMove::ID => {
                    let m: S_BroadcastMove = shared::decode_packet(frame).map_err(|e| e.to_string())?;
                    if Some(m.player_id) != self.self_id {
                        continue;
                    }
                    let pos = [m.pos_x, m.pos_y, m.pos_z];
                    // Moves overtaken within one tick are never echoed: the oldest pending at
                    // this position is this echo's, those before it are lost.
                    if let Some(i) = self.pending.iter().position(|(p, _)| *p == pos) {
                        let (_, sent) = self.pending[i];
                        self.out.echoes.push((sent, at.saturating_duration_since(sent).as_secs_f64() * 1000.0));
                        self.out.echo_lost += i as u64;
                        self.pending.drain(..=i);
                    }
                }
                S_PlayerList::ID if self.self_id.is_none() => {
                    let list: S_PlayerList = shared::decode_packet(frame).map_err(|e| e.to_string())?;
                    if let Some(me) = list.players.iter().find(|p| p.is_self) {
                        self.self_id = Some(me.player_id);
                        self.out.entered = true;
                        if let Some(entered) = &self.b.entered {
                            entered.fetch_add(1, Ordering::Relaxed);
                        }
                        let now = Instant::now();
                        self.next_move = self.b.move_interval.map(|_| now);
                        self.next_chat = self.b.chat.as_ref().map(|_| now);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Waits until `counter` reaches `n` or `timeout` passes; returns whether it did.
pub fn wait_for(counter: &AtomicU32, n: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while counter.load(Ordering::Relaxed) < n {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issues_chat_line_is_806_bytes_and_relayed_as_810() {
        let line = chat_line('😀', 200).unwrap();
        assert_eq!(line.chat.chars().count(), 200, "200 characters: the default limit");
        assert_eq!(shared::wire_len(&line).unwrap(), 806);
        let relayed = S_Chat { player_id: 1, chat: line.chat };
        assert_eq!(shared::wire_len(&relayed).unwrap(), 810);
        // Within the Basic Multilingual Plane the same 200 characters are half the bytes.
        assert_eq!(shared::wire_len(&chat_line('a', 200).unwrap()).unwrap(), 406);
        assert!(chat_line('😀', 1100).unwrap_err().contains("4096"));
    }

    #[test]
    fn packets_are_encoded_back_to_back() {
        let lines = encode_all(std::iter::repeat_n(chat_line('😀', 200).unwrap(), 200)).unwrap();
        assert_eq!(lines.len(), 200 * 806);
        let mut frames = FrameDecoder::new(4096);
        frames.extend_from_slice(&lines);
        let mut n = 0;
        while let Some(frame) = frames.next_frame().unwrap() {
            assert_eq!(shared::read_header(frame).unwrap(), (806, shared::C_Chat::ID));
            n += 1;
        }
        assert_eq!(n, 200);
    }
}
