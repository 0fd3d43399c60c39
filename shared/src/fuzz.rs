//! Fuzz target bodies: plain functions, so the same checks run under libFuzzer (`fuzz/`, nightly)
//! and as ordinary tests over the checked-in corpus (`shared/tests/fuzz_corpus.rs`, stable).
//!
//! Each function accepts any bytes and panics only when an invariant breaks: a panic here is a
//! finding, whichever engine fed the input. Not a stable API; hidden from the documentation.
//!
//! The decode targets check the generated decoders against a second, independent reading of the
//! same packets: [`PACKETS`], the layout table the generator also writes. The two share no code,
//! so a wrong generated decoder, a wrong table or a wrong runtime reader shows up as a
//! disagreement instead of passing unnoticed.

use crate::{
    ClientPacket, DecodeError, Direction, FieldSchema, FieldType, FrameDecoder, FrameError, HEADER_LEN, MAX_PACKET_LEN,
    PACKETS, PacketSet, Scalar, ServerPacket, decode, read_header,
};

/// The frame decoder: fed the stream at once and in arbitrary chunks (with buffer reuse and
/// shrinking in between), it must yield exactly the frames and the error that a plain reading of
/// the course's framing rule gives.
///
/// Input layout: bytes 0–1 are the decoder's `max_frame` (little-endian, clamped by the decoder),
/// byte 2 seeds the chunk sizes, the rest is the stream.
pub fn frame_decoder(data: &[u8]) {
    let (config, stream) = data.split_at(data.len().min(3));
    let max_frame = match config {
        [a, b, ..] => usize::from(u16::from_le_bytes([*a, *b])),
        _ => 4096,
    };
    let seed = config.get(2).copied().unwrap_or(0);
    let expected = reference_frames(stream, max_frame.clamp(HEADER_LEN, MAX_PACKET_LEN));

    let mut whole = FrameDecoder::new(max_frame);
    whole.extend_from_slice(stream);
    let mut got = Framed::default();
    drain(&mut whole, &mut got);
    assert_eq!(got, expected, "the stream fed at once");
    if got.error.is_none() {
        assert_eq!(whole.buffered(), stream.len() - got.frames.iter().map(Vec::len).sum::<usize>());
    }

    let mut chunked = FrameDecoder::new(max_frame);
    let mut got = Framed::default();
    let mut rng = u32::from(seed) | 0x9E37_7900;
    let mut rest = stream;
    let mut step = 0usize;
    while !rest.is_empty() && got.error.is_none() {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        // Mostly small reads, sometimes a large one, as a socket delivers them.
        let n = if rng % 8 == 0 { (rng >> 8) as usize % 4096 } else { (rng >> 8) as usize % 24 } + 1;
        let (now, later) = rest.split_at(n.min(rest.len()));
        rest = later;
        if step.is_multiple_of(2) {
            chunked.extend_from_slice(now);
        } else {
            chunked.read_buffer(now.len()).extend_from_slice(now);
        }
        step += 1;
        drain(&mut chunked, &mut got);
        if step.is_multiple_of(3) {
            // Must keep a partial frame and only drop what was handed out.
            let before = chunked.buffered();
            chunked.shrink_if_idle();
            assert_eq!(chunked.buffered(), before, "shrink_if_idle dropped pending bytes");
        }
    }
    assert_eq!(got, expected, "the stream fed in chunks (seed {seed})");
}

/// Frames and the error that ended them, as the decoder or the reference produced them.
#[derive(Debug, Default, PartialEq)]
struct Framed {
    frames: Vec<Vec<u8>>,
    error: Option<FrameError>,
}

