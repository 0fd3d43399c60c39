//! Each limit closes the offending connection alone, with its own reason, while a healthy
//! connection next to it carries on.

mod support;

use std::time::Duration;

use bevy_app::Update;
use bevy_ecs::prelude::*;
use net_plugin::testing::{RawClient, io_stats};
use net_plugin::{
    Connected, DisconnectKind, DisconnectReason, Disconnected, NetConfig, NetStats, Outbox, RateLimit, Received,
    Refusal,
};
use shared::{C_Chat, C_Move, DecodeError, FrameError, S_BroadcastMove, S_Chat, ServerPacket, encode_to_vec};
use support::{QUIET, WAIT, echo_chat, recorded, start_server_with, stats, wait_recorded};

/// The healthy neighbor still gets answers.
fn assert_healthy(client: &mut RawClient, text: &str) {
    client.send(&C_Chat { chat: text.into() });
    let reply = std::iter::from_fn(|| client.recv::<ServerPacket>(WAIT))
        .find(|p| matches!(p, ServerPacket::Chat(_)))
        .expect("the healthy client gets its echo");
    assert!(matches!(reply, ServerPacket::Chat(S_Chat { chat, .. }) if chat == text));
}

/// Starts a server, connects a healthy client and a bad one; the bad one does `misbehave`.
/// Returns the reason the bad one was disconnected, after checking it was the only one.
fn misbehave(config: NetConfig, misbehave: impl FnOnce(&mut RawClient)) -> DisconnectReason {
    let (server, addr) = start_server_with(config, |app| {
        app.add_systems(Update, echo_chat);
    });
    let mut healthy = RawClient::connect(addr);
    let mut bad = RawClient::connect(addr);
    assert!(wait_recorded::<Connected>(&server, 2));
    assert_healthy(&mut healthy, "before");
    misbehave(&mut bad);
    assert!(bad.wait_closed(WAIT), "the bad client is disconnected");
    assert!(wait_recorded::<Disconnected>(&server, 1));
    assert_healthy(&mut healthy, "after");
    // Two frames after the healthy client's answer: any other end queued by then is recorded.
    server.run(|_| {});
    server.run(|_| {});
    let gone = recorded::<Disconnected>(&server);
    assert_eq!(gone.len(), 1, "only the bad client is disconnected: {gone:?}");
    let bad_entity =
        recorded::<Connected>(&server).iter().find(|c| c.peer == bad.stream().local_addr().unwrap()).unwrap().entity;
    assert_eq!(gone[0].entity, bad_entity);
    assert_eq!(stats(&server).disconnects(gone[0].reason.kind()), 1);
    gone[0].reason.clone()
}

#[test]
fn a_size_of_zero() {
    let reason = misbehave(NetConfig::default(), |bad| bad.send_bytes(&[0x00, 0x00, 0x05, 0x00]));
    assert_eq!(reason, DisconnectReason::MalformedFrame(FrameError::SizeTooSmall { size: 0 }));
}

#[test]
fn a_size_below_the_header() {
    let reason = misbehave(NetConfig::default(), |bad| bad.send_bytes(&[0x03, 0x00, 0x05]));
    assert_eq!(reason, DisconnectReason::MalformedFrame(FrameError::SizeTooSmall { size: 3 }));
}

#[test]
fn a_size_above_the_limit_is_refused_before_the_body() {
    // Only the two size bytes: the server does not wait for 5,000 more.
    let reason = misbehave(NetConfig::default(), |bad| bad.send_bytes(&5000u16.to_le_bytes()));
    assert_eq!(reason, DisconnectReason::MalformedFrame(FrameError::SizeTooLarge { size: 5000, max: 4096 }));
}

#[test]
fn a_malformed_packet() {
    // C_Chat with an odd string length.
    let reason =
        misbehave(NetConfig::default(), |bad| bad.send_bytes(&[0x09, 0x00, 0x07, 0x00, 0x03, 0x00, 0x48, 0x00, 0x69]));
    assert_eq!(
        reason,
        DisconnectReason::MalformedPacket(DecodeError::OddStringLength { packet: "C_Chat", field: "chat", len: 3 })
    );
    assert_eq!(reason.kind(), DisconnectKind::MalformedPacket);
}

#[test]
fn an_unknown_packet_id() {
    let reason = misbehave(NetConfig::default(), |bad| bad.send_bytes(&[0x04, 0x00, 0x99, 0x00]));
    assert_eq!(reason, DisconnectReason::MalformedPacket(DecodeError::UnknownPacketId { id: 0x99 }));
}

