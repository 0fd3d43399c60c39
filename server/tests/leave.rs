//! Leaving: `C_LeaveGame` or a dropped connection; `S_BroadcastLeaveGame` to the others exactly
//! once per player.

mod support;

use std::time::Duration;

use net_plugin::testing::AppThread;
use support::{Msg, WAIT, join, start, test_config};

/// Waits until the server holds `n` connections: a closed one is gone once the frame that
/// handled its end is over, so whatever that caused has been sent.
fn connections(server: &AppThread, n: usize) {
    let count = move |app: &mut bevy_app::App| {
        app.world_mut().query::<&net_plugin::Connection>().iter(app.world()).count() == n
    };
    assert!(server.wait_until(WAIT, count), "{n} connections left");
}

#[test]
fn an_explicit_leave_is_announced_once_and_the_connection_stays() {
    let (server, addr) = start(test_config());
    let (mut a, _) = join(addr);
    let (mut b, _) = join(addr);
    let (mut c, _) = join(addr);
    let enter = |id| Msg::Enter { id, x: 0.0, y: 0.0, z: 0.0 };
    assert_eq!(a.sync(), vec![enter(b.my_id()), enter(c.my_id())]);
    assert_eq!(b.sync(), vec![enter(c.my_id())]);
    a.send_leave();
    assert_eq!(b.recv(WAIT), Some(Msg::Leave { id: a.my_id() }));
    assert_eq!(c.recv(WAIT), Some(Msg::Leave { id: a.my_id() }));
    // A second leave, then a disconnect: still one announcement.
    a.send_leave();
    assert_eq!(a.sync(), vec![], "the second leave was read: nothing comes of it");
    // The leaver is out of the room: it hears nothing of it.
    b.send_chat("after");
    assert_eq!(c.recv(WAIT), Some(Msg::Chat { id: b.my_id(), text: "after".into() }));
    assert_eq!(a.sync(), vec![]);
    assert_eq!(b.recv(WAIT), Some(Msg::Chat { id: b.my_id(), text: "after".into() }));
    drop(a);
    connections(&server, 2);
    assert_eq!(b.sync(), vec![]);
    assert_eq!(c.sync(), vec![]);
}

#[test]
fn a_clean_disconnect_is_a_leave() {
    let (server, addr) = start(test_config());
    let (a, _) = join(addr);
    let (mut b, _) = join(addr);
    let id = a.my_id();
    drop(a);
    connections(&server, 1);
    assert_eq!(b.sync(), vec![Msg::Leave { id }]);
}

#[test]
fn an_abrupt_disconnect_is_a_leave() {
    let (server, addr) = start(test_config());
    let (a, _) = join(addr);
    let (mut b, _) = join(addr);
    let id = a.my_id();
    socket2::SockRef::from(&a.stream).set_linger(Some(Duration::ZERO)).unwrap();
    drop(a);
    connections(&server, 1);
    assert_eq!(b.sync(), vec![Msg::Leave { id }]);
}

#[test]
fn a_leave_and_a_disconnect_in_the_same_frame_are_one_leave() {
    let (server, addr) = start(test_config());
    let (mut a, _) = join(addr);
    let (mut b, _) = join(addr);
    let id = a.my_id();
    a.send_leave();
    drop(a);
    connections(&server, 1);
    assert_eq!(b.sync(), vec![Msg::Leave { id }]);
}

#[test]
fn game_code_despawning_a_player_is_a_leave() {
    let (server, addr) = start(test_config());
    let (mut a, _) = join(addr);
    let (mut b, _) = join(addr);
    assert_eq!(a.sync(), vec![Msg::Enter { id: b.my_id(), x: 0.0, y: 0.0, z: 0.0 }]);
    let id = a.my_id();
    // A kick, the blunt way: despawn the player's entity.
    server.run(move |app| {
        let world = app.world_mut();
        let entity = world
            .query::<(bevy_ecs::entity::Entity, &server::Player)>()
            .iter(world)
            .find(|(_, p)| p.id == id)
            .map(|(e, _)| e)
            .expect("the player");
        world.despawn(entity);
    });
    assert!(a.closed(), "its connection is closed");
    connections(&server, 1);
    assert_eq!(b.sync(), vec![Msg::Leave { id }]);
    let (_c, listed) = join(addr);
    assert!(listed.iter().all(|p| p.1 != id), "no ghost in a newcomer's list: {listed:?}");
}
