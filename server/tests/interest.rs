//! Interest management over TCP with the hand-written client: with a view radius R and margin M,
//! players see only those near them (x and z): in view within R, out beyond R + M, no change in
//! between; per flush leaves, then enters, then moves; leaves and chat only to those in view.

mod support;

use std::time::{Duration, Instant};

use net_plugin::testing::io_stats;
use server::{ServerConfig, Spawn, ViewMargin, WorldConfig};
use support::{CourseClient, Msg, WAIT, join, start, test_config, times_told};

/// R = 10 and M = 2: in view within 10, out beyond 12. Every position below is exact in f32.
/// The news goes out in its tick (`view_delay` off), so every move is seen as it happens;
/// `settings.rs` tests the delay.
fn config() -> ServerConfig {
    let world = WorldConfig {
        view_radius: 10.0,
        view_margin: ViewMargin::Units(2.0),
        view_delay: Duration::ZERO,
        ..WorldConfig::default()
    };
    ServerConfig { world, ..test_config() }
}

/// Moves `c` to (x, y, z) and reads until its own echo; returns what came before it.
fn walk(c: &mut CourseClient, x: f32, y: f32, z: f32) -> Vec<Msg> {
    c.send_move(x, y, z);
    let id = c.my_id();
    c.recv_until(|m| *m == Msg::Move { id, x, y, z })
}

fn enter(id: i32, x: f32, y: f32, z: f32) -> Msg {
    Msg::Enter { id, x, y, z }
}

fn mv(id: i32, x: f32, y: f32, z: f32) -> Msg {
    Msg::Move { id, x, y, z }
}

#[test]
fn a_newcomer_lists_only_the_players_within_the_radius_and_only_they_hear_of_it() {
    let (_server, addr) = start(config());
    let (mut on_edge, _) = join(addr);
    let (mut beyond, _) = join(addr);
    assert_eq!(on_edge.sync(), vec![enter(beyond.my_id(), 0.0, 0.0, 0.0)], "both at the origin");
    // 6, 8 in x, z is 10 away: exactly on R comes into view; height does not count.
    walk(&mut on_edge, 6.0, 500.0, 8.0);
    // Just beyond R: 10.5.
    walk(&mut beyond, -10.5, 0.0, 0.0);
    assert_eq!(on_edge.sync(), vec![Msg::Leave { id: beyond.my_id() }], "20 apart: out of each other's view");
    assert_eq!(beyond.sync(), vec![]);

    let (newcomer, listed) = join(addr);
    let me = newcomer.my_id();
    assert_eq!(listed, vec![(false, on_edge.my_id(), 6.0, 500.0, 8.0), (true, me, 0.0, 0.0, 0.0)]);
    assert_eq!(on_edge.sync(), vec![enter(me, 0.0, 0.0, 0.0)]);
    assert_eq!(beyond.sync(), vec![], "a player out of view is not told");
}

#[test]
fn a_player_leaves_a_view_only_beyond_the_radius_plus_the_margin_and_comes_back_within_the_radius() {
    let (_server, addr) = start(config());
    let (mut a, _) = join(addr);
    let (mut b, _) = join(addr);
    assert_eq!(a.sync(), vec![enter(b.my_id(), 0.0, 0.0, 0.0)]);
    let (ia, ib) = (a.my_id(), b.my_id());

    // Between R and R + M, and exactly on R + M: still in view, moves still arrive.
    for x in [11.0, 12.0] {
        assert_eq!(walk(&mut b, x, 0.0, 0.0), vec![], "b at {x}");
        assert_eq!(a.recv(WAIT), Some(mv(ib, x, 0.0, 0.0)), "b at {x}");
    }
    // Beyond R + M: both are told the other left, before the mover's echo.
    assert_eq!(walk(&mut b, 12.5, 0.0, 0.0), vec![Msg::Leave { id: ia }]);
    assert_eq!(a.sync(), vec![Msg::Leave { id: ib }]);
    // Back inside R + M but not within R: nothing changes.
    assert_eq!(walk(&mut b, 10.5, 0.0, 0.0), vec![]);
    assert_eq!(a.sync(), vec![]);
    // Exactly on R: in view again, each at its current position, then the move.
    assert_eq!(walk(&mut b, 0.0, 0.0, 10.0), vec![enter(ia, 0.0, 0.0, 0.0)]);
    assert_eq!(a.sync(), vec![enter(ib, 0.0, 0.0, 10.0), mv(ib, 0.0, 0.0, 10.0)]);
}

