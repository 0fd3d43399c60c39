//! The tokio runtime that runs every socket, on threads of its own, and its graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bevy_ecs::resource::Resource;
use tokio::runtime::{Handle, Runtime};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::DisconnectReason;
use crate::link::Flusher;
use crate::session::SessionRegistry;
use crate::stats::IoCounters;

/// The I/O runtime, held by the ECS as a resource. Dropping it shuts it down gracefully.
#[derive(Resource)]
pub(crate) struct IoRuntime {
    /// `None` once shut down.
    runtime: Option<Runtime>,
    /// Cancelled to shut down: stops the accept loop and connects in progress. Sessions are
    /// closed through the registry.
    shutdown: CancellationToken,
    /// Every task the plugin spawned, so shutdown can wait for them to finish their writes.
    tasks: TaskTracker,
    /// How long a shutdown waits for the tasks.
    shutdown_timeout: Duration,
    /// The I/O threads' counters, read once more after a shutdown.
    counters: Arc<IoCounters>,
    /// Every open session, closed by a shutdown.
    registry: Arc<SessionRegistry>,
    /// Writes each frame's flushed bytes.
    flusher: Arc<Flusher>,
}

impl IoRuntime {
    /// Starts `threads` I/O worker threads named `name` (`top -H` shows which side is busy).
    pub fn start(
        name: &'static str,
        threads: usize,
        shutdown_timeout: Duration,
        counters: Arc<IoCounters>,
    ) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(name)
            .enable_io()
            .enable_time()
            .build()?;
        let flusher = Arc::new(Flusher::default());
        // Not tracked: it holds no state of its own and stops with the runtime.
        runtime.spawn(flusher.clone().run(counters.clone()));
        Ok(Self {
            runtime: Some(runtime),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            shutdown_timeout,
            counters,
            registry: Arc::new(SessionRegistry::default()),
            flusher,
        })
    }

    /// The I/O threads' counters.
    pub fn counters(&self) -> &IoCounters {
        &self.counters
    }

    /// The open sessions.
    pub fn registry(&self) -> &Arc<SessionRegistry> {
        &self.registry
    }

    /// The flusher, which writes each frame's bytes.
    pub fn flusher(&self) -> &Arc<Flusher> {
        &self.flusher
    }

    /// The runtime's handle, to register sockets with its reactor.
    pub fn handle(&self) -> Option<&Handle> {
        self.runtime.as_ref().map(Runtime::handle)
    }

    /// Spawns a tracked task: shutdown waits for it.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        if let Some(handle) = self.handle() {
            self.tasks.spawn_on(task, handle);
        }
    }

    /// What a spawned task needs to spawn more tracked tasks and to see shutdown.
    pub fn spawner(&self) -> Spawner {
        Spawner { tasks: self.tasks.clone(), shutdown: self.shutdown.clone() }
    }

    /// Graceful shutdown: stop accepting, let every session write what is queued and close,
    /// wait for them up to the timeout, then stop the threads. Idempotent.
    pub fn shutdown(&mut self) {
        let Some(runtime) = self.runtime.take() else { return };
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
        runtime.shutdown_background();
        tracing::debug!("network runtime stopped");
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
