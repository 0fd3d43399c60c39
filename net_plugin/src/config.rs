//! Limits and settings of the network layer, with the defaults a game server starts from.
//!
//! Every queue the plugin keeps is bounded by one of these, and each bound has a policy when it
//! is reached (see the field docs). All fields can be set from TOML (`[net]` in the server's
//! config file); durations are written like `"30s"` or `"250ms"`. A field left out keeps its
//! default; an optional one (`Option`) is turned off with the string `"off"` (see [`off`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings of the network layer, shared by the server (listener) and client (connector) sides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetConfig {
    /// Tokio worker threads for socket I/O. The ECS runs on the main thread, so on a 2-core
    /// machine one I/O thread leaves each a core. Default: cores − 1, between 1 and 4.
    pub io_threads: usize,

    /// Open connections accepted at once (server side). Beyond it a newcomer is accepted and
    /// closed at once, and the refusal logged (at most once a second); sessions already open are
    /// untouched. Default: 10,000.
    pub max_connections: usize,

    /// Open connections accepted at once from one IP address (server side), so one source
    /// cannot take every slot. Beyond it a newcomer from that address is closed at once (counted
    /// in [`NetStats::refused`](crate::NetStats::refused) as
    /// [`Refusal::PerAddress`](crate::Refusal::PerAddress)). Connections from this machine are
    /// exempt unless [`per_ip_counts_loopback`](Self::per_ip_counts_loopback) says otherwise:
    /// from a loopback address, or from the very address of the server's they came to (a client
    /// on the server's machine that connects to the machine's own name, as the course's
    /// DummyClient does, gets one of its non-loopback addresses as its source; no peer elsewhere
    /// can).
    /// An IPv6 address counts with its whole /64 network: one host is usually given a /64.
    /// `None` (`"off"` in a file) turns it off. Default: 64 (room for a household or a small
    /// office behind one NAT; raise it for carrier-grade NAT).
    #[serde(with = "off")]
    pub max_connections_per_ip: Option<usize>,

    /// Whether connections from this machine (loopback addresses, 127.0.0.0/8 and ::1, and the
    /// host's own address they came to) count against
    /// [`max_connections_per_ip`](Self::max_connections_per_ip). Default: false, since a load
    /// test on the same machine, or a proxy on it, is not one attacker.
    pub per_ip_counts_loopback: bool,

    /// The listen backlog: connections the kernel queues before they are accepted, for bursts of
    /// joins. Default: 4,096 (the kernel caps it at `net.core.somaxconn`).
    pub listen_backlog: u32,

    /// The largest packet accepted from a peer, in bytes, header included. A larger `size` closes
    /// the connection as soon as its two size bytes arrive, so a peer cannot make the server
    /// buffer more than this. Default: 4,096 on the server (the course's client packets are all
    /// tiny); 65,535 on clients (a server's player list can be large).
    pub max_packet_size: usize,

    /// How fast a peer may send packets. Beyond it, the connection is closed with
    /// [`DisconnectReason::InboundFlood`](crate::DisconnectReason::InboundFlood). `None` (`"off"`
    /// in a file) turns it off (clients trust their server). Default: 100 packets/s with bursts
    /// of 200 (the course's clients send 4 moves a second).
    #[serde(with = "off")]
    pub inbound_rate: Option<RateLimit>,

    /// Bytes that may wait for one peer, beyond what the kernel's socket buffer holds, for as
    /// long as [`write_stall_timeout`](Self::write_stall_timeout). A backlog that stays above it
    /// that long (the peer reads, but slower than it is sent to) closes the connection with
    /// [`DisconnectReason::OutboundBacklog`](crate::DisconnectReason::OutboundBacklog); so does a
    /// backlog of 4 times this at any moment, so a peer costs at most that much memory. A burst
    /// above it that the peer drains (one big frame of chat, say) closes nothing. Default: 1 MiB
    /// (about 10 s of a 500-player room's moves).
    pub outbound_backlog: usize,

    /// Bytes that may wait for all peers together, beyond what the kernel's socket buffers hold:
    /// the bound on the sum of the backlogs that [`outbound_backlog`](Self::outbound_backlog)
    /// bounds one by one. When they pass it, the peers with the largest backlogs (the longest
    /// stalled among equals) are closed with
    /// [`DisconnectReason::OutboundBudget`](crate::DisconnectReason::OutboundBudget), as few as
    /// it takes to fit again: a thousand peers that do not read, each within its own cap, cannot
    /// make the server hold a gigabyte, and a peer that reads, whose backlog is a moment's
    /// traffic, is the last to go. `None` (`"off"` in a file) turns it off. Default: 128 MiB on
    /// the server (1,000 non-readers beside 100 movers keep it under 300 MB in all); off on
    /// clients.
    #[serde(with = "off")]
    pub max_total_backlog: Option<usize>,

    /// How long bytes may wait for a peer with no write progress at all before the connection is
    /// closed with [`DisconnectReason::WriteStall`](crate::DisconnectReason::WriteStall) (the
    /// peer does not read), and how long a backlog may stay above
    /// [`outbound_backlog`](Self::outbound_backlog). A peer cut for either is reset (`SO_LINGER`
    /// 0), so the kernel frees its buffers at once. Default: 10 s.
    #[serde(with = "humantime_serde")]
    pub write_stall_timeout: Duration,

    /// The kernel's send buffer per connection (`SO_SNDBUF`), in bytes; the kernel doubles it for
    /// its bookkeeping. Left to the kernel, it grows to megabytes per connection (about 4 MB on
    /// loopback), which a few hundred peers that never read can pin in the kernel, outside this
    /// process's own limits. `None` (`"off"` in a file) leaves it to the kernel. Default: 64 KiB
    /// on the server (128 KiB with the kernel's share: 1,000 peers that never read hold at most
    /// about 130 MB of the host's TCP memory; a second of a 1,000-player room's moves), the
    /// kernel's choice on clients.
    #[serde(with = "off")]
    pub send_buffer: Option<usize>,

    /// Packets that may wait between the I/O threads and the ECS (one read's worth more, if a
    /// single read decoded more; plus each connection's connect and disconnect). When it is
    /// reached, readers stop reading their sockets until the next frame drains it (TCP pushes
    /// back on the senders); nothing is dropped. Default: 65,536 on the server, 262,144 on
    /// clients (a load-test process receives whole rooms' broadcasts).
    pub inbound_queue: usize,

    /// TCP keepalive, so a peer that vanished without closing (power loss, cable) is found and
    /// its session ended. `None` (`"off"` in a file) turns it off. Default: probe after 30 s idle,
    /// every 10 s, give up after 3 (a dead peer is found within about a minute).
    #[serde(with = "off")]
    pub keepalive: Option<Keepalive>,

    /// Closes a connection that has sent nothing for this long, with
    /// [`DisconnectReason::IdleTimeout`](crate::DisconnectReason::IdleTimeout). `None` (the
    /// default; `"off"` in a file) turns it off: the course's clients may legitimately stay quiet.
    #[serde(with = "off::duration")]
    pub idle_timeout: Option<Duration>,

    /// How long a peer may take to finish a packet it began, from its first byte to its last.
    /// Beyond it the connection is closed with
    /// [`DisconnectReason::FrameTimeout`](crate::DisconnectReason::FrameTimeout): any byte
    /// resets the idle timeout, so without this a peer trickling a byte every few seconds of a
    /// packet it never finishes would hold its connection (and its slot) forever. `None`
    /// (`"off"` in a file) turns it off. Default: 10 s (the course's packets are sent whole, in
    /// one write).
    #[serde(with = "off::duration")]
    pub frame_timeout: Option<Duration>,

    /// How long a closing connection may take to write what is queued for it before the socket
    /// is closed anyway. Default: 1 s.
    #[serde(with = "humantime_serde")]
    pub close_linger: Duration,

    /// How long a graceful shutdown waits for every session to flush and close before the I/O
    /// runtime is stopped regardless. Default: 3 s.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,

    /// How long an outgoing connection attempt may take (client side). Default: 5 s.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,

    /// Disables Nagle's algorithm. The plugin already gathers a frame's packets into one write;
    /// Nagle would only add up to 40 ms of delay to it. Default: on.
    pub nodelay: bool,

    /// The WebSocket transport (`[net.websocket]`), off unless it has a `bind` address.
    pub websocket: WebSocketConfig,
}

