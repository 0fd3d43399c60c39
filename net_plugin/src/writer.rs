//! The writer: the one task that writes sockets. Each frame's
//! [`flush`](crate::outbound::flush) lists the sessions with new bytes; the writer writes each
//! with one non-blocking (vectored) write, and finishes the sockets that did not take everything
//! as they drain. Below the ECS side (which hands it sessions) and the sessions' tasks (which
//! hand it their last bytes).

use std::future::poll_fn;
use std::io::IoSlice;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;

use tokio::sync::Notify;

use crate::core::{BacklogLimits, MAX_WRITE_SLICES, TotalBacklog, Waiting, over_budget};
use crate::faults::Faults;
use crate::handle::{Session, SessionRegistry};
use crate::reason::DisconnectReason;
use crate::stats::IoCounters;

/// Writes every session's queue: the one task that writes sockets.
///
/// Once a frame, [`flush`](crate::outbound::flush) lists the sessions with new bytes and wakes
/// it; it writes each with one non-blocking write. A socket that did not take everything (its
/// peer reads slowly) joins the writer's `blocked` list, and the writer finishes it when the
/// kernel says it drained, polling only those sockets' readiness: a slow reader costs nothing
/// while its socket is full, and never delays anyone else's write.
#[derive(Debug)]
pub(crate) struct Writer {
    /// Sessions listed since the last pass.
    pending: Mutex<Vec<Arc<Session>>>,
    /// Wakes the writer task.
    wake: Notify,
    /// The backlog rules, for the progress each write makes, and the budget of all backlogs.
    limits: BacklogLimits,
    /// The bytes waiting in every session's queue together.
    total: Arc<TotalBacklog>,
}

/// How one write attempt ended.
enum Wrote {
    /// The queue is empty (or abandoned): nothing more to do until the next flush.
    All,
    /// The socket is full; the rest waits for it to drain.
    Blocked,
}

impl Writer {
    /// A writer under `limits`, whose sessions' queues count in `total`.
    pub fn new(limits: BacklogLimits, total: Arc<TotalBacklog>) -> Self {
        Self { pending: Mutex::default(), wake: Notify::new(), limits, total }
    }

    /// The sum of every session's backlog, which each new session's queue counts in.
    pub fn total(&self) -> &Arc<TotalBacklog> {
        &self.total
    }

    /// When the backlogs together are over the budget, cuts the worst of the `blocked` sessions
    /// (every session with bytes waiting after a pass is one of them) until they fit, by the rule
    /// of [`over_budget`]. Here, on the I/O thread, and at each frame's pass: as backlogs grow,
    /// the few that pass the budget go frame by frame, and their memory is freed by their own
    /// tasks, never by the game's frame.
    fn enforce_budget(&self, blocked: &[Arc<Session>]) {
        let Some(budget) = self.limits.budget else { return };
        let mut total = self.total.bytes();
        if total <= budget {
            return;
        }
        let mut peers = Vec::with_capacity(blocked.len());
        for (key, session) in blocked.iter().enumerate() {
            let out = session.outgoing();
            if out.is_abandoned() || session.is_closed() {
                // Being cut already: its bytes go as its task closes it.
                total = total.saturating_sub(out.queue.len());
            } else {
                peers.push(Waiting { key, queued: out.queue.len(), last_progress: out.queue.last_progress() });
            }
        }
        for key in over_budget(&mut peers, total, budget) {
            let session = &blocked[key];
            let queued = session.outgoing().queue.len();
            session.close(DisconnectReason::OutboundBudget { queued, budget });
        }
    }

    /// Lists sessions with new bytes and wakes the writer (called once a frame).
    pub fn submit(&self, sessions: &mut Vec<Arc<Session>>) {
        if sessions.is_empty() {
            return;
        }
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).append(sessions);
        self.wake.notify_one();
    }

    /// Lists one session (a closing one, for its last bytes).
    pub fn submit_one(&self, session: &Arc<Session>) {
        let listed = session.outgoing().list();
        if listed {
            self.pending.lock().unwrap_or_else(PoisonError::into_inner).push(session.clone());
        }
        self.wake.notify_one();
    }

    /// Wakes the writer so it looks at its blocked sockets again (one was abandoned).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The writer task: writes what each frame lists, until the runtime stops. Started again by
    /// the runtime's supervisor after a panic; it then first looks at every open session, since
    /// what the panicked run held is lost.
    pub async fn run(
        self: Arc<Self>,
        registry: Arc<SessionRegistry>,
        counters: Arc<IoCounters>,
        faults: Arc<Faults>,
        restarted: bool,
    ) {
        let mut blocked: Vec<Arc<Session>> = Vec::new();
        let mut batch: Vec<Arc<Session>> = Vec::new();
        if restarted {
            for session in registry.all() {
                session.outgoing().take_up_after_restart();
                batch.push(session);
            }
        }
        loop {
            faults.writer();
            for session in batch.drain(..) {
                session.outgoing().unlist();
                if let Wrote::Blocked = write(&session, &counters, &self.limits) {
                    let newly = session.outgoing().block();
                    if newly {
                        // Its task keeps the stall timers while the socket stays full.
                        session.socket_filled();
                        blocked.push(session);
                    }
                }
            }
            self.enforce_budget(&blocked);
            // Until the next frame's list, finish the blocked sockets as they drain.
            tokio::select! {
                biased;
                () = self.wake.notified() => {}
                () = poll_fn(|cx| {
                    blocked.retain(|session| loop {
                        match session.stream.poll_write_ready(cx) {
                            Poll::Pending => return true,
                            Poll::Ready(Err(_)) | Poll::Ready(Ok(())) => {}
                        }
                        if let Wrote::All = write(session, &counters, &self.limits) {
                            session.outgoing().unblock();
                            return false;
                        }
                    });
                    Poll::<()>::Pending
                }) => {}
            }
            std::mem::swap(&mut batch, &mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
            // Drop the sessions abandoned meanwhile (each woke us), so their sockets close now.
            blocked.retain(|session| session.outgoing().stays_blocked());
        }
    }
}

/// Writes as much of a session's queue as the socket takes: one vectored write, repeated only
/// while the socket takes everything offered (a queue longer than one write's slices).
fn write(session: &Session, counters: &IoCounters, limits: &BacklogLimits) -> Wrote {
    let mut out = session.outgoing();
    loop {
        if out.is_abandoned() {
            return Wrote::All;
        }
        if out.queue.is_empty() {
            if out.drained() {
                let _ = socket2::SockRef::from(&session.stream).shutdown(std::net::Shutdown::Write);
                session.finished();
            }
            return Wrote::All;
        }
        let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
        let n = out.queue.slices(&mut slices);
        let offered: usize = slices[..n].iter().map(|s| s.len()).sum();
        // One piece (the usual case: a frame's bytes) goes by `send`, which skips the file
        // layer `writev` goes through (a few percent of the kernel's cost of a write).
        let wrote = match n {
            1 => session.stream.try_write(&slices[0]),
            _ => session.stream.try_write_vectored(&slices[..n]),
        };
        match wrote {
            Ok(written) => {
                IoCounters::add(&counters.bytes_out, written as u64);
                out.queue.advance(written, std::time::Instant::now(), limits);
                if written < offered {
                    return Wrote::Blocked;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Wrote::Blocked,
            Err(e) => {
                out.abandon();
                drop(out);
                session.close(DisconnectReason::Io(e.kind()));
                session.finished();
                return Wrote::All;
            }
        }
    }
}
