//! Counters of the network layer: the I/O threads count bytes and endings in atomics, the ECS
//! counts packets and flushes, and [`NetStats`] shows both to game code once per frame.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bevy_ecs::resource::Resource;

use crate::core::TotalBacklog;
use crate::handle::SessionId;
use crate::reason::{DisconnectKind, DisconnectReason};

/// Counters the I/O threads update; read by the ECS once per frame. Relaxed atomics: each is a
/// plain tally, nothing is synchronised through them.
#[derive(Debug, Default)]
pub(crate) struct IoCounters {
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Connections closed on arrival, by reason, indexed by `Refusal as usize`.
    pub refused: [AtomicU64; Refusal::ALL.len()],
    /// Times a reader found the inbound queue full and waited for its turn.
    pub inbound_waits: AtomicU64,
    /// Packets read and never delivered: their session was closed before the ECS took them.
    pub packets_dropped: AtomicU64,
    /// Packets game code sent that could not be encoded.
    pub packets_unencodable: AtomicU64,
    /// The bytes waiting in every session's outbound queue: each session's queue counts in it.
    pub backlog: Arc<TotalBacklog>,
    pub disconnects: [AtomicU64; DisconnectKind::ALL.len()],
    /// Peers' faults since the last summary line.
    faults: Mutex<FaultLog>,
}

/// How often at most the log says how many peers were closed for their faults.
pub(crate) const FAULT_SUMMARY_PERIOD: Duration = Duration::from_secs(5);

/// Peers' faults not yet summarised in the log. A misbehaving peer's close is logged at `debug`
/// only; at `warn`, one line per [`FAULT_SUMMARY_PERIOD`] counts them by kind, so any number of
/// faulty clients write a bounded number of lines.
#[derive(Debug, Default)]
struct FaultLog {
    counts: [u64; DisconnectKind::ALL.len()],
    /// An example of the latest fault of each kind, to say what it was.
    examples: [Option<String>; DisconnectKind::ALL.len()],
    last_line: Option<Instant>,
}

impl IoCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn refused(&self, reason: Refusal) {
        self.refused[reason as usize].fetch_add(1, Relaxed);
    }

    pub fn disconnected(&self, kind: DisconnectKind) {
        self.disconnects[kind as usize].fetch_add(1, Relaxed);
    }

    /// Logs a session's end: at `debug` each (with its peer and reason); a bug (a panic) at
    /// `error`; the peer's faults also counted for the next summary line.
    pub fn log_disconnect(&self, id: SessionId, peer: SocketAddr, reason: &DisconnectReason) {
        tracing::debug!(session = id.0, %peer, %reason, "session closed");
        if let DisconnectReason::InternalError(_) = reason {
            tracing::error!(session = id.0, %peer, %reason, "session closed by a bug");
        } else if reason.is_peer_fault() {
            let kind = reason.kind() as usize;
            let mut log = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
            log.counts[kind] += 1;
            log.examples[kind] = Some(reason.to_string());
        }
    }

    /// Writes the summary of the peers' faults when one is due (called once a frame), or now
    /// whatever the period when `last` (at shutdown, so the last seconds' faults are told too).
    pub fn summarise_faults(&self, now: Instant, last: bool) {
        let mut log = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        let due = last || log.last_line.is_none_or(|t| now - t >= FAULT_SUMMARY_PERIOD);
        if log.counts.iter().all(|n| *n == 0) || !due {
            return;
        }
        let since = log.last_line.map_or(FAULT_SUMMARY_PERIOD, |t| now - t);
        log.last_line = Some(now);
        let FaultLog { counts, examples, .. } = &mut *log;
        for kind in DisconnectKind::ALL {
            let n = std::mem::take(&mut counts[kind as usize]);
            let example = examples[kind as usize].take();
            if n > 0 {
                tracing::warn!(
                    kind = kind.as_str(),
                    connections = n,
                    latest = example.as_deref().unwrap_or(""),
                    "{n} connection(s) closed for {} in the last {:.0?}",
                    kind.as_str().replace('_', " "),
                    since
                );
            }
        }
    }
}

/// What the network layer has done since it started: the one set of network counters that every
/// report (the server's statistics line, its JSON summary, its `/metrics`) reads. The I/O
/// threads' counts are copied in once per frame, in
/// [`NetSystems::Receive`](crate::NetSystems::Receive), where packets are also counted as they
/// are delivered; packets sent are counted as game code sends them ([`Outbox`](crate::Outbox))
/// and added, with the flushes, in [`NetSystems::Send`](crate::NetSystems::Send).
#[derive(Resource, Debug, Clone, Default, PartialEq)]
pub struct NetStats {
    /// Sessions open now.
    pub sessions: u64,
    /// Sessions opened since start.
    pub sessions_total: u64,
    /// Of the sessions open now, those over WebSocket (the others are TCP).
    pub sessions_websocket: u64,
    /// Connections closed on arrival, by reason, indexed by `Refusal as usize`
    /// ([`refused`](Self::refused) reads one, [`refused_total`](Self::refused_total) sums them).
    pub refused_by: [u64; Refusal::ALL.len()],
    /// Packets delivered to the ECS as messages.
    pub packets_in: u64,
    /// `packets_in` by packet type, indexed by packet id ([`packets_in_of`](Self::packets_in_of)
    /// reads it).
    pub packets_in_by_id: Vec<u64>,
    /// Packets read from a session that was closed before they could be delivered (game code
    /// closed it, or it closed while they waited for room in the inbound queue).
    pub packets_dropped: u64,
    /// Packets game code sent that could not be encoded (a string or list too long for the
    /// wire format), and were not sent.
    pub packets_unencodable: u64,
    /// Bytes read from sockets.
    pub bytes_in: u64,
    /// Packets queued for sending (a broadcast to 500 counts 500): those game code sent to an
    /// open connection, up to this frame's flush.
    pub packets_out: u64,
    /// `packets_out` by packet type, indexed by packet id ([`packets_out_of`](Self::packets_out_of)
    /// reads it).
    pub packets_out_by_id: Vec<u64>,
    /// Bytes written to sockets.
    pub bytes_out: u64,
    /// Per-session buffers handed to the I/O side (at most one per session per frame).
    pub flushes: u64,
    /// Times a session found the inbound queue full and waited for its turn (each wait is one
    /// wake-up, when the ECS has drained room for it).
    pub inbound_waits: u64,
    /// Packets that waited in the inbound queue (read, not yet delivered) when this frame began
    /// to drain it: how far the game is behind its sockets. Near 0 on a server that keeps up;
    /// at `inbound_queue`, readers are paused.
    pub inbound_queued: u64,
    /// Sessions ended, by kind of reason, indexed by `DisconnectKind as usize`.
    pub disconnects: [u64; DisconnectKind::ALL.len()],
    /// Bytes waiting for all peers together in the outbound queues (beyond the kernel's socket
    /// buffers) as this frame began: what
    /// [`max_total_backlog`](crate::NetConfig::max_total_backlog) bounds.
    pub backlog_bytes: u64,
    /// The most bytes that have waited for all peers at once, since start.
    pub backlog_peak_bytes: u64,
}