/// The WebSocket transport's settings (server side): browsers and Unity WebGL builds connect
/// here; every other limit of [`NetConfig`] applies to them as to TCP peers, and
/// `max_connections` / `max_connections_per_ip` count both transports together.
///
/// Received messages are not reassembled: their payload goes straight into the course's framing
/// (bounded by [`NetConfig::max_packet_size`]), so a connection holds a few hundred bytes of
/// WebSocket state, whatever the limits below.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketConfig {
    /// Where to listen for WebSocket clients (`"0.0.0.0:7780"`). Default: none, the transport
    /// is off.
    pub bind: Option<String>,
    /// How long a new connection may take to send its whole upgrade request, so a slow one
    /// cannot hold a connection slot. Default: 5 s.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// The largest message accepted, in bytes, all its fragments together; a larger one closes
    /// the connection with close code 1009. Default: 64 KiB.
    pub max_message: usize,
    /// The largest single frame accepted, in bytes of payload (close code 1009 beyond).
    /// Default: 64 KiB.
    pub max_frame: usize,
    /// How often the server pings a client; pings a client sends are answered at most once per
    /// this interval (a ping flood is not echoed). `None` (`"off"`) sends none and answers
    /// every ping. Default: 15 s.
    #[serde(with = "off::duration")]
    pub ping_interval: Option<Duration>,
    /// How long a ping may go unanswered before the connection is closed
    /// ([`DisconnectReason::IdleTimeout`](crate::DisconnectReason::IdleTimeout)). Default: 10 s.
    #[serde(with = "humantime_serde")]
    pub ping_timeout: Duration,
    /// The `Origin`s a browser may connect from (`"https://game.example"`), compared exactly;
    /// any other gets `403 Forbidden`. Empty: any. A request without `Origin` (a native client,
    /// not a page) is always allowed. Default: empty.
    pub allowed_origins: Vec<String>,
    /// The certificate chain (PEM) of a `wss://` port: with [`tls_key`](Self::tls_key), the
    /// port speaks TLS only (the play page at `https://`), without both it speaks plain `ws://`.
    /// The TLS handshake counts in the handshake timeout. A file that does not load is a
    /// start-up error. Default: none.
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1) of [`tls_cert`](Self::tls_cert).
    /// Default: none.
    pub tls_key: Option<std::path::PathBuf>,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        Self {
            bind: None,
            handshake_timeout: Duration::from_secs(5),
            max_message: 64 * 1024,
            max_frame: 64 * 1024,
            ping_interval: Some(Duration::from_secs(15)),
            ping_timeout: Duration::from_secs(10),
            allowed_origins: Vec::new(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// `"off"` for an optional setting: use with `#[serde(with = "net_plugin::off")]` on an
/// `Option<T>` field (`net_plugin::off::duration` for an `Option<Duration>` written like `"2m"`).
///
/// Settings structs take `#[serde(default)]`, so that a line left out of a file means the
/// built-in default — also for a setting that is on by default, such as the inbound rate limit.
/// TOML has no null, so turning such a setting off needs a value of its own: the string `"off"`
/// ([`OFF`](off::OFF)), the same for every optional setting. `None` is written as `"off"`, so a
/// configuration serializes and reads back to itself.
pub mod off {
    use std::fmt;
    use std::marker::PhantomData;
    use std::time::Duration;

    use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
    use serde::de::{self, IntoDeserializer, MapAccess, SeqAccess, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// The value that turns an optional setting off.
    pub const OFF: &str = "off";

    /// Writes `None` as `"off"`, and `Some(v)` as `v`.
    pub fn serialize<T: Serialize, S: Serializer>(value: &Option<T>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => v.serialize(serializer),
            None => serializer.serialize_str(OFF),
        }
    }

    /// Reads `"off"` as `None`, and anything else as `Some` of `T`.
    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
        // `deserialize_any`, then handing the value on to `T`, keeps `T`'s own error messages
        // (an unknown or missing field of a table, say) instead of a vague "no variant matched".
        deserializer.deserialize_any(OffOr(PhantomData))
    }

    struct OffOr<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for OffOr<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "\"{OFF}\" or a setting")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            if v == OFF {
                return Ok(None);
            }
            or_off(T::deserialize(IntoDeserializer::<E>::into_deserializer(v)))
        }

        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            or_off(T::deserialize(IntoDeserializer::<E>::into_deserializer(v)))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            or_off(T::deserialize(IntoDeserializer::<E>::into_deserializer(v)))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            or_off(T::deserialize(IntoDeserializer::<E>::into_deserializer(v)))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            or_off(T::deserialize(IntoDeserializer::<E>::into_deserializer(v)))
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map)).map(Some)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            T::deserialize(SeqAccessDeserializer::new(seq)).map(Some)
        }
    }

    /// A plain value `T` did not take: the message also offers `"off"` (a table's own errors,
    /// such as a missing field, are left as they are).
    fn or_off<T, E: de::Error>(result: Result<T, E>) -> Result<Option<T>, E> {
        result.map(Some).map_err(|e| E::custom(format_args!("{}, or \"{OFF}\"", e.to_string().trim_end())))
    }

    /// `"off"` or a duration written like `"2m"`, for an `Option<Duration>`.
    pub mod duration {
        use super::*;

        /// Writes `None` as `"off"`, and a duration like `"2m"`.
        pub fn serialize<S: Serializer>(value: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
            super::serialize(&value.map(humantime_serde::Serde::from), serializer)
        }

        /// Reads `"off"` as `None`, and a duration like `"2m"`.
        pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
            Ok(super::deserialize::<humantime_serde::Serde<Duration>, D>(deserializer)?.map(|d| d.into_inner()))
        }
    }
}

