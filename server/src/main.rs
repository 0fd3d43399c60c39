//! The headless game server binary: `cargo run --release -p server -- --help`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bevy_app::AppExit;
use clap::Parser;
use net_plugin::{ServerPlugin, cli};
use server::{AdminPlugin, ServerConfig, ShutdownSignalPlugin, Spawn, ViewMargin};

/// The allocator: jemalloc, with its background threads purging freed pages after its decay
/// time (10 s), so memory goes back to the system after a wave of players leaves, also while the
/// server then idles. 30 s after a wave of 10,000 left, glibc's malloc still held 39 MiB of a
/// 57 MiB peak in rooms of 1,000 (1,145 MiB of 1,652 in one room); jemalloc 19 MiB (30 MiB);
/// mimalloc 116 MiB (495 MiB). It also took less CPU in the course's load test (S1: 3.6% of a
/// core against 4.6%). Figures in docs/benchmarks.md (issue 8).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A headless game server, wire-compatible with the course's Unity client and DummyClient.
///
/// Settings come from the built-in defaults, then `assets/server.toml` (or --config), then
/// these flags. Logging follows RUST_LOG (default: info).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// A settings file (TOML). Default: assets/server.toml when it exists.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. [::]:7777 (IPv6 and IPv4) or 0.0.0.0:7777 (IPv4 only).
    #[arg(long, value_name = "ADDR")]
    bind: Option<String>,
    /// Also accept WebSocket clients (browsers, Unity WebGL) here, e.g. 0.0.0.0:7780 ("off":
    /// not at all).
    #[arg(long, value_name = "ADDR")]
    ws_bind: Option<String>,
    /// The WebSocket port's TLS certificate chain (PEM): with --ws-tls-key, it speaks wss://.
    #[arg(long, value_name = "PATH", requires = "ws_tls_key")]
    ws_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --ws-tls-cert.
    #[arg(long, value_name = "PATH", requires = "ws_tls_cert")]
    ws_tls_key: Option<PathBuf>,
    /// Game ticks per second (moves are applied and broadcast once per tick).
    #[arg(long, value_name = "N")]
    tick_hz: Option<u32>,
    /// Frames per second (0: the tick rate).
    #[arg(long, value_name = "N")]
    frame_hz: Option<u32>,
    /// Connections open at once; beyond it newcomers are refused.
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Players per room (0: one room for everyone).
    #[arg(long, value_name = "N")]
    room_capacity: Option<usize>,
    /// Players see only the players within this distance (x and z); 0: everyone in the room.
    #[arg(long, value_name = "R")]
    view_radius: Option<f32>,
    /// How far beyond the view radius a player must go to leave a view: a distance (8) or a
    /// share of the radius (10%).
    #[arg(long, value_name = "M")]
    view_margin: Option<ViewMargin>,
    /// Where players enter the world.
    #[arg(long, value_enum)]
    spawn: Option<Spawn>,
    /// With a view radius, how long others' moves, enters and leaves may wait to leave with a
    /// player's next answer, e.g. 250ms ("off" or 0s: at once).
    #[arg(long, value_name = "DURATION", value_parser = parse_interval)]
    view_delay: Option<Duration>,
    /// A square world S wide: the bounds in x and z become -S/2 to S/2 (y keeps its bounds).
    #[arg(long, value_name = "S")]
    world_size: Option<f32>,
    /// Network I/O threads.
    #[arg(long, value_name = "N")]
    io_threads: Option<usize>,
    /// How often a statistics line is logged, e.g. 5s ("off" or 0s: never).
    #[arg(long, value_name = "DURATION", value_parser = parse_interval)]
    stats_interval: Option<Duration>,
    /// Write a JSON summary of the run here at exit.
    #[arg(long, value_name = "PATH")]
    stats_json: Option<PathBuf>,
    /// How long a stop (SIGTERM, SIGINT) lets players finish before it closes their connections,
    /// e.g. 30s ("off" or 0s: stop at once).
    #[arg(long, value_name = "DURATION", value_parser = parse_interval)]
    drain_timeout: Option<Duration>,
    /// Run as an Agones game server: talk to the SDK sidecar (needs a build with the cargo
    /// feature `agones`).
    #[arg(long)]
    agones: bool,
    /// Serve the admin endpoint (metrics, health checks, room API, web console) here, e.g.
    /// 127.0.0.1:9100 ("off": not at all).
    #[arg(long, value_name = "ADDR")]
    admin: Option<String>,
    /// The token admin requests must carry (required unless --admin is a loopback address; at
    /// least 16 characters). Other users of this machine can read a command line: prefer
    /// --admin-token-file, the environment variable GAMESERVER_ADMIN_TOKEN, or [admin] token_file.
    #[arg(long, value_name = "TOKEN", conflicts_with = "admin_token_file")]
    admin_token: Option<String>,
    /// A file holding the admin token (a mounted secret), over GAMESERVER_ADMIN_TOKEN and the
    /// settings file.
    #[arg(long, value_name = "PATH")]
    admin_token_file: Option<PathBuf>,
}

