//! Adding a packet and a system to the server, end to end.
//!
//! 1. The packets are in `assets/PDL.xml`, appended after the course's (so their ids, 9 and 10,
//!    move nothing the course's clients know):
//!
//!    ```xml
//!    <packet name="C_Ping"><long name="clientTime"/></packet>
//!    <packet name="S_Pong"><long name="clientTime"/></packet>
//!    ```
//!
//!    Rebuilding generates `shared::C_Ping` and `shared::S_Pong`, and the network plugin delivers
//!    `Received<C_Ping>` messages without being told.
//! 2. A system reads them and answers through `Outbox` (below).
//! 3. A plugin adds the system to the server app.
//!
//! Run it with `cargo run --release -p server --example ping`; `server/tests/extending.rs`
//! keeps it working.

use std::process::ExitCode;

use bevy_app::{App, Plugin, Update};
use bevy_ecs::prelude::*;
use net_plugin::{Outbox, Received, ServerPlugin};
use server::{GameSystems, ServerConfig, ShutdownSignalPlugin};
use shared::{C_Ping, S_Pong};

/// Answers every `C_Ping` with an `S_Pong` carrying the client's time back, so a client can
/// measure its round trip without moving.
pub struct PingPlugin;

impl Plugin for PingPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, answer_pings.after(GameSystems::Chat));
    }
}

fn answer_pings(mut pings: MessageReader<Received<C_Ping>>, mut outbox: Outbox) {
    for Received { from, packet, .. } in pings.read() {
        // An S_Pong always fits a packet; a connection that closed meanwhile is skipped.
        let _ = outbox.send(*from, &S_Pong { client_time: packet.client_time });
    }
}

#[allow(dead_code)]
fn main() -> ExitCode {
    net_plugin::cli::init_logging();
    let (config, _) = match ServerConfig::load(None) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let net = match ServerPlugin::bind(&config.bind, config.net.clone()) {
        Ok(net) => net,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut app = server::app(&config, net, None);
    app.add_plugins((ShutdownSignalPlugin, PingPlugin));
    app.run();
    ExitCode::SUCCESS
}
