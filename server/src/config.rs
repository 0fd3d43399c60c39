//! The server's settings: built-in defaults (also written out in `assets/server.toml`), a TOML
//! file, then command-line flags, each overriding the one before.
//!
//! One rule for every file: a line left out means the built-in default, and an optional
//! setting is turned off with `"off"` ([`net_plugin::off`]), whatever its default.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use net_plugin::NetConfig;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where the server looks for its settings when `--config` is not given. Running without it is
/// fine: the built-in defaults are the same values.
pub const DEFAULT_CONFIG_PATH: &str = "assets/server.toml";

/// Everything the server can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Where to listen. Default: `[::]:7777`, the course's port on every interface, IPv6 and
    /// IPv4 alike (the course's client connects to the first address its host name resolves to,
    /// which can be IPv6); on a host without IPv6, `0.0.0.0:7777`, with a log line.
    pub bind: String,
    /// Game ticks per second: moves received since the last tick are applied, and every moved
    /// player broadcast, once per tick. Default: 60 (a move waits at most ~17 ms for its tick).
    /// Each tick sends every player one write holding everything for it, so when moves arrive
    /// together (the course's DummyClient) a higher rate costs little; when they arrive spread
    /// out, writes (and CPU) grow with the rate (see `docs/benchmarks.md`).
    pub tick_hz: u32,
    /// Frames per second: each frame reads the network, runs the game systems (and as many
    /// ticks as are due) and flushes. Default: `0`, meaning the tick rate. Above it, enters,
    /// leaves and chat are answered sooner; moves still wait for the tick.
    pub frame_hz: u32,
    /// How often one statistics line is logged. Default: 5 s. `"off"` (or `0s`, as held here)
    /// turns it off.
    #[serde(with = "zero_is_off")]
    pub stats_interval: Duration,
    /// How long a stop (the first SIGTERM or SIGINT) lets players finish: the server stops
    /// accepting, tells every room, and exits when the last player has left or this runs out
    /// (see [`crate::drain`]). Default: 30 s, a round of a short game, well inside Kubernetes'
    /// default grace period before it kills a pod. `"off"` (or `0s`, as held here) stops at
    /// once, closing every connection.
    #[serde(with = "zero_is_off")]
    pub drain_timeout: Duration,
    /// Rooms.
    pub room: RoomConfig,
    /// The world's bounds.
    pub world: WorldConfig,
    /// Chat.
    pub chat: ChatConfig,
    /// The network layer (connection limit, packet size, rate limits, backlogs…).
    pub net: NetConfig,
    /// The admin endpoint: metrics, health checks, the room API and the web console.
    pub admin: AdminConfig,
    /// Running as an Agones game server (needs the cargo feature `agones`).
    pub agones: AgonesConfig,
}

/// The environment variable the admin token may come from (see [`AdminConfig::token`]).
pub const ADMIN_TOKEN_ENV: &str = "GAMESERVER_ADMIN_TOKEN";

/// The shortest admin token accepted: 16 characters, which a throttled guesser (see
/// `crate::admin`) cannot try its way through.
pub const MIN_TOKEN_LEN: usize = 16;

