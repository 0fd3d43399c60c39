//! A description of every packet's layout, generated with the types: for tools, tests and error
//! messages that need to walk packets without knowing them.

use crate::Direction;

/// One packet of the definition file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacketInfo {
    /// The id in the header.
    pub id: u16,
    /// The name in the definition file.
    pub name: &'static str,
    /// Which way it travels.
    pub direction: Direction,
    /// Its fields, in wire order.
    pub fields: &'static [FieldSchema],
}

/// One field, by its name in the definition file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FieldSchema {
    /// The name in the definition file (`posX`).
    pub name: &'static str,
    /// What it holds.
    pub ty: FieldType,
}

/// The shape of a field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldType {
    /// A fixed-size value.
    Scalar(Scalar),
    /// A u16 byte length, then UTF-16LE code units.
    String,
    /// A u16 count, then each element's fields.
    List(&'static [FieldSchema]),
}

/// The fixed-size field types, named as in the definition file's C# types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    /// 1 byte, 0 or 1 (any non-zero reads as true).
    Bool,
    /// u8.
    Byte,
    /// i8.
    SByte,
    /// i16.
    Short,
    /// u16.
    UShort,
    /// i32.
    Int,
    /// u32.
    UInt,
    /// i64.
    Long,
    /// u64.
    ULong,
    /// f32.
    Float,
    /// f64.
    Double,
}

impl Scalar {
    /// Bytes on the wire.
    pub const fn size(self) -> usize {
        match self {
            Scalar::Bool | Scalar::Byte | Scalar::SByte => 1,
            Scalar::Short | Scalar::UShort => 2,
            Scalar::Int | Scalar::UInt | Scalar::Float => 4,
            Scalar::Long | Scalar::ULong | Scalar::Double => 8,
        }
    }
}