#[test]
fn a_client_sending_a_server_packet() {
    let reason = misbehave(NetConfig::default(), |bad| {
        bad.send(&S_BroadcastMove { player_id: 1, pos_x: 0.0, pos_y: 0.0, pos_z: 0.0 })
    });
    assert_eq!(reason, DisconnectReason::UnexpectedPacket { id: 6, name: "S_BroadcastMove" });
}

#[test]
fn an_inbound_flood() {
    let config = NetConfig { inbound_rate: Some(RateLimit { per_second: 50, burst: 100 }), ..NetConfig::default() };
    let reason = misbehave(config, |bad| {
        let bytes: Vec<u8> =
            (0..500).flat_map(|_| encode_to_vec(&C_Move { pos_x: 0.0, pos_y: 0.0, pos_z: 0.0 }).unwrap()).collect();
        bad.send_bytes(&bytes);
    });
    assert_eq!(reason, DisconnectReason::InboundFlood { per_second: 50 });
}

#[test]
fn a_burst_within_the_rate_is_fine() {
    let config = NetConfig { inbound_rate: Some(RateLimit { per_second: 50, burst: 100 }), ..NetConfig::default() };
    let (server, addr) = start_server_with(config, |_| {});
    let mut client = RawClient::connect(addr);
    let bytes: Vec<u8> =
        (0..100).flat_map(|_| encode_to_vec(&C_Move { pos_x: 0.0, pos_y: 0.0, pos_z: 0.0 }).unwrap()).collect();
    client.send_bytes(&bytes);
    assert!(wait_recorded::<Received<C_Move>>(&server, 100));
    // A close for the rate is decided as the packets are read, and queued right behind them:
    // two frames later it would be recorded.
    server.run(|_| {});
    server.run(|_| {});
    assert!(recorded::<Disconnected>(&server).is_empty());
}

/// Sends 200 KiB a frame to every connection that asked with a chat line "flood me".
fn flood_askers(mut chats: MessageReader<Received<C_Chat>>, mut victims: Local<Vec<Entity>>, mut outbox: Outbox) {
    victims.extend(chats.read().filter(|c| c.packet.chat == "flood me").map(|c| c.from));
    let big = S_Chat { player_id: 0, chat: "x".repeat(1000) };
    for _ in 0..100 {
        outbox.broadcast(victims.iter().copied(), &big);
    }
}

/// Sends 3 MiB, once, in one frame, to every connection that asked with "burst".
fn burst_askers(mut chats: MessageReader<Received<C_Chat>>, mut outbox: Outbox) {
    let big = S_Chat { player_id: 0, chat: "y".repeat(1000) };
    for ask in chats.read().filter(|c| c.packet.chat == "burst") {
        for _ in 0..1550 {
            outbox.send(ask.from, &big);
        }
    }
}

#[test]
fn a_client_that_stops_reading_is_cut_and_reset() {
    let config = NetConfig {
        outbound_backlog: 256 * 1024,
        write_stall_timeout: Duration::from_millis(500),
        send_buffer: Some(16 * 1024),
        ..NetConfig::default()
    };
    let (server, addr) = start_server_with(config, |app| {
        app.add_systems(Update, (echo_chat, flood_askers));
    });
    let mut healthy = RawClient::connect(addr);
    let mut slow = RawClient::connect(addr);
    // A small receive window, so the kernel's buffers fill sooner.
    socket2::SockRef::from(slow.stream()).set_recv_buffer_size(16 * 1024).unwrap();
    assert!(wait_recorded::<Connected>(&server, 2));
    slow.send(&C_Chat { chat: "flood me".into() });
    // The slow client reads nothing: cut for the stall, or at once past 4 times the cap.
    assert!(wait_recorded::<Disconnected>(&server, 1));
    let gone = recorded::<Disconnected>(&server);
    assert!(
        matches!(gone[0].reason, DisconnectReason::WriteStall(_) | DisconnectReason::OutboundBacklog { .. }),
        "{:?}",
        gone[0].reason
    );
    // Reset, not closed gracefully: what the kernel held for it is dropped, and the client's
    // next read says so.
    let mut buf = [0u8; 1 << 16];
    let outcome = loop {
        match std::io::Read::read(&mut slow.stream(), &mut buf) {
            Ok(0) => break Ok(0),
            Ok(_) => continue,
            Err(e) => break Err(e.kind()),
        }
    };
    assert_eq!(outcome, Err(std::io::ErrorKind::ConnectionReset));
    // Meanwhile the healthy client is served.
    assert_healthy(&mut healthy, "still here");
    assert_eq!(recorded::<Disconnected>(&server).len(), 1);
}