/// The admin HTTP endpoint (`crate::admin`): `/metrics`, `/healthz`, `/readyz`, the room API
/// and the web console. Off unless `bind` is set. Its `Debug` hides the token, so logging the
/// settings does not leak it.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Where to serve it, an IP address and port such as `127.0.0.1:9100`. `None` (`"off"` in
    /// a file, the default) serves nothing.
    #[serde(with = "net_plugin::off")]
    pub bind: Option<String>,
    /// The secret every request but `/healthz` and `/readyz` must present, as
    /// `Authorization: Bearer TOKEN` (or, from a browser, as the password of Basic
    /// credentials): printable ASCII without spaces, at least [`MIN_TOKEN_LEN`] characters.
    /// Required when `bind` is not a loopback address: an admin endpoint open to a network can
    /// kick players. `None` (`"off"`, the default) asks for nothing, which only a loopback
    /// address allows. Where it comes from, the first found: `--admin-token` or
    /// `--admin-token-file`, the environment variable [`ADMIN_TOKEN_ENV`], then this or
    /// `token_file` in the settings file.
    #[serde(with = "net_plugin::off")]
    pub token: Option<String>,
    /// A file holding the token (a mounted secret), read at start-up; surrounding white space
    /// (a final newline) is ignored. Not with `token`. `None` (`"off"`, the default): none.
    #[serde(with = "net_plugin::off")]
    pub token_file: Option<PathBuf>,
    /// Further `Host` values requests may name, each `name` (any port) or `name:port`: the DNS
    /// names operators reach the endpoint by. Requests naming anything else are refused (421),
    /// except `/healthz` and `/readyz`; the bind address itself (and `localhost:PORT` for a
    /// loopback bind, any IP address with the port for a wildcard bind) is always allowed.
    /// Default: none.
    pub allowed_hosts: Vec<String>,
}

impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("bind", &self.bind)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("token_file", &self.token_file)
            .field("allowed_hosts", &self.allowed_hosts)
            .finish()
    }
}

impl AdminConfig {
    /// The address to serve on, if any, checked: an IP address and port, a valid token (read
    /// from `token_file` if that is where it is), and a token unless it is a loopback address.
    pub fn address(&self) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        let Some(bind) = &self.bind else { return Ok(None) };
        let addr: std::net::SocketAddr = bind.parse().map_err(|_| {
            ConfigError::Invalid(format!(
                "admin.bind must be an IP address and port such as 127.0.0.1:9100, not {bind:?}"
            ))
        })?;
        let token = self.token()?;
        if token.is_none() && !addr.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "admin.token is required when admin.bind ({addr}) is not a loopback address: anyone who reaches it could kick players"
            )));
        }
        for host in &self.allowed_hosts {
            if host.is_empty() || !host.bytes().all(|b| b.is_ascii_graphic()) || host.contains('/') {
                return Err(ConfigError::Invalid(format!(
                    "admin.allowed_hosts entries are host names, with or without :port, not {host:?}"
                )));
            }
        }
        Ok(Some(addr))
    }

    /// The token: `token`, or the contents of `token_file`; checked (printable ASCII without
    /// spaces, at least [`MIN_TOKEN_LEN`] characters).
    pub fn token(&self) -> Result<Option<String>, ConfigError> {
        let token = match (&self.token, &self.token_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid("admin.token and admin.token_file: set one, not both".into()));
            }
            (Some(token), None) => token.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| ConfigError::Invalid(format!("admin.token_file: cannot read {}: {e}", path.display())))?
                .trim()
                .to_string(),
            (None, None) => return Ok(None),
        };
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::Invalid("admin.token must be printable ASCII without spaces (or \"off\")".into()));
        }
        if token.len() < MIN_TOKEN_LEN {
            return Err(ConfigError::Invalid(format!(
                "admin.token must be at least {MIN_TOKEN_LEN} characters, not {}: a short one can be guessed \
                 (make one with `openssl rand -hex 16`)",
                token.len()
            )));
        }
        Ok(Some(token))
    }

    /// Takes the token from `value` (the environment variable [`ADMIN_TOKEN_ENV`], or a
    /// command-line flag), over what the settings file said. An empty value is no value.
    pub fn set_token(&mut self, value: Option<String>) {
        if let Some(token) = value.filter(|t| !t.is_empty()) {
            self.token = Some(token);
            self.token_file = None;
        }
    }

    /// Takes the token from the file at `path` (a command-line flag), over what the settings
    /// file and the environment said.
    pub fn set_token_file(&mut self, path: PathBuf) {
        self.token = None;
        self.token_file = Some(path);
    }
}

