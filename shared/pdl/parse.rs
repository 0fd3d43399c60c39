//! Reads a definition file in the course's PDL format and checks it.
//!
//! The course's generator trusted its input; a typo there produced C# that failed to compile far
//! from the cause, or worse, compiled. Here every mistake stops the build with a message that
//! names the file, the line, the packet and the field.

use std::collections::HashSet;
use std::fmt;

use super::model::{Definitions, Direction, Field, FieldKind, HEADER_LEN, MAX_PACKET_LEN, Packet, Scalar, min_len};
use super::names;

/// How deep lists may nest. The course's files nest two deep; the limit keeps the generator's
/// recursion (and the size of its output, which grows with the depth) small.
pub const MAX_LIST_DEPTH: usize = 16;

/// A mistake in a definition file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdlError {
    /// The file, as the caller named it.
    pub file: String,
    /// 1-based line and column of the offending element.
    pub line: u32,
    pub column: u32,
    /// The packet it is in, when it is in one.
    pub packet: Option<String>,
    /// The field (with enclosing lists, `skill.attribute`), when it is one.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PdlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        match (&self.packet, &self.field) {
            (Some(p), Some(field)) => write!(f, "packet `{p}`, field `{field}`: ")?,
            (Some(p), None) => write!(f, "packet `{p}`: ")?,
            _ => {}
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for PdlError {}

/// Where the parser is, for error messages.
struct Context<'a> {
    file: &'a str,
    doc: &'a roxmltree::Document<'a>,
}

impl Context<'_> {
    fn error(
        &self,
        node: roxmltree::Node<'_, '_>,
        packet: Option<&str>,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> PdlError {
        let pos = self.doc.text_pos_at(node.range().start);
        PdlError {
            file: self.file.to_string(),
            line: pos.row,
            column: pos.col,
            packet: packet.map(str::to_string),
            field: field.map(str::to_string),
            message: message.into(),
        }
    }
}

/// Parses and checks `text`, the contents of the definition file `file` (used in messages only).
pub fn parse(file: &str, text: &str) -> Result<Definitions, PdlError> {
    let doc = roxmltree::Document::parse(text).map_err(|e| {
        let pos = e.pos();
        PdlError {
            file: file.to_string(),
            line: pos.row,
            column: pos.col,
            packet: None,
            field: None,
            message: format!("not well-formed XML: {e}"),
        }
    })?;
    let cx = Context { file, doc: &doc };
    let root = doc.root_element();
    if root.tag_name().name() != "PDL" {
        return Err(cx.error(
            root,
            None,
            None,
            format!("the root element is `<{}>`; expected `<PDL>`", root.tag_name().name()),
        ));
    }

    let mut packets: Vec<Packet> = Vec::new();
    let mut seen = HashSet::new();
    // Each packet's list types live in a module named after it, so those names must differ too.
    let mut modules = HashSet::new();
    let mut variants = HashSet::new();
    for node in element_children(&cx, root, None, None)? {
        if node.tag_name().name() != "packet" {
            return Err(cx.error(
                node,
                None,
                None,
                format!("`<{}>` where a `<packet>` was expected", node.tag_name().name()),
            ));
        }
        let Some(name) = node.attribute("name") else {
            return Err(cx.error(node, None, None, "a packet without a `name` attribute"));
        };
        if !names::is_identifier(name) {
            return Err(cx.error(
                node,
                Some(name),
                None,
                "the packet name is not an identifier (letters, digits, `_`)",
            ));
        }
        let direction = if name.starts_with("C_") {
            Direction::ClientToServer
        } else if name.starts_with("S_") {
            Direction::ServerToClient
        } else {
            return Err(cx.error(
                node,
                Some(name),
                None,
                "the packet is named neither `C_…` (client → server) nor `S_…` (server → client)",
            ));
        };
        if name.len() == 2 {
            return Err(cx.error(node, Some(name), None, "the packet name is only its direction prefix"));
        }
        if !seen.insert(name.to_string()) {
            return Err(cx.error(node, Some(name), None, "a second packet with this name"));
        }
        if !modules.insert(names::snake_case(name)) {
            return Err(cx.error(
                node,
                Some(name),
                None,
                format!("the packet's Rust module `{}` clashes with an earlier packet's", names::snake_case(name)),
            ));
        }
        // The rest names the packet's variant in `ClientPacket` / `ServerPacket` (`Move`).
        let rest = &name[2..];
        if rest == "_" || rest.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(cx.error(
                node,
                Some(name),
                None,
                "the name after the direction prefix must be an identifier of its own (it names the packet's variant)",
            ));
        }
        if !variants.insert((direction == Direction::ClientToServer, names::variant_ident(name))) {
            return Err(cx.error(
                node,
                Some(name),
                None,
                format!("the packet's variant `{}` clashes with an earlier packet's", names::variant_ident(name)),
            ));
        }
        let id = u16::try_from(packets.len() + 1)
            .map_err(|_| cx.error(node, Some(name), None, "more than 65,535 packets"))?;
        let fields = parse_fields(&cx, node, name, "")?;
        // Such a packet could never be sent; the list capacity arithmetic also assumes it fits.
        let least = HEADER_LEN + min_len(&fields);
        if least > MAX_PACKET_LEN {
            return Err(cx.error(
                node,
                Some(name),
                None,
                format!("the packet takes at least {least} bytes, more than the 65,535 a packet can hold"),
            ));
        }
        packets.push(Packet { name: name.to_string(), id, direction, fields });
    }
    if packets.is_empty() {
        return Err(cx.error(root, None, None, "the file defines no packets"));
    }
    Ok(Definitions { packets })
}

