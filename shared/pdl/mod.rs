//! The packet generator: the course's PacketGenerator, run at build time.
//!
//! `shared/build.rs` includes this folder as a module; so do the tests that check its error
//! messages. It reads a definition file in the course's PDL format (`parse`), checks it, and writes
//! Rust (`emit`). Name mapping: see `names`.

#![allow(dead_code)]

pub mod emit;
pub mod fuzz;
pub mod model;
pub mod names;
pub mod parse;

pub use parse::PdlError;

/// Reads the definition file text `xml` (named `file` in messages) and returns the Rust source,
/// with `root` the path of the `shared` crate where the output is included.
pub fn generate(file: &str, xml: &str, root: &str) -> Result<String, PdlError> {
    let defs = parse::parse(file, xml)?;
    Ok(emit::emit(&defs, root, file))
}