/// Agones: the server tells the SDK sidecar of its pod that it is ready, that it is healthy
/// (from the game loop, so a stuck loop gets the process replaced), how many players it has
/// (the Counter `players`), and when it has shut down (see `crate::agones`, feature `agones`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgonesConfig {
    /// Talk to the sidecar (`--agones`). Default: false. A build without the cargo feature
    /// `agones` refuses `true` (exit 2).
    pub enabled: bool,
    /// How often the game loop sends a health ping. Default: 2 s. The fleet's
    /// `health.periodSeconds` (5 in `deploy/agones/`) must leave room for a late one.
    #[serde(with = "humantime_serde")]
    pub health_interval: Duration,
    /// For session-based games: once the server was Allocated and had players, it drains and
    /// shuts down when its last player leaves, so Agones replaces it with a fresh one.
    /// Default: false (a server that lives on, taking players as they come).
    pub shutdown_when_empty: bool,
}

impl AgonesConfig {
    /// The Counter kept equal to the number of players (Agones' Counts and Lists, beta): what a
    /// fleet's autoscaler and an allocation's `counters` selector read. The fleet must define it
    /// (`deploy/agones/`).
    pub const PLAYERS_COUNTER: &str = "players";
    /// How long the exit waits for Agones to acknowledge `Shutdown()`, so the process does not
    /// end before the sidecar heard it. A pod's grace period covers the drain, the network's
    /// shutdown and this.
    pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);
}

impl Default for AgonesConfig {
    fn default() -> Self {
        Self { enabled: false, health_interval: Duration::from_secs(2), shutdown_when_empty: false }
    }
}

/// Rooms: where players see each other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomConfig {
    /// Players per room; when every room is full a new one opens. `0` means one room for
    /// everyone, as in the course. Default: 1,000. Every enter is told to the whole room and
    /// every newcomer gets the whole room's list, so the traffic of filling a room grows with the
    /// square of its size: one room of 10,000 sends 1.9 GB of enters alone (issue 8), while rooms
    /// of 1,000 keep joins linear in the players past that; the course's load tests (500 and
    /// 1,000 players) still run in one room.
    pub capacity: usize,
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self { capacity: 1000 }
    }
}

/// What a position outside the world's bounds does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutOfBounds {
    /// The position is clamped to the bounds; the echo tells the client where it really is.
    Clamp,
    /// The client is disconnected for invalid input.
    Disconnect,
}

/// The world's bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorldConfig {
    /// The smallest x, y, z a player may stand at. Default: −10,000 each.
    pub min: [f32; 3],
    /// The largest x, y, z. Default: 10,000 each.
    pub max: [f32; 3],
    /// What a move outside them does. Default: clamp.
    pub out_of_bounds: OutOfBounds,
    /// Interest management: players see only the players within this distance in x and z (see
    /// [`crate::interest`]). Default: 0, off: everyone in a room sees everyone, as in the course.
    pub view_radius: f32,
    /// How far beyond the radius a player must go to leave a view, so one walking along the
    /// edge does not flicker in and out. Default: `"10%"` of the radius.
    pub view_margin: ViewMargin,
    /// Where players enter the world. Default: the origin, as in the course.
    pub spawn: Spawn,
    /// With a view radius: how long the news about others (moves, enters, leaves) may wait to
    /// leave with the player's next answer (just before the echo of its own move): then it is
    /// told, for each player in view that moved, its newest position. Zero (`"off"` in a file)
    /// sends every move in its tick. Default: 300 ms, a little longer than the course's clients
    /// take between moves (250 ms), so a moving client is always told with its own echo, in one
    /// write per move.
    #[serde(with = "zero_is_off")]
    pub view_delay: Duration,
    /// With a view radius and `view_delay`: graceful overload (see [`crate::overload`]). When
    /// the game loop falls behind (a second's frames took 90% of their time or more), the
    /// interval at which a player is told about the others in its view doubles, from
    /// `view_delay` up to this, and comes back down when the load falls (50% or less); every
    /// move is still echoed to its sender. `None` (`"off"` in a file) keeps the news at
    /// `view_delay` whatever the load. Default: 1,200 ms, four of the course's moves: a
    /// neighbour's position at most ~1 s old, for a quarter of the news traffic.
    #[serde(with = "net_plugin::off::duration")]
    pub overload_news_max: Option<Duration>,
}