impl Cli {
    /// The settings file, then these flags.
    fn settings(&self) -> Result<(ServerConfig, Option<PathBuf>), server::ConfigError> {
        let (mut config, file) = ServerConfig::load(self.config.as_deref())?;
        // The admin token: a flag, else the environment, else the file.
        config.admin.set_token(std::env::var(server::ADMIN_TOKEN_ENV).ok());
        if let Some(bind) = &self.bind {
            config.bind.clone_from(bind);
        }
        if let Some(addr) = &self.ws_bind {
            config.net.websocket.bind = (addr != net_plugin::off::OFF).then(|| addr.clone());
        }
        if let (Some(cert), Some(key)) = (&self.ws_tls_cert, &self.ws_tls_key) {
            (config.net.websocket.tls_cert, config.net.websocket.tls_key) = (Some(cert.clone()), Some(key.clone()));
        }
        if let Some(n) = self.tick_hz {
            config.tick_hz = n;
        }
        if let Some(n) = self.frame_hz {
            config.frame_hz = n;
        }
        if let Some(n) = self.max_connections {
            config.net.max_connections = n;
        }
        if let Some(n) = self.room_capacity {
            config.room.capacity = n;
        }
        if let Some(r) = self.view_radius {
            config.world.view_radius = r;
        }
        if let Some(m) = self.view_margin {
            config.world.view_margin = m;
        }
        if let Some(s) = self.spawn {
            config.world.spawn = s;
        }
        if let Some(d) = self.view_delay {
            config.world.view_delay = d;
        }
        if let Some(size) = self.world_size {
            for axis in [0, 2] {
                (config.world.min[axis], config.world.max[axis]) = (-size / 2.0, size / 2.0);
            }
        }
        if let Some(n) = self.io_threads {
            config.net.io_threads = n;
        }
        if let Some(d) = self.stats_interval {
            config.stats_interval = d;
        }
        if let Some(d) = self.drain_timeout {
            config.drain_timeout = d;
        }
        if self.agones {
            config.agones.enabled = true;
        }
        if let Some(addr) = &self.admin {
            config.admin.bind = (addr != net_plugin::off::OFF).then(|| addr.clone());
        }
        config.admin.set_token(self.admin_token.clone());
        if let Some(path) = &self.admin_token_file {
            config.admin.set_token_file(path.clone());
        }
        config.validate()?;
        Ok((config, file))
    }
}

/// A duration like `5s`, or `off` (zero), as in the settings file.
fn parse_interval(text: &str) -> Result<Duration, humantime::DurationError> {
    if text == net_plugin::off::OFF { Ok(Duration::ZERO) } else { humantime::parse_duration(text) }
}

