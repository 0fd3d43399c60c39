//! The pure parts of interest management: a uniform grid over the horizontal plane, and the rule
//! that says when one player comes into another's view and when it leaves it. No ECS here, so
//! every case is unit-tested with plain numbers.

use bevy_ecs::entity::Entity;
use rustc_hash::FxHashMap;

/// Who sees whom: a player within `radius` comes into view; one beyond `radius + margin` leaves
/// it; in between nothing changes (hysteresis, so a player walking along the edge does not
/// flicker in and out). Distances are measured in the horizontal plane (x, z).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewRule {
    /// Within this distance a player comes into view.
    pub radius: f32,
    /// Beyond `radius + margin` it leaves the view.
    pub margin: f32,
}

impl ViewRule {
    /// The rule for `radius` with the default margin: 10% of it.
    pub fn with_default_margin(radius: f32) -> Self {
        Self { radius, margin: radius * 0.1 }
    }

    /// The squared horizontal distance between two positions.
    pub fn distance_squared(a: (f32, f32), b: (f32, f32)) -> f32 {
        let (dx, dz) = (a.0 - b.0, a.1 - b.1);
        dx * dx + dz * dz
    }

    /// Whether a player at squared distance `d2`, not in view, comes into it.
    pub fn comes_into_view(&self, d2: f32) -> bool {
        d2 <= self.radius * self.radius
    }

    /// Whether a player at squared distance `d2`, in view, leaves it.
    pub fn leaves_view(&self, d2: f32) -> bool {
        let far = self.radius + self.margin;
        d2 > far * far
    }

    /// The grid's cell size: half the radius, so the cells a search for everyone within the
    /// radius looks at (a block of 5×5 at most, its corners skipped when wholly beyond the
    /// radius) cover about 1.8 times the radius's disc, where cells one `radius + margin` wide
    /// and their 3×3 block covered 3.5 times it: half the candidates per move.
    pub fn cell_size(&self) -> f32 {
        (self.radius / 2.0).max(f32::MIN_POSITIVE)
    }
}

/// A cell's coordinates.
pub type Cell = (i32, i32);

/// One player filed in a cell: who, and where in x and z.
pub type Filed = (Entity, f32, f32);

/// The most cells a grid keeps in a flat table (1.5 MiB of cell headers): a world whose bounds
/// need more keeps its occupied cells in a hash table instead.
const DENSE_MAX_CELLS: i64 = 1 << 16;

/// The table is made once the room holds a player for every this many of its cells, so it
/// costs at most 8 cell headers (192 bytes) per player: many small rooms (a low room capacity,
/// players spread over them) keep their few cells hashed instead of a table each.
const CELLS_PER_PLAYER: usize = 8;

/// Players bucketed by cell, kept up to date as they move: the candidates for a player's view
/// are the players of the cells around it, not the whole room. Each cell holds its players with
/// their positions, in a short vector, so scanning cells reads contiguous memory and asks
/// nothing of the ECS.
///
/// Inside the world's bounds ([`with_bounds`](Self::with_bounds)), once the room is populated
/// enough to pay for it, the cells are a flat table indexed by coordinates, row by row: looking
/// a cell up is arithmetic, not hashing, and the cells of a row of a block are neighbours in
/// memory. Other cells (a grid without bounds, bounds too large for the table, positions beyond
/// them, a room too empty for a table) are kept in a hash table, holding only the occupied ones.
#[derive(Debug, Default)]
pub struct Grid {
    cell_size: f32,
    /// The cells over the bounds, row (z) by row, each `columns` wide.
    dense: Vec<Vec<Filed>>,
    /// The cell coordinates of `dense[0]`.
    origin: Cell,
    /// Cells per row of `dense`.
    columns: i32,
    /// The cells `dense` will have once it is made (0: never).
    planned: usize,
    /// Occupied cells outside `dense`.
    sparse: FxHashMap<Cell, Vec<Filed>>,
    /// Players filed.
    players: usize,
}

