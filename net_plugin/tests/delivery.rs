//! Packets in and out: typed messages per packet, frames split anywhere, order kept, a broadcast
//! reaching every session exactly once.

mod support;

use std::time::Duration;

use bevy_app::Update;
use bevy_ecs::prelude::*;
use net_plugin::testing::{RawClient, with_outbox};
use net_plugin::{Connected, Connection, EncodeError, NetConfig, NetStats, Outbox, PacketBatch, Received};
use shared::{C_Chat, C_LeaveGame, C_Move, Packet, S_BroadcastMove, S_Chat, ServerPacket, encode_to_vec};
use support::{QUIET, WAIT, recorded, start_server, start_server_with, stats, wait_recorded};

#[test]
fn each_packet_type_arrives_as_its_own_message_from_its_sender() {
    let (server, addr) = start_server();
    let mut a = RawClient::connect(addr);
    let mut b = RawClient::connect(addr);
    assert!(wait_recorded::<Connected>(&server, 2));
    a.send(&C_Move { pos_x: 1.5, pos_y: 2.0, pos_z: -3.0 });
    b.send(&C_Chat { chat: "안녕 😀".into() });
    a.send(&C_LeaveGame);
    assert!(wait_recorded::<Received<C_LeaveGame>>(&server, 1));
    assert!(wait_recorded::<Received<C_Chat>>(&server, 1));

    let connected = recorded::<Connected>(&server);
    let entity_of = |client: &RawClient| {
        let local = client.stream().local_addr().unwrap();
        connected.iter().find(|c| c.peer == local).unwrap().entity
    };
    let moves = recorded::<Received<C_Move>>(&server);
    assert_eq!(moves.len(), 1);
    assert_eq!(moves[0].from, entity_of(&a));
    assert_eq!(moves[0].packet, C_Move { pos_x: 1.5, pos_y: 2.0, pos_z: -3.0 });
    let chats = recorded::<Received<C_Chat>>(&server);
    assert_eq!((chats[0].from, chats[0].packet.chat.as_str()), (entity_of(&b), "안녕 😀"));
    assert_eq!(recorded::<Received<C_LeaveGame>>(&server)[0].from, entity_of(&a));
    // And the replies come back typed (b also gets a's move, broadcast to everyone).
    let mut replies = std::iter::from_fn(|| b.recv::<ServerPacket>(WAIT));
    assert!(replies.any(|p| matches!(p, ServerPacket::Chat(S_Chat { chat, .. }) if chat == "안녕 😀")));
}

#[test]
fn a_packet_split_at_every_byte_boundary_arrives_whole() {
    let (server, addr) = start_server();
    let mut client = RawClient::connect(addr);
    let packet = C_Chat { chat: "split me".into() };
    let bytes = encode_to_vec(&packet).unwrap();
    for cut in 1..bytes.len() {
        client.send_bytes(&bytes[..cut]);
        // Let the first part arrive (and be read) on its own.
        std::thread::sleep(Duration::from_millis(3));
        client.send_bytes(&bytes[cut..]);
    }
    let n = bytes.len() - 1;
    assert!(wait_recorded::<Received<C_Chat>>(&server, n));
    let chats = recorded::<Received<C_Chat>>(&server);
    assert_eq!(chats.len(), n);
    assert!(chats.iter().all(|c| c.packet == packet));
}

#[test]
fn ten_thousand_packets_keep_their_order_both_ways() {
    let config = NetConfig { inbound_rate: None, ..NetConfig::default() };
    let (server, addr) = start_server_with(config, |app| {
        app.add_systems(Update, support::broadcast_moves);
    });
    let mut client = RawClient::connect(addr);
    assert!(wait_recorded::<Connected>(&server, 1));
    // In: 10,000 moves in a few large writes.
    let mut bytes = Vec::new();
    for i in 0..10_000 {
        bytes.extend(encode_to_vec(&C_Move { pos_x: i as f32, pos_y: 0.0, pos_z: 0.0 }).unwrap());
    }
    // The default rate limit (100/s, bursts of 200) would rightly call this a flood.
    for chunk in bytes.chunks(16 * 1000) {
        client.send_bytes(chunk);
    }
    assert!(wait_recorded::<Received<C_Move>>(&server, 10_000));
    let xs: Vec<f32> = recorded::<Received<C_Move>>(&server).iter().map(|m| m.packet.pos_x).collect();
    assert!(xs.iter().enumerate().all(|(i, x)| *x == i as f32), "moves out of order");

    // Out: the server broadcasts each move back; read all 10,000 in order.
    for i in 0..10_000 {
        match client.recv::<ServerPacket>(WAIT) {
            Some(ServerPacket::BroadcastMove(S_BroadcastMove { pos_x, .. })) => assert_eq!(pos_x, i as f32),
            other => panic!("packet {i}: {other:?}"),
        }
    }
}

