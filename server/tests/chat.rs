//! Chat: `C_Chat` → `S_Chat { playerId, text }` to everyone in the room, with a length limit,
//! a rate per player and a budget of relayed bytes per room. Lines beyond the rate or the budget
//! are dropped, counted and told to their sender by player 0; nobody is disconnected for them.

mod support;

use std::time::Instant;

use net_plugin::NetStats;
use server::{ChatConfig, ChatDrop, LineRate, SERVER_PLAYER_ID, ServerConfig, ServerStats};
use support::{CourseClient, Msg, WAIT, chat_bytes, join, ping_bytes, start, test_config};

#[test]
fn chat_reaches_the_whole_room_with_non_ascii_text() {
    let (_server, addr) = start(test_config());
    let (mut a, _) = join(addr);
    let (mut b, _) = join(addr);
    assert!(matches!(a.recv(WAIT), Some(Msg::Enter { .. })));
    let text = "안녕하세요 👋 héllo";
    a.send_chat(text);
    let line = Msg::Chat { id: a.my_id(), text: text.into() };
    assert_eq!(a.recv(WAIT), Some(line.clone()));
    assert_eq!(b.recv(WAIT), Some(line));
    a.send_chat("");
    assert_eq!(b.recv(WAIT), Some(Msg::Chat { id: a.my_id(), text: String::new() }));
}

#[test]
fn a_line_above_the_limit_disconnects_its_sender() {
    let (_server, addr) =
        start(ServerConfig { chat: ChatConfig { max_chars: 10, ..ChatConfig::default() }, ..test_config() });
    let (mut a, _) = join(addr);
    let (mut b, _) = join(addr);
    assert!(matches!(a.recv(WAIT), Some(Msg::Enter { .. })));
    // Ten characters (one of them two UTF-16 units) are fine.
    a.send_chat("123456789😀");
    assert_eq!(b.recv(WAIT), Some(Msg::Chat { id: a.my_id(), text: "123456789😀".into() }));
    a.send_chat("12345678901");
    assert!(a.closed());
    assert_eq!(b.recv(WAIT), Some(Msg::Leave { id: a.my_id() }));
    // A relay would have come in the frame that read the line, before the leave.
    assert_eq!(b.sync(), vec![], "the long line is not relayed");
}

/// A server whose chat has these limits, and nothing else changed.
fn with_chat(player_rate: Option<LineRate>, room_bytes_per_second: Option<u64>) -> ServerConfig {
    ServerConfig { chat: ChatConfig { player_rate, room_bytes_per_second, ..ChatConfig::default() }, ..test_config() }
}

/// The bytes an `S_Chat` of `text` takes on the wire: size, id, playerId, length, UTF-16.
fn s_chat_len(text: &str) -> usize {
    4 + 4 + 2 + text.encode_utf16().count() * 2
}

/// Whether a packet is the server's notice (a line from player 0).
fn is_notice(m: &Msg) -> bool {
    matches!(m, Msg::Chat { id, text } if *id == SERVER_PLAYER_ID && text.starts_with("[server]"))
}

/// `lines` chat lines, then a ping: when its pong comes back, every line has been handled (the
/// server handles one connection's packets in order, a frame's pings after its chat).
fn burst(lines: impl IntoIterator<Item = String>, ping: i64) -> Vec<u8> {
    let mut bytes: Vec<u8> = lines.into_iter().flat_map(|l| chat_bytes(&l)).collect();
    bytes.extend(ping_bytes(ping));
    bytes
}

