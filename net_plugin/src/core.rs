//! The rules of one session, free of I/O (as quinn keeps its protocol apart from its sockets).
//!
//! [`InboundRules`] is fed the bytes a socket gave and the time they came, and answers with the
//! packets they hold, or why the session must end: a malformed frame or packet, a packet of the
//! wrong direction, a flood beyond the rate, silence beyond the idle timeout, a frame begun and
//! not finished within the frame timeout. [`OutboundQueue`] holds the bytes flushed for a peer
//! and not yet written, under its cap. Neither reads a clock or touches a socket: the session's
//! task ([`session`](crate::session)) and the writer ([`outbound`](crate::outbound)) drive them,
//! and the unit tests below check every rule without sockets or sleeps. [`TotalBacklog`] adds
//! every queue's bytes up, and [`over_budget`] says whom to cut when the sum passes its budget.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use shared::{DecodeError, FrameDecoder, PacketSet};

use crate::rate_limit::TokenBucket;
use crate::{DisconnectReason, NetConfig};

/// The inbound half of a session: bytes in, packets or a reason to close out.
#[derive(Debug)]
pub(crate) struct InboundRules<In> {
    /// Splits the stream into packets; holds at most one partial frame between reads.
    frames: FrameDecoder,
    /// The packet rate limit, if any.
    bucket: Option<TokenBucket>,
    /// How long the peer may stay silent, if limited.
    idle_timeout: Option<Duration>,
    /// How long a frame may take from its first byte to its last, if limited: any byte resets
    /// the idle timer, so only this one ends a peer that trickles a frame it never finishes.
    frame_timeout: Option<Duration>,
    /// When the peer last sent anything.
    last_received: Instant,
    /// When the partial frame now buffered began; `None` when nothing partial is buffered.
    frame_started: Option<Instant>,
    _in: PhantomData<fn() -> In>,
}

impl<In: PacketSet> InboundRules<In> {
    /// The rules of `config`, for a session that opened at `now`.
    pub fn new(config: &NetConfig, now: Instant) -> Self {
        Self {
            frames: FrameDecoder::new(config.max_packet_size),
            bucket: config.inbound_rate.map(|limit| TokenBucket::new(limit, now)),
            idle_timeout: config.idle_timeout,
            frame_timeout: config.frame_timeout,
            last_received: now,
            frame_started: None,
            _in: PhantomData,
        }
    }

    /// Takes `bytes` received at `now`. Every whole packet goes to `packets`, in order, up to the
    /// first rule broken, whose reason is returned: the packets before a bad frame are still the
    /// peer's, and are delivered.
    pub fn receive(&mut self, bytes: &[u8], now: Instant, packets: &mut Vec<In>) -> Result<(), DisconnectReason> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.last_received = now;
        self.frames.extend_from_slice(bytes);
        let mut completed = false;
        let result = loop {
            let frame = match self.frames.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break Ok(()),
                Err(e) => break Err(DisconnectReason::MalformedFrame(e)),
            };
            completed = true;
            if let Some(bucket) = &mut self.bucket
                && !bucket.try_take(now)
            {
                break Err(DisconnectReason::InboundFlood { per_second: bucket.per_second() });
            }
            match shared::decode::<In>(frame) {
                Ok(packet) => packets.push(packet),
                Err(DecodeError::WrongDirection { id, name, .. }) => {
                    break Err(DisconnectReason::UnexpectedPacket { id, name });
                }
                Err(e) => break Err(DisconnectReason::MalformedPacket(e)),
            }
        };
        if self.frames.buffered() == 0 {
            self.frame_started = None;
            self.frames.shrink_if_idle();
        } else if completed || self.frame_started.is_none() {
            // What is left began with these bytes.
            self.frame_started = Some(now);
        }
        result
    }

    /// The next moment a timer may end the session, if any: for the driver to sleep until.
    pub fn deadline(&self) -> Option<Instant> {
        let idle = self.idle_timeout.map(|t| self.last_received + t);
        let frame = self.frame_timeout.zip(self.frame_started).map(|(t, started)| started + t);
        match (idle, frame) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Checks the timers at `now`.
    pub fn check_timers(&self, now: Instant) -> Result<(), DisconnectReason> {
        if let (Some(limit), Some(started)) = (self.frame_timeout, self.frame_started)
            && now >= started + limit
        {
            return Err(DisconnectReason::FrameTimeout(limit));
        }
        if let Some(limit) = self.idle_timeout
            && now >= self.last_received + limit
        {
            return Err(DisconnectReason::IdleTimeout(limit));
        }
        Ok(())
    }

    /// Bytes buffered that are not yet a whole packet: a transport whose messages must hold whole
    /// packets (WebSocket) checks it is 0 at each message's end.
    pub fn buffered(&self) -> usize {
        self.frames.buffered()
    }
}