/// Takes every frame the decoder has ready; checks each on the way.
fn drain(decoder: &mut FrameDecoder, out: &mut Framed) {
    let max_frame = decoder.max_frame();
    loop {
        match decoder.next_frame() {
            Ok(Some(frame)) => {
                let (size, _) = read_header(frame).expect("a frame's header matches its length");
                assert!((HEADER_LEN..=max_frame).contains(&usize::from(size)));
                out.frames.push(frame.to_vec());
            }
            Ok(None) => return,
            Err(e) => {
                // A bad size is final: asking again gives the same answer, and nothing is lost.
                assert_eq!(decoder.next_frame(), Err(e), "a framing error must stay");
                out.error = Some(e);
                return;
            }
        }
    }
}

/// The course's framing rule, written plainly: while two bytes are there, read `size`; reject it
/// below the header or above the limit; wait until `size` bytes are there; cut.
fn reference_frames(stream: &[u8], max_frame: usize) -> Framed {
    let mut out = Framed::default();
    let mut at = 0;
    while stream.len() - at >= 2 {
        let size = u16::from_le_bytes([stream[at], stream[at + 1]]);
        let len = usize::from(size);
        if len < HEADER_LEN {
            out.error = Some(FrameError::SizeTooSmall { size });
            break;
        }
        if len > max_frame {
            out.error = Some(FrameError::SizeTooLarge { size, max: max_frame });
            break;
        }
        if stream.len() - at < len {
            break;
        }
        out.frames.push(stream[at..at + len].to_vec());
        at += len;
    }
    out
}

/// Decoding as a server does ([`ClientPacket`]): the input as it is, and again with its header's
/// `size` set to its length so that the body decoders are reached whatever the input.
pub fn decode_client(data: &[u8]) {
    check_set::<ClientPacket>(data);
    if let Some(fixed) = with_true_size(data) {
        check_set::<ClientPacket>(&fixed);
    }
}

/// Decoding as a client does ([`ServerPacket`]); as [`decode_client`].
pub fn decode_server(data: &[u8]) {
    check_set::<ServerPacket>(data);
    if let Some(fixed) = with_true_size(data) {
        check_set::<ServerPacket>(&fixed);
    }
}

fn with_true_size(data: &[u8]) -> Option<Vec<u8>> {
    let size = u16::try_from(data.len()).ok().filter(|&n| usize::from(n) >= HEADER_LEN)?;
    let mut fixed = data.to_vec();
    fixed[..2].copy_from_slice(&size.to_le_bytes());
    Some(fixed)
}

/// Decodes `frame` as a member of `S` and checks the outcome against [`reference_decode`]: the
/// same error, or a packet that re-encodes to the input in its canonical form.
///
/// The canonical form is the input with every bool byte as 0 or 1: a reader takes any non-zero
/// byte as true (as the course's does), a writer writes 1. Nothing else may change: floats keep
/// their bits, NaN payloads included, and strings their UTF-16.
fn check_set<S: PacketSet>(frame: &[u8]) {
    let got = decode::<S>(frame);
    let expected = reference_decode(frame, S::DIRECTION);
    match (got, expected) {
        (Ok(packet), Ok((id, canonical))) => {
            assert_eq!(packet.id(), id);
            assert_eq!(packet.name(), PACKETS[usize::from(id) - 1].name);
            assert_eq!(packet.wire_len(), Ok(frame.len()), "{}: wire_len of a decoded packet", packet.name());
            let mut out = Vec::with_capacity(frame.len());
            assert_eq!(packet.encode(&mut out), Ok(frame.len()));
            assert_eq!(out, canonical, "{}: re-encoding differs from the canonical input", packet.name());
        }
        (Err(got), Err(expected)) => {
            assert_eq!(got, expected, "decoding {frame:02x?}");
            assert!(!got.to_string().is_empty());
        }
        (got, expected) => panic!("decoding {frame:02x?}: got {got:?}, the layout table says {expected:?}"),
    }
}

