//! The packet generator: run on the course's earlier-stage definition file (nested lists,
//! strings, most field types), and its error messages for definition files with mistakes.

#[path = "../pdl/mod.rs"]
mod pdl;

/// What the build script generated from `tests/pdl/stage1.xml`.
#[allow(unused_qualifications, missing_docs, dead_code)]
mod stage1 {
    include!(concat!(env!("OUT_DIR"), "/stage1_packets.rs"));
}

use shared::{DecodeError, Direction, Packet, PacketSet, decode, decode_packet, encode_to_vec};
use stage1::c_player_info_req::{Skill, skill::Attribute};
use stage1::{C_PlayerInfoReq, ClientPacket, PACKETS, PacketId, S_Test};

fn sample() -> C_PlayerInfoReq {
    C_PlayerInfoReq {
        test_byte: 1,
        player_id: 1001,
        name: "AB".into(),
        skills: vec![Skill { id: 101, level: 1, duration: 3.0, attributes: vec![Attribute { att: 77 }] }],
    }
}

/// Worked out by hand from the course's layout.
const SAMPLE_BYTES: [u8; 37] = [
    0x25, 0x00, 0x01, 0x00, // size 37, id 1
    0x01, // testByte
    0xE9, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // playerId 1001
    0x04, 0x00, 0x41, 0x00, 0x42, 0x00, // name "AB"
    0x01, 0x00, // 1 skill
    0x65, 0x00, 0x00, 0x00, // id 101
    0x01, 0x00, // level 1
    0x00, 0x00, 0x40, 0x40, // duration 3.0
    0x01, 0x00, // 1 attribute
    0x4D, 0x00, 0x00, 0x00, // att 77
];

#[test]
fn stage1_packet_encodes_to_the_course_layout() {
    assert_eq!(encode_to_vec(&sample()).unwrap(), SAMPLE_BYTES);
    assert_eq!(decode_packet::<C_PlayerInfoReq>(&SAMPLE_BYTES).unwrap(), sample());
}

#[test]
fn stage1_nested_lists_round_trip() {
    let packet = C_PlayerInfoReq {
        test_byte: 255,
        player_id: -1,
        name: "기사 Knight".into(),
        skills: (0..5)
            .map(|i| Skill {
                id: i,
                level: -(i as i16),
                duration: i as f32 * 0.5,
                attributes: (0..i).map(|att| Attribute { att }).collect(),
            })
            .collect(),
    };
    let bytes = encode_to_vec(&packet).unwrap();
    assert_eq!(decode::<ClientPacket>(&bytes).unwrap(), ClientPacket::PlayerInfoReq(packet));
    assert_eq!(decode_packet::<S_Test>(&encode_to_vec(&S_Test { test_int: 7 }).unwrap()).unwrap().test_int, 7);
}

#[test]
fn stage1_ids_directions_and_schema() {
    assert_eq!((C_PlayerInfoReq::ID, C_PlayerInfoReq::DIRECTION), (1, Direction::ClientToServer));
    assert_eq!((S_Test::ID, S_Test::DIRECTION), (2, Direction::ServerToClient));
    assert_eq!(PacketId::try_from(2), Ok(PacketId::S_Test));
    assert_eq!(ClientPacket::DIRECTION, Direction::ClientToServer);
    let names: Vec<_> = PACKETS[0].fields.iter().map(|f| f.name).collect();
    assert_eq!(names, ["testByte", "playerId", "name", "skill"]);
}

#[test]
fn stage1_a_nested_list_count_is_checked() {
    // The attribute list claims 3 elements but holds 1.
    let mut bytes = SAMPLE_BYTES;
    bytes[31] = 3;
    assert!(matches!(
        decode_packet::<C_PlayerInfoReq>(&bytes),
        Err(DecodeError::ListOverrun { packet: "C_PlayerInfoReq", field: "attribute", count: 3, .. })
    ));
}

#[test]
fn the_build_generates_exactly_what_the_generator_says() {
    let xml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/PDL.xml")).unwrap();
    let expected = pdl::generate("assets/PDL.xml", &xml, "crate").unwrap();
    let built = std::fs::read_to_string(concat!(env!("OUT_DIR"), "/packets.rs")).unwrap();
    assert_eq!(built, expected);
}

fn error_of(xml: &str) -> String {
    pdl::generate("bad.xml", xml, "crate").expect_err("the definitions should be rejected").to_string()
}

