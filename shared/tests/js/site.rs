//! The files the JavaScript codec's tests serve or run: the codec generated from
//! `assets/PDL.xml` (as the build wrote it), the same generator run on the course's earlier-stage
//! file and on a file of every field type, the checks, and a page.

use std::path::{Path, PathBuf};

/// Every field type at once, nested lists of strings, and the names the JavaScript side escapes
/// (`encode`, `constructor`, `__proto__` fields, `encode` beside `encode_`; an element type `ID`).
pub const TYPES_XML: &str = r#"<PDL>
  <packet name="C_Types">
    <bool name="flag"/><byte name="b"/><sbyte name="sb"/><short name="s"/><ushort name="us"/>
    <int name="i"/><uint name="ui"/><long name="l"/><ulong name="ul"/><float name="f"/><double name="d"/>
    <string name="text"/>
    <list name="row"><list name="cell"><string name="label"/></list></list>
  </packet>
  <packet name="S_Names">
    <int name="encode"/><int name="constructor"/><int name="__proto__"/><int name="static"/><int name="type"/>
    <int name="encode_"/>
    <list name="iD"><byte name="x"/></list>
  </packet>
</PDL>"#;

/// The page: it loads nothing itself; the test imports `checks.js` into it.
pub const INDEX_HTML: &str = "<!doctype html>\n<meta charset=\"utf-8\">\n<title>JavaScript codec</title>\n<p>The JavaScript codec's checks.</p>\n";

/// `(file name, contents)` of the site.
pub fn files() -> Vec<(&'static str, String)> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let stage1 = std::fs::read_to_string(manifest.join("tests/pdl/stage1.xml")).unwrap();
    vec![
        ("index.html", INDEX_HTML.to_string()),
        ("packets.js", shared::js::PACKETS_JS.to_string()),
        ("packets.d.ts", shared::js::PACKETS_D_TS.to_string()),
        ("stage1.js", crate::pdl::generate_js("shared/tests/pdl/stage1.xml", &stage1).unwrap().js),
        ("types.js", crate::pdl::generate_js("types.xml", TYPES_XML).unwrap().js),
        ("types.d.ts", crate::pdl::generate_js("types.xml", TYPES_XML).unwrap().d_ts),
        ("checks.js", include_str!("checks.js").to_string()),
    ]
}

/// Writes the site into `target/tmp/NAME/` (to look at, or to run under Node) and returns the folder.
pub fn write(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, text) in files() {
        std::fs::write(dir.join(file), text).unwrap();
    }
    dir
}
