//! How the course's names become Rust names.
//!
//! | definition file | Rust |
//! |---|---|
//! | packet `C_Move` | struct `C_Move` (kept as is: it is the wire name and says the direction) |
//! | field `posX`, `playerId`, `isSelf` | `pos_x`, `player_id`, `is_self` (snake_case) |
//! | `<list name="player">` in `S_PlayerList` | field `players: Vec<s_player_list::Player>` (the course's `List<Player> players`) |
//! | a name that is a Rust keyword (`type`) | a raw identifier (`r#type`) |
//! | the capacity of that list | `S_PlayerList::MAX_PLAYERS`: `MAX_` and the list's Rust field name, upper-cased |
//!
//! The JavaScript codec (`emit_js`) uses the same names: class `C_Move`, fields `pos_x` and
//! `players`, element class `S_PlayerList.Player`, `S_PlayerList.MAX_PLAYERS`. JavaScript needs no
//! keyword escapes for property names, so `type` stays `type` (and `self` stays `self`); it has
//! escapes of its own, a trailing `_`, for the few names that would hide what the codec itself
//! uses: a field `encode`, `constructor` or `__proto__`, an element type `ID`, `NAME` or
//! `DIRECTION` (the packet class's own statics); more `_` when a field already has that name.

use std::collections::HashSet;

use super::model::{Field, FieldKind};

/// Whether `name` can be an identifier: an ASCII letter or `_`, then letters, digits or `_`.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `posX` → `pos_x`, `HTTPCode` → `http_code`, `S_PlayerList` → `s_player_list`.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = i.checked_sub(1).map(|j| chars[j]);
            let next = chars.get(i + 1).copied();
            let starts_word = match prev {
                None | Some('_') => false,
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                // An acronym ends where a capital is followed by a lowercase letter: `HTTPCode`.
                Some(p) if p.is_ascii_uppercase() => next.is_some_and(|n| n.is_ascii_lowercase()),
                Some(_) => false,
            };
            if starts_word {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `player` → `Player`, `skill_info` → `SkillInfo`: the type of a list's elements.
pub fn upper_camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper_next = true;
    for c in name.chars() {
        if c == '_' {
            upper_next = true;
        } else if upper_next {
            out.push(c.to_ascii_uppercase());
            upper_next = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The field that holds a list: the course's convention, the list's name plus `s`.
pub fn list_field_name(list_name: &str) -> String {
    format!("{}s", snake_case(list_name))
}

/// The Rust name of a packet's or list element's field: `posX` → `pos_x`, a list `player` →
/// `players`, a keyword escaped (`type` → `r#type`).
pub fn field_ident(pdl_name: &str, is_list: bool) -> String {
    escape_keyword(&if is_list { list_field_name(pdl_name) } else { snake_case(pdl_name) })
}

/// The variant of `ClientPacket` / `ServerPacket` that holds a packet: its name without the
/// direction prefix (`C_Move` → `Move`).
pub fn variant_ident(packet_name: &str) -> String {
    escape_keyword(packet_name.get(2..).unwrap_or_default())
}

/// The type of a list's elements: `player` → `Player`.
pub fn element_type_ident(list_name: &str) -> String {
    upper_camel_case(list_name)
}

/// The module that holds the element types of the lists nested in a list's elements: `skill` →
/// `skill`, a keyword escaped (`type` → `r#type`).
pub fn list_module_ident(list_name: &str) -> String {
    escape_keyword(&snake_case(list_name))
}

/// The module that holds a packet's list element types: `S_PlayerList` → `s_player_list`.
pub fn packet_module_ident(packet_name: &str) -> String {
    snake_case(packet_name)
}

/// A field's name in the JavaScript codec: the Rust name without Rust's keyword escapes, and with a
/// trailing `_` where it would hide the packet's `encode` method or a property every object has.
pub fn js_field_ident(pdl_name: &str, is_list: bool) -> String {
    let name = if is_list { list_field_name(pdl_name) } else { snake_case(pdl_name) };
    if matches!(name.as_str(), "encode" | "constructor" | "__proto__") { format!("{name}_") } else { name }
}

/// The JavaScript names of one packet's or list element's fields, in order: [`js_field_ident`],
/// where an escape meets another field's own name made unique by more `_` (`encode` beside a
/// field `encode_` is `encode__`).
pub fn js_field_names(fields: &[Field]) -> Vec<String> {
    let is_list = |f: &Field| matches!(f.kind, FieldKind::List(_));
    let unescaped = |f: &Field| if is_list(f) { list_field_name(&f.pdl_name) } else { snake_case(&f.pdl_name) };
    let js = |f: &Field| js_field_ident(&f.pdl_name, is_list(f));
    // Names used as they are come first (they are unique: their Rust names are); escapes give way.
    let mut taken: HashSet<String> = fields.iter().filter(|f| js(f) == unescaped(f)).map(js).collect();
    fields
        .iter()
        .map(|f| {
            let mut name = js(f);
            if name != unescaped(f) {
                while taken.contains(&name) {
                    name.push('_');
                }
                taken.insert(name.clone());
            }
            name
        })
        .collect()
}

/// A list element class's name in the JavaScript codec, a static of its packet's class: the Rust
/// name, with a trailing `_` where it would hide one of the packet class's own statics.
pub fn js_element_type_ident(list_name: &str) -> String {
    let name = element_type_ident(list_name);
    if matches!(name.as_str(), "ID" | "NAME" | "DIRECTION") { format!("{name}_") } else { name }
}

const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern", "false", "fn",
    "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self",
    "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where", "while", "abstract",
    "become", "box", "do", "final", "macro", "override", "priv", "try", "typeof", "unsized", "virtual", "yield",
];

/// Makes a name safe to use as an identifier: `type` → `r#type`.
pub fn escape_keyword(name: &str) -> String {
    if KEYWORDS.contains(&name) {
        // `crate`, `self`, `super` and `Self` cannot be raw identifiers; a trailing `_` is the
        // usual escape for them.
        if matches!(name, "crate" | "self" | "super" | "Self") { format!("{name}_") } else { format!("r#{name}") }
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_follows_the_course_names() {
        assert_eq!(snake_case("posX"), "pos_x");
        assert_eq!(snake_case("playerId"), "player_id");
        assert_eq!(snake_case("isSelf"), "is_self");
        assert_eq!(snake_case("chat"), "chat");
        assert_eq!(snake_case("HTTPCode"), "http_code");
        assert_eq!(snake_case("S_PlayerList"), "s_player_list");
        assert_eq!(snake_case("C_PlayerInfoReq"), "c_player_info_req");
        assert_eq!(snake_case("pos2D"), "pos2_d");
    }

    #[test]
    fn list_names() {
        assert_eq!(upper_camel_case("player"), "Player");
        assert_eq!(upper_camel_case("skill_info"), "SkillInfo");
        assert_eq!(list_field_name("player"), "players");
        assert_eq!(list_field_name("attribute"), "attributes");
    }
}
