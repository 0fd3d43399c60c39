//! Chat (the course's earlier stage): a line from a player goes to everyone in its room,
//! sender included, as `S_Chat { playerId, text }`.
//!
//! A line is sent once per member, so chat is the one thing a client can make the server
//! multiply: the limits here bound it where it starts. Each player has a rate of lines
//! ([`ChatConfig::player_rate`]) and each room a budget of relayed bytes per second
//! ([`ChatConfig::room_bytes_per_second`]). A line beyond either is dropped, counted in
//! [`ChatCounts`] by [`ChatDrop`] reason, and its sender told by an `S_Chat` from player 0 (no
//! player has id 0), at most once a second; nobody is disconnected for it. Only a line no client
//! of the course would send (longer than `max_chars`) disconnects its sender, as invalid input.

use std::time::{Duration, Instant};

use bevy_app::{App, Plugin, Update};
use bevy_ecs::prelude::*;
use net_plugin::{DisconnectReason, Outbox, Received};
use shared::{C_Chat, S_Chat};

use crate::GameSystems;
use crate::components::{InRoom, Player, Room};
use crate::config::ChatConfig;
use crate::interest::View;

/// The chat settings in force.
#[derive(Resource, Debug, Clone)]
pub struct ChatSettings(pub ChatConfig);

/// Relays chat within rooms, within the limits of its settings.
pub struct ChatPlugin {
    /// The settings.
    pub config: ChatConfig,
}

impl Plugin for ChatPlugin {
    fn build(&self, app: &mut App) {
        // A frame's pings are answered after its chat: a pong tells its sender that every line
        // it sent before the ping has been handled (relayed, or dropped and told).
        app.insert_resource(ChatSettings(self.config.clone()))
            .init_resource::<ChatCounts>()
            .configure_sets(Update, GameSystems::Chat.before(GameSystems::Ping))
            .add_observer(give_allowance)
            .add_observer(give_budget)
            .add_systems(Update, relay_chat.in_set(GameSystems::Chat));
    }
}

/// Why a chat line was dropped instead of relayed. Its sender stays connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChatDrop {
    /// The sender went beyond its own rate of lines ([`ChatConfig::player_rate`]).
    PlayerRate,
    /// The room had relayed its budget of bytes ([`ChatConfig::room_bytes_per_second`]).
    RoomBudget,
}

impl ChatDrop {
    /// Every reason, in declaration order.
    pub const ALL: [ChatDrop; 2] = [ChatDrop::PlayerRate, ChatDrop::RoomBudget];

    /// A stable snake_case label, for logs and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            ChatDrop::PlayerRate => "player_rate",
            ChatDrop::RoomBudget => "room_budget",
        }
    }

    /// What the sender is told.
    fn notice(self) -> &'static str {
        match self {
            ChatDrop::PlayerRate => "[server] chat line dropped: you are sending lines too fast",
            ChatDrop::RoomBudget => "[server] chat line dropped: the room's chat is too busy, try again shortly",
        }
    }
}

/// Chat lines relayed, and dropped by reason (their senders stay connected), since start: a
/// resource the statistics read (`crate::stats`).
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChatCounts {
    /// Lines relayed to their room.
    pub relayed: u64,
    /// Lines dropped, indexed by `ChatDrop as usize`.
    pub dropped: [u64; ChatDrop::ALL.len()],
}

impl ChatCounts {
    /// Lines dropped for this reason.
    pub fn dropped(&self, reason: ChatDrop) -> u64 {
        self.dropped[reason as usize]
    }

    /// Lines dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }

    /// `(label, count)` for every reason, for logs and JSON.
    pub fn dropped_by_label(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        ChatDrop::ALL.iter().map(|r| (r.as_str(), self.dropped(*r)))
    }
}

/// The player id of the server's own chat lines: players count from 1.
pub const SERVER_PLAYER_ID: i32 = 0;

/// A line from the server itself (player [`SERVER_PLAYER_ID`]): what the course's clients show
/// as chat, so every client can tell its player what the server has to say.
pub fn server_notice(text: impl Into<String>) -> S_Chat {
    S_Chat { player_id: SERVER_PLAYER_ID, chat: text.into() }
}

/// The least time between two notices to one sender, so that a flood of dropped lines does not
/// turn into a flood of notices.
pub const NOTICE_PERIOD: Duration = Duration::from_secs(1);