impl Grid {
    /// An empty grid of cells `cell_size` wide, every cell hashed.
    pub fn new(cell_size: f32) -> Self {
        Self { cell_size, ..Self::default() }
    }

    /// An empty grid of cells `cell_size` wide whose cells over the horizontal bounds `min` to
    /// `max` (x and z) become a flat table when that takes at most 65,536 cells, once it holds a
    /// player for every 8 of them.
    pub fn with_bounds(cell_size: f32, min: (f32, f32), max: (f32, f32)) -> Self {
        let mut grid = Self::new(cell_size);
        let (lo, hi) = (grid.cell_of(min.0, min.1), grid.cell_of(max.0, max.1));
        let (columns, rows) = (i64::from(hi.0) - i64::from(lo.0) + 1, i64::from(hi.1) - i64::from(lo.1) + 1);
        if columns > 0 && rows > 0 && columns.saturating_mul(rows) <= DENSE_MAX_CELLS {
            (grid.origin, grid.columns, grid.planned) = (lo, columns as i32, (columns * rows) as usize);
        }
        grid
    }

    /// Makes the table once there are players enough for it, moving the hashed cells it covers
    /// into it.
    fn make_table_when_due(&mut self) {
        if !self.dense.is_empty() || self.planned == 0 || self.players * CELLS_PER_PLAYER < self.planned {
            return;
        }
        self.dense = (0..self.planned).map(|_| Vec::new()).collect();
        for (cell, members) in std::mem::take(&mut self.sparse) {
            match self.slot(cell) {
                Some(at) => self.dense[at] = members,
                None => {
                    self.sparse.insert(cell, members);
                }
            }
        }
    }

    /// The cell holding horizontal position (x, z). Positions beyond `i32` cells (not finite,
    /// or absurdly far) saturate to the edge cells.
    pub fn cell_of(&self, x: f32, z: f32) -> Cell {
        ((x / self.cell_size).floor() as i32, (z / self.cell_size).floor() as i32)
    }

    /// Where `cell` is in `dense`, if it is in it.
    fn slot(&self, cell: Cell) -> Option<usize> {
        let (dx, dz) = (i64::from(cell.0) - i64::from(self.origin.0), i64::from(cell.1) - i64::from(self.origin.1));
        let columns = i64::from(self.columns);
        (dx >= 0 && dz >= 0 && dx < columns).then(|| (dz * columns + dx) as usize).filter(|&at| at < self.dense.len())
    }

    /// The players filed under `cell`, if any.
    fn members(&self, cell: Cell) -> Option<&Vec<Filed>> {
        match self.slot(cell) {
            Some(at) => Some(&self.dense[at]),
            None => self.sparse.get(&cell),
        }
    }

    /// The players filed under `cell`, made on first use.
    fn members_mut(&mut self, cell: Cell) -> &mut Vec<Filed> {
        match self.slot(cell) {
            Some(at) => &mut self.dense[at],
            None => self.sparse.entry(cell).or_default(),
        }
    }

    /// Files `entity` at (x, z); returns its cell.
    pub fn insert(&mut self, entity: Entity, x: f32, z: f32) -> Cell {
        self.players += 1;
        self.make_table_when_due();
        let cell = self.cell_of(x, z);
        self.members_mut(cell).push((entity, x, z));
        cell
    }

    /// Takes `entity` out of `cell`; empty hashed cells are dropped, so the grid holds only
    /// occupied cells however large the world.
    pub fn remove(&mut self, entity: Entity, cell: Cell) {
        let slot = self.slot(cell);
        let members = match slot {
            Some(at) => &mut self.dense[at],
            None => match self.sparse.get_mut(&cell) {
                Some(members) => members,
                None => return,
            },
        };
        if let Some(i) = members.iter().position(|m| m.0 == entity) {
            members.swap_remove(i);
            self.players -= 1;
        }
        if members.is_empty() && slot.is_none() {
            self.sparse.remove(&cell);
        }
    }

