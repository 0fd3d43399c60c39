//! The syscall floor of S5: `client_bot floor --answer-bytes B`.
//!
//! A server with no game in it: for every 16 bytes it reads from a connection (one `C_Move`) it
//! writes one prebuilt answer of B bytes back to that connection, B being what the real server
//! writes per move it receives. Whatever a game server does beyond one read and one write per
//! move is the distance to this floor, and `client_bot bench --scenario s5 --floor` reports S5 as
//! a ratio to it, measured in the same run under the same load (see `docs/benchmarks.md`).
//!
//! It is the reference `floor_server.c` of `../shared/bench/` in safe Rust, with the same
//! syscalls per event, so that it measures what that program measures:
//!
//! - one thread, one epoll set (through `mio`), up to 1,024 events per wait, no timeout;
//! - the listener accepts until it would block, each new connection non-blocking with
//!   `TCP_NODELAY`;
//! - a readable connection is read once into a 64 KiB buffer, and for every whole 16 bytes
//!   read (carrying the remainder over to the next read) the answer is written once, its
//!   result ignored: an answer the socket cannot take is dropped, as the reference drops it.
//!
//! One difference is forced by `mio`, whose registrations are edge-triggered where the
//! reference's are level-triggered: a read that fills the whole buffer is followed by another
//! (level triggering would have reported the connection again), and a shorter read ends the
//! event as the reference's single read does (TCP hands over everything queued, and data that
//! arrives later raises a new edge). With 16 bytes every 250 ms a read never fills 64 KiB, so
//! the syscalls are the reference's: one `epoll_wait` per batch of events, one read per
//! readable connection, one write per move. (`std` reads and writes sockets with `recv` and
//! `send`, the reference with `read` and `write`: the same path in the kernel once past the
//! system call's entry.)
//!
//! It listens on 127.0.0.1 only: it exists to be measured on this machine.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use clap::Args;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

/// Bytes per move: a `C_Move` on the wire (header 4, three floats 12).
pub const MOVE_BYTES: usize = 16;

/// The reference's read buffer.
const READ_BUFFER: usize = 64 * 1024;

/// The reference's events per `epoll_wait`.
const EVENTS_PER_WAIT: usize = 1024;

/// The reference's listen backlog: a connect storm of 1,000 at once is queued, not refused.
const BACKLOG: i32 = 4096;

const LISTENER: Token = Token(0);
const STOP: Token = Token(1);
/// Connection `i` is `Token(FIRST_CONNECTION + i)`.
const FIRST_CONNECTION: usize = 2;

/// Flags of `client_bot floor`.
#[derive(Debug, Clone, Args)]
pub struct FloorArgs {
    /// The port on 127.0.0.1 (0: any free one; the address is logged as `listening on ADDR`).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// The answer written for every 16 bytes read: the real server's bytes out per move.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub answer_bytes: u32,
}

/// One accepted connection: its socket and the bytes of a move not yet whole.
struct Connection {
    stream: TcpStream,
    leftover: usize,
}

/// The floor server, bound and ready to [`run`](Floor::run).
pub struct Floor {
    poll: Poll,
    listener: TcpListener,
    answer: Vec<u8>,
    /// Indexed by token − [`FIRST_CONNECTION`]; a closed connection's slot is reused.
    connections: Vec<Option<Connection>>,
    free: Vec<usize>,
    waker: std::sync::Arc<Waker>,
}

/// Stops a running [`Floor`] from another thread.
#[derive(Clone)]
pub struct Stop(std::sync::Arc<Waker>);

impl Stop {
    /// Makes [`Floor::run`] return; its connections are closed as it drops.
    pub fn stop(&self) {
        // A failed wake leaves the server running, which only a test could notice.
        let _ = self.0.wake();
    }
}

impl Floor {
    /// Listens on 127.0.0.1:`port` and prebuilds the answer (zeros, as the reference's).
    pub fn bind(port: u16, answer_bytes: usize) -> io::Result<Floor> {
        let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(BACKLOG)?;
        let mut listener = TcpListener::from_std(socket.into());
        let poll = Poll::new()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = std::sync::Arc::new(Waker::new(poll.registry(), STOP)?);
        Ok(Floor { poll, listener, answer: vec![0; answer_bytes], connections: Vec::new(), free: Vec::new(), waker })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle that stops [`run`](Floor::run).
    pub fn stopper(&self) -> Stop {
        Stop(self.waker.clone())
    }

    /// Serves until stopped; only a failing `epoll_wait` ends it otherwise.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS_PER_WAIT);
        let mut buf = vec![0u8; READ_BUFFER];
        loop {
            match self.poll.poll(&mut events, None) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in &events {
                match event.token() {
                    LISTENER => self.accept_all()?,
                    STOP => return Ok(()),
                    Token(t) => self.serve(t - FIRST_CONNECTION, &mut buf),
                }
            }
        }
    }

    /// Accepts until the listener would block. A failed accept (e.g. out of descriptors)
    /// leaves the rest queued for the next event, as the reference's loop does.
    fn accept_all(&mut self) -> io::Result<()> {
        loop {
            let (mut stream, _) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Ok(()),
            };
            // Nagle would hold the answers back: the real server sets it too.
            let _ = stream.set_nodelay(true);
            let slot = self.free.pop().unwrap_or_else(|| {
                self.connections.push(None);
                self.connections.len() - 1
            });
            self.poll.registry().register(&mut stream, Token(FIRST_CONNECTION + slot), Interest::READABLE)?;
            self.connections[slot] = Some(Connection { stream, leftover: 0 });
        }
    }

    /// Reads what connection `slot` sent and answers each whole move once.
    fn serve(&mut self, slot: usize, buf: &mut [u8]) {
        let Some(Some(conn)) = self.connections.get_mut(slot) else { return };
        let closed = loop {
            let n = match conn.stream.read(buf) {
                Ok(0) => break true,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break true,
            };
            let total = conn.leftover + n;
            conn.leftover = total % MOVE_BYTES;
            for _ in 0..total / MOVE_BYTES {
                // Ignored, as the reference ignores it: the floor counts syscalls, not answers.
                let _ = conn.stream.write(&self.answer);
            }
            if n < buf.len() {
                break false;
            }
        };
        if closed {
            self.close(slot);
        }
    }

    fn close(&mut self, slot: usize) {
        if let Some(mut conn) = self.connections[slot].take() {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            self.free.push(slot);
        }
    }
}

/// `client_bot floor`: binds, prints `listening on ADDR` to stderr (the bench runner reads it
/// there, whatever the log level), serves until killed.
pub fn run(args: &FloorArgs) -> io::Result<()> {
    let floor = Floor::bind(args.port, args.answer_bytes as usize)?;
    eprintln!("listening on {}", floor.local_addr()?);
    floor.run()
}