#[test]
fn a_broadcast_reaches_each_of_500_sessions_exactly_once() {
    let (server, addr) = start_server();
    let mut clients: Vec<RawClient> = (0..500).map(|_| RawClient::connect(addr)).collect();
    assert!(wait_recorded::<Connected>(&server, 500));
    server.run(|app| with_outbox(app.world_mut(), |o| o.send_all(&S_Chat { player_id: 7, chat: "all".into() })));
    for client in &mut clients {
        match client.recv::<ServerPacket>(WAIT) {
            Some(ServerPacket::Chat(c)) => assert_eq!((c.player_id, c.chat.as_str()), (7, "all")),
            other => panic!("expected the broadcast, got {other:?}"),
        }
    }
    // Counted when the frame that sent it flushed: once per session.
    let NetStats { packets_out, flushes, .. } = stats(&server);
    assert_eq!(packets_out, 500);
    assert_eq!(flushes, 500, "one flush per session");
    // Exactly once: a barrier (its chat line echoed) finds nothing before its answer.
    for client in clients.iter_mut().take(50) {
        client.send(&C_Chat { chat: "and then?".into() });
        match client.recv::<ServerPacket>(WAIT) {
            Some(ServerPacket::Chat(c)) => assert_eq!((c.player_id, c.chat.as_str()), (0, "and then?")),
            other => panic!("expected the echo and nothing before it, got {other:?}"),
        }
    }
}

#[test]
fn packets_sent_in_one_frame_leave_in_one_write() {
    let (server, addr) = start_server();
    let mut client = RawClient::connect(addr);
    assert!(wait_recorded::<Connected>(&server, 1));
    let entity = recorded::<Connected>(&server)[0].entity;
    server.run(move |app| {
        with_outbox(app.world_mut(), |o| {
            (0..100).for_each(|i| o.send(entity, &S_Chat { player_id: i, chat: "x".into() }))
        })
    });
    for i in 0..100 {
        assert!(matches!(client.recv::<ServerPacket>(WAIT), Some(ServerPacket::Chat(c)) if c.player_id == i));
    }
    assert_eq!(stats(&server).flushes, 1);
}

#[test]
fn a_batch_reaches_each_recipient_in_order() {
    let (server, addr) = start_server();
    let mut clients: Vec<RawClient> = (0..3).map(|_| RawClient::connect(addr)).collect();
    assert!(wait_recorded::<Connected>(&server, 3));
    let targets: Vec<_> = recorded::<Connected>(&server).iter().map(|c| c.entity).take(2).collect();
    server.run(move |app| {
        let mut batch = PacketBatch::new();
        for i in 0..10 {
            batch.push(&S_BroadcastMove { player_id: i, pos_x: 0.0, pos_y: 0.0, pos_z: 0.0 });
        }
        assert_eq!(batch.len(), 10);
        with_outbox(app.world_mut(), |o| o.send_batch(targets, &batch))
    });
    let connected = recorded::<Connected>(&server);
    let mut others = Vec::new();
    for client in &mut clients {
        let local = client.stream().local_addr().unwrap();
        let targeted = connected.iter().take(2).any(|c| c.peer == local);
        if targeted {
            for i in 0..10 {
                let got = client.recv::<ServerPacket>(WAIT);
                assert!(matches!(&got, Some(ServerPacket::BroadcastMove(m)) if m.player_id == i), "{got:?}");
            }
        } else {
            others.push(client);
        }
    }
    assert_eq!(stats(&server).packets_out, 20);
    assert_eq!(others.len(), 1);
    for client in others {
        assert_echo_comes_first(client);
    }
}

/// A barrier, for a server that echoes chat (`start_server`): sends a line and asserts its echo
/// is the next packet, so nothing was sent to this client before it.
fn assert_echo_comes_first(client: &mut RawClient) {
    client.send(&C_Chat { chat: "barrier".into() });
    let got = client.recv::<ServerPacket>(WAIT);
    assert_eq!(got, Some(ServerPacket::Chat(S_Chat { player_id: 0, chat: "barrier".into() })), "nothing before it");
}

