//! SIGINT and SIGTERM end the server gracefully: the next frame writes `AppExit`, the network
//! flushes and closes every connection, and the process exits 0. A second signal exits at once
//! (a client that does not read can hold the graceful exit for `net.shutdown_timeout`), with
//! status 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bevy_app::{App, AppExit, First, Plugin};
use bevy_ecs::prelude::*;
use signal_hook::consts::{SIGINT, SIGTERM};

/// Turns SIGINT and SIGTERM into [`AppExit::Success`].
pub struct ShutdownSignalPlugin;

/// Set by the signal handler, read once a frame.
#[derive(Resource, Clone)]
struct SignalFlag(Arc<AtomicBool>);

impl Plugin for ShutdownSignalPlugin {
    fn build(&self, app: &mut App) {
        let flag = Arc::new(AtomicBool::new(false));
        for signal in [SIGINT, SIGTERM] {
            // The conditional handler is registered first, so it sees the flag as it was: a
            // second signal, after the first set it, exits at once (128 + signal number).
            let registered = signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, flag.clone())
                .and_then(|_| signal_hook::flag::register(signal, flag.clone()));
            if let Err(e) = registered {
                tracing::warn!(signal, error = %e, "cannot handle the signal; it will end the server abruptly");
            }
        }
        app.insert_resource(SignalFlag(flag)).add_systems(First, exit_on_signal);
    }
}

fn exit_on_signal(flag: Res<SignalFlag>, mut exit: MessageWriter<AppExit>, mut announced: Local<bool>) {
    if flag.0.load(Ordering::Relaxed) && !*announced {
        *announced = true;
        tracing::info!("signal received: shutting down (a second one exits at once)");
        exit.write(AppExit::Success);
    }
}