/// Reads `frame` with nothing but the layout table: the packet's id and its canonical bytes, or
/// the error the decoder must give (the same variant, field and figures).
fn reference_decode(frame: &[u8], direction: Direction) -> Result<(u16, Vec<u8>), DecodeError> {
    if frame.len() < HEADER_LEN {
        return Err(DecodeError::ShortHeader { len: frame.len() });
    }
    let declared = u16::from_le_bytes([frame[0], frame[1]]);
    if usize::from(declared) != frame.len() {
        return Err(DecodeError::SizeMismatch { declared, actual: frame.len() });
    }
    let id = u16::from_le_bytes([frame[2], frame[3]]);
    let Some(info) = PACKETS.iter().find(|p| p.id == id) else {
        return Err(DecodeError::UnknownPacketId { id });
    };
    if info.direction != direction {
        return Err(DecodeError::WrongDirection { id, name: info.name, direction: info.direction });
    }
    let mut walk = Walk { packet: info.name, body: &frame[HEADER_LEN..], at: 0, out: frame[..HEADER_LEN].to_vec() };
    walk.fields(info.fields)?;
    let extra = walk.body.len() - walk.at;
    if extra > 0 {
        return Err(DecodeError::TrailingBytes { packet: info.name, extra });
    }
    Ok((id, walk.out))
}

/// A cursor for [`reference_decode`] that copies what it reads, canonicalised, to `out`.
struct Walk<'a> {
    packet: &'static str,
    body: &'a [u8],
    at: usize,
    out: Vec<u8>,
}

impl Walk<'_> {
    fn remaining(&self) -> usize {
        self.body.len() - self.at
    }

    fn take(&mut self, field: &'static str, n: usize) -> Result<&[u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated { packet: self.packet, field, needed: n, remaining: self.remaining() });
        }
        self.at += n;
        Ok(&self.body[self.at - n..self.at])
    }

    fn length(&mut self, field: &'static str) -> Result<usize, DecodeError> {
        let bytes = self.take(field, 2)?;
        let n = u16::from_le_bytes([bytes[0], bytes[1]]);
        self.out.extend_from_slice(&n.to_le_bytes());
        Ok(usize::from(n))
    }

    fn fields(&mut self, fields: &'static [FieldSchema]) -> Result<(), DecodeError> {
        for field in fields {
            let name = field.name;
            match field.ty {
                FieldType::Scalar(Scalar::Bool) => {
                    let byte = self.take(name, 1)?[0];
                    self.out.push(u8::from(byte != 0));
                }
                FieldType::Scalar(s) => {
                    let bytes = self.take(name, s.size())?.to_vec();
                    self.out.extend_from_slice(&bytes);
                }
                FieldType::String => {
                    let len = self.length(name)?;
                    if len > self.remaining() {
                        return Err(DecodeError::StringOverrun {
                            packet: self.packet,
                            field: name,
                            len,
                            remaining: self.remaining(),
                        });
                    }
                    if len % 2 != 0 {
                        return Err(DecodeError::OddStringLength { packet: self.packet, field: name, len });
                    }
                    let bytes = self.take(name, len)?.to_vec();
                    let units = bytes.chunks_exact(2).map(|u| u16::from_le_bytes([u[0], u[1]]));
                    if let Some(Err(e)) = char::decode_utf16(units).find(Result::is_err) {
                        let unit = e.unpaired_surrogate();
                        return Err(DecodeError::UnpairedSurrogate { packet: self.packet, field: name, unit });
                    }
                    self.out.extend_from_slice(&bytes);
                }
                FieldType::List(inner) => {
                    let count = self.length(name)?;
                    let needed = count * min_len(inner);
                    if needed > self.remaining() {
                        return Err(DecodeError::ListOverrun {
                            packet: self.packet,
                            field: name,
                            count,
                            needed,
                            remaining: self.remaining(),
                        });
                    }
                    for _ in 0..count {
                        self.fields(inner)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The fewest bytes `fields` take: scalars at their size, strings and lists at their 2-byte length.
fn min_len(fields: &[FieldSchema]) -> usize {
    fields
        .iter()
        .map(|f| match f.ty {
            FieldType::Scalar(s) => s.size(),
            FieldType::String | FieldType::List(_) => 2,
        })
        .sum()
}
