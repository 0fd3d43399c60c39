//! What a bot run is told: the command line's flags, also built directly by tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use net_plugin::{ClientTls, ConnectOptions};

use crate::{BotUrl, Endpoint};

/// When the bots send their moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MovePattern {
    /// Every bot moves at once, every interval: the course's DummyClient (`SendForEach`, then
    /// `Thread.Sleep(250)`).
    Burst,
    /// Each bot moves every interval at its own moment, spread evenly over the interval.
    Spread,
}

/// How the bots reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BotTransport {
    /// The course's TCP byte stream.
    Tcp,
    /// WebSocket (`ws://ADDR/`, the server's `--ws-bind` port): each frame's packets in one binary
    /// message, as a browser player's page sends them.
    Ws,
}

impl BotTransport {
    /// The network plugin's name for it.
    pub fn net(self) -> net_plugin::Transport {
        match self {
            BotTransport::Tcp => net_plugin::Transport::Tcp,
            BotTransport::Ws => net_plugin::Transport::WebSocket,
        }
    }
}

/// The view margin, as the server's `--view-margin` takes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Margin {
    /// This many percent of the radius.
    Percent(f32),
    /// This distance.
    Units(f32),
}

impl Margin {
    /// The margin for `radius`.
    pub fn of(self, radius: f32) -> f32 {
        match self {
            Margin::Percent(p) => radius * p / 100.0,
            Margin::Units(u) => u,
        }
    }
}

/// `10%` or `8`.
fn parse_margin(text: &str) -> Result<Margin, String> {
    let parsed = match text.strip_suffix('%') {
        Some(p) => p.parse().map(Margin::Percent),
        None => text.parse().map(Margin::Units),
    };
    match parsed {
        Ok(m @ (Margin::Percent(v) | Margin::Units(v))) if v.is_finite() && v >= 0.0 => Ok(m),
        _ => Err(format!("a view margin is a distance like 8 or a share of the radius like 10%, not {text:?}")),
    }
}

/// How the bots behave. Defaults are the course's DummyClient.
#[derive(Debug, Clone, Args)]
pub struct BotConfig {
    /// The server's address (with `--transport ws`, its WebSocket port).
    #[arg(long, default_value = "127.0.0.1:7777")]
    pub addr: SocketAddr,

    /// How the bots connect: `tcp`, or `ws` (WebSocket, to the server's `--ws-bind` address).
    #[arg(long, value_enum, default_value = "tcp")]
    pub transport: BotTransport,

    /// Instead of `--addr` and `--transport`: `tcp://HOST:PORT`, `ws://HOST:PORT/` or
    /// `wss://HOST:PORT/` (TLS; the server's certificate must name HOST). HOST is an IP address
    /// or `localhost`.
    #[arg(long, conflicts_with_all = ["addr", "transport"], value_name = "URL")]
    pub url: Option<BotUrl>,

    /// With a `wss://` URL, trust this PEM certificate (e.g. a self-signed one) besides the
    /// system's root certificates.
    #[arg(long, value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,

    /// How many bots (connections) to open.
    #[arg(long, default_value_t = 10)]
    pub bots: u32,

    /// How long the bots move; then they stop, wait for the last echoes and check what they see.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// Time between a bot's moves (the DummyClient's 250 ms). Each bot sends
    /// `C_Move { x, 0, z }` with x and z random integers in [-50, 49].
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    pub move_interval: Duration,

    /// When the bots move: `burst` (all at once, as the course's DummyClient) or `spread` (each
    /// at its own moment, evenly over the interval).
    #[arg(long, value_enum, default_value = "burst")]
    pub move_pattern: MovePattern,

    /// Walk instead of jumping: each move at most `--walk-speed` from the last position (the
    /// first from the bot's `isSelf` entry), heading in a direction that changes now and then,
    /// inside `--world-size`.
    #[arg(long)]
    pub walk: bool,

    /// With `--walk`, the longest step of one move.
    #[arg(long, default_value_t = 5.0, value_name = "UNITS")]
    pub walk_speed: f32,

    /// With `--walk`, the world's width: the bots stay within ±S/2 in x and z, as a server run
    /// with `--world-size S` keeps its players.
    #[arg(long, default_value_t = 100.0, value_name = "S")]
    pub world_size: f32,

    /// The server's view radius (0: off, everyone in the room sees everyone). With it, the
    /// final check is the view rule: every bot within the radius of another is in its view,
    /// none beyond radius + margin is.
    #[arg(long, default_value_t = 0.0, value_name = "R")]
    pub view_radius: f32,