#[test]
fn a_burster_beyond_its_own_rate_has_lines_dropped_and_is_told_while_others_chat_on() {
    let (server, addr) = start(with_chat(Some(LineRate { per_second: 1, burst: 3 }), None));
    let (mut burster, _) = join(addr);
    let (mut listener, _) = join(addr);
    let (mut other, _) = join(addr);
    for c in [&mut burster, &mut listener] {
        c.recv_until(|m| matches!(m, Msg::Enter { id, .. } if Some(*id) == other.id));
    }
    let started = Instant::now();
    burster.send(&burst((0..20).map(|i| format!("line {i}")), 7));
    let burster_saw = burster.recv_until(|m| *m == Msg::Pong(7));
    other.send_chat("my turn");
    let listener_saw = listener.recv_until(|m| matches!(m, Msg::Chat { text, .. } if text == "my turn"));
    let window = started.elapsed();

    let from_burster = |seen: &[Msg]| -> Vec<String> {
        seen.iter()
            .filter_map(|m| match m {
                Msg::Chat { id, text } if Some(*id) == burster.id => Some(text.clone()),
                _ => None,
            })
            .collect()
    };
    let relayed = from_burster(&listener_saw);
    // The burst goes through whole; then one line a second at most, over however long the test
    // took (a slow machine only makes the bound looser).
    assert_eq!(relayed[..3], ["line 0", "line 1", "line 2"], "{relayed:?}");
    assert!(relayed.len() < 20, "lines beyond the rate are dropped: {relayed:?}");
    assert!(relayed.len() <= 3 + window.as_secs() as usize + 1, "{} lines in {window:?}", relayed.len());
    assert!(relayed.iter().zip(&relayed[1..]).all(|(a, b)| a < b || a.len() < b.len()), "in order: {relayed:?}");
    assert_eq!(from_burster(&burster_saw), relayed, "the sender sees what the room saw");
    assert!(!listener_saw.iter().any(is_notice), "only the sender is told: {listener_saw:?}");

    let notices = burster_saw.iter().filter(|m| is_notice(m)).count();
    assert!(notices >= 1, "the burster is told: {burster_saw:?}");
    assert!(notices <= 1 + window.as_secs() as usize, "at most one notice a second: {notices} in {window:?}");

    // The others chat on, and everyone is still connected.
    for c in [&mut burster, &mut other] {
        c.recv_until(|m| matches!(m, Msg::Chat { text, .. } if text == "my turn"));
    }
    // The burster too (its next line would wait for its rate, and be dropped now).
    burster.send(&ping_bytes(8));
    burster.recv_until(|m| *m == Msg::Pong(8));
    let (chat, net) = server.run(|app| {
        let world = app.world();
        (world.resource::<ServerStats>().chat, world.resource::<NetStats>().clone())
    });
    assert_eq!(chat.dropped(ChatDrop::PlayerRate), 20 - relayed.len() as u64, "{chat:?}");
    assert_eq!(chat.dropped(ChatDrop::RoomBudget), 0);
    assert_eq!(chat.relayed, relayed.len() as u64 + 1, "{chat:?}");
    assert_eq!((net.sessions, net.disconnects.iter().sum::<u64>()), (3, 0), "nobody disconnected: {net:?}");
}

