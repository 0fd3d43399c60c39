//! `non-readers`: can clients that never read pin the host's memory? Connections that never
//! read sit in the room (the server sends them every mover's moves) until the server cuts them;
//! the host's TCP memory (`/proc/net/sockstat`) is sampled every second from before the attack
//! until `settle` after the last one was cut.
//!
//! A non-reader never calls `read`, so a cut is noticed without one: a reset shows as the
//! socket's pending error (`SO_ERROR`, ECONNRESET), a graceful close as the connection leaving
//! ESTABLISHED in `/proc/net/tcp`. A reset can also be lost: sent into a zero window at a sequence
//! number the client's kernel no longer accepts, it is dropped there, and the connection looks
//! open from this end forever. When the server runs on this host, a non-reader whose server end
//! is gone from `/proc/net/tcp` counts as reset too. A non-reader found cut is closed at once: on loopback its own
//! receive buffer is the host's memory too, and an attacker gains nothing by keeping it.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::client::{self, Behaviour, Shared};
use super::procfs::{self, SockStat, TCP_ESTABLISHED};
use super::{ServerRss, Target, count_ends, rtt_summary};
use crate::RttMs;

/// How often the non-readers are checked for a cut.
const POLL: Duration = Duration::from_millis(100);

/// Every how many polls the connection table is read.
const STATES_EVERY: u32 = 5;

/// How often the host's TCP memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Bytes in a megabyte, as the targets count them.
const MB: f64 = 1e6;

/// What a `non-readers` run does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NonReadersPlan {
    /// Connections that never read.
    pub non_readers: u32,
    /// Connections that move and read: the traffic the non-readers are sent.
    pub movers: u32,
    /// How often movers move.
    #[serde(with = "humantime_serde")]
    pub move_interval: Duration,
    /// The longest the attack waits for every non-reader to be cut.
    #[serde(with = "humantime_serde")]
    pub max_duration: Duration,
    /// Sampling after the last cut.
    #[serde(with = "humantime_serde")]
    pub settle: Duration,
    /// Sampling before anything connects: the baseline is its median.
    #[serde(with = "humantime_serde")]
    pub baseline: Duration,
    /// The non-readers' `SO_RCVBUF`, when set.
    pub rcvbuf: Option<usize>,
    /// When set, each non-reader sends a `C_Ping` this often (and still reads nothing): a
    /// non-reader that is not silent.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Option<Duration>,
}

/// One sample of the host's TCP state.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds from the first sample.
    pub t_s: f64,
    /// TCP memory, MB.
    pub tcp_mem_mb: f64,
    /// `/proc/net/sockstat` as read.
    #[serde(flatten)]
    pub stat: SockStat,
    /// Non-readers not yet cut.
    pub non_readers_open: u32,
    /// The server's resident memory, MB, with `--server-pid`.
    pub server_rss_mb: Option<f64>,
    /// TCP buffers of the server's side of the connections to its port, MB (from `ss`): what
    /// the server's host would hold were the clients elsewhere.
    pub server_side_mb: Option<f64>,
    /// The same for the clients' side (non-readers and movers): on loopback, the same host.
    pub clients_side_mb: Option<f64>,
}

