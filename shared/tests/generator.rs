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
    use shared::FieldType::{List, Scalar as S, String as Str};
    use shared::Scalar::{Byte, Float, Int, Long, Short};
    use shared::{FieldSchema as F, WireFormat};
    const ATTRIBUTE: [F; 1] = [F { name: "att", ty: S(Int) }];
    const SKILL: [F; 4] = [
        F { name: "id", ty: S(Int) },
        F { name: "level", ty: S(Short) },
        F { name: "duration", ty: S(Float) },
        F { name: "attribute", ty: List(&ATTRIBUTE) },
    ];
    let expected = [
        F { name: "testByte", ty: S(Byte) },
        F { name: "playerId", ty: S(Long) },
        F { name: "name", ty: Str },
        F { name: "skill", ty: List(&SKILL) },
    ];
    assert_eq!(PACKETS[0].fields, expected);
    assert_eq!((PACKETS[1].name, PACKETS[1].fields), ("S_Test", &[F { name: "testInt", ty: S(Int) }][..]));
    // testByte 1 + playerId 8 + name's length 2 + skill's count 2; id 4 + level 2 + duration 4 + count 2.
    assert_eq!((C_PlayerInfoReq::MIN_LEN, C_PlayerInfoReq::FIXED_LEN), (13, None));
    assert_eq!((Skill::MIN_LEN, Skill::FIXED_LEN), (12, None));
    assert_eq!((Attribute::MIN_LEN, Attribute::FIXED_LEN), (4, Some(4)));
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

