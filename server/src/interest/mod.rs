//! Interest management: with a view radius set, each player is sent only the players near it.
//!
//! The course sends every move to everyone in the room (weakness 10 in `PROTOCOL.md`): the
//! traffic grows with the square of the room. With `[world] view_radius` set, each player has a
//! [`View`] (the other players it sees) and each room a [`Grid`] of cells half the radius wide,
//! so the cells within the radius of a player (5×5 at most) hold everyone who may come into its
//! view. Each tick only the players who moved are re-examined, against the players of those
//! cells (who may come into view) and of their view (who may leave it): the cost grows with
//! movers × local density, not with the square of the room.
//!
//! The hot path is flat: views are sorted vectors, what the passes need of each player (its
//! position, id, last move) is one table by entity index, who is already in a mover's view is a
//! mark in another, and inside the world's bounds a populated room's grid cells are a table too. Nothing
//! is hashed per move.
//!
//! The rule ([`ViewRule`]), in the horizontal plane (x, z): a player comes into view within the
//! radius and leaves it beyond radius + margin; in between nothing changes, so a player walking
//! along the edge does not flicker in and out. Views are symmetric. What a client is told:
//!
//! - entering: its `S_PlayerList` holds itself and the players in view, and they are told it
//!   entered (`S_BroadcastEnterGame` at its spawn point);
//! - each tick, per observer and in this order: `S_BroadcastLeaveGame` for each player that left
//!   its view, `S_BroadcastEnterGame` (at the current position) for each that came into it, then
//!   `S_BroadcastMove` for the players in its view that moved (its own echo always); the news
//!   about others may wait up to `[world] view_delay` to leave with the player's next answer
//!   (its echo, say), in order, so a client is written once per answer rather than once per frame;
//!   longer while the server is overloaded, up to `[world] overload_news_max` (see
//!   [`crate::overload`]); every accepted move is echoed to its sender all the same;
//! - leaving the world: `S_BroadcastLeaveGame` only to the players who saw it.
//!
//! So a client that spawns an object on enter and destroys it on leave (the course's Unity
//! client) holds exactly the players near it. With the radius at 0 (the default) none of this
//! runs: everyone in a room sees everyone, as in the course.

mod grid;

use bevy_app::{App, FixedUpdate, Plugin};
use bevy_ecs::prelude::*;
use bevy_time::{Fixed, Time};
use net_plugin::{Outbox, PacketBatch};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rustc_hash::FxHashMap;
use shared::{S_BroadcastEnterGame, S_BroadcastLeaveGame, S_BroadcastMove};

pub use grid::{Cell, Grid, ViewRule};

use crate::GameSystems;
use crate::components::{InRoom, Player, Position, Room};
use crate::config::{Spawn, WorldConfig};
use crate::overload::NewsPace;

/// The other players a player sees (never itself). Symmetric: B is in A's view exactly when A
/// is in B's. Only present when the view radius is set.
///
/// A sorted vector, not a hash set: a view holds tens of players, is read far more often than
/// it changes (each news gathering reads the whole of it, each move checks who is already in
/// it), and a short contiguous run of entities is cheaper to walk and to search than a table
/// that hashes every key.
#[derive(Component, Debug, Clone, Default, PartialEq, Eq)]
pub struct View(Vec<Entity>);

impl View {
    /// Whether `other` is in view.
    pub fn contains(&self, other: Entity) -> bool {
        self.0.binary_search(&other).is_ok()
    }

    /// The players in view, in entity order.
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

