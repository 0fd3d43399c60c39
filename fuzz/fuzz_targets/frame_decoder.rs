//! libFuzzer entry for `shared::fuzz::frame_decoder`; the checks live there.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzz::frame_decoder(data));