#[test]
fn walking_away_and_back_is_one_leave_and_one_enter() {
    let (_server, addr) = start(config());
    let (mut a, _) = join(addr);
    let (mut b, _) = join(addr);
    assert_eq!(a.sync(), vec![enter(b.my_id(), 0.0, 0.0, 0.0)]);
    let ib = b.my_id();
    // Out to 30 and back in steps of 0.5 along z: the edge is crossed twice.
    let steps: Vec<f32> = (0..=60).chain((0..60).rev()).map(|i| i as f32 * 0.5).collect();
    for z in &steps {
        walk(&mut b, 0.0, 0.0, *z);
    }
    // Each step's tick sent a what it sent b, before b's echo: a barrier gets it all.
    let seen = a.sync();
    let count = |want: &dyn Fn(&Msg) -> bool| seen.iter().filter(|m| want(m)).count();
    assert_eq!(count(&|m| *m == Msg::Leave { id: ib }), 1, "{seen:?}");
    assert_eq!(count(&|m| matches!(m, Msg::Enter { id, .. } if *id == ib)), 1, "{seen:?}");
    // The leave came at the first step beyond 12; the enter at the first step back within 10.
    let leave_at = seen.iter().position(|m| *m == Msg::Leave { id: ib }).unwrap();
    assert_eq!(seen[leave_at - 1], mv(ib, 0.0, 0.0, 12.0));
    let enter_at = seen.iter().position(|m| matches!(m, Msg::Enter { id, .. } if *id == ib)).unwrap();
    assert_eq!(seen[enter_at], enter(ib, 0.0, 0.0, 10.0));
    // Moves arrive exactly while b is within R + M: 0 to 12 out (25), 10 to 0 back (21).
    assert_eq!(count(&|m| matches!(m, Msg::Move { id, .. } if *id == ib)), 25 + 21);
    assert_eq!(*seen.last().unwrap(), mv(ib, 0.0, 0.0, 0.0));
}

#[test]
fn in_one_flush_leaves_come_first_then_enters_then_moves() {
    let (server, addr) = start(config());
    let (mut a, _) = join(addr);
    let (mut b, _) = join(addr);
    let (mut c, _) = join(addr);
    walk(&mut c, 40.0, 0.0, 0.0);
    for p in [&mut a, &mut b, &mut c] {
        p.sync();
    }
    let (ia, ib, ic) = (a.my_id(), b.my_id(), c.my_id());
    // All three moves are read while the server is between frames, so one tick applies them
    // all: b walks out of a's view, c walks into it, a moves a little.
    let (mut a, mut b, mut c) = server.run(move |app| {
        let before = io_stats(app.world()).bytes_in;
        b.send_move(30.0, 0.0, 0.0);
        c.send_move(5.0, 0.0, 0.0);
        a.send_move(1.0, 0.0, 0.0);
        let deadline = Instant::now() + WAIT;
        while io_stats(app.world()).bytes_in < before + 3 * 16 {
            assert!(Instant::now() < deadline, "the server never read the moves");
            std::thread::sleep(Duration::from_millis(1));
        }
        (a, b, c)
    });
    /// What the tick sent `p`: up to its echo (at `x`), and the rest of that write.
    fn tick(p: &mut CourseClient, x: f32) -> Vec<Msg> {
        let echo = mv(p.my_id(), x, 0.0, 0.0);
        let mut got = p.recv_until(|m| *m == echo);
        got.push(echo);
        got.extend(p.sync());
        got
    }
    /// The first `n` packets in order, then the rest (moves, in no set order) sorted.
    fn split(got: Vec<Msg>, n: usize) -> (Vec<Msg>, Vec<String>) {
        let mut rest: Vec<String> = got[n.min(got.len())..].iter().map(|m| format!("{m:?}")).collect();
        rest.sort();
        (got[..n.min(got.len())].to_vec(), rest)
    }
    let moves = |ms: &[Msg]| {
        let mut v: Vec<String> = ms.iter().map(|m| format!("{m:?}")).collect();
        v.sort();
        v
    };
    // a: b left, c came (where it is now), then the moves of those in view: c's and its own.
    let got = split(tick(&mut a, 1.0), 2);
    assert_eq!(got.0, [Msg::Leave { id: ib }, enter(ic, 5.0, 0.0, 0.0)]);
    assert_eq!(got.1, moves(&[mv(ia, 1.0, 0.0, 0.0), mv(ic, 5.0, 0.0, 0.0)]));
    // b: a left its view; then only its own echo (a's move is out of its view).
    assert_eq!(tick(&mut b, 30.0), [Msg::Leave { id: ia }, mv(ib, 30.0, 0.0, 0.0)]);
    // c: a came into view; then a's move and its own echo.
    let got = split(tick(&mut c, 5.0), 1);
    assert_eq!(got.0, [enter(ia, 1.0, 0.0, 0.0)]);
    assert_eq!(got.1, moves(&[mv(ia, 1.0, 0.0, 0.0), mv(ic, 5.0, 0.0, 0.0)]));
}

