//! The web console in a real browser: headless Chromium, driven through chromedriver
//! (WebDriver), opens the console while test clients walk in circles, and the test checks what a
//! person would see: one dot per player, dots that move, and a kick button that removes its
//! player from the page and closes that client's connection.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Where they are
//! missing the test says so and passes, except under CI (`CI` set), where it fails: CI must run
//! it. A screenshot of the console is saved as `console.png` in the test's output folder
//! (`target/tmp/admin-console-browser/`); `docs/console.png` is one of those.

#[path = "../../shared/tests/browser/mod.rs"]
mod browser;
mod support;

use std::net::TcpStream;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use fantoccini::Client;
use net_plugin::testing::{Recorded, record};
use net_plugin::{DisconnectReason, Disconnected};
use serde_json::{Value, json};
use support::{CourseClient, join, start_admin, test_config};

use browser::BROWSER_WAIT;

const PLAYERS: usize = 8;

/// Test clients that walk in circles (a move every 100 ms each) until dropped.
struct Walkers {
    running: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Walkers {
    fn start(clients: &[CourseClient]) -> Self {
        let mut streams: Vec<TcpStream> = clients.iter().map(|c| c.stream.try_clone().unwrap()).collect();
        let running = Arc::new(AtomicBool::new(true));
        let go = running.clone();
        let thread = std::thread::spawn(move || {
            let mut step = 0f32;
            while go.load(Ordering::Relaxed) {
                for (i, stream) in streams.iter_mut().enumerate() {
                    let (radius, phase) = (5.0 + 3.0 * i as f32, i as f32 * 1.6);
                    let direction = if i % 2 == 0 { 1.0 } else { -1.0 };
                    let angle = direction * step * 0.6 / radius + phase;
                    let bytes = support::move_bytes(radius * angle.cos(), 0.0, radius * angle.sin());
                    // A kicked client's socket refuses the write: it has stopped walking.
                    let _ = std::io::Write::write_all(stream, &bytes);
                }
                step += 1.0;
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Self { running, thread: Some(thread) }
    }
}

impl Drop for Walkers {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs `script` in the page until it returns something `done` accepts.
async fn until(browser: &Client, script: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + BROWSER_WAIT;
    loop {
        let value = browser.execute(script, vec![]).await.expect("the script runs");
        if done(&value) {
            return value;
        }
        assert!(Instant::now() < deadline, "{script} never held; last {value}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The map's dots: player id → (cx, cy).
const DOTS: &str = "return [...document.querySelectorAll('#map circle.player')]
    .map(c => [Number(c.dataset.player), Number(c.getAttribute('cx')), Number(c.getAttribute('cy'))]);";

fn dots(value: &Value) -> Vec<(i64, f64, f64)> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d[0].as_i64().unwrap(), d[1].as_f64().unwrap(), d[2].as_f64().unwrap()))
        .collect()
}

fn ids(value: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> = dots(value).iter().map(|d| d.0).collect();
    ids.sort_unstable();
    ids
}

#[test]
fn the_console_shows_the_players_moving_and_kicks_one() {
    let Some(programs) = browser::programs("the console's browser test") else { return };
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("admin-console-browser");
    std::fs::create_dir_all(&out).unwrap();

    // A view radius, so a selected player shows its view on the map.
    let mut config = test_config();
    config.world.view_radius = 8.0;
    let (server, addr, admin) = start_admin(config, record::<Disconnected>);
    let mut clients: Vec<CourseClient> = (0..PLAYERS).map(|_| join(addr).0).collect();
    let mut expected: Vec<i64> = clients.iter().map(|c| i64::from(c.my_id())).collect();
    expected.sort_unstable();
    let walkers = Walkers::start(&clients);
    let driver = browser::Driver::start(&programs.chromedriver);

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let browser =
            driver.browser(&programs.chromium, &["--window-size=1400,950".to_string()]).await.expect("a browser");
        // The browser is closed whatever the checks find; then their failure, if any, is told.
        let checked = AssertUnwindSafe(look_and_kick(&browser, admin, &expected, &out)).catch_unwind().await;
        let _ = browser.close().await;
        if let Err(failure) = checked {
            std::panic::resume_unwind(failure);
        }
    });
    drop(driver);

    // The kicked client's connection was closed by the server, with the kick's own reason.
    let victim = clients.iter().position(|c| i64::from(c.my_id()) == expected[0]).unwrap();
    assert!(clients[victim].closed(), "the kicked client sees its connection closed");
    drop(walkers);
    let reasons: Vec<DisconnectReason> =
        server.run(|app| app.world().resource::<Recorded<Disconnected>>().0.iter().map(|d| d.reason.clone()).collect());
    assert_eq!(reasons, [DisconnectReason::KickedByOperator], "one disconnect: the kick");
    eprintln!("screenshots in {}", out.display());
}

/// What a person does at the console: looks for one dot per player, sees them move, selects one
/// (keeping a picture), and kicks the first.
async fn look_and_kick(browser: &Client, admin: std::net::SocketAddr, expected: &[i64], out: &Path) {
    browser.goto(&format!("http://{admin}/")).await.expect("the console loads");

    // One dot per player, each at the player's id.
    let first = until(browser, DOTS, |v| v.as_array().is_some_and(|d| d.len() == PLAYERS)).await;
    assert_eq!(ids(&first), expected, "the map shows every player");
    let rows = browser.execute("return document.querySelectorAll('#players tbody tr').length;", vec![]).await.unwrap();
    assert_eq!(rows, json!(PLAYERS), "and the table lists them");

    // The dots move: every player's position changes on the page.
    let before = dots(&first);
    let moved = until(browser, DOTS, |v| {
        let now = dots(v);
        now.len() == PLAYERS && before.iter().all(|b| now.iter().any(|n| n.0 == b.0 && (n.1, n.2) != (b.1, b.2)))
    })
    .await;
    assert_eq!(ids(&moved), expected);

    // Select a player (its view radius shows), let the charts draw a few seconds, and
    // keep a picture of it.
    browser
        .execute(
            &format!(
                "document.querySelector('#map circle[data-player=\"{}\"]').dispatchEvent(new MouseEvent('click'));",
                expected[1]
            ),
            vec![],
        )
        .await
        .unwrap();
    until(browser, "return document.querySelector('#map .view').getAttribute('visibility');", |v| v == "visible").await;
    until(
        browser,
        "const p = document.querySelector('#chart-packets polyline');
             return p ? p.getAttribute('points').split(' ').length : 0;",
        |v| v.as_u64().is_some_and(|n| n >= 10),
    )
    .await;
    let picture = browser.screenshot().await.expect("a screenshot");
    assert!(picture.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(out.join("console.png"), &picture).unwrap();

    // Kick the first player with its button, as a person would.
    let victim = expected[0];
    until(
        browser,
        &format!(
            "const b = document.querySelector('button[data-kick=\"{victim}\"]');
                 if (!b) return false; b.click(); return true;"
        ),
        |v| v == true,
    )
    .await;
    let after = until(browser, DOTS, |v| v.as_array().is_some_and(|d| d.len() == PLAYERS - 1)).await;
    assert!(!ids(&after).contains(&victim), "the kicked player's dot is gone: {after}");
    let status = until(browser, "return document.getElementById('action').textContent;", |v| {
        v.as_str().is_some_and(|s| s.contains("kicked"))
    })
    .await;
    assert_eq!(status, json!(format!("player {victim} kicked")));
    let rows = browser.execute("return document.querySelectorAll('#players tbody tr').length;", vec![]).await.unwrap();
    assert_eq!(rows, json!(PLAYERS - 1));
    std::fs::write(out.join("console-after-kick.png"), browser.screenshot().await.unwrap()).unwrap();
}