/// A token bucket: `per_second` packets on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Packets per second a peer may send, on average.
    pub per_second: u32,
    /// Packets a peer may send at once after being quiet.
    pub burst: u32,
}

/// TCP keepalive timings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keepalive {
    /// Idle time before the first probe.
    #[serde(with = "humantime_serde")]
    pub idle: Duration,
    /// Time between probes.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped.
    pub retries: u32,
}

impl Default for Keepalive {
    fn default() -> Self {
        Self { idle: Duration::from_secs(30), interval: Duration::from_secs(10), retries: 3 }
    }
}

/// I/O threads to use when not configured: the ECS keeps one core, I/O takes the rest (1–4).
pub fn default_io_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1)).clamp(1, 4)
}

impl Default for NetConfig {
    /// The server's defaults.
    fn default() -> Self {
        Self {
            io_threads: default_io_threads(),
            max_connections: 10_000,
            max_connections_per_ip: Some(64),
            per_ip_counts_loopback: false,
            listen_backlog: 4096,
            max_packet_size: 4096,
            inbound_rate: Some(RateLimit { per_second: 100, burst: 200 }),
            outbound_backlog: 1 << 20,
            max_total_backlog: Some(128 << 20),
            write_stall_timeout: Duration::from_secs(10),
            send_buffer: Some(64 * 1024),
            inbound_queue: 1 << 16,
            keepalive: Some(Keepalive::default()),
            idle_timeout: None,
            frame_timeout: Some(Duration::from_secs(10)),
            close_linger: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(5),
            nodelay: true,
            websocket: WebSocketConfig::default(),
        }
    }
}

