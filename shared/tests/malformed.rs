//! Every way a packet can be malformed gives its own typed error: never a panic, never a read
//! into the bytes after the packet.

use shared::{
    C_Chat, C_Move, ClientPacket, DecodeError, Direction, EncodeError, S_Chat, S_PlayerList, ServerPacket, decode,
    decode_packet, encode_to_vec, s_player_list::Player,
};

#[test]
fn fewer_bytes_than_a_header() {
    assert_eq!(decode::<ClientPacket>(&[0x04, 0x00, 0x02]), Err(DecodeError::ShortHeader { len: 3 }));
    assert_eq!(decode::<ClientPacket>(&[]), Err(DecodeError::ShortHeader { len: 0 }));
}

#[test]
fn header_size_disagrees_with_the_bytes() {
    assert_eq!(
        decode::<ClientPacket>(&[0x05, 0x00, 0x02, 0x00]),
        Err(DecodeError::SizeMismatch { declared: 5, actual: 4 })
    );
}

#[test]
fn unknown_id() {
    assert_eq!(decode::<ClientPacket>(&[0x04, 0x00, 0x63, 0x00]), Err(DecodeError::UnknownPacketId { id: 99 }));
    assert_eq!(decode::<ClientPacket>(&[0x04, 0x00, 0x00, 0x00]), Err(DecodeError::UnknownPacketId { id: 0 }));
}

#[test]
fn a_packet_of_the_other_direction() {
    // S_BroadcastLeaveGame { 1 } sent to a server.
    assert_eq!(
        decode::<ClientPacket>(&[0x08, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00]),
        Err(DecodeError::WrongDirection { id: 3, name: "S_BroadcastLeaveGame", direction: Direction::ServerToClient })
    );
    // C_LeaveGame sent to a client.
    assert_eq!(
        decode::<ServerPacket>(&[0x04, 0x00, 0x02, 0x00]),
        Err(DecodeError::WrongDirection { id: 2, name: "C_LeaveGame", direction: Direction::ClientToServer })
    );
}

#[test]
fn a_fixed_field_past_the_end() {
    // C_Move with only posX and half of posY.
    assert_eq!(
        decode::<ClientPacket>(&[0x0A, 0x00, 0x05, 0x00, 0x00, 0x00, 0x20, 0x41, 0x00, 0x00]),
        Err(DecodeError::Truncated { packet: "C_Move", field: "posY", needed: 4, remaining: 2 })
    );
}

#[test]
fn a_string_length_past_the_end() {
    // C_Chat claiming 200 bytes of text, holding 2.
    assert_eq!(
        decode::<ClientPacket>(&[0x08, 0x00, 0x07, 0x00, 0xC8, 0x00, 0x48, 0x00]),
        Err(DecodeError::StringOverrun { packet: "C_Chat", field: "chat", len: 200, remaining: 2 })
    );
    // A string length cut in half.
    assert_eq!(
        decode::<ClientPacket>(&[0x05, 0x00, 0x07, 0x00, 0x02]),
        Err(DecodeError::Truncated { packet: "C_Chat", field: "chat", needed: 2, remaining: 1 })
    );
}

#[test]
fn a_string_length_that_stops_inside_the_packet_leaves_trailing_bytes() {
    // The string claims 2 bytes, 4 follow: the course's reader would have read on into the next
    // field or packet; ours stops at the string and reports the rest.
    assert_eq!(
        decode::<ClientPacket>(&[0x0A, 0x00, 0x07, 0x00, 0x02, 0x00, 0x48, 0x00, 0x69, 0x00]),
        Err(DecodeError::TrailingBytes { packet: "C_Chat", extra: 2 })
    );
}

#[test]
fn an_odd_string_length() {
    assert_eq!(
        decode::<ClientPacket>(&[0x09, 0x00, 0x07, 0x00, 0x03, 0x00, 0x48, 0x00, 0x69]),
        Err(DecodeError::OddStringLength { packet: "C_Chat", field: "chat", len: 3 })
    );
}

#[test]
fn an_unpaired_surrogate() {
    // A lone high surrogate D83D followed by 'A'.
    assert_eq!(
        decode::<ClientPacket>(&[0x0A, 0x00, 0x07, 0x00, 0x04, 0x00, 0x3D, 0xD8, 0x41, 0x00]),
        Err(DecodeError::UnpairedSurrogate { packet: "C_Chat", field: "chat", unit: 0xD83D })
    );
    // A lone low surrogate DE00.
    assert_eq!(
        decode::<ClientPacket>(&[0x08, 0x00, 0x07, 0x00, 0x02, 0x00, 0x00, 0xDE]),
        Err(DecodeError::UnpairedSurrogate { packet: "C_Chat", field: "chat", unit: 0xDE00 })
    );
}

