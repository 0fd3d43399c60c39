//! The bots: each a connection entity with a [`Bot`], behaving as the course's DummyClient and
//! checking the protocol as it goes.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bevy_app::{App, AppExit, Last, Plugin, Update};
use bevy_ecs::prelude::*;
use net_plugin::{
    ClientOutbox, ClientReceived, ConnectFailed, ConnectOptions, Connected, Connector, Disconnected, NetStats,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rustc_hash::FxHashSet;
use shared::{C_Chat, C_Move, S_BroadcastEnterGame, S_BroadcastLeaveGame, S_BroadcastMove, S_Chat, S_PlayerList};

use crate::metrics::Metrics;
use crate::report::{Report, final_state_mismatches, view_mismatches};
use crate::view::{Pos, View, Violation};
use crate::{BotConfig, MovePattern};

/// How long the traffic must have stopped before the final views are checked.
const QUIET: Duration = Duration::from_millis(300);

/// Own moves remembered after their echo or loss, so a late echo is not taken for a position
/// never sent: 16 s of moves at the DummyClient's rate (an overloaded server, S5 at 10,000, has
/// answered more than 4 s late; such an echo is still counted lost).
const RECENT_MOVES: usize = 64;

/// One bot.
#[derive(Component)]
pub struct Bot {
    /// Its number in the run, from 0.
    pub index: u32,
    /// What the server told it.
    pub view: View,
    rng: SmallRng,
    next_move: Option<Instant>,
    next_chat: Option<Instant>,
    /// Own moves waiting for their echo, oldest first: (position, when sent).
    pending: VecDeque<(Pos, Instant)>,
    /// Positions recently sent.
    recent: VecDeque<Pos>,
    /// The last position sent.
    pub last_sent: Option<Pos>,
    /// With `--walk`: the direction it walks in, radians from +x towards +z.
    heading: f32,
}

impl Bot {
    pub(crate) fn new(index: u32, seed: u64) -> Self {
        Self {
            index,
            view: View::default(),
            rng: SmallRng::seed_from_u64(seed ^ (u64::from(index).wrapping_mul(0x9E37_79B9_7F4A_7C15))),
            next_move: None,
            next_chat: None,
            pending: VecDeque::new(),
            recent: VecDeque::with_capacity(RECENT_MOVES),
            last_sent: None,
            heading: 0.0,
        }
    }

    /// Where the bot is as far as it knows: where it last moved, else where its list put it.
    pub fn position(&self) -> Pos {
        self.last_sent.or(self.view.self_position()).unwrap_or([0.0; 3])
    }

    /// The DummyClient's move: x and z random integers in [-50, 49].
    fn jump(&mut self) -> Pos {
        [self.rng.random_range(-50..50) as f32, 0.0, self.rng.random_range(-50..50) as f32]
    }

    /// A walking step: at most `speed` from where the bot is, in its heading, which turns to a
    /// random direction one move in five; at the edge of a world `size` wide (±size/2) the
    /// heading bounces back in, so the bot stays inside without piling up on the edge.
    pub(crate) fn walk(&mut self, speed: f32, size: f32) -> Pos {
        use std::f32::consts::{PI, TAU};
        let from = self.position();
        if self.rng.random_bool(0.2) {
            self.heading = self.rng.random_range(0.0..TAU);
        }
        let step = self.rng.random_range(0.0..=speed);
        let half = size / 2.0;
        let (mut x, mut z) = (from[0] + step * self.heading.cos(), from[2] + step * self.heading.sin());
        if !(-half..=half).contains(&x) {
            self.heading = PI - self.heading;
            x = x.clamp(-half, half);
        }
        if !(-half..=half).contains(&z) {
            self.heading = -self.heading;
            z = z.clamp(-half, half);
        }
        [x, 0.0, z]
    }
}

/// Where the run is.
#[derive(Resource, Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    /// Connecting and moving.
    Running,
    /// Moves stopped; waiting for the last echoes and for the traffic to stop.
    Settling {
        /// When the moves stopped.
        since: Instant,
        /// When a packet last arrived.
        last_packet: Instant,
        /// Packets received as of `last_packet`.
        packets: u64,
    },
    /// The report is written.
    Done,
}

/// The run's configuration and clock.
#[derive(Resource)]
pub struct Run {
    /// The configuration.
    pub config: BotConfig,
    /// When the run started.
    pub started: Instant,
    /// Bots asked to connect so far.
    pub launched: u32,
}

