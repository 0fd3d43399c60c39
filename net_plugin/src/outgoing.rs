//! The state of a session's writes, under its one lock: the bytes waiting, where the session's
//! writes are in its life ([`Stage`]), and the writer's bookkeeping (listed for its next pass,
//! waiting for the socket to drain). Every change is a method here; no sockets, so the
//! transitions are tested on their own.

use std::time::Instant;

use crate::core::{BacklogLimits, OutboundQueue};

/// Where a session's writes are in its life. Exactly one at a time; a stage is never left
/// backwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Bytes are written as they come.
    Open,
    /// Closing: once the queue is empty the writer shuts the write side and says so.
    Finishing,
    /// Nothing more is written: the writer wrote the last bytes of a finishing session, a write
    /// failed, or the task gave up on the queue.
    Abandoned,
}

/// The outbound state of a session, under one lock.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// Bytes waiting, in order.
    pub queue: OutboundQueue,
    stage: Stage,
    /// Listed for the writer's next pass (so it is listed once a frame at most).
    listed: bool,
    /// In the writer's list of sockets waiting to drain.
    blocked: bool,
}

impl Outgoing {
    /// An open session's state, its bytes waiting in `queue`.
    pub fn new(queue: OutboundQueue) -> Self {
        Self { queue, stage: Stage::Open, listed: false, blocked: false }
    }

    /// Whether nothing more is written.
    pub fn is_abandoned(&self) -> bool {
        self.stage == Stage::Abandoned
    }

    /// Lists it for the writer's next pass: whether it was not listed yet (then the caller hands
    /// it to the writer).
    pub fn list(&mut self) -> bool {
        !std::mem::replace(&mut self.listed, true)
    }

    /// The writer takes it from its list, to write it.
    pub fn unlist(&mut self) {
        self.listed = false;
    }

    /// A restarted writer takes it up afresh: listed for its first pass, in none of its lists.
    pub fn take_up_after_restart(&mut self) {
        self.listed = true;
        self.blocked = false;
    }

    /// Its socket filled: whether it was not waiting to drain yet (then the writer adds it to
    /// its list of blocked sockets).
    pub fn block(&mut self) -> bool {
        !std::mem::replace(&mut self.blocked, true)
    }

    /// Its socket drained, or the writer let go of it.
    pub fn unblock(&mut self) {
        self.blocked = false;
    }

    /// Whether the writer keeps waiting for its socket to drain: not once it is abandoned (then
    /// it is no longer blocked).
    pub fn stays_blocked(&mut self) -> bool {
        if self.is_abandoned() {
            self.blocked = false;
            return false;
        }
        true
    }

    /// The outbound timers' deadline while the writer waits on the socket; `None` otherwise.
    pub fn deadline(&self, limits: &BacklogLimits) -> Option<Instant> {
        if self.blocked { self.queue.deadline(limits) } else { None }
    }

    /// Closing: the writer writes what is queued, then shuts the write side. Not once abandoned.
    pub fn finish(&mut self) {
        if self.stage == Stage::Open {
            self.stage = Stage::Finishing;
        }
    }

    /// The writer found the queue empty: whether that was the last of a finishing session (then
    /// it shuts the write side and says so; nothing more is written).
    pub fn drained(&mut self) -> bool {
        debug_assert!(self.queue.is_empty());
        let last = self.stage == Stage::Finishing;
        if last {
            self.stage = Stage::Abandoned;
        }
        last
    }

    /// Nothing more is written: what is queued is dropped.
    pub fn abandon(&mut self) {
        self.queue.clear();
        self.stage = Stage::Abandoned;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::config::NetConfig;
    use crate::core::TotalBacklog;

    fn open() -> (Outgoing, BacklogLimits) {
        (Outgoing::new(OutboundQueue::new(Arc::new(TotalBacklog::default()))), BacklogLimits::of(&NetConfig::default()))
    }

    #[test]
    fn a_session_is_listed_for_the_writer_once_until_the_writer_takes_it() {
        let (mut out, _) = open();
        assert!(out.list());
        assert!(!out.list());
        out.unlist();
        assert!(out.list());
    }

    #[test]
    fn a_full_socket_joins_the_blocked_list_once_and_only_then_has_outbound_timers() {
        let (mut out, limits) = open();
        out.queue.push(Bytes::from_static(b"hello"), Instant::now(), &limits).unwrap();
        assert_eq!(out.deadline(&limits), None);
        assert!(out.block());
        assert!(!out.block());
        assert_eq!(out.deadline(&limits), out.queue.deadline(&limits));
        assert!(out.stays_blocked());
        out.unblock();
        assert_eq!(out.deadline(&limits), None);
        assert!(out.block());
    }

    #[test]
    fn a_finishing_session_is_done_once_its_queue_drains() {
        let (mut out, _) = open();
        assert!(!out.drained(), "an open session's empty queue is no end");
        assert_eq!(out.stage, Stage::Open);
        out.finish();
        assert_eq!(out.stage, Stage::Finishing);
        assert!(!out.is_abandoned());
        assert!(out.drained(), "the last bytes of a finishing session");
        assert!(out.is_abandoned());
        assert!(!out.drained(), "said once");
    }

    #[test]
    fn an_abandoned_session_drops_its_queue_and_never_finishes() {
        let (mut out, limits) = open();
        out.queue.push(Bytes::from_static(b"hello"), Instant::now(), &limits).unwrap();
        assert!(out.block());
        out.abandon();
        assert!(out.queue.is_empty());
        assert!(out.is_abandoned());
        out.finish();
        assert_eq!(out.stage, Stage::Abandoned, "no stage is left backwards");
        assert!(!out.drained());
        assert!(!out.stays_blocked(), "the writer lets go of its socket");
        assert!(out.block(), "no longer blocked");
    }

    #[test]
    fn a_restarted_writer_takes_every_session_up_afresh() {
        let (mut out, _) = open();
        assert!(out.block());
        out.take_up_after_restart();
        assert!(!out.list(), "listed for the first pass");
        assert!(out.block(), "in no blocked list");
    }
}
