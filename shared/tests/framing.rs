//! The frame decoder: whole packets across any read boundaries; bad sizes rejected at once.

use shared::{C_Chat, C_LeaveGame, C_Move, FrameDecoder, FrameError, encode_to_vec};

/// Three packets back to back, 40 bytes.
fn stream() -> Vec<u8> {
    let mut bytes = encode_to_vec(&C_Move { pos_x: 10.0, pos_y: 0.0, pos_z: -5.0 }).unwrap();
    bytes.extend(encode_to_vec(&C_LeaveGame).unwrap());
    bytes.extend(encode_to_vec(&C_Chat { chat: "héllo".into() }).unwrap());
    bytes
}

fn drain(frames: &mut FrameDecoder) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(frame) = frames.next_frame().unwrap() {
        out.push(frame.to_vec());
    }
    out
}

#[test]
fn a_stream_split_at_every_byte_boundary() {
    let bytes = stream();
    let whole = drain(&mut {
        let mut f = FrameDecoder::new(4096);
        f.extend_from_slice(&bytes);
        f
    });
    assert_eq!(whole.len(), 3);
    for cut in 0..=bytes.len() {
        let mut frames = FrameDecoder::new(4096);
        frames.extend_from_slice(&bytes[..cut]);
        let mut got = drain(&mut frames);
        frames.extend_from_slice(&bytes[cut..]);
        got.extend(drain(&mut frames));
        assert_eq!(got, whole, "split at {cut}");
        assert_eq!(frames.buffered(), 0);
    }
}

#[test]
fn a_stream_fed_one_byte_at_a_time() {
    let bytes = stream();
    let mut frames = FrameDecoder::new(4096);
    let mut got = Vec::new();
    for b in &bytes {
        frames.extend_from_slice(std::slice::from_ref(b));
        got.extend(drain(&mut frames));
    }
    assert_eq!(got.concat(), bytes);
    assert_eq!(got.len(), 3);
}

#[test]
fn sizes_below_the_header_are_rejected() {
    for size in 0u16..4 {
        let mut frames = FrameDecoder::new(4096);
        frames.extend_from_slice(&size.to_le_bytes());
        assert_eq!(frames.next_frame(), Err(FrameError::SizeTooSmall { size }), "size {size}");
    }
}

#[test]
fn sizes_above_the_limit_are_rejected_before_the_body_arrives() {
    let mut frames = FrameDecoder::new(100);
    frames.extend_from_slice(&[101, 0]);
    assert_eq!(frames.next_frame(), Err(FrameError::SizeTooLarge { size: 101, max: 100 }));
    let mut frames = FrameDecoder::new(100);
    frames.extend_from_slice(&[100, 0]);
    assert_eq!(frames.next_frame(), Ok(None));
}

#[test]
fn the_limit_is_clamped_to_what_the_format_allows() {
    assert_eq!(FrameDecoder::new(1_000_000).max_frame(), 65_535);
    assert_eq!(FrameDecoder::new(0).max_frame(), 4);
}

#[test]
fn reading_straight_into_the_buffer() {
    let bytes = stream();
    let mut frames = FrameDecoder::new(4096);
    frames.read_buffer(64).extend_from_slice(&bytes[..18]);
    assert_eq!(drain(&mut frames).len(), 1);
    frames.read_buffer(64).extend_from_slice(&bytes[18..]);
    assert_eq!(drain(&mut frames).len(), 2);
}

#[test]
fn an_idle_decoder_gives_its_memory_back() {
    let mut frames = FrameDecoder::new(4096);
    frames.read_buffer(4096).extend_from_slice(&[4, 0, 2, 0]);
    assert_eq!(drain(&mut frames).len(), 1);
    frames.shrink_if_idle();
    assert_eq!(frames.read_buffer(0).capacity(), 0, "a 4 KiB buffer is given back");
    // A small one is kept, to be reused.
    frames.extend_from_slice(&[4, 0, 2, 0]);
    assert_eq!(drain(&mut frames).len(), 1);
    frames.shrink_if_idle();
    assert!((1..=shared::IDLE_KEEP).contains(&frames.read_buffer(0).capacity()));
    // A partial frame is kept.
    frames.extend_from_slice(&[4, 0]);
    frames.shrink_if_idle();
    assert_eq!(frames.buffered(), 2);
}