impl Run {
    /// The first beat of the move clock at or after `now`: beats fall every move interval from
    /// the start of the run, and bursts of moves go out on them.
    pub fn next_beat(&self, now: Instant) -> Instant {
        let every = self.config.move_interval.as_secs_f64().max(1e-3);
        let beats = (now.duration_since(self.started).as_secs_f64() / every).ceil();
        self.started + Duration::from_secs_f64(beats * every)
    }

    /// When a bot whose move was due at `at` and went out at `now` moves next: one interval
    /// after `at`, keeping the cadence. After a stall that let that moment pass too, bursts
    /// rejoin the beat after `now` and spread bots wait an interval from `now`: a stalled bot
    /// sends no catch-up volley, which would load the server beyond the run's rate.
    pub fn next_move(&self, at: Instant, now: Instant) -> Instant {
        let next = at + self.config.move_interval;
        match (next > now, self.config.move_pattern) {
            (true, _) => next,
            (false, MovePattern::Burst) => self.next_beat(now + Duration::from_millis(1)),
            (false, MovePattern::Spread) => now + self.config.move_interval,
        }
    }
}

/// The report, once the run is done.
#[derive(Resource, Debug, Clone)]
pub struct FinalReport(pub Report);

/// Runs the bots of `config`.
pub struct BotPlugin {
    /// How the bots behave.
    pub config: BotConfig,
}

impl Plugin for BotPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(Run { config: self.config.clone(), started: Instant::now(), launched: 0 })
            .insert_resource(Phase::Running)
            .init_resource::<Metrics>()
            .add_systems(
                Update,
                (launch, track_connections, on_lists, on_news, on_chat, expire_echoes, send_moves, advance_phase)
                    .chain(),
            )
            .add_systems(Last, progress);
    }
}

/// Where and how the bots connect ([`BotConfig::endpoint`]); without it, `--addr` over
/// `--transport`.
#[derive(Resource, Debug, Clone)]
pub struct Endpoint {
    /// The server's address.
    pub addr: SocketAddr,
    /// The transport, and TLS for `wss://`.
    pub options: ConnectOptions,
}

/// Connects bots at the ramp rate.
fn launch(
    mut run: ResMut<Run>,
    phase: Res<Phase>,
    endpoint: Option<Res<Endpoint>>,
    mut connector: Connector,
    mut commands: Commands,
) {
    if *phase != Phase::Running {
        return;
    }
    let total = run.config.bots;
    let due = match run.config.ramp_rate {
        0 => total,
        rate => ((run.started.elapsed().as_secs_f64() * f64::from(rate)) as u32 + 1).min(total),
    };
    while run.launched < due {
        let entity = match &endpoint {
            Some(endpoint) => connector.connect_with(endpoint.addr, endpoint.options.clone()),
            None => connector.connect_over(run.config.addr, run.config.transport.net()),
        };
        commands.entity(entity).insert(Bot::new(run.launched, run.config.seed));
        run.launched += 1;
    }
}

fn track_connections(
    mut connected: MessageReader<Connected>,
    mut failed: MessageReader<ConnectFailed>,
    mut gone: MessageReader<Disconnected>,
    bots: Query<&Bot>,
    phase: Res<Phase>,
    mut metrics: ResMut<Metrics>,
) {
    for _ in connected.read() {
        metrics.connected += 1;
        metrics.connected_now += 1;
    }
    for f in failed.read() {
        metrics.connect_failures += 1;
        if metrics.connect_failures <= 3 {
            tracing::warn!(addr = %f.addr, error = %f.error, "a bot could not connect");
        }
    }
    for d in gone.read() {
        metrics.connected_now = metrics.connected_now.saturating_sub(1);
        if *phase != Phase::Done {
            *metrics.disconnects.entry(d.reason.kind().as_str()).or_default() += 1;
            let index = bots.get(d.entity).map_or(u32::MAX, |b| b.index);
            tracing::warn!(bot = index, reason = %d.reason, "a bot was disconnected");
        }
    }
}

fn record(metrics: &mut Metrics, bot: u32, violations: Vec<Violation>) {
    for v in violations {
        metrics.violation(bot, v);
    }
}

// Each packet type has its own message. Lists come first (before the own enter); enters,
// moves and leaves are merged back into the server's order by `on_news`.

fn on_lists(
    mut lists: MessageReader<ClientReceived<S_PlayerList>>,
    mut bots: Query<&mut Bot>,
    mut metrics: ResMut<Metrics>,
) {
    for ClientReceived { from, packet, .. } in lists.read() {
        let Ok(mut bot) = bots.get_mut(*from) else { continue };
        let players = packet.players.iter().map(|p| (p.is_self, p.player_id, [p.pos_x, p.pos_y, p.pos_z]));
        let found = bot.view.on_list(players);
        record(&mut metrics, bot.index, found);
    }
}

