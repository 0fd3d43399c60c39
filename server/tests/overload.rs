//! Graceful overload over TCP: when frames take longer than their budget for a while, the news
//! about others is thinned (its interval doubles up to `overload_news_max`) and comes back when
//! they do not; every move is echoed meanwhile, two read in one tick included.
//!
//! A frame's work is what the test says it is: a system between the server's measurement and
//! its weighing overwrites [`FrameWork`], so the detector sees slow frames on any machine. The
//! clock advances one tick per frame ([`TimeUpdateStrategy::FixedTimesteps`]), so every count
//! below is in frames and ticks, never in wall time.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bevy_app::{App, Last};
use bevy_ecs::prelude::*;
use bevy_time::TimeUpdateStrategy;
use net_plugin::testing::{AppThread, ready};
use net_plugin::{NetConfig, ServerPlugin};
use server::overload::{FrameWork, OverloadSystems};
use server::{NewsPace, OverloadCounts, ServerConfig, ServerStats, WorldConfig};
use support::{CourseClient, Msg, WAIT, join, test_config};

/// The frame period at the default 60 frames a second.
const FRAME: Duration = Duration::from_micros(16_667);

/// What the test says each frame's work took.
#[derive(Resource)]
struct Work(Duration);

fn inject(work: Res<Work>, mut frame: ResMut<FrameWork>) {
    frame.took = work.0;
}

/// R = 10; the news may wait 300 ms (the default), and up to 1,200 ms overloaded. No inbound
/// rate limit: the test moves as fast as the server echoes, far above a client's 4 moves a second.
fn config() -> ServerConfig {
    let world = WorldConfig {
        view_radius: 10.0,
        view_delay: Duration::from_millis(300),
        overload_news_max: Some(Duration::from_millis(1200)),
        ..WorldConfig::default()
    };
    let net = NetConfig { inbound_rate: None, ..NetConfig::default() };
    ServerConfig { world, net, ..test_config() }
}

/// The server's network plugin, bound to a loopback port, and the port.
fn bind(config: &ServerConfig) -> (ServerPlugin, SocketAddr) {
    let net = ServerPlugin::bind(&config.bind, config.net.clone()).expect("bind loopback");
    let addr = net.local_addr();
    (net, addr)
}

/// The server app as the binary builds it, one tick a frame, each frame's work injected.
fn build(config: &ServerConfig, net: ServerPlugin) -> App {
    let mut app = server::app(config, net, None);
    app.insert_resource(TimeUpdateStrategy::FixedTimesteps(1))
        .insert_resource(Work(Duration::ZERO))
        .add_systems(Last, inject.after(OverloadSystems::Measure).before(OverloadSystems::Pace));
    app
}

/// Runs `frames` frames that each took `took`; returns the news interval in ms and the episodes.
fn frames(app: &mut App, frames: u32, took: Duration) -> (u64, u64) {
    app.world_mut().resource_mut::<Work>().0 = took;
    for _ in 0..frames {
        app.update();
    }
    let OverloadCounts { news_interval_ms, episodes } = *app.world().resource::<OverloadCounts>();
    (news_interval_ms, episodes)
}

#[test]
fn the_news_interval_doubles_while_frames_are_over_budget_and_comes_back_when_they_are_not() {
    let config = config();
    let (net, _) = bind(&config);
    let mut app = ready(build(&config, net));
    let window = app.world().resource::<NewsPace>().window_frames();
    assert_eq!(window, 60, "a second's frames");
    assert_eq!(frames(&mut app, window, FRAME / 10), (300, 0), "10% of the budget: all is well");
    assert_eq!(frames(&mut app, window, FRAME * 2), (600, 1), "twice the budget: overloaded");
    assert_eq!(frames(&mut app, window, FRAME * 2), (1200, 1));
    assert_eq!(frames(&mut app, 3 * window, FRAME * 3), (1200, 1), "the bound");
    // A slow frame now and then inside a window of quick ones is no overload, and between 50% and
    // 90% of the budget the interval holds.
    assert_eq!(frames(&mut app, window, FRAME * 7 / 10), (1200, 1), "holds");
    assert_eq!(frames(&mut app, window, FRAME * 4 / 10), (600, 1), "recovering");
    assert_eq!(frames(&mut app, 2 * window, Duration::ZERO), (300, 1), "recovered, never below view_delay");
    // The statistics show it (copied at a frame's end).
    frames(&mut app, 1, Duration::ZERO);
    assert_eq!(app.world().resource::<ServerStats>().overload, OverloadCounts { news_interval_ms: 300, episodes: 1 });
    assert_eq!(frames(&mut app, window, FRAME), (600, 2), "a second episode");
}

