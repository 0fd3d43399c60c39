//! Property tests: every packet type of the definition file round-trips, and no input makes the
//! framer or decoder panic.
//!
//! Packets are generated from `shared::PACKETS` (the layout the generator describes), so a packet
//! added to `assets/PDL.xml` is covered here without touching this file.

use proptest::collection::vec;
use proptest::prelude::*;
use shared::s_player_list::Player;
use shared::{
    C_Move, ClientPacket, Direction, FieldSchema, FieldType, FrameDecoder, PACKETS, PacketSet, S_Chat, S_PlayerList,
    Scalar, ServerPacket, decode, decode_packet, encode_to_vec,
};

/// Valid wire bytes for one field.
fn field_bytes(ty: FieldType) -> BoxedStrategy<Vec<u8>> {
    match ty {
        // Booleans are 0 or 1 when valid (any non-zero decodes as true but re-encodes as 1).
        FieldType::Scalar(Scalar::Bool) => prop_oneof![Just(vec![0u8]), Just(vec![1u8])].boxed(),
        // Any bit pattern, NaNs included: decoding and re-encoding keeps the bits.
        FieldType::Scalar(s) => vec(any::<u8>(), s.size()).boxed(),
        FieldType::String => ".{0,12}"
            .prop_map(|s: String| {
                let units: Vec<u16> = s.encode_utf16().collect();
                let mut out = ((units.len() * 2) as u16).to_le_bytes().to_vec();
                units.iter().for_each(|u| out.extend(u.to_le_bytes()));
                out
            })
            .boxed(),
        FieldType::List(inner) => vec(fields_bytes(inner), 0..5)
            .prop_map(|items| {
                let mut out = (items.len() as u16).to_le_bytes().to_vec();
                items.iter().for_each(|i| out.extend(i));
                out
            })
            .boxed(),
    }
}

/// Valid wire bytes for a run of fields.
fn fields_bytes(fields: &'static [FieldSchema]) -> BoxedStrategy<Vec<u8>> {
    let parts: Vec<_> = fields.iter().map(|f| field_bytes(f.ty)).collect();
    parts.prop_map(|parts| parts.concat()).boxed()
}

/// A valid packet of any type, as wire bytes.
fn any_packet() -> impl Strategy<Value = (u16, Direction, Vec<u8>)> {
    (0..PACKETS.len()).prop_flat_map(|i| {
        let info = &PACKETS[i];
        fields_bytes(info.fields).prop_map(move |body| {
            let mut frame = ((body.len() + 4) as u16).to_le_bytes().to_vec();
            frame.extend(info.id.to_le_bytes());
            frame.extend(body);
            (info.id, info.direction, frame)
        })
    })
}

fn reencode<S: PacketSet>(frame: &[u8]) -> Vec<u8> {
    let packet = decode::<S>(frame).unwrap_or_else(|e| panic!("valid bytes rejected: {e}"));
    assert_eq!(packet.wire_len().unwrap(), frame.len());
    let mut out = Vec::new();
    assert_eq!(packet.encode(&mut out).unwrap(), frame.len());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// decode then encode gives back the same bytes, for every packet type: so encode(decode(b))
    /// = b and, for the decoded value, decode(encode(v)) = v.
    #[test]
    fn every_packet_type_round_trips((id, direction, frame) in any_packet()) {
        let again = match direction {
            Direction::ClientToServer => reencode::<ClientPacket>(&frame),
            Direction::ServerToClient => reencode::<ServerPacket>(&frame),
        };
        prop_assert_eq!(again, frame, "packet id {}", id);
    }

    #[test]
    fn chat_text_round_trips(player_id in any::<i32>(), chat in ".{0,200}") {
        let packet = S_Chat { player_id, chat };
        prop_assert_eq!(decode_packet::<S_Chat>(&encode_to_vec(&packet).unwrap()).unwrap(), packet);
    }

    #[test]
    fn moves_round_trip_bit_for_bit(x in any::<u32>(), y in any::<u32>(), z in any::<u32>()) {
        let packet = C_Move { pos_x: f32::from_bits(x), pos_y: f32::from_bits(y), pos_z: f32::from_bits(z) };
        let back = decode_packet::<C_Move>(&encode_to_vec(&packet).unwrap()).unwrap();
        prop_assert_eq!((back.pos_x.to_bits(), back.pos_y.to_bits(), back.pos_z.to_bits()), (x, y, z));
    }

    #[test]
    fn player_lists_round_trip(players in vec((any::<bool>(), any::<i32>(), -1e6f32..1e6, -1e6f32..1e6, -1e6f32..1e6), 0..300)) {
        let players = players
            .into_iter()
            .map(|(is_self, player_id, pos_x, pos_y, pos_z)| Player { is_self, player_id, pos_x, pos_y, pos_z })
            .collect();
        let packet = S_PlayerList { players };
        prop_assert_eq!(decode_packet::<S_PlayerList>(&encode_to_vec(&packet).unwrap()).unwrap(), packet);
    }
}

/// Feeds `bytes` to a framer in the given chunk sizes and decodes every frame both ways. Must
/// not panic, whatever the bytes.
fn frame_and_decode(bytes: &[u8], chunks: &[usize], max_frame: usize) {
    let mut frames = FrameDecoder::new(max_frame);
    let mut rest = bytes;
    for &n in chunks.iter().chain(std::iter::once(&usize::MAX)) {
        let (now, later) = rest.split_at(n.min(rest.len()));
        rest = later;
        frames.extend_from_slice(now);
        loop {
            match frames.next_frame() {
                Ok(Some(frame)) => {
                    let _ = decode::<ClientPacket>(frame);
                    let _ = decode::<ServerPacket>(frame);
                }
                Ok(None) => break,
                // A bad size ends the stream, as it ends a connection.
                Err(_) => return,
            }
        }
        if rest.is_empty() {
            break;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..600), chunks in vec(1usize..64, 0..20)) {
        frame_and_decode(&bytes, &chunks, 4096);
        frame_and_decode(&bytes, &chunks, 65_535);
    }

    /// Random bodies under every id, including ids no packet has.
    #[test]
    fn arbitrary_bodies_never_panic(id in 0u16..12, body in vec(any::<u8>(), 0..200)) {
        let _ = ClientPacket::decode_body(id, &body);
        let _ = ServerPacket::decode_body(id, &body);
    }

    /// Valid packets with bytes changed or cut: reaches deeper into the decoders than noise does.
    #[test]
    fn damaged_packets_never_panic(
        (_, _, frame) in any_packet(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut frame = frame;
        for (at, value) in flips {
            let i = at.index(frame.len());
            frame[i] = value;
        }
        let end = cut.index(frame.len() + 1);
        // Keep the header's size consistent with the cut so the body decoder is what is tested.
        let mut damaged = frame[..end.max(4).min(frame.len())].to_vec();
        let len = damaged.len() as u16;
        damaged[..2].copy_from_slice(&len.to_le_bytes());
        let _ = decode::<ClientPacket>(&damaged);
        let _ = decode::<ServerPacket>(&damaged);
        frame_and_decode(&frame, &[3, 7], 65_535);
    }
}