/// What the server said about a player, for [`on_news`].
enum News {
    Leave(i32),
    Enter(i32, Pos),
    Move(i32, Pos),
}

/// Enters, moves and leaves, handled in the order the server sent them: each packet type
/// arrives as its own message, so they are merged back by their place in their connection's
/// stream (`ClientReceived::seq`). Handled type by type instead, a player that left a view and came
/// back within one bot frame would read as entered twice, and one that entered and left would
/// read as left without having entered. Only the connections that got an enter or a leave this
/// frame need the merge: the moves of the others (nearly all of them) are already in order, and
/// are handled as they come, without sorting a frame's two million packets a second.
#[allow(clippy::too_many_arguments)]
fn on_news(
    mut enters: MessageReader<ClientReceived<S_BroadcastEnterGame>>,
    mut moves: MessageReader<ClientReceived<S_BroadcastMove>>,
    mut leaves: MessageReader<ClientReceived<S_BroadcastLeaveGame>>,
    mut bots: Query<&mut Bot>,
    mut metrics: ResMut<Metrics>,
    run: Res<Run>,
    mut news: Local<Vec<(Entity, u64, Instant, News)>>,
    mut mixed: Local<FxHashSet<Entity>>,
) {
    news.clear();
    news.extend(leaves.read().map(|r| (r.from, r.seq, r.at, News::Leave(r.packet.player_id))));
    news.extend(enters.read().map(|r| {
        let p = &r.packet;
        (r.from, r.seq, r.at, News::Enter(p.player_id, [p.pos_x, p.pos_y, p.pos_z]))
    }));
    mixed.clear();
    mixed.extend(news.iter().map(|(from, ..)| *from));
    for r in moves.read() {
        let p = &r.packet;
        let item = News::Move(p.player_id, [p.pos_x, p.pos_y, p.pos_z]);
        if mixed.contains(&r.from) {
            news.push((r.from, r.seq, r.at, item));
        } else if let Ok(mut bot) = bots.get_mut(r.from) {
            handle(&mut bot, r.at, item, &mut metrics, &run);
        }
    }
    news.sort_unstable_by_key(|(from, seq, ..)| (*from, *seq));
    for (from, _, at, item) in news.drain(..) {
        if let Ok(mut bot) = bots.get_mut(from) {
            handle(&mut bot, at, item, &mut metrics, &run);
        }
    }
}

fn handle(bot: &mut Bot, at: Instant, item: News, metrics: &mut Metrics, run: &Run) {
    match item {
        News::Leave(id) => {
            let found = bot.view.on_leave(id);
            record(metrics, bot.index, found);
        }
        News::Enter(id, pos) => on_enter(bot, id, pos, metrics, run),
        News::Move(id, pos) => on_move(bot, id, pos, at, metrics),
    }
}

fn on_enter(bot: &mut Bot, id: i32, pos: Pos, metrics: &mut Metrics, run: &Run) {
    let was_entered = bot.view.entered();
    let found = bot.view.on_enter(id, pos);
    record(metrics, bot.index, found);
    if !was_entered && bot.view.entered() {
        metrics.entered += 1;
        // Bursts: every bot moves at the run's next beat. Spread: the first move falls
        // somewhere in the next interval, so the bots do not move at once.
        let every = run.config.move_interval;
        bot.next_move = Some(match run.config.move_pattern {
            MovePattern::Burst => run.next_beat(Instant::now()),
            MovePattern::Spread => Instant::now() + every.mul_f64(bot.rng.random_range(0.0..1.0)),
        });
        bot.next_chat =
            run.config.chat_interval.map(|every| Instant::now() + every.mul_f64(bot.rng.random_range(0.0..1.0)));
        if metrics.entered == run.config.bots {
            metrics.all_entered_at = Some(Instant::now());
            let secs = run.started.elapsed().as_secs_f64();
            tracing::info!("all {} bots entered in {secs:.2} s", run.config.bots);
            if run.config.events {
                println!("EVENT entered_all {secs:.4}");
            }
        }
    }
}

