//! Rooms: one by default, as in the course; with a capacity, further rooms open as they fill,
//! and broadcasts stay within a room.

mod support;

use server::{RoomConfig, ServerConfig};
use support::{Msg, QUIET, WAIT, join, start, test_config};

#[test]
fn by_default_everyone_is_in_one_room() {
    let (_server, addr) = start(test_config());
    let mut players: Vec<_> = (0..10).map(|_| join(addr)).collect();
    assert_eq!(players[9].1.len(), 10);
    players[0].0.send_chat("all of you");
    for (p, _) in &mut players {
        let skipped = p.recv_until(|m| matches!(m, Msg::Chat { .. }));
        assert!(skipped.iter().all(|m| matches!(m, Msg::Enter { .. })));
    }
}

#[test]
fn a_full_room_opens_another_and_broadcasts_stay_inside() {
    let (_server, addr) = start(ServerConfig { room: RoomConfig { capacity: 2 }, ..test_config() });
    let (mut a, _) = join(addr);
    let (mut b, b_list) = join(addr);
    let (mut c, c_list) = join(addr);
    assert_eq!(b_list.len(), 2, "a and b share the first room");
    assert_eq!(c_list, vec![(true, c.my_id(), 0.0, 0.0, 0.0)], "c is alone in a second room");
    assert_eq!(a.recv(WAIT), Some(Msg::Enter { id: b.my_id(), x: 0.0, y: 0.0, z: 0.0 }));
    assert!(a.recv(QUIET).is_none(), "c's enter stays in its room");

    a.send_move(1.0, 0.0, 1.0);
    c.send_chat("room two");
    assert_eq!(b.recv(WAIT), Some(Msg::Move { id: a.my_id(), x: 1.0, y: 0.0, z: 1.0 }));
    assert_eq!(c.recv(WAIT), Some(Msg::Chat { id: c.my_id(), text: "room two".into() }));
    assert!(c.recv(QUIET).is_none());
    assert_eq!(a.drain(), vec![Msg::Move { id: a.my_id(), x: 1.0, y: 0.0, z: 1.0 }]);

    // A place freed in the first room is taken by the next newcomer.
    drop(b);
    assert!(matches!(a.recv(WAIT), Some(Msg::Leave { .. })));
    let (_d, d_list) = join(addr);
    assert_eq!(d_list.len(), 2);
    assert!(d_list.iter().any(|p| p.1 == a.my_id()));
}

/// The ids of the rooms open now, in order.
fn room_ids(app: &mut bevy_app::App) -> Vec<u32> {
    let world = app.world_mut();
    let mut ids: Vec<u32> = world.query::<&server::Room>().iter(world).map(|r| r.id).collect();
    ids.sort();
    ids
}

#[test]
fn a_room_closes_when_its_last_player_leaves() {
    let (server, addr) = start(ServerConfig { room: RoomConfig { capacity: 1 }, ..test_config() });
    let (a, _) = join(addr);
    let (mut b, _) = join(addr);
    assert_eq!(server.run(room_ids), [1, 2]);
    drop(a);
    assert!(server.wait_until(WAIT, |app| room_ids(app) == [2]), "the emptied room 1 is gone");
    // Room 2 is full: a newcomer opens room 3.
    let (c, listed) = join(addr);
    assert_eq!(listed, vec![(true, c.my_id(), 0.0, 0.0, 0.0)]);
    assert_eq!(server.run(room_ids), [2, 3]);
    assert!(b.recv(QUIET).is_none(), "room 2 heard of none of it");
}
