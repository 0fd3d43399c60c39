//! Splitting a byte stream into packets, free of I/O (the course's `PacketSession.OnRecv`).
//!
//! The course read `size` and waited for that many bytes; a `size` of 0 spun its I/O thread
//! forever, 1–3 misframed the stream, and nothing bounded how much it would buffer. Here a `size`
//! below the header or above a configured maximum is an error as soon as the two size bytes
//! arrive, and the buffer never holds more than one partial frame plus one read.

use bytes::{Buf, BytesMut};

/// Bytes in a packet header: `[size: u16][id: u16]`.
pub const HEADER_LEN: usize = 4;

/// The largest packet the wire format can describe: `size` is a u16.
pub const MAX_PACKET_LEN: usize = u16::MAX as usize;

/// The most buffer memory [`FrameDecoder::shrink_if_idle`] keeps.
pub const IDLE_KEEP: usize = 256;

/// Why the byte stream cannot be split into packets. Either ends the connection: after a bad
/// `size` nothing that follows can be trusted to start a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A `size` smaller than the header it includes.
    #[error("a packet size of {size} is smaller than the {HEADER_LEN}-byte header")]
    SizeTooSmall {
        /// The `size` read.
        size: u16,
    },
    /// A `size` larger than this side accepts.
    #[error("a packet size of {size} is above the limit of {max} bytes")]
    SizeTooLarge {
        /// The `size` read.
        size: u16,
        /// The configured limit.
        max: usize,
    },
}

/// Collects bytes as they arrive and yields whole packets, header included.
///
/// ```
/// use shared::FrameDecoder;
///
/// let mut frames = FrameDecoder::new(4096);
/// frames.extend_from_slice(&[0x04, 0x00]); // half a header
/// assert_eq!(frames.next_frame().unwrap(), None);
/// frames.extend_from_slice(&[0x02, 0x00, 0x04]); // the rest of C_LeaveGame, and a byte more
/// assert_eq!(frames.next_frame().unwrap(), Some(&[0x04, 0x00, 0x02, 0x00][..]));
/// assert_eq!(frames.next_frame().unwrap(), None);
/// assert_eq!(frames.buffered(), 1);
/// ```
#[derive(Debug)]
pub struct FrameDecoder {
    /// Bytes received and not yet handed out, starting at a packet boundary once `consumed`
    /// has been dropped.
    buf: BytesMut,
    /// Bytes at the front of `buf` that belong to the frame returned last; dropped on the next
    /// call, so the returned slice can borrow the buffer instead of being copied.
    consumed: usize,
    /// The largest `size` accepted.
    max_frame: usize,
}

impl FrameDecoder {
    /// A decoder that rejects packets larger than `max_frame` bytes (at most [`MAX_PACKET_LEN`],
    /// at least [`HEADER_LEN`]).
    pub fn new(max_frame: usize) -> Self {
        Self { buf: BytesMut::new(), consumed: 0, max_frame: max_frame.clamp(HEADER_LEN, MAX_PACKET_LEN) }
    }

    /// The largest `size` accepted.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Appends received bytes.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        self.release_consumed();
        self.buf.extend_from_slice(data);
    }

    /// The buffer to read into directly (e.g. with `AsyncReadExt::read_buf`), after reserving
    /// room; avoids a copy.
    pub fn read_buffer(&mut self, reserve: usize) -> &mut BytesMut {
        self.release_consumed();
        self.buf.reserve(reserve);
        &mut self.buf
    }

    /// Bytes held that are not part of a frame already returned.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.consumed
    }

    /// Gives back the buffer's memory when nothing is pending and it holds more than
    /// [`IDLE_KEEP`] bytes, so an idle connection holds little, and one that receives small
    /// packets does not allocate on every read.
    pub fn shrink_if_idle(&mut self) {
        if self.buffered() == 0 {
            self.consumed = 0;
            if self.buf.capacity() > IDLE_KEEP {
                self.buf = BytesMut::new();
            } else {
                self.buf.clear();
            }
        }
    }

    fn release_consumed(&mut self) {
        if self.consumed > 0 {
            self.buf.advance(self.consumed);
            self.consumed = 0;
        }
    }

    /// The next whole packet (header included), `None` if more bytes are needed, or an error if
    /// the stream cannot be a valid packet stream.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        self.release_consumed();
        let Some(&[s0, s1]) = self.buf.first_chunk::<2>() else {
            return Ok(None);
        };
        let size = u16::from_le_bytes([s0, s1]);
        let len = usize::from(size);
        if len < HEADER_LEN {
            return Err(FrameError::SizeTooSmall { size });
        }
        if len > self.max_frame {
            return Err(FrameError::SizeTooLarge { size, max: self.max_frame });
        }
        if self.buf.len() < len {
            return Ok(None);
        }
        self.consumed = len;
        Ok(Some(&self.buf[..len]))
    }
}
