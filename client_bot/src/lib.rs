//! Bot clients that load the server: the course's DummyClient, as a load-testing tool.
//!
//! Each bot is a connection opened with `net_plugin`'s client side, and its behaviour is ECS
//! systems: it enters, sends `C_Move { x, 0, z }` every 250 ms (x and z random integers in
//! [-50, 49]), optionally chats, and checks the protocol as it goes: exactly one `isSelf` in its
//! list, never two enters for one player, leaves that match enters, its own move echoed at the
//! position it sent. At the end it stops moving, waits for the last echoes, and checks that every
//! bot sees every other bot where that bot last moved.
//!
//! ```no_run
//! use client_bot::BotConfig;
//!
//! let report = client_bot::run(BotConfig { bots: 100, ..BotConfig::default() }).expect("valid flags");
//! println!("{report}");
//! assert!(report.clean());
//! ```
//!
//! `client_bot bench` (see [`bench`](mod@bench)) runs the scenarios whose figures are in
//! `docs/benchmarks.md`, and with `--floor` S5 against the syscall floor (see
//! [`floor_bench`], [`floor`] and [`light_load`]); `client_bot attack` (see
//! [`attack`](mod@attack)) measures the server under abuse.

#![forbid(unsafe_code)]

pub mod attack;
pub mod bench;
mod bot;
mod churn;
mod config;
pub mod echoes;
pub mod floor;
pub mod floor_bench;
pub mod light_load;
mod metrics;
mod procfs;
mod report;
mod url;
mod view;

use std::time::{Duration, Instant};

use bevy_app::App;
use net_plugin::{ClientPlugin, NetConfig};

pub use bot::{Bot, BotPlugin, Endpoint, FinalReport, Phase, Run};
pub use config::{BotConfig, BotTransport, Margin, MovePattern};
pub use metrics::Metrics;
pub use report::{Report, RttMs, final_state_mismatches, view_mismatches};
pub use url::BotUrl;
pub use view::{Pos, View, Violation};

/// The bots' app: the network client side and the bot systems.
pub fn app(config: &BotConfig) -> Result<App, String> {
    config.validate()?;
    let net = NetConfig { io_threads: config.io_threads, ..NetConfig::client_default() };
    let client = ClientPlugin::new(net).map_err(|e| e.to_string())?;
    let endpoint = config.endpoint()?;
    let mut app = App::new();
    app.add_plugins((client, BotPlugin { config: config.clone() }));
    app.insert_resource(endpoint);
    Ok(app)
}

/// Runs the bots to the end and returns their report (also written to `--json`, if given).
pub fn run(config: BotConfig) -> Result<Report, String> {
    let mut app = app(&config)?;
    let churn =
        churn::Churn::start(config.target(), config.churn_rate, config.garbage_rate, config.duration, config.seed);
    app.finish();
    app.cleanup();
    let frame = Duration::from_secs_f64(1.0 / f64::from(config.frame_hz));
    loop {
        let start = Instant::now();
        app.update();
        if app.should_exit().is_some() {
            break;
        }
        std::thread::sleep(frame.saturating_sub(start.elapsed()));
    }
    let mut report =
        app.world_mut().remove_resource::<FinalReport>().map(|r| r.0).ok_or("the run ended without a report")?;
    let counts = churn.finish();
    let load = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
    report.churned = load(&counts.churned);
    report.garbage_sent = load(&counts.garbage);
    report.garbage_closed = load(&counts.garbage_closed);
    report.churn_failures = load(&counts.churn_failures) + load(&counts.garbage_failures);
    // Dropping the app closes every connection gracefully.
    drop(app);
    if let Some(path) = &config.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, json + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(report)
}
