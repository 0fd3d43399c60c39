//! Moves: applied at the next tick, broadcast once per tick to the room, mover included;
//! invalid positions are refused.

mod support;

use server::{MoveBatches, OutOfBounds, Room, RoomConfig, ServerConfig, WorldConfig};
use support::{CourseClient, Msg, WAIT, join, move_bytes, start, test_config};

#[test]
fn a_move_is_echoed_to_the_mover_and_seen_by_the_others() {
    let (_server, addr) = start(test_config());
    let (mut a, _) = join(addr);
    let (mut b, _) = join(addr);
    assert!(matches!(a.recv(WAIT), Some(Msg::Enter { .. })));
    a.send_move(10.0, 0.0, -5.0);
    let expected = Msg::Move { id: a.my_id(), x: 10.0, y: 0.0, z: -5.0 };
    assert_eq!(a.recv(WAIT), Some(expected.clone()));
    assert_eq!(b.recv(WAIT), Some(expected));
    b.send_move(-50.0, 0.0, 49.0);
    let expected = Msg::Move { id: b.my_id(), x: -50.0, y: 0.0, z: 49.0 };
    assert_eq!(a.recv(WAIT), Some(expected.clone()));
    assert_eq!(b.recv(WAIT), Some(expected));
}

#[test]
fn moves_within_one_tick_are_broadcast_once_with_the_last_position() {
    let (_server, addr) = start(test_config());
    let (mut a, _) = join(addr);
    let bytes: Vec<u8> = [move_bytes(1.0, 0.0, 1.0), move_bytes(2.0, 0.0, 2.0), move_bytes(3.0, 0.0, 3.0)].concat();
    a.send(&bytes);
    // One write, read at once: one tick applies all three. What that tick sent left with the
    // echo, before the pong.
    assert_eq!(a.recv(WAIT), Some(Msg::Move { id: a.my_id(), x: 3.0, y: 0.0, z: 3.0 }));
    assert_eq!(a.sync(), vec![], "one echo for the tick, at the last position");
}

#[test]
fn a_move_to_the_same_place_is_still_echoed() {
    // Clients time their round trip by their own echo.
    let (_server, addr) = start(test_config());
    let (mut a, _) = join(addr);
    for _ in 0..3 {
        a.send_move(5.0, 0.0, 5.0);
        assert_eq!(a.recv(WAIT), Some(Msg::Move { id: a.my_id(), x: 5.0, y: 0.0, z: 5.0 }));
    }
}

#[test]
fn a_non_finite_position_disconnects_its_sender_and_is_never_broadcast() {
    let (_server, addr) = start(test_config());
    let (mut cheat, _) = join(addr);
    let (mut b, _) = join(addr);
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut other = CourseClient::connect(addr);
        other.enter();
        assert!(matches!(b.recv(WAIT), Some(Msg::Enter { .. })));
        other.send_move(0.0, bad, 0.0);
        assert!(other.closed(), "a move with {bad} disconnects its sender");
        assert_eq!(b.recv(WAIT), Some(Msg::Leave { id: other.my_id() }));
    }
    cheat.send_move(f32::NAN, 0.0, 0.0);
    assert!(cheat.closed());
    // A broadcast of the move would have come in its tick, before the leave.
    assert_eq!(b.recv(WAIT), Some(Msg::Leave { id: cheat.my_id() }));
    assert_eq!(b.sync(), vec![]);
}

#[test]
fn positions_outside_the_world_are_clamped_by_default() {
    let (_server, addr) = start(test_config());
    let (mut a, _) = join(addr);
    a.send_move(20_000.0, -1e9, 3.5);
    assert_eq!(a.recv(WAIT), Some(Msg::Move { id: a.my_id(), x: 10_000.0, y: -10_000.0, z: 3.5 }));
}

#[test]
fn positions_outside_the_world_can_disconnect_instead() {
    let world = WorldConfig { out_of_bounds: OutOfBounds::Disconnect, ..WorldConfig::default() };
    let (_server, addr) = start(ServerConfig { world, ..test_config() });
    let (mut a, _) = join(addr);
    a.send_move(1.0, 0.0, 1.0);
    assert!(matches!(a.recv(WAIT), Some(Msg::Move { .. })));
    a.send_move(20_000.0, 0.0, 0.0);
    assert!(a.closed());
}

#[test]
fn moves_from_a_player_who_left_are_not_broadcast() {
    let (_server, addr) = start(test_config());
    let (mut a, _) = join(addr);
    let (mut b, _) = join(addr);
    assert!(matches!(a.recv(WAIT), Some(Msg::Enter { .. })));
    a.send_leave();
    a.send_move(7.0, 0.0, 7.0);
    assert_eq!(b.recv(WAIT), Some(Msg::Leave { id: a.my_id() }));
    // a's pong: the server read its move. b's move, sent after it, is applied at that tick or
    // a later one, so whatever a's move caused was sent before b's echo.
    assert_eq!(a.sync(), vec![]);
    b.send_move(1.0, 0.0, 1.0);
    let ib = b.my_id();
    let before = b.recv_until(|m| *m == Msg::Move { id: ib, x: 1.0, y: 0.0, z: 1.0 });
    assert_eq!(before, vec![], "nothing from a player who left");
    assert_eq!(a.sync(), vec![], "a player who left is not in the room");
}

/// Each room's moves of a tick are encoded once, in a batch the server keeps between ticks: a
/// room that closes takes its batch with it, so rooms opened and emptied over a long run leave
/// nothing behind.
#[test]
fn rooms_that_come_and_go_leave_no_batch_of_moves_behind() {
    let (server, addr) = start(ServerConfig { room: RoomConfig { capacity: 1 }, ..test_config() });
    let batches = |app: &mut bevy_app::App| app.world().resource::<MoveBatches>().len();
    let (mut stays, _) = join(addr);
    stays.send_move(1.0, 0.0, 1.0);
    assert_eq!(stays.recv(WAIT), Some(Msg::Move { id: stays.my_id(), x: 1.0, y: 0.0, z: 1.0 }));
    // 30 rooms, one after another: each opened by a player who moves (its room gets a batch),
    // then leaves (the room closes).
    for i in 0..30 {
        let (mut p, _) = join(addr);
        p.send_move(i as f32, 0.0, 0.0);
        assert_eq!(p.recv(WAIT), Some(Msg::Move { id: p.my_id(), x: i as f32, y: 0.0, z: 0.0 }));
        assert_eq!(server.run(batches), 2, "the room that stays and this one");
        p.send_leave();
        assert_eq!(p.sync(), vec![], "out of its room");
    }
    let rooms = |app: &mut bevy_app::App| app.world_mut().query::<&Room>().iter(app.world()).count();
    assert!(server.wait_until(WAIT, move |app| rooms(app) == 1), "the emptied rooms closed");
    assert_eq!(server.run(batches), 1, "only the open room keeps a batch");
    // And the room that stays still hears its moves.
    stays.send_move(2.0, 0.0, 2.0);
    assert_eq!(stays.recv(WAIT), Some(Msg::Move { id: stays.my_id(), x: 2.0, y: 0.0, z: 2.0 }));
}
