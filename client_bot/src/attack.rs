//! The attacker's tools: `client_bot attack --kind <KIND>`, the measurements of issue 8's
//! targets (see `docs/benchmarks.md`, "Abuse resistance").

mod bucket;
pub mod procfs;

pub use bucket::TokenBucket;