/// When a peer that does not keep up is cut: the backlog's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BacklogLimits {
    /// Bytes that may wait beyond the kernel's socket buffer for as long as `stall_timeout`.
    pub cap: usize,
    /// How long bytes may wait with no write progress, or the backlog stay above `cap`.
    pub stall_timeout: Duration,
    /// Bytes that may wait for all peers together, if limited (see [`over_budget`]).
    pub budget: Option<usize>,
}

impl BacklogLimits {
    /// The limits of `config`.
    pub fn of(config: &NetConfig) -> Self {
        Self {
            cap: config.outbound_backlog,
            stall_timeout: config.write_stall_timeout,
            budget: config.max_total_backlog,
        }
    }

    /// The backlog that closes a connection at once: beyond it the peer cannot be catching up
    /// soon, and waiting would only cost memory.
    pub fn ceiling(&self) -> usize {
        self.cap.saturating_mul(HARD_CEILING_FACTOR)
    }
}

/// How many times the cap a backlog may reach for a moment (see [`BacklogLimits::ceiling`]).
pub(crate) const HARD_CEILING_FACTOR: usize = 4;

/// The bytes flushed for one peer and not yet written, in order: one chunk per frame's flush;
/// and the rules that tell a peer that reads slowly for a moment from one that does not read.
///
/// A partial write advances the front chunk; a flush appends a chunk. Neither copies what is
/// already queued, so a slow reader's backlog costs its bytes once, however many writes drain it.
///
/// A peer is cut when bytes have waited `stall_timeout` with no write progress at all
/// ([`DisconnectReason::WriteStall`]: it does not read), or when its backlog stayed above the cap
/// for `stall_timeout` ([`DisconnectReason::OutboundBacklog`]: it reads, but slower than it is
/// sent to), or at once when the backlog would pass [`BacklogLimits::ceiling`]. Never because
/// one frame was big: a burst the server produced, which a reading peer drains, costs nothing.
#[derive(Debug)]
pub(crate) struct OutboundQueue {
    chunks: VecDeque<Bytes>,
    /// Bytes in `chunks`.
    len: usize,
    /// When the peer last made progress: a write took bytes, or the queue was empty.
    last_progress: Instant,
    /// Since when the backlog has been above the cap, if it is.
    over_cap_since: Option<Instant>,
    /// The sum of every queue's `len` this one counts in.
    total: Arc<TotalBacklog>,
}

impl Default for OutboundQueue {
    /// A queue counted in a total of its own (for tests).
    fn default() -> Self {
        Self::new(Arc::default())
    }
}

impl Drop for OutboundQueue {
    fn drop(&mut self) {
        self.total.sub(self.len);
    }
}

/// The bytes waiting in every [`OutboundQueue`] of a network runtime together: each queue adds
/// what it takes and takes away what it writes, drops or clears, so the sum is exact at any
/// moment, read without a lock.
#[derive(Debug, Default)]
pub(crate) struct TotalBacklog {
    bytes: AtomicUsize,
    /// The most `bytes` has been.
    peak: AtomicUsize,
}

impl TotalBacklog {
    /// Bytes waiting for all peers.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Relaxed)
    }

    /// The most bytes that have waited for all peers at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Relaxed)
    }

    fn add(&self, n: usize) {
        let now = self.bytes.fetch_add(n, Relaxed) + n;
        self.peak.fetch_max(now, Relaxed);
    }

    fn sub(&self, n: usize) {
        self.bytes.fetch_sub(n, Relaxed);
    }
}

