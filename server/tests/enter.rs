//! Entering the game, as the course's clients expect it: `S_PlayerList` to the newcomer with
//! itself marked `isSelf`, then `S_BroadcastEnterGame` to everyone in the room.

mod support;

use std::time::{Duration, Instant};

use bevy_ecs::prelude::*;
use net_plugin::testing::io_stats;
use server::{InRoom, Player, Position, Room, RoomConfig, ServerConfig};
use support::{CourseClient, Msg, WAIT, chat_bytes, join, start, test_config, times_told};

#[test]
fn the_first_player_sees_only_itself() {
    let (_server, addr) = start(test_config());
    let (me, listed) = join(addr);
    assert_eq!(listed, vec![(true, 1, 0.0, 0.0, 0.0)]);
    assert_eq!(me.my_id(), 1, "player ids start at 1");
}

#[test]
fn a_second_player_is_announced_to_the_first_and_lists_it() {
    let (_server, addr) = start(test_config());
    let (mut a, _) = join(addr);
    a.send_move(3.0, 0.0, 4.0);
    assert_eq!(a.recv(WAIT), Some(Msg::Move { id: 1, x: 3.0, y: 0.0, z: 4.0 }));
    let (b, listed) = join(addr);
    assert_eq!(listed, vec![(false, 1, 3.0, 0.0, 4.0), (true, 2, 0.0, 0.0, 0.0)]);
    assert_eq!(a.recv(WAIT), Some(Msg::Enter { id: b.my_id(), x: 0.0, y: 0.0, z: 0.0 }));
    assert_eq!(a.sync(), vec![], "told once");
}

#[test]
fn two_players_joining_in_the_same_frame_are_each_told_about_the_other_once() {
    let (server, addr) = start(test_config());
    let (mut watcher, _) = join(addr);
    let (mut a, mut b) = server.run(move |app| support::connect_both(app, addr));
    let (a_list, b_list) = (a.enter(), b.enter());
    // Their pings were answered in the frame they entered, after the enter broadcasts.
    let (a_after, b_after) = (a.recv_until(|m| *m == Msg::Pong(1)), b.recv_until(|m| *m == Msg::Pong(1)));
    let (ida, idb) = (a.my_id(), b.my_id());
    assert_eq!(times_told(&a_list, &a_after, idb), 1, "a: {a_list:?} then {a_after:?}");
    assert_eq!(times_told(&b_list, &b_after, ida), 1, "b: {b_list:?} then {b_after:?}");
    let watched = watcher.sync();
    assert_eq!(times_told(&[], &watched, ida), 1);
    assert_eq!(times_told(&[], &watched, idb), 1);
}

#[test]
fn packets_sent_right_after_connecting_are_not_lost() {
    let (server, addr) = start(test_config());
    // Connected and read by the I/O side before the app's next frame sees the connection.
    let mut early = server.run(move |app| {
        let before = io_stats(app.world()).bytes_in;
        let mut c = CourseClient::connect(addr);
        let words = chat_bytes("first words");
        c.send(&words);
        c.send_move(1.0, 0.0, 2.0);
        let deadline = Instant::now() + WAIT;
        while io_stats(app.world()).bytes_in < before + words.len() as u64 + 16 {
            assert!(Instant::now() < deadline, "the server never read them");
            std::thread::sleep(Duration::from_millis(1));
        }
        c
    });
    early.enter();
    let id = early.my_id();
    // The line is relayed in the frame the player entered; the move at a tick of that frame
    // or a later one: after its echo, a barrier finds the line if it did not come before.
    let mut after = early.recv_until(|m| *m == Msg::Move { id, x: 1.0, y: 0.0, z: 2.0 });
    after.extend(early.sync());
    assert_eq!(after, vec![Msg::Chat { id, text: "first words".into() }]);
}

#[test]
fn a_connection_that_closes_at_once_leaves_no_ghost() {
    let (server, addr) = start(test_config());
    let (mut watcher, _) = join(addr);
    // Opened and reset while the app is paused: its end is queued right behind its start.
    server.run(move |app| {
        let ended = |app: &bevy_app::App| io_stats(app.world()).disconnects_by_label().map(|(_, n)| n).sum::<u64>();
        let before = ended(app);
        let c = CourseClient::connect(addr);
        socket2::SockRef::from(&c.stream).set_linger(Some(Duration::ZERO)).unwrap();
        drop(c);
        let deadline = Instant::now() + WAIT;
        while ended(app) == before {
            assert!(Instant::now() < deadline, "the server never saw the reset");
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    // Its end handled (the counter above is bumped just before the end is queued):
    let alone =
        |app: &mut bevy_app::App| app.world_mut().query::<&net_plugin::Connection>().iter(app.world()).count() == 1;
    assert!(server.wait_until(WAIT, alone), "only the watcher is connected");
    // The watcher may see the ghost enter, but then it must see it leave.
    let watched = watcher.sync();
    for m in &watched {
        if let Msg::Enter { id, .. } = m {
            assert!(watched.contains(&Msg::Leave { id: *id }), "{watched:?}");
        }
    }
    let (_late, listed) = join(addr);
    assert_eq!(listed.len(), 2, "only the watcher and the newcomer: {listed:?}");
}

#[test]
fn a_list_too_long_for_one_packet_is_split() {
    // One room for everyone: rooms of the default capacity never need a second packet.
    let (server, addr) = start(ServerConfig { room: RoomConfig { capacity: 0 }, ..test_config() });
    let (_first, _) = join(addr);
    // 4,000 more players (server-side characters, so the test needs no 4,000 sockets).
    server.run(|app| {
        let world = app.world_mut();
        let room = world.query::<(Entity, &Room)>().single(world).expect("one room").0;
        // Spawned with an `InRoom`, each is put on the room's member list by Bevy.
        for i in 0..4000 {
            world.spawn((Player { id: 10_000 + i }, Position { x: i as f32, y: 0.0, z: 0.0 }, InRoom(room)));
        }
        assert_eq!(world.get::<Room>(room).unwrap().members().len(), 4001);
    });
    let mut newcomer = CourseClient::connect(addr);
    let mut lists = Vec::new();
    loop {
        match newcomer.recv(WAIT).expect("the enter sequence") {
            Msg::List(players) => lists.push(players),
            Msg::Enter { .. } => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(lists.iter().map(Vec::len).collect::<Vec<_>>(), vec![3854, 4002 - 3854]);
    let all: Vec<_> = lists.concat();
    assert_eq!(all.iter().filter(|p| p.0).count(), 1);
    assert_eq!(all.iter().filter(|p| p.1 >= 10_000).count(), 4000);
    assert_eq!(all[1 + 3999].2, 3999.0, "positions travel with the list");
    assert_eq!(newcomer.sync(), vec![]);
}