impl NetStats {
    /// Connections refused for this reason.
    pub fn refused(&self, reason: Refusal) -> u64 {
        self.refused_by[reason as usize]
    }

    /// Connections refused, whatever the reason.
    pub fn refused_total(&self) -> u64 {
        self.refused_by.iter().sum()
    }

    /// `(label, count)` for every reason, zero or not, for logs, JSON and metrics.
    pub fn refused_by_label(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Refusal::ALL.iter().map(|r| (r.as_str(), self.refused(*r)))
    }

    /// Sessions ended for this kind of reason.
    pub fn disconnects(&self, kind: DisconnectKind) -> u64 {
        self.disconnects[kind as usize]
    }

    /// `(label, count)` for every kind that happened, for logs and JSON.
    pub fn disconnects_by_label(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DisconnectKind::ALL.iter().map(|k| (k.as_str(), self.disconnects(*k))).filter(|(_, n)| *n > 0)
    }

    /// Packets delivered of the packet type with this id.
    pub fn packets_in_of(&self, id: u16) -> u64 {
        self.packets_in_by_id.get(usize::from(id)).copied().unwrap_or(0)
    }

    /// Packets queued for sending of the packet type with this id.
    pub fn packets_out_of(&self, id: u16) -> u64 {
        self.packets_out_by_id.get(usize::from(id)).copied().unwrap_or(0)
    }

    /// Counts `n` packets of type `id` delivered.
    pub(crate) fn count_in(&mut self, id: u16, n: u64) {
        self.packets_in += n;
        tally(&mut self.packets_in_by_id, id, n);
    }

    /// Counts `n` packets of type `id` queued for sending.
    pub(crate) fn count_out(&mut self, id: u16, n: u64) {
        self.packets_out += n;
        tally(&mut self.packets_out_by_id, id, n);
    }

    /// Copies the I/O threads' counters in.
    pub(crate) fn absorb(&mut self, io: &IoCounters) {
        self.bytes_in = io.bytes_in.load(Relaxed);
        self.bytes_out = io.bytes_out.load(Relaxed);
        self.backlog_bytes = io.backlog.bytes() as u64;
        self.backlog_peak_bytes = io.backlog.peak() as u64;
        for (dst, src) in self.refused_by.iter_mut().zip(&io.refused) {
            *dst = src.load(Relaxed);
        }
        self.inbound_waits = io.inbound_waits.load(Relaxed);
        self.packets_dropped = io.packets_dropped.load(Relaxed);
        self.packets_unencodable = io.packets_unencodable.load(Relaxed);
        for (dst, src) in self.disconnects.iter_mut().zip(&io.disconnects) {
            *dst = src.load(Relaxed);
        }
    }
}

/// Why a connection was closed on arrival, before it became a session (no
/// [`Connected`](crate::Connected) is written for it). Every refusal of the accept path is one
/// of these, so the reports can say how many newcomers were turned away and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// At [`max_connections`](crate::NetConfig::max_connections): the server is full.
    ServerFull,
    /// At [`max_connections_per_ip`](crate::NetConfig::max_connections_per_ip) for its address.
    PerAddress,
    /// Accepting had stopped ([`ListenerControl::stop_accepting`](crate::ListenerControl), a
    /// drain): connections the kernel had queued before the listening socket closed are closed.
    /// Those that come after are refused by the kernel, and nobody here sees them.
    NotAccepting,
    /// The accepted socket could not be set up (its options refused: the peer already reset it,
    /// say).
    SocketSetup,
}

impl Refusal {
    /// Every reason, in the order of [`NetStats::refused_by`].
    pub const ALL: [Refusal; 4] =
        [Refusal::ServerFull, Refusal::PerAddress, Refusal::NotAccepting, Refusal::SocketSetup];

    /// The label in logs, JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::ServerFull => "server_full",
            Refusal::PerAddress => "per_address",
            Refusal::NotAccepting => "not_accepting",
            Refusal::SocketSetup => "socket_setup",
        }
    }
}

/// Adds `n` at `id`, growing the table the first time a packet type is seen (a handful of
/// entries: ids are positions in the definition file).
fn tally(by_id: &mut Vec<u64>, id: u16, n: u64) {
    let at = usize::from(id);
    if by_id.len() <= at {
        by_id.resize(at + 1, 0);
    }
    by_id[at] += n;
}