#[test]
fn leaving_is_told_only_to_those_who_saw_the_player() {
    let (_server, addr) = start(config());
    let (mut near, _) = join(addr);
    let (mut far, _) = join(addr);
    walk(&mut far, 100.0, 0.0, 0.0);
    let (quitter, _) = join(addr);
    let (mut leaver, _) = join(addr);
    near.sync();
    far.sync();
    leaver.sync();

    let gone = quitter.my_id();
    drop(quitter);
    assert_eq!(near.recv(WAIT), Some(Msg::Leave { id: gone }));
    assert_eq!(leaver.recv(WAIT), Some(Msg::Leave { id: gone }));
    leaver.send_leave();
    assert_eq!(near.recv(WAIT), Some(Msg::Leave { id: leaver.my_id() }));
    // Both leaves were sent by the time near got the second.
    assert_eq!(far.sync(), vec![], "far saw neither");
    assert_eq!(near.sync(), vec![]);
}

#[test]
fn chat_reaches_the_players_in_view_and_the_sender() {
    let (_server, addr) = start(config());
    let (mut speaker, _) = join(addr);
    let (mut near, _) = join(addr);
    let (mut far, _) = join(addr);
    walk(&mut far, 0.0, 0.0, -50.0);
    speaker.sync();
    near.sync();
    speaker.send_chat("hello, neighbours");
    let line = Msg::Chat { id: speaker.my_id(), text: "hello, neighbours".into() };
    assert_eq!(speaker.recv(WAIT), Some(line.clone()));
    assert_eq!(near.recv(WAIT), Some(line));
    assert_eq!(far.sync(), vec![]);
}

#[test]
fn two_players_joining_in_the_same_frame_see_each_other_once() {
    let (server, addr) = start(config());
    let (mut watcher, _) = join(addr);
    // Both enter in one frame (see `connect_both`), and are answered a ping after it.
    let (mut a, mut b) = server.run(move |app| support::connect_both(app, addr));
    let (a_list, b_list) = (a.enter(), b.enter());
    let (a_after, b_after) = (a.recv_until(|m| *m == Msg::Pong(1)), b.recv_until(|m| *m == Msg::Pong(1)));
    let (ia, ib) = (a.my_id(), b.my_id());
    assert_eq!(times_told(&a_list, &a_after, ib), 1, "a: {a_list:?} then {a_after:?}");
    assert_eq!(times_told(&b_list, &b_after, ia), 1, "b: {b_list:?} then {b_after:?}");
    let watched = watcher.sync();
    assert_eq!((times_told(&[], &watched, ia), times_told(&[], &watched, ib)), (1, 1), "{watched:?}");
    // And they see each other's moves.
    walk(&mut a, 1.0, 0.0, 1.0);
    assert_eq!(b.recv(WAIT), Some(mv(ia, 1.0, 0.0, 1.0)));
}

#[test]
fn random_spawn_points_are_inside_the_bounds_and_told_to_those_in_view() {
    let world = WorldConfig {
        min: [-20.0, 5.0, -30.0],
        max: [20.0, 50.0, 30.0],
        spawn: Spawn::Random,
        view_radius: 1000.0,
        ..WorldConfig::default()
    };
    let (_server, addr) = start(ServerConfig { world, ..test_config() });
    let (mut first, _) = join(addr);
    let (mut spots, mut players) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let (c, listed) = join(addr);
        let me = *listed.iter().find(|p| p.0).unwrap();
        let (x, y, z) = (me.2, me.3, me.4);
        assert!((-20.0..=20.0).contains(&x) && (-30.0..=30.0).contains(&z), "({x}, {z})");
        assert_eq!(y, 5.0, "y = 0, clamped into the bounds");
        assert_eq!(first.recv(WAIT), Some(enter(c.my_id(), x, y, z)), "the enter says where");
        spots.push((x, z));
        players.push(c);
    }
    spots.sort_by(|a, b| a.partial_cmp(b).unwrap());
    spots.dedup();
    assert!(spots.len() > 15, "spread out: {spots:?}");
}

