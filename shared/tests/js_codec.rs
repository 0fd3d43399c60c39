//! The JavaScript codec, from the Rust side: the generated module has a class, an id and a
//! declaration for every packet of `assets/PDL.xml`, is what the generator makes of that file,
//! and (where Node.js is installed) parses and passes the checks the browser test runs. The
//! browser is the test that counts: `js_codec_browser.rs`.

#[path = "browser/mod.rs"]
mod browser;
#[path = "../pdl/mod.rs"]
mod pdl;
#[path = "js/site.rs"]
mod site;

use std::process::Command;

use shared::js::{PACKETS_D_TS, PACKETS_JS};
use shared::{PACKETS, PacketId};

#[test]
fn every_packet_has_a_class_an_id_and_a_declaration() {
    for info in PACKETS {
        let name = info.name;
        let class = format!("export class {name} {{\n  static ID = {};\n  static NAME = \"{name}\";", info.id);
        assert!(PACKETS_JS.contains(&class), "packets.js: {class}");
        assert!(PACKETS_JS.contains(&format!("\n  {name}: {},\n", info.id)), "packets.js: PacketId.{name}");
        let direction = format!("{:?}", info.direction);
        assert!(PACKETS_JS.contains(&format!("  static DIRECTION = \"{direction}\";")));
        let declared = format!("export declare class {name} {{\n  static readonly ID: {};", info.id);
        assert!(PACKETS_D_TS.contains(&declared), "packets.d.ts: {declared}");
        assert_eq!(PacketId::try_from(info.id).map(|id| id.info().name), Ok(name));
    }
    let classes = PACKETS_JS.matches("\nexport class ").count();
    assert_eq!(classes, PACKETS.len() + 4, "the packets, DecodeError, EncodeError, FrameError and FrameDecoder");
    assert!(PACKETS_JS.contains("static MAX_PLAYERS = 3854;"), "{}", shared::S_PlayerList::MAX_PLAYERS);
    assert_eq!(shared::S_PlayerList::MAX_PLAYERS, 3854);
}

#[test]
fn the_build_wrote_what_the_generator_makes_of_pdl_xml() {
    let xml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/PDL.xml")).unwrap();
    let module = pdl::generate_js("assets/PDL.xml", &xml).unwrap();
    assert_eq!(module.js, PACKETS_JS);
    assert_eq!(module.d_ts, PACKETS_D_TS);
    assert!(PACKETS_JS.starts_with("// @generated"));
}

#[test]
fn a_mistake_in_the_definitions_is_the_rust_generators_error() {
    let err = pdl::generate_js("bad.xml", "<PDL><packet name=\"X_Move\"/></PDL>").unwrap_err();
    assert!(err.to_string().starts_with("bad.xml:1:6: packet `X_Move`:"), "{err}");
}

/// Node.js, where installed: every generated module parses, and the browser test's checks pass.
/// (Skipped without Node: the browser test is the one CI needs.)
#[test]
fn under_node_the_modules_parse_and_the_checks_pass() {
    let Some(node) = browser::find_program(&["node", "nodejs"]) else {
        eprintln!("SKIPPED: node not found (the browser test covers the same checks)");
        return;
    };
    let dir = site::write("js-codec-node");
    let names = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pdl/names.xml")).unwrap();
    std::fs::write(dir.join("names.mjs"), pdl::generate_js("names.xml", &names).unwrap().js).unwrap();
    for module in ["packets.js", "stage1.js", "types.js", "names.mjs"] {
        // `.js` files are ES modules only next to a package.json that says so: check them as `.mjs`.
        let path = dir.join(module).with_extension("mjs");
        if module.ends_with(".js") {
            std::fs::copy(dir.join(module), &path).unwrap();
        }
        let out = Command::new(&node).arg("--check").arg(&path).output().unwrap();
        assert!(out.status.success(), "{module}: {}", String::from_utf8_lossy(&out.stderr));
    }
    std::fs::write(dir.join("package.json"), "{\"type\": \"module\"}\n").unwrap();
    let script = "const r = (await import('./checks.js')).run(); console.log(JSON.stringify(r)); \
                  process.exit(r.failed.length === 0 ? 0 : 1);";
    let out = Command::new(&node).current_dir(&dir).args(["--input-type=module", "-e", script]).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// TypeScript, where `tsc` is installed: the declarations compile under `--strict` with code that
/// uses them as a web project would (`tests/js/use.ts`), and wrong uses stay errors. (Skipped
/// without tsc: CI needs no npm package.)
#[test]
fn under_tsc_the_declarations_type_a_web_project() {
    let Some(tsc) = browser::find_program(&["tsc"]) else {
        eprintln!("SKIPPED: tsc not found (npm install typescript to check the declarations)");
        return;
    };
    let dir = site::write("js-codec-tsc");
    std::fs::write(dir.join("use.ts"), include_str!("js/use.ts")).unwrap();
    let out = Command::new(tsc)
        .current_dir(&dir)
        .args(["--strict", "--noEmit", "--target", "es2022", "--module", "es2022", "--moduleResolution", "bundler"])
        .args(["--lib", "es2022,dom", "use.ts"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tsc: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `gen-js DIR` writes the two files into `DIR` (made when missing), and refuses other arguments.
#[test]
fn gen_js_writes_the_module_into_a_web_project() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("js-codec-gen").join("web/src");
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_gen-js")).arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(dir.join("packets.js")).unwrap(), PACKETS_JS);
    assert_eq!(std::fs::read_to_string(dir.join("packets.d.ts")).unwrap(), PACKETS_D_TS);
    let usage = Command::new(env!("CARGO_BIN_EXE_gen-js")).output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).starts_with("usage: gen-js DIR"));
}
