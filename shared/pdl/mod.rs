//! The packet generator: the course's PacketGenerator, run at build time.
//!
//! `shared/build.rs` includes this folder as a module; so do the tests that check its error
//! messages. It reads a definition file in the course's PDL format (`parse`), checks it, and writes
//! Rust (`emit`), and the same definitions as a JavaScript module with TypeScript declarations
//! (`emit_js`). Name mapping: see `names`.

#![allow(dead_code)]

pub mod emit;
pub mod emit_js;
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

/// Reads the definition file text `xml` (named `file` in messages) and returns the JavaScript
/// codec: `packets.js` and `packets.d.ts`.
pub fn generate_js(file: &str, xml: &str) -> Result<emit_js::JsModule, PdlError> {
    let defs = parse::parse(file, xml)?;
    Ok(emit_js::emit(&defs, file))
}