/// A move: another player's, or the bot's own echo. Round trips end when the echo's bytes were
/// read from the socket (`at`), not when this frame got to them: the bots' own processing is
/// not the server's latency.
fn on_move(bot: &mut Bot, id: i32, pos: Pos, at: Instant, metrics: &mut Metrics) {
    if Some(id) != bot.view.self_id() {
        let found = bot.view.on_move(id, pos);
        record(metrics, bot.index, found);
        return;
    }
    // Its own echo: the oldest pending move at that position. Older ones were overtaken
    // within one tick and will never be echoed.
    match bot.pending.iter().position(|(p, _)| *p == pos) {
        Some(i) => {
            let (_, sent) = bot.pending[i];
            metrics.round_trip(at.saturating_duration_since(sent));
            metrics.echo_lost += i as u64;
            bot.pending.drain(..=i);
        }
        None if bot.recent.contains(&pos) => {}
        None => metrics.violation(bot.index, Violation::WrongEcho { got: pos }),
    }
}

/// The player id of the server's own chat lines (players count from 1).
const SERVER_PLAYER_ID: i32 = 0;

/// Chat must come from a player in the room, or be the server's notice (player 0: a line of this
/// bot's was dropped by the server's chat limits), which is counted.
fn on_chat(mut chats: MessageReader<ClientReceived<S_Chat>>, bots: Query<&Bot>, mut metrics: ResMut<Metrics>) {
    for ClientReceived { from, packet, .. } in chats.read() {
        let Ok(bot) = bots.get(*from) else { continue };
        if packet.player_id == SERVER_PLAYER_ID {
            metrics.chat_notices += 1;
            continue;
        }
        let known = Some(packet.player_id) == bot.view.self_id() || bot.view.others().contains_key(&packet.player_id);
        if !known {
            metrics.violation(bot.index, format!("chat from player {}, who is not in the room", packet.player_id));
        }
    }
}

/// Counts own moves not echoed within the timeout as lost.
fn expire_echoes(mut bots: Query<&mut Bot>, run: Res<Run>, mut metrics: ResMut<Metrics>) {
    let now = Instant::now();
    let timeout = run.config.echo_timeout;
    for mut bot in &mut bots {
        while bot.pending.front().is_some_and(|(_, sent)| now.duration_since(*sent) > timeout) {
            bot.pending.pop_front();
            metrics.echo_lost += 1;
        }
    }
}

/// Sends each entered bot's moves (and chat) when due.
fn send_moves(
    mut bots: Query<(Entity, &mut Bot)>,
    run: Res<Run>,
    phase: Res<Phase>,
    mut outbox: ClientOutbox,
    mut metrics: ResMut<Metrics>,
) {
    if *phase != Phase::Running || run.config.idle {
        return;
    }
    let now = Instant::now();
    for (entity, mut bot) in &mut bots {
        let bot = &mut *bot;
        if let Some(at) = bot.next_move
            && at <= now
        {
            let pos = if run.config.walk { bot.walk(run.config.walk_speed, run.config.world_size) } else { bot.jump() };
            if outbox.is_open(entity) {
                outbox.send(entity, &C_Move { pos_x: pos[0], pos_y: pos[1], pos_z: pos[2] });
                bot.pending.push_back((pos, now));
                if bot.recent.len() == RECENT_MOVES {
                    bot.recent.pop_front();
                }
                bot.recent.push_back(pos);
                bot.last_sent = Some(pos);
                metrics.moves_sent += 1;
            }
            bot.next_move = Some(run.next_move(at, now));
        }
        if let (Some(at), Some(every)) = (bot.next_chat, run.config.chat_interval)
            && at <= now
        {
            let line = format!("bot {} says hi 안녕 #{}", bot.index, metrics.chat_sent);
            if outbox.is_open(entity) {
                outbox.send(entity, &C_Chat { chat: line });
                metrics.chat_sent += 1;
            }
            bot.next_chat = Some(at + every);
        }
    }
}

