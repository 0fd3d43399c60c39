//! The syscall floor of S5: `client_bot floor --answer-bytes B`.
//!
//! A server with no game in it: for every 16 bytes it reads from a connection (one `C_Move`) it
//! writes one prebuilt answer of B bytes back to that connection, B being what the real server
//! writes per move it receives. Whatever a game server does beyond one read and one write per
//! move is the distance to this floor, and `client_bot bench --scenario s5 --floor` reports S5 as
//! a ratio to it, measured in the same run under the same load (see `docs/benchmarks.md`).
//!
//! It is the reference `floor_server.c` of `../shared/bench/` in safe Rust (`rustix`'s system
//! call wrappers), making the same system calls for the same events, so that it measures what
//! that program measures:
//!
//! - one thread, one level-triggered epoll set, up to 1,024 events per `epoll_wait`, no
//!   timeout;
//! - the listener (backlog 4,096) accepts with `accept4` until it would block, each new
//!   connection non-blocking with `TCP_NODELAY`;
//! - a readable connection is read once (`read`, 64 KiB), and for every whole 16 bytes read
//!   (the remainder carried over to the next read) the answer is written once (`write`), its
//!   result ignored: an answer the socket cannot take is dropped, as the reference drops it.
//!   A read of 0 or an error other than "would block" closes the connection.
//!
//! Level triggering and `read`/`write` rather than `mio` (edge-triggered) and `std`'s
//! `recv`/`send` matter: under the same load, a `mio` version of this loop measured 23% below
//! the reference (`docs/benchmarks.md`), and a floor must be the reference's floor.
//!
//! With `--tick T` it answers as a server with a fixed tick does: the moves read are counted per
//! connection, and every `T` (the epoll wait's timeout) each is answered, one `write` per move,
//! in the order the connections were first read. The system calls are the same; what changes is
//! when a socket is written: a tick after it was read, with every other socket read in between,
//! rather than at once, while its kernel state is still in the cache. The difference between the
//! two floors is the cost of the tick itself (see `docs/benchmarks.md`).
//!
//! It listens on 127.0.0.1 only: it exists to be measured on this machine.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::sync::Arc;

use clap::Args;
use rustix::buffer::spare_capacity;
use rustix::event::{EventfdFlags, epoll, eventfd};
use rustix::io::Errno;
use rustix::net::{SocketFlags, accept_with, sockopt};

/// Bytes per move: a `C_Move` on the wire (header 4, three floats 12).
pub const MOVE_BYTES: usize = 16;

/// The reference's read buffer.
const READ_BUFFER: usize = 64 * 1024;

/// The reference's events per `epoll_wait`.
const EVENTS_PER_WAIT: usize = 1024;

/// The reference's listen backlog: a connect storm of 1,000 at once is queued, not refused.
const BACKLOG: i32 = 4096;

const LISTENER: u64 = 0;
const STOP: u64 = 1;
/// Connection `i` is registered with the data `FIRST_CONNECTION + i`.
const FIRST_CONNECTION: u64 = 2;

/// Flags of `client_bot floor`.
#[derive(Debug, Clone, Args)]
pub struct FloorArgs {
    /// The port on 127.0.0.1 (0: any free one; the address is logged as `listening on ADDR`).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// The answer written for every 16 bytes read: the real server's bytes out per move.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub answer_bytes: u32,
    /// Answer at the next tick of this period instead of at once (e.g. 16.7ms: a 60 Hz tick).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub tick: Option<std::time::Duration>,
}

/// One accepted connection: its socket, the bytes of a move not yet whole, and (with a tick)
/// the moves read and not answered yet.
struct Connection {
    fd: OwnedFd,
    leftover: usize,
    owed: u32,
}

/// The floor server, bound and ready to [`run`](Floor::run).
pub struct Floor {
    epoll: OwnedFd,
    listener: OwnedFd,
    addr: SocketAddr,
    answer: Vec<u8>,
    /// Indexed by the registration's data − [`FIRST_CONNECTION`]; a closed connection's slot
    /// is reused.
    connections: Vec<Option<Connection>>,
    free: Vec<usize>,
    stop: Arc<OwnedFd>,
    /// With `--tick`: the period, and the connections owed answers, in the order first read.
    tick: Option<std::time::Duration>,
    owed: Vec<usize>,
}

/// Stops a running [`Floor`] from another thread.
#[derive(Clone)]
pub struct Stop(Arc<OwnedFd>);