/// Moves `c` to each of `xs` in one write (so they are read, and applied, in one tick) and
/// returns what came until the echo of the last.
fn moves_in_one_write(c: &mut CourseClient, xs: &[f32]) -> Vec<Msg> {
    let bytes: Vec<u8> = xs.iter().flat_map(|x| support::move_bytes(*x, 0.0, 0.0)).collect();
    c.send(&bytes);
    let (id, last) = (c.my_id(), *xs.last().unwrap());
    let mut got = c.recv_until(|m| *m == Msg::Move { id, x: last, y: 0.0, z: 0.0 });
    got.push(Msg::Move { id, x: last, y: 0.0, z: 0.0 });
    got
}

fn ticks(server: &AppThread) -> u64 {
    server.run(|app| app.world().resource::<ServerStats>().ticks)
}

fn interval(server: &AppThread) -> u64 {
    server.run(|app| app.world().resource::<OverloadCounts>().news_interval_ms)
}

/// The stretched interval in ticks: 1,200 ms at 60 a second.
const STRETCHED_TICKS: u64 = 72;

#[test]
fn overloaded_every_move_is_echoed_and_a_still_player_is_told_at_most_once_per_stretched_interval() {
    let config = config();
    let (net, addr) = bind(&config);
    let server = AppThread::spawn(move || build(&config, net));
    let (mut mover, _) = join(addr);
    let (mut still, listed) = join(addr);
    let me = mover.my_id();
    assert_eq!(listed.len(), 2, "both at the origin, in each other's view");
    mover.drain();

    // Every frame twice its budget, until the interval is at its bound.
    server.run(|app| app.world_mut().resource_mut::<Work>().0 = FRAME * 2);
    assert!(server.wait_until(WAIT, |app| app.world().resource::<OverloadCounts>().news_interval_ms == 1200));
    still.drain();
    let start = ticks(&server);
    let mv = |x: f32| Msg::Move { id: me, x, y: 0.0, z: 0.0 };
    let mut last = 0.0;
    let mut round = 0;
    while ticks(&server) < start + 5 * STRETCHED_TICKS {
        // Two moves in one write, applied in one tick: both echoed, in order, and nothing
        // else (the only other player does not move).
        let (a, b) = ((round % 4) as f32 + 1.0, (round % 4) as f32 + 5.0);
        assert_eq!(moves_in_one_write(&mut mover, &[a, b]), vec![mv(a), mv(b)], "round {round}");
        (last, round) = (b, round + 1);
    }
    let told = still.drain();
    let end = ticks(&server);
    assert!(told.iter().all(|m| matches!(m, Msg::Move { id, .. } if *id == me)), "{told:?}");
    assert!(
        !told.is_empty() && told.len() as u64 <= (end - start) / STRETCHED_TICKS + 2,
        "{} ticks: {told:?}",
        end - start
    );
    assert!(round > told.len() * 2, "the premise: the mover moved more often than the still player was told");

    // Recovered: the still player is told within view_delay again, of the newest position.
    server.run(|app| app.world_mut().resource_mut::<Work>().0 = Duration::ZERO);
    assert!(server.wait_until(WAIT, |app| app.world().resource::<OverloadCounts>().news_interval_ms == 300));
    assert_eq!(told.last(), Some(&mv(last)), "the newest position was told");
    assert_eq!(moves_in_one_write(&mut mover, &[9.0]), vec![mv(9.0)]);
    still.recv_until(|m| *m == mv(9.0));
    assert_eq!(interval(&server), 300);
}
