//! The client side (the course's Connector): outgoing connections as entities, with the same
//! typed messages and sending API, against a real server on loopback.

mod support;

use bevy_app::{App, Update};
use bevy_ecs::prelude::*;
use net_plugin::testing::{AppThread, Recorded, connect, ready, record, step_until};
use net_plugin::{
    ClientOutbox, ClientPlugin, ClientReceived, ConnectFailed, Connected, Connector, DisconnectReason, Disconnected,
    NetConfig, NetStats, ServerPlugin,
};
use shared::{C_Chat, C_Move, S_BroadcastMove, S_Chat};
use support::{WAIT, start_server};

#[derive(Resource)]
struct Target(std::net::SocketAddr, usize);

fn connect_all(mut connector: Connector, target: Res<Target>, mut done: Local<bool>) {
    if !*done {
        for _ in 0..target.1 {
            connector.connect(target.0);
        }
        *done = true;
    }
}

fn greet_on_connect(mut connected: MessageReader<Connected>, mut outbox: ClientOutbox) {
    for c in connected.read() {
        outbox.send(c.entity, &C_Chat { chat: format!("hi from {}", c.entity) });
        outbox.send(c.entity, &C_Move { pos_x: 1.0, pos_y: 2.0, pos_z: 3.0 });
    }
}

fn client_app(target: std::net::SocketAddr, connections: usize) -> AppThread {
    AppThread::spawn(move || {
        let mut app = App::new();
        app.add_plugins(ClientPlugin::new(NetConfig::client_default()).unwrap())
            .insert_resource(Target(target, connections))
            .add_systems(Update, (connect_all, greet_on_connect));
        record::<Connected>(&mut app);
        record::<Disconnected>(&mut app);
        record::<ConnectFailed>(&mut app);
        record::<ClientReceived<S_Chat>>(&mut app);
        record::<ClientReceived<S_BroadcastMove>>(&mut app);
        app
    })
}

fn count<M: Message + Clone>(app: &AppThread) -> usize {
    app.run(|app| app.world().resource::<Recorded<M>>().0.len())
}

fn recorded_in<M: Message + Clone>(app: &App) -> &[M] {
    &app.world().resource::<Recorded<M>>().0
}

/// A server and a client app on the test's own thread, stepped frame by frame.
#[test]
fn clients_connect_send_and_receive_typed_packets() {
    let mut server = App::new();
    server
        .add_plugins(ServerPlugin::bind("127.0.0.1:0", NetConfig::default()).unwrap())
        .add_systems(Update, (support::echo_chat, support::broadcast_moves));
    let mut server = ready(server);
    let mut client = App::new();
    client.add_plugins(ClientPlugin::new(NetConfig::client_default()).unwrap()).add_systems(Update, greet_on_connect);
    record::<Disconnected>(&mut client);
    record::<ClientReceived<S_Chat>>(&mut client);
    record::<ClientReceived<S_BroadcastMove>>(&mut client);
    let mut client = ready(client);

    let entities = connect(&mut server, &mut client, 10, WAIT);
    // Each gets its own chat echoed, and every move broadcast (10 moves to 10 connections).
    assert!(step_until(&mut [&mut server, &mut client], WAIT, |apps| {
        recorded_in::<ClientReceived<S_Chat>>(apps[1]).len() == 10
            && recorded_in::<ClientReceived<S_BroadcastMove>>(apps[1]).len() == 100
    }));
    for chat in recorded_in::<ClientReceived<S_Chat>>(&client) {
        assert_eq!(chat.packet.chat, format!("hi from {}", chat.from), "each echo reaches its own connection");
        assert!(entities.contains(&chat.from));
    }
    // The server closing ends the client sessions, once each.
    server.world_mut().write_message(bevy_app::AppExit::Success);
    server.update();
    assert!(step_until(&mut [&mut client], WAIT, |apps| recorded_in::<Disconnected>(apps[0]).len() >= 10));
    for _ in 0..10 {
        client.update();
    }
    let gone = recorded_in::<Disconnected>(&client);
    assert_eq!(gone.len(), 10, "{gone:?}");
    assert!(gone.iter().all(|d| d.reason == DisconnectReason::ClosedByPeer), "{gone:?}");
}

#[test]
fn a_refused_connection_is_a_message_not_a_panic() {
    // A port nobody listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let clients = client_app(addr, 3);
    assert!(clients.wait_until(WAIT, |app| app.world().resource::<Recorded<ConnectFailed>>().0.len() == 3));
    let failed = clients.run(|app| app.world().resource::<Recorded<ConnectFailed>>().0.clone());
    assert!(failed.iter().all(|f| f.addr == addr && f.error.contains("refused")), "{failed:?}");
    // Their entities are gone by the next frame.
    let entities: Vec<Entity> = failed.iter().map(|f| f.entity).collect();
    assert!(clients.wait_until(WAIT, move |app| entities.iter().all(|e| app.world().get_entity(*e).is_err())));
    assert_eq!(count::<Connected>(&clients), 0);
}

#[test]
fn a_connection_despawned_while_connecting_is_never_announced() {
    let (server, addr) = start_server();
    // Connect and despawn in the same frame: the connect completes on the I/O thread afterwards.
    let clients = AppThread::spawn(move || {
        let mut app = App::new();
        app.add_plugins(ClientPlugin::new(NetConfig::client_default()).unwrap()).add_systems(
            Update,
            move |mut connector: Connector, mut commands: Commands, mut done: Local<bool>| {
                if !std::mem::replace(&mut *done, true) {
                    let entity = connector.connect(addr);
                    commands.entity(entity).despawn();
                }
            },
        );
        record::<Connected>(&mut app);
        record::<Disconnected>(&mut app);
        app
    });
    // The server sees the connection open and close again.
    assert!(support::wait_recorded::<Disconnected>(&server, 1));
    // Anything the client's I/O side said of it was queued before it closed the socket: two of
    // the client app's frames later, it is recorded (a job runs between frames).
    clients.run(|_| {});
    clients.run(|_| {});
    assert_eq!((count::<Connected>(&clients), count::<Disconnected>(&clients)), (0, 0));
    let stats = clients.run(|app| app.world().resource::<NetStats>().clone());
    assert_eq!((stats.sessions, stats.sessions_total), (0, 0));
}

#[test]
fn a_client_sending_with_the_server_outbox_is_refused_when_its_system_first_runs() {
    // The compile-time check stops `Outbox` (server packets) from sending `C_` packets; a client
    // system that takes the server's Outbox at all is refused by Bevy, naming the missing side.
    let outcome = std::panic::catch_unwind(|| {
        let mut app = App::new();
        app.add_plugins(ClientPlugin::new(NetConfig::client_default()).unwrap())
            .add_systems(Update, |_outbox: net_plugin::Outbox| {});
        app.update();
    });
    let message = outcome.expect_err("the system is refused");
    let text = message.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(text.contains("sends_this_packet_set"), "{text}");
}

#[test]
fn a_client_reading_the_servers_received_is_refused_when_its_system_first_runs() {
    // `ClientReceived<C_Chat>` does not compile; `Received<C_Chat>` does (it is the server's
    // type), but a client registers only the `S_` packets' messages, so Bevy refuses the system.
    let outcome = std::panic::catch_unwind(|| {
        let mut app = App::new();
        app.add_plugins(ClientPlugin::new(NetConfig::client_default()).unwrap())
            .add_systems(Update, |_chats: MessageReader<net_plugin::Received<C_Chat>>| {});
        app.update();
    });
    let message = outcome.expect_err("the system is refused");
    let text = message.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(text.contains("Message not initialized"), "{text}");
}
