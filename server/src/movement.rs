//! Moves (the course's C_Move handler and its timer-driven flush), on the fixed tick.
//!
//! Moves received since the last tick are applied at the next one, in order, so the last move
//! of a player in a tick wins; then every player who moved this tick is broadcast once, as
//! `S_BroadcastMove` at its newest position, to everyone in its room, mover included (a client
//! times its round trip by its own echo: a tick's moves get one echo, and a move to where the
//! player already stands still gets one; with a view radius, interest management echoes each
//! overtaken move to its mover too, from [`MoveEchoes`]). A room's moves of one tick are encoded once, as one
//! batch, and copied once to each member; the batch goes when its room closes.

use std::collections::HashMap;

use bevy_app::{App, FixedUpdate, Plugin};
use bevy_ecs::prelude::*;
use net_plugin::{DisconnectReason, Outbox, PacketBatch, Received};
use shared::{C_Move, S_BroadcastMove};

use crate::GameSystems;
use crate::config::{OutOfBounds, WorldConfig};
use crate::interest::{Interest, MoveEchoes};
use crate::room::{InRoom, Player, Position, Room};

/// The world's bounds and what happens outside them.
#[derive(Resource, Debug, Clone)]
pub struct WorldBounds(pub WorldConfig);

impl WorldBounds {
    /// Where a move to `p` lands: `p` itself inside the bounds; outside, clamped or refused
    /// (`None`) as configured. A non-finite coordinate is always refused.
    pub fn admit(&self, p: Position) -> Option<Position> {
        if !(p.x.is_finite() && p.y.is_finite() && p.z.is_finite()) {
            return None;
        }
        let (min, max) = (self.0.min, self.0.max);
        let clamped =
            Position { x: p.x.clamp(min[0], max[0]), y: p.y.clamp(min[1], max[1]), z: p.z.clamp(min[2], max[2]) };
        match self.0.out_of_bounds {
            OutOfBounds::Clamp => Some(clamped),
            OutOfBounds::Disconnect if clamped == p => Some(p),
            OutOfBounds::Disconnect => None,
        }
    }
}

/// Applies moves at the fixed tick and broadcasts them.
pub struct MovementPlugin {
    /// The world's bounds.
    pub world: WorldConfig,
}

impl Plugin for MovementPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(WorldBounds(self.world.clone()))
            .configure_sets(FixedUpdate, GameSystems::ApplyMoves.before(GameSystems::BroadcastMoves))
            .add_systems(FixedUpdate, apply_moves.in_set(GameSystems::ApplyMoves))
            // With a view radius, `interest` sends moves by view instead.
            .add_systems(
                FixedUpdate,
                broadcast_moves.in_set(GameSystems::BroadcastMoves).run_if(not(resource_exists::<Interest>)),
            )
            .init_resource::<MoveBatches>()
            .add_observer(close_batch);
    }
}

/// Each room's moves of the tick, encoded once, kept between ticks to reuse the allocations.
/// A room that closes takes its batch with it, so rooms opened and emptied over a long run
/// leave nothing behind.
#[derive(Resource, Debug, Default)]
pub struct MoveBatches(HashMap<Entity, PacketBatch>);

impl MoveBatches {
    /// How many rooms have a batch: at most the rooms open (those whose players moved).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no room has a batch.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A room that closed takes its batch with it.
fn close_batch(removed: On<Remove<Room>>, mut batches: ResMut<MoveBatches>) {
    batches.0.remove(&removed.event().entity);
}

/// Applies every move received since the last tick, in order (the last one of a player wins).
/// Moves from connections that are not players (they left) are ignored; a non-finite
/// coordinate, or one outside the world when configured so, disconnects its sender.
fn apply_moves(
    mut moves: MessageReader<Received<C_Move>>,
    mut players: Query<&mut Position, (With<Player>, With<InRoom>)>,
    bounds: Res<WorldBounds>,
    // With a view radius: every accepted move, so each is echoed (the last one alone is broadcast).
    mut echoes: Option<ResMut<MoveEchoes>>,
    mut outbox: Outbox,
) {
    for Received { from, packet, .. } in moves.read() {
        let Ok(mut position) = players.get_mut(*from) else { continue };
        let wanted = Position { x: packet.pos_x, y: packet.pos_y, z: packet.pos_z };
        match bounds.admit(wanted) {
            // Assigned even when equal, so a tick with a move gets an echo even when the player
            // did not go anywhere; a later move of the tick overwrites this one (with a view
            // radius, `MoveEchoes` keeps the overtaken ones, so each is still echoed).
            Some(p) => {
                *position = p;
                if let Some(echoes) = echoes.as_mut() {
                    echoes.0.push((*from, p));
                }
            }
            None => {
                let why = if wanted.x.is_finite() && wanted.y.is_finite() && wanted.z.is_finite() {
                    format!("a move to ({}, {}, {}) is outside the world", wanted.x, wanted.y, wanted.z)
                } else {
                    format!("a move to a non-finite position ({}, {}, {})", wanted.x, wanted.y, wanted.z)
                };
                outbox.close(*from, DisconnectReason::InvalidInput(why.into()));
            }
        }
    }
}

/// Broadcasts every player who moved this tick to its room, one batch per room.
fn broadcast_moves(
    moved: Query<(&Player, Ref<Position>, &InRoom)>,
    rooms: Query<&Room>,
    mut batches: ResMut<MoveBatches>,
    mut outbox: Outbox,
) {
    let batches = &mut batches.0;
    for (player, position, in_room) in &moved {
        // Changed since the last tick, by a move: a player who just entered has a new
        // position but has not moved (its enter broadcast said where it is).
        if !position.is_changed() || position.last_changed() == position.added() {
            continue;
        }
        let packet = S_BroadcastMove { player_id: player.id, pos_x: position.x, pos_y: position.y, pos_z: position.z };
        batches.entry(in_room.0).or_default().push(&packet);
    }
    for (room, batch) in batches.iter_mut().filter(|(_, b)| !b.is_empty()) {
        if let Ok(room) = rooms.get(*room) {
            outbox.send_batch(room.members().iter().copied(), batch);
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(rule: OutOfBounds) -> WorldBounds {
        WorldBounds(WorldConfig {
            min: [-10.0, 0.0, -10.0],
            max: [10.0, 5.0, 10.0],
            out_of_bounds: rule,
            ..WorldConfig::default()
        })
    }

    #[test]
    fn inside_the_bounds_a_move_is_taken_as_is() {
        let p = Position { x: 1.0, y: 2.0, z: -3.0 };
        assert_eq!(bounds(OutOfBounds::Clamp).admit(p), Some(p));
        assert_eq!(bounds(OutOfBounds::Disconnect).admit(p), Some(p));
    }

    #[test]
    fn outside_it_is_clamped_or_refused() {
        let p = Position { x: 50.0, y: -1.0, z: -3.0 };
        assert_eq!(bounds(OutOfBounds::Clamp).admit(p), Some(Position { x: 10.0, y: 0.0, z: -3.0 }));
        assert_eq!(bounds(OutOfBounds::Disconnect).admit(p), None);
    }

    #[test]
    fn non_finite_coordinates_are_always_refused() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            assert_eq!(bounds(OutOfBounds::Clamp).admit(Position { x: 0.0, y: bad, z: 0.0 }), None);
        }
    }
}