/// What a `non-readers` run found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NonReadersReport {
    /// The plan.
    pub params: NonReadersPlan,
    /// Non-readers connected.
    pub non_readers_connected: u32,
    /// Non-reader connection attempts that failed.
    pub connect_failures: u32,
    /// Non-readers cut by the server, by how the cut was seen ("reset", "closed (state …)").
    pub cut: BTreeMap<String, u64>,
    /// Non-readers still connected when the run gave up (`max_duration`) and closed them.
    pub not_cut: u32,
    /// Movers that entered.
    pub movers_entered: u32,
    /// Movers still connected when the attack ended.
    pub movers_connected_at_end: u32,
    /// How the movers that did not last ended.
    pub movers_ended: BTreeMap<String, u64>,
    /// Movers' move → own echo during the attack, ms: a healthy client's round trip.
    pub movers_rtt_ms: RttMs,
    /// The same from the moment the last non-reader connected on: the cost of the non-readers
    /// themselves and of cutting them, without the storm of joins (each join is announced to
    /// the whole room, the course's behaviour) that comes before.
    pub movers_rtt_after_connect_ms: RttMs,
    /// Seconds (from the first sample) when the slowest echo came: which phase it fell in.
    pub movers_rtt_max_at_s: Option<f64>,
    /// Seconds (from the first sample) when the last non-reader had connected.
    pub all_connected_s: f64,
    /// Seconds (from the first sample) when the non-readers started connecting.
    pub attack_started_s: f64,
    /// Seconds when the first and the last non-reader was seen cut.
    pub first_cut_s: Option<f64>,
    /// See `first_cut_s`.
    pub last_cut_s: Option<f64>,
    /// Seconds when the run gave up waiting (`max_duration`) and closed the non-readers not cut
    /// itself.
    pub gave_up_s: Option<f64>,
    /// The host's TCP memory before the attack (median of the baseline samples), MB.
    pub baseline_mb: f64,
    /// The highest sample, MB.
    pub peak_mb: f64,
    /// `peak_mb − baseline_mb`.
    pub peak_over_baseline_mb: f64,
    /// The highest `server_side_mb` of a sample: the server's own sockets' buffers.
    pub peak_server_side_mb: Option<f64>,
    /// The highest `clients_side_mb` of a sample.
    pub peak_clients_side_mb: Option<f64>,
    /// The most TCP sockets in use at once.
    pub peak_tcp_inuse: u64,
    /// The most orphaned TCP sockets (closed, still held by the kernel) at once.
    pub peak_tcp_orphan: u64,
    /// The last sample, MB.
    pub end_mb: f64,
    /// "Back at the baseline": within 10% of it, or within the kernel's per-CPU slack in
    /// counting TCP memory (`net.core.mem_pcpu_rsv` pages per CPU), whichever is more, MB.
    pub tolerance_mb: f64,
    /// Seconds from the last cut (or from `gave_up_s`, if the run gave up) to the first sample
    /// back at the baseline; `None` if none was.
    pub released_after_s: Option<f64>,
    /// Every sample.
    pub samples: Vec<Sample>,
    /// The host's page size, bytes.
    pub page_size: u64,
    /// The server's resident memory, with `--server-pid`.
    pub server_rss: Option<ServerRss>,
    /// Every non-reader cut; the server's sockets under 300 MB at the peak; the host back to its
    /// baseline within 15 s.
    pub target: Target,
}

/// Seconds from `last_cut_s` until the first sample at or after it whose TCP memory is within
/// `tolerance_mb` of `baseline_mb`.
pub fn release_after(samples: &[Sample], last_cut_s: f64, baseline_mb: f64, tolerance_mb: f64) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.t_s >= last_cut_s && s.tcp_mem_mb <= baseline_mb + tolerance_mb)
        .map(|s| s.t_s - last_cut_s)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

struct NonReader {
    stream: Option<TcpStream>,
    port: u16,
    /// An error a ping's write returned (it clears the socket's pending error).
    error: Option<String>,
}

/// How a non-reader's cut shows in an error.
fn how(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::ConnectionReset { "reset".into() } else { e.to_string() }
}

