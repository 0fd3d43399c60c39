//! Rooms, and players entering and leaving them (the course's GameRoom.Enter and Leave).
//!
//! A player is the connection's own entity with a [`Player`], a [`Position`] and an [`InRoom`].
//! A room is an entity with a [`Room`], listing its members in the order they entered. The
//! components themselves are in [`crate::components`] (every gameplay module reads them, and
//! `interest`, which this module uses, must not need this one); they are re-exported here.

use bevy_app::{App, Plugin, PreUpdate};
use bevy_ecs::prelude::*;
use net_plugin::{Connected, Disconnected, NetSystems, Outbox, Received};
use shared::s_player_list::Player as ListedPlayer;
use shared::{C_LeaveGame, S_BroadcastEnterGame, S_BroadcastLeaveGame, S_PlayerList};

use rustc_hash::FxHashMap;

pub use crate::components::{InRoom, Player, Position, Room};

use crate::GameSystems;
use crate::interest::{GridCell, Interest, Spawner, View};

/// The players on a connection, as opposed to characters game code put in a room: what a drain
/// waits for and what Agones counts.
pub type ConnectedPlayers<'w, 's> = Query<'w, 's, Entity, (With<Player>, With<net_plugin::Connection>)>;

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
            .add_observer(announce_leave)
            .add_observer(close_room);
    }
}

/// Newcomers of one run of [`enter_players`]: their components (and so their places in the
/// rooms' member lists) are not inserted until the run ends.
#[derive(Default)]
struct Entering {
    /// Each newcomer's id and spawn point.
    players: FxHashMap<Entity, (i32, Position)>,
    /// Each room's newcomers, in order.
    members: FxHashMap<Entity, Vec<Entity>>,
    /// Rooms opened in this run: (entity, id).
    opened: Vec<(Entity, u32)>,
    /// Views of the newcomers (with a view radius).
    views: FxHashMap<Entity, View>,
}

/// Puts each new connection in a room (the first with space, or a new one) at its spawn point,
/// and tells it who is there (`S_PlayerList`, itself marked `isSelf`); then tells everyone in
/// the room, itself too, that it entered (`S_BroadcastEnterGame`, at its spawn point). With a
/// view radius, "who is there" and "everyone" are the players in its view.
///
/// Connections are handled one after another, so two that connect in the same frame are each
/// told about the other exactly once: the first by the second's enter broadcast, the second by
/// its list.
#[allow(clippy::too_many_arguments)]
fn enter_players(
    mut connected: MessageReader<Connected>,
    rooms: Query<(Entity, &Room)>,
    players: Query<(&Player, &Position)>,
    mut views: Query<&mut View>,
    capacity: Res<RoomCapacity>,
    mut interest: Option<ResMut<Interest>>,
    mut spawner: Option<ResMut<Spawner>>,
    mut next_id: ResMut<NextPlayerId>,
    mut commands: Commands,
    mut outbox: Outbox,
    mut run: Local<Entering>,
) {
    let run = &mut *run;
    for c in connected.read() {
        let id = next_id.0;
        next_id.0 = next_id.0.checked_add(1).unwrap_or(1);
        let spawn = spawner.as_mut().map_or_else(Position::default, |s| s.spawn_point());
        run.players.insert(c.entity, (id, spawn));

        // The first room (lowest id) with space, else a new one.
        let added = |room: Entity| run.members.get(&room).map_or(0, Vec::len);
        let fits = |room: Entity, len: usize| capacity.0.is_none_or(|cap| len + added(room) < cap);
        let target = rooms
            .iter()
            .filter(|(e, r)| fits(*e, r.members().len()))
            .min_by_key(|(_, r)| r.id)
            .map(|(e, _)| e)
            .or_else(|| run.opened.iter().find(|(e, _)| fits(*e, 0)).map(|(e, _)| *e));
        let room_entity = target.unwrap_or_else(|| {
            let room_id =
                rooms.iter().map(|(_, r)| r.id).chain(run.opened.iter().map(|(_, id)| *id)).max().unwrap_or(0) + 1;
            let entity = commands.spawn(Room::new(room_id)).id();
            run.opened.push((entity, room_id));
            tracing::info!(room = room_id, "room opened");
            entity
        });
        let newcomers = run.members.entry(room_entity).or_default();
        newcomers.push(c.entity);
        let position_of = |member: Entity| match run.players.get(&member) {
            Some((id, pos)) => Some((*id, *pos)),
            None => players.get(member).ok().map(|(p, pos)| (p.id, *pos)),
        };

        // Who the newcomer sees: everyone in the room, or with a view radius those near it.
        let (seen, cell) = match interest.as_mut() {
            // Everyone in the room, in the order they entered: those before this run, then this run's.
            None => {
                let before = rooms.get(room_entity).map(|(_, r)| r.members()).unwrap_or_default();
                (before.iter().chain(newcomers.iter()).copied().collect::<Vec<_>>(), None)
            }
            Some(interest) => {
                let (cell, near) = interest.enter(room_entity, c.entity, spawn, |e| Some(position_of(e)?.0));
                let mut view = View::default();
                for &(_, other) in &near {
                    view.insert(other);
                    // Seen both ways: a newcomer of this run keeps its view here until the run ends.
                    if let Some(theirs) = run.views.get_mut(&other) {
                        theirs.insert(c.entity);
                    } else if let Ok(mut theirs) = views.get_mut(other) {
                        theirs.insert(c.entity);
                    }
                }
                run.views.insert(c.entity, view);
                (near.into_iter().map(|(_, e)| e).chain([c.entity]).collect(), Some(cell))
            }
        };

        let listed: Vec<ListedPlayer> = seen
            .iter()
            .filter_map(|member| {
                let (player_id, pos) = position_of(*member)?;
                Some(ListedPlayer { is_self: *member == c.entity, player_id, pos_x: pos.x, pos_y: pos.y, pos_z: pos.z })
            })
            .collect();
        // One packet, or several when the room holds more than `S_PlayerList::MAX_PLAYERS`.
        for list in S_PlayerList::split(listed) {
            outbox.send(c.entity, &list);
        }
        let enter = S_BroadcastEnterGame { player_id: id, pos_x: spawn.x, pos_y: spawn.y, pos_z: spawn.z };
        outbox.broadcast(seen.iter().copied(), &enter);
        let mut player = commands.entity(c.entity);
        player.insert((Player { id }, spawn, InRoom(room_entity)));
        if let Some(cell) = cell {
            player.insert(GridCell(cell));
        }
        tracing::debug!(player = id, peer = %c.peer, "player entered");
    }
    for (entity, view) in run.views.drain() {
        commands.entity(entity).insert(view);
    }
    run.players.clear();
    run.members.clear();
    run.opened.clear();
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
            commands.entity(entity).remove::<(Player, Position, InRoom, View, GridCell)>();
        }
    }
}