/// A peer with bytes waiting, as [`over_budget`] weighs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Waiting<K> {
    /// Who it is, for the caller.
    pub key: K,
    /// Bytes waiting for it.
    pub queued: usize,
    /// When it last took bytes (or was up to date).
    pub last_progress: Instant,
}

/// Whom to cut so that the backlogs together, `total` bytes, fit within `budget`: the largest
/// backlogs first (each cut frees the most memory, and a peer that does not read has the
/// largest, since it is sent to as much as anyone and takes nothing), the longest stalled first
/// among equals; as few as it takes, and nobody when `total` fits. `peers` holds every peer
/// with bytes waiting (those not listed count in `total` but cannot be cut now).
///
/// A healthy peer's backlog is a moment's traffic: peers that do not keep up, however many, are
/// cut before it is reached, so the budget bounds the memory all peers together may pin without
/// costing a peer that reads anything.
pub(crate) fn over_budget<K: Copy>(peers: &mut [Waiting<K>], total: usize, budget: usize) -> Vec<K> {
    if total <= budget {
        return Vec::new();
    }
    peers.sort_unstable_by(|a, b| b.queued.cmp(&a.queued).then(a.last_progress.cmp(&b.last_progress)));
    let mut left = total;
    let mut cut = Vec::new();
    for peer in peers.iter() {
        if left <= budget {
            break;
        }
        left = left.saturating_sub(peer.queued);
        cut.push(peer.key);
    }
    cut
}

/// The most chunks one vectored write takes.
pub(crate) const MAX_WRITE_SLICES: usize = 64;

impl OutboundQueue {
    /// An empty queue, counted in `total`.
    pub fn new(total: Arc<TotalBacklog>) -> Self {
        Self { chunks: VecDeque::new(), len: 0, last_progress: Instant::now(), over_cap_since: None, total }
    }

    /// When the peer last took bytes, or was up to date.
    pub fn last_progress(&self) -> Instant {
        self.last_progress
    }

    /// Appends a transport's header and a frame's bytes at `now`, both or neither, unless the
    /// backlog would pass the ceiling: the header goes out as its own chunk of the vectored
    /// write, so the frame is not copied.
    pub fn push_framed(
        &mut self,
        header: Bytes,
        bytes: Bytes,
        now: Instant,
        limits: &BacklogLimits,
    ) -> Result<(), DisconnectReason> {
        let queued = self.len + header.len() + bytes.len();
        if queued > limits.ceiling() {
            return Err(DisconnectReason::OutboundBacklog { queued, limit: limits.cap });
        }
        self.push(header, now, limits)?;
        self.push(bytes, now, limits)
    }

    /// Appends a frame's bytes at `now`, unless the backlog would pass the ceiling.
    pub fn push(&mut self, bytes: Bytes, now: Instant, limits: &BacklogLimits) -> Result<(), DisconnectReason> {
        let queued = self.len + bytes.len();
        if queued > limits.ceiling() {
            return Err(DisconnectReason::OutboundBacklog { queued, limit: limits.cap });
        }
        if bytes.is_empty() {
            return Ok(());
        }
        if self.len == 0 {
            // Nothing was waiting: the peer is up to date, and the wait starts now.
            self.last_progress = now;
        }
        self.total.add(bytes.len());
        self.len = queued;
        self.chunks.push_back(bytes);
        if self.len > limits.cap && self.over_cap_since.is_none() {
            self.over_cap_since = Some(now);
        }
        Ok(())
    }

    /// When the rules may next cut the peer, if bytes are waiting.
    pub fn deadline(&self, limits: &BacklogLimits) -> Option<Instant> {
        if self.len == 0 {
            return None;
        }
        let stall = self.last_progress + limits.stall_timeout;
        Some(self.over_cap_since.map_or(stall, |since| stall.min(since + limits.stall_timeout)))
    }

