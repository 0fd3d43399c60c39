//! What a definition file says, once read and checked: packets, their ids and their fields.

/// The largest packet, header included: its `size` is a u16. (The same as `shared::MAX_PACKET_LEN`,
/// which the build script cannot use; a test keeps the two equal.)
pub const MAX_PACKET_LEN: usize = 65_535;

/// Bytes in a packet header, `[size: u16][id: u16]`; `shared::HEADER_LEN`.
pub const HEADER_LEN: usize = 4;

/// Which way a packet travels, from its name's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `C_…`: client → server.
    ClientToServer,
    /// `S_…`: server → client.
    ServerToClient,
}

/// The fixed-size field types of the PDL, with their wire sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    Bool,
    Byte,
    SByte,
    Short,
    UShort,
    Int,
    UInt,
    Long,
    ULong,
    Float,
    Double,
}

impl Scalar {
    /// Every scalar, with the element name the PDL uses for it.
    pub const ALL: [(&'static str, Scalar); 11] = [
        ("bool", Scalar::Bool),
        ("byte", Scalar::Byte),
        ("sbyte", Scalar::SByte),
        ("short", Scalar::Short),
        ("ushort", Scalar::UShort),
        ("int", Scalar::Int),
        ("uint", Scalar::UInt),
        ("long", Scalar::Long),
        ("ulong", Scalar::ULong),
        ("float", Scalar::Float),
        ("double", Scalar::Double),
    ];

    /// The PDL element name (`int`, `float`…).
    pub fn pdl_name(self) -> &'static str {
        Self::ALL.iter().find(|(_, s)| *s == self).map(|(n, _)| *n).unwrap_or("?")
    }

    /// Bytes on the wire.
    pub fn size(self) -> usize {
        match self {
            Scalar::Bool | Scalar::Byte | Scalar::SByte => 1,
            Scalar::Short | Scalar::UShort => 2,
            Scalar::Int | Scalar::UInt | Scalar::Float => 4,
            Scalar::Long | Scalar::ULong | Scalar::Double => 8,
        }
    }

    /// The Rust type that holds it.
    pub fn rust_type(self) -> &'static str {
        match self {
            Scalar::Bool => "bool",
            Scalar::Byte => "u8",
            Scalar::SByte => "i8",
            Scalar::Short => "i16",
            Scalar::UShort => "u16",
            Scalar::Int => "i32",
            Scalar::UInt => "u32",
            Scalar::Long => "i64",
            Scalar::ULong => "u64",
            Scalar::Float => "f32",
            Scalar::Double => "f64",
        }
    }
}

/// One field of a packet or of a list element.
#[derive(Debug, Clone)]
pub struct Field {
    /// The name as written in the definition file (`posX`).
    pub pdl_name: String,
    /// What it holds.
    pub kind: FieldKind,
}

/// The shape of a field.
#[derive(Debug, Clone)]
pub enum FieldKind {
    Scalar(Scalar),
    /// UTF-16LE text behind a u16 byte length.
    String,
    /// A u16 count, then each element's fields inline.
    List(Vec<Field>),
}

/// One packet of the definition file.
#[derive(Debug, Clone)]
pub struct Packet {
    /// The name as written (`C_Move`); also the Rust struct's name.
    pub name: String,
    /// Its id: its position in the file, counting from 1.
    pub id: u16,
    pub direction: Direction,
    pub fields: Vec<Field>,
}

/// A whole definition file, in file order.
#[derive(Debug, Clone)]
pub struct Definitions {
    pub packets: Vec<Packet>,
}

/// The smallest number of bytes these fields can encode to: what a list count is checked against
/// before anything is allocated.
pub fn min_len(fields: &[Field]) -> usize {
    fields
        .iter()
        .map(|f| match &f.kind {
            FieldKind::Scalar(s) => s.size(),
            FieldKind::String | FieldKind::List(_) => 2,
        })
        .sum()
}

/// The exact encoded size when it never varies (no strings, no lists).
pub fn fixed_len(fields: &[Field]) -> Option<usize> {
    fields
        .iter()
        .map(|f| match &f.kind {
            FieldKind::Scalar(s) => Some(s.size()),
            FieldKind::String | FieldKind::List(_) => None,
        })
        .sum()
}