#[test]
fn without_a_radius_everyone_in_the_room_sees_everyone_wherever_they_spawn() {
    let world = WorldConfig { min: [-5000.0; 3], max: [5000.0; 3], spawn: Spawn::Random, ..WorldConfig::default() };
    let (_server, addr) = start(ServerConfig { world, ..test_config() });
    let (mut first, _) = join(addr);
    let (mut second, listed) = join(addr);
    assert_eq!(listed.len(), 2);
    assert!(matches!(first.recv(WAIT), Some(Msg::Enter { id, .. }) if id == second.my_id()));
    walk(&mut second, 4000.0, 0.0, -4000.0);
    assert_eq!(first.recv(WAIT), Some(mv(second.my_id(), 4000.0, 0.0, -4000.0)));
}

#[test]
fn a_player_despawned_by_game_code_is_told_gone_only_to_those_who_saw_it() {
    let (server, addr) = start(config());
    let (mut near, _) = join(addr);
    let (mut far, _) = join(addr);
    walk(&mut far, 0.0, 0.0, 100.0);
    let (doomed, _) = join(addr);
    near.sync();
    let id = doomed.my_id();
    server.run(move |app| {
        let world = app.world_mut();
        let (entity, _) = world
            .query::<(bevy_ecs::entity::Entity, &server::Player)>()
            .iter(world)
            .find(|(_, p)| p.id == id)
            .expect("the player");
        world.despawn(entity);
    });
    assert_eq!(near.recv(WAIT), Some(Msg::Leave { id }));
    assert_eq!(far.sync(), vec![]);
    // The others' views lost it: moving near it again tells nobody of it.
    walk(&mut far, 0.0, 0.0, 0.0);
    let before: Vec<Msg> = near.sync();
    assert_eq!(before, vec![enter(far.my_id(), 0.0, 0.0, 0.0), mv(far.my_id(), 0.0, 0.0, 0.0)]);
    drop(doomed);
}

/// An attacker inside every limit teleports back and forth between two groups of players, each
/// move within the packet rate. What the others pay: per teleport at most one leave or one enter
/// of it, in alternation, and its moves only while in view; a healthy player beside it keeps
/// its neighbour's moves and its own echo, and nobody is disconnected.
#[test]
fn a_teleporting_player_costs_each_observer_one_enter_or_leave_per_move() {
    let (_server, addr) = start(config());
    let (mut healthy, _) = join(addr);
    let (mut neighbour, _) = join(addr);
    let (mut far, _) = join(addr);
    walk(&mut far, 100.0, 0.0, 0.0);
    let (mut attacker, _) = join(addr);
    let it = attacker.my_id();
    for c in [&mut healthy, &mut neighbour, &mut far, &mut attacker] {
        c.sync();
    }
    const TELEPORTS: usize = 40;
    for i in 0..TELEPORTS {
        let x = if i % 2 == 0 { 100.0 } else { 0.0 };
        attacker.send_move(x, 0.0, 0.0);
        // The neighbour walks on as usual, a move per teleport.
        neighbour.send_move(1.0, 0.0, i as f32 * 0.1);
        std::thread::sleep(Duration::from_millis(25));
    }
    // The last teleport is back at the origin (i = 39); its echo ends the run for the attacker.
    attacker.recv_until(|m| *m == mv(it, 0.0, 0.0, 0.0));
    let seen = walk(&mut healthy, 0.0, 0.0, 0.5);
    let about_it: Vec<&Msg> = seen
        .iter()
        .filter(|m| matches!(m, Msg::Enter { id, .. } | Msg::Leave { id } | Msg::Move { id, .. } if *id == it))
        .collect();
    let enters_and_leaves: Vec<&&Msg> = about_it.iter().filter(|m| !matches!(m, Msg::Move { .. })).collect();
    assert!(enters_and_leaves.len() <= TELEPORTS, "{about_it:?}");
    for pair in enters_and_leaves.windows(2) {
        assert_ne!(
            std::mem::discriminant(*pair[0]),
            std::mem::discriminant(*pair[1]),
            "enters and leaves alternate: {about_it:?}"
        );
    }
    // It was last seen coming back: in view, at the origin.
    assert!(matches!(enters_and_leaves.last(), Some(Msg::Enter { .. })), "{about_it:?}");
    // Every move of the neighbour reached the healthy player (the last one at least).
    let neighbour_moves = seen.iter().filter(|m| matches!(m, Msg::Move { id, .. } if *id == neighbour.my_id())).count();
    assert!(neighbour_moves >= 1 && seen.contains(&mv(neighbour.my_id(), 1.0, 0.0, 3.9)), "{seen:?}");
    // Nobody was disconnected: each still gets its own echo.
    for c in [&mut neighbour, &mut far, &mut attacker] {
        walk(c, 50.0, 0.0, 50.0);
    }
}