    /// Checks the rules at `now`.
    pub fn check(&self, now: Instant, limits: &BacklogLimits) -> Result<(), DisconnectReason> {
        if self.len == 0 {
            return Ok(());
        }
        if now >= self.last_progress + limits.stall_timeout {
            return Err(DisconnectReason::WriteStall(limits.stall_timeout));
        }
        if self.over_cap_since.is_some_and(|since| now >= since + limits.stall_timeout) {
            return Err(DisconnectReason::OutboundBacklog { queued: self.len, limit: limits.cap });
        }
        Ok(())
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The front chunks, as slices for one vectored write; returns how many were filled.
    pub fn slices<'a>(&'a self, out: &mut [IoSlice<'a>; MAX_WRITE_SLICES]) -> usize {
        let mut n = 0;
        for (slot, chunk) in out.iter_mut().zip(&self.chunks) {
            *slot = IoSlice::new(chunk);
            n += 1;
        }
        n
    }

    /// Drops the first `n` bytes: they were written at `now`.
    pub fn advance(&mut self, mut n: usize, now: Instant, limits: &BacklogLimits) {
        debug_assert!(n <= self.len);
        self.total.sub(n.min(self.len));
        self.len -= n.min(self.len);
        if n > 0 {
            self.last_progress = now;
        }
        if self.len <= limits.cap {
            self.over_cap_since = None;
        }
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else { return };
            if n < front.len() {
                front.advance(n);
                return;
            }
            n -= front.len();
            self.chunks.pop_front();
        }
    }

    /// Drops everything (the session ends without writing it).
    pub fn clear(&mut self) {
        self.chunks = VecDeque::new();
        self.total.sub(self.len);
        self.len = 0;
        self.over_cap_since = None;
    }
}

#[cfg(test)]
mod tests {
    use shared::{C_Chat, C_LeaveGame, C_Move, ClientPacket, FrameError, S_Chat, encode_to_vec};

    use super::*;
    use crate::RateLimit;

    fn rules(config: NetConfig) -> (InboundRules<ClientPacket>, Instant) {
        let t0 = Instant::now();
        (InboundRules::new(&config, t0), t0)
    }

    fn quiet() -> NetConfig {
        NetConfig { inbound_rate: None, idle_timeout: None, frame_timeout: None, ..NetConfig::default() }
    }

    fn mv(x: f32) -> Vec<u8> {
        encode_to_vec(&C_Move { pos_x: x, pos_y: 0.0, pos_z: 0.0 }).unwrap()
    }

    #[test]
    fn whole_packets_come_out_in_order_whatever_the_split() {
        let stream: Vec<u8> = [mv(1.0), mv(2.0), encode_to_vec(&C_LeaveGame {}).unwrap(), mv(3.0)].concat();
        for split in 0..=stream.len() {
            let (mut rules, t0) = rules(quiet());
            let mut packets = Vec::new();
            rules.receive(&stream[..split], t0, &mut packets).unwrap();
            rules.receive(&stream[split..], t0, &mut packets).unwrap();
            let names: Vec<_> = packets.iter().map(|p| p.name()).collect();
            assert_eq!(names, ["C_Move", "C_Move", "C_LeaveGame", "C_Move"], "split at {split}");
            assert_eq!(rules.buffered(), 0);
        }
    }

    #[test]
    fn packets_before_a_bad_frame_are_delivered_then_the_reason() {
        let (mut rules, t0) = rules(quiet());
        let mut packets = Vec::new();
        let bytes = [mv(1.0), vec![0x02, 0x00, 0x05, 0x00]].concat();
        let reason = rules.receive(&bytes, t0, &mut packets).unwrap_err();
        assert_eq!(packets.len(), 1);
        assert_eq!(reason, DisconnectReason::MalformedFrame(FrameError::SizeTooSmall { size: 2 }));
    }

    #[test]
    fn a_size_above_the_limit_ends_the_session_at_its_two_size_bytes() {
        let (mut rules, t0) = rules(NetConfig { max_packet_size: 100, ..quiet() });
        let reason = rules.receive(&[101, 0], t0, &mut Vec::new()).unwrap_err();
        assert_eq!(reason, DisconnectReason::MalformedFrame(FrameError::SizeTooLarge { size: 101, max: 100 }));
    }