/// Sending a packet of the other direction does not compile (see the `compile_fail` example on
/// `Outbox`); what can fail at run time is a packet too long for the wire format.
#[test]
fn a_packet_too_long_to_encode_is_not_sent_and_is_counted() {
    let (server, addr) = start_server();
    let mut client = RawClient::connect(addr);
    assert!(wait_recorded::<Connected>(&server, 1));
    let entity = recorded::<Connected>(&server)[0].entity;
    // 40,000 UTF-16 units: 80,000 bytes, beyond the u16 string length.
    let huge = S_Chat { player_id: 1, chat: "x".repeat(40_000) };
    let error = server.run(move |app| {
        with_outbox(app.world_mut(), |o| {
            o.send(entity, &huge);
            let error = o.try_send(entity, &huge).unwrap_err();
            o.send(entity, &S_Chat { player_id: 2, chat: "fits".into() });
            error
        })
    });
    assert!(matches!(error, EncodeError::StringTooLong { .. } | EncodeError::PacketTooLarge { .. }), "{error:?}");
    // Only the packet that fits arrives.
    assert!(matches!(client.recv::<ServerPacket>(WAIT), Some(ServerPacket::Chat(c)) if c.player_id == 2));
    assert_echo_comes_first(&mut client);
    assert!(server.wait_until(WAIT, |app| app.world().resource::<NetStats>().packets_unencodable == 1));
}

#[test]
fn a_packet_carries_when_it_was_read() {
    let (server, addr) = start_server();
    let mut client = RawClient::connect(addr);
    assert!(wait_recorded::<Connected>(&server, 1));
    let before = std::time::Instant::now();
    client.send(&C_Chat { chat: "when?".into() });
    assert!(wait_recorded::<Received<C_Chat>>(&server, 1));
    let after = std::time::Instant::now();
    let at = recorded::<Received<C_Chat>>(&server)[0].at;
    assert!(before <= at && at <= after);
}

#[test]
fn packets_of_different_types_carry_their_place_in_the_connections_stream() {
    let (server, addr) = start_server();
    let mut client = RawClient::connect(addr);
    let mv = |x: f32| encode_to_vec(&C_Move { pos_x: x, pos_y: 0.0, pos_z: 0.0 }).unwrap();
    let chat = encode_to_vec(&C_Chat { chat: "between".into() }).unwrap();
    // One write: a move, a chat line, a move; then, later, another chat line.
    client.send_bytes(&[mv(1.0), chat, mv(2.0)].concat());
    assert!(wait_recorded::<Received<C_Move>>(&server, 2));
    client.send(&C_Chat { chat: "after".into() });
    assert!(wait_recorded::<Received<C_Chat>>(&server, 2));
    let moves: Vec<u64> = recorded::<Received<C_Move>>(&server).iter().map(|m| m.seq).collect();
    let chats: Vec<u64> = recorded::<Received<C_Chat>>(&server).iter().map(|m| m.seq).collect();
    assert_eq!((moves, chats), (vec![0, 2], vec![1, 3]));
}

/// Answers each chat line with the number of packets delivered so far: a system that sends and
/// reads the statistics at once (they are separate resources, so Bevy lets it).
fn count_back(mut chats: MessageReader<Received<C_Chat>>, mut outbox: Outbox, stats: Res<NetStats>) {
    for chat in chats.read() {
        outbox.send(chat.from, &S_Chat { player_id: 0, chat: stats.packets_in.to_string() });
    }
}

