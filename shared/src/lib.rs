//! The wire protocol of the game: packet types, their encoding and decoding, and framing. No I/O.
//!
//! The packet types are generated at build time from `assets/PDL.xml`, a definition file in the
//! course's PDL format (its PacketGenerator, done by `build.rs`). Everything here works on byte
//! slices and [`bytes::BufMut`]; the `net_plugin` crate drives it from sockets.
//!
//! # Quick start
//!
//! ```
//! use shared::{ClientPacket, C_Move, FrameDecoder, PacketSet, decode, encode_to_vec};
//!
//! // Encode: header (size, id) then the fields, little-endian.
//! let bytes = encode_to_vec(&C_Move { pos_x: 10.0, pos_y: 0.0, pos_z: -5.0 }).unwrap();
//! assert_eq!(bytes[..4], [0x10, 0x00, 0x05, 0x00]);
//!
//! // Split a stream into packets, then decode each as one of the client's packets.
//! let mut frames = FrameDecoder::new(4096);
//! frames.extend_from_slice(&bytes);
//! let frame = frames.next_frame().unwrap().unwrap();
//! match decode::<ClientPacket>(frame).unwrap() {
//!     ClientPacket::Move(m) => assert_eq!(m.pos_z, -5.0),
//!     other => panic!("unexpected {}", other.name()),
//! }
//! ```
//!
//! # How the course's names map to Rust
//!
//! | definition file | Rust |
//! |---|---|
//! | packet `C_Move` | struct [`C_Move`] (the wire name, kept: it says the direction) |
//! | its id (position in the file) | [`Packet::ID`], [`PacketId::C_Move`] (the course's `PacketID`) |
//! | field `posX`, `playerId`, `isSelf` | `pos_x`, `player_id`, `is_self` (snake_case) |
//! | `<list name="player">` in `S_PlayerList` | `players: Vec<s_player_list::Player>` (the course's `List<Player> players`) |
//! | a field named like a Rust keyword (`type`) | a raw identifier (`r#type`) |
//! | how many entries of a list fit one packet (`S_PlayerList`: 3,854) | [`S_PlayerList::MAX_PLAYERS`]: `MAX_` and the list field's Rust name, upper-cased; generated for a packet whose list has fixed-size elements and whose other fields are fixed-size |
//! | a longer list, as several packets | [`S_PlayerList::split`], when the list is the packet's only field |
//! | all `C_` packets / all `S_` packets | the enums [`ClientPacket`] / [`ServerPacket`], variants without the prefix (`ClientPacket::Move`) |
//!
//! Field types: `bool` → `bool`, `byte` → `u8`, `sbyte` → `i8`, `short` → `i16`, `ushort` → `u16`,
//! `int` → `i32`, `uint` → `u32`, `long` → `i64`, `ulong` → `u64`, `float` → `f32`,
//! `double` → `f64`, `string` → `String` (UTF-16LE on the wire), `list` → `Vec<_>`.
//!
//! # JavaScript
//!
//! The build also writes the same packets as an ES module with TypeScript declarations, for
//! browser and WebGL players: [`js::PACKETS_JS`] and [`js::PACKETS_D_TS`], written into a web
//! project by `cargo run -p shared --bin gen-js -- DIR` (`docs/web-codec.md`). Same names (class
//! `C_Move`, field `pos_x`), same ids, same decoding rules and error messages.
//!
//! # Adding a packet
//!
//! Append a `<packet name="C_…">` or `<packet name="S_…">` to `assets/PDL.xml` and rebuild: a
//! struct, its [`PacketId`], its variant in [`ClientPacket`] or [`ServerPacket`], its entry in
//! [`PACKETS`] and its JavaScript class appear. Append only: ids are positions, and the course's
//! clients know ids 1–8.

#![forbid(unsafe_code)]

mod decode;
mod encode;
mod frame;
#[doc(hidden)]
pub mod fuzz;
pub mod js;
mod packet;
mod packets;
mod schema;

pub use bytes;

pub use decode::{DecodeError, Reader, decode, decode_body, decode_packet, read_header};
pub use encode::{EncodeError, encode, encode_to_vec, wire_len};
#[doc(hidden)]
pub use encode::{list_len, put_list, put_string, string_len};
pub use frame::{FrameDecoder, FrameError, HEADER_LEN, IDLE_KEEP, MAX_PACKET_LEN};
pub use packet::{Direction, Packet, PacketSet, PacketTypeVisitor, PacketVisitor, WireFormat};
pub use packets::*;
pub use schema::{FieldSchema, FieldType, PacketInfo, Scalar};
