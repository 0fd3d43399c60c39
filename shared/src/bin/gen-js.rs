//! Writes the JavaScript codec into a web project: `cargo run -p shared --bin gen-js -- DIR`
//! creates `DIR` if needed and writes `DIR/packets.js` and `DIR/packets.d.ts` (see
//! `docs/web-codec.md`). Run it again after changing `assets/PDL.xml`: the build regenerates them.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: gen-js DIR   (writes DIR/packets.js and DIR/packets.d.ts)");
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("error: cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    for (name, text) in [("packets.js", shared::js::PACKETS_JS), ("packets.d.ts", shared::js::PACKETS_D_TS)] {
        let path = dir.join(name);
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