impl NetConfig {
    /// The defaults for the client side: large packets and WebSocket messages accepted (player
    /// lists), no rate limit on the server, a deep inbound queue for load-test processes, the kernel's send buffer.
    pub fn client_default() -> Self {
        Self {
            max_packet_size: shared::MAX_PACKET_LEN,
            inbound_rate: None,
            inbound_queue: 1 << 18,
            send_buffer: None,
            max_total_backlog: None,
            // A server's message holds a frame's packets for one client, up to its backlog's
            // ceiling; nothing is reassembled, so a large limit costs nothing.
            websocket: WebSocketConfig { max_message: 16 << 20, max_frame: 16 << 20, ..WebSocketConfig::default() },
            ..Self::default()
        }
    }

    /// Checks values that would make the plugin misbehave; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.websocket.tls_cert.is_some() != self.websocket.tls_key.is_some() {
            return Err("net.websocket.tls_cert and net.websocket.tls_key go together".into());
        }
        if self.io_threads == 0 {
            return Err("net.io_threads must be at least 1".into());
        }
        if self.max_connections == 0 {
            return Err("net.max_connections must be at least 1".into());
        }
        if !(shared::HEADER_LEN..=shared::MAX_PACKET_LEN).contains(&self.max_packet_size) {
            return Err(format!(
                "net.max_packet_size must be between {} and {} bytes",
                shared::HEADER_LEN,
                shared::MAX_PACKET_LEN
            ));
        }
        if let Some(rate) = self.inbound_rate
            && (rate.per_second == 0 || rate.burst == 0)
        {
            return Err("net.inbound_rate needs per_second and burst of at least 1".into());
        }
        if self.outbound_backlog < shared::MAX_PACKET_LEN {
            return Err(format!(
                "net.outbound_backlog must hold at least one packet ({} bytes)",
                shared::MAX_PACKET_LEN
            ));
        }
        if self.max_total_backlog.is_some_and(|b| b < shared::MAX_PACKET_LEN) {
            return Err(format!(
                "net.max_total_backlog must hold at least one packet ({} bytes), or \"off\"",
                shared::MAX_PACKET_LEN
            ));
        }
        if self.inbound_queue == 0 {
            return Err("net.inbound_queue must be at least 1".into());
        }
        if self.max_connections_per_ip == Some(0) {
            return Err("net.max_connections_per_ip must be at least 1 (or \"off\")".into());
        }
        if self.write_stall_timeout.is_zero() {
            return Err("net.write_stall_timeout must be longer than 0s".into());
        }
        if self.send_buffer.is_some_and(|b| b < 4096) {
            return Err("net.send_buffer must be at least 4096 bytes (or \"off\")".into());
        }
        let ws = &self.websocket;
        if ws.handshake_timeout.is_zero() || ws.ping_timeout.is_zero() {
            return Err("net.websocket.handshake_timeout and ping_timeout must be longer than 0s".into());
        }
        if ws.max_frame == 0 || ws.max_message == 0 {
            return Err("net.websocket.max_frame and max_message must be at least 1 byte".into());
        }
        Ok(())
    }
}