/// With `view_delay`, an attacker inside every limit moves at its packet rate, crossing a
/// healthy player's view edge back and forth, then walks inside it. The healthy player pays, per
/// answer, the attacker's enters and leaves in alternation and one position of it (its newest,
/// never while out of view), however many moves it made; its own echo comes right after.
#[test]
fn with_a_delay_a_fast_mover_costs_an_observer_one_position_per_answer() {
    let mut config = config();
    config.world.view_delay = Duration::from_secs(30);
    let (_server, addr) = start(config);
    let (mut healthy, _) = join(addr);
    let (mut attacker, _) = join(addr);
    assert_eq!(healthy.sync(), vec![enter(attacker.my_id(), 0.0, 0.0, 0.0)]);
    let it = attacker.my_id();
    const MOVES: usize = 60;
    for i in 0..MOVES {
        // Two steps inside the view, then one beyond radius + margin, over and over.
        let x = if i % 3 == 2 { 100.0 } else { 1.0 + i as f32 * 0.01 };
        walk(&mut attacker, x, 0.0, 0.0);
    }
    assert_eq!(healthy.drain(), vec![], "nothing until the healthy player is answered");
    let seen = walk(&mut healthy, 0.0, 0.0, 0.5);
    // It ended out of view: no move of it at all, however many it made.
    assert!(!seen.iter().any(|m| matches!(m, Msg::Move { .. })), "{seen:?}");
    let turns: Vec<&Msg> = seen.iter().filter(|m| !matches!(m, Msg::Move { .. })).collect();
    assert!(turns.len() <= 2 * MOVES / 3, "one enter or leave per crossing at most: {seen:?}");
    for pair in turns.windows(2) {
        assert_ne!(std::mem::discriminant(pair[0]), std::mem::discriminant(pair[1]), "{seen:?}");
    }
    // Its last move was beyond the edge (i = 59): it is out of view, last told as a leave.
    assert_eq!(turns.last(), Some(&&Msg::Leave { id: it }), "{seen:?}");
    assert!(
        seen.iter().all(|m| matches!(m, Msg::Enter { id, .. } | Msg::Leave { id } | Msg::Move { id, .. } if *id == it))
    );
    // Back in view and on the move: at the next answer, its enter and its newest position once.
    for i in 0..MOVES {
        walk(&mut attacker, 1.0, 0.0, i as f32 * 0.01);
    }
    assert_eq!(healthy.drain(), vec![], "held again until the next answer");
    let last = (MOVES - 1) as f32 * 0.01;
    let seen = walk(&mut healthy, 0.0, 0.0, 1.0);
    assert!(matches!(seen.first(), Some(Msg::Enter { id, .. }) if *id == it), "{seen:?}");
    assert_eq!(seen.last(), Some(&mv(it, 1.0, 0.0, last)), "{seen:?}");
    assert!(seen.len() <= 2, "{seen:?}");
}

/// In a world so big that far positions saturate the grid's `i32` cells, two players who meet
/// at its edge are told of each other once: the 3×3 block around an edge cell holds each cell
/// once.
#[test]
fn at_the_far_edge_of_a_huge_world_players_meet_once() {
    let world = WorldConfig {
        min: [-3e38; 3],
        max: [3e38; 3],
        view_radius: 1.0,
        view_delay: Duration::ZERO,
        ..WorldConfig::default()
    };
    let (_server, addr) = start(ServerConfig { world, ..test_config() });
    let (mut a, _) = join(addr);
    let (mut b, _) = join(addr);
    assert_eq!(a.sync(), vec![enter(b.my_id(), 0.0, 0.0, 0.0)]);
    let (ia, ib) = (a.my_id(), b.my_id());
    // a goes to the edge (cell i32::MAX in x and z): out of b's view.
    assert_eq!(walk(&mut a, 3e38, 0.0, 3e38), vec![Msg::Leave { id: ib }]);
    assert_eq!(b.sync(), vec![Msg::Leave { id: ia }]);
    // b joins it there: each is told the other came, once, then the move.
    assert_eq!(walk(&mut b, 3e38, 0.0, 3e38), vec![enter(ia, 3e38, 0.0, 3e38)]);
    assert_eq!(a.sync(), vec![enter(ib, 3e38, 0.0, 3e38), mv(ib, 3e38, 0.0, 3e38)]);
    // And they part once: b goes back to z = 0, far out of view.
    assert_eq!(walk(&mut b, 3e38, 0.0, 0.0), vec![Msg::Leave { id: ia }]);
    assert_eq!(a.sync(), vec![Msg::Leave { id: ib }]);
}