/// Where players enter the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Spawn {
    /// (0, 0, 0), as in the course.
    #[default]
    Origin,
    /// Uniformly at random inside the world's bounds in x and z, at y = 0 (clamped to the
    /// bounds): a big world's players spread out instead of all starting in one crowd.
    Random,
}

/// The hysteresis band beyond the view radius: a share of the radius (`"10%"`, the default)
/// or a distance (`8.0`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ViewMargin {
    /// This many percent of the radius.
    Percent(f32),
    /// This distance.
    Units(f32),
}

impl Default for ViewMargin {
    fn default() -> Self {
        ViewMargin::Percent(10.0)
    }
}

impl ViewMargin {
    /// The margin for `radius`.
    pub fn of(self, radius: f32) -> f32 {
        match self {
            ViewMargin::Percent(p) => radius * p / 100.0,
            ViewMargin::Units(u) => u,
        }
    }

    /// Its number, which must be finite and not negative.
    fn value(self) -> f32 {
        match self {
            ViewMargin::Percent(v) | ViewMargin::Units(v) => v,
        }
    }
}

impl fmt::Display for ViewMargin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ViewMargin::Percent(p) => write!(f, "{p}%"),
            ViewMargin::Units(u) => write!(f, "{u}"),
        }
    }
}

impl FromStr for ViewMargin {
    type Err = String;

    /// `"10%"` or `"8"` / `"8.5"`, as the flag `--view-margin` takes it.
    fn from_str(text: &str) -> Result<Self, String> {
        let why =
            || format!("a view margin is a distance like 8.0 or a share of the radius like \"10%\", not {text:?}");
        match text.trim().strip_suffix('%') {
            Some(p) => p.trim().parse().map(ViewMargin::Percent).map_err(|_| why()),
            None => text.trim().parse().map(ViewMargin::Units).map_err(|_| why()),
        }
    }
}

impl Serialize for ViewMargin {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ViewMargin::Percent(_) => serializer.serialize_str(&self.to_string()),
            ViewMargin::Units(u) => serializer.serialize_f32(*u),
        }
    }
}