/// `assets/PDL.xml` as the course's clients know it (PROTOCOL.md), written out by hand: every
/// packet's id, name, direction and field layout, and the sizes the generator derived from them.
#[test]
fn the_protocol_file_generates_the_course_packets() {
    use shared::FieldType::{List, Scalar as S, String as Str};
    use shared::Scalar::{Bool, Float, Int, Long};
    use shared::{FieldSchema, PacketInfo, WireFormat};

    const fn f(name: &'static str, ty: shared::FieldType) -> FieldSchema {
        FieldSchema { name, ty }
    }
    const POSITION: [FieldSchema; 3] = [f("posX", S(Float)), f("posY", S(Float)), f("posZ", S(Float))];
    let player_at = [f("playerId", S(Int)), POSITION[0], POSITION[1], POSITION[2]];
    const PLAYER: [FieldSchema; 5] =
        [f("isSelf", S(Bool)), f("playerId", S(Int)), f("posX", S(Float)), f("posY", S(Float)), f("posZ", S(Float))];
    let (c, s) = (Direction::ClientToServer, Direction::ServerToClient);
    let expected: Vec<(u16, &str, Direction, Vec<FieldSchema>)> = vec![
        (1, "S_BroadcastEnterGame", s, player_at.to_vec()),
        (2, "C_LeaveGame", c, vec![]),
        (3, "S_BroadcastLeaveGame", s, vec![f("playerId", S(Int))]),
        (4, "S_PlayerList", s, vec![f("player", List(&PLAYER))]),
        (5, "C_Move", c, POSITION.to_vec()),
        (6, "S_BroadcastMove", s, player_at.to_vec()),
        (7, "C_Chat", c, vec![f("chat", Str)]),
        (8, "S_Chat", s, vec![f("playerId", S(Int)), f("chat", Str)]),
        (9, "C_Ping", c, vec![f("clientTime", S(Long))]),
        (10, "S_Pong", s, vec![f("clientTime", S(Long))]),
    ];
    assert_eq!(shared::PACKETS.len(), expected.len());
    for (info, (id, name, direction, fields)) in shared::PACKETS.iter().zip(expected) {
        let PacketInfo { id: got_id, name: got_name, direction: got_direction, fields: got_fields } = *info;
        assert_eq!((got_id, got_name, got_direction), (id, name, direction));
        assert_eq!(got_fields, fields, "{name}");
    }

    // (MIN_LEN, FIXED_LEN) of each body: the sums of the field sizes above.
    fn sizes<T: WireFormat>() -> (usize, Option<usize>) {
        (T::MIN_LEN, T::FIXED_LEN)
    }
    assert_eq!(sizes::<shared::S_BroadcastEnterGame>(), (16, Some(16)));
    assert_eq!(sizes::<shared::C_LeaveGame>(), (0, Some(0)));
    assert_eq!(sizes::<shared::S_BroadcastLeaveGame>(), (4, Some(4)));
    assert_eq!(sizes::<shared::S_PlayerList>(), (2, None));
    assert_eq!(sizes::<shared::s_player_list::Player>(), (17, Some(17)));
    assert_eq!(sizes::<shared::C_Move>(), (12, Some(12)));
    assert_eq!(sizes::<shared::S_BroadcastMove>(), (16, Some(16)));
    assert_eq!(sizes::<shared::C_Chat>(), (2, None));
    assert_eq!(sizes::<shared::S_Chat>(), (6, None));
    assert_eq!(sizes::<shared::C_Ping>(), (8, Some(8)));
    assert_eq!(sizes::<shared::S_Pong>(), (8, Some(8)));

    // Our packets follow the course's, in the packet sets of their direction.
    assert_eq!((shared::C_Ping::ID, shared::S_Pong::ID), (9, 10));
    assert_eq!(shared::PacketId::try_from(9), Ok(shared::PacketId::C_Ping));
    assert_eq!(shared::PacketId::try_from(11), Err(11));
    let ping = encode_to_vec(&shared::C_Ping { client_time: -2 }).unwrap();
    assert_eq!(ping, [0x0C, 0x00, 0x09, 0x00, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
    assert_eq!(
        decode::<shared::ClientPacket>(&ping).unwrap(),
        shared::ClientPacket::Ping(shared::C_Ping { client_time: -2 })
    );
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

/// What the build script generated from `tests/pdl/names.xml`: keywords and names of Rust's own
/// types. That this compiles is most of the test.
#[allow(unused_qualifications, missing_docs, dead_code)]
mod names {
    include!(concat!(env!("OUT_DIR"), "/names_packets.rs"));
}

#[test]
fn keywords_and_names_of_rust_types_generate_code_that_compiles() {
    use names::c_type::{Option as OptionItem, String as StringItem, Vec as VecItem, vec};
    let packet = names::C_type {
        r#type: 1,
        self_: 2,
        strings: vec![StringItem { text: "t".into() }],
        options: vec![OptionItem { some: 3 }],
        vecs: vec![VecItem { types: vec![vec::Type { boxs: vec![vec::r#type::Box { ok: true }] }] }],
        results: vec![],
    };
    let bytes = encode_to_vec(&packet).unwrap();
    assert_eq!(decode::<names::ClientPacket>(&bytes).unwrap(), names::ClientPacket::r#type(packet));
    assert_eq!(decode::<names::ServerPacket>(&[4, 0, 2, 0]).unwrap(), names::ServerPacket::self_(names::S_self));
    let some =
        names::S_Some { nones: vec![names::s_some::None { b: 7 }], oks: vec![names::s_some::Ok { s: "x".into() }] };
    assert_eq!(decode_packet::<names::S_Some>(&encode_to_vec(&some).unwrap()).unwrap(), some);
}

#[test]
fn a_field_named_underscore() {
    let xml = r#"<PDL><packet name="C_A"><int name="_"/></packet></PDL>"#;
    assert_eq!(error_of(xml), "bad.xml:1:25: packet `C_A`, field `_`: `_` cannot name a Rust field");
}

#[test]
fn fields_that_are_one_name_once_keywords_are_escaped() {
    // `self` cannot be a raw identifier, so it becomes `self_`: the name of the next field.
    let xml = r#"<PDL><packet name="C_A"><int name="self"/><int name="self_"/></packet></PDL>"#;
    assert_eq!(
        error_of(xml),
        "bad.xml:1:43: packet `C_A`, field `self_`: a second field named `self_` (Rust name `self_`) in the same packet or list"
    );
}

#[test]
fn packet_names_that_give_no_variant() {
    assert_eq!(
        error_of(r#"<PDL><packet name="C_1x"/></PDL>"#),
        "bad.xml:1:6: packet `C_1x`: the name after the direction prefix must be an identifier of its own (it names the \
         packet's variant)"
    );
    assert_eq!(
        error_of(r#"<PDL><packet name="S__"/></PDL>"#),
        "bad.xml:1:6: packet `S__`: the name after the direction prefix must be an identifier of its own (it names the \
         packet's variant)"
    );
    // `C__A` is fine: its variant is `_A`.
    assert!(pdl::generate("ok.xml", r#"<PDL><packet name="C__A"/></PDL>"#, "crate").is_ok());
}

#[test]
fn packets_whose_variants_clash() {
    let xml = r#"<PDL><packet name="C_self"/><packet name="C_self_"/></PDL>"#;
    assert_eq!(
        error_of(xml),
        "bad.xml:1:29: packet `C_self_`: the packet's variant `self_` clashes with an earlier packet's"
    );
    // The same variant in the other direction's enum is fine.
    assert!(pdl::generate("ok.xml", r#"<PDL><packet name="C_self"/><packet name="S_self_"/></PDL>"#, "crate").is_ok());
}

#[test]
fn lists_whose_element_types_clash_or_cannot_be_named() {
    let xml = r#"<PDL><packet name="S_A"><list name="a_b"><int name="x"/></list><list name="a__b"><int name="x"/></list></packet></PDL>"#;
    assert_eq!(
        error_of(xml),
        "bad.xml:1:64: packet `S_A`, field `a__b`: a second list whose element type is named `AB` in the same packet or list"
    );
    let xml = r#"<PDL><packet name="S_A"><list name="self"><int name="x"/></list></packet></PDL>"#;
    assert_eq!(
        error_of(xml),
        "bad.xml:1:25: packet `S_A`, field `self`: the list's element type would be named `Self`, which Rust does not allow"
    );
    let xml = r#"<PDL><packet name="S_A"><list name="_"><int name="x"/></list></packet></PDL>"#;
    assert_eq!(
        error_of(xml),
        "bad.xml:1:25: packet `S_A`, field `_`: the list's element type would be named ``, which Rust does not allow"
    );
}

/// `depth` lists, each inside the one before, around one int.
fn nested_lists(depth: usize) -> String {
    format!(
        r#"<PDL><packet name="C_A">{}<int name="x"/>{}</packet></PDL>"#,
        r#"<list name="l">"#.repeat(depth),
        "</list>".repeat(depth)
    )
}

#[test]
fn lists_nest_at_most_sixteen_deep() {
    assert!(pdl::generate("ok.xml", &nested_lists(16), "crate").is_ok());
    // The 17th list starts at column 24 + 16 * 15 + 1.
    assert_eq!(
        error_of(&nested_lists(17)),
        "bad.xml:1:265: packet `C_A`, field `l.l.l.l.l.l.l.l.l.l.l.l.l.l.l.l.l`: lists nest more than 16 deep"
    );
    // Found by a deep-nesting probe: 1,000 levels overflowed a test thread's stack (an abort, not
    // an error). The parser now stops at the 17th.
    assert!(error_of(&nested_lists(20_000)).ends_with("lists nest more than 16 deep"));
}

fn generated(xml: &str) -> String {
    pdl::generate("ok.xml", xml, "crate").unwrap()
}

#[test]
fn a_list_beside_fixed_fields_gets_a_capacity_but_no_split() {
    let rust = generated(
        r#"<PDL><packet name="S_Inventory"><int name="page"/><list name="item"><int name="id"/><short name="count"/></list></packet></PDL>"#,
    );
    // (65,535 - 4 header - 4 page - 2 count) / 6 per item = 10,920.
    assert!(rust.contains("carries: 10,920."), "{rust}");
    assert!(rust.contains("pub const MAX_ITEMS: usize = (crate::MAX_PACKET_LEN - crate::HEADER_LEN - 4 - 2) / 6;"));
    // Cutting would copy `page` into every piece, which may not be what it means.
    assert!(!rust.contains("pub fn split"));
}

#[test]
fn a_list_of_empty_elements_is_limited_by_its_count() {
    let rust = generated(r#"<PDL><packet name="S_Ticks"><list name="tick"/></packet></PDL>"#);
    assert!(rust.contains("pub const MAX_TICKS: usize = u16::MAX as usize;"), "{rust}");
    assert!(rust.contains("pub fn split(ticks: ::std::vec::Vec<s_ticks::Tick>) -> ::std::vec::Vec<Self> {"));
}

#[test]
fn lists_whose_size_is_not_fixed_get_no_capacity() {
    for xml in [
        // A string beside the list.
        r#"<PDL><packet name="S_A"><string name="s"/><list name="l"><int name="x"/></list></packet></PDL>"#,
        // A string in the element.
        r#"<PDL><packet name="S_A"><list name="l"><string name="s"/></list></packet></PDL>"#,
        // A nested list in the element.
        r#"<PDL><packet name="S_A"><list name="l"><list name="m"/></list></packet></PDL>"#,
        // Two lists.
        r#"<PDL><packet name="S_A"><list name="l"><int name="x"/></list><list name="m"><int name="x"/></list></packet></PDL>"#,
    ] {
        assert!(!generated(xml).contains("pub const MAX_"), "{xml}");
    }
}

#[test]
fn a_packet_too_large_to_send_is_refused() {
    // 8,191 longs: 4 + 65,528 = 65,532 bytes fits; 8,192 (65,540 bytes) does not.
    let longs = |n: usize| {
        let fields: String = (0..n).map(|i| format!(r#"<long name="f{i}"/>"#)).collect();
        format!(r#"<PDL><packet name="S_Big">{fields}</packet></PDL>"#)
    };
    assert!(pdl::generate("ok.xml", &longs(8191), "crate").is_ok());
    assert_eq!(
        error_of(&longs(8192)),
        "bad.xml:1:6: packet `S_Big`: the packet takes at least 65540 bytes, more than the 65,535 a packet can hold"
    );
}

#[test]
fn the_generator_uses_the_wire_limits_of_the_library() {
    assert_eq!(pdl::model::MAX_PACKET_LEN, shared::MAX_PACKET_LEN);
    assert_eq!(pdl::model::HEADER_LEN, shared::HEADER_LEN);
}
