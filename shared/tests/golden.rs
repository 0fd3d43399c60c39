//! The golden bytes of `PROTOCOL.md`, written out by hand: what the course's clients send and
//! expect. Each is checked both ways, so a bug that encoder and decoder share cannot hide.

use shared::s_player_list::Player;
use shared::{
    C_Chat, C_LeaveGame, C_Move, ClientPacket, Packet, PacketId, S_BroadcastEnterGame, S_BroadcastLeaveGame,
    S_BroadcastMove, S_Chat, S_PlayerList, ServerPacket, decode, decode_packet, encode_to_vec,
};

fn check<P: Packet>(packet: P, golden: &[u8]) {
    assert_eq!(encode_to_vec(&packet).unwrap(), golden, "encoding {}", P::NAME);
    assert_eq!(decode_packet::<P>(golden).unwrap(), packet, "decoding {}", P::NAME);
}

#[test]
fn c_move() {
    check(
        C_Move { pos_x: 10.0, pos_y: 0.0, pos_z: -5.0 },
        &[0x10, 0x00, 0x05, 0x00, 0x00, 0x00, 0x20, 0x41, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xA0, 0xC0],
    );
}

#[test]
fn s_broadcast_move() {
    check(
        S_BroadcastMove { player_id: 7, pos_x: 10.0, pos_y: 0.0, pos_z: -5.0 },
        &[
            0x14, 0x00, 0x06, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x41, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0xA0, 0xC0,
        ],
    );
}

#[test]
fn c_leave_game() {
    check(C_LeaveGame, &[0x04, 0x00, 0x02, 0x00]);
}

#[test]
fn s_player_list() {
    check(
        S_PlayerList {
            players: vec![
                Player { is_self: false, player_id: 1, pos_x: 3.0, pos_y: 0.0, pos_z: 4.0 },
                Player { is_self: true, player_id: 2, pos_x: 0.0, pos_y: 0.0, pos_z: 0.0 },
            ],
        },
        &[
            0x28, 0x00, 0x04, 0x00, 0x02, 0x00, // size 40, id 4, count 2
            0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x40, 0x01,
            0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ],
    );
}

#[test]
fn c_chat() {
    check(C_Chat { chat: "Hi".into() }, &[0x0A, 0x00, 0x07, 0x00, 0x04, 0x00, 0x48, 0x00, 0x69, 0x00]);
}

#[test]
fn s_chat_with_non_ascii_text() {
    // "안녕" is U+C548 U+B155; "😀" is the surrogate pair D83D DE00.
    check(
        S_Chat { player_id: 3, chat: "안녕😀".into() },
        &[0x12, 0x00, 0x08, 0x00, 0x03, 0x00, 0x00, 0x00, 0x08, 0x00, 0x48, 0xC5, 0x55, 0xB1, 0x3D, 0xD8, 0x00, 0xDE],
    );
}

#[test]
fn s_broadcast_enter_and_leave() {
    check(
        S_BroadcastEnterGame { player_id: 1, pos_x: 0.0, pos_y: 0.0, pos_z: 0.0 },
        &[0x14, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    check(S_BroadcastLeaveGame { player_id: 258 }, &[0x08, 0x00, 0x03, 0x00, 0x02, 0x01, 0x00, 0x00]);
}

#[test]
fn ids_follow_the_course_file_order() {
    let ids = [
        (PacketId::S_BroadcastEnterGame, 1),
        (PacketId::C_LeaveGame, 2),
        (PacketId::S_BroadcastLeaveGame, 3),
        (PacketId::S_PlayerList, 4),
        (PacketId::C_Move, 5),
        (PacketId::S_BroadcastMove, 6),
        (PacketId::C_Chat, 7),
        (PacketId::S_Chat, 8),
    ];
    for (id, n) in ids {
        assert_eq!(id.get(), n);
        assert_eq!(PacketId::try_from(n), Ok(id));
        assert_eq!(id.info().id, n);
    }
    assert_eq!(PacketId::try_from(0), Err(0));
    assert_eq!(PacketId::try_from(u16::MAX), Err(u16::MAX));
}

#[test]
fn a_set_decodes_its_own_direction() {
    let bytes = [0x10, 0x00, 0x05, 0x00, 0x00, 0x00, 0x20, 0x41, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xA0, 0xC0];
    assert_eq!(
        decode::<ClientPacket>(&bytes).unwrap(),
        ClientPacket::Move(C_Move { pos_x: 10.0, pos_y: 0.0, pos_z: -5.0 })
    );
    let bytes = [0x0A, 0x00, 0x03, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00];
    // S_BroadcastLeaveGame is 8 bytes; 10 here leaves 2 trailing bytes.
    assert!(decode::<ServerPacket>(&bytes).is_err());
    let bytes = [0x08, 0x00, 0x03, 0x00, 0x07, 0x00, 0x00, 0x00];
    assert_eq!(
        decode::<ServerPacket>(&bytes).unwrap(),
        ServerPacket::BroadcastLeaveGame(S_BroadcastLeaveGame { player_id: 7 })
    );
}

#[test]
fn bool_reads_any_non_zero_byte_as_true() {
    let bytes = [
        0x17, 0x00, 0x04, 0x00, 0x01, 0x00, // size 23, id 4, count 1
        0x02, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    let list = decode_packet::<S_PlayerList>(&bytes).unwrap();
    assert!(list.players[0].is_self);
    assert_eq!(list.players[0].player_id, 9);
}
