//! Side traffic beside the bots, for soak runs: connections that come and go (`--churn-rate`),
//! and connections that send random bytes (`--garbage-rate`).
//!
//! They are plain blocking sockets on threads of their own, not bots: a churner only connects,
//! reads its first packet (the room's `S_PlayerList`) and closes; a garbage connection writes
//! random bytes, waits a moment for the server to close it, and closes. What they test is that
//! the server's memory, logs and other players stay unharmed by clients that never play.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// How long a churner or a garbage connection may wait for the server, at any step.
const PATIENCE: Duration = Duration::from_secs(5);

/// How long a garbage connection waits for the server to close it before closing itself. A
/// frame it began and never finished is closed by the server only at its `frame_timeout`.
const GARBAGE_LINGER: Duration = Duration::from_secs(1);

/// The most bytes one garbage connection sends.
const GARBAGE_MAX: usize = 512;

/// The `S_PlayerList` packet id: what a churner waits for.
const PLAYER_LIST_ID: u16 = 4;

/// What the side traffic did.
#[derive(Debug, Default)]
pub struct ChurnCounts {
    /// Churners that connected, got their player list and closed.
    pub churned: AtomicU64,
    /// Churners that could not connect or got no player list.
    pub churn_failures: AtomicU64,
    /// Garbage connections that connected and wrote their bytes.
    pub garbage: AtomicU64,
    /// Of those, the ones the server closed within [`GARBAGE_LINGER`].
    pub garbage_closed: AtomicU64,
    /// Garbage connections that could not connect or write.
    pub garbage_failures: AtomicU64,
}

/// Side traffic running on its own threads until `duration` has passed.
pub struct Churn {
    counts: Arc<ChurnCounts>,
    schedulers: Vec<JoinHandle<()>>,
}

impl Churn {
    /// Starts `churn_rate` churners and `garbage_rate` garbage connections a second against
    /// `addr` for `duration`. A rate of 0 starts none.
    pub fn start(addr: SocketAddr, churn_rate: u32, garbage_rate: u32, duration: Duration, seed: u64) -> Self {
        let counts = Arc::new(ChurnCounts::default());
        let mut schedulers = Vec::new();
        if churn_rate > 0 {
            let counts = counts.clone();
            schedulers.push(std::thread::spawn(move || {
                every(churn_rate, duration, move |_| churn_once(addr, &counts));
            }));
        }
        if garbage_rate > 0 {
            let counts = counts.clone();
            schedulers.push(std::thread::spawn(move || {
                every(garbage_rate, duration, move |n| {
                    let mut rng = SmallRng::seed_from_u64(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    garbage_once(addr, &mut rng, &counts);
                });
            }));
        }
        Self { counts, schedulers }
    }

    /// Waits for the last connections to finish; returns the counts.
    pub fn finish(self) -> Arc<ChurnCounts> {
        for scheduler in self.schedulers {
            let _ = scheduler.join();
        }
        self.counts
    }
}

/// Runs `job(n)` on a thread of its own `rate` times a second for `duration`, keeping the pace
/// from the start (a late start is not made up by a volley), then waits for them all.
fn every(rate: u32, duration: Duration, job: impl Fn(u64) + Send + Sync + Clone + 'static) {
    let start = Instant::now();
    let period = Duration::from_secs_f64(1.0 / f64::from(rate));
    let mut running: Vec<JoinHandle<()>> = Vec::new();
    let mut n = 0u64;
    loop {
        let due = start + period.mul_f64(n as f64);
        if due.duration_since(start) >= duration {
            break;
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let job = job.clone();
        running.push(std::thread::spawn(move || job(n)));
        running.retain(|h| !h.is_finished());
        n += 1;
        // Behind by more than a second: skip what was missed.
        let behind = Instant::now().saturating_duration_since(start + period.mul_f64(n as f64));
        if behind > Duration::from_secs(1) {
            n += (behind.as_secs_f64() / period.as_secs_f64()) as u64;
        }
    }
    for h in running {
        let _ = h.join();
    }
}

/// Connects, reads the first packet (which must be the room's list) and closes.
fn churn_once(addr: SocketAddr, counts: &ChurnCounts) {
    let ok = (|| {
        let mut stream = TcpStream::connect_timeout(&addr, PATIENCE).ok()?;
        stream.set_read_timeout(Some(PATIENCE)).ok()?;
        let mut header = [0u8; 4];
        stream.read_exact(&mut header).ok()?;
        (u16::from_le_bytes([header[2], header[3]]) == PLAYER_LIST_ID).then_some(())
    })();
    let counter = if ok.is_some() { &counts.churned } else { &counts.churn_failures };
    counter.fetch_add(1, Relaxed);
}

/// Connects, writes up to [`GARBAGE_MAX`] random bytes, waits up to [`GARBAGE_LINGER`] for the
/// server to close the connection, and closes it.
fn garbage_once(addr: SocketAddr, rng: &mut SmallRng, counts: &ChurnCounts) {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, PATIENCE) else {
        counts.garbage_failures.fetch_add(1, Relaxed);
        return;
    };
    let mut bytes = vec![0u8; rng.random_range(1..=GARBAGE_MAX)];
    rng.fill(&mut bytes[..]);
    if stream.write_all(&bytes).is_err() {
        counts.garbage_failures.fetch_add(1, Relaxed);
        return;
    }
    counts.garbage.fetch_add(1, Relaxed);
    let deadline = Instant::now() + GARBAGE_LINGER;
    let mut sink = [0u8; 16384];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // Reset by the server: closed too.
            Err(_) => break,
        }
    }
    counts.garbage_closed.fetch_add(1, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_churner_needs_a_player_list_first() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            // First a list (size 6, id 4, no players), then something else (a pong).
            for reply in [&[6u8, 0, 4, 0, 0, 0][..], &[12, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0]] {
                let (mut s, _) = listener.accept().unwrap();
                s.write_all(reply).unwrap();
            }
        });
        let counts = ChurnCounts::default();
        churn_once(addr, &counts);
        churn_once(addr, &counts);
        server.join().unwrap();
        assert_eq!((counts.churned.load(Relaxed), counts.churn_failures.load(Relaxed)), (1, 1));
    }

    #[test]
    fn garbage_is_random_bytes_and_a_close_by_the_server_is_counted() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let mut received = Vec::new();
            for _ in 0..2 {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = vec![0u8; GARBAGE_MAX];
                let n = s.read(&mut buf).unwrap();
                received.push(buf[..n].to_vec());
                // The server closes the connection at once.
            }
            received
        });
        let counts = ChurnCounts::default();
        let mut rng = SmallRng::seed_from_u64(1);
        garbage_once(addr, &mut rng, &counts);
        garbage_once(addr, &mut rng, &counts);
        let received = server.join().unwrap();
        assert_ne!(received[0], received[1], "each connection sends its own bytes");
        assert!(received.iter().all(|r| !r.is_empty()));
        assert_eq!((counts.garbage.load(Relaxed), counts.garbage_closed.load(Relaxed)), (2, 2));
    }

    #[test]
    fn the_pace_is_kept_for_the_duration() {
        let runs = Arc::new(AtomicU64::new(0));
        let seen = runs.clone();
        every(50, Duration::from_millis(200), move |_| {
            seen.fetch_add(1, Relaxed);
        });
        // 50 a second for 200 ms: jobs due at 0, 20, …, 180 ms; skipped only on a stall.
        assert!((1..=10).contains(&runs.load(Relaxed)), "{runs:?}");
    }
}
