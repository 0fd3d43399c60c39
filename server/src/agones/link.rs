//! The async side of the Agones integration: the SDK's gRPC calls to the sidecar, on a small
//! runtime of their own, so a slow or absent sidecar never holds a frame.
//!
//! The game loop states what it wants ([`Desired`]: ready, the player count, shut down) in a
//! `watch` channel, which holds only the latest value and never blocks or fills; a reconciler
//! task makes the sidecar agree, retrying failed calls with exponential backoff. Health pings
//! come from the game loop over a bounded channel and are forwarded to the SDK's health stream.
//! A third task watches the GameServer and publishes its state. None of them ever stops the
//! game: a failure is logged and retried.

use std::time::Duration;

use agones::Sdk;
use tokio::sync::{mpsc, watch};

use crate::config::AgonesConfig;

/// What the game loop wants the sidecar to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Desired {
    /// The listener is bound and the loop has run a frame: `Ready()`, once.
    pub ready: bool,
    /// The players on a connection: the Counter's count.
    pub players: i64,
    /// The server has drained and is exiting: `Shutdown()`, once.
    pub shutdown: bool,
}

/// What the sidecar has acknowledged.
#[derive(Debug, Default)]
struct Acked {
    capacity: bool,
    players: Option<i64>,
    ready: bool,
    shutdown: bool,
}

/// The Counter the players are counted in.
const PLAYERS_COUNTER: &str = AgonesConfig::PLAYERS_COUNTER;

/// Health pings the game loop may have waiting for the forwarder. The forwarder only hands
/// them on, so this fills only while it is stuck; a ping that finds it full is dropped (the
/// sidecar then sees pings stop, which is the truth).
pub(crate) const PING_QUEUE: usize = 4;

/// The longest one call may take before it counts as failed and is retried.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Waits between retries: from 100 ms, doubling, at most 5 s.
#[derive(Debug)]
struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    fn new() -> Self {
        Self(Self::FIRST)
    }

    /// The wait before the next try; doubles the one after.
    fn next(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(Self::MAX);
        wait
    }

    fn reset(&mut self) {
        self.0 = Self::FIRST;
    }
}

/// The channels between the game loop and the tasks.
pub(crate) struct Channels {
    pub desired: watch::Receiver<Desired>,
    pub pings: mpsc::Receiver<()>,
    /// The GameServer's state (`Ready`, `Allocated`…), as last seen; empty until seen.
    pub state: watch::Sender<String>,
    /// Set once `Shutdown()` was acknowledged.
    pub shut_down: watch::Sender<bool>,
}

/// Connects (retrying until it can) and runs the three tasks. `port`: the sidecar's gRPC port,
/// or `None` for `AGONES_SDK_GRPC_PORT` (default 9357). `capacity`: the Counter's.
pub(crate) async fn run(port: Option<u16>, capacity: i64, channels: Channels) {
    let Channels { desired, pings, state, shut_down } = channels;
    let sdk = connect(port).await;
    tokio::spawn(forward_health(sdk.clone(), pings));
    tokio::spawn(watch_game_server(sdk.clone(), state));
    reconcile(sdk, capacity, desired, shut_down).await;
}