impl<'de> Deserialize<'de> for ViewMargin {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ViewMargin;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a distance like 8.0 or a share of the radius like \"10%\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ViewMargin, E> {
                match v.strip_suffix('%') {
                    Some(_) => v.parse().map_err(E::custom),
                    None => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<ViewMargin, E> {
                Ok(ViewMargin::Units(v as f32))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ViewMargin, E> {
                Ok(ViewMargin::Units(v as f32))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ViewMargin, E> {
                Ok(ViewMargin::Units(v as f32))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Checks the `[world]` settings of interest management; the message names the setting.
fn validate_view(world: &WorldConfig) -> Result<(), String> {
    if !(world.view_radius.is_finite() && world.view_radius >= 0.0) {
        return Err(format!("world.view_radius must be 0 (off) or a positive distance, not {}", world.view_radius));
    }
    if world.overload_news_max.is_some_and(|d| d.is_zero()) {
        return Err("world.overload_news_max must be more than 0 (or \"off\")".into());
    }
    let margin = world.view_margin.value();
    if !(margin.is_finite() && margin >= 0.0) {
        return Err(format!("world.view_margin must not be negative, not {}", world.view_margin));
    }
    Ok(())
}

/// Chat, and the limits that keep one player's lines from flooding a room.
///
/// A line is relayed to every member of its room, so what one player sends, the server sends
/// once per member: the chat limits bound that amplification where it starts. A line beyond
/// them is dropped, counted (`ServerStats`, the statistics line, `--stats-json`) and its sender
/// told by a line from player 0, at most once a second; nobody is disconnected for it, as the
/// members who would have received it did nothing wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// The longest chat line, in characters. A longer one is invalid input: its sender is
    /// disconnected (no client of the course sends one). Default: 200.
    pub max_chars: usize,
    /// Lines one player may send: `per_second` on average, `burst` at once after a pause.
    /// `None` (`"off"` in a file) turns it off. Default: 5 a second, bursts of 10: faster than
    /// anyone types, while a script pasting lines is slowed to a readable pace.
    #[serde(with = "net_plugin::off")]
    pub player_rate: Option<LineRate>,
    /// Bytes of `S_Chat` one room may send per second, each line counted once per member it
    /// goes to (its wire size times the room's members), and up to one second's worth at once.
    /// A line that alone costs more (a long line in a very large room) is let through when the
    /// budget is full, and the room then waits until it is paid back. `None` (`"off"` in a
    /// file) turns it off.
    ///
    /// Default: 256 KiB/s. The per-player limit alone does not bound a room: 50 players at it
    /// make 250 lines a second, up to 810 bytes each, to every member. The budget does: a
    /// member receives at most `budget / members` bytes of chat a second, which peaks at ~32
    /// KB/s (~260 kbit/s: a room of 8, everyone at the player limit with the longest lines) and
    /// is far less in large rooms, so a member on a slow link keeps up; one frame's fan-out is
    /// at most 256 KiB in all, a fraction of what a member may have waiting; and a server full
    /// of rooms of 1,000 (10,000 players) sends at most 2.5 MiB/s of chat, next to the ~80 MB/s
    /// of moves that 1,000 players cause. It still carries ordinary talk: a room of 1,000 gets
    /// 3–4 lines of 30 characters a second (a room of 100 ten times that), more than people
    /// read.
    #[serde(with = "net_plugin::off")]
    pub room_bytes_per_second: Option<u64>,
}

/// A chat rate: lines per second on average, and at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineRate {
    /// Lines per second, on average.
    pub per_second: u32,
    /// Lines at once, after a pause.
    pub burst: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "[::]:7777".into(),
            tick_hz: 60,
            frame_hz: 0,
            stats_interval: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(30),
            room: RoomConfig::default(),
            world: WorldConfig::default(),
            chat: ChatConfig::default(),
            net: NetConfig::default(),
            admin: AdminConfig::default(),
            agones: AgonesConfig::default(),
        }
    }
}

/// A period where zero means never, written `"off"` in files (`"0s"` is read too), so it follows
/// the `"off"` rule of every optional setting while the code keeps a plain `Duration`.
mod zero_is_off {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        net_plugin::off::duration::serialize(&Some(*value).filter(|d| !d.is_zero()), serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        Ok(net_plugin::off::duration::deserialize(deserializer)?.unwrap_or(Duration::ZERO))
    }
}

impl Default for WorldConfig {
    fn default() -> Self {
        Self {
            min: [-10_000.0; 3],
            max: [10_000.0; 3],
            out_of_bounds: OutOfBounds::Clamp,
            view_radius: 0.0,
            view_margin: ViewMargin::default(),
            spawn: Spawn::Origin,
            view_delay: Duration::from_millis(300),
            overload_news_max: Some(Duration::from_millis(1200)),
        }
    }
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            max_chars: 200,
            player_rate: Some(LineRate { per_second: 5, burst: 10 }),
            room_bytes_per_second: Some(256 * 1024),
        }
    }
}

/// A settings file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file given with `--config` cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or has a value of the wrong type or an unknown key.
    #[error("{path}, line {line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the mistake.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A value is out of its range.
    #[error("{0}")]
    Invalid(String),
}