    #[test]
    fn a_server_packet_from_a_client_is_unexpected() {
        let (mut rules, t0) = rules(quiet());
        let bytes = encode_to_vec(&S_Chat { player_id: 1, chat: "hi".into() }).unwrap();
        let reason = rules.receive(&bytes, t0, &mut Vec::new()).unwrap_err();
        assert_eq!(reason, DisconnectReason::UnexpectedPacket { id: 8, name: "S_Chat" });
    }

    #[test]
    fn a_packet_that_does_not_decode_is_malformed() {
        let (mut rules, t0) = rules(quiet());
        // C_Chat with a string length of 3 bytes: odd, not UTF-16.
        let reason = rules.receive(&[0x09, 0x00, 0x07, 0x00, 0x03, 0x00, b'a', 0, b'b'], t0, &mut Vec::new());
        assert!(matches!(reason, Err(DisconnectReason::MalformedPacket(_))), "{reason:?}");
    }

    #[test]
    fn the_rate_allows_the_burst_then_ends_a_flood_keeping_what_came_first() {
        let limit = RateLimit { per_second: 10, burst: 3 };
        let (mut rules, t0) = rules(NetConfig { inbound_rate: Some(limit), ..quiet() });
        let mut packets = Vec::new();
        rules.receive(&[mv(1.0), mv(2.0), mv(3.0)].concat(), t0, &mut packets).unwrap();
        // 100 ms later one token came back: one more packet, not two.
        let later = t0 + Duration::from_millis(100);
        let reason = rules.receive(&[mv(4.0), mv(5.0)].concat(), later, &mut packets).unwrap_err();
        assert_eq!(reason, DisconnectReason::InboundFlood { per_second: 10 });
        assert_eq!(packets.len(), 4);
    }

    #[test]
    fn silence_beyond_the_idle_timeout_ends_the_session_and_any_byte_resets_it() {
        let limit = Duration::from_secs(30);
        let (mut rules, t0) = rules(NetConfig { idle_timeout: Some(limit), ..quiet() });
        assert_eq!(rules.deadline(), Some(t0 + limit));
        assert_eq!(rules.check_timers(t0 + limit - Duration::from_millis(1)), Ok(()));
        // One byte (half a header) at 20 s moves the deadline.
        let t20 = t0 + Duration::from_secs(20);
        rules.receive(&[0x10], t20, &mut Vec::new()).unwrap();
        assert_eq!(rules.deadline(), Some(t20 + limit));
        assert_eq!(rules.check_timers(t0 + limit), Ok(()));
        assert_eq!(rules.check_timers(t20 + limit), Err(DisconnectReason::IdleTimeout(limit)));
    }

    #[test]
    fn a_frame_trickled_byte_by_byte_ends_at_the_frame_timeout() {
        let limit = Duration::from_secs(10);
        let (mut rules, t0) = rules(NetConfig { frame_timeout: Some(limit), ..quiet() });
        assert_eq!(rules.deadline(), None, "no frame begun, no deadline");
        let frame = mv(1.0);
        // One byte every 3 s: each resets nothing but the idle timer.
        for (i, byte) in frame[..4].iter().enumerate() {
            let at = t0 + Duration::from_secs(3 * i as u64);
            rules.receive(&[*byte], at, &mut Vec::new()).unwrap();
            assert_eq!(rules.deadline(), Some(t0 + limit));
        }
        assert_eq!(rules.check_timers(t0 + limit - Duration::from_millis(1)), Ok(()));
        assert_eq!(rules.check_timers(t0 + limit), Err(DisconnectReason::FrameTimeout(limit)));
    }