/// The SDK, once the sidecar answers. The SDK itself waits up to 30 s for that; this retries
/// beyond, for as long as it takes.
async fn connect(port: Option<u16>) -> Sdk {
    let mut backoff = Backoff::new();
    loop {
        match Sdk::new(port, None).await {
            Ok(sdk) => {
                tracing::info!("connected to the Agones SDK sidecar");
                return sdk;
            }
            Err(e) => {
                let wait = backoff.next();
                tracing::warn!(error = %e, retry_in = ?wait, "cannot reach the Agones SDK sidecar; the game goes on");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Makes the sidecar agree with what the game loop wants, each time that changes; after a
/// failure, tries again with backoff. `Ready()` and `Shutdown()` are sent once each (a second
/// `Ready()` after an allocation would offer an allocated server again); the count is sent as a
/// value, not a difference, so a retry or a lost answer cannot skew it.
async fn reconcile(mut sdk: Sdk, capacity: i64, mut desired: watch::Receiver<Desired>, shut_down: watch::Sender<bool>) {
    let mut acked = Acked::default();
    let mut backoff = Backoff::new();
    loop {
        let want = *desired.borrow_and_update();
        let agreed = agree(&mut sdk, capacity, &want, &mut acked).await;
        if acked.shutdown {
            shut_down.send_replace(true);
        }
        match agreed {
            Ok(()) => {
                backoff.reset();
                if desired.changed().await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let wait = backoff.next();
                tracing::warn!(error = %e, retry_in = ?wait, "Agones SDK calls failed; the game goes on, retrying");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// The calls still needed: the Counter's capacity and count, `Ready()`, `Shutdown()`. Each is
/// tried whatever became of the others (a fleet without the Counter must not keep the server
/// from being Ready); the failures are returned together, after all were tried.
async fn agree(sdk: &mut Sdk, capacity: i64, want: &Desired, acked: &mut Acked) -> Result<(), String> {
    let mut failed = Vec::new();
    let mut beta = sdk.beta().clone();
    if !acked.capacity {
        let set = beta.set_counter_capacity(PLAYERS_COUNTER, capacity);
        acked.capacity = attempt("set the Counter players' capacity", set, &mut failed).await;
    }
    if acked.players != Some(want.players)
        && attempt("set the Counter players", beta.set_counter_count(PLAYERS_COUNTER, want.players), &mut failed).await
    {
        acked.players = Some(want.players);
    }
    if want.ready && !acked.ready && attempt("Ready", sdk.ready(), &mut failed).await {
        acked.ready = true;
        tracing::info!("told Agones the server is Ready");
    }
    if want.shutdown && !acked.shutdown && attempt("Shutdown", sdk.shutdown(), &mut failed).await {
        acked.shutdown = true;
        tracing::info!("told Agones the server has shut down");
    }
    if failed.is_empty() { Ok(()) } else { Err(failed.join("; ")) }
}

/// One call, failed after [`CALL_TIMEOUT`]: whether it went through (why not goes to `failed`).
async fn attempt<F: Future<Output = agones::errors::Result<()>>>(what: &str, f: F, failed: &mut Vec<String>) -> bool {
    let why = match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(Ok(())) => return true,
        Ok(Err(agones::errors::Error::Rpc(status))) => format!("{what}: {:?}: {}", status.code(), status.message()),
        Ok(Err(e)) => format!("{what}: {e}"),
        Err(_) => format!("{what}: no answer within {CALL_TIMEOUT:?}"),
    };
    failed.push(why);
    false
}

/// Hands each ping from the game loop to the SDK's health stream, opening a new stream when the
/// last one broke (a sidecar restart, say). Never waits on the stream: a ping it cannot take at
/// once is dropped.
async fn forward_health(sdk: Sdk, mut pings: mpsc::Receiver<()>) {
    let mut stream: Option<mpsc::Sender<()>> = None;
    let mut broken = 0u64;
    while pings.recv().await.is_some() {
        let sent = stream.get_or_insert_with(|| sdk.health_check()).try_send(());
        match sent {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(())) => tracing::debug!("the health stream is behind; ping dropped"),
            Err(mpsc::error::TrySendError::Closed(())) => {
                // The stream ended (its call failed); this ping goes on a new one. Told once, then
                // every 10th time in a row, so a sidecar that stays away does not flood the log.
                if broken.is_multiple_of(10) {
                    tracing::warn!(times = broken + 1, "the health stream to the Agones sidecar broke; reopening it");
                }
                broken += 1;
                let reopened = sdk.health_check();
                let _ = reopened.try_send(());
                stream = Some(reopened);
                continue;
            }
        }
        broken = 0;
    }
}

/// Follows the GameServer (`WatchGameServer`), logging each change of state and publishing it
/// for the game loop; watches again, with backoff, when the stream ends or fails.
async fn watch_game_server(mut sdk: Sdk, state: watch::Sender<String>) {
    let mut backoff = Backoff::new();
    loop {
        match sdk.watch_gameserver().await {
            Ok(mut updates) => loop {
                match updates.message().await {
                    Ok(Some(game_server)) => {
                        backoff.reset();
                        let now = game_server.status.map(|s| s.state).unwrap_or_default();
                        state.send_if_modified(|seen| {
                            if *seen == now {
                                return false;
                            }
                            tracing::info!(state = %now, was = %seen, "the GameServer changed state");
                            now.clone_into(seen);
                            true
                        });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "watching the GameServer failed");
                        break;
                    }
                }
            },
            Err(e) => tracing::warn!(error = %e, "cannot watch the GameServer"),
        }
        tokio::time::sleep(backoff.next()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut b = Backoff::new();
        let waits: Vec<_> = (0..8).map(|_| b.next().as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        b.reset();
        assert_eq!(b.next(), Duration::from_millis(100));
    }
}
