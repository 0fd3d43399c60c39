//! Interest management: with a view radius set, each player is sent only the players near it.
//!
//! The course sends every move to everyone in the room (weakness 10 in `PROTOCOL.md`): the
//! traffic grows with the square of the room. With `[world] view_radius` set, each player has a
//! [`View`] (the other players it sees) and each room a [`Grid`] of cells at least
//! `radius + margin` wide, so the 3×3 block of cells around a player holds everyone who may be in
//! its view. Each tick only the players who moved are re-examined, against the players of their
//! block: the cost grows with movers × local density, not with the square of the room.
//!
//! The rule ([`ViewRule`]), in the horizontal plane (x, z): a player comes into view within the
//! radius and leaves it beyond radius + margin; in between nothing changes, so a player walking
//! along the edge does not flicker in and out. Views are symmetric. What a client is told:
//!
//! - entering: its `S_PlayerList` holds itself and the players in view, and they are told it
//!   entered (`S_BroadcastEnterGame` at its spawn point);
//! - each tick, per observer and in this order: `S_BroadcastLeaveGame` for each player that left
//!   its view, `S_BroadcastEnterGame` (at the current position) for each that came into it, then
//!   `S_BroadcastMove` for the players in its view that moved (its own echo always);
//! - leaving the world: `S_BroadcastLeaveGame` only to the players who saw it.
//!
//! So a client that spawns an object on enter and destroys it on leave (the course's Unity
//! client) holds exactly the players near it. With the radius at 0 (the default) none of this
//! runs: everyone in a room sees everyone, as in the course.

mod grid;

use std::fmt;
use std::str::FromStr;

use bevy_app::{App, FixedUpdate, Plugin};
use bevy_ecs::prelude::*;
use net_plugin::Outbox;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use shared::{S_BroadcastEnterGame, S_BroadcastLeaveGame, S_BroadcastMove};

pub use grid::{Cell, Grid, ViewRule};

use crate::GameSystems;
use crate::config::WorldConfig;
use crate::room::{InRoom, Player, Position, Room};

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
pub(crate) fn validate(world: &WorldConfig) -> Result<(), String> {
    if !(world.view_radius.is_finite() && world.view_radius >= 0.0) {
        return Err(format!("world.view_radius must be 0 (off) or a positive distance, not {}", world.view_radius));
    }
    let margin = world.view_margin.value();
    if !(margin.is_finite() && margin >= 0.0) {
        return Err(format!("world.view_margin must not be negative, not {}", world.view_margin));
    }
    Ok(())
}

/// The other players a player sees (never itself). Symmetric: B is in A's view exactly when A
/// is in B's. Only present when the view radius is set.
#[derive(Component, Debug, Clone, Default)]
pub struct View(pub(crate) FxHashSet<Entity>);

impl View {
    /// Whether `other` is in view.
    pub fn contains(&self, other: Entity) -> bool {
        self.0.contains(&other)
    }

    /// The players in view, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = Entity> + '_ {
        self.0.iter().copied()
    }

    /// How many players are in view.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nobody is in view.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The grid cell a player is filed under, so a move to another cell can take it out of the old.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridCell(pub Cell);

/// The view rule and every room's grid. A resource only when the view radius is set: its
/// absence means everyone in a room sees everyone.
#[derive(Resource, Debug)]
pub struct Interest {
    /// Who sees whom.
    pub rule: ViewRule,
    /// Each room's players, by cell.
    pub(crate) grids: FxHashMap<Entity, Grid>,
}

impl Interest {
    /// The room's grid, made on first use.
    pub(crate) fn grid(&mut self, room: Entity) -> &mut Grid {
        let cell = self.rule.cell_size();
        self.grids.entry(room).or_insert_with(|| Grid::new(cell))
    }
}

/// Where newcomers appear.
#[derive(Resource, Debug)]
pub struct Spawner {
    spawn: Spawn,
    min: [f32; 3],
    max: [f32; 3],
    rng: SmallRng,
}

impl Spawner {
    /// The next newcomer's position.
    pub fn spawn_point(&mut self) -> Position {
        match self.spawn {
            Spawn::Origin => Position::default(),
            Spawn::Random => Position {
                x: self.rng.random_range(self.min[0]..=self.max[0]),
                y: 0.0_f32.clamp(self.min[1], self.max[1]),
                z: self.rng.random_range(self.min[2]..=self.max[2]),
            },
        }
    }
}

/// Spawn points, and (with a view radius) each player's view kept up to date on the tick.
pub struct InterestPlugin {
    /// The world's settings: `view_radius`, `view_margin`, `spawn` and the bounds.
    pub world: WorldConfig,
}

impl Plugin for InterestPlugin {
    fn build(&self, app: &mut App) {
        let w = &self.world;
        app.insert_resource(Spawner {
            spawn: w.spawn,
            min: w.min,
            max: w.max,
            rng: SmallRng::from_rng(&mut rand::rng()),
        })
        .add_observer(close_grid);
        if w.view_radius > 0.0 {
            let rule = ViewRule { radius: w.view_radius, margin: w.view_margin.of(w.view_radius) };
            app.insert_resource(Interest { rule, grids: FxHashMap::default() })
                .add_systems(FixedUpdate, update_views.in_set(GameSystems::BroadcastMoves));
        }
    }
}

/// A room that closed takes its grid with it.
fn close_grid(removed: On<Remove<Room>>, interest: Option<ResMut<Interest>>) {
    if let Some(mut interest) = interest {
        interest.grids.remove(&removed.event().entity);
    }
}

