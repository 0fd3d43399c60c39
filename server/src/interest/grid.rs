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

    /// The grid's cell size: at least `radius + margin`, so the 3×3 block of cells around a
    /// player holds everyone who may be in its view.
    pub fn cell_size(&self) -> f32 {
        (self.radius + self.margin).max(f32::MIN_POSITIVE)
    }
}

/// A cell's coordinates.
pub type Cell = (i32, i32);

/// One player filed in a cell: who, and where in x and z.
pub type Filed = (Entity, f32, f32);

/// Players bucketed by cell, kept up to date as they move: the candidates for a player's view
/// are the players of the 3×3 block around its cell, not the whole room. Each cell holds its
/// players with their positions, in a short vector (a cell holds about as many players as a
/// view does), so scanning a block reads contiguous memory and asks nothing of the ECS.
#[derive(Debug, Default)]
pub struct Grid {
    cell_size: f32,
    cells: FxHashMap<Cell, Vec<Filed>>,
}

impl Grid {
    /// An empty grid of cells `cell_size` wide.
    pub fn new(cell_size: f32) -> Self {
        Self { cell_size, cells: FxHashMap::default() }
    }

    /// The cell holding horizontal position (x, z). Positions beyond `i32` cells (not finite,
    /// or absurdly far) saturate to the edge cells.
    pub fn cell_of(&self, x: f32, z: f32) -> Cell {
        ((x / self.cell_size).floor() as i32, (z / self.cell_size).floor() as i32)
    }

    /// Files `entity` at (x, z); returns its cell.
    pub fn insert(&mut self, entity: Entity, x: f32, z: f32) -> Cell {
        let cell = self.cell_of(x, z);
        self.cells.entry(cell).or_default().push((entity, x, z));
        cell
    }

    /// Takes `entity` out of `cell`; empty cells are dropped, so the grid holds only occupied
    /// cells however large the world.
    pub fn remove(&mut self, entity: Entity, cell: Cell) {
        if let Some(members) = self.cells.get_mut(&cell) {
            if let Some(i) = members.iter().position(|m| m.0 == entity) {
                members.swap_remove(i);
            }
            if members.is_empty() {
                self.cells.remove(&cell);
            }
        }
    }

    /// Records that `entity`, filed under `from`, is now at (x, z): in the same cell its
    /// position is updated, else it is moved to its new cell. Returns its cell.
    pub fn update(&mut self, entity: Entity, from: Cell, x: f32, z: f32) -> Cell {
        let to = self.cell_of(x, z);
        let filed = self.cells.get_mut(&from).and_then(|m| m.iter_mut().find(|m| m.0 == entity));
        match filed {
            Some(filed) if from == to => *filed = (entity, x, z),
            _ => {
                self.remove(entity, from);
                self.cells.entry(to).or_default().push((entity, x, z));
            }
        }
        to
    }

    /// Everyone in the 3×3 block of cells around `cell`, with their positions, each once. At
    /// the edge of the `i32` cells (where far positions saturate) the block is cut short: a
    /// neighbour beyond the edge does not exist, and saturating to the edge cell instead would
    /// visit that cell twice, and report its players twice.
    pub fn around(&self, cell: Cell) -> impl Iterator<Item = Filed> + '_ {
        let near = |c: i32| (-1..=1).filter_map(move |d| c.checked_add(d));
        near(cell.0)
            .flat_map(move |x| near(cell.1).map(move |z| (x, z)))
            .filter_map(|c| self.cells.get(&c))
            .flatten()
            .copied()
    }

    /// Players in the grid.
    pub fn len(&self) -> usize {
        self.cells.values().map(Vec::len).sum()
    }

    /// Whether the grid is empty.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
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
        assert_eq!(ViewRule::with_default_margin(80.0).cell_size(), 88.0);
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

    /// The entities of a block, as a set.
    fn block(grid: &Grid, cell: Cell) -> FxHashSet<Entity> {
        grid.around(cell).map(|f| f.0).collect()
    }

    #[test]
    fn around_finds_the_3x3_block_only_with_positions() {
        let mut grid = Grid::new(10.0);
        assert_eq!(grid.insert(e(1), 5.0, 5.0), (0, 0));
        assert_eq!(grid.insert(e(2), 15.0, 19.0), (1, 1));
        assert_eq!(grid.insert(e(3), -5.0, 0.0), (-1, 0));
        assert_eq!(grid.insert(e(4), 20.0, 0.0), (2, 0));
        assert_eq!(grid.insert(e(5), 0.0, -11.0), (0, -2));
        assert_eq!(block(&grid, (0, 0)), FxHashSet::from_iter([e(1), e(2), e(3)]));
        assert_eq!(grid.around((0, 0)).count(), 3, "each once");
        assert!(grid.around((0, 0)).any(|f| f == (e(2), 15.0, 19.0)), "positions travel with the entities");
        assert_eq!(grid.len(), 5);
    }

    #[test]
    fn at_the_edge_of_the_cells_the_block_holds_each_player_once() {
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
            let found: Vec<Entity> = grid.around(grid.cell_of(x, z)).map(|f| f.0).collect();
            assert_eq!(found, [e(i as u32)], "the corner {x}, {z}: itself, once");
        }
        let found: Vec<Entity> = grid.around((i32::MAX, 0)).map(|f| f.0).collect();
        assert_eq!(found.iter().filter(|f| **f == e(10)).count(), 1, "{found:?}");
    }

    #[test]
    fn updating_moves_between_cells_or_in_place_and_removing_keeps_only_occupied_cells() {
        let mut grid = Grid::new(10.0);
        let cell = grid.insert(e(1), 1.0, 1.0);
        grid.insert(e(2), 2.0, 2.0);
        // Within its cell: the position changes, the cell does not.
        assert_eq!(grid.update(e(1), cell, 9.0, 3.0), (0, 0));
        assert!(grid.around((0, 0)).any(|f| f == (e(1), 9.0, 3.0)));
        assert_eq!(grid.len(), 2);
        // Into another cell: out of the old one.
        assert_eq!(grid.update(e(1), cell, 55.0, 55.0), (5, 5));
        assert_eq!(block(&grid, (0, 0)), FxHashSet::from_iter([e(2)]));
        assert_eq!(grid.around((4, 4)).collect::<Vec<_>>(), [(e(1), 55.0, 55.0)]);
        grid.remove(e(1), (5, 5));
        grid.remove(e(2), (0, 0));
        assert!(grid.is_empty());
        // Removing what is not there changes nothing.
        grid.remove(e(3), (0, 0));
        assert!(grid.is_empty());
    }

    #[test]
    fn the_block_around_a_player_holds_everyone_within_the_leave_distance() {
        // Whatever the positions, anyone within R + M of a player is in its 3×3 block.
        let rule = ViewRule { radius: 7.0, margin: 1.5 };
        let mut grid = Grid::new(rule.cell_size());
        let positions: Vec<(f32, f32)> =
            (0..400).map(|i| (((i * 37) % 101) as f32 * 0.7 - 35.0, ((i * 53) % 97) as f32 * 0.7 - 34.0)).collect();
        for (i, &(x, z)) in positions.iter().enumerate() {
            grid.insert(e(i as u32), x, z);
        }
        for (i, &a) in positions.iter().enumerate() {
            let block = block(&grid, grid.cell_of(a.0, a.1));
            for (j, &b) in positions.iter().enumerate() {
                if !rule.leaves_view(ViewRule::distance_squared(a, b)) {
                    assert!(block.contains(&e(j as u32)), "{i} and {j} are within R + M");
                }
            }
        }
    }
}
