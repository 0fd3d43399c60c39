//! SIGINT and SIGTERM stop the server gracefully. The first one asks for a stop
//! ([`StopRequested`]): a drain when `drain_timeout` is set (players finish, newcomers are
//! refused: see [`crate::drain`]), then the network flushes and closes every connection and the
//! process exits 0. A second signal exits at once, during a drain too (a client that does not
//! read can hold the graceful exit for `net.shutdown_timeout`), with status 128 + the signal's
//! number: 130 for SIGINT, 143 for SIGTERM.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bevy_app::{App, First, Plugin};
use bevy_ecs::prelude::*;
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::drain::{DrainPlugin, StopRequested};

/// Turns the first SIGINT or SIGTERM into a [`StopRequested`]. Adds a [`DrainPlugin`] with no
/// timeout (a stop exits at once) when the app has none; [`crate::app`] has one.
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
        if !app.is_plugin_added::<DrainPlugin>() {
            app.add_plugins(DrainPlugin { timeout: std::time::Duration::ZERO });
        }
        app.insert_resource(SignalFlag(flag)).add_systems(First, stop_on_signal);
    }
}

fn stop_on_signal(flag: Res<SignalFlag>, mut stop: MessageWriter<StopRequested>, mut announced: Local<bool>) {
    if flag.0.load(Ordering::Relaxed) && !*announced {
        *announced = true;
        tracing::info!("signal received: stopping (a second one exits at once)");
        stop.write(StopRequested);
    }
}
