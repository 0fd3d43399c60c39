//! The README's "Adding your own packet and system", followed to the letter: the repository's
//! sources are copied (without `target/` and `.git`), the section's XML block is appended to
//! `assets/PDL.xml` before `</PDL>`, its Rust blocks are saved one after the other as
//! `server/examples/emote.rs`, and the example is built — then run and sent hand-written bytes.
//!
//! The walkthrough's Rust blocks are tagged `rust,ignore`: `cargo test --doc` cannot compile
//! them (their packets exist only after step 1), so this test is what compiles them. The
//! README's other Rust blocks are doctests (`server/src/lib.rs`, `mod readme`).
//!
//! The copy builds in `target/walkthrough`, a build directory of its own: a nested cargo on the
//! outer build's directory would wait forever for the lock the outer cargo holds. The first run
//! builds the dependencies there once; later runs reuse them.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use support::{CourseClient, Msg, WAIT};

/// The heading the test looks for, and the section runs to the next `## `.
const SECTION: &str = "## Adding your own packet and system";
/// Where step 2 and 3 say the Rust goes, relative to the repository's root.
const EXAMPLE_FILE: &str = "server/examples/emote.rs";
/// How step 3 says to run it.
const RUN_COMMAND: &str = "cargo run --release -p server --example emote";

/// The repository's root.
fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// One fenced block: its info string (`xml`, `rust,ignore`) and its text, unindented.
#[derive(Debug)]
struct Block {
    info: String,
    text: String,
}

/// The walkthrough section of the README, and its fenced blocks in order.
fn walkthrough(readme: &str) -> (String, Vec<Block>) {
    let start = readme.find(SECTION).expect("the README has the walkthrough section");
    let rest = &readme[start + SECTION.len()..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else { continue };
        // A block inside a list item is indented like the item's text: so is every line of it.
        let indent = line.len() - line.trim_start().len();
        let mut text = String::new();
        for body in lines.by_ref() {
            if body.trim() == "```" {
                break;
            }
            text.push_str(body.get(indent..).unwrap_or(body.trim_start()));
            text.push('\n');
        }
        blocks.push(Block { info: info.trim().to_string(), text });
    }
    (section.to_string(), blocks)
}

/// Copies the repository as a fresh clone would have it: no build output, no git metadata
/// (`top`: `from` is the repository's root, where those are).
fn copy_sources(from: &Path, to: &Path, top: bool) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let path = entry.path();
        if top && (name == "target" || name == ".git") {
            continue;
        }
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_sources(&path, &to.join(&name), false);
        } else if kind.is_file() {
            std::fs::copy(&path, to.join(&name)).unwrap();
        }
    }
}

/// Does what the walkthrough says, in `root`: step 1's XML before `</PDL>`, the Rust blocks of
/// steps 2 and 3, in order, as the example file.
fn follow(section: &str, blocks: &[Block], root: &Path) {
    assert!(section.contains(&format!("`{EXAMPLE_FILE}`")), "the walkthrough names {EXAMPLE_FILE}");
    assert!(section.contains(RUN_COMMAND), "the walkthrough says how to run it: {RUN_COMMAND}");
    let xml: Vec<&Block> = blocks.iter().filter(|b| b.info == "xml").collect();
    assert_eq!(xml.len(), 1, "one XML block, step 1: {blocks:?}");
    let rust: Vec<&str> = blocks.iter().filter(|b| b.info == "rust,ignore").map(|b| b.text.as_str()).collect();
    assert_eq!(rust.len(), 2, "two Rust blocks, steps 2 and 3: {blocks:?}");

    let pdl_path = root.join("assets/PDL.xml");
    let pdl = std::fs::read_to_string(&pdl_path).unwrap();
    assert_eq!(pdl.matches("</PDL>").count(), 1);
    let end = pdl.find("</PDL>").unwrap();
    let appended: String = xml[0].text.lines().map(|l| format!("  {l}\n")).collect();
    std::fs::write(&pdl_path, format!("{}{appended}{}", &pdl[..end], &pdl[end..])).unwrap();

    let example = root.join(EXAMPLE_FILE);
    assert!(!example.exists(), "{EXAMPLE_FILE} is the walkthrough's to create");
    std::fs::create_dir_all(example.parent().unwrap()).unwrap();
    std::fs::write(example, rust.join("\n")).unwrap();
}

/// Builds the example in `root`, with no warning; returns the executable. Prints cargo's output
/// on failure.
fn build(root: &Path, target_dir: &Path) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--offline", "--locked", "-p", "server", "--example", "emote"])
        .current_dir(root)
        .env("CARGO_TARGET_DIR", target_dir)
        .stdin(Stdio::null())
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "the walkthrough does not build:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("warning"), "the walkthrough builds with warnings:\n{stderr}");
    target_dir.join("debug/examples").join(format!("emote{}", std::env::consts::EXE_SUFFIX))
}

/// Starts the built example from a directory whose `assets/server.toml` puts it on loopback,
/// as `ServerConfig::load(None)` in step 3 reads it; returns it and the address it logged.
fn run(executable: &Path, dir: &Path) -> (Child, SocketAddr) {
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(dir.join("assets/server.toml"), "bind = \"127.0.0.1:0\"\nstats_interval = \"off\"\n").unwrap();
    let mut child = Command::new(executable)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + WAIT;
    let addr = loop {
        assert!(Instant::now() < deadline, "no listening line");
        let line = lines.next().expect("the example logs until it listens").unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.trim().parse().expect("an address");
        }
    };
    // Keep reading its log, so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

#[test]
fn the_readme_walkthrough_builds_and_relays_emotes_verbatim() {
    let readme = std::fs::read_to_string(repository().join("README.md")).unwrap();
    let (section, blocks) = walkthrough(&readme);

    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("walkthrough-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let root = tmp.join("repository");
    copy_sources(&repository(), &root, true);
    follow(&section, &blocks, &root);
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("walkthrough");
    let executable = build(&root, &target_dir);

    let (mut server, addr) = run(&executable, &tmp.join("run"));
    let mut waver = CourseClient::connect(addr);
    waver.enter();
    let mut watcher = CourseClient::connect(addr);
    watcher.enter();
    // C_Emote { emote: 7 }: size 8, id 11 (after the 10 packets before it), an int.
    waver.send(&[8, 0, 11, 0, 7, 0, 0, 0]);
    // S_Emote { playerId, emote }: id 12, two ints.
    let mut expected = waver.my_id().to_le_bytes().to_vec();
    expected.extend(7i32.to_le_bytes());
    for client in [&mut waver, &mut watcher] {
        let skipped = client.recv_until(|m| *m == Msg::Other(12, expected.clone()));
        assert!(skipped.iter().all(|m| matches!(m, Msg::Enter { .. })), "{skipped:?}");
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let _ = std::fs::remove_dir_all(&tmp);
}
