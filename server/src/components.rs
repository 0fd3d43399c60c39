//! The components every gameplay module shares: a [`Player`], where it stands ([`Position`]),
//! the room it is in ([`InRoom`]) and the [`Room`] itself.
//!
//! They are a module of their own so that the modules that give them meaning (`room` enters and
//! leaves players, `interest` keeps views, `movement` moves them) can all read them without
//! reading each other: `room` uses `interest`'s views, so `interest` must not need `room`.

use bevy_ecs::prelude::*;

/// A player in the game. Its entity is its connection's.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Player {
    /// The id clients know it by, counting from 1.
    pub id: i32,
}

/// Where a player stands.
#[derive(Component, Debug, Clone, Copy, PartialEq, Default)]
pub struct Position {
    /// x
    pub x: f32,
    /// y
    pub y: f32,
    /// z
    pub z: f32,
}

/// The room a player is in: the one source of truth for membership. Bevy keeps the room's
/// [`Room`] member list in step with it (a relationship): inserting an `InRoom` appends the
/// player to the list, removing it (or despawning the player) takes the player out. Game code
/// adds a server-side character to a room by spawning it with an `InRoom` (and a [`Player`] and
/// a [`Position`], to be listed to newcomers); it is sent nothing.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
#[relationship(relationship_target = Room)]
pub struct InRoom(pub Entity);

/// A room: players in it see each other; broadcasts stay inside it. Its member list is kept by
/// Bevy from the members' [`InRoom`]. A room closes when its last member leaves (Bevy removes an
/// emptied member list, and the room's entity is despawned with it).
#[derive(Component, Debug, Clone)]
#[relationship_target(relationship = InRoom)]
pub struct Room {
    /// Counting from 1, in the order rooms opened.
    pub id: u32,
    /// Members, in the order they entered.
    #[relationship]
    members: Vec<Entity>,
}

impl Room {
    /// An empty room.
    pub fn new(id: u32) -> Self {
        Self { id, members: Vec::new() }
    }

    /// The members, in the order they entered.
    pub fn members(&self) -> &[Entity] {
        &self.members
    }
}