#[test]
fn many_bursters_in_one_room_stay_within_its_budget_and_nobody_is_disconnected() {
    const BUDGET: u64 = 8192;
    const BURSTERS: usize = 10;
    const LINES: usize = 50;
    // No rate per player: the room's budget alone holds them.
    let (server, addr) = start(with_chat(None, Some(BUDGET)));
    let mut bursters: Vec<CourseClient> = (0..BURSTERS).map(|_| join(addr).0).collect();
    let (mut listener, _) = join(addr);
    let members = BURSTERS + 1;
    for b in &mut bursters {
        b.recv_until(|m| matches!(m, Msg::Enter { id, .. } if Some(*id) == listener.id));
    }
    let text = |b: usize, i: usize| format!("burster {b:02} line {i:02} {}", "x".repeat(20));
    let line_len = s_chat_len(&text(0, 0));

    let started = Instant::now();
    for (b, burster) in bursters.iter_mut().enumerate() {
        burster.send(&burst((0..LINES).map(|i| text(b, i)), b as i64));
    }
    let mut relayed_to_bursters = 0;
    for (b, burster) in bursters.iter_mut().enumerate() {
        let saw = burster.recv_until(|m| *m == Msg::Pong(b as i64));
        assert!(saw.iter().any(is_notice), "burster {b} is told its lines were dropped: {saw:?}");
        relayed_to_bursters += saw.iter().filter(|m| matches!(m, Msg::Chat { id, .. } if *id != 0)).count();
    }
    // Everything the bursters caused is out before the listener's own pong.
    listener.send(&ping_bytes(-1));
    let saw = listener.recv_until(|m| *m == Msg::Pong(-1));
    let window = started.elapsed().as_secs_f64();

    let lines: Vec<&String> = saw
        .iter()
        .filter_map(|m| match m {
            Msg::Chat { id, text } if *id != SERVER_PLAYER_ID => Some(text),
            _ => None,
        })
        .collect();
    let received: usize = lines.iter().map(|t| s_chat_len(t)).sum();
    assert!(!lines.is_empty(), "the budget lets a second's worth through");
    // What the room sent, counting each line once per member, within the budget over the test's
    // window (measured generously: from before the first send to after the last receive) plus
    // one second's worth at once.
    let fan_out = (received * members) as f64;
    let bound = BUDGET as f64 * (window + 1.0);
    assert!(fan_out <= bound, "{fan_out} bytes of fan-out in {window:.2} s, budget {BUDGET}/s: {lines:?}");
    assert!(lines.len() < BURSTERS * LINES / 4, "most lines dropped: {}", lines.len());
    assert!(!saw.iter().any(is_notice), "the listener sent nothing and is told nothing");
    assert_eq!(relayed_to_bursters, lines.len() * BURSTERS, "every member got the same lines");

    let (chat, net) = server.run(|app| {
        let world = app.world();
        (world.resource::<ServerStats>().chat, world.resource::<NetStats>().clone())
    });
    assert_eq!(chat.relayed, lines.len() as u64, "{chat:?}");
    assert_eq!(chat.dropped(ChatDrop::RoomBudget), (BURSTERS * LINES - lines.len()) as u64, "{chat:?}");
    assert_eq!(chat.dropped(ChatDrop::PlayerRate), 0);
    assert_eq!(net.sessions, members as u64, "nobody disconnected: {net:?}");
    assert_eq!(net.disconnects.iter().sum::<u64>(), 0, "{net:?}");
    assert!(line_len * members <= BUDGET as usize, "the test's premise: a line fits the budget");
}

#[test]
fn with_the_limits_off_a_burst_is_relayed_whole() {
    let (server, addr) = start(with_chat(None, None));
    let (mut a, _) = join(addr);
    let (mut b, _) = join(addr);
    a.recv_until(|m| matches!(m, Msg::Enter { id, .. } if Some(*id) == b.id));
    a.send(&burst((0..100).map(|i| format!("line {i} {}", "y".repeat(100))), 1));
    a.recv_until(|m| *m == Msg::Pong(1));
    a.send_chat("end");
    let saw = b.recv_until(|m| matches!(m, Msg::Chat { text, .. } if text == "end"));
    assert_eq!(saw.iter().filter(|m| matches!(m, Msg::Chat { .. })).count(), 100);
    assert!(!saw.iter().any(is_notice));
    let chat = server.run(|app| app.world().resource::<ServerStats>().chat);
    assert_eq!((chat.relayed, chat.dropped_total()), (101, 0));
}

#[test]
fn by_default_a_burst_of_ten_lines_passes_and_the_rest_are_dropped() {
    let (_server, addr) = start(test_config());
    let (mut a, _) = join(addr);
    a.send(&burst((0..15).map(|i| format!("line {i}")), 1));
    let saw = a.recv_until(|m| *m == Msg::Pong(1));
    let lines: Vec<_> = saw.iter().filter(|m| matches!(m, Msg::Chat { id, .. } if Some(*id) == a.id)).collect();
    // Ten at once; an eleventh only if a fifth of a second passed within the burst.
    assert!((10..=11).contains(&lines.len()), "{saw:?}");
    assert!(saw.iter().any(is_notice), "{saw:?}");
    assert_eq!(a.sync(), vec![], "nothing more of the burst");
}
