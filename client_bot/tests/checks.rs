//! The bots' protocol checks catch a server that breaks the protocol: each misbehaviour below is
//! counted as a violation, a lost echo or a mismatch, and the run is not clean.

use std::time::Duration;

use bevy_app::{App, Update};
use bevy_ecs::prelude::*;
use client_bot::{BotConfig, Report};
use net_plugin::testing::AppThread;
use net_plugin::{Connected, NetConfig, Outbox, Received, ServerPlugin};
use shared::s_player_list::Player as Listed;
use shared::{C_Move, S_BroadcastEnterGame, S_BroadcastLeaveGame, S_BroadcastMove, S_PlayerList};

/// What the fake server gets wrong.
#[derive(Resource, Clone, Copy, PartialEq)]
enum Fault {
    /// Lists the newcomer twice as isSelf.
    TwoSelves,
    /// Announces a stranger twice.
    DoubleEnter,
    /// Says a stranger left who never entered.
    StrayLeave,
    /// Echoes every move somewhere else.
    WrongEcho,
    /// Never echoes moves.
    NoEcho,
    /// No fault: a stranger in view leaves it and comes back in the next frame, as with
    /// interest management.
    LeavesAndComesBack,
}

/// A server that enters each newcomer (ids from 1) and echoes its moves, with one fault.
fn fake_server(fault: Fault) -> (AppThread, std::net::SocketAddr) {
    let net = ServerPlugin::bind("127.0.0.1:0", NetConfig::default()).unwrap();
    let addr = net.local_addr();
    let app = AppThread::spawn(move || {
        let mut app = App::new();
        app.add_plugins(net).insert_resource(fault).add_systems(Update, (enter, echo, come_back));
        app
    });
    (app, addr)
}

fn enter(mut connected: MessageReader<Connected>, fault: Res<Fault>, mut outbox: Outbox, mut next: Local<i32>) {
    for c in connected.read() {
        *next += 1;
        let me = Listed { is_self: true, player_id: *next, pos_x: 0.0, pos_y: 0.0, pos_z: 0.0 };
        let mut players = vec![me.clone()];
        if *fault == Fault::TwoSelves {
            players.push(Listed { player_id: 1000, ..me });
        }
        outbox.send(c.entity, &S_PlayerList { players });
        outbox.send(c.entity, &S_BroadcastEnterGame { player_id: *next, pos_x: 0.0, pos_y: 0.0, pos_z: 0.0 });
        let stranger = S_BroadcastEnterGame { player_id: 5000, pos_x: 0.0, pos_y: 0.0, pos_z: 0.0 };
        match *fault {
            Fault::DoubleEnter => {
                outbox.send(c.entity, &stranger);
                outbox.send(c.entity, &stranger);
            }
            Fault::StrayLeave => outbox.send(c.entity, &S_BroadcastLeaveGame { player_id: 6000 }),
            Fault::LeavesAndComesBack => outbox.send(c.entity, &stranger),
            _ => {}
        }
    }
}

/// Echoes moves to their sender, as player 1 (each test runs one bot, which is player 1).
fn echo(mut moves: MessageReader<Received<C_Move>>, fault: Res<Fault>, mut outbox: Outbox) {
    for Received { from, packet, .. } in moves.read() {
        if *fault == Fault::NoEcho {
            continue;
        }
        let x = if *fault == Fault::WrongEcho { packet.pos_x + 1000.0 } else { packet.pos_x };
        outbox.send(*from, &S_BroadcastMove { player_id: 1, pos_x: x, pos_y: packet.pos_y, pos_z: packet.pos_z });
    }
}

/// With [`Fault::LeavesAndComesBack`]: 100 frames after a newcomer, the stranger leaves its
/// view; the frame after, it comes back and moves.
fn come_back(
    mut connected: MessageReader<Connected>,
    fault: Res<Fault>,
    mut outbox: Outbox,
    mut pending: Local<Vec<(Entity, u32)>>,
) {
    if *fault != Fault::LeavesAndComesBack {
        return;
    }
    pending.extend(connected.read().map(|c| (c.entity, 0)));
    for (to, frames) in pending.iter_mut() {
        *frames += 1;
        match *frames {
            100 => outbox.send(*to, &S_BroadcastLeaveGame { player_id: 5000 }),
            101 => {
                outbox.send(*to, &S_BroadcastEnterGame { player_id: 5000, pos_x: 3.0, pos_y: 0.0, pos_z: 3.0 });
                outbox.send(*to, &S_BroadcastMove { player_id: 5000, pos_x: 4.0, pos_y: 0.0, pos_z: 4.0 });
            }
            _ => {}
        }
    }
}

fn run_against(fault: Fault) -> Report {
    let (_server, addr) = fake_server(fault);
    let config = BotConfig {
        addr,
        bots: 1,
        duration: Duration::from_millis(800),
        move_interval: Duration::from_millis(100),
        echo_timeout: Duration::from_millis(500),
        quiet: true,
        ..BotConfig::default()
    };
    client_bot::run(config).unwrap()
}

#[test]
fn two_isself_entries_are_a_violation() {
    let report = run_against(Fault::TwoSelves);
    assert!(report.violations >= 1, "{report}");
    assert!(report.violation_samples[0].contains("isSelf"), "{:?}", report.violation_samples);
    assert!(!report.clean());
}

#[test]
fn a_player_announced_twice_is_a_violation() {
    let report = run_against(Fault::DoubleEnter);
    assert_eq!(report.violations, 1, "{report}");
    assert!(report.violation_samples[0].contains("player 5000 entered twice"));
}

#[test]
fn a_leave_without_an_enter_is_a_violation() {
    let report = run_against(Fault::StrayLeave);
    assert_eq!(report.violations, 1, "{report}");
    assert!(report.violation_samples[0].contains("player 6000 left without having entered"));
}

#[test]
fn an_echo_at_a_position_never_sent_is_a_violation() {
    let report = run_against(Fault::WrongEcho);
    assert!(report.violations >= 1, "{report}");
    assert!(report.violation_samples[0].contains("never sent"));
    assert!(report.echo_lost >= 1, "the real moves were never echoed");
}

#[test]
fn moves_never_echoed_are_lost_echoes() {
    let report = run_against(Fault::NoEcho);
    // How many moves fit in the run is timing; that every one of them is counted lost is not.
    assert!(report.moves_sent >= 1, "{report}");
    assert_eq!(report.echo_lost, report.moves_sent, "{report}");
    assert!(!report.clean());
}

#[test]
fn a_player_that_leaves_and_comes_back_between_two_bot_frames_is_no_violation() {
    // The bot's frames are 250 ms long and the server's 2 ms: the leave and the come-back reach
    // the bot within one of its frames, as packets of different types.
    let (_server, addr) = fake_server(Fault::LeavesAndComesBack);
    let config = BotConfig {
        addr,
        bots: 1,
        duration: Duration::from_millis(1500),
        frame_hz: 4,
        idle: true,
        quiet: true,
        ..BotConfig::default()
    };
    let report = client_bot::run(config).unwrap();
    assert_eq!(report.violations, 0, "{report}");
    assert!(report.packets_received >= 5, "the leave, the enter and the move arrived: {report}");
}