    /// Puts `other` in view; whether it was not already.
    pub(crate) fn insert(&mut self, other: Entity) -> bool {
        match self.0.binary_search(&other) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, other);
                true
            }
        }
    }

    /// Takes `other` out of view; whether it was in it.
    pub(crate) fn remove(&mut self, other: Entity) -> bool {
        match self.0.binary_search(&other) {
            Ok(at) => {
                self.0.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    /// Empties the view, handing back who was in it.
    pub(crate) fn take(&mut self) -> Vec<Entity> {
        std::mem::take(&mut self.0)
    }
}

impl FromIterator<Entity> for View {
    fn from_iter<I: IntoIterator<Item = Entity>>(iter: I) -> Self {
        let mut seen: Vec<Entity> = iter.into_iter().collect();
        seen.sort_unstable();
        seen.dedup();
        Self(seen)
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
    /// How long view traffic (others' moves, enters, leaves) may wait for an observer's next
    /// write: `[world] view_delay`.
    pub delay: std::time::Duration,
    /// Each room's players, by cell.
    pub(crate) grids: FxHashMap<Entity, Grid>,
    /// By entity index, every player in a grid as the tick's passes need it, without asking
    /// the ECS for each member of each view: at 10,000 players that is two million look-ups a
    /// second, scattered in memory.
    pub(crate) known: Vec<Known>,
    /// Counts the runs of [`refresh_views`], for `Known::moved` and `Known::told`.
    pub(crate) tick: u32,
    /// The world's horizontal bounds (x and z, min and max), over which each room's grid keeps
    /// its cells in a flat table.
    bounds: Option<((f32, f32), (f32, f32))>,
}

/// A player as [`Interest`] keeps it, by entity index.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Known {
    /// Where it is.
    pub pos: Position,
    /// Its player id.
    pub id: i32,
    /// The tick it last moved (0: not since it entered).
    pub moved: u32,
    /// The tick its news about others was last gathered for it: the moves since then are news.
    pub told: u32,
}

impl Interest {
    /// A view rule and no grids yet; view traffic sent in the tick it happens.
    pub fn new(rule: ViewRule) -> Self {
        Self {
            rule,
            delay: std::time::Duration::ZERO,
            grids: FxHashMap::default(),
            known: Vec::new(),
            tick: 0,
            bounds: None,
        }
    }

    /// The same, with the world's horizontal bounds (x and z) that players stay within, so
    /// each room's grid looks its cells up in a flat table there (see [`Grid::with_bounds`]).
    pub fn with_bounds(self, min: (f32, f32), max: (f32, f32)) -> Self {
        Self { bounds: Some((min, max)), ..self }
    }

    /// The same, with view traffic allowed to wait `delay` for an observer's next write.
    pub fn with_delay(self, delay: std::time::Duration) -> Self {
        Self { delay, ..self }
    }

    /// Files a newcomer at `at` in its room's grid and returns its cell and the players it
    /// sees (id and entity, in id order: the order they entered). `who` gives another player's
    /// id.
    pub(crate) fn enter(
        &mut self,
        room: Entity,
        newcomer: Entity,
        at: Position,
        who: impl Fn(Entity) -> Option<i32>,
    ) -> (Cell, Vec<(i32, Entity)>) {
        let rule = self.rule;
        let grid = self.grid(room);
        let mut near: Vec<(i32, Entity)> = grid
            .within(at.x, at.z, rule.radius)
            .filter(|&(_, x, z)| rule.comes_into_view(ViewRule::distance_squared((at.x, at.z), (x, z))))
            .filter_map(|(other, ..)| Some((who(other)?, other)))
            .collect();
        let cell = grid.insert(newcomer, at.x, at.z);
        near.sort_unstable();
        // An entity index may have been a player before: nothing of that one is news.
        let (id, tick) = (who(newcomer).unwrap_or_default(), self.tick);
        *dense(&mut self.known, newcomer) = Known { pos: at, id, moved: 0, told: tick };
        (cell, near)
    }

    /// The room's grid, made on first use.
    pub(crate) fn grid(&mut self, room: Entity) -> &mut Grid {
        let (cell, bounds) = (self.rule.cell_size(), self.bounds);
        self.grids.entry(room).or_insert_with(|| match bounds {
            Some((min, max)) => Grid::with_bounds(cell, min, max),
            None => Grid::new(cell),
        })
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
            let bounds = ((w.min[0], w.min[2]), (w.max[0], w.max[2]));
            app.insert_resource(Interest::new(rule).with_delay(w.view_delay).with_bounds(bounds.0, bounds.1))
                .init_resource::<ViewChanges>()
                .init_resource::<MoveEchoes>()
                .add_systems(
                    FixedUpdate,
                    (refresh_views, send_view_changes).chain().in_set(GameSystems::BroadcastMoves),
                );
        }
    }
}

/// A room that closed takes its grid with it.
fn close_grid(removed: On<Remove<Room>>, interest: Option<ResMut<Interest>>) {
    if let Some(mut interest) = interest {
        interest.grids.remove(&removed.event().entity);
    }
}

/// What the last tick changed: filled by [`refresh_views`], sent by [`send_view_changes`].
/// Kept between ticks to reuse the allocations.
#[derive(Resource, Debug, Default)]
pub struct ViewChanges {
    /// Players who moved this tick: (entity, position).
    pub movers: Vec<(Entity, Position)>,
    /// (observer, the player who left its view).
    pub leaves: Vec<(Entity, Entity)>,
    /// (observer, the player who came into its view).
    pub enters: Vec<(Entity, Entity)>,
}

/// Every move accepted this tick, in the order received: (player, where it landed). Filled by
/// the movement plugin, emptied by [`send_view_changes`], which echoes each one: a view tells a
/// mover's observers its newest position only, but its sender times each move by its echo, so a
/// move overtaken by a later one in the same tick (two moves read together, as a server behind
/// its load reads them) is still echoed. Bounded by the moves of one tick, which the network's
/// inbound queue bounds.
#[derive(Resource, Debug, Default)]
pub struct MoveEchoes(pub Vec<(Entity, Position)>);

/// The players who move between two runs of [`refresh_views`]: only they are re-examined.
type Moving<'w, 's> = Query<'w, 's, (Entity, Ref<'static, Position>, &'static InRoom), (With<Player>, With<GridCell>)>;

/// Brings the views of everyone who moved this tick up to date, both ways, and notes what
/// changed in [`ViewChanges`]. A mover is filed under its new cell first, so every cell holds
/// everyone where they are now; then it is compared with the players of the cells within the
/// radius (who may come into view) and with those in its view (who may leave it, from anywhere).
/// The rule depends on the two positions alone, so a pair of movers examined twice agrees.
pub fn refresh_views(
    moving: Moving,
    mut cells: Query<&mut GridCell>,
    mut views: Query<&mut View>,
    mut interest: ResMut<Interest>,
    mut changes: ResMut<ViewChanges>,
    mut scratch: Local<RefreshScratch>,
) {
    interest.tick = interest.tick.wrapping_add(1);
    if interest.tick == 0 {
        // Ticks of 2^32 runs ago could match again: start over.
        interest.known.iter_mut().for_each(|k| (k.moved, k.told) = (0, 0));
        interest.tick = 1;
    }
    let ViewChanges { movers, leaves, enters } = &mut *changes;
    movers.clear();
    leaves.clear();
    enters.clear();
    // Changed since the last tick by a move: a player who just entered has a new position but
    // has not moved (its enter said where it is).
    let mut rooms = Vec::new();
    for (entity, p, room) in &moving {
        if p.is_changed() && p.last_changed() != p.added() {
            movers.push((entity, *p));
            rooms.push(room.0);
        }
    }
    let tick = interest.tick;
    for (&(entity, p), &room) in movers.iter().zip(&rooms) {
        let known = dense(&mut interest.known, entity);
        (known.pos, known.moved) = (p, tick);
        let Ok(mut cell) = cells.get_mut(entity) else { continue };
        let to = interest.grid(room).update(entity, cell.0, p.x, p.z);
        if to != cell.0 {
            cell.0 = to;
        }
    }
    let Interest { rule, grids, known, .. } = &*interest;
    let RefreshScratch { found, gone, marks, serial } = &mut *scratch;
    for (&(entity, p), room) in movers.iter().zip(&rooms) {
        let (Some(grid), Ok(mine)) = (grids.get(room), views.get(entity)) else { continue };
        *serial = serial.wrapping_add(1);
        if *serial == 0 {
            // Marks of 2^32 movers ago could match again: start over.
            marks.fill(0);
            *serial = 1;
        }
        let mark = *serial;
        // Anyone in view now beyond radius + margin leaves it, even from outside the block;
        // everyone in view is marked, so the block's scan knows them without a search.
        gone.clear();
        for other in mine.iter() {
            *dense(marks, other) = mark;
            let far = known
                .get(other.index_u32() as usize)
                .is_some_and(|k| rule.leaves_view(ViewRule::distance_squared((p.x, p.z), (k.pos.x, k.pos.z))));
            if far {
                gone.push(other);
            }
        }
        // Distances first: most of a block is beyond the radius, and a distance is cheaper than
        // a look at the marks.
        found.clear();
        found.extend(
            grid.within(p.x, p.z, rule.radius)
                .filter(|&(other, x, z)| {
                    other != entity && rule.comes_into_view(ViewRule::distance_squared((p.x, p.z), (x, z)))
                })
                .map(|(other, ..)| other)
                .filter(|other| marks.get(other.index_u32() as usize) != Some(&mark)),
        );
        for &other in found.iter() {
            let Ok([mut mine, mut theirs]) = views.get_many_mut([entity, other]) else { continue };
            mine.insert(other);
            theirs.insert(entity);
            enters.extend([(entity, other), (other, entity)]);
        }
        for &other in gone.iter() {
            let Ok([mut mine, mut theirs]) = views.get_many_mut([entity, other]) else { continue };
            mine.remove(other);
            theirs.remove(entity);
            leaves.extend([(entity, other), (other, entity)]);
        }
    }
}

/// What [`refresh_views`] reuses from tick to tick.
#[derive(Default)]
pub struct RefreshScratch {
    /// Who comes into a mover's view.
    found: Vec<Entity>,
    /// Who leaves it.
    gone: Vec<Entity>,
    /// By entity index: the serial of the last mover whose view held that player, so the scan
    /// of a mover's block tells who is in its view already by one look in a flat table, not a
    /// search per candidate.
    marks: Vec<u32>,
    /// Counts the movers examined.
    serial: u32,
}

/// What [`send_view_changes`] reuses from tick to tick.
#[derive(Default)]
pub struct SendScratch {
    /// One player's news.
    batch: PacketBatch,
    /// By entity index: the run in which that player's last move was seen, so telling the last
    /// move from the overtaken ones is a look in a flat table, not a hash per move.
    last_seen: Vec<u32>,
    /// Counts the runs, for `last_seen`.
    run: u32,
    /// The moves a later one of the same player overtook.
    overtaken: Vec<(Entity, Position)>,
}

/// Sends what [`refresh_views`] found, per observer: leaves, then enters (at the current
/// position), then the moves of the players in its view, and its own move's echo. Each kind is
/// sent to every observer before the next kind begins, so each tick's changes reach a client in
/// that order.
///
/// With a delay ([`Interest::delay`]), the news about others is gathered for a player when it
/// is answered: just before the echo of its own move, each player in its view that moved since
/// it was last told, at its newest position; a player that has not moved for the delay is told
/// then. Leaves and enters wait for that write too (in order, held in its buffer), so a client
/// that moves four times a second gets four writes a second, whatever its neighbours do, and the
/// server's work per move no longer grows with the ticks it arrives in. All of it is timed by
/// one clock, the tick count: a player told nothing new at its due tick is still sent what is
/// held for it then, so a game loop running late (overloaded) delays leaves and enters exactly
/// as much as moves, and never sends them alone in a write of their own. Without a delay every
/// observer gets the tick's moves in the tick.
///
/// Overloaded ([`NewsPace`], see [`crate::overload`]), the news waits up to the stretched
/// interval instead of the delay: it leaves with the first answer in the last `delay` of that
/// wait, or alone at its end. Echoes never wait: a mover's moves that a later one overtook in
/// this tick ([`MoveEchoes`]) are echoed to it first, in order.
#[allow(clippy::too_many_arguments)]
pub fn send_view_changes(
    changes: Res<ViewChanges>,
    mut interest: ResMut<Interest>,
    mut echoes: ResMut<MoveEchoes>,
    pace: Option<Res<NewsPace>>,
    players: Query<(&Player, &Position)>,
    views: Query<(Entity, &View)>,
    time: Res<Time<Fixed>>,
    mut outbox: Outbox,
    mut scratch: Local<SendScratch>,
) {
    let SendScratch { batch, last_seen, run, overtaken } = &mut *scratch;
    *run = run.wrapping_add(1);
    if *run == 0 {
        // Marks of 2^32 runs ago could match again: start over.
        last_seen.fill(0);
        *run = 1;
    }
    let this_run = *run;
    // From the newest: each player's last move is echoed below with its news; the ones before
    // it were overtaken.
    overtaken.clear();
    overtaken.extend(
        echoes.0.drain(..).rev().filter(|(mover, _)| std::mem::replace(dense(last_seen, *mover), this_run) == this_run),
    );
    for &(mover, p) in overtaken.iter().rev() {
        if let Ok((player, _)) = players.get(mover) {
            outbox.send(mover, &S_BroadcastMove { player_id: player.id, pos_x: p.x, pos_y: p.y, pos_z: p.z });
        }
    }
    let delay = interest.delay;
    // The news interval: the delay, or longer while overloaded.
    let interval = pace.map_or(delay, |pace| pace.interval().max(delay));
    // Leaves and enters wait for the observer's next news or answer, which the tick count below
    // times: one clock for all of the news. The wall-clock bound is a safety net only (a game
    // loop that stopped running these systems), far beyond any tick-timed release.
    let hold = if delay.is_zero() { interval } else { interval + HOLD_SAFETY };
    for &(to, left) in &changes.leaves {
        if let Ok((player, _)) = players.get(left) {
            outbox.send_within(to, &S_BroadcastLeaveGame { player_id: player.id }, hold);
        }
    }
    for &(to, came) in &changes.enters {
        if let Ok((player, p)) = players.get(came) {
            let entered = S_BroadcastEnterGame { player_id: player.id, pos_x: p.x, pos_y: p.y, pos_z: p.z };
            outbox.send_within(to, &entered, hold);
        }
    }
    if delay.is_zero() {
        for &(mover, p) in &changes.movers {
            let (Ok((player, _)), Ok((_, view))) = (players.get(mover), views.get(mover)) else { continue };
            let moved = S_BroadcastMove { player_id: player.id, pos_x: p.x, pos_y: p.y, pos_z: p.z };
            outbox.broadcast(view.iter().chain([mover]), &moved);
        }
        return;
    }
    let ticks = |d: std::time::Duration| (d.as_secs_f64() / time.timestep().as_secs_f64()).ceil() as u32;
    let every = ticks(interval).max(1);
    // Ticks the news must have waited to go with an answer: 0 unless overloaded.
    let at_answer = ticks(interval.saturating_sub(delay));
    let Interest { known, tick, .. } = &mut *interest;
    for &(mover, p) in &changes.movers {
        let Ok((_, view)) = views.get(mover) else { continue };
        let Some(&Known { id, told, .. }) = known.get(mover.index_u32() as usize) else { continue };
        let echo = S_BroadcastMove { player_id: id, pos_x: p.x, pos_y: p.y, pos_z: p.z };
        if tick.saturating_sub(told) >= at_answer {
            // The news and the echo, in one piece.
            gather_news(known, mover, view, *tick, batch);
            batch.push(&echo);
            outbox.send_batch([mover], batch);
        } else {
            outbox.send(mover, &echo);
        }
    }
    for (observer, view) in &views {
        if known.get(observer.index_u32() as usize).is_some_and(|k| tick.saturating_sub(k.told) >= every) {
            gather_news(known, observer, view, *tick, batch);
            if batch.is_empty() {
                // Nobody in view moved: what is held (leaves, enters) goes now all the same.
                outbox.release(observer);
            } else {
                outbox.send_batch([observer], batch);
            }
        }
    }
}

/// How much longer than the news interval held leaves and enters may wait, by the wall clock,
/// before they go alone: the tick-timed news releases them long before, unless the fixed tick
/// stopped running while frames still run.
const HOLD_SAFETY: std::time::Duration = std::time::Duration::from_secs(10);

/// Fills `batch` with the moves of the players in `view` since `observer` was last told, at
/// their newest positions, and notes it told at `tick`.
fn gather_news(known: &mut Vec<Known>, observer: Entity, view: &View, tick: u32, batch: &mut PacketBatch) {
    batch.clear();
    let told = std::mem::replace(&mut dense(known, observer).told, tick);
    for other in view.iter() {
        if let Some(k) = known.get(other.index_u32() as usize)
            && k.moved > told
        {
            batch.push(&S_BroadcastMove { player_id: k.id, pos_x: k.pos.x, pos_y: k.pos.y, pos_z: k.pos.z });
        }
    }
}

/// The entry of a table indexed by entity index, grown on demand.
fn dense<T: Default + Clone>(table: &mut Vec<T>, entity: Entity) -> &mut T {
    let at = entity.index_u32() as usize;
    if table.len() <= at {
        table.resize(at + 1, T::default());
    }
    &mut table[at]
}

#[cfg(test)]
mod tests {
    use rustc_hash::FxHashSet;

    use super::*;

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

    #[test]
    fn a_view_stays_sorted_and_holds_each_player_once() {
        let e = |i: u32| Entity::from_raw_u32(i).unwrap();
        let sorted = |mut v: Vec<Entity>| {
            v.sort_unstable();
            v
        };
        let mut view: View = [e(5), e(1), e(9), e(1)].into_iter().collect();
        assert_eq!(view.iter().collect::<Vec<_>>(), sorted(vec![e(1), e(5), e(9)]));
        assert!(view.insert(e(7)) && !view.insert(e(7)), "a second insert changes nothing");
        assert!(view.contains(e(7)) && !view.contains(e(6)));
        assert!(view.remove(e(5)) && !view.remove(e(5)));
        assert_eq!(view.iter().collect::<Vec<_>>(), sorted(vec![e(1), e(7), e(9)]));
        assert_eq!((view.len(), view.take().len(), view.is_empty()), (3, 3, true));
    }

    /// A world with the view systems' state and `n` players spread over a square `size` wide,
    /// entered one by one as `enter_players` enters them.
    struct Sim {
        world: World,
        schedule: Schedule,
        players: Vec<Entity>,
        rng: SmallRng,
        rule: ViewRule,
    }

    impl Sim {
        fn new(rule: ViewRule, n: usize, size: f32, seed: u64) -> Self {
            let mut world = World::new();
            world.insert_resource(Interest::new(rule));
            world.init_resource::<ViewChanges>();
            let room = world.spawn(Room::new(1)).id();
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut players = Vec::new();
            for id in 1..=n as i32 {
                let at = Position { x: rng.random_range(0.0..size), y: 0.0, z: rng.random_range(0.0..size) };
                let newcomer = world.spawn_empty().id();
                let known = world.query::<(Entity, &Player)>();
                let who: FxHashMap<Entity, i32> = known.iter_manual(&world).map(|(e, p)| (e, p.id)).collect();
                let (cell, near) = world.resource_mut::<Interest>().enter(room, newcomer, at, |e| who.get(&e).copied());
                for &(_, other) in &near {
                    world.get_mut::<View>(other).unwrap().insert(newcomer);
                }
                let view: View = near.iter().map(|(_, e)| *e).collect();
                world.entity_mut(newcomer).insert((Player { id }, at, InRoom(room), view, GridCell(cell)));
                players.push(newcomer);
            }
            let mut schedule = Schedule::default();
            schedule.add_systems(refresh_views);
            // A first run, so that entering is not taken for moving.
            schedule.run(&mut world);
            Self { world, schedule, players, rng, rule }
        }

        fn position(&self, e: Entity) -> Position {
            *self.world.get::<Position>(e).unwrap()
        }

        fn sees(&self, a: Entity, b: Entity) -> bool {
            self.world.get::<View>(a).unwrap().contains(b)
        }

        /// Every ordered pair: in view, or not.
        fn snapshot(&self) -> FxHashSet<(Entity, Entity)> {
            let mut pairs = FxHashSet::default();
            for &a in &self.players {
                pairs.extend(self.world.get::<View>(a).unwrap().iter().map(|b| (a, b)));
            }
            pairs
        }

        /// The rule, checked against every pair, with the views as they were before the tick:
        /// within R in view, beyond R + M not, in between as before; symmetric; never itself.
        fn check(&self, before: &FxHashSet<(Entity, Entity)>) {
            for &a in &self.players {
                assert!(!self.sees(a, a));
                for &b in self.players.iter().filter(|b| **b != a) {
                    let (pa, pb) = (self.position(a), self.position(b));
                    let d2 = ViewRule::distance_squared((pa.x, pa.z), (pb.x, pb.z));
                    let sees = self.sees(a, b);
                    assert_eq!(sees, self.sees(b, a), "symmetric");
                    if self.rule.comes_into_view(d2) {
                        assert!(sees, "within R: {pa:?} {pb:?}");
                    } else if self.rule.leaves_view(d2) {
                        assert!(!sees, "beyond R + M: {pa:?} {pb:?}");
                    } else {
                        assert_eq!(sees, before.contains(&(a, b)), "between R and R + M nothing changes");
                    }
                }
            }
        }

        /// Moves some players (`share` of them) by up to `step` in x and z, and runs a tick.
        fn tick(&mut self, share: f64, step: f32) -> Vec<Entity> {
            let mut moved = Vec::new();
            for &e in &self.players {
                if self.rng.random_bool(share) {
                    let (dx, dz) = (self.rng.random_range(-step..=step), self.rng.random_range(-step..=step));
                    let mut p = self.world.get_mut::<Position>(e).unwrap();
                    p.x += dx;
                    p.z += dz;
                    moved.push(e);
                }
            }
            self.schedule.run(&mut self.world);
            moved
        }
    }

    #[test]
    fn entering_sees_exactly_the_players_within_the_radius() {
        let sim = Sim::new(ViewRule { radius: 10.0, margin: 2.0 }, 300, 100.0, 1);
        // Nobody has moved: "between R and R + M" must be "not in view", as nobody came closer.
        sim.check(&FxHashSet::default());
        assert!(sim.snapshot().len() > 300, "the premise: players do see each other");
    }

    #[test]
    fn views_kept_by_movers_alone_follow_the_rule_tick_after_tick() {
        for (seed, step) in [(2, 1.5), (3, 6.0), (4, 40.0)] {
            let mut sim = Sim::new(ViewRule { radius: 10.0, margin: 2.0 }, 200, 80.0, seed);
            for _ in 0..40 {
                let before = sim.snapshot();
                let moved = sim.tick(0.3, step);
                sim.check(&before);
                // What changed is what was reported, each pair once each way, and only pairs with
                // a mover in them.
                let after = sim.snapshot();
                let changes = sim.world.resource::<ViewChanges>();
                let entered: FxHashSet<_> = after.difference(&before).copied().collect();
                let left: FxHashSet<_> = before.difference(&after).copied().collect();
                assert_eq!(changes.enters.len(), entered.len(), "no enter reported twice");
                assert_eq!(changes.leaves.len(), left.len(), "no leave reported twice");
                assert_eq!(changes.enters.iter().copied().collect::<FxHashSet<_>>(), entered);
                assert_eq!(changes.leaves.iter().copied().collect::<FxHashSet<_>>(), left);
                assert!(entered.union(&left).all(|(a, b)| moved.contains(a) || moved.contains(b)));
                let movers: FxHashSet<Entity> = changes.movers.iter().map(|(e, _)| *e).collect();
                assert_eq!(movers, moved.iter().copied().collect(), "exactly the players who moved");
            }
        }
    }

    #[test]
    fn a_player_pacing_across_the_edge_enters_and_leaves_once_per_crossing() {
        let rule = ViewRule { radius: 10.0, margin: 2.0 };
        let mut sim = Sim::new(rule, 2, 1.0, 5);
        let (a, b) = (sim.players[0], sim.players[1]);
        let put = |sim: &mut Sim, z: f32| {
            *sim.world.get_mut::<Position>(a).unwrap() = Position::default();
            *sim.world.get_mut::<Position>(b).unwrap() = Position { x: 0.0, y: 0.0, z };
            sim.schedule.run(&mut sim.world);
            let c = sim.world.resource::<ViewChanges>();
            (c.enters.len() / 2, c.leaves.len() / 2, sim.sees(a, b))
        };
        assert_eq!(put(&mut sim, 0.0), (0, 0, true));
        // Back and forth within the band: nothing.
        for z in [10.5, 11.0, 12.0, 10.01, 12.0] {
            assert_eq!(put(&mut sim, z), (0, 0, true), "at {z}");
        }
        assert_eq!(put(&mut sim, 12.01), (0, 1, false));
        for z in [12.0, 10.01, 50.0, 10.5] {
            assert_eq!(put(&mut sim, z), (0, 0, false), "at {z}");
        }
        assert_eq!(put(&mut sim, 10.0), (1, 0, true));
        // A jump from far away straight into view, and out of it past several cells.
        assert_eq!(put(&mut sim, 500.0), (0, 1, false));
        assert_eq!(put(&mut sim, -3.0), (1, 0, true));
    }
}