    /// Records that `entity`, filed under `from`, is now at (x, z): in the same cell its
    /// position is updated, else it is moved to its new cell. Returns its cell.
    pub fn update(&mut self, entity: Entity, from: Cell, x: f32, z: f32) -> Cell {
        let to = self.cell_of(x, z);
        if from == to
            && let Some(filed) = self.members_mut(from).iter_mut().find(|m| m.0 == entity)
        {
            *filed = (entity, x, z);
            return to;
        }
        self.remove(entity, from);
        self.players += 1;
        self.members_mut(to).push((entity, x, z));
        to
    }

    /// Everyone filed in a cell that has a point within `r` of (x, z), with their positions,
    /// each once: a superset of the players within `r`, for the caller to measure. At the edge
    /// of the `i32` cells (where far positions saturate) the cells are cut short: a cell beyond
    /// the edge does not exist, and saturating to the edge cell instead would visit that cell
    /// twice, and report its players twice.
    pub fn within(&self, x: f32, z: f32, r: f32) -> impl Iterator<Item = Filed> + '_ {
        let (lo, hi) = (self.cell_of(x - r, z - r), self.cell_of(x + r, z + r));
        let size = self.cell_size;
        // The square of the distance from (x, z) to the nearest point of a cell, along one axis.
        let gap = move |p: f32, cell: i32| {
            let (start, end) = (cell as f32 * size, (cell as f32 + 1.0) * size);
            let d = (start - p).max(p - end).max(0.0);
            d * d
        };
        // A little slack for rounding: a cell is skipped only when clearly beyond `r`.
        let reach = r + size * 1e-3;
        let (r2, home) = (reach * reach, self.cell_of(x, z));
        (lo.1..=hi.1)
            .flat_map(move |cz| (lo.0..=hi.0).map(move |cx| (cx, cz)))
            // The cell holding (x, z) always: at the i32 edge its span no longer holds its players.
            .filter(move |&(cx, cz)| (cx, cz) == home || gap(x, cx) + gap(z, cz) <= r2)
            .filter_map(|cell| self.members(cell))
            .flatten()
            .copied()
    }

    /// Players in the grid.
    pub fn len(&self) -> usize {
        self.players
    }

    /// Whether the grid is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use rustc_hash::FxHashSet;

    use super::*;

    fn e(i: u32) -> Entity {
        Entity::from_raw_u32(i).unwrap()
    }

    #[test]
    fn the_rule_at_and_around_the_radius_and_the_margin() {
        let rule = ViewRule { radius: 80.0, margin: 8.0 };
        let d2 = |d: f32| d * d;
        assert!(rule.comes_into_view(d2(0.0)));
        assert!(rule.comes_into_view(d2(80.0)), "exactly on R comes into view");
        assert!(!rule.comes_into_view(d2(80.01)));
        assert!(!rule.leaves_view(d2(80.01)), "between R and R + M nothing changes");
        assert!(!rule.leaves_view(d2(88.0)), "exactly on R + M stays in view");
        assert!(rule.leaves_view(d2(88.01)));
        assert_eq!(ViewRule::distance_squared((3.0, 4.0), (0.0, 0.0)), 25.0);
    }

    #[test]
    fn the_default_margin_is_a_tenth_of_the_radius() {
        assert_eq!(ViewRule::with_default_margin(80.0), ViewRule { radius: 80.0, margin: 8.0 });
        assert_eq!(ViewRule::with_default_margin(80.0).cell_size(), 40.0, "half the radius");
    }

    #[test]
    fn cells_split_the_plane_at_multiples_of_the_size() {
        let grid = Grid::new(10.0);
        assert_eq!(grid.cell_of(0.0, 0.0), (0, 0));
        assert_eq!(grid.cell_of(9.99, 10.0), (0, 1));
        assert_eq!(grid.cell_of(-0.01, -10.0), (-1, -1));
        assert_eq!(grid.cell_of(-10.01, 25.0), (-2, 2));
        // Far beyond i32 cells saturates instead of wrapping.
        assert_eq!(grid.cell_of(f32::MAX, f32::MIN), (i32::MAX, i32::MIN));
    }

    /// The entities filed in the cells within `r` of (x, z), as a set.
    fn near(grid: &Grid, x: f32, z: f32, r: f32) -> FxHashSet<Entity> {
        grid.within(x, z, r).map(|f| f.0).collect()
    }

    #[test]
    fn within_finds_the_cells_that_reach_the_radius_only_with_positions() {
        // Cells 10 wide; a search within 10 of (5, 5) looks at the cells from (-1, -1) to (1, 1).
        let mut grid = Grid::new(10.0);
        assert_eq!(grid.insert(e(1), 5.0, 5.0), (0, 0));
        assert_eq!(grid.insert(e(2), 15.0, 19.0), (1, 1));
        assert_eq!(grid.insert(e(3), -5.0, 0.0), (-1, 0));
        assert_eq!(grid.insert(e(4), 20.0, 0.0), (2, 0));
        assert_eq!(grid.insert(e(5), 0.0, -11.0), (0, -2));
        assert_eq!(near(&grid, 5.0, 5.0, 10.0), FxHashSet::from_iter([e(1), e(2), e(3)]));
        assert_eq!(grid.within(5.0, 5.0, 10.0).count(), 3, "each once");
        assert!(grid.within(5.0, 5.0, 10.0).any(|f| f == (e(2), 15.0, 19.0)), "positions travel with the entities");
        // From (1, 1) the corner cell (1, 1) starts √(9² + 9²) ≈ 12.7 away: not looked at.
        assert_eq!(near(&grid, 1.0, 1.0, 10.0), FxHashSet::from_iter([e(1), e(3)]));
        assert_eq!(grid.len(), 5);
    }

    #[test]
    fn at_the_edge_of_the_cells_a_search_finds_each_player_once() {
        // Cells 1 wide and positions far beyond i32 cells: all saturate to the edge cells.
        let mut grid = Grid::new(1.0);
        let corners = [(f32::MAX, f32::MAX), (f32::MIN, f32::MIN), (f32::MAX, f32::MIN), (f32::MIN, f32::MAX)];
        for (i, &(x, z)) in corners.iter().enumerate() {
            grid.insert(e(i as u32), x, z);
        }
        // And one on the edge, away from the corners.
        grid.insert(e(10), 3e9, 0.0);
        assert_eq!(grid.cell_of(3e9, 0.0), (i32::MAX, 0));
        for (i, &(x, z)) in corners.iter().enumerate() {
            let found: Vec<Entity> = grid.within(x, z, 1.5).map(|f| f.0).collect();
            assert_eq!(found, [e(i as u32)], "the corner {x}, {z}: itself, once");
        }
        let found: Vec<Entity> = grid.within(3e9, 0.0, 1.5).map(|f| f.0).collect();
        assert_eq!(found, [e(10)]);
    }

    #[test]
    fn a_grid_with_bounds_keeps_its_cells_in_a_table_and_hashes_only_those_outside() {
        // Cells -10 to 10 in x and z: 441, a table once there are 56 players.
        let mut grid = Grid::with_bounds(10.0, (-100.0, -100.0), (100.0, 100.0));
        let inside = [(e(1), -100.0, -100.0), (e(2), 99.0, 100.0), (e(3), 0.0, 0.0)];
        for (who, x, z) in inside {
            grid.insert(who, x, z);
        }
        let outside = grid.insert(e(4), 250.0, 0.0);
        assert!(grid.dense.is_empty() && grid.sparse.len() == 4, "a room of 4 pays for no table");
        // Players enough (filed far from the others, in two cells): the table, and only the one
        // outside hashed.
        for i in 5..57 {
            grid.insert(e(i), -55.0 + (i % 2) as f32 * 10.0, -55.0);
        }
        assert_eq!(grid.dense.len(), 21 * 21);
        assert!(grid.sparse.contains_key(&outside) && grid.sparse.len() == 1, "only the one outside is hashed");
        assert_eq!(near(&grid, 0.0, 0.0, 5.0), FxHashSet::from_iter([e(3)]));
        assert_eq!(near(&grid, 255.0, 0.0, 10.0), FxHashSet::from_iter([e(4)]));
        // Into the bounds and out again: the hashed cell goes when emptied, the table stays.
        let to = grid.update(e(4), outside, 95.0, 95.0);
        assert!(grid.sparse.is_empty());
        assert_eq!(near(&grid, 99.0, 99.0, 5.0), FxHashSet::from_iter([e(2), e(4)]));
        grid.update(e(4), to, -300.0, 5.0);
        assert_eq!((grid.len(), grid.sparse.len()), (56, 1));
        // Bounds that would need too many cells, or more than i64 can count: all hashed.
        assert_eq!(Grid::with_bounds(1.0, (-1e6, -1e6), (1e6, 1e6)).planned, 0);
        assert_eq!(Grid::with_bounds(1.0, (f32::MIN, f32::MIN), (f32::MAX, f32::MAX)).planned, 0);
    }

    #[test]
    fn updating_moves_between_cells_or_in_place_and_removing_keeps_only_occupied_cells() {
        let mut grid = Grid::new(10.0);
        let cell = grid.insert(e(1), 1.0, 1.0);
        grid.insert(e(2), 2.0, 2.0);
        // Within its cell: the position changes, the cell does not.
        assert_eq!(grid.update(e(1), cell, 9.0, 3.0), (0, 0));
        assert!(grid.within(5.0, 5.0, 1.0).any(|f| f == (e(1), 9.0, 3.0)));
        assert_eq!(grid.len(), 2);
        // Into another cell: out of the old one.
        assert_eq!(grid.update(e(1), cell, 55.0, 55.0), (5, 5));
        assert_eq!(near(&grid, 5.0, 5.0, 1.0), FxHashSet::from_iter([e(2)]));
        assert_eq!(grid.within(45.0, 45.0, 10.0).collect::<Vec<_>>(), [(e(1), 55.0, 55.0)]);
        grid.remove(e(1), (5, 5));
        grid.remove(e(2), (0, 0));
        assert!(grid.is_empty());
        // Removing what is not there changes nothing.
        grid.remove(e(3), (0, 0));
        assert!(grid.is_empty());
    }

    #[test]
    fn a_search_within_the_radius_finds_everyone_within_it() {
        // Whatever the positions, anyone within R of a point is among what `within` gives, with
        // the rule's cells and with and without the flat table.
        let rule = ViewRule { radius: 7.0, margin: 1.5 };
        let positions: Vec<(f32, f32)> =
            (0..400).map(|i| (((i * 37) % 101) as f32 * 0.7 - 35.0, ((i * 53) % 97) as f32 * 0.7 - 34.0)).collect();
        for mut grid in [Grid::new(rule.cell_size()), Grid::with_bounds(rule.cell_size(), (-20.0, -20.0), (20.0, 20.0))]
        {
            for (i, &(x, z)) in positions.iter().enumerate() {
                grid.insert(e(i as u32), x, z);
            }
            for (i, &a) in positions.iter().enumerate() {
                let found: Vec<Entity> = grid.within(a.0, a.1, rule.radius).map(|f| f.0).collect();
                let set: FxHashSet<Entity> = found.iter().copied().collect();
                assert_eq!(set.len(), found.len(), "each once");
                for (j, &b) in positions.iter().enumerate() {
                    if rule.comes_into_view(ViewRule::distance_squared(a, b)) {
                        assert!(set.contains(&e(j as u32)), "{i} and {j} are within R");
                    }
                }
            }
        }
    }
}