#[test]
fn packets_are_counted_by_type_in_total_and_per_connection() {
    let (server, addr) = start_server_with(NetConfig::default(), |app| {
        app.add_systems(Update, (count_back, support::broadcast_moves));
    });
    let mut a = RawClient::connect(addr);
    let mut b = RawClient::connect(addr);
    assert!(wait_recorded::<Connected>(&server, 2));
    a.send(&C_Move { pos_x: 1.0, pos_y: 0.0, pos_z: 0.0 });
    a.send(&C_Chat { chat: "how many?".into() });
    // The answer counts the move and the line itself.
    assert!(matches!(a.recv::<ServerPacket>(WAIT), Some(ServerPacket::BroadcastMove(_))));
    assert!(matches!(a.recv::<ServerPacket>(WAIT), Some(ServerPacket::Chat(c)) if c.chat == "2"));
    assert!(matches!(b.recv::<ServerPacket>(WAIT), Some(ServerPacket::BroadcastMove(_))));
    std::thread::sleep(QUIET);

    let stats = stats(&server);
    assert_eq!((stats.packets_in_of(C_Move::ID), stats.packets_in_of(C_Chat::ID), stats.packets_in), (1, 1, 2));
    assert_eq!(stats.packets_in_of(C_LeaveGame::ID), 0);
    // The move went to both connections, the answer to one.
    assert_eq!(
        (stats.packets_out_of(S_BroadcastMove::ID), stats.packets_out_of(S_Chat::ID), stats.packets_out),
        (2, 1, 3)
    );
    let a_addr = a.stream().local_addr().unwrap();
    let per_connection = server.run(move |app| {
        let mut connections = app.world_mut().query::<&Connection>();
        let world = app.world();
        let mut counts: Vec<_> = connections
            .iter(world)
            .map(|c| (c.peer() == a_addr, c.packets_in(), c.packets_out(), c.backlog_bytes()))
            .collect();
        counts.sort();
        counts
    });
    assert_eq!(per_connection, [(false, 0, 1, 0), (true, 2, 2, 0)], "b got the move; a sent two, got two");
}

/// Sends a chat line back with a delay of as many milliseconds as the line says; a move is
/// echoed at once.
fn hold_chat_echo_moves(
    mut chats: MessageReader<Received<C_Chat>>,
    mut moves: MessageReader<Received<C_Move>>,
    mut outbox: Outbox,
) {
    for chat in chats.read() {
        let within = Duration::from_millis(chat.packet.chat.parse().unwrap_or(0));
        outbox.send_within(chat.from, &S_Chat { player_id: 0, chat: chat.packet.chat.clone() }, within);
    }
    for m in moves.read() {
        let p = &m.packet;
        outbox.send(m.from, &S_BroadcastMove { player_id: 1, pos_x: p.pos_x, pos_y: p.pos_y, pos_z: p.pos_z });
    }
}

fn start_holding_server() -> (net_plugin::testing::AppThread, std::net::SocketAddr) {
    start_server_with(NetConfig::default(), |app| {
        app.add_systems(Update, hold_chat_echo_moves);
    })
}

#[test]
fn a_packet_sent_with_a_delay_leaves_with_the_next_ordinary_send_in_order() {
    let (server, addr) = start_holding_server();
    let mut client = RawClient::connect(addr);
    client.send(&C_Chat { chat: "60000".into() });
    client.send(&C_Chat { chat: "50000".into() });
    assert!(wait_recorded::<Received<C_Chat>>(&server, 2));
    assert_eq!(client.recv::<ServerPacket>(QUIET), None, "held: nothing asked for a write yet");
    client.send(&C_Move { pos_x: 1.0, pos_y: 2.0, pos_z: 3.0 });
    let got: Vec<_> = std::iter::from_fn(|| client.recv::<ServerPacket>(WAIT)).take(3).collect();
    let chat = |text: &str| ServerPacket::Chat(S_Chat { player_id: 0, chat: text.into() });
    assert_eq!(
        got,
        vec![
            chat("60000"),
            chat("50000"),
            ServerPacket::BroadcastMove(S_BroadcastMove { player_id: 1, pos_x: 1.0, pos_y: 2.0, pos_z: 3.0 })
        ],
        "the held lines first, in the order sent, then the move that released them"
    );
    assert_eq!(stats(&server).packets_out, 3);
}

#[test]
fn a_packet_sent_with_a_delay_leaves_by_itself_when_its_delay_is_over() {
    let (_server, addr) = start_holding_server();
    let mut client = RawClient::connect(addr);
    let sent = std::time::Instant::now();
    client.send(&C_Chat { chat: "200".into() });
    assert_eq!(
        client.recv::<ServerPacket>(WAIT),
        Some(ServerPacket::Chat(S_Chat { player_id: 0, chat: "200".into() }))
    );
    assert!(sent.elapsed() >= Duration::from_millis(200), "not before its delay: {:?}", sent.elapsed());
}

#[test]
fn a_packet_held_at_shutdown_is_still_written() {
    let (server, addr) = start_holding_server();
    let mut client = RawClient::connect(addr);
    client.send(&C_Chat { chat: "60000".into() });
    assert!(wait_recorded::<Received<C_Chat>>(&server, 1));
    server.exit();
    assert_eq!(
        client.recv::<ServerPacket>(WAIT),
        Some(ServerPacket::Chat(S_Chat { player_id: 0, chat: "60000".into() }))
    );
    assert!(client.wait_closed(WAIT));
}