/// Whenever a player stops being one (it left, it disconnected, or game code removed its
/// `Player` or despawned it), those who saw it are told (`S_BroadcastLeaveGame`), once: the
/// room's other members, or with a view radius the players in its view. Bevy has already taken
/// it out of its room's member list (its `InRoom` goes with it); with a view radius it is taken
/// out of the others' views and its room's grid here. A second removal finds no `Player`.
fn announce_leave(
    removed: On<Remove<Player>>,
    players: Query<(&Player, &InRoom, Option<&GridCell>)>,
    rooms: Query<&Room>,
    mut views: Query<&mut View>,
    interest: Option<ResMut<Interest>>,
    mut outbox: Outbox,
    mut commands: Commands,
) {
    let entity = removed.event().entity;
    let Ok((player, in_room, cell)) = players.get(entity) else { return };
    let leave = S_BroadcastLeaveGame { player_id: player.id };
    match interest {
        Some(mut interest) => {
            let seen = views.get_mut(entity).map(|mut v| v.take()).unwrap_or_default();
            for other in &seen {
                if let Ok(mut theirs) = views.get_mut(*other) {
                    theirs.remove(entity);
                }
            }
            outbox.broadcast(seen, &leave);
            if let Some(cell) = cell {
                interest.grid(in_room.0).remove(entity, cell.0);
            }
        }
        None => {
            if let Ok(room) = rooms.get(in_room.0) {
                // When its `InRoom` goes with it, Bevy has already taken it off the list.
                outbox.broadcast(room.members().iter().copied().filter(|m| *m != entity), &leave);
            }
        }
    }
    // Game code that removed only the `Player` leaves the rest: a connection no longer a
    // player is in no room and sent no room's news.
    commands.entity(entity).try_remove::<(Position, InRoom, View, GridCell)>();
    tracing::debug!(player = player.id, "player left");
}

/// A room whose last member left (Bevy removed its emptied member list) is closed: its entity
/// goes, so no empty rooms pile up.
fn close_room(removed: On<Remove<Room>>, rooms: Query<&Room>, mut commands: Commands) {
    let entity = removed.event().entity;
    if let Ok(room) = rooms.get(entity) {
        tracing::info!(room = room.id, "room closed");
    }
    commands.entity(entity).try_despawn();
}
