//! Generates the packet types from the definition files (the course's PacketGenerator, done at
//! build time). A mistake in a definition file stops the build with a message naming the file,
//! line, packet and field.

#[path = "pdl/mod.rs"]
mod pdl;

use std::path::{Path, PathBuf};

/// The definition files to turn into Rust: (input relative to this crate, output file, root path).
const JOBS: &[(&str, &str, &str)] = &[
    // The protocol itself.
    ("../assets/PDL.xml", "packets.rs", "crate"),
    // The course's earlier-stage file, compiled only into the tests that check the generator.
    ("tests/pdl/stage1.xml", "stage1_packets.rs", "::shared"),
    // Keywords and names that would hide Rust's own types: compiled only into the generator's tests.
    ("tests/pdl/names.xml", "names_packets.rs", "::shared"),
];

/// The definition file also turned into JavaScript (`packets.js`, `packets.d.ts`; `shared::js`).
const JS_JOB: &str = "../assets/PDL.xml";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo::rerun-if-changed=pdl");
    for (input, output, root) in JOBS {
        let path = manifest_dir.join(input);
        println!("cargo::rerun-if-changed={}", path.display());
        if let Err(message) = generate(&path, &out_dir.join(output), root) {
            eprintln!("error: {message}");
            std::process::exit(1);
        }
    }
    if let Err(message) = generate_js(&manifest_dir.join(JS_JOB), &out_dir) {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

/// Names a definition file as a reader of the repository knows it (`assets/PDL.xml`).
fn label(input: &Path) -> String {
    let label = input
        .strip_prefix(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .map(|rel| rel.display().to_string())
        .unwrap_or_else(|_| input.display().to_string());
    label.strip_prefix("../").map(str::to_string).unwrap_or_else(|| format!("shared/{label}"))
}

fn generate(input: &Path, output: &Path, root: &str) -> Result<(), String> {
    let label = label(input);
    let xml =
        std::fs::read_to_string(input).map_err(|e| format!("{label}: cannot read the packet definitions: {e}"))?;
    let source = pdl::generate(&label, &xml, root).map_err(|e| e.to_string())?;
    std::fs::write(output, source).map_err(|e| format!("{}: cannot write: {e}", output.display()))
}

fn generate_js(input: &Path, out_dir: &Path) -> Result<(), String> {
    let label = label(input);
    let xml =
        std::fs::read_to_string(input).map_err(|e| format!("{label}: cannot read the packet definitions: {e}"))?;
    let module = pdl::generate_js(&label, &xml).map_err(|e| e.to_string())?;
    for (name, text) in [("packets.js", &module.js), ("packets.d.ts", &module.d_ts)] {
        let output = out_dir.join(name);
        std::fs::write(&output, text).map_err(|e| format!("{}: cannot write: {e}", output.display()))?;
    }
    Ok(())
}
