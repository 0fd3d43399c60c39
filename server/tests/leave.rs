//! Leaving: `C_LeaveGame` or a dropped connection; `S_BroadcastLeaveGame` to the others exactly
//! once per player.

mod support;

use std::time::Duration;

use support::{Msg, QUIET, WAIT, join, start, test_config};

#[test]
fn an_explicit_leave_is_announced_once_and_the_connection_stays() {
    let (_server, addr) = start(test_config());
    let (mut a, _) = join(addr);
    let (mut b, _) = join(addr);
    let (mut c, _) = join(addr);
    a.drain();
    b.drain();
    a.send_leave();
    assert_eq!(b.recv(WAIT), Some(Msg::Leave { id: a.my_id() }));
    assert_eq!(c.recv(WAIT), Some(Msg::Leave { id: a.my_id() }));
    // A second leave, then a disconnect: still one announcement.
    a.send_leave();
    std::thread::sleep(Duration::from_millis(100));
    // The leaver is out of the room: it hears nothing of it.
    b.send_chat("after");
    assert_eq!(c.recv(WAIT), Some(Msg::Chat { id: b.my_id(), text: "after".into() }));
    assert!(a.recv(QUIET).is_none());
    drop(a);
    assert_eq!(b.drain(), vec![Msg::Chat { id: b.my_id(), text: "after".into() }]);
    assert!(c.recv(QUIET).is_none());
}

#[test]
fn a_clean_disconnect_is_a_leave() {
    let (_server, addr) = start(test_config());
    let (a, _) = join(addr);
    let (mut b, _) = join(addr);
    let id = a.my_id();
    drop(a);
    assert_eq!(b.drain(), vec![Msg::Leave { id }]);
}

#[test]
fn an_abrupt_disconnect_is_a_leave() {
    let (_server, addr) = start(test_config());
    let (a, _) = join(addr);
    let (mut b, _) = join(addr);
    let id = a.my_id();
    socket2::SockRef::from(&a.stream).set_linger(Some(Duration::ZERO)).unwrap();
    drop(a);
    assert_eq!(b.drain(), vec![Msg::Leave { id }]);
}

#[test]
fn a_leave_and_a_disconnect_in_the_same_frame_are_one_leave() {
    let (_server, addr) = start(test_config());
    let (mut a, _) = join(addr);
    let (mut b, _) = join(addr);
    a.drain();
    let id = a.my_id();
    a.send_leave();
    drop(a);
    assert_eq!(b.drain(), vec![Msg::Leave { id }]);
}

#[test]
fn game_code_despawning_a_player_is_a_leave() {
    let (server, addr) = start(test_config());
    let (mut a, _) = join(addr);
    let (mut b, _) = join(addr);
    a.drain();
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
    assert_eq!(b.drain(), vec![Msg::Leave { id }]);
    let (_c, listed) = join(addr);
    assert!(listed.iter().all(|p| p.1 != id), "no ghost in a newcomer's list: {listed:?}");
}
