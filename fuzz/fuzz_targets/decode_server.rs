//! libFuzzer entry for `shared::fuzz::decode_server`; the checks live there.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzz::decode_server(data));
