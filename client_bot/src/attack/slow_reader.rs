//! `slow-reader`: does chat at the limits cut a member on a thin link? One member reads at a
//! capped rate (a token bucket on its reading side) while chatters send long lines as fast as
//! they may.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::client::{self, Behaviour, Shared};
use super::{ServerRss, Target, count_ends};

/// How long the clients may take to connect and enter.
const ENTER_TIMEOUT: Duration = Duration::from_secs(30);

/// What a `slow-reader` run does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowReaderPlan {
    /// Clients that chat (and read as fast as they can).
    pub chatters: u32,
    /// Lines per second each chatter sends.
    pub chat_rate: f64,
    /// Characters per line.
    pub line_chars: u32,
    /// The character lines are made of.
    pub line_char: char,
    /// The slow member's read rate, bits per second.
    pub read_rate_bps: u64,
    /// How long the chat goes on.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
}

/// What a `slow-reader` run found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowReaderReport {
    /// The plan.
    pub params: SlowReaderPlan,
    /// Whether the slow reader was still connected at the end.
    pub slow_reader_connected_at_end: bool,
    /// How its connection ended, if it did.
    pub slow_reader_ended: Option<String>,
    /// Seconds from the start of the chat until it learnt it was cut.
    pub slow_reader_cut_after_s: Option<f64>,
    /// Bytes it read.
    pub slow_reader_bytes_read: u64,
    /// Its read rate while it was connected, bits per second.
    pub slow_reader_read_bps: f64,
    /// Chat lines it read.
    pub slow_reader_lines: u64,
    /// Chatters that entered.
    pub chatters_entered: u32,
    /// Chatters still connected at the end.
    pub chatters_connected_at_end: u32,
    /// How the others ended.
    pub chatters_ended: BTreeMap<String, u64>,
    /// Lines the chatters sent.
    pub lines_sent: u64,
    /// What the chatters' lines would be on the slow reader's link had the server relayed them
    /// all, bits per second (`S_Chat` bytes × lines per second).
    pub offered_bps: f64,
    /// Seconds the chat went on.
    pub duration_s: f64,
    /// The server's resident memory, with `--server-pid`.
    pub server_rss: Option<ServerRss>,
    /// The slow reader survives.
    pub target: Target,
}

/// Runs it.
pub fn run(addr: SocketAddr, plan: &SlowReaderPlan) -> Result<SlowReaderReport, String> {
    let shared = Arc::new(Shared::default());
    let line = client::chat_line(plan.line_char, plan.line_chars)?;
    let relayed_bytes =
        shared::wire_len(&shared::S_Chat { player_id: 0, chat: line.chat.clone() }).map_err(|e| e.to_string())?;
    let line = Arc::new(client::encode_all([line])?);

    let slow_in = Arc::new(AtomicU32::new(0));
    let slow = {
        let (shared, entered) = (shared.clone(), slow_in.clone());
        let b = Behaviour {
            read_rate: Some(plan.read_rate_bps as f64 / 8.0),
            entered: Some(entered),
            ..Behaviour::default()
        };
        std::thread::spawn(move || client::run(addr, &b, &shared))
    };
    if !client::wait_for(&slow_in, 1, ENTER_TIMEOUT) {
        shared.stop.store(true, Ordering::Relaxed);
        let outcome = slow.join().map_err(|_| "the slow reader's thread panicked")?;
        let why = outcome.ended.map_or("it did not enter".into(), |e| e.how);
        return Err(format!("the slow reader could not join: {why}"));
    }
    let chatters_in = Arc::new(AtomicU32::new(0));
    let start = Instant::now();
    let chatters: Vec<_> = (0..plan.chatters)
        .map(|i| {
            let shared = shared.clone();
            let b = Behaviour {
                index: i + 1,
                chat: Some((line.clone(), plan.chat_rate)),
                entered: Some(chatters_in.clone()),
                ..Behaviour::default()
            };
            std::thread::spawn(move || client::run(addr, &b, &shared))
        })
        .collect();
    if !client::wait_for(&chatters_in, plan.chatters, ENTER_TIMEOUT) {
        tracing::warn!("only {} of {} chatters entered", chatters_in.load(Ordering::Relaxed), plan.chatters);
    }
    tracing::info!("{} chatters at {} lines/s each", chatters_in.load(Ordering::Relaxed), plan.chat_rate);
    std::thread::sleep(plan.duration.saturating_sub(start.elapsed()));
    shared.stop.store(true, Ordering::Relaxed);
    let end = Instant::now();
    let slow = slow.join().map_err(|_| "the slow reader's thread panicked")?;
    let chatters = chatters
        .into_iter()
        .map(|h| h.join().map_err(|_| "a chatter's thread panicked"))
        .collect::<Result<Vec<_>, _>>()?;

    let duration_s = end.duration_since(start).as_secs_f64();
    let survived = slow.ended.is_none();
    let cut_after_s = slow.ended.as_ref().map(|e| e.at.saturating_duration_since(start).as_secs_f64());
    let connected_s = cut_after_s.unwrap_or(duration_s);
    Ok(SlowReaderReport {
        params: plan.clone(),
        slow_reader_connected_at_end: survived,
        slow_reader_ended: slow.ended.as_ref().map(|e| e.how.clone()),
        slow_reader_cut_after_s: cut_after_s,
        slow_reader_bytes_read: slow.bytes_read,
        slow_reader_read_bps: slow.bytes_read as f64 * 8.0 / connected_s.max(1e-3),
        slow_reader_lines: slow.chat_received,
        chatters_entered: chatters.iter().filter(|c| c.entered).count() as u32,
        chatters_connected_at_end: chatters.iter().filter(|c| c.connected && c.ended.is_none()).count() as u32,
        chatters_ended: count_ends(chatters.iter().map(|c| &c.ended)),
        lines_sent: chatters.iter().map(|c| c.lines_sent).sum(),
        offered_bps: f64::from(plan.chatters) * plan.chat_rate * relayed_bytes as f64 * 8.0,
        duration_s,
        server_rss: None,
        target: Target { what: "the rate-capped reader stays connected".into(), met: Some(survived) },
    })
}
