//! Counters of the network layer: the I/O threads count bytes and endings in atomics, the ECS
//! counts packets and flushes, and [`NetStats`] shows both to game code once per frame.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use bevy_ecs::resource::Resource;

use crate::DisconnectKind;

/// Counters the I/O threads update; read by the ECS once per frame. Relaxed atomics: each is a
/// plain tally, nothing is synchronised through them.
#[derive(Debug, Default)]
pub(crate) struct IoCounters {
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub refused: AtomicU64,
    /// Times a reader found the event queue full and waited.
    pub queue_full_waits: AtomicU64,
    pub disconnects: [AtomicU64; DisconnectKind::ALL.len()],
}

impl IoCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn disconnected(&self, kind: DisconnectKind) {
        self.disconnects[kind as usize].fetch_add(1, Relaxed);
    }
}

/// What the network layer has done since it started. Updated once per frame, in
/// [`NetSystems::Receive`](crate::NetSystems::Receive) and [`NetSystems::Send`](crate::NetSystems::Send).
#[derive(Resource, Debug, Clone, Default, PartialEq)]
pub struct NetStats {
    /// Sessions open now.
    pub sessions: u64,
    /// Sessions opened since start.
    pub sessions_total: u64,
    /// Connections refused at the connection limit.
    pub refused: u64,
    /// Packets delivered to the ECS as messages.
    pub packets_in: u64,
    /// Packets that arrived from a session already being closed, and were dropped.
    pub packets_dropped: u64,
    /// Bytes read from sockets.
    pub bytes_in: u64,
    /// Packets queued for sending (a broadcast to 500 counts 500).
    pub packets_out: u64,
    /// Bytes written to sockets.
    pub bytes_out: u64,
    /// Per-session buffers handed to the I/O side (at most one per session per frame).
    pub flushes: u64,
    /// Times an I/O reader found the event queue full and waited for the ECS.
    pub queue_full_waits: u64,
    /// Sessions ended, by kind of reason, indexed by `DisconnectKind as usize`.
    pub disconnects: [u64; DisconnectKind::ALL.len()],
}

impl NetStats {
    /// Sessions ended for this kind of reason.
    pub fn disconnects(&self, kind: DisconnectKind) -> u64 {
        self.disconnects[kind as usize]
    }

    /// `(label, count)` for every kind that happened, for logs and JSON.
    pub fn disconnects_by_label(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DisconnectKind::ALL.iter().map(|k| (k.as_str(), self.disconnects(*k))).filter(|(_, n)| *n > 0)
    }

    /// Copies the I/O threads' counters in.
    pub(crate) fn absorb(&mut self, io: &IoCounters) {
        self.bytes_in = io.bytes_in.load(Relaxed);
        self.bytes_out = io.bytes_out.load(Relaxed);
        self.refused = io.refused.load(Relaxed);
        self.queue_full_waits = io.queue_full_waits.load(Relaxed);
        for (dst, src) in self.disconnects.iter_mut().zip(&io.disconnects) {
            *dst = src.load(Relaxed);
        }
    }
}