impl ServerConfig {
    /// Reads the settings file: `path` if given (it must exist), else [`DEFAULT_CONFIG_PATH`]
    /// if it exists, else the built-in defaults. Returns the settings and the file used.
    pub fn load(path: Option<&Path>) -> Result<(Self, Option<PathBuf>), ConfigError> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok((Self::parse(&path, &text)?, Some(path))),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Ok((Self::default(), None)),
            Err(source) => Err(ConfigError::Read { path, source }),
        }
    }

    /// Parses settings from TOML text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            line: e.span().map_or(1, |span| {
                text.as_bytes()[..span.start.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
            }),
            message: e.message().trim().replace('\n', " "),
        })
    }

    /// Checks every range; the message names the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if !(1..=1000).contains(&self.tick_hz) {
            return invalid(format!("tick_hz must be between 1 and 1000, not {}", self.tick_hz));
        }
        if self.frame_hz > 1000 {
            return invalid(format!("frame_hz must be at most 1000 (0 means the tick rate), not {}", self.frame_hz));
        }
        for axis in 0..3 {
            let (min, max) = (self.world.min[axis], self.world.max[axis]);
            if !(min.is_finite() && max.is_finite() && min <= max) {
                return invalid(format!(
                    "world.min must be finite and at most world.max on every axis ({min} > {max})"
                ));
            }
        }
        validate_view(&self.world).map_err(ConfigError::Invalid)?;
        if self.chat.max_chars == 0 {
            return invalid("chat.max_chars must be at least 1".into());
        }
        if let Some(rate) = self.chat.player_rate
            && (rate.per_second == 0 || rate.burst == 0)
        {
            return invalid("chat.player_rate needs per_second and burst of at least 1 (or \"off\")".into());
        }
        if self.chat.room_bytes_per_second == Some(0) {
            return invalid("chat.room_bytes_per_second must be at least 1 (or \"off\")".into());
        }
        self.admin.address()?;
        if self.agones.enabled && !cfg!(feature = "agones") {
            return invalid(
                "agones.enabled (--agones): this build lacks Agones support; build the server with \
                 `--features agones`"
                    .into(),
            );
        }
        if self.agones.health_interval < Duration::from_millis(10) {
            return invalid("agones.health_interval must be at least 10ms".into());
        }
        self.net.validate().map_err(ConfigError::Invalid)
    }

    /// Time between frames.
    pub fn frame_period(&self) -> Duration {
        let hz = if self.frame_hz == 0 { self.tick_hz } else { self.frame_hz };
        Duration::from_secs_f64(1.0 / f64::from(hz.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_margin_is_a_share_of_the_radius_or_a_distance() {
        assert_eq!(ViewMargin::default().of(80.0), 8.0);
        assert_eq!("25%".parse::<ViewMargin>().unwrap().of(80.0), 20.0);
        assert_eq!("3.5".parse::<ViewMargin>().unwrap().of(80.0), 3.5);
        assert!("ten".parse::<ViewMargin>().is_err());
        assert!("%".parse::<ViewMargin>().is_err());
    }

    #[test]
    fn a_margin_reads_back_as_written() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct T {
            m: ViewMargin,
        }
        for (text, m) in [("m = \"10%\"", ViewMargin::Percent(10.0)), ("m = 2.5", ViewMargin::Units(2.5))] {
            assert_eq!(toml::from_str::<T>(text).unwrap(), T { m });
            assert_eq!(toml::to_string(&T { m }).unwrap().trim(), text);
        }
        assert_eq!(toml::from_str::<T>("m = 3").unwrap(), T { m: ViewMargin::Units(3.0) });
        let e = toml::from_str::<T>("m = \"ten\"").unwrap_err().to_string();
        assert!(e.contains("a share of the radius like \"10%\""), "{e}");
    }

    #[test]
    fn validation_refuses_negative_or_non_finite_distances() {
        let world = |view_radius, view_margin| WorldConfig { view_radius, view_margin, ..WorldConfig::default() };
        assert!(validate_view(&world(0.0, ViewMargin::default())).is_ok());
        assert!(validate_view(&world(80.0, ViewMargin::Units(0.0))).is_ok());
        assert!(validate_view(&world(-1.0, ViewMargin::default())).unwrap_err().contains("world.view_radius"));
        assert!(validate_view(&world(f32::NAN, ViewMargin::default())).is_err());
        assert!(validate_view(&world(80.0, ViewMargin::Units(-1.0))).unwrap_err().contains("world.view_margin"));
        assert!(validate_view(&world(80.0, ViewMargin::Percent(f32::INFINITY))).is_err());
    }
}
