//! Encoding: a packet's size is computed and checked first, then the bytes are written, so an
//! encode either writes one whole packet or nothing.

use bytes::BufMut;

use crate::{HEADER_LEN, MAX_PACKET_LEN, Packet, WireFormat};

/// Why a packet cannot be encoded. Each is a limit of the wire format, which counts sizes in u16.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The whole packet, header included, is larger than the u16 `size` field can say.
    #[error("{packet} would be {size} bytes, more than the 65,535 a packet's u16 size can hold")]
    PacketTooLarge {
        /// The packet's name.
        packet: &'static str,
        /// Its size, header included.
        size: usize,
    },
    /// A string's UTF-16 byte length does not fit its u16 length prefix.
    #[error("{packet}.{field}: a string of {bytes} UTF-16 bytes does not fit its u16 length")]
    StringTooLong {
        /// The packet's name.
        packet: &'static str,
        /// The field's name in the definition file.
        field: &'static str,
        /// Its UTF-16 length in bytes.
        bytes: usize,
    },
    /// A list has more elements than its u16 count can say.
    #[error("{packet}.{field}: a list of {count} elements does not fit its u16 count")]
    ListTooLong {
        /// The packet's name.
        packet: &'static str,
        /// The list's name in the definition file.
        field: &'static str,
        /// How many elements it has.
        count: usize,
    },
}

/// Encodes `packet`, header included, into `buf`; returns the number of bytes written.
///
/// Nothing is written when it fails.
pub fn encode<P: Packet, B: BufMut>(packet: &P, buf: &mut B) -> Result<usize, EncodeError> {
    let size = wire_len(packet)?;
    buf.put_u16_le(size as u16);
    buf.put_u16_le(P::ID);
    packet.encode_fields(buf);
    Ok(size)
}

/// The encoded size of `packet`, header included, or why it cannot be encoded.
pub fn wire_len<P: Packet>(packet: &P) -> Result<usize, EncodeError> {
    let size = HEADER_LEN + packet.wire_len()?;
    if size > MAX_PACKET_LEN {
        return Err(EncodeError::PacketTooLarge { packet: P::NAME, size });
    }
    Ok(size)
}

/// Encodes `packet` into a new vector.
pub fn encode_to_vec<P: Packet>(packet: &P) -> Result<Vec<u8>, EncodeError> {
    let mut buf = Vec::with_capacity(wire_len(packet)?);
    encode(packet, &mut buf)?;
    Ok(buf)
}

/// The UTF-16 byte length of `s`.
fn utf16_bytes(s: &str) -> usize {
    if s.is_ascii() { s.len() * 2 } else { s.chars().map(char::len_utf16).sum::<usize>() * 2 }
}

/// Size of a string field: its u16 length and its UTF-16 code units.
#[doc(hidden)]
pub fn string_len(s: &str, packet: &'static str, field: &'static str) -> Result<usize, EncodeError> {
    let bytes = utf16_bytes(s);
    if bytes > usize::from(u16::MAX) {
        return Err(EncodeError::StringTooLong { packet, field, bytes });
    }
    Ok(2 + bytes)
}

/// Writes a string field whose size [`string_len`] accepted.
#[doc(hidden)]
pub fn put_string<B: BufMut>(buf: &mut B, s: &str) {
    buf.put_u16_le(utf16_bytes(s) as u16);
    for unit in s.encode_utf16() {
        buf.put_u16_le(unit);
    }
}

/// Size of a list field: its u16 count and its elements.
#[doc(hidden)]
pub fn list_len<T: WireFormat>(items: &[T], packet: &'static str, field: &'static str) -> Result<usize, EncodeError> {
    if items.len() > usize::from(u16::MAX) {
        return Err(EncodeError::ListTooLong { packet, field, count: items.len() });
    }
    match T::FIXED_LEN {
        Some(each) => Ok(2 + items.len() * each),
        None => items.iter().try_fold(2, |len, item| Ok(len + item.wire_len()?)),
    }
}

/// Writes a list field whose size [`list_len`] accepted.
#[doc(hidden)]
pub fn put_list<T: WireFormat, B: BufMut>(buf: &mut B, items: &[T]) {
    buf.put_u16_le(items.len() as u16);
    for item in items {
        item.encode_fields(buf);
    }
}