/// Sends 20 KiB a frame to every connection.
fn flood_everyone(mut outbox: Outbox) {
    let big = S_Chat { player_id: 0, chat: "z".repeat(1000) };
    for _ in 0..10 {
        outbox.send_all(&big);
    }
}

#[test]
fn a_client_that_never_reads_nor_sends_is_cut_at_the_write_stall_timeout() {
    // A roomy cap, so only the stall can cut it before the test ends.
    let stall = Duration::from_millis(500);
    let config = NetConfig {
        outbound_backlog: 64 << 20,
        write_stall_timeout: stall,
        send_buffer: Some(16 * 1024),
        ..NetConfig::default()
    };
    let (server, addr) = start_server_with(config, |app| {
        app.add_systems(Update, flood_everyone);
    });
    let silent = RawClient::connect(addr);
    socket2::SockRef::from(silent.stream()).set_recv_buffer_size(16 * 1024).unwrap();
    assert!(wait_recorded::<Disconnected>(&server, 1));
    assert_eq!(recorded::<Disconnected>(&server)[0].reason, DisconnectReason::WriteStall(stall));
}

#[test]
fn a_client_that_reads_survives_a_burst_three_times_the_cap() {
    let (server, addr) = start_server_with(NetConfig::default(), |app| {
        app.add_systems(Update, burst_askers);
    });
    let mut reader = RawClient::connect(addr);
    reader.send(&C_Chat { chat: "burst".into() });
    // 1,550 packets of 2,010 bytes: about 3 MiB in one frame, three times the 1 MiB cap.
    for i in 0..1550 {
        let got = reader.recv::<ServerPacket>(WAIT);
        assert!(matches!(got, Some(ServerPacket::Chat(ref c)) if c.chat.len() == 1000), "packet {i}: {got:?}");
    }
    // Still connected: nothing more comes, and the server has closed nobody.
    assert!(reader.recv_frame(QUIET).is_none());
    assert!(recorded::<Disconnected>(&server).is_empty());
}

#[test]
fn the_per_address_limit_refuses_newcomers_from_that_address_only() {
    let config = NetConfig { max_connections_per_ip: Some(2), per_ip_counts_loopback: true, ..NetConfig::default() };
    a_limit_refuses_newcomers_only(config, 2, |s| s.refused(Refusal::PerAddress));
}

#[test]
fn loopback_is_exempt_from_the_per_address_limit_by_default() {
    let config = NetConfig { max_connections_per_ip: Some(2), ..NetConfig::default() };
    let (server, addr) = start_server_with(config, |app| {
        app.add_systems(Update, echo_chat);
    });
    let mut clients: Vec<RawClient> = (0..5).map(|_| RawClient::connect(addr)).collect();
    assert!(wait_recorded::<Connected>(&server, 5));
    for (i, client) in clients.iter_mut().enumerate() {
        assert_healthy(client, &format!("client {i}"));
    }
}