    /// The server's view margin: a distance (8) or a share of the radius (10%, the default).
    #[arg(long, default_value = "10%", value_parser = parse_margin, value_name = "M")]
    pub view_margin: Margin,

    /// Send no moves: connect, enter and stay (idle sessions).
    #[arg(long)]
    pub idle: bool,

    /// Also send a chat line this often per bot (off by default).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub chat_interval: Option<Duration>,

    /// Beside the bots, connections a second that connect, read their player list and close
    /// (soak runs; 0: none).
    #[arg(long, default_value_t = 0)]
    pub churn_rate: u32,

    /// Beside the bots, connections a second that send random bytes and close (soak runs; 0:
    /// none).
    #[arg(long, default_value_t = 0)]
    pub garbage_rate: u32,

    /// Bots connected per second while ramping up; 0 connects them all at once.
    #[arg(long, default_value_t = 1000)]
    pub ramp_rate: u32,

    /// Seed of every random choice, so a run can be repeated.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Write the results as JSON here.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// Frames per second of the bots' loop: packets are handled once a frame, so round trips are
    /// measured to within one frame.
    #[arg(long, default_value_t = 500)]
    pub frame_hz: u32,

    /// How long a bot's move may wait for its echo before it counts as lost.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub echo_timeout: Duration,

    /// Network I/O threads.
    #[arg(long, default_value_t = 1)]
    pub io_threads: usize,

    /// Print machine-readable progress events on stdout (used by `client_bot bench`).
    #[arg(long, hide = true)]
    pub events: bool,

    /// No live progress display or periodic lines.
    #[arg(long)]
    pub quiet: bool,
}

impl Default for BotConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 7777)),
            transport: BotTransport::Tcp,
            url: None,
            ca_cert: None,
            bots: 10,
            duration: Duration::from_secs(30),
            move_interval: Duration::from_millis(250),
            move_pattern: MovePattern::Burst,
            walk: false,
            walk_speed: 5.0,
            world_size: 100.0,
            view_radius: 0.0,
            view_margin: Margin::Percent(10.0),
            idle: false,
            chat_interval: None,
            churn_rate: 0,
            garbage_rate: 0,
            ramp_rate: 1000,
            seed: 1,
            json: None,
            frame_hz: 500,
            echo_timeout: Duration::from_secs(2),
            io_threads: 1,
            events: false,
            quiet: false,
        }
    }
}

impl BotConfig {
    /// Checks values that would make the run meaningless.
    pub fn validate(&self) -> Result<(), String> {
        if self.bots == 0 {
            return Err("--bots must be at least 1".into());
        }
        if !self.idle && self.move_interval.is_zero() {
            return Err("--move-interval must be above 0".into());
        }
        if !(1..=10_000).contains(&self.frame_hz) {
            return Err("--frame-hz must be between 1 and 10000".into());
        }
        if !(self.walk_speed.is_finite() && self.walk_speed > 0.0) {
            return Err("--walk-speed must be above 0".into());
        }
        if !(self.world_size.is_finite() && self.world_size > 0.0) {
            return Err("--world-size must be above 0".into());
        }
        if !(self.view_radius.is_finite() && self.view_radius >= 0.0) {
            return Err("--view-radius must be 0 (off) or above".into());
        }
        if self.io_threads == 0 {
            return Err("--io-threads must be at least 1".into());
        }
        if self.ca_cert.is_some() && !self.url.as_ref().is_some_and(|url| url.tls) {
            return Err("--ca-cert goes with a wss:// --url".into());
        }
        Ok(())
    }

    /// The address connected to: `--url`'s, else `--addr`.
    pub fn target(&self) -> SocketAddr {
        self.url.as_ref().map_or(self.addr, |url| url.addr)
    }

    /// How every bot connects, with `wss://`'s trusted certificates loaded once; a CA file that
    /// cannot be used is an error here, before any bot starts.
    pub fn endpoint(&self) -> Result<Endpoint, String> {
        let Some(url) = &self.url else {
            let options = ConnectOptions { transport: self.transport.net(), tls: None };
            return Ok(Endpoint { addr: self.addr, options });
        };
        let tls = if url.tls { Some(ClientTls::new(&url.host, self.ca_cert.as_deref())?) } else { None };
        Ok(Endpoint { addr: url.addr, options: ConnectOptions { transport: url.transport.net(), tls } })
    }
}
