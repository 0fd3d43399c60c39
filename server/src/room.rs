//! Rooms, and players entering and leaving them (the course's GameRoom.Enter and Leave).
//!
//! A player is the connection's own entity with a [`Player`], a [`Position`] and an [`InRoom`].
//! A room is an entity with a [`Room`], listing its members in the order they entered.

use std::collections::HashMap;

use bevy_app::{App, Plugin, PreUpdate};
use bevy_ecs::prelude::*;
use net_plugin::{Connected, Disconnected, NetSystems, Outbox, Received};
use shared::s_player_list::Player as ListedPlayer;
use shared::{C_LeaveGame, S_BroadcastEnterGame, S_BroadcastLeaveGame, S_PlayerList};

use crate::GameSystems;

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

/// The room a player is in.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct InRoom(pub Entity);

/// A room: players in it see each other; broadcasts stay inside it.
#[derive(Component, Debug, Clone)]
pub struct Room {
    /// Counting from 1, in the order rooms opened.
    pub id: u32,
    /// Members, in the order they entered.
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

    /// Adds a member that is not a connection (a server-side character). It needs a [`Player`],
    /// a [`Position`] and an [`InRoom`] to be listed to newcomers; it is sent nothing.
    pub fn add_member(&mut self, entity: Entity) {
        self.members.push(entity);
    }
}

/// Players per room (`None`: one room for everyone).
#[derive(Resource, Debug, Clone, Copy)]
pub struct RoomCapacity(pub Option<usize>);

/// The next player id to hand out.
#[derive(Resource, Debug)]
struct NextPlayerId(i32);

/// Players enter a room when they connect, and leave it on `C_LeaveGame` or disconnect.
pub struct RoomPlugin {
    /// Players per room; `None` for one room.
    pub capacity: Option<usize>,
}

impl Plugin for RoomPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(RoomCapacity(self.capacity))
            .insert_resource(NextPlayerId(1))
            .configure_sets(PreUpdate, GameSystems::Membership.after(NetSystems::Receive))
            .add_systems(PreUpdate, (enter_players, leave_players).chain().in_set(GameSystems::Membership))
            .add_observer(announce_leave);
    }
}

/// Puts each new connection in a room (the first with space, or a new one) and tells it who is
/// there (`S_PlayerList`, itself marked `isSelf`); then tells everyone in the room, itself too,
/// that it entered (`S_BroadcastEnterGame`, at the spawn point 0,0,0).
///
/// Connections are handled one after another, so two that connect in the same frame are each
/// told about the other exactly once: the first by the second's enter broadcast, the second by
/// its list.
fn enter_players(
    mut connected: MessageReader<Connected>,
    mut rooms: Query<(Entity, &mut Room)>,
    players: Query<(&Player, &Position)>,
    capacity: Res<RoomCapacity>,
    mut next_id: ResMut<NextPlayerId>,
    mut commands: Commands,
    mut outbox: Outbox,
    // Players who entered in this run: their components are not inserted until it ends.
    mut entered: Local<HashMap<Entity, i32>>,
    // Rooms opened in this run, likewise.
    mut opened: Local<Vec<(Entity, Room)>>,
) {
    entered.clear();
    for c in connected.read() {
        let id = next_id.0;
        next_id.0 = next_id.0.checked_add(1).unwrap_or(1);
        entered.insert(c.entity, id);

        // The first room (lowest id) with space, else a new one.
        let fits = |room: &Room| capacity.0.is_none_or(|cap| room.members.len() < cap);
        let target = rooms
            .iter()
            .filter(|(_, r)| fits(r))
            .min_by_key(|(_, r)| r.id)
            .map(|(e, _)| e)
            .or_else(|| opened.iter().find(|(_, r)| fits(r)).map(|(e, _)| *e));
        let room_entity = target.unwrap_or_else(|| {
            let room_id =
                rooms.iter().map(|(_, r)| r.id).chain(opened.iter().map(|(_, r)| r.id)).max().unwrap_or(0) + 1;
            let entity = commands.spawn_empty().id();
            opened.push((entity, Room::new(room_id)));
            tracing::info!(room = room_id, "room opened");
            entity
        });
        let room: &mut Room = match opened.iter_mut().find(|(e, _)| *e == room_entity) {
            Some((_, room)) => room,
            None => rooms.get_mut(room_entity).expect("a room found above").1.into_inner(),
        };
        room.members.push(c.entity);

        let listed: Vec<ListedPlayer> = room
            .members
            .iter()
            .filter_map(|member| {
                let (player_id, pos) = match entered.get(member) {
                    Some(id) => (*id, Position::default()),
                    None => players.get(*member).map(|(p, pos)| (p.id, *pos)).ok()?,
                };
                Some(ListedPlayer { is_self: *member == c.entity, player_id, pos_x: pos.x, pos_y: pos.y, pos_z: pos.z })
            })
            .collect();
        // One packet, or several when the room holds more than `S_PlayerList::MAX_PLAYERS`.
        for list in S_PlayerList::split(listed) {
            outbox.send(c.entity, &list);
        }
        let enter = S_BroadcastEnterGame { player_id: id, pos_x: 0.0, pos_y: 0.0, pos_z: 0.0 };
        outbox.broadcast(room.members.iter().copied(), &enter);
        commands.entity(c.entity).insert((Player { id }, Position::default(), InRoom(room_entity)));
        tracing::debug!(player = id, peer = %c.peer, "player entered");
    }
    for (entity, room) in opened.drain(..) {
        commands.entity(entity).insert(room);
    }
}

/// Players who sent `C_LeaveGame` or disconnected stop being players; [`announce_leave`] does
/// the rest. A leave followed by a disconnect is one leave.
fn leave_players(
    mut leaves: MessageReader<Received<C_LeaveGame>>,
    mut disconnects: MessageReader<Disconnected>,
    players: Query<(), With<Player>>,
    mut commands: Commands,
) {
    let leaving = leaves.read().map(|l| l.from).chain(disconnects.read().map(|d| d.entity));
    for entity in leaving {
        if players.contains(entity) {
            commands.entity(entity).remove::<(Player, Position, InRoom)>();
        }
    }
}

/// Whenever a player stops being one (it left, it disconnected, or game code removed its
/// `Player` or despawned it), it is taken out of its room and the others are told
/// (`S_BroadcastLeaveGame`), once: membership is the truth, so a second removal finds nothing.
/// A player who left sends nothing more to the room.
fn announce_leave(
    removed: On<Remove<Player>>,
    players: Query<(&Player, &InRoom)>,
    mut rooms: Query<&mut Room>,
    mut outbox: Outbox,
) {
    let entity = removed.event().entity;
    let Ok((player, in_room)) = players.get(entity) else { return };
    let Ok(mut room) = rooms.get_mut(in_room.0) else { return };
    let Some(index) = room.members.iter().position(|m| *m == entity) else { return };
    room.members.remove(index);
    outbox.broadcast(room.members.iter().copied(), &S_BroadcastLeaveGame { player_id: player.id });
    tracing::debug!(player = player.id, "player left");
}
