//! The PDL parser's fuzz target body. It lives with the generator because the generator is not
//! part of the `shared` library: the fuzz target (`fuzz/fuzz_targets/pdl_parser.rs`) and the
//! stable corpus test (`shared/tests/fuzz_corpus.rs`) include this folder with `#[path]`.
//!
//! A definition file is the user's own, so any text must give either Rust or an error that
//! points into the file, never a panic. And a file the generator accepts must not give Rust that
//! fails to compile far from the cause: every name the output declares is checked here against
//! Rust's rules for identifiers, written out independently of `names`.

use std::collections::HashSet;

use super::model::{Definitions, Direction, Field, FieldKind};
use super::names::{element_type_ident, field_ident, list_module_ident, packet_module_ident, variant_ident};

/// Runs the generator on `data` (as UTF-8; a file that is not is refused before the parser, as
/// `build.rs` refuses it) and checks the outcome.
pub fn pdl_parser(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match super::generate("fuzz.xml", text, "crate") {
        Err(e) => {
            assert!(!e.message.is_empty(), "an error without a message");
            assert!(e.line >= 1 && e.column >= 1, "{e}: positions are 1-based");
            // Points into the file: at most one line past its last line break.
            assert!(e.line as usize <= text.matches('\n').count() + 1, "{e}: line past the end of the file");
            assert!(e.to_string().starts_with("fuzz.xml:"), "{e}");
        }
        Ok(rust) => {
            let defs = super::parse::parse("fuzz.xml", text).expect("generate accepted the file");
            assert_eq!(super::emit::emit(&defs, "crate", "fuzz.xml"), rust, "the output is deterministic");
            check_names(&defs);
            // The JavaScript codec of the same file: generated without a panic, and no two fields
            // of a class share a name.
            let _ = super::emit_js::emit(&defs, "fuzz.xml");
            check_js_names(&defs.packets.iter().map(|p| p.fields.as_slice()).collect::<Vec<_>>());
        }
    }
}

/// Checks that the JavaScript field names of each struct (and, recursively, of its lists'
/// elements) are unique.
fn check_js_names(structs: &[&[Field]]) {
    for fields in structs {
        let names = super::names::js_field_names(fields);
        let unique: HashSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "JavaScript field names clash: {names:?}");
        let lists: Vec<&[Field]> = fields
            .iter()
            .filter_map(|f| match &f.kind {
                FieldKind::List(inner) => Some(inner.as_slice()),
                _ => None,
            })
            .collect();
        check_js_names(&lists);
    }
}

/// Checks that every name the generated code declares is a usable identifier and unique where
/// it is declared; panics naming the first that is not.
pub fn check_names(defs: &Definitions) {
    let mut top = Scope::new("the packets module");
    for name in ["PacketId", "PACKETS", "ClientPacket", "ServerPacket"] {
        top.declare(name.to_string());
    }
    let mut variants = [Scope::new("ClientPacket"), Scope::new("ServerPacket")];
    for p in &defs.packets {
        top.declare(p.name.clone());
        variants[usize::from(p.direction == Direction::ServerToClient)].declare(variant_ident(&p.name));
        check_struct(&p.name, &p.fields);
        if has_lists(&p.fields) {
            top.declare(packet_module_ident(&p.name));
            check_list_scope(&p.name, &p.fields);
        }
    }
}

fn has_lists(fields: &[Field]) -> bool {
    fields.iter().any(|f| matches!(f.kind, FieldKind::List(_)))
}

/// The fields of one struct.
fn check_struct(name: &str, fields: &[Field]) {
    let mut scope = Scope::new(name);
    for f in fields {
        scope.declare(field_ident(&f.pdl_name, matches!(f.kind, FieldKind::List(_))));
    }
}

/// The module that holds the element types of the lists in `fields` (and their modules).
fn check_list_scope(owner: &str, fields: &[Field]) {
    let mut scope = Scope::new(owner);
    for f in fields {
        if let FieldKind::List(inner) = &f.kind {
            let ty = element_type_ident(&f.pdl_name);
            assert!(!ty.starts_with("r#"), "{owner}: the element type `{ty}` of `{}`", f.pdl_name);
            scope.declare(ty.clone());
            check_struct(&ty, inner);
            if has_lists(inner) {
                scope.declare(list_module_ident(&f.pdl_name));
                check_list_scope(&ty, inner);
            }
        }
    }
}

/// Names declared in one namespace of the generated code.
struct Scope {
    what: String,
    names: HashSet<String>,
}

impl Scope {
    fn new(what: &str) -> Self {
        Self { what: what.to_string(), names: HashSet::new() }
    }

    fn declare(&mut self, ident: String) {
        assert!(is_rust_identifier(&ident), "{}: `{ident}` is not a Rust identifier", self.what);
        let plain = ident.strip_prefix("r#").unwrap_or(&ident).to_string();
        assert!(self.names.insert(plain), "{}: `{ident}` is declared twice", self.what);
    }
}

/// Whether `s` can name an item, field or variant: an ASCII identifier that is not `_` and not a
/// keyword, or a raw identifier (`r#type`) of a keyword that may be raw. Per the Rust reference
/// (edition 2024), written out here on purpose rather than taken from `names`.
fn is_rust_identifier(s: &str) -> bool {
    const STRICT_AND_RESERVED: &[&str] = &[
        "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for", "if", "impl",
        "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self", "Self", "static", "struct",
        "super", "trait", "true", "type", "unsafe", "use", "where", "while", "async", "await", "dyn", "abstract",
        "become", "box", "do", "final", "macro", "override", "priv", "typeof", "unsized", "virtual", "yield", "try",
        "gen",
    ];
    let (raw, name) = match s.strip_prefix("r#") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let mut chars = name.chars();
    let well_formed = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name != "_";
    let keyword = STRICT_AND_RESERVED.contains(&name);
    if raw { well_formed && !matches!(name, "crate" | "self" | "super" | "Self") } else { well_formed && !keyword }
}