/// A token bucket over real time: `rate` tokens a second, at most `capacity` held.
#[derive(Debug, Clone)]
struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    fn new(rate: f64, capacity: f64, now: Instant) -> Self {
        Self { rate, capacity, tokens: capacity, last: now }
    }

    /// Takes `cost` tokens if there are that many. A cost above the capacity could never be
    /// paid, so it is let through when the bucket is full, leaving it in debt: over any span
    /// `t`, what is taken stays within `rate × t` plus the larger of the capacity and one cost.
    fn try_take(&mut self, cost: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.last = self.last.max(now);
        if self.tokens >= cost || self.tokens >= self.capacity {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

/// A player's chat state: its rate of lines, and when it was last told a line was dropped.
#[derive(Component, Debug, Clone)]
pub struct ChatAllowance {
    lines: Option<TokenBucket>,
    last_notice: Option<Instant>,
}

impl ChatAllowance {
    /// Whether the player may send a line now (taking it from its allowance if so).
    fn take_line(&mut self, now: Instant) -> bool {
        self.lines.as_mut().is_none_or(|bucket| bucket.try_take(1.0, now))
    }

    /// Whether a notice may go to the player now (recording it if so).
    fn notice_due(&mut self, now: Instant) -> bool {
        let due = self.last_notice.is_none_or(|at| now.saturating_duration_since(at) >= NOTICE_PERIOD);
        if due {
            self.last_notice = Some(now);
        }
        due
    }
}

/// A room's budget of relayed chat bytes.
#[derive(Component, Debug, Clone)]
pub struct RoomChatBudget(TokenBucket);

/// Every player gets its allowance as it becomes one, full.
fn give_allowance(added: On<Add<Player>>, settings: Res<ChatSettings>, mut commands: Commands) {
    let now = Instant::now();
    let lines = settings.0.player_rate.map(|r| TokenBucket::new(f64::from(r.per_second), f64::from(r.burst), now));
    commands.entity(added.event().entity).insert(ChatAllowance { lines, last_notice: None });
}

/// Every room gets its budget as it opens, full: a second's worth.
fn give_budget(added: On<Add<Room>>, settings: Res<ChatSettings>, mut commands: Commands) {
    if let Some(rate) = settings.0.room_bytes_per_second {
        let rate = rate as f64;
        commands.entity(added.event().entity).insert(RoomChatBudget(TokenBucket::new(rate, rate, Instant::now())));
    }
}

/// Relays each line to the sender's room (with a view radius: to the players in the sender's
/// view, local chat), or drops it (counted, the sender told) when the sender or the room is over
/// its limit. Lines from connections that are not players (they left) are dropped.
fn relay_chat(
    mut chats: MessageReader<Received<C_Chat>>,
    mut players: Query<(&Player, &InRoom, &mut ChatAllowance, Option<&View>)>,
    mut rooms: Query<(&Room, Option<&mut RoomChatBudget>)>,
    settings: Res<ChatSettings>,
    mut counts: ResMut<ChatCounts>,
    mut outbox: Outbox,
) {
    let now = Instant::now();
    let max_chars = settings.0.max_chars;
    for Received { from, packet, .. } in chats.read() {
        let Ok((player, in_room, mut allowance, view)) = players.get_mut(*from) else { continue };
        let chars = packet.chat.chars().count();
        if chars > max_chars {
            let why = format!("a chat line of {chars} characters, above the limit of {max_chars}");
            outbox.close(*from, DisconnectReason::InvalidInput(why.into()));
            continue;
        }
        let Ok((room, budget)) = rooms.get_mut(in_room.0) else { continue };
        let line = S_Chat { player_id: player.id, chat: packet.chat.clone() };
        // A line as long as the largest C_Chat a client may send is 4 bytes too long for S_Chat:
        // the sender's fault, not a reason to drop the line silently.
        let bytes = match shared::wire_len(&line) {
            Ok(bytes) => bytes,
            Err(e) => {
                outbox.close(*from, DisconnectReason::InvalidInput(e.to_string().into()));
                continue;
            }
        };
        // What the line costs the room: its bytes times its recipients.
        let recipients = view.map_or(room.members().len(), |v| v.len() + 1);
        let fan_out = (bytes * recipients) as f64;
        let dropped = if !allowance.take_line(now) {
            Some(ChatDrop::PlayerRate)
        } else if budget.is_some_and(|mut budget| !budget.0.try_take(fan_out, now)) {
            Some(ChatDrop::RoomBudget)
        } else {
            None
        };
        match dropped {
            None => {
                match view {
                    Some(view) => outbox.broadcast(view.iter().chain([*from]), &line),
                    None => outbox.broadcast(room.members().iter().copied(), &line),
                }
                counts.relayed += 1;
            }
            Some(reason) => {
                counts.dropped[reason as usize] += 1;
                if allowance.notice_due(now) {
                    outbox.send(*from, &server_notice(reason.notice()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_bucket_gives_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(5.0, 10.0, t0);
        assert_eq!((0..15).filter(|_| bucket.try_take(1.0, t0)).count(), 10, "the burst");
        assert!(!bucket.try_take(1.0, t0 + ms(100)), "half a token after 100 ms");
        assert!(bucket.try_take(1.0, t0 + ms(200)), "one after 200 ms");
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..15).filter(|_| bucket.try_take(1.0, later)).count(), 10);
    }

    #[test]
    fn a_cost_above_the_capacity_passes_only_when_full_and_is_paid_back() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(100.0, 100.0, t0);
        assert!(bucket.try_take(250.0, t0), "full: let through, 150 in debt");
        assert!(!bucket.try_take(1.0, t0 + ms(1000)), "after a second the debt is not paid back");
        assert!(!bucket.try_take(250.0, t0 + ms(2000)), "nor a big one before the bucket is full again");
        assert!(bucket.try_take(250.0, t0 + ms(2500)), "full again 2.5 s later");
    }

    #[test]
    fn a_clock_that_goes_back_gives_nothing() {
        let t0 = Instant::now() + Duration::from_secs(1);
        let mut bucket = TokenBucket::new(1.0, 1.0, t0);
        assert!(bucket.try_take(1.0, t0));
        assert!(!bucket.try_take(1.0, t0 - ms(500)));
        assert!(!bucket.try_take(1.0, t0 + ms(500)), "half a second after the latest time seen");
        assert!(bucket.try_take(1.0, t0 + ms(1000)));
    }

    #[test]
    fn notices_go_at_most_once_a_period() {
        let t0 = Instant::now();
        let mut allowance = ChatAllowance { lines: None, last_notice: None };
        assert!(allowance.notice_due(t0));
        assert!(!allowance.notice_due(t0 + ms(999)));
        assert!(allowance.notice_due(t0 + NOTICE_PERIOD));
        assert!(allowance.take_line(t0), "no rate: every line may go");
    }
}
