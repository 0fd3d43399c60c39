//! A latency probe: every `C_Ping { clientTime }` is answered with `S_Pong { clientTime }` to
//! its sender alone, so a client can measure its round trip without moving or chatting.

use bevy_app::{App, Plugin, Update};
use bevy_ecs::prelude::*;
use net_plugin::{Outbox, Received};
use shared::{C_Ping, S_Pong};

use crate::GameSystems;

/// Answers pings. The time is the client's own and is only echoed, so any unit or clock works.
///
/// Pings are answered by any connection, also one that left its room with `C_LeaveGame`: the
/// probe measures the connection, not the game. The answer leaves with the frame's other
/// packets, so a round trip includes the wait for the next frame (at most one `frame_hz` period)
/// — which is what a move's echo waits too.
pub struct PingPlugin;

impl Plugin for PingPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, answer_pings.in_set(GameSystems::Ping));
    }
}

fn answer_pings(mut pings: MessageReader<Received<C_Ping>>, mut outbox: Outbox) {
    for Received { from, packet, .. } in pings.read() {
        // An S_Pong is 12 bytes, so encoding cannot fail; a connection that closed meanwhile is
        // skipped by the outbox.
        outbox.send(*from, &S_Pong { client_time: packet.client_time });
    }
}