/// What one tick found, kept between ticks to reuse the allocations.
#[derive(Default)]
struct TickScratch {
    /// Players who moved this tick: (entity, room, position).
    movers: Vec<(Entity, Entity, Position)>,
    /// (observer, who left its view).
    leaves: Vec<(Entity, i32)>,
    /// (observer, who came into its view, where).
    enters: Vec<(Entity, i32, Position)>,
    /// Scratch list of entities.
    others: Vec<Entity>,
}

/// Brings the views of everyone who moved this tick up to date and sends, per observer: leaves,
/// then enters, then moves of the players in its view (its own move always). Each list is sent
/// for every observer before the next begins, so within each client's write of the frame the
/// order holds.
fn update_views(
    players: Query<(Entity, &Player, Ref<Position>, &InRoom), With<GridCell>>,
    mut cells: Query<&mut GridCell>,
    mut views: Query<&mut View>,
    mut interest: ResMut<Interest>,
    mut outbox: Outbox,
    mut scratch: Local<TickScratch>,
) {
    let TickScratch { movers, leaves, enters, others } = &mut *scratch;
    movers.clear();
    leaves.clear();
    enters.clear();
    // Changed since the last tick by a move: a player who just entered has a new position but
    // has not moved (its enter said where it is).
    movers.extend(
        players
            .iter()
            .filter(|(_, _, p, _)| p.is_changed() && p.last_changed() != p.added())
            .map(|(e, _, p, room)| (e, room.0, *p)),
    );
    // File every mover under its new cell first, so the blocks below see everyone where they are.
    for &(entity, room, p) in movers.iter() {
        let Ok(mut cell) = cells.get_mut(entity) else { continue };
        let grid = interest.grid(room);
        let to = grid.cell_of(p.x, p.z);
        if to != cell.0 {
            grid.relocate(entity, cell.0, to);
            cell.0 = to;
        }
    }
    let Interest { rule, grids } = &*interest;
    let flat = |p: &Position| (p.x, p.z);
    for &(entity, room, p) in movers.iter() {
        let (Some(grid), Ok((_, me, _, _))) = (grids.get(&room), players.get(entity)) else { continue };
        // Newcomers to the view: anyone in the block within the radius, not yet seen.
        others.clear();
        others.extend(grid.around(grid.cell_of(p.x, p.z)).filter(|o| *o != entity));
        for &other in others.iter() {
            if views.get(entity).is_ok_and(|v| v.contains(other)) {
                continue;
            }
            let Ok((_, them, their, _)) = players.get(other) else { continue };
            if rule.comes_into_view(ViewRule::distance_squared(flat(&p), flat(&their))) {
                let Ok([mut mine, mut theirs]) = views.get_many_mut([entity, other]) else { continue };
                mine.0.insert(other);
                theirs.0.insert(entity);
                enters.push((entity, them.id, *their));
                enters.push((other, me.id, p));
            }
        }
        // Leavers: anyone in view now beyond radius + margin (possibly outside the block).
        others.clear();
        others.extend(views.get(entity).map(|v| v.iter().collect::<Vec<_>>()).unwrap_or_default());
        for &other in others.iter() {
            let Ok((_, them, their, _)) = players.get(other) else { continue };
            if rule.leaves_view(ViewRule::distance_squared(flat(&p), flat(&their))) {
                let Ok([mut mine, mut theirs]) = views.get_many_mut([entity, other]) else { continue };
                mine.0.remove(&other);
                theirs.0.remove(&entity);
                leaves.push((entity, them.id));
                leaves.push((other, me.id));
            }
        }
    }
    for &(to, player_id) in leaves.iter() {
        outbox.send(to, &S_BroadcastLeaveGame { player_id });
    }
    for &(to, player_id, p) in enters.iter() {
        outbox.send(to, &S_BroadcastEnterGame { player_id, pos_x: p.x, pos_y: p.y, pos_z: p.z });
    }
    for &(entity, _, p) in movers.iter() {
        let (Ok((_, me, _, _)), Ok(view)) = (players.get(entity), views.get(entity)) else { continue };
        let moved = S_BroadcastMove { player_id: me.id, pos_x: p.x, pos_y: p.y, pos_z: p.z };
        outbox.broadcast(view.iter().chain([entity]), &moved);
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
        assert!(validate(&world(0.0, ViewMargin::default())).is_ok());
        assert!(validate(&world(80.0, ViewMargin::Units(0.0))).is_ok());
        assert!(validate(&world(-1.0, ViewMargin::default())).unwrap_err().contains("world.view_radius"));
        assert!(validate(&world(f32::NAN, ViewMargin::default())).is_err());
        assert!(validate(&world(80.0, ViewMargin::Units(-1.0))).unwrap_err().contains("world.view_margin"));
        assert!(validate(&world(80.0, ViewMargin::Percent(f32::INFINITY))).is_err());
    }

    #[test]
    fn random_spawn_points_cover_the_bounds_in_x_and_z_at_height_zero() {
        let mut s = Spawner {
            spawn: Spawn::Random,
            min: [-10.0, -1.0, 100.0],
            max: [10.0, 1.0, 200.0],
            rng: SmallRng::seed_from_u64(7),
        };
        let points: Vec<Position> = (0..2000).map(|_| s.spawn_point()).collect();
        assert!(points.iter().all(|p| (-10.0..=10.0).contains(&p.x) && (100.0..=200.0).contains(&p.z) && p.y == 0.0));
        // Uniform: each half of each axis gets about half the points.
        let left = points.iter().filter(|p| p.x < 0.0).count();
        let near = points.iter().filter(|p| p.z < 150.0).count();
        assert!((800..1200).contains(&left) && (800..1200).contains(&near), "{left} {near}");
        s.spawn = Spawn::Origin;
        assert_eq!(s.spawn_point(), Position::default());
    }
}