impl Stop {
    /// Makes [`Floor::run`] return; its connections are closed as it drops.
    pub fn stop(&self) {
        // A failed write leaves the server running, which only a test could notice.
        let _ = rustix::io::write(&*self.0, &1u64.to_ne_bytes());
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
        let addr = socket.local_addr()?.as_socket().ok_or_else(|| io::Error::other("not an IP socket"))?;
        let listener = OwnedFd::from(socket);
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        epoll::add(&epoll, &listener, epoll::EventData::new_u64(LISTENER), epoll::EventFlags::IN)?;
        let stop = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        epoll::add(&epoll, &stop, epoll::EventData::new_u64(STOP), epoll::EventFlags::IN)?;
        Ok(Floor {
            epoll,
            listener,
            addr,
            answer: vec![0; answer_bytes],
            connections: Vec::new(),
            free: Vec::new(),
            stop: Arc::new(stop),
            tick: None,
            owed: Vec::new(),
        })
    }

    /// Answers at the next tick of `period` instead of at once.
    pub fn with_tick(self, period: Option<std::time::Duration>) -> Floor {
        Floor { tick: period, ..self }
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that stops [`run`](Floor::run).
    pub fn stopper(&self) -> Stop {
        Stop(self.stop.clone())
    }

    /// Serves until stopped; only a failing `epoll_wait` ends it otherwise.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Vec::with_capacity(EVENTS_PER_WAIT);
        let mut buf = vec![0u8; READ_BUFFER];
        let mut next_tick = self.tick.map(|period| std::time::Instant::now() + period);
        loop {
            events.clear();
            if let (Some(period), Some(at)) = (self.tick, next_tick.as_mut())
                && std::time::Instant::now() >= *at
            {
                self.answer_owed();
                *at += period;
            }
            let timeout = next_tick.map(|at| {
                let left = at.saturating_duration_since(std::time::Instant::now());
                rustix::event::Timespec::try_from(left).unwrap_or_default()
            });
            match epoll::wait(&self.epoll, spare_capacity(&mut events), timeout.as_ref()) {
                Ok(_) => {}
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            for event in &events {
                match event.data.u64() {
                    LISTENER => self.accept_all()?,
                    STOP => return Ok(()),
                    data => self.serve((data - FIRST_CONNECTION) as usize, &mut buf),
                }
            }
        }
    }

    /// Accepts until the listener would block. A failed accept (e.g. out of descriptors)
    /// leaves the rest queued for the next event, as the reference's loop does.
    fn accept_all(&mut self) -> io::Result<()> {
        loop {
            let fd = match accept_with(&self.listener, SocketFlags::NONBLOCK) {
                Ok(fd) => fd,
                Err(Errno::INTR) => continue,
                Err(_) => return Ok(()),
            };
            // Nagle would hold the answers back: the real server sets it too.
            let _ = sockopt::set_tcp_nodelay(&fd, true);
            let slot = self.free.pop().unwrap_or_else(|| {
                self.connections.push(None);
                self.connections.len() - 1
            });
            let data = epoll::EventData::new_u64(FIRST_CONNECTION + slot as u64);
            epoll::add(&self.epoll, &fd, data, epoll::EventFlags::IN)?;
            self.connections[slot] = Some(Connection { fd, leftover: 0, owed: 0 });
        }
    }

    /// Reads once what connection `slot` sent and answers each whole move once.
    fn serve(&mut self, slot: usize, buf: &mut [u8]) {
        let Some(Some(conn)) = self.connections.get_mut(slot) else { return };
        let n = match rustix::io::read(&conn.fd, &mut *buf) {
            Ok(0) => return self.close(slot),
            Ok(n) => n,
            // Level-triggered: whatever is left is reported again.
            Err(Errno::AGAIN | Errno::INTR) => return,
            Err(_) => return self.close(slot),
        };
        let total = conn.leftover + n;
        conn.leftover = total % MOVE_BYTES;
        let moves = (total / MOVE_BYTES) as u32;
        if self.tick.is_some() {
            if conn.owed == 0 && moves > 0 {
                self.owed.push(slot);
            }
            conn.owed += moves;
            return;
        }
        for _ in 0..moves {
            // Ignored, as the reference ignores it: the floor counts syscalls, not answers.
            let _ = rustix::io::write(&conn.fd, &self.answer);
        }
    }

    /// At a tick: answers every move read since the last, one `write` each.
    fn answer_owed(&mut self) {
        for slot in self.owed.drain(..) {
            let Some(Some(conn)) = self.connections.get_mut(slot) else { continue };
            for _ in 0..std::mem::take(&mut conn.owed) {
                let _ = rustix::io::write(&conn.fd, &self.answer);
            }
        }
    }

    /// Closes a connection (closing its descriptor takes it out of the epoll set).
    fn close(&mut self, slot: usize) {
        if self.connections[slot].take().is_some() {
            self.free.push(slot);
        }
    }
}

/// `client_bot floor`: binds, prints `listening on ADDR` to stderr (the bench runner reads it
/// there, whatever the log level), serves until killed.
pub fn run(args: &FloorArgs) -> io::Result<()> {
    let floor = Floor::bind(args.port, args.answer_bytes as usize)?.with_tick(args.tick);
    eprintln!("listening on {}", floor.local_addr());
    floor.run()
}