/// The timers' rules are checked to the millisecond in `core.rs`, without sockets; over TCP it
/// is enough that the silent client goes first, with the timer's reason.
#[test]
fn an_idle_client() {
    let limit = Duration::from_secs(2);
    let config = NetConfig { idle_timeout: Some(limit), ..NetConfig::default() };
    let (server, addr) = start_server_with(config, |app| {
        app.add_systems(Update, echo_chat);
    });
    let mut idle = RawClient::connect(addr);
    assert!(wait_recorded::<Connected>(&server, 1));
    // The active client connects after the idle one and keeps talking until the idle one is cut.
    let mut active = RawClient::connect(addr);
    assert!(wait_recorded::<Connected>(&server, 2));
    let mut i = 0;
    while recorded::<Disconnected>(&server).is_empty() {
        assert_healthy(&mut active, &format!("ping {i}"));
        i += 1;
        // Well within the packet rate limit.
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(idle.wait_closed(WAIT));
    let gone = recorded::<Disconnected>(&server);
    let idle_entity = recorded::<Connected>(&server)[0].entity;
    assert_eq!((gone[0].entity, gone[0].reason.clone()), (idle_entity, DisconnectReason::IdleTimeout(limit)));
}

#[test]
fn a_client_trickling_a_packet_it_never_finishes() {
    let limit = Duration::from_millis(500);
    // The idle timeout alone would never fire: a byte arrives every 100 ms.
    let config =
        NetConfig { frame_timeout: Some(limit), idle_timeout: Some(Duration::from_secs(1)), ..NetConfig::default() };
    let reason = misbehave(config, |bad| {
        let frame = encode_to_vec(&C_Chat { chat: "a long line, slowly".into() }).unwrap();
        for byte in &frame[..frame.len() - 1] {
            if std::io::Write::write_all(&mut bad.stream(), &[*byte]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    assert_eq!(reason, DisconnectReason::FrameTimeout(limit));
}

#[test]
fn the_packets_before_a_bad_frame_in_the_same_read_are_delivered() {
    let (server, addr) = start_server_with(NetConfig::default(), |_| {});
    let mut client = RawClient::connect(addr);
    let mut bytes = encode_to_vec(&C_Move { pos_x: 1.0, pos_y: 2.0, pos_z: 3.0 }).unwrap();
    bytes.extend(encode_to_vec(&C_Chat { chat: "last words".into() }).unwrap());
    bytes.extend([0x00, 0x00]);
    client.send_bytes(&bytes);
    assert!(client.wait_closed(WAIT));
    assert!(wait_recorded::<Disconnected>(&server, 1));
    assert_eq!(recorded::<Received<C_Move>>(&server).len(), 1);
    assert_eq!(recorded::<Received<C_Chat>>(&server)[0].packet.chat, "last words");
    assert_eq!(
        recorded::<Disconnected>(&server)[0].reason,
        DisconnectReason::MalformedFrame(FrameError::SizeTooSmall { size: 0 })
    );
    assert_eq!(stats(&server).packets_dropped, 0);
}

#[test]
fn the_connection_limit_refuses_newcomers_only() {
    a_limit_refuses_newcomers_only(NetConfig { max_connections: 3, ..NetConfig::default() }, 3, |s| {
        s.refused(Refusal::ServerFull)
    });
}

/// With `config` allowing `allowed` connections from here, the next one is closed at once and
/// counted by `refusals`; those in are served; a slot comes back when one of them closes.
fn a_limit_refuses_newcomers_only(config: NetConfig, allowed: usize, refusals: fn(&NetStats) -> u64) {
    let (server, addr) = start_server_with(config, |app| {
        app.add_systems(Update, echo_chat);
    });
    let mut first: Vec<RawClient> = (0..allowed).map(|_| RawClient::connect(addr)).collect();
    assert!(wait_recorded::<Connected>(&server, allowed));
    let mut refused = RawClient::connect(addr);
    assert!(refused.wait_closed(WAIT), "the connection beyond the limit is closed at once");
    assert!(server.wait_until(WAIT, move |app| refusals(app.world().resource::<NetStats>()) == 1));
    for (i, client) in first.iter_mut().enumerate() {
        assert_healthy(client, &format!("client {i}"));
    }
    drop(first.pop());
    assert!(wait_recorded::<Disconnected>(&server, 1));
    let mut later = RawClient::connect(addr);
    assert_healthy(&mut later, "a slot came back");
    assert_eq!(recorded::<Connected>(&server).len(), allowed + 1);
}

#[test]
fn a_full_inbound_queue_pauses_reading_and_loses_nothing() {
    let config = NetConfig { inbound_queue: 10, inbound_rate: None, ..NetConfig::default() };
    let (server, addr) = start_server_with(config, |_| {});
    let mut client = RawClient::connect(addr);
    assert!(wait_recorded::<Connected>(&server, 1));
    // While the app is paused, 500 moves arrive: the reader fills the queue to its bound, then
    // waits for its turn (the app, paused, drains nothing until the reader has waited).
    let mut stream = client.stream().try_clone().unwrap();
    let waited = server.run(move |app| {
        for i in 0..500 {
            let bytes = encode_to_vec(&C_Move { pos_x: i as f32, pos_y: 0.0, pos_z: 0.0 }).unwrap();
            std::io::Write::write_all(&mut stream, &bytes).unwrap();
        }
        let deadline = std::time::Instant::now() + WAIT;
        while io_stats(app.world()).inbound_waits == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        io_stats(app.world()).inbound_waits
    });
    assert!(waited > 0, "the reader waited for room");
    assert!(wait_recorded::<Received<C_Move>>(&server, 500));
    let xs: Vec<f32> = recorded::<Received<C_Move>>(&server).iter().map(|m| m.packet.pos_x).collect();
    assert_eq!(xs, (0..500).map(|i| i as f32).collect::<Vec<_>>());
    let s = stats(&server);
    assert_eq!(s.packets_dropped, 0);
    assert!(recorded::<Disconnected>(&server).is_empty());
    client.send(&C_Chat { chat: "still fine".into() });
    assert!(wait_recorded::<Received<C_Chat>>(&server, 1));
}

/// For each move: 16 KiB of chat to every connection, then the move back to its sender alone,
/// after them (its echo says the sender has been sent everything before it).
fn pad_moves(mut moves: MessageReader<Received<C_Move>>, mut outbox: Outbox) {
    let big = S_Chat { player_id: 0, chat: "p".repeat(1000) };
    for m in moves.read() {
        for _ in 0..8 {
            outbox.send_all(&big);
        }
        let p = &m.packet;
        outbox.send(m.from, &S_BroadcastMove { player_id: 0, pos_x: p.pos_x, pos_y: p.pos_y, pos_z: p.pos_z });
    }
}

/// Moves once and reads everything up to the move's echo; panics if it does not come.
fn move_and_wait_echo(mover: &mut RawClient, i: u32) {
    mover.send(&C_Move { pos_x: i as f32, pos_y: 0.0, pos_z: 0.0 });
    loop {
        match mover.recv::<ServerPacket>(WAIT) {
            Some(ServerPacket::BroadcastMove(echo)) => {
                assert_eq!(echo.pos_x, i as f32, "the echoes come in order, none missing");
                return;
            }
            Some(_) => {}
            None => panic!("the mover lost its echo of move {i}"),
        }
    }
}

/// A non-reader: a small receive window, so the kernel holds little for it and the rest waits in
/// the server's queue.
fn non_reader(addr: std::net::SocketAddr) -> RawClient {
    let client = RawClient::connect(addr);
    socket2::SockRef::from(client.stream()).set_recv_buffer_size(16 * 1024).unwrap();
    client
}

#[test]
fn past_the_budget_of_all_backlogs_the_largest_are_cut_first_and_a_mover_keeps_every_echo() {
    let budget = 1 << 20;
    // Each peer's own cap (16 MiB at any moment) and the stall timeout are far off: only the
    // budget of all backlogs together can cut anyone here.
    let config = NetConfig {
        max_total_backlog: Some(budget),
        outbound_backlog: 4 << 20,
        write_stall_timeout: Duration::from_secs(600),
        send_buffer: Some(16 * 1024),
        inbound_rate: None,
        ..NetConfig::default()
    };
    let (server, addr) = start_server_with(config, |app| {
        app.add_systems(Update, pad_moves);
    });
    let mut mover = RawClient::connect(addr);
    // The first ten non-readers are sent 20 moves' padding (320 KiB each) before the next ten
    // come: their backlogs stay the larger by that much.
    let early: Vec<RawClient> = (0..10).map(|_| non_reader(addr)).collect();
    assert!(wait_recorded::<Connected>(&server, 11));
    let mut moves = 0;
    for _ in 0..20 {
        move_and_wait_echo(&mut mover, moves);
        moves += 1;
    }
    let late: Vec<RawClient> = (0..10).map(|_| non_reader(addr)).collect();
    assert!(wait_recorded::<Connected>(&server, 21));
    // Which entity is whom, by the clients' own addresses (accepts may come in any order).
    let connected = recorded::<Connected>(&server);
    let entity_of = |client: &RawClient| {
        let at = client.stream().local_addr().unwrap();
        connected.iter().find(|c| c.peer == at).expect("connected").entity
    };
    let mover_entity = entity_of(&mover);
    let early_entities: Vec<Entity> = early.iter().map(entity_of).collect();
    // Every move adds 16 KiB to each backlog: the budget is passed again and again, until every
    // non-reader is cut. The mover gets every echo meanwhile.
    while recorded::<Disconnected>(&server).len() < 20 {
        assert!(moves < 2_000, "the non-readers are cut: {:?}", recorded::<Disconnected>(&server).len());
        move_and_wait_echo(&mut mover, moves);
        moves += 1;
    }
    let gone = recorded::<Disconnected>(&server);
    assert!(gone.iter().all(|d| d.entity != mover_entity), "the mover is never cut: {gone:?}");
    assert!(
        gone.iter().all(|d| matches!(d.reason, DisconnectReason::OutboundBudget { budget: b, .. } if b == budget)),
        "every cut is the budget's: {gone:?}"
    );
    assert!(
        early_entities.contains(&gone[0].entity),
        "the first cut is one of the largest backlogs, an early non-reader: {gone:?}"
    );
    for i in 0..10 {
        move_and_wait_echo(&mut mover, moves + i);
    }
    let stats = stats(&server);
    assert_eq!(stats.disconnects(DisconnectKind::OutboundBudget), 20);
    // The budget holds to within what is added between two of the writer's passes (one move's
    // padding to everyone) and the bytes of the peers being cut, freed as their tasks end.
    assert!(stats.backlog_peak_bytes < 2 * budget as u64, "peak {} against {budget}", stats.backlog_peak_bytes);
    assert!(stats.backlog_peak_bytes > budget as u64, "the budget was reached: {}", stats.backlog_peak_bytes);
    drop((early, late));
}
