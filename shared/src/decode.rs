//! Decoding that never trusts its input: every read is bounds-checked against the packet, and
//! each way a packet can be wrong is its own error.

use crate::{Direction, HEADER_LEN, Packet, PacketInfo, PacketSet, WireFormat};

/// Why bytes are not a valid packet. Never a panic, never a read past the packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the 4-byte header.
    #[error("{len} bytes are too few for the 4-byte packet header")]
    ShortHeader {
        /// How many bytes there were.
        len: usize,
    },
    /// The header's `size` disagrees with the bytes handed over.
    #[error("the header says {declared} bytes but the packet has {actual}")]
    SizeMismatch {
        /// The header's `size`.
        declared: u16,
        /// The bytes given.
        actual: usize,
    },
    /// No packet has this id.
    #[error("unknown packet id {id}")]
    UnknownPacketId {
        /// The id in the header.
        id: u16,
    },
    /// The packet exists but travels the other way (a client sending an `S_` packet).
    #[error("{name} (id {id}) travels {direction}; it is not accepted from this side")]
    WrongDirection {
        /// The id in the header.
        id: u16,
        /// The packet it names.
        name: &'static str,
        /// The way that packet travels.
        direction: Direction,
    },
    /// A fixed-size field runs past the end of the packet.
    #[error("{packet}.{field}: needs {needed} bytes, only {remaining} left in the packet")]
    Truncated {
        /// The packet being read.
        packet: &'static str,
        /// The field, by its name in the definition file.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left.
        remaining: usize,
    },
    /// A string's byte length runs past the end of the packet.
    #[error("{packet}.{field}: a string of {len} bytes runs past the packet ({remaining} bytes left)")]
    StringOverrun {
        /// The packet being read.
        packet: &'static str,
        /// The field, by its name in the definition file.
        field: &'static str,
        /// The length the string claims.
        len: usize,
        /// Bytes left.
        remaining: usize,
    },
    /// A string's byte length is odd, which UTF-16 cannot be.
    #[error("{packet}.{field}: a string byte length of {len} is odd; UTF-16 comes in 2-byte units")]
    OddStringLength {
        /// The packet being read.
        packet: &'static str,
        /// The field, by its name in the definition file.
        field: &'static str,
        /// The length the string claims.
        len: usize,
    },
    /// A string holds a UTF-16 surrogate without its pair.
    #[error("{packet}.{field}: unpaired UTF-16 surrogate {unit:#06x}")]
    UnpairedSurrogate {
        /// The packet being read.
        packet: &'static str,
        /// The field, by its name in the definition file.
        field: &'static str,
        /// The lone code unit.
        unit: u16,
    },
    /// A list's count needs more bytes than the packet has left, even at the smallest element size.
    #[error("{packet}.{field}: a list of {count} elements needs at least {needed} bytes, only {remaining} left")]
    ListOverrun {
        /// The packet being read.
        packet: &'static str,
        /// The list, by its name in the definition file.
        field: &'static str,
        /// The count the list claims.
        count: usize,
        /// The fewest bytes that many elements take.
        needed: usize,
        /// Bytes left.
        remaining: usize,
    },
    /// Bytes are left after the last field.
    #[error("{packet}: {extra} bytes left over after the last field")]
    TrailingBytes {
        /// The packet being read.
        packet: &'static str,
        /// Bytes left over.
        extra: usize,
    },
}

impl DecodeError {
    /// The error for an id that is not in the set being decoded: another direction's packet, or
    /// no packet at all.
    #[doc(hidden)]
    pub fn not_in_set(id: u16, expected: Direction, table: &[PacketInfo]) -> Self {
        match table.iter().find(|p| p.id == id) {
            Some(p) if p.direction != expected => {
                DecodeError::WrongDirection { id, name: p.name, direction: p.direction }
            }
            _ => DecodeError::UnknownPacketId { id },
        }
    }
}

/// Reads the header of `frame`: `(size, id)`, checked against the frame's length.
pub fn read_header(frame: &[u8]) -> Result<(u16, u16), DecodeError> {
    let [s0, s1, i0, i1, ..] = *frame else {
        return Err(DecodeError::ShortHeader { len: frame.len() });
    };
    let size = u16::from_le_bytes([s0, s1]);
    if usize::from(size) != frame.len() {
        return Err(DecodeError::SizeMismatch { declared: size, actual: frame.len() });
    }
    Ok((size, u16::from_le_bytes([i0, i1])))
}

