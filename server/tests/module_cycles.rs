//! No import circles among the modules of `server`, `shared`, `client_bot` and `net_plugin`: a
//! module that uses another may not be used by it, directly or around a circle. A circle makes
//! each module's meaning depend on the others' (issue 18 untangled `config` ↔ `interest` ↔
//! `room` and `chat` ↔ `stats`; the bots' report no longer knows the bots, only their views).
//!
//! The rule is `/work/shared/tools/modcycle.py`'s, so the test and the tool agree: a module is a
//! top-level file or folder under `src` (`lib.rs` and `main.rs` aside); it uses another when it
//! names `crate::other` (or `other` inside `use crate::{…}`), outside comments and outside its
//! `#[cfg(test)] mod tests`. In `net_plugin` (issue 17 untangled `connection` ↔ `inbound` ↔
//! `outbound` ↔ `runtime` ↔ `session`), what a session's parties share is `handle`, at the
//! bottom; the ECS side (`connection`, `inbound`, `outbound`) uses it, the session's task uses
//! those, and the plugins and the runtime sit on top.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crate's modules and, for each, the modules it uses.
fn uses(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read the source folder") {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src).unwrap();
                let top = rel.components().next().unwrap().as_os_str().to_string_lossy();
                let top = top.strip_suffix(".rs").unwrap_or(&top).to_string();
                if top != "lib" && top != "main" {
                    files.entry(top).or_default().push(path);
                }
            }
        }
    }
    let mut edges = BTreeMap::new();
    for (module, paths) in &files {
        let mut used = BTreeSet::new();
        for path in paths {
            let text = std::fs::read_to_string(path).expect("read a source file");
            // Unit tests aside, as the tool does: everything from `#[cfg(test)] mod tests {` on.
            let code = match text.find("#[cfg(test)]\nmod tests {") {
                Some(at) => &text[..at],
                None => &text[..],
            };
            for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                used.extend(names_after(line, "crate::"));
                if let Some(at) = line.find("use crate::{") {
                    let inner = &line[at + "use crate::{".len()..];
                    let inner = inner.split('}').next().unwrap_or_default();
                    used.extend(inner.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map(str::to_string));
                }
            }
        }
        used.retain(|u| u != module && files.contains_key(u));
        edges.insert(module.clone(), used);
    }
    edges
}

/// The lower-case identifiers right after each `prefix` in `line`.
fn names_after(line: &str, prefix: &str) -> Vec<String> {
    line.match_indices(prefix)
        .map(|(at, _)| {
            line[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect::<String>()
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// A circle through `from`, if there is one: the modules along it, `from` first.
fn circle_through(edges: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    // Depth first, keeping the path, until a use leads back to `from`.
    let mut path = vec![from.to_string()];
    let mut seen = BTreeSet::new();
    fn walk(
        edges: &BTreeMap<String, BTreeSet<String>>,
        from: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        let here = path.last().unwrap().clone();
        for next in &edges[&here] {
            if next == from {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(edges, from, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    walk(edges, from, &mut path, &mut seen).then_some(path)
}

fn assert_no_circle(crate_dir: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(crate_dir).join("src");
    let edges = uses(&src);
    assert!(edges.len() > 3, "the premise: {crate_dir}'s modules were found ({edges:?})");
    let circles: Vec<String> =
        edges.keys().filter_map(|m| circle_through(&edges, m)).map(|c| c.join(" -> ") + " -> back").collect();
    assert!(circles.is_empty(), "import circles in {crate_dir}/src: {circles:#?}");
}

#[test]
fn the_server_s_modules_use_each_other_without_circles() {
    assert_no_circle("server");
}

#[test]
fn the_shared_crate_s_modules_use_each_other_without_circles() {
    assert_no_circle("shared");
}

#[test]
fn the_bots_modules_use_each_other_without_circles() {
    assert_no_circle("client_bot");
}

#[test]
fn the_network_plugin_s_modules_use_each_other_without_circles() {
    assert_no_circle("net_plugin");
}

#[test]
fn the_check_finds_a_circle_when_there_is_one() {
    let edges: BTreeMap<String, BTreeSet<String>> =
        [("chat", &["stats"][..]), ("stats", &["room"][..]), ("room", &["chat"][..]), ("ping", &[][..])]
            .into_iter()
            .map(|(m, u)| (m.to_string(), u.iter().map(|s| s.to_string()).collect()))
            .collect();
    assert_eq!(circle_through(&edges, "chat").unwrap(), ["chat", "stats", "room"]);
    assert_eq!(circle_through(&edges, "ping"), None);
    assert_eq!(names_after("use crate::config::{A, B}; x = crate::interest::f()", "crate::"), ["config", "interest"]);
}