/// The element children of `node`; comments and whitespace are skipped, stray text is an error.
fn element_children<'a, 'i>(
    cx: &Context<'_>,
    node: roxmltree::Node<'a, 'i>,
    packet: Option<&str>,
    field: Option<&str>,
) -> Result<Vec<roxmltree::Node<'a, 'i>>, PdlError> {
    let mut out = Vec::new();
    for child in node.children() {
        if child.is_element() {
            out.push(child);
        } else if child.is_text() && child.text().is_some_and(|t| !t.trim().is_empty()) {
            return Err(cx.error(child, packet, field, "text where only elements belong"));
        }
    }
    Ok(out)
}

/// The fields inside a `<packet>` or a `<list>`; `path` is the enclosing lists (`skill.`).
fn parse_fields(
    cx: &Context<'_>,
    parent: roxmltree::Node<'_, '_>,
    packet: &str,
    path: &str,
) -> Result<Vec<Field>, PdlError> {
    let mut fields = Vec::new();
    // Checked on the Rust names, so `posX` and `pos_x` cannot both exist.
    let mut rust_names = HashSet::new();
    let mut element_types = HashSet::new();
    let list_path = path.strip_suffix('.');
    for node in element_children(cx, parent, Some(packet), list_path)? {
        let type_name = node.tag_name().name();
        let Some(name) = node.attribute("name") else {
            let what = if type_name == "list" { "a list".to_string() } else { format!("a `{type_name}` field") };
            return Err(cx.error(node, Some(packet), list_path, format!("{what} without a `name` attribute")));
        };
        let full = format!("{path}{name}");
        if !names::is_identifier(name) {
            return Err(cx.error(
                node,
                Some(packet),
                Some(&full),
                "the field name is not an identifier (letters, digits, `_`)",
            ));
        }
        let kind = match type_name {
            "string" => FieldKind::String,
            "list" => {
                // Checked before descending: the parser and the generator recurse once per level,
                // and a file nested thousands deep would overflow the build script's stack.
                if path.matches('.').count() >= MAX_LIST_DEPTH {
                    return Err(cx.error(
                        node,
                        Some(packet),
                        Some(&full),
                        format!("lists nest more than {MAX_LIST_DEPTH} deep"),
                    ));
                }
                FieldKind::List(parse_fields(cx, node, packet, &format!("{full}."))?)
            }
            other => match Scalar::ALL.iter().find(|(n, _)| *n == other) {
                Some((_, scalar)) => FieldKind::Scalar(*scalar),
                None => {
                    return Err(cx.error(
                        node,
                        Some(packet),
                        Some(&full),
                        format!(
                            "unknown field type `{other}`; expected one of bool, byte, sbyte, short, ushort, int, uint, long, ulong, float, double, string, list"
                        ),
                    ));
                }
            },
        };
        if type_name != "list" && !element_children(cx, node, Some(packet), Some(&full))?.is_empty() {
            return Err(cx.error(
                node,
                Some(packet),
                Some(&full),
                format!("a `{type_name}` field cannot hold other fields"),
            ));
        }
        let is_list = matches!(kind, FieldKind::List(_));
        let rust_name = names::field_ident(name, is_list);
        if rust_name == "_" {
            return Err(cx.error(node, Some(packet), Some(&full), "`_` cannot name a Rust field"));
        }
        // Compared after keyword escaping: `self` becomes `self_`, which a field may already be.
        if !rust_names.insert(rust_name.clone()) {
            return Err(cx.error(
                node,
                Some(packet),
                Some(&full),
                format!("a second field named `{name}` (Rust name `{rust_name}`) in the same packet or list"),
            ));
        }
        if is_list {
            // The element types of the lists of one packet or element share a module. (Their
            // nested-list modules cannot clash when the types do not.)
            let ty = names::element_type_ident(name);
            if ty.is_empty() || ty == "Self" {
                return Err(cx.error(
                    node,
                    Some(packet),
                    Some(&full),
                    format!("the list's element type would be named `{ty}`, which Rust does not allow"),
                ));
            }
            if !element_types.insert(ty.clone()) {
                return Err(cx.error(
                    node,
                    Some(packet),
                    Some(&full),
                    format!("a second list whose element type is named `{ty}` in the same packet or list"),
                ));
            }
        }
        fields.push(Field { pdl_name: name.to_string(), kind });
    }
    Ok(fields)
}
