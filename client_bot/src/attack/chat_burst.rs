//! `chat-burst`: can legal chat empty a room? Members read and move; then bursters each write a
//! whole burst of long chat lines at once (within the packet rate limit's burst of 200), all in
//! the same few milliseconds, so one server frame fans all of it out to every member.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::client::{self, Behaviour, Shared};
use super::{ServerRss, Target, count_ends, rtt_summary};
use crate::RttMs;

/// How long members and bursters may take to connect and enter.
const ENTER_TIMEOUT: Duration = Duration::from_secs(30);

/// What a `chat-burst` run does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatBurstPlan {
    /// Members: they move every `move_interval`, time their echoes, and read everything.
    pub members: u32,
    /// Bursters: each writes `lines` chat lines in one write, then stays (and reads).
    pub bursters: u32,
    /// Lines per burst.
    pub lines: u32,
    /// Characters per line.
    pub line_chars: u32,
    /// The character lines are made of.
    pub line_char: char,
    /// How often members move.
    #[serde(with = "humantime_serde")]
    pub move_interval: Duration,
    /// Moving before the burst: the round trip without it.
    #[serde(with = "humantime_serde")]
    pub warmup: Duration,
    /// How long the run goes on after the burst: long enough for the server's backlog rule
    /// (above the cap for `write_stall_timeout`, 10 s by default) to have cut anyone it would.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
}

/// What a `chat-burst` run found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatBurstReport {
    /// The plan.
    pub params: ChatBurstPlan,
    /// Members that entered the room.
    pub members_entered: u32,
    /// Members still connected at the end.
    pub members_connected_at_end: u32,
    /// How the others' connections ended ("reset", "closed", …).
    pub members_ended: BTreeMap<String, u64>,
    /// Seconds from the burst until each member that was cut learnt it.
    pub members_cut_after_s: Vec<f64>,
    /// Bursters that entered.
    pub bursters_entered: u32,
    /// Bursters still connected at the end.
    pub bursters_connected_at_end: u32,
    /// Lines the bursters wrote.
    pub lines_sent: u64,
    /// Bytes of the bursts, all bursters together.
    pub burst_bytes: u64,
    /// `S_Chat` lines the members read, all together.
    pub lines_relayed_to_members: u64,
    /// Lines each member would have read had every line reached it.
    pub lines_per_member_if_all_relayed: u64,
    /// The fewest lines a member read.
    pub lines_relayed_min_per_member: u64,
    /// Members' move → own echo from the burst to the end, ms (all 0 with a count of 0 when no
    /// member was left to echo).
    pub rtt_ms: RttMs,
    /// The same before the burst.
    pub rtt_before_burst_ms: RttMs,
    /// Members' moves never echoed.
    pub echo_lost: u64,
    /// Seconds from the burst to the end.
    pub duration_s: f64,
    /// The server's resident memory, with `--server-pid`.
    pub server_rss: Option<ServerRss>,
    /// Every reading member stays connected, its echo p99 under 50 ms.
    pub target: Target,
}

/// Runs it.
pub fn run(addr: SocketAddr, plan: &ChatBurstPlan) -> Result<ChatBurstReport, String> {
    let shared = Arc::new(Shared::default());
    let members_in = Arc::new(AtomicU32::new(0));
    let bursters_in = Arc::new(AtomicU32::new(0));
    let line = client::chat_line(plan.line_char, plan.line_chars)?;
    let burst = Arc::new(client::encode_all(std::iter::repeat_n(line, plan.lines as usize))?);

    let spawn = |b: Behaviour| {
        let shared = shared.clone();
        std::thread::spawn(move || client::run(addr, &b, &shared))
    };
    let members: Vec<_> = (0..plan.members)
        .map(|index| {
            spawn(Behaviour {
                index,
                move_interval: Some(plan.move_interval),
                entered: Some(members_in.clone()),
                ..Behaviour::default()
            })
        })
        .collect();
    if !client::wait_for(&members_in, plan.members, ENTER_TIMEOUT) {
        tracing::warn!("only {} of {} members entered", members_in.load(Ordering::Relaxed), plan.members);
    }
    std::thread::sleep(plan.warmup);

    let bursters: Vec<_> = (0..plan.bursters)
        .map(|i| {
            spawn(Behaviour {
                index: plan.members + i,
                burst: Some(burst.clone()),
                entered: Some(bursters_in.clone()),
                ..Behaviour::default()
            })
        })
        .collect();
    if !client::wait_for(&bursters_in, plan.bursters, ENTER_TIMEOUT) {
        tracing::warn!("only {} of {} bursters entered", bursters_in.load(Ordering::Relaxed), plan.bursters);
    }
    tracing::info!(
        "{} members in; {} bursters fire {} lines ({} bytes) each",
        members_in.load(Ordering::Relaxed),
        bursters_in.load(Ordering::Relaxed),
        plan.lines,
        burst.len()
    );
    let burst_at = Instant::now();
    shared.fire.store(true, Ordering::Relaxed);
    std::thread::sleep(plan.duration);
    shared.stop.store(true, Ordering::Relaxed);
    let end = Instant::now();

    let join = |h: std::thread::JoinHandle<client::Outcome>| h.join().map_err(|_| "a client thread panicked");
    let members = members.into_iter().map(join).collect::<Result<Vec<_>, _>>()?;
    let bursters = bursters.into_iter().map(join).collect::<Result<Vec<_>, _>>()?;

    let echoes = || members.iter().flat_map(|m| m.echoes.iter());
    let rtt_ms = rtt_summary(echoes().filter(|(sent, _)| *sent >= burst_at).map(|(_, ms)| *ms));
    let connected = members.iter().filter(|m| m.connected && m.ended.is_none()).count() as u32;
    // No echo after the burst (every member cut) is no evidence of a fast one.
    let target_met = connected == plan.members && rtt_ms.count > 0 && rtt_ms.p99 < 50.0;
    Ok(ChatBurstReport {
        params: plan.clone(),
        members_entered: members.iter().filter(|m| m.entered).count() as u32,
        members_connected_at_end: connected,
        members_ended: count_ends(members.iter().map(|m| &m.ended)),
        members_cut_after_s: members
            .iter()
            .filter_map(|m| Some(m.ended.as_ref()?.at.saturating_duration_since(burst_at).as_secs_f64()))
            .collect(),
        bursters_entered: bursters.iter().filter(|b| b.entered).count() as u32,
        bursters_connected_at_end: bursters.iter().filter(|b| b.connected && b.ended.is_none()).count() as u32,
        lines_sent: bursters.iter().filter(|b| b.burst_bytes > 0).count() as u64 * u64::from(plan.lines),
        burst_bytes: bursters.iter().map(|b| b.burst_bytes).sum(),
        lines_relayed_to_members: members.iter().map(|m| m.chat_received).sum(),
        lines_per_member_if_all_relayed: u64::from(plan.bursters) * u64::from(plan.lines),
        lines_relayed_min_per_member: members.iter().map(|m| m.chat_received).min().unwrap_or(0),
        rtt_ms,
        rtt_before_burst_ms: rtt_summary(echoes().filter(|(sent, _)| *sent < burst_at).map(|(_, ms)| *ms)),
        echo_lost: members.iter().map(|m| m.echo_lost).sum(),
        duration_s: end.duration_since(burst_at).as_secs_f64(),
        server_rss: None,
        target: Target {
            what: "every reading member stays connected, its move echo p99 under 50 ms".into(),
            met: Some(target_met),
        },
    })
}
