//! The fuzz targets as ordinary tests, on the stable toolchain: each target function runs over
//! every input of its checked-in corpus (`fuzz/corpus/<target>/`, minimised by `cargo fuzz cmin`)
//! and over a bounded number of inputs mutated from it with a fixed seed. The coverage-guided runs
//! (`cargo +nightly fuzz run`, see `docs/fuzzing.md`) find the inputs; this keeps them passing.

#[path = "../pdl/mod.rs"]
mod pdl;

use std::path::PathBuf;

/// Mutated inputs per target: a few thousand, so the whole file stays around a second in a debug
/// build.
const MUTATIONS: usize = 4000;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    let inputs: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    // An empty corpus would make this test pass while checking nothing.
    assert!(inputs.len() >= 4, "{}: only {} inputs", dir.display(), inputs.len());
    inputs
}

/// xorshift64*: a fixed sequence, so a failure here reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that sit on the decoders' edges, written as u16 at a random place.
const EDGES: [u16; 9] = [0, 1, 2, 3, 4, 5, 0x7FFF, 0xFFFE, 0xFFFF];

/// One to four libFuzzer-style changes to a corpus input: flip, set, insert, erase, copy a
/// piece, write an edge value or a dictionary token, or splice in another input.
fn mutate(rng: &mut Rng, corpus: &[Vec<u8>], tokens: &[&[u8]]) -> Vec<u8> {
    let mut data = corpus[rng.below(corpus.len())].clone();
    for _ in 0..=rng.below(4) {
        let at = rng.below(data.len() + 1);
        let last = data.len().saturating_sub(1);
        match rng.below(8) {
            0 if !data.is_empty() => data[at.min(last)] ^= 1 << rng.below(8),
            1 if !data.is_empty() => data[at.min(last)] = rng.next() as u8,
            2 => data.insert(at, rng.next() as u8),
            3 if !data.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(data.len());
                data.drain(at.min(end)..end);
            }
            4 if !data.is_empty() => {
                let from = rng.below(data.len());
                let len = rng.below(data.len() - from) + 1;
                let piece = data[from..from + len].to_vec();
                data.splice(at..at, piece);
            }
            5 if data.len() >= 2 => {
                let i = at.min(data.len() - 2);
                data[i..i + 2].copy_from_slice(&EDGES[rng.below(EDGES.len())].to_le_bytes());
            }
            6 if !tokens.is_empty() => {
                let token = tokens[rng.below(tokens.len())];
                data.splice(at..at, token.iter().copied());
            }
            _ => {
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(other.len() + 1);
                data.truncate(at);
                data.extend_from_slice(&other[cut..]);
            }
        }
    }
    data
}

fn run(target: &str, check: fn(&[u8]), mutations: usize, tokens: &[&[u8]]) {
    let corpus = corpus(target);
    for input in &corpus {
        check(input);
    }
    let mut rng = Rng(0x5EED_0000_0000_0001 ^ target.len() as u64);
    for _ in 0..mutations {
        let input = mutate(&mut rng, &corpus, tokens);
        // The input is in the panic message of the failing check only when the target prints it;
        // printing it here too makes every failure reproducible as a corpus file.
        let result = std::panic::catch_unwind(|| check(&input));
        if let Err(panic) = result {
            eprintln!("{target}: failing input {input:02x?}");
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
fn frame_decoder() {
    run("frame_decoder", shared::fuzz::frame_decoder, MUTATIONS, &[]);
}

#[test]
fn decode_client() {
    run("decode_client", shared::fuzz::decode_client, MUTATIONS, &[]);
}

#[test]
fn decode_server() {
    run("decode_server", shared::fuzz::decode_server, MUTATIONS, &[]);
}

#[test]
fn pdl_parser() {
    let tokens: &[&[u8]] = &[
        b"<packet name=\"C_A\">",
        b"<packet name=\"S_B\"/>",
        b"</packet>",
        b"<list name=\"l\">",
        b"</list>",
        b"<int name=\"x\"/>",
        b"<string name=\"s\"/>",
        b"<bool name=\"b\"/>",
        b"<!-- -->",
        b"\"",
        b"_",
    ];
    run("pdl_parser", pdl::fuzz::pdl_parser, MUTATIONS, tokens);
}

/// The name check must refuse what Rust refuses, or a clean run of `pdl_parser` means nothing.
#[test]
fn the_name_check_refuses_what_rust_refuses() {
    use pdl::model::{Definitions, Direction, Field, FieldKind, Packet, Scalar};
    let defs = |packet: &str, fields: &[&str]| Definitions {
        packets: vec![Packet {
            name: packet.into(),
            id: 1,
            direction: Direction::ClientToServer,
            fields: fields
                .iter()
                .map(|f| Field { pdl_name: f.to_string(), kind: FieldKind::Scalar(Scalar::Int) })
                .collect(),
        }],
    };
    pdl::fuzz::check_names(&defs("C_Move", &["posX", "type", "self"]));
    let refused = |packet: &str, fields: &[&str]| {
        let defs = defs(packet, fields);
        std::panic::catch_unwind(|| pdl::fuzz::check_names(&defs)).is_err()
    };
    assert!(refused("C_A", &["_"]), "a field named `_`");
    assert!(refused("C_1", &[]), "a variant named `1`");
    assert!(refused("C_A", &["self", "self_"]), "two fields that are both `self_` in Rust");
    assert!(refused("C_A", &["posX", "pos_x"]), "two fields that are both `pos_x` in Rust");
}