/// Decodes one whole packet (header included) as a member of the set `S`.
pub fn decode<S: PacketSet>(frame: &[u8]) -> Result<S, DecodeError> {
    let (_, id) = read_header(frame)?;
    S::decode_body(id, &frame[HEADER_LEN..])
}

/// Decodes one whole packet (header included) that must be a `P`.
pub fn decode_packet<P: Packet>(frame: &[u8]) -> Result<P, DecodeError> {
    let (_, id) = read_header(frame)?;
    if id != P::ID {
        return Err(DecodeError::UnknownPacketId { id });
    }
    decode_body(&frame[HEADER_LEN..])
}

/// Decodes a `P` from its body (header removed); every byte must be used.
pub fn decode_body<P: Packet>(body: &[u8]) -> Result<P, DecodeError> {
    let mut reader = Reader::new(body, P::NAME);
    let packet = P::decode_fields(&mut reader)?;
    reader.finish()?;
    Ok(packet)
}

/// A bounds-checked cursor over one packet's body, used by generated code.
#[derive(Debug)]
pub struct Reader<'a> {
    /// The bytes not read yet.
    rest: &'a [u8],
    /// The packet's name, for error messages.
    packet: &'static str,
}

macro_rules! scalar_readers {
    ($($name:ident: $ty:ty),* $(,)?) => {
        $(
            #[doc = concat!("Reads a little-endian `", stringify!($ty), "`.")]
            #[inline]
            pub fn $name(&mut self, field: &'static str) -> Result<$ty, DecodeError> {
                Ok(<$ty>::from_le_bytes(self.take_array(field)?))
            }
        )*
    };
}

impl<'a> Reader<'a> {
    /// A reader over `body`, the body of the packet named `packet`.
    pub fn new(body: &'a [u8], packet: &'static str) -> Self {
        Self { rest: body, packet }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.rest.len() {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes { packet: self.packet, extra }),
        }
    }

    #[inline]
    fn take_array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        match self.rest.split_first_chunk::<N>() {
            Some((head, tail)) => {
                self.rest = tail;
                Ok(*head)
            }
            None => Err(DecodeError::Truncated { packet: self.packet, field, needed: N, remaining: self.rest.len() }),
        }
    }

    /// Reads a bool: one byte, any non-zero value is true (as the course's reader does).
    #[inline]
    pub fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        Ok(self.u8(field)? != 0)
    }

    scalar_readers! {
        u8: u8, i8: i8, u16: u16, i16: i16, u32: u32, i32: i32,
        u64: u64, i64: i64, f32: f32, f64: f64,
    }

    /// Reads a string: a u16 byte length, then that many bytes of UTF-16LE.
    pub fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let len = usize::from(self.u16(field)?);
        if len > self.rest.len() {
            return Err(DecodeError::StringOverrun { packet: self.packet, field, len, remaining: self.rest.len() });
        }
        if len % 2 != 0 {
            return Err(DecodeError::OddStringLength { packet: self.packet, field, len });
        }
        let (bytes, tail) = self.rest.split_at(len);
        self.rest = tail;
        let units = bytes.chunks_exact(2).map(|pair| u16::from_le_bytes([pair[0], pair[1]]));
        let mut text = String::with_capacity(len / 2);
        for c in char::decode_utf16(units) {
            match c {
                Ok(c) => text.push(c),
                Err(e) => {
                    return Err(DecodeError::UnpairedSurrogate {
                        packet: self.packet,
                        field,
                        unit: e.unpaired_surrogate(),
                    });
                }
            }
        }
        Ok(text)
    }

    /// Reads a list: a u16 count, then each element's fields. The count is checked against the
    /// bytes left before anything is allocated.
    pub fn list<T: WireFormat>(&mut self, field: &'static str) -> Result<Vec<T>, DecodeError> {
        let count = usize::from(self.u16(field)?);
        let needed = count * T::MIN_LEN;
        if needed > self.rest.len() {
            return Err(DecodeError::ListOverrun {
                packet: self.packet,
                field,
                count,
                needed,
                remaining: self.rest.len(),
            });
        }
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(T::decode_fields(self)?);
        }
        Ok(items)
    }
}
