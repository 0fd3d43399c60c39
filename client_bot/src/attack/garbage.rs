//! `garbage`: can junk fill the server's log? Connections write random bytes until the server
//! closes them, then reconnect, for the whole run. The log is counted by the operator (the
//! server's stderr lines); this counts the connections.

use std::io::{ErrorKind, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use super::client;
use super::{ServerRss, Target};

/// A failed connection attempt waits this long before the next, so a refusing server is not
/// hammered by a spinning loop (its refusals are what is being measured, not our CPU).
const RETRY_AFTER: Duration = Duration::from_millis(20);

/// What a `garbage` run does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GarbagePlan {
    /// Connections at once, each on its own thread.
    pub connections: u32,
    /// Bytes per write.
    pub chunk: usize,
    /// How long.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// Seed of the bytes: the same seed sends the same garbage.
    pub seed: u64,
}

/// What a `garbage` run found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GarbageReport {
    /// The plan.
    pub params: GarbagePlan,
    /// Connections opened.
    pub connections_made: u64,
    /// Of those, closed by the server (a write failed: reset, broken pipe).
    pub closed_by_server: u64,
    /// Still open at the end.
    pub open_at_end: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Bytes written.
    pub bytes_sent: u64,
    /// Seconds it ran.
    pub duration_s: f64,
    /// The server's resident memory, with `--server-pid`.
    pub server_rss: Option<ServerRss>,
    /// Fewer than 100 log lines at the default level: counted outside (`server 2> log; wc -l
    /// log`), so `met` is null here.
    pub target: Target,
}

#[derive(Default)]
struct Counts {
    made: u64,
    closed: u64,
    open_at_end: u64,
    failures: u64,
    bytes: u64,
}

fn connection_loop(addr: SocketAddr, index: u32, plan: &GarbagePlan, deadline: Instant) -> Counts {
    let mut rng = SmallRng::seed_from_u64(plan.seed ^ u64::from(index).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut chunk = vec![0u8; plan.chunk];
    let mut c = Counts::default();
    while Instant::now() < deadline {
        let mut stream = match client::connect(addr, None) {
            Ok(s) => s,
            Err(_) => {
                c.failures += 1;
                std::thread::sleep(RETRY_AFTER);
                continue;
            }
        };
        c.made += 1;
        // Short write timeouts, so the deadline is kept even if the server stops reading.
        let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
        loop {
            if Instant::now() >= deadline {
                c.open_at_end += 1;
                break;
            }
            rng.fill_bytes(&mut chunk);
            match stream.write(&chunk) {
                Ok(0) => {
                    c.closed += 1;
                    break;
                }
                Ok(n) => c.bytes += n as u64,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
                Err(_) => {
                    c.closed += 1;
                    break;
                }
            }
        }
    }
    c
}

/// Runs it.
pub fn run(addr: SocketAddr, plan: &GarbagePlan) -> Result<GarbageReport, String> {
    let start = Instant::now();
    let deadline = start + plan.duration;
    let threads: Vec<_> = (0..plan.connections)
        .map(|i| {
            let plan = plan.clone();
            std::thread::spawn(move || connection_loop(addr, i, &plan, deadline))
        })
        .collect();
    let mut total = Counts::default();
    for t in threads {
        let c = t.join().map_err(|_| "a garbage thread panicked")?;
        total.made += c.made;
        total.closed += c.closed;
        total.open_at_end += c.open_at_end;
        total.failures += c.failures;
        total.bytes += c.bytes;
    }
    Ok(GarbageReport {
        params: plan.clone(),
        connections_made: total.made,
        closed_by_server: total.closed,
        open_at_end: total.open_at_end,
        connect_failures: total.failures,
        bytes_sent: total.bytes,
        duration_s: start.elapsed().as_secs_f64(),
        server_rss: None,
        target: Target {
            what: "fewer than 100 server log lines at the default level (count the server's stderr)".into(),
            met: None,
        },
    })
}
