//! The tokio runtime that runs every socket, on threads of its own: its long-lived tasks under a
//! supervisor, and its graceful shutdown.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bevy_ecs::resource::Resource;
use futures_util::FutureExt;
use tokio::runtime::{Handle, Runtime};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::core::BacklogLimits;
use crate::faults::{Faults, panic_message};
use crate::handle::SessionRegistry;
use crate::stats::IoCounters;
use crate::writer::Writer;
use crate::{DisconnectReason, NetConfig};

/// A supervised task that panics more often than this within [`RESTART_WINDOW`] is given up on:
/// the network stops and the app exits with an error, rather than limp along half-dead.
const MAX_RESTARTS: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// The I/O runtime, held by the ECS as a resource. Dropping it shuts it down gracefully.
#[derive(Resource)]
pub(crate) struct IoRuntime {
    /// `None` once shut down.
    runtime: Option<Runtime>,
    /// Cancelled to shut down: stops the accept loop and connects in progress. Sessions are
    /// closed through the registry.
    shutdown: CancellationToken,
    /// Every session and connect task, so shutdown can wait for them to finish their writes.
    tasks: TaskTracker,
    /// How long a shutdown waits for the tasks.
    shutdown_timeout: Duration,
    /// The I/O threads' counters, read once more after a shutdown.
    counters: Arc<IoCounters>,
    /// Every open session, closed by a shutdown.
    registry: Arc<SessionRegistry>,
    /// Writes every session's bytes.
    writer: Arc<Writer>,
    /// Set when a supervised task kept panicking: the app must exit with an error.
    fatal: Arc<OnceLock<String>>,
    /// Faults tests inject.
    faults: Arc<Faults>,
}

/// The faults of this app's network runtime, for tests.
#[doc(hidden)]
#[derive(Resource, Clone)]
pub struct NetFaults(pub Arc<Faults>);

impl IoRuntime {
    /// Starts `threads` I/O worker threads named `name` (`top -H` shows which side is busy), and
    /// the writer.
    pub fn start(name: &'static str, config: &NetConfig, counters: Arc<IoCounters>) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.io_threads)
            .thread_name(name)
            .enable_io()
            .enable_time()
            .build()?;
        let writer = Arc::new(Writer::new(BacklogLimits::of(config), counters.backlog.clone()));
        let this = Self {
            runtime: Some(runtime),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            shutdown_timeout: config.shutdown_timeout,
            counters,
            registry: Arc::new(SessionRegistry::default()),
            writer,
            fatal: Arc::new(OnceLock::new()),
            faults: Arc::new(Faults::default()),
        };
        let (writer, registry, counters, faults) =
            (this.writer.clone(), this.registry.clone(), this.counters.clone(), this.faults.clone());
        this.supervise("writer", move |restarted| {
            writer.clone().run(registry.clone(), counters.clone(), faults.clone(), restarted)
        });
        Ok(this)
    }

    /// The I/O threads' counters.
    pub fn counters(&self) -> &Arc<IoCounters> {
        &self.counters
    }

    /// The open sessions.
    pub fn registry(&self) -> &Arc<SessionRegistry> {
        &self.registry
    }

    /// The writer.
    pub fn writer(&self) -> &Arc<Writer> {
        &self.writer
    }

    /// The injectable faults.
    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }

    /// Why the network gave up, if it did.
    pub fn fatal(&self) -> Option<&str> {
        self.fatal.get().map(String::as_str)
    }

    /// The runtime's handle, to register sockets with its reactor.
    pub fn handle(&self) -> Option<&Handle> {
        self.runtime.as_ref().map(Runtime::handle)
    }

    /// What a spawned task needs to spawn more tracked tasks and to see shutdown.
    pub fn spawner(&self) -> Spawner {
        Spawner { tasks: self.tasks.clone(), shutdown: self.shutdown.clone() }
    }

    /// Runs a long-lived task (the writer, the accept loop) under a supervisor: a panic is
    /// logged as an error and the task started again (`start(true)`), after a short pause; a
    /// task that panics more than [`MAX_RESTARTS`] times in [`RESTART_WINDOW`] is given up on,
    /// and [`fatal`](Self::fatal) makes the app exit with an error. Never a silent half-dead
    /// server. Not tracked: it ends with the runtime (the accept loop returns on shutdown).
    pub fn supervise<F, Fut>(&self, name: &'static str, mut start: F)
    where
        F: FnMut(bool) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Some(handle) = self.handle() else { return };
        let (fatal, shutdown) = (self.fatal.clone(), self.shutdown.clone());
        handle.spawn(async move {
            let mut panics = VecDeque::new();
            let mut restarted = false;
            loop {
                let Err(panic) = AssertUnwindSafe(start(restarted)).catch_unwind().await else { return };
                let message = panic_message(&*panic);
                let now = Instant::now();
                panics.retain(|at| now.duration_since(*at) < RESTART_WINDOW);
                panics.push_back(now);
                if panics.len() > MAX_RESTARTS {
                    tracing::error!(task = name, panic = %message, "a network task keeps panicking; stopping the network");
                    let _ = fatal.set(format!("the network's {name} task keeps panicking: {message}"));
                    return;
                }
                tracing::error!(task = name, panic = %message, "a network task panicked; restarting it");
                restarted = true;
                let pause = Duration::from_millis(50) * panics.len() as u32;
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        });
    }

    /// The first half of a graceful shutdown: stop accepting, let every session write what is
    /// queued and close, and wait for them up to the timeout. The runtime keeps running, so
    /// their `Disconnected` events can still be drained.
    pub fn close_all(&mut self) {
        let Some(runtime) = self.runtime.as_ref() else { return };
        self.shutdown.cancel();
        self.registry.close_all(&DisconnectReason::Shutdown);
        self.tasks.close();
        let tasks = self.tasks.clone();
        let timeout = self.shutdown_timeout;
        // Blocking on the runtime is only possible outside of one.
        let finished = Handle::try_current().is_err()
            && runtime.block_on(async move { tokio::time::timeout(timeout, tasks.wait()).await.is_ok() });
        if !finished {
            tracing::warn!(
                open = self.tasks.len(),
                ?timeout,
                "network shutdown: sessions did not finish in time; closing them"
            );
        }
    }

    /// Graceful shutdown, both halves: [`close_all`](Self::close_all), then stop the threads.
    /// Idempotent.
    pub fn shutdown(&mut self) {
        self.close_all();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
            tracing::debug!("network runtime stopped");
        }
    }
}

impl Drop for IoRuntime {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Lets tasks spawn tracked tasks and watch for shutdown.
#[derive(Clone)]
pub(crate) struct Spawner {
    pub tasks: TaskTracker,
    pub shutdown: CancellationToken,
}
