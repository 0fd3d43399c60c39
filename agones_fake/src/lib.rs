//! A fake Agones SDK sidecar, for tests: the gRPC server a game server's SDK talks to inside an
//! Agones pod, on a loopback port, built from the SDK's own `.proto` files (`proto/`, compiled
//! by this crate's build script with the tonic-build version the `agones` crate uses).
//!
//! It answers like the real sidecar where the server relies on it (the `players` Counter keeps
//! its count and capacity and refuses a count above the capacity; `WatchGameServer` sends the
//! GameServer now and on every change), records every call with the time it came, can be told
//! to fail a call (a number of times or until healed), and can be restarted on the same port,
//! dropping every connection as a crashed sidecar would.
//!
//! Everything is behind the feature `grpc` (which needs `protoc`): without it the crate is empty.
//!
//! ```no_run
//! # #[cfg(feature = "grpc")] {
//! use agones_fake::{Call, FakeSidecar};
//! let sidecar = FakeSidecar::start();
//! // ... point the SDK at sidecar.port() ...
//! assert!(sidecar.wait_for(std::time::Duration::from_secs(5), |calls| calls.contains(&Call::Ready)));
//! # }
//! ```

#[cfg(feature = "grpc")]
mod sidecar;

#[cfg(feature = "grpc")]
pub use sidecar::{Call, FakeSidecar, PLAYERS_COUNTER, Record, Rpc};

/// The SDK's messages and services, as generated from `proto/`.
#[cfg(feature = "grpc")]
#[allow(missing_docs, unused_qualifications, clippy::all)]
pub mod proto {
    /// `agones.dev.sdk`: the stable SDK (Ready, Health, Shutdown, WatchGameServer…).
    pub mod sdk {
        tonic::include_proto!("agones.dev.sdk");
    }
    /// `agones.dev.sdk.beta`: Counters and Lists.
    pub mod beta {
        tonic::include_proto!("agones.dev.sdk.beta");
    }
}
