//! libFuzzer entry for the PDL parser (`shared/pdl/fuzz.rs` holds the checks).
#![no_main]

#[allow(dead_code, unused_imports)]
#[path = "../../shared/pdl/mod.rs"]
mod pdl;

libfuzzer_sys::fuzz_target!(|data: &[u8]| pdl::fuzz::pdl_parser(data));