#[test]
fn a_list_count_past_the_end() {
    // S_PlayerList claiming 65,535 players in 6 bytes: rejected before any allocation.
    assert_eq!(
        decode::<ServerPacket>(&[0x06, 0x00, 0x04, 0x00, 0xFF, 0xFF]),
        Err(DecodeError::ListOverrun {
            packet: "S_PlayerList",
            field: "player",
            count: 65535,
            needed: 65535 * 17,
            remaining: 0
        })
    );
    // Two players claimed, one and a half present.
    let mut bytes = vec![0x00, 0x00, 0x04, 0x00, 0x02, 0x00];
    bytes.extend_from_slice(&[0x01; 17 + 9]);
    bytes[0] = bytes.len() as u8;
    assert!(matches!(decode::<ServerPacket>(&bytes), Err(DecodeError::ListOverrun { count: 2, remaining: 26, .. })));
}

#[test]
fn trailing_bytes_after_the_last_field() {
    // C_LeaveGame has no fields; two extra bytes.
    assert_eq!(
        decode::<ClientPacket>(&[0x06, 0x00, 0x02, 0x00, 0xAA, 0xBB]),
        Err(DecodeError::TrailingBytes { packet: "C_LeaveGame", extra: 2 })
    );
}

#[test]
fn decode_packet_checks_the_id() {
    assert_eq!(decode_packet::<C_Move>(&[0x04, 0x00, 0x02, 0x00]), Err(DecodeError::UnknownPacketId { id: 2 }));
}

#[test]
fn errors_read_well() {
    let e = decode::<ClientPacket>(&[0x09, 0x00, 0x07, 0x00, 0x03, 0x00, 0x48, 0x00, 0x69]).unwrap_err();
    assert_eq!(e.to_string(), "C_Chat.chat: a string byte length of 3 is odd; UTF-16 comes in 2-byte units");
}

#[test]
fn a_player_list_too_large_for_one_packet_is_an_error_not_a_panic() {
    let players = vec![Player::default(); 4000];
    assert_eq!(
        encode_to_vec(&S_PlayerList { players }),
        Err(EncodeError::PacketTooLarge { packet: "S_PlayerList", size: 4 + 2 + 4000 * 17 })
    );
}

#[test]
fn the_player_list_capacity_is_generated_and_exact() {
    // Worked out by hand from PROTOCOL.md: a packet is at most 65,535 bytes (u16 size); the
    // 4-byte header and the 2-byte count leave 65,529, and a player (bool, int, 3 floats) takes 17:
    // 65,529 / 17 = 3,854 (3,854 * 17 = 65,518; one more would need 65,535).
    assert_eq!(S_PlayerList::MAX_PLAYERS, 3854);
    let full = S_PlayerList { players: vec![Player::default(); S_PlayerList::MAX_PLAYERS] };
    let bytes = encode_to_vec(&full).unwrap();
    assert_eq!(bytes.len(), 65_524);
    assert_eq!(bytes[..6], [0xF4, 0xFF, 0x04, 0x00, 0x0E, 0x0F], "size 65,524, id 4, count 3,854");
    let over = S_PlayerList { players: vec![Player::default(); S_PlayerList::MAX_PLAYERS + 1] };
    assert_eq!(encode_to_vec(&over), Err(EncodeError::PacketTooLarge { packet: "S_PlayerList", size: 65_541 }));
}

fn numbered(n: usize) -> Vec<Player> {
    (1..=n as i32).map(|player_id| Player { player_id, ..Player::default() }).collect()
}

#[test]
fn a_long_player_list_splits_into_packets_that_each_encode() {
    let players = numbered(2 * 3854 + 1);
    let packets = S_PlayerList::split(players.clone());
    assert_eq!(packets.iter().map(|p| p.players.len()).collect::<Vec<_>>(), [3854, 3854, 1]);
    for packet in &packets {
        assert!(encode_to_vec(packet).is_ok());
    }
    let joined: Vec<Player> = packets.into_iter().flat_map(|p| p.players).collect();
    assert_eq!(joined, players, "every player once, in order");
}

#[test]
fn a_list_that_fits_stays_one_packet_even_when_empty() {
    assert_eq!(S_PlayerList::split(Vec::new()), [S_PlayerList { players: Vec::new() }]);
    let players = numbered(3854);
    assert_eq!(S_PlayerList::split(players.clone()), [S_PlayerList { players }]);
}

#[test]
fn strings_too_long_for_their_length_prefix() {
    let chat = "x".repeat(40_000);
    assert_eq!(
        encode_to_vec(&C_Chat { chat }),
        Err(EncodeError::StringTooLong { packet: "C_Chat", field: "chat", bytes: 80_000 })
    );
    // Fits its own length, not the packet.
    let chat = "x".repeat(32_765);
    assert_eq!(
        encode_to_vec(&S_Chat { player_id: 1, chat }),
        Err(EncodeError::PacketTooLarge { packet: "S_Chat", size: 4 + 4 + 2 + 65_530 })
    );
}

#[test]
fn a_failed_encode_writes_nothing() {
    let mut buf = vec![0xEE];
    let players = vec![Player::default(); 4000];
    assert!(shared::encode(&S_PlayerList { players }, &mut buf).is_err());
    assert_eq!(buf, [0xEE]);
}
