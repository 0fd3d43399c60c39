//! `GET /metrics`: the statistics snapshot in the OpenMetrics text format that Prometheus
//! scrapes, every name prefixed `gameserver_`.
//!
//! The numbers are not kept here: a scrape reads the game's latest published snapshot (module
//! `snapshot`), whose `StatsSnapshot` holds the counters the statistics line and `--stats-json`
//! also read (see the `stats` module), and this
//! module only writes it out, with `prometheus-client`'s encoder, through a collector that holds
//! that one snapshot. No metric is registered ahead of time, so nothing is counted twice and
//! every app (the tests run several in one process) has its own numbers.
//!
//! Names follow Prometheus' conventions: counters end in `_total`, durations are in seconds,
//! sizes in bytes. Every label value is listed from the start (every packet type, every
//! disconnect reason, at 0 until it happens), so a rate never starts from a missing series.

use std::fmt::{self, Write};

use net_plugin::DisconnectKind;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use shared::{Direction, PACKETS};

use super::api::MetricsData;
use crate::lifecycle::Phase;
use crate::stats::TICK_BUCKETS_SECONDS;

/// The prefix of every metric name.
pub const PREFIX: &str = "gameserver";

/// The media type of the text: Prometheus asks for it and parses it as OpenMetrics.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The metrics text of one snapshot, and the server's phase at the scrape.
pub(crate) fn render(data: MetricsData, phase: Phase) -> String {
    let mut registry = Registry::with_prefix(PREFIX);
    registry.register_collector(Box::new(Snapshot(data, phase)));
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

/// One scrape's numbers, written out by `prometheus-client` when it encodes the registry.
#[derive(Debug)]
struct Snapshot(MetricsData, Phase);

impl Collector for Snapshot {
    fn encode(&self, mut out: DescriptorEncoder) -> fmt::Result {
        let Snapshot(
            MetricsData { stats: s, outbound_backlog_bytes, max_connections, admin_snapshots, admin_snapshot_seconds },
            phase,
        ) = self;
        let net = &s.net;
        let out = &mut out;

        // A state set as gauges: 1 for the phase the server is in, 0 for the others.
        let mut family = out.encode_descriptor(
            "phase",
            "The server's phase: 1 for the one it is in (starting, accepting, draining, shutting_down).",
            None,
            MetricType::Gauge,
        )?;
        for p in Phase::ALL {
            ConstGauge::new(i64::from(p == *phase)).encode(family.encode_family(&[("phase", p.label())])?)?;
        }

        counter(out, "connections", "Connections accepted since start.", net.sessions_total)?;
        gauge(out, "connections_open", "Connections open now.", net.sessions)?;
        gauges(
            out,
            "connections_open_by_transport",
            "Connections open now, by transport (TCP, or WebSocket from browsers).",
            "transport",
            [
                (net_plugin::Transport::Tcp.as_str(), net.sessions.saturating_sub(net.sessions_websocket)),
                (net_plugin::Transport::WebSocket.as_str(), net.sessions_websocket),
            ],
        )?;
        if let Some(limit) = max_connections {
            gauge(out, "connections_max", "Connections at once beyond which newcomers are refused.", *limit as u64)?;
        }
        counters(
            out,
            "connections_refused",
            "Connections closed on arrival, by reason.",
            "reason",
            net.refused_by_label(),
        )?;
        counters(
            out,
            "disconnects",
            "Connections ended, by reason.",
            "reason",
            DisconnectKind::ALL.iter().map(|k| (k.as_str(), net.disconnects(*k))),
        )?;

        gauge(out, "players", "Players in a room now.", s.players as u64)?;
        gauge(out, "players_max", "The most players at once since start.", s.players_max as u64)?;
        gauge(out, "rooms", "Rooms with at least one player now.", s.rooms as u64)?;

        let of = |direction: Direction| PACKETS.iter().filter(move |p| p.direction == direction);
        counters(
            out,
            "packets_received",
            "Packets from clients delivered to the game, by packet.",
            "packet",
            of(Direction::ClientToServer).map(|p| (p.name, net.packets_in_of(p.id))),
        )?;
        counters(
            out,
            "packets_sent",
            "Packets queued for clients (a broadcast to 500 counts 500), by packet.",
            "packet",
            of(Direction::ServerToClient).map(|p| (p.name, net.packets_out_of(p.id))),
        )?;
        counters(
            out,
            "packets_lost",
            "Packets not delivered or not sent, by why.",
            "why",
            [("session_closed", net.packets_dropped), ("unencodable", net.packets_unencodable)],
        )?;
        counter(out, "received_bytes", "Bytes read from client sockets.", net.bytes_in)?;
        counter(out, "sent_bytes", "Bytes written to client sockets.", net.bytes_out)?;
        gauge(
            out,
            "inbound_queue_packets",
            "Packets read and waiting for the game when the last frame began to take them.",
            net.inbound_queued,
        )?;
        counter(
            out,
            "inbound_queue_waits",
            "Times a reader found the inbound queue full and paused.",
            net.inbound_waits,
        )?;
        gauge(
            out,
            "outbound_backlog_bytes",
            "Bytes flushed to clients and not yet taken by their sockets, over every connection.",
            *outbound_backlog_bytes,
        )?;
        counter(
            out,
            "flushes",
            "Per-connection buffers handed to the writer (at most one per connection per frame).",
            net.flushes,
        )?;

        counter(out, "frames", "Frames run (network in, game, network out).", s.frames)?;
        counter(out, "ticks", "Fixed game ticks run.", s.ticks)?;
        let mut buckets: Vec<(f64, u64)> =
            TICK_BUCKETS_SECONDS.iter().copied().zip(s.tick.buckets.iter().copied()).collect();
        // The last count is above every bound: the +Inf bucket.
        buckets.push((f64::MAX, s.tick.buckets.last().copied().unwrap_or(0)));
        out.encode_descriptor(
            "tick_duration_seconds",
            "Wall time of frames that ran a game tick, from network in to flush.",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(s.tick.sum_seconds, s.tick.count, &buckets, None)?;

        let news = ConstGauge::new(s.overload.news_interval_ms as f64 / 1000.0);
        news.encode(out.encode_descriptor(
            "news_interval_seconds",
            "How long news about others may wait now (graceful overload; 0: not running).",
            None,
            news.metric_type(),
        )?)?;
        counter(
            out,
            "overload_episodes",
            "Times the news interval began to stretch under overload.",
            s.overload.episodes,
        )?;
        counter(out, "chat_lines_relayed", "Chat lines relayed to their room.", s.chat.relayed)?;
        counters(
            out,
            "chat_lines_dropped",
            "Chat lines dropped (their senders stay connected), by the limit they met.",
            "reason",
            s.chat.dropped_by_label(),
        )?;

        counter(
            out,
            "admin_snapshots",
            "Snapshots the game built for the admin endpoint (at most 10 a second, while it is read).",
            *admin_snapshots,
        )?;
        let spent = ConstCounter::new(*admin_snapshot_seconds);
        spent.encode(out.encode_descriptor(
            "admin_snapshot_seconds",
            "Seconds the game spent building those snapshots.",
            None,
            spent.metric_type(),
        )?)?;

        let uptime = ConstGauge::new(s.uptime.as_secs_f64());
        uptime.encode(out.encode_descriptor(
            "uptime_seconds",
            "Seconds since the server started.",
            None,
            uptime.metric_type(),
        )?)?;
        let mut build = out.encode_descriptor("build", "The server's version.", None, MetricType::Info)?;
        build.encode_info(&[("version", env!("CARGO_PKG_VERSION"))])
    }
}

/// A counter; `name` without `_total`, which the encoder appends.
fn counter(out: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(out.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(out: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    metric.encode(out.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// A gauge with one label, a series per value.
fn gauges<'a>(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) -> fmt::Result {
    labelled(out, name, help, label, values, |count| ConstGauge::new(i64::try_from(count).unwrap_or(i64::MAX)))
}

/// A counter with one label, a series per value.
fn counters<'a>(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) -> fmt::Result {
    labelled(out, name, help, label, values, ConstCounter::new)
}

/// A family of metrics `metric` makes, with one label, a series per value.
fn labelled<'a, M: EncodeMetric + TypedMetric>(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
    metric: impl Fn(u64) -> M,
) -> fmt::Result {
    let mut family = out.encode_descriptor(name, help, None, M::TYPE)?;
    for (value, count) in values {
        metric(count).encode(family.encode_family(&[(label, value)])?)?;
    }
    Ok(())
}

/// The sample names in a metrics text (`gameserver_tick_duration_seconds_bucket`…), for tests
/// and the dashboard check.
pub fn sample_names(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// The value of the sample `name` with exactly these labels (`""`: none) in a metrics text.
pub fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let mut key = String::from(name);
    if !labels.is_empty() {
        let _ = write!(key, "{{{labels}}}");
    }
    text.lines().find_map(|l| l.strip_prefix(&key)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use net_plugin::NetStats;

    use super::*;
    use crate::stats::{ChatCounts, StatsSnapshot, TickSummary};

    fn data() -> MetricsData {
        let mut net =
            NetStats { sessions: 2, sessions_websocket: 1, sessions_total: 5, bytes_in: 300, ..NetStats::default() };
        net.refused_by[net_plugin::Refusal::ServerFull as usize] = 1;
        net.disconnects[DisconnectKind::KickedByOperator as usize] = 1;
        net.packets_in_by_id = vec![0; 20];
        net.packets_in_by_id[usize::from(shared::PacketId::C_Move as u16)] = 42;
        let mut buckets = vec![0; TICK_BUCKETS_SECONDS.len() + 1];
        buckets[0] = 3;
        buckets[4] = 2;
        buckets[TICK_BUCKETS_SECONDS.len()] = 1;
        MetricsData {
            stats: StatsSnapshot {
                uptime: Duration::from_secs(90),
                frames: 1000,
                ticks: 990,
                players: 2,
                players_max: 3,
                rooms: 1,
                chat: ChatCounts { relayed: 7, dropped: [1, 0] },
                overload: Default::default(),
                tick: TickSummary { count: 6, sum_seconds: 2.5, buckets, p50_ms: 0.1, p99_ms: 900.0, max_ms: 2000.0 },
                net,
            },
            outbound_backlog_bytes: 4096,
            max_connections: Some(10_000),
            admin_snapshots: 12,
            admin_snapshot_seconds: 0.003,
        }
    }

    #[test]
    fn the_snapshot_is_written_with_prometheus_names() {
        let text = render(data(), Phase::Draining);
        let at = |name: &str, labels: &str| {
            sample(&text, name, labels).unwrap_or_else(|| panic!("{name}{{{labels}}} in\n{text}"))
        };
        assert_eq!(at("gameserver_connections_total", ""), 5.0);
        assert_eq!(at("gameserver_connections_open", ""), 2.0);
        assert_eq!(at("gameserver_connections_open_by_transport", "transport=\"tcp\""), 1.0);
        assert_eq!(at("gameserver_connections_open_by_transport", "transport=\"websocket\""), 1.0);
        assert_eq!(at("gameserver_connections_refused_total", "reason=\"server_full\""), 1.0);
        assert_eq!(at("gameserver_connections_refused_total", "reason=\"per_address\""), 0.0, "every reason");
        assert_eq!(at("gameserver_disconnects_total", "reason=\"kicked_by_operator\""), 1.0);
        assert_eq!(
            at("gameserver_disconnects_total", "reason=\"closed_by_peer\""),
            0.0,
            "every reason, from the start"
        );
        assert_eq!(at("gameserver_packets_received_total", "packet=\"C_Move\""), 42.0);
        assert_eq!(at("gameserver_packets_sent_total", "packet=\"S_BroadcastMove\""), 0.0);
        assert!(
            sample(&text, "gameserver_packets_received_total", "packet=\"S_BroadcastMove\"").is_none(),
            "by direction"
        );
        assert_eq!(at("gameserver_received_bytes_total", ""), 300.0);
        assert_eq!(at("gameserver_outbound_backlog_bytes", ""), 4096.0);
        assert_eq!(at("gameserver_players", ""), 2.0);
        assert_eq!(at("gameserver_chat_lines_dropped_total", "reason=\"player_rate\""), 1.0);
        assert_eq!(at("gameserver_uptime_seconds", ""), 90.0);
        assert_eq!(at("gameserver_admin_snapshots_total", ""), 12.0);
        assert_eq!(at("gameserver_admin_snapshot_seconds_total", ""), 0.003);
        assert_eq!(at("gameserver_phase", "phase=\"draining\""), 1.0);
        for other in ["starting", "accepting", "shutting_down"] {
            assert_eq!(at("gameserver_phase", &format!("phase=\"{other}\"")), 0.0, "{other}");
        }
        // The histogram's buckets are cumulative, and +Inf holds every count.
        assert_eq!(at("gameserver_tick_duration_seconds_bucket", "le=\"0.0001\""), 3.0);
        assert_eq!(at("gameserver_tick_duration_seconds_bucket", "le=\"0.001\""), 5.0);
        assert_eq!(at("gameserver_tick_duration_seconds_bucket", "le=\"1.0\""), 5.0);
        assert_eq!(at("gameserver_tick_duration_seconds_bucket", "le=\"+Inf\""), 6.0);
        assert_eq!(at("gameserver_tick_duration_seconds_count", ""), 6.0);
        assert_eq!(at("gameserver_tick_duration_seconds_sum", ""), 2.5);
        assert!(text.ends_with("# EOF\n"), "{text}");
        for name in sample_names(&text) {
            assert!(name.starts_with("gameserver_"), "{name}");
        }
    }

    /// The `gameserver_…` names in a text (a name followed by `_…` alone, as in "every name
    /// starts with `gameserver_`", is no name).
    fn names_in(text: &str) -> Vec<&str> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("gameserver_") && !w.ends_with('_'))
            .collect()
    }

    /// Whether `name` is written: a sample, or a histogram whose samples are.
    fn exported(samples: &std::collections::BTreeSet<String>, name: &str) -> bool {
        samples.contains(name) || samples.contains(&format!("{name}_bucket"))
    }

    /// The dashboard in `deploy/grafana/` only queries metrics this module writes.
    #[test]
    fn the_grafana_dashboard_queries_only_exported_metrics() {
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../../../deploy/grafana/gameserver.json"))
                .expect("the dashboard is JSON");
        let mut exprs = Vec::new();
        collect_exprs(&dashboard, &mut exprs);
        assert!(exprs.len() >= 8, "the dashboard's queries: {exprs:?}");
        let samples = sample_names(&render(data(), Phase::Accepting));
        for expr in &exprs {
            let names = names_in(expr);
            assert!(!names.is_empty(), "{expr:?} reads a gameserver_ metric");
            for name in names {
                assert!(exported(&samples, name), "{name} (in {expr:?}) is not exported");
            }
        }
    }

    /// The operator's guide and the README name only metrics that exist, and the guide's table
    /// lists every one.
    #[test]
    fn the_docs_name_the_exported_metrics() {
        let samples = sample_names(&render(data(), Phase::Accepting));
        let guide = include_str!("../../../docs/operating.md");
        for text in [guide, include_str!("../../../README.md")] {
            for name in names_in(text) {
                assert!(exported(&samples, name), "{name} is named in the docs but not exported");
            }
        }
        let listed: Vec<&str> = names_in(guide);
        for sample in &samples {
            let family = ["_bucket", "_sum", "_count"].iter().find_map(|s| sample.strip_suffix(s)).unwrap_or(sample);
            assert!(listed.contains(&family), "{family} is exported but not in docs/operating.md");
        }
    }

    fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match value {
                        serde_json::Value::String(expr) if key == "expr" => out.push(expr.clone()),
                        _ => collect_exprs(value, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
            _ => {}
        }
    }
}
