//! The latency probe: `C_Ping` (id 9) is answered with `S_Pong` (id 10) carrying the same
//! clientTime back, to the sender alone.

mod support;

use support::{Msg, WAIT, join, ping_bytes, start, test_config};

#[test]
fn a_ping_is_answered_to_its_sender_alone() {
    let (_server, addr) = start(test_config());
    let (mut pinger, _) = join(addr);
    let (mut other, _) = join(addr);
    assert!(matches!(pinger.sync()[..], [Msg::Enter { .. }]));
    // C_Ping { clientTime: 0x0102030405060708 }, written out byte by byte.
    pinger.send(&[12, 0, 9, 0, 8, 7, 6, 5, 4, 3, 2, 1]);
    // S_Pong { clientTime } comes back: size 12, id 10, the same eight bytes.
    assert_eq!(pinger.recv(WAIT), Some(Msg::Pong(0x0102_0304_0506_0708)));
    assert_eq!(other.sync(), vec![], "the room hears nothing of it");
}

#[test]
fn pings_in_one_write_are_answered_in_order() {
    let (_server, addr) = start(test_config());
    let (mut client, _) = join(addr);
    let times = [1, -5, i64::MAX, i64::MIN, 0];
    let pings: Vec<u8> = times.iter().flat_map(|t| ping_bytes(*t)).collect();
    client.send(&pings);
    let pongs: Vec<Msg> = (0..times.len()).map(|_| client.recv(WAIT).expect("a pong")).collect();
    assert_eq!(pongs, times.map(Msg::Pong));
    assert_eq!(client.sync(), vec![], "one answer each");
}

#[test]
fn a_connection_that_left_its_room_is_still_answered() {
    let (_server, addr) = start(test_config());
    let (mut client, _) = join(addr);
    client.send_leave();
    client.send(&ping_bytes(42));
    assert_eq!(client.recv(WAIT), Some(Msg::Pong(42)));
}