/// Runs it.
pub fn run(addr: SocketAddr, plan: &NonReadersPlan, server_pid: Option<u32>) -> Result<NonReadersReport, String> {
    let page = procfs::page_size();
    let t0 = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let sample = |open: u32, samples: &mut Vec<Sample>| -> Result<(), String> {
        let stat = procfs::sockstat().ok_or("cannot read /proc/net/sockstat")?;
        let tcp_mem_mb = (stat.tcp_mem_pages * page) as f64 / MB;
        let server_rss_mb = server_pid.and_then(crate::bench::rss_kib).map(|kib| kib as f64 * 1024.0 / MB);
        let sides = procfs::ss_memory(addr.port());
        samples.push(Sample {
            t_s: t0.elapsed().as_secs_f64(),
            tcp_mem_mb,
            stat,
            non_readers_open: open,
            server_rss_mb,
            server_side_mb: sides.map(|s| s.server as f64 / MB),
            clients_side_mb: sides.map(|s| s.clients as f64 / MB),
        });
        Ok(())
    };

    // The baseline.
    let baseline_samples = plan.baseline.as_secs().max(1);
    for i in 0..baseline_samples {
        if i > 0 {
            std::thread::sleep(SAMPLE_EVERY);
        }
        sample(0, &mut samples)?;
    }
    let baseline_mb = median(samples.iter().map(|s| s.tcp_mem_mb).collect());
    let mut next_sample = Instant::now() + SAMPLE_EVERY;

    // The movers, then the non-readers.
    let shared = Arc::new(Shared::default());
    let movers_in = Arc::new(AtomicU32::new(0));
    let movers: Vec<_> = (0..plan.movers)
        .map(|index| {
            let shared = shared.clone();
            let b = Behaviour {
                index,
                move_interval: Some(plan.move_interval),
                entered: Some(movers_in.clone()),
                ..Behaviour::default()
            };
            std::thread::spawn(move || client::run(addr, &b, &shared))
        })
        .collect();
    if !client::wait_for(&movers_in, plan.movers, Duration::from_secs(30)) {
        tracing::warn!("only {} of {} movers entered", movers_in.load(Ordering::Relaxed), plan.movers);
    }
    let attack_started = Instant::now();
    let mut non_readers = Vec::with_capacity(plan.non_readers as usize);
    let mut connect_failures = 0;
    for _ in 0..plan.non_readers {
        match client::connect(addr, plan.rcvbuf).and_then(|s| Ok((s.local_addr()?.port(), s))) {
            Ok((port, stream)) => non_readers.push(NonReader { stream: Some(stream), port, error: None }),
            Err(e) => {
                connect_failures += 1;
                if connect_failures <= 3 {
                    tracing::warn!(error = %e, "a non-reader could not connect");
                }
            }
        }
        if Instant::now() >= next_sample {
            sample(non_readers.len() as u32, &mut samples)?;
            next_sample += SAMPLE_EVERY;
        }
    }
    let connected = non_readers.len() as u32;
    let all_connected = Instant::now();
    tracing::info!("{connected} non-readers connected; waiting for the server to cut them");

    let mut cut: BTreeMap<String, u64> = BTreeMap::new();
    let (mut first_cut, mut last_cut) = (None, None);
    let mut open = connected;
    // When the attack ended (every non-reader cut, or the run gave up), and when it gave up.
    let mut ended_at = None;
    let (mut not_cut, mut gave_up) = (0, None);
    let mut polls = 0u32;
    let ping = client::encode_all([shared::C_Ping { client_time: 0 }])?;
    let mut next_ping = plan.ping_interval.map(|every| Instant::now() + every);
    loop {
        let now = Instant::now();
        if let (Some(at), Some(every)) = (next_ping, plan.ping_interval)
            && at <= now
        {
            // 12 bytes towards a server that reads: the write never waits. A failed one is a
            // cut, found below.
            for nr in &mut non_readers {
                if let Some(stream) = &nr.stream
                    && let Err(e) = (&*stream).write(&ping)
                {
                    // The write took the socket's pending error: keep it for the check below.
                    nr.error = Some(how(&e));
                }
            }
            next_ping = Some(at + every);
        }
        if open > 0 {
            // Resets show in each socket's pending error at once; the connection table (for a
            // graceful close) is read less often: it lists every TCP socket of the host.
            polls += 1;
            let table = polls.is_multiple_of(STATES_EVERY).then(|| procfs::tcp_table(addr.port()));
            for nr in &mut non_readers {
                let Some(stream) = &nr.stream else { continue };
                let seen = match nr.error.take() {
                    Some(how) => Some(how),
                    None => stream.take_error().ok().flatten().map(|e| how(&e)),
                };
                let how = seen.or_else(|| {
                    let table = table.as_ref()?;
                    match table.clients.get(&nr.port) {
                        // A reset whose sequence number is outside a zero window is dropped by
                        // this end's kernel (RFC 5961): the connection looks open here although
                        // the server has closed its end and freed its buffers.
                        Some(&TCP_ESTABLISHED) if table.listening && !table.server_peers.contains(&nr.port) => {
                            Some("reset (not seen by this end)".to_string())
                        }
                        Some(&TCP_ESTABLISHED) => None,
                        Some(state) => Some(format!("closed (state {state:02X})")),
                        None => Some("closed".to_string()),
                    }
                });
                if let Some(how) = how {
                    nr.stream = None;
                    open -= 1;
                    *cut.entry(how).or_default() += 1;
                    let t = now.duration_since(t0).as_secs_f64();
                    first_cut.get_or_insert(t);
                    last_cut = Some(t);
                }
            }
            if open == 0 {
                // The attack is over: the movers leave too, so the release is measured back to
                // the host without any of this run's connections.
                shared.stop.store(true, Ordering::Relaxed);
                ended_at = Some(now);
                tracing::info!("every non-reader was cut; sampling for {:?}", plan.settle);
            }
        }
        if open > 0 && now.duration_since(attack_started) >= plan.max_duration {
            // Close the rest ourselves and keep sampling: what the host gives back then is the
            // release an operator would see after killing the attacker.
            tracing::warn!("{open} non-readers still connected after {:?}; closing them", plan.max_duration);
            for nr in &mut non_readers {
                nr.stream = None;
            }
            (not_cut, open) = (open, 0);
            gave_up = Some(now.duration_since(t0).as_secs_f64());
            shared.stop.store(true, Ordering::Relaxed);
            ended_at = Some(now);
        }
        if now >= next_sample {
            sample(open, &mut samples)?;
            next_sample += SAMPLE_EVERY;
        }
        if ended_at.is_some_and(|at| now >= at + plan.settle) {
            break;
        }
        std::thread::sleep(POLL.min(next_sample.saturating_duration_since(Instant::now())));
    }
    drop(non_readers);
    let movers =
        movers.into_iter().map(|h| h.join().map_err(|_| "a mover's thread panicked")).collect::<Result<Vec<_>, _>>()?;

    let peak_mb = samples.iter().map(|s| s.tcp_mem_mb).fold(baseline_mb, f64::max);
    let tolerance_mb = (baseline_mb * 0.1).max((procfs::pcpu_slack_pages() * page) as f64 / MB);
    let released_after_s = gave_up.or(last_cut).and_then(|t| release_after(&samples, t, baseline_mb, tolerance_mb));
    let peak_over_baseline_mb = peak_mb - baseline_mb;
    let peak_server_side_mb = samples.iter().filter_map(|s| s.server_side_mb).reduce(f64::max);
    // The server answers for its own sockets' buffers; on loopback the attacker's receive
    // buffers are on the same host, but on the internet they are on the attacker's machine.
    // Without `ss` the whole host's figure stands in for the server's.
    let server_peak_mb = peak_server_side_mb.unwrap_or(peak_over_baseline_mb);
    let met = not_cut == 0 && connected > 0 && server_peak_mb < 300.0 && released_after_s.is_some_and(|s| s <= 15.0);
    Ok(NonReadersReport {
        params: plan.clone(),
        non_readers_connected: connected,
        connect_failures,
        cut,
        not_cut,
        movers_entered: movers.iter().filter(|m| m.entered).count() as u32,
        movers_connected_at_end: movers.iter().filter(|m| m.connected && m.ended.is_none()).count() as u32,
        movers_ended: count_ends(movers.iter().map(|m| &m.ended)),
        movers_rtt_ms: rtt_summary(movers.iter().flat_map(|m| m.echoes.iter().map(|(_, ms)| *ms))),
        movers_rtt_after_connect_ms: rtt_summary(
            movers.iter().flat_map(|m| m.echoes.iter().filter(|(at, _)| *at >= all_connected).map(|(_, ms)| *ms)),
        ),
        movers_rtt_max_at_s: movers
            .iter()
            .flat_map(|m| m.echoes.iter())
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(at, _)| at.saturating_duration_since(t0).as_secs_f64()),
        all_connected_s: all_connected.duration_since(t0).as_secs_f64(),
        attack_started_s: attack_started.duration_since(t0).as_secs_f64(),
        first_cut_s: first_cut,
        last_cut_s: last_cut,
        gave_up_s: gave_up,
        baseline_mb,
        peak_mb,
        peak_over_baseline_mb,
        peak_server_side_mb,
        peak_clients_side_mb: samples.iter().filter_map(|s| s.clients_side_mb).reduce(f64::max),
        peak_tcp_inuse: samples.iter().map(|s| s.stat.tcp_inuse).max().unwrap_or(0),
        peak_tcp_orphan: samples.iter().map(|s| s.stat.tcp_orphan).max().unwrap_or(0),
        end_mb: samples.last().map_or(0.0, |s| s.tcp_mem_mb),
        tolerance_mb,
        released_after_s,
        samples,
        page_size: page,
        server_rss: None,
        target: Target {
            what: "every non-reader cut; the server's sockets hold under 300 MB of TCP memory at the peak; the host's TCP memory back to its baseline within 15 s of the last cut".into(),
            met: Some(met),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t_s: f64, tcp_mem_mb: f64) -> Sample {
        Sample {
            t_s,
            tcp_mem_mb,
            stat: SockStat::default(),
            non_readers_open: 0,
            server_rss_mb: None,
            server_side_mb: None,
            clients_side_mb: None,
        }
    }

    #[test]
    fn the_release_is_the_first_sample_after_the_last_cut_back_near_the_baseline() {
        let samples = [at(0.0, 1.0), at(1.0, 250.0), at(2.0, 260.0), at(3.0, 40.0), at(4.0, 1.05), at(5.0, 1.0)];
        // Cut at 2.5 s; back within 0.1 MB of 1 MB at 4 s.
        assert_eq!(release_after(&samples, 2.5, 1.0, 0.1), Some(1.5));
        // A sample before the last cut does not count, however low.
        assert_eq!(release_after(&samples, 4.5, 1.0, 0.1), Some(0.5));
        // Never back: none.
        assert_eq!(release_after(&samples[..4], 2.5, 1.0, 0.1), None);
        // A larger tolerance is reached sooner.
        assert_eq!(release_after(&samples, 2.5, 1.0, 50.0), Some(0.5));
    }

    #[test]
    fn the_baseline_is_a_median() {
        assert_eq!(median(vec![3.0, 1.0, 200.0]), 3.0);
        assert_eq!(median(vec![]), 0.0);
    }
}