/// Stops the moves at the end of the run, waits for the last echoes, checks every bot's view
/// and ends the app with the report.
fn advance_phase(
    mut phase: ResMut<Phase>,
    run: Res<Run>,
    bots: Query<&Bot>,
    metrics: Res<Metrics>,
    net: Res<NetStats>,
    mut commands: Commands,
    mut exit: MessageWriter<AppExit>,
) {
    let now = Instant::now();
    match *phase {
        Phase::Running => {
            if now.duration_since(run.started) >= run.config.duration {
                *phase = Phase::Settling { since: now, last_packet: now, packets: net.packets_in };
                if run.config.events {
                    println!("EVENT stopped {:.4}", run.started.elapsed().as_secs_f64());
                }
            }
        }
        Phase::Settling { since, last_packet, packets } => {
            if net.packets_in != packets {
                *phase = Phase::Settling { since, last_packet: now, packets: net.packets_in };
                return;
            }
            // Every bot reads its socket on its own time: a bot may have its last echo while
            // another has not read the same tick's broadcast yet. Check once the traffic stopped.
            let waiting = bots.iter().any(|b| !b.pending.is_empty()) || now.duration_since(last_packet) < QUIET;
            if waiting && now.duration_since(since) <= run.config.echo_timeout + QUIET {
                return;
            }
            metrics.finish_progress();
            let entered = || bots.iter().filter(|b| b.view.entered()).map(|b| (&b.view, b.position()));
            let mismatches = final_state_mismatches(entered());
            let config = &run.config;
            let r = config.view_radius;
            let wrong_views = if r > 0.0 { view_mismatches(entered(), r, config.view_margin.of(r)) } else { 0 };
            let report = Report::new(&run.config, run.started, &metrics, net.packets_in, mismatches, wrong_views);
            commands.insert_resource(FinalReport(report.clone()));
            *phase = Phase::Done;
            exit.write(if report.clean() { AppExit::Success } else { AppExit::from_code(1) });
        }
        Phase::Done => {}
    }
}

fn progress(mut metrics: ResMut<Metrics>, run: Res<Run>, net: Res<NetStats>, phase: Res<Phase>) {
    if run.config.quiet || *phase == Phase::Done {
        return;
    }
    metrics.progress(run.config.bots, net.packets_in);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn run(move_pattern: MovePattern) -> Run {
        let config = BotConfig { move_interval: ms(100), move_pattern, ..BotConfig::default() };
        Run { config, started: Instant::now(), launched: 0 }
    }

    #[test]
    fn beats_fall_every_interval_from_the_start() {
        let run = run(MovePattern::Burst);
        let t0 = run.started;
        assert_eq!(run.next_beat(t0), t0);
        assert_eq!(run.next_beat(t0 + ms(1)), t0 + ms(100));
        assert_eq!(run.next_beat(t0 + ms(250)), t0 + ms(300));
        assert_eq!(run.next_beat(t0 + ms(1001)), t0 + ms(1100));
    }

    #[test]
    fn a_bot_on_time_keeps_the_cadence() {
        for pattern in [MovePattern::Burst, MovePattern::Spread] {
            let run = run(pattern);
            let t0 = run.started;
            // Sent late within the interval: the next move is still one interval after the due one.
            assert_eq!(run.next_move(t0 + ms(130), t0 + ms(170)), t0 + ms(230), "{pattern:?}");
        }
    }

    #[test]
    fn a_stalled_bot_skips_the_moves_it_missed() {
        let burst = run(MovePattern::Burst);
        let t0 = burst.started;
        // Due at 100 ms, sent at 350 ms: the beats at 200 and 300 ms are skipped, not sent at once.
        assert_eq!(burst.next_move(t0 + ms(100), t0 + ms(350)), t0 + ms(400));
        // Sent exactly when the next beat falls: that beat is this move, the next is one later.
        assert_eq!(burst.next_move(t0 + ms(100), t0 + ms(200)), t0 + ms(300));
        let spread = run(MovePattern::Spread);
        let t0 = spread.started;
        assert_eq!(spread.next_move(t0 + ms(130), t0 + ms(350)), t0 + ms(450));
    }

    #[test]
    fn a_walking_bot_steps_at_most_its_speed_from_its_spawn_point_and_stays_inside() {
        let mut bot = Bot::new(3, 9);
        assert!(bot.view.on_list([(true, 1, [48.0, 0.0, -49.0])]).is_empty());
        let mut at = bot.position();
        assert_eq!(at, [48.0, 0.0, -49.0], "it starts where its list put it");
        let mut headings = Vec::new();
        for _ in 0..5000 {
            let next = bot.walk(5.0, 100.0);
            let step = ((next[0] - at[0]).powi(2) + (next[2] - at[2]).powi(2)).sqrt();
            assert!(step <= 5.0 + 1e-4, "a step of {step}");
            assert!(next[0].abs() <= 50.0 && next[2].abs() <= 50.0 && next[1] == 0.0, "{next:?}");
            bot.last_sent = Some(next);
            headings.push(bot.heading);
            at = next;
        }
        // The direction changes now and then, not every move.
        let turns = headings.windows(2).filter(|w| w[0] != w[1]).count();
        assert!((500..2500).contains(&turns), "{turns} turns in 5000 moves");
    }
}