fn main() -> ExitCode {
    let cli: Cli = match cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let (config, file) = match cli.settings() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(cli::USAGE);
        }
    };
    cli::init_logging();
    match &file {
        Some(path) => tracing::info!(config = %path.display(), "settings read"),
        None => tracing::info!("no settings file; using the built-in defaults"),
    }
    // Each connection is a file descriptor; the usual soft limit of 1,024 is far too few.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < config.net.max_connections as u64 + 64 => tracing::warn!(
            limit,
            max_connections = config.net.max_connections,
            "the open-file limit is below the connection limit; raise it (ulimit -n) to accept that many"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    let net = match ServerPlugin::bind(&config.bind, config.net.clone()) {
        Ok(net) => net,
        // A bad setting found only now (a certificate file that does not load): as at parsing.
        Err(e @ net_plugin::BindError::Config(_)) => {
            tracing::error!("{e}");
            return ExitCode::from(cli::USAGE);
        }
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let admin = match AdminPlugin::bind(&config.admin, config.net.max_connections) {
        Ok(admin) => admin,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut app = server::app(&config, net, cli.stats_json);
    app.add_plugins(ShutdownSignalPlugin);
    if let Some(admin) = admin {
        app.add_plugins(admin);
    }
    // `validate` refused `agones.enabled` in a build without the feature.
    #[cfg(feature = "agones")]
    if config.agones.enabled {
        app.add_plugins(server::agones::AgonesPlugin {
            config: config.agones.clone(),
            capacity: config.net.max_connections,
            sdk_port: None,
        });
    }
    // Once the signals are handled: a supervisor that waits for this line may signal.
    tracing::info!(
        tick_hz = config.tick_hz,
        frame_period = ?config.frame_period(),
        room_capacity = config.room.capacity,
        view_radius = config.world.view_radius,
        max_connections = config.net.max_connections,
        io_threads = config.net.io_threads,
        drain_timeout = ?config.drain_timeout,
        "server running; SIGINT or SIGTERM stops it"
    );
    match app.run() {
        AppExit::Success => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        AppExit::Error(code) => ExitCode::from(code.get()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_flags_take_off_like_the_file() {
        assert_eq!(parse_interval("off").unwrap(), Duration::ZERO);
        assert_eq!(parse_interval("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_interval("0").unwrap(), Duration::ZERO, "--drain-timeout 0, as the README says");
        assert_eq!(parse_interval("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_interval("Off").is_err());
        let cli = Cli::try_parse_from(["server", "--drain-timeout", "off"]).unwrap();
        assert_eq!(cli.settings().unwrap().0.drain_timeout, Duration::ZERO);
        let cli = Cli::try_parse_from(["server", "--drain-timeout", "45s"]).unwrap();
        assert_eq!(cli.settings().unwrap().0.drain_timeout, Duration::from_secs(45));
        let cli = Cli::try_parse_from(["server"]).unwrap();
        assert_eq!(cli.settings().unwrap().0.drain_timeout, Duration::from_secs(30), "the default");
    }

    #[test]
    fn interest_flags_override_the_settings() {
        let cli = Cli::try_parse_from(["server", "--view-radius", "80", "--view-margin", "25%", "--spawn", "random"])
            .unwrap();
        let (config, _) = cli.settings().unwrap();
        assert_eq!(config.world.view_radius, 80.0);
        assert_eq!(config.world.view_margin, ViewMargin::Percent(25.0));
        assert_eq!(config.world.spawn, Spawn::Random);
        let cli = Cli::try_parse_from(["server", "--view-margin", "4"]).unwrap();
        assert_eq!(cli.settings().unwrap().0.world.view_margin, ViewMargin::Units(4.0));
        assert!(Cli::try_parse_from(["server", "--view-margin", "wide"]).is_err());
        assert!(Cli::try_parse_from(["server", "--spawn", "anywhere"]).is_err());
        let cli = Cli::try_parse_from(["server", "--world-size", "2000"]).unwrap();
        let world = cli.settings().unwrap().0.world;
        assert_eq!((world.min, world.max), ([-1000.0, -10_000.0, -1000.0], [1000.0, 10_000.0, 1000.0]));
        let cli = Cli::try_parse_from(["server", "--world-size=-1"]).unwrap();
        assert!(cli.settings().unwrap_err().to_string().contains("world.min"));
        let cli = Cli::try_parse_from(["server", "--view-radius=-5"]).unwrap();
        assert!(cli.settings().unwrap_err().to_string().contains("world.view_radius"));
    }
}
