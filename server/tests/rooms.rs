//! Rooms: further rooms open as they fill (1,000 players each by default; capacity 0 is one
//! room for everyone, as in the course), and broadcasts stay within a room.

mod support;

use bevy_ecs::prelude::*;
use server::{InRoom, Player, Position, Room, RoomConfig, ServerConfig};
use support::{Msg, WAIT, join, start, test_config};

#[test]
fn players_below_the_default_capacity_share_one_room() {
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
    assert_eq!(a.sync(), vec![], "c's enter stays in its room");

    a.send_move(1.0, 0.0, 1.0);
    c.send_chat("room two");
    assert_eq!(b.recv(WAIT), Some(Msg::Move { id: a.my_id(), x: 1.0, y: 0.0, z: 1.0 }));
    assert_eq!(c.recv(WAIT), Some(Msg::Chat { id: c.my_id(), text: "room two".into() }));
    // b got a's move: whatever that tick sent went in the same frame, before these pongs.
    assert_eq!(c.sync(), vec![], "a's move stays in its room");
    assert_eq!(a.sync(), vec![Msg::Move { id: a.my_id(), x: 1.0, y: 0.0, z: 1.0 }]);

    // A place freed in the first room is taken by the next newcomer.
    drop(b);
    assert!(matches!(a.recv(WAIT), Some(Msg::Leave { .. })));
    let (_d, d_list) = join(addr);
    assert_eq!(d_list.len(), 2);
    assert!(d_list.iter().any(|p| p.1 == a.my_id()));
}

/// Fills the server's only room with `n` server-side characters (so that the test needs no
/// thousand sockets), after one real player entered to open it.
fn fill_first_room(server: &net_plugin::testing::AppThread, n: i32) {
    server.run(move |app| {
        let world = app.world_mut();
        let room = world.query::<(Entity, &Room)>().single(world).expect("one room").0;
        // Spawning with `InRoom` makes them members (Bevy keeps the room's list).
        for i in 0..n {
            world.spawn((Player { id: 100_000 + i }, Position::default(), InRoom(room)));
        }
    });
}

#[test]
fn by_default_a_room_of_1000_is_full_and_the_next_player_opens_another() {
    let (server, addr) = start(test_config());
    let (_first, _) = join(addr);
    fill_first_room(&server, 998);
    let (_thousandth, listed) = join(addr);
    assert_eq!(listed.len(), 1000, "the thousandth player joins the first room");
    let (_next, listed) = join(addr);
    assert_eq!(listed.len(), 1, "the next is alone in a second room");
    let rooms = server.run(|app| app.world_mut().query::<&Room>().iter(app.world()).count());
    assert_eq!(rooms, 2);
}

#[test]
fn capacity_0_is_one_room_for_everyone() {
    let (server, addr) = start(ServerConfig { room: RoomConfig { capacity: 0 }, ..test_config() });
    let (_first, _) = join(addr);
    fill_first_room(&server, 1500);
    let (_newcomer, listed) = join(addr);
    assert_eq!(listed.len(), 1502);
    let rooms = server.run(|app| app.world_mut().query::<&Room>().iter(app.world()).count());
    assert_eq!(rooms, 1);
}

/// The ids of the rooms open now, in order.
fn room_ids(app: &mut bevy_app::App) -> Vec<u32> {
    let world = app.world_mut();
    let mut ids: Vec<u32> = world.query::<&Room>().iter(world).map(|r| r.id).collect();
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
    assert_eq!(b.sync(), vec![], "room 2 heard of none of it");
}
