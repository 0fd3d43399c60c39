//! What the plugin's integration tests share: a server app on a thread, with a little game
//! logic to observe (echo chat to its sender, broadcast moves to everyone).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bevy_app::{App, Update};
use bevy_ecs::prelude::*;
use net_plugin::testing::{AppThread, Recorded, record};
use net_plugin::{Connected, Disconnected, NetConfig, NetStats, Outbox, Received, ServerPlugin};
use shared::{C_Chat, C_LeaveGame, C_Move, S_BroadcastMove, S_Chat};

/// Long enough for anything on loopback, even on a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long to wait when asserting that something does *not* arrive.
pub const QUIET: Duration = Duration::from_millis(300);

/// Echoes each chat line to its sender as `S_Chat`.
pub fn echo_chat(mut chats: MessageReader<Received<C_Chat>>, mut outbox: Outbox) {
    for chat in chats.read() {
        outbox.send(chat.from, &S_Chat { player_id: 0, chat: chat.packet.chat.clone() });
    }
}

/// Broadcasts each move to every connection as `S_BroadcastMove`.
pub fn broadcast_moves(mut moves: MessageReader<Received<C_Move>>, mut outbox: Outbox) {
    for m in moves.read() {
        let p = &m.packet;
        let packet =
            S_BroadcastMove { player_id: m.from.index_u32() as i32, pos_x: p.pos_x, pos_y: p.pos_y, pos_z: p.pos_z };
        outbox.send_all(&packet);
    }
}

/// A server on 127.0.0.1:0 with `config`, recording its connection messages and packets, with
/// `setup` adding more.
pub fn start_server_with(config: NetConfig, setup: impl FnOnce(&mut App) + Send + 'static) -> (AppThread, SocketAddr) {
    let net = ServerPlugin::bind("127.0.0.1:0", config).expect("bind a loopback port");
    let addr = net.local_addr();
    let app = AppThread::spawn(move || {
        let mut app = App::new();
        app.add_plugins(net);
        record::<Connected>(&mut app);
        record::<Disconnected>(&mut app);
        record::<Received<C_Move>>(&mut app);
        record::<Received<C_Chat>>(&mut app);
        record::<Received<C_LeaveGame>>(&mut app);
        setup(&mut app);
        app
    });
    (app, addr)
}

/// A server with the default configuration, echoing chat and broadcasting moves.
pub fn start_server() -> (AppThread, SocketAddr) {
    start_server_with(NetConfig::default(), |app| {
        app.add_systems(Update, (echo_chat, broadcast_moves));
    })
}

/// How many messages of type `M` the server has recorded.
pub fn recorded<M: Message + Clone>(server: &AppThread) -> Vec<M> {
    server.run(|app| app.world().resource::<Recorded<M>>().0.clone())
}

/// Waits until the server has recorded `n` messages of type `M`.
pub fn wait_recorded<M: Message + Clone>(server: &AppThread, n: usize) -> bool {
    server.wait_until(WAIT, move |app| app.world().resource::<Recorded<M>>().0.len() >= n)
}

/// The server's statistics.
pub fn stats(server: &AppThread) -> NetStats {
    server.run(|app| app.world().resource::<NetStats>().clone())
}
