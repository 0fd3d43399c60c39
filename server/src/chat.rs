//! Chat (the course's earlier stage): a line from a player goes to everyone in its room,
//! sender included, as `S_Chat { playerId, text }`.

use bevy_app::{App, Plugin, Update};
use bevy_ecs::prelude::*;
use net_plugin::{DisconnectReason, Outbox, Received};
use shared::{C_Chat, S_Chat};

use crate::GameSystems;
use crate::interest::View;
use crate::room::{InRoom, Player, Room};

/// The longest chat line, in characters.
#[derive(Resource, Debug, Clone, Copy)]
pub struct ChatLimit(pub usize);

/// Relays chat within rooms.
pub struct ChatPlugin {
    /// The longest line, in characters; a longer one disconnects its sender (invalid input).
    pub max_chars: usize,
}

impl Plugin for ChatPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(ChatLimit(self.max_chars)).add_systems(Update, relay_chat.in_set(GameSystems::Chat));
    }
}

/// Relays each line to the sender's room (with a view radius: to the players in the sender's
/// view, local chat). Lines from connections that are not players (they left) are dropped.
fn relay_chat(
    mut chats: MessageReader<Received<C_Chat>>,
    players: Query<(&Player, &InRoom, Option<&View>)>,
    rooms: Query<&Room>,
    limit: Res<ChatLimit>,
    mut outbox: Outbox,
) {
    for Received { from, packet, .. } in chats.read() {
        let Ok((player, in_room, view)) = players.get(*from) else { continue };
        let chars = packet.chat.chars().count();
        if chars > limit.0 {
            let why = format!("a chat line of {chars} characters, above the limit of {}", limit.0);
            outbox.close(*from, DisconnectReason::InvalidInput(why.into()));
            continue;
        }
        let Ok(room) = rooms.get(in_room.0) else { continue };
        let line = S_Chat { player_id: player.id, chat: packet.chat.clone() };
        // A line as long as the largest C_Chat a client may send is 4 bytes too long for S_Chat:
        // the sender's fault, not a reason to drop the line silently.
        if let Err(e) = shared::wire_len(&line) {
            outbox.close(*from, DisconnectReason::InvalidInput(e.to_string().into()));
            continue;
        }
        match view {
            Some(view) => outbox.broadcast(view.iter().chain([*from]), &line),
            None => outbox.broadcast(room.members().iter().copied(), &line),
        }
    }
}