    #[test]
    fn the_frame_timer_restarts_with_each_new_frame_and_stops_when_none_is_partial() {
        let limit = Duration::from_secs(10);
        let (mut rules, t0) = rules(NetConfig { frame_timeout: Some(limit), ..quiet() });
        let two = [mv(1.0), mv(2.0)].concat();
        // A whole frame and half of the next.
        rules.receive(&two[..20], t0, &mut Vec::new()).unwrap();
        assert_eq!(rules.deadline(), Some(t0 + limit));
        // The second completes and a third begins 5 s later: its own 10 s start then.
        let t5 = t0 + Duration::from_secs(5);
        let mut tail = two[20..].to_vec();
        tail.extend_from_slice(&mv(3.0)[..3]);
        let mut packets = Vec::new();
        rules.receive(&tail, t5, &mut packets).unwrap();
        assert_eq!(packets.len(), 1);
        assert_eq!(rules.deadline(), Some(t5 + limit));
        // Completing it stops the timer.
        rules.receive(&mv(3.0)[3..], t5, &mut packets).unwrap();
        assert_eq!(rules.deadline(), None);
        assert_eq!(rules.check_timers(t0 + Duration::from_secs(3600)), Ok(()));
    }

    #[test]
    fn the_earlier_of_two_timers_is_the_deadline() {
        let config = NetConfig {
            idle_timeout: Some(Duration::from_secs(60)),
            frame_timeout: Some(Duration::from_secs(10)),
            ..quiet()
        };
        let (mut rules, t0) = rules(config);
        assert_eq!(rules.deadline(), Some(t0 + Duration::from_secs(60)));
        rules.receive(&[0x10, 0x00], t0, &mut Vec::new()).unwrap();
        assert_eq!(rules.deadline(), Some(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn nothing_received_changes_nothing() {
        let (mut rules, t0) = rules(NetConfig { idle_timeout: Some(Duration::from_secs(1)), ..quiet() });
        rules.receive(&[], t0 + Duration::from_secs(5), &mut Vec::new()).unwrap();
        assert_eq!(rules.deadline(), Some(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn a_chat_line_decodes_with_its_text() {
        let (mut rules, t0) = rules(quiet());
        let mut packets = Vec::new();
        rules.receive(&encode_to_vec(&C_Chat { chat: "héllo 😀".into() }).unwrap(), t0, &mut packets).unwrap();
        assert_eq!(packets, [ClientPacket::Chat(C_Chat { chat: "héllo 😀".into() })]);
    }

    const LIMITS: BacklogLimits = BacklogLimits { cap: 100, stall_timeout: Duration::from_secs(10), budget: None };

    fn bytes(n: usize) -> Bytes {
        Bytes::from(vec![0u8; n])
    }

    fn written(queue: &OutboundQueue) -> Vec<u8> {
        let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
        let n = queue.slices(&mut slices);
        slices[..n].iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn the_queue_keeps_order_across_partial_writes_and_appends() {
        let t0 = Instant::now();
        let mut queue = OutboundQueue::default();
        queue.push(Bytes::from_static(b"abcdef"), t0, &LIMITS).unwrap();
        queue.push(Bytes::from_static(b"gh"), t0, &LIMITS).unwrap();
        queue.advance(4, t0, &LIMITS);
        assert_eq!(written(&queue), b"efgh");
        queue.push(Bytes::from_static(b"ij"), t0, &LIMITS).unwrap();
        queue.advance(3, t0, &LIMITS);
        assert_eq!(written(&queue), b"hij");
        assert_eq!(queue.len(), 3);
        queue.advance(3, t0, &LIMITS);
        assert!(queue.is_empty());
        assert_eq!(written(&queue), b"");
    }

    #[test]
    fn a_partial_write_does_not_copy_the_backlog() {
        let t0 = Instant::now();
        let big = Bytes::from(vec![7u8; 1 << 20]);
        let mut queue = OutboundQueue::default();
        let roomy = BacklogLimits { cap: 1 << 30, ..LIMITS };
        queue.push(big.clone(), t0, &roomy).unwrap();
        queue.advance(1000, t0, &roomy);
        let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
        assert_eq!(queue.slices(&mut slices), 1);
        // The slice points into the very allocation that was pushed.
        assert_eq!(slices[0].as_ptr(), big[1000..].as_ptr());
    }

    #[test]
    fn a_burst_above_the_cap_is_fine_while_the_peer_drains_it() {
        let t0 = Instant::now();
        let mut queue = OutboundQueue::default();
        // 3.5 times the cap in one frame: below the ceiling of 4.
        queue.push(bytes(350), t0, &LIMITS).unwrap();
        assert_eq!(queue.check(t0, &LIMITS), Ok(()));
        // The peer reads 100 bytes every 2 s: always progress, and below the cap within 10 s.
        for i in 1..=3 {
            let at = t0 + Duration::from_secs(2 * i);
            queue.advance(100, at, &LIMITS);
            assert_eq!(queue.check(at, &LIMITS), Ok(()), "at {i}");
        }
        assert_eq!(queue.len(), 50);
        assert_eq!(queue.check(t0 + Duration::from_secs(15), &LIMITS), Ok(()), "under the cap; progress at 6 s");
    }

    #[test]
    fn a_peer_that_makes_no_progress_is_cut_at_the_stall_timeout() {
        let t0 = Instant::now();
        let mut queue = OutboundQueue::default();
        queue.push(bytes(10), t0, &LIMITS).unwrap();
        assert_eq!(queue.deadline(&LIMITS), Some(t0 + LIMITS.stall_timeout));
        // More bytes do not count as progress.
        queue.push(bytes(10), t0 + Duration::from_secs(5), &LIMITS).unwrap();
        assert_eq!(queue.check(t0 + Duration::from_millis(9_999), &LIMITS), Ok(()));
        assert_eq!(
            queue.check(t0 + LIMITS.stall_timeout, &LIMITS),
            Err(DisconnectReason::WriteStall(LIMITS.stall_timeout))
        );
    }

    #[test]
    fn a_peer_above_the_cap_for_the_stall_timeout_is_cut_though_it_reads() {
        let t0 = Instant::now();
        let mut queue = OutboundQueue::default();
        queue.push(bytes(150), t0, &LIMITS).unwrap();
        // It reads 10 bytes a second and is sent 10: progress, but never back under the cap.
        for i in 1..10 {
            let at = t0 + Duration::from_secs(i);
            queue.advance(10, at, &LIMITS);
            queue.push(bytes(10), at, &LIMITS).unwrap();
            assert_eq!(queue.check(at, &LIMITS), Ok(()));
        }
        let at = t0 + LIMITS.stall_timeout;
        assert_eq!(queue.deadline(&LIMITS), Some(at));
        assert_eq!(queue.check(at, &LIMITS), Err(DisconnectReason::OutboundBacklog { queued: 150, limit: 100 }));
    }

    #[test]
    fn back_under_the_cap_the_over_cap_timer_starts_again() {
        let t0 = Instant::now();
        let mut queue = OutboundQueue::default();
        queue.push(bytes(150), t0, &LIMITS).unwrap();
        queue.advance(60, t0 + Duration::from_secs(8), &LIMITS);
        let t9 = t0 + Duration::from_secs(9);
        queue.push(bytes(20), t9, &LIMITS).unwrap();
        assert_eq!(
            queue.deadline(&LIMITS),
            Some(t0 + Duration::from_secs(18)),
            "progress at 8 s; over the cap since 9 s"
        );
        assert_eq!(queue.check(t0 + Duration::from_secs(17), &LIMITS), Ok(()));
    }

    #[test]
    fn a_flush_past_the_ceiling_closes_at_once_and_appends_nothing() {
        let t0 = Instant::now();
        let mut queue = OutboundQueue::default();
        queue.push(bytes(300), t0, &LIMITS).unwrap();
        assert_eq!(
            queue.push(bytes(101), t0, &LIMITS),
            Err(DisconnectReason::OutboundBacklog { queued: 401, limit: 100 })
        );
        assert_eq!(queue.len(), 300);
        queue.push(bytes(100), t0, &LIMITS).unwrap();
    }

    #[test]
    fn an_empty_queue_has_no_deadline_and_a_new_wait_starts_when_bytes_come() {
        let t0 = Instant::now();
        let mut queue = OutboundQueue::default();
        assert_eq!(queue.deadline(&LIMITS), None);
        queue.push(bytes(10), t0, &LIMITS).unwrap();
        queue.advance(10, t0, &LIMITS);
        assert_eq!(queue.deadline(&LIMITS), None);
        // An hour later: the old progress does not count against the new bytes.
        let later = t0 + Duration::from_secs(3600);
        queue.push(bytes(10), later, &LIMITS).unwrap();
        assert_eq!(queue.check(later, &LIMITS), Ok(()));
        assert_eq!(queue.deadline(&LIMITS), Some(later + LIMITS.stall_timeout));
    }

    #[test]
    fn the_total_counts_every_queue_through_pushes_writes_clears_and_drops() {
        let t0 = Instant::now();
        let total = Arc::new(TotalBacklog::default());
        let roomy = BacklogLimits { cap: 1 << 20, ..LIMITS };
        let mut a = OutboundQueue::new(total.clone());
        let mut b = OutboundQueue::new(total.clone());
        a.push(bytes(300), t0, &roomy).unwrap();
        b.push(bytes(200), t0, &roomy).unwrap();
        assert_eq!(total.bytes(), 500);
        a.advance(120, t0, &roomy);
        assert_eq!(total.bytes(), 380);
        // A push refused at the ceiling adds nothing.
        assert!(b.push(bytes(1 << 23), t0, &roomy).is_err());
        assert_eq!(total.bytes(), 380);
        b.clear();
        assert_eq!(total.bytes(), 180);
        drop(a);
        assert_eq!(total.bytes(), 0, "a queue dropped with bytes in it gives them back");
        assert_eq!(total.peak(), 500);
    }

    fn waiting(key: u32, queued: usize, stalled_s: u64, now: Instant) -> Waiting<u32> {
        Waiting { key, queued, last_progress: now - Duration::from_secs(stalled_s) }
    }

    #[test]
    fn within_the_budget_nobody_is_cut() {
        let now = Instant::now() + Duration::from_secs(60);
        let mut peers = [waiting(1, 900, 9, now), waiting(2, 100, 0, now)];
        assert_eq!(over_budget(&mut peers, 1000, 1000), Vec::<u32>::new());
    }

    #[test]
    fn over_the_budget_the_largest_backlogs_go_first_and_only_as_many_as_it_takes() {
        let now = Instant::now() + Duration::from_secs(60);
        // A healthy reader's moment of backlog (5), a slow reader (300), two non-readers (500).
        let mut peers =
            [waiting(1, 5, 0, now), waiting(2, 500, 8, now), waiting(3, 300, 2, now), waiting(4, 500, 9, now)];
        // 1,305 waiting against 900: cutting one non-reader leaves 805.
        assert_eq!(over_budget(&mut peers, 1305, 900), [4], "the longer stalled of the two largest");
        // Against 400: both non-readers (305 left).
        assert_eq!(over_budget(&mut peers, 1305, 400), [4, 2]);
        // Against 5: everyone but the healthy reader, whose 5 fit.
        assert_eq!(over_budget(&mut peers, 1305, 5), [4, 2, 3]);
    }

    #[test]
    fn bytes_that_cannot_be_cut_now_count_in_the_total() {
        let now = Instant::now() + Duration::from_secs(60);
        // 700 of the 1,000 belong to peers already being cut: 300 listed.
        let mut peers = [waiting(1, 200, 1, now), waiting(2, 100, 1, now)];
        assert_eq!(over_budget(&mut peers, 1000, 900), [1]);
        assert_eq!(over_budget(&mut peers, 1000, 500), [1, 2], "everyone listed, though the sum stays over");
    }

    #[test]
    fn a_write_takes_at_most_the_slice_limit_of_chunks() {
        let t0 = Instant::now();
        let mut queue = OutboundQueue::default();
        for _ in 0..MAX_WRITE_SLICES + 10 {
            queue.push(Bytes::from_static(b"x"), t0, &LIMITS).unwrap();
        }
        let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
        assert_eq!(queue.slices(&mut slices), MAX_WRITE_SLICES);
        queue.clear();
        assert!(queue.is_empty());
    }
}