#[test]
fn an_unknown_field_type() {
    let xml = "<PDL>\n  <packet name=\"C_Move\">\n    <flaot name=\"posX\"/>\n  </packet>\n</PDL>";
    assert_eq!(
        error_of(xml),
        "bad.xml:3:5: packet `C_Move`, field `posX`: unknown field type `flaot`; expected one of bool, byte, sbyte, \
         short, ushort, int, uint, long, ulong, float, double, string, list"
    );
}

#[test]
fn an_unknown_type_inside_a_nested_list() {
    let xml = r#"<PDL><packet name="C_A"><list name="skill"><list name="attribute"><integer name="att"/></list></list></packet></PDL>"#;
    assert_eq!(
        error_of(xml),
        "bad.xml:1:67: packet `C_A`, field `skill.attribute.att`: unknown field type `integer`; expected one of bool, \
         byte, sbyte, short, ushort, int, uint, long, ulong, float, double, string, list"
    );
}

#[test]
fn a_duplicate_packet_name() {
    let xml = "<PDL>\n<packet name=\"C_Move\"/>\n<packet name=\"C_Move\"/>\n</PDL>";
    assert_eq!(error_of(xml), "bad.xml:3:1: packet `C_Move`: a second packet with this name");
}

#[test]
fn a_duplicate_field_name() {
    let xml = r#"<PDL><packet name="S_A"><int name="posX"/><float name="pos_x"/></packet></PDL>"#;
    assert_eq!(
        error_of(xml),
        "bad.xml:1:43: packet `S_A`, field `pos_x`: a second field named `pos_x` (Rust name `pos_x`) in the same packet or list"
    );
}

#[test]
fn a_list_without_a_name() {
    let xml = r#"<PDL><packet name="S_PlayerList"><list><int name="id"/></list></packet></PDL>"#;
    assert_eq!(error_of(xml), "bad.xml:1:34: packet `S_PlayerList`: a list without a `name` attribute");
}

#[test]
fn a_field_without_a_name() {
    let xml = r#"<PDL><packet name="S_A"><list name="l"><int/></list></packet></PDL>"#;
    assert_eq!(error_of(xml), "bad.xml:1:40: packet `S_A`, field `l`: a `int` field without a `name` attribute");
}

#[test]
fn a_packet_named_neither_c_nor_s() {
    let xml = r#"<PDL><packet name="PlayerInfoReq"><int name="id"/></packet></PDL>"#;
    assert_eq!(
        error_of(xml),
        "bad.xml:1:6: packet `PlayerInfoReq`: the packet is named neither `C_…` (client → server) nor `S_…` (server → client)"
    );
}

#[test]
fn a_packet_without_a_name() {
    assert_eq!(error_of("<PDL><packet/></PDL>"), "bad.xml:1:6: a packet without a `name` attribute");
}

#[test]
fn names_that_are_not_identifiers() {
    let xml = r#"<PDL><packet name="C_Bad Name"/></PDL>"#;
    assert_eq!(
        error_of(xml),
        "bad.xml:1:6: packet `C_Bad Name`: the packet name is not an identifier (letters, digits, `_`)"
    );
    let xml = r#"<PDL><packet name="C_A"><int name="2x"/></packet></PDL>"#;
    assert_eq!(
        error_of(xml),
        "bad.xml:1:25: packet `C_A`, field `2x`: the field name is not an identifier (letters, digits, `_`)"
    );
}

#[test]
fn malformed_documents() {
    assert!(error_of("<PDL><packet name=\"C_A\"></PDL>").starts_with("bad.xml:1:"));
    assert_eq!(error_of("<Packets/>"), "bad.xml:1:1: the root element is `<Packets>`; expected `<PDL>`");
    assert_eq!(error_of("<PDL/>"), "bad.xml:1:1: the file defines no packets");
    assert_eq!(
        error_of("<PDL><message name=\"C_A\"/></PDL>"),
        "bad.xml:1:6: `<message>` where a `<packet>` was expected"
    );
    assert_eq!(
        error_of(r#"<PDL><packet name="C_A"><int name="x"><int name="y"/></int></packet></PDL>"#),
        "bad.xml:1:25: packet `C_A`, field `x`: a `int` field cannot hold other fields"
    );
    assert_eq!(
        error_of(r#"<PDL><packet name="C_A">int x</packet></PDL>"#),
        "bad.xml:1:25: packet `C_A`: text where only elements belong"
    );
}

#[test]
fn comments_and_the_xml_declaration_are_fine() {
    let xml = "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<!-- c -->\n<PDL><!-- c --><packet name=\"C_A\"><!-- c --><int name=\"type\"/></packet></PDL>";
    let rust = pdl::generate("ok.xml", xml, "crate").unwrap();
    // A keyword becomes a raw identifier.
    assert!(rust.contains("pub r#type: i32,"), "{rust}");
}
