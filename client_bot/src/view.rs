//! One bot's view of the game, built only from what the server told it, and the protocol checks
//! made while building it. Pure logic: no ECS, no sockets.

use std::fmt;

/// A position, as sent on the wire.
pub type Pos = [f32; 3];

/// Something the server did that the protocol does not allow.
#[derive(Debug, Clone, PartialEq)]
pub enum Violation {
    /// The player list(s) marked no player, or several, as the receiver.
    SelfCount(usize),
    /// A player announced again while already known.
    DoubleEnter(i32),
    /// A leave for a player not known.
    LeaveWithoutEnter(i32),
    /// A move of a player not known.
    MoveOfUnknown(i32),
    /// A list or another player's news before the receiver's own enter completed, or a list after it.
    OutOfOrder(&'static str),
    /// The echo of the bot's own move carries a position it did not send.
    WrongEcho {
        /// The position echoed.
        got: Pos,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::SelfCount(n) => write!(f, "the player list marked {n} players isSelf (expected exactly 1)"),
            Violation::DoubleEnter(id) => write!(f, "player {id} entered twice"),
            Violation::LeaveWithoutEnter(id) => write!(f, "player {id} left without having entered"),
            Violation::MoveOfUnknown(id) => write!(f, "a move of player {id}, who never entered"),
            Violation::OutOfOrder(what) => write!(f, "out of order: {what}"),
            Violation::WrongEcho { got } => write!(f, "own move echoed at {got:?}, a position never sent"),
        }
    }
}

/// What one bot knows.
#[derive(Debug, Default, Clone)]
pub struct View {
    /// The bot's own player id, from its list's `isSelf` entry.
    self_id: Option<i32>,
    /// Where its list put it (its spawn point).
    self_pos: Option<Pos>,
    /// Whether its own `S_BroadcastEnterGame` arrived (after its list).
    entered: bool,
    /// Every other player it was told about and not told left, with the last position heard.
    others: rustc_hash::FxHashMap<i32, Pos>,
}

impl View {
    /// The bot's player id, once its list arrived.
    pub fn self_id(&self) -> Option<i32> {
        self.self_id
    }

    /// Where the bot's list put it (its spawn point), once its list arrived.
    pub fn self_position(&self) -> Option<Pos> {
        self.self_pos
    }

    /// Whether the bot has entered (list then own enter).
    pub fn entered(&self) -> bool {
        self.entered
    }

    /// Other players known, with their last positions.
    pub fn others(&self) -> &rustc_hash::FxHashMap<i32, Pos> {
        &self.others
    }

    /// An `S_PlayerList` packet (a long list comes as several, all before the own enter).
    pub fn on_list(&mut self, players: impl IntoIterator<Item = (bool, i32, Pos)>) -> Vec<Violation> {
        let mut violations = Vec::new();
        if self.entered {
            violations.push(Violation::OutOfOrder("a player list after the own enter"));
        }
        for (is_self, id, pos) in players {
            if is_self {
                self.self_pos = Some(pos);
                if self.self_id.replace(id).is_some() {
                    violations.push(Violation::SelfCount(2));
                }
            } else if self.others.insert(id, pos).is_some() {
                violations.push(Violation::DoubleEnter(id));
            }
        }
        violations
    }

    /// An `S_BroadcastEnterGame`.
    pub fn on_enter(&mut self, id: i32, pos: Pos) -> Vec<Violation> {
        if !self.entered {
            return match self.self_id {
                // Its own enter, closing the enter sequence.
                Some(me) if me == id => {
                    self.entered = true;
                    Vec::new()
                }
                Some(_) => vec![Violation::OutOfOrder("another player's enter before the own enter")],
                None => vec![Violation::SelfCount(0)],
            };
        }
        if Some(id) == self.self_id || self.others.insert(id, pos).is_some() {
            return vec![Violation::DoubleEnter(id)];
        }
        Vec::new()
    }

    /// An `S_BroadcastLeaveGame`.
    pub fn on_leave(&mut self, id: i32) -> Vec<Violation> {
        if self.others.remove(&id).is_none() {
            return vec![Violation::LeaveWithoutEnter(id)];
        }
        Vec::new()
    }

    /// Another player's `S_BroadcastMove` (the bot's own echoes are matched elsewhere).
    pub fn on_move(&mut self, id: i32, pos: Pos) -> Vec<Violation> {
        match self.others.get_mut(&id) {
            Some(known) => {
                *known = pos;
                Vec::new()
            }
            None => vec![Violation::MoveOfUnknown(id)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const O: Pos = [0.0; 3];

    fn entered(me: i32, others: &[i32]) -> View {
        let mut v = View::default();
        let list = others.iter().map(|id| (false, *id, O)).chain([(true, me, O)]);
        assert!(v.on_list(list).is_empty());
        assert!(v.on_enter(me, O).is_empty());
        v
    }

    #[test]
    fn a_normal_life() {
        let mut v = entered(3, &[1, 2]);
        assert_eq!(v.self_id(), Some(3));
        assert!(v.on_enter(4, O).is_empty());
        assert!(v.on_move(4, [1.0, 0.0, 2.0]).is_empty());
        assert_eq!(v.others()[&4], [1.0, 0.0, 2.0]);
        assert!(v.on_leave(1).is_empty());
        assert_eq!(v.others().len(), 2);
    }

    #[test]
    fn a_list_split_in_two_is_one_list() {
        let mut v = View::default();
        assert!(v.on_list([(false, 1, O)]).is_empty());
        assert!(v.on_list([(false, 2, O), (true, 3, [4.0, 0.0, -2.0])]).is_empty());
        assert!(v.on_enter(3, O).is_empty());
        assert_eq!(v.self_position(), Some([4.0, 0.0, -2.0]), "its spawn point");
        assert_eq!(v.others().len(), 2);
    }

    #[test]
    fn isself_must_be_exactly_one() {
        let mut v = View::default();
        assert!(v.on_list([(false, 1, O)]).is_empty());
        assert_eq!(v.on_enter(1, O), vec![Violation::SelfCount(0)]);
        let mut v = View::default();
        assert_eq!(v.on_list([(true, 1, O), (true, 2, O)]), vec![Violation::SelfCount(2)]);
    }

    #[test]
    fn enters_and_leaves_must_match() {
        let mut v = entered(3, &[1]);
        assert_eq!(v.on_enter(1, O), vec![Violation::DoubleEnter(1)]);
        assert_eq!(v.on_enter(3, O), vec![Violation::DoubleEnter(3)]);
        assert_eq!(v.on_leave(9), vec![Violation::LeaveWithoutEnter(9)]);
        assert!(v.on_leave(1).is_empty());
        assert_eq!(v.on_leave(1), vec![Violation::LeaveWithoutEnter(1)]);
        assert_eq!(v.on_move(1, O), vec![Violation::MoveOfUnknown(1)]);
    }

    #[test]
    fn order_of_the_enter_sequence() {
        let mut v = View::default();
        assert!(v.on_list([(true, 5, O)]).is_empty());
        assert_eq!(v.on_enter(6, O), vec![Violation::OutOfOrder("another player's enter before the own enter")]);
        assert!(v.on_enter(5, O).is_empty());
        assert_eq!(v.on_list([]), vec![Violation::OutOfOrder("a player list after the own enter")]);
    }
}
