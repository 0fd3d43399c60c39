//! The play page in a real browser: two headless Chromium sessions open the page the WebSocket
//! port serves, beside a TCP test client (a bot). Each page shows the other page's player and
//! the bot, and their moves and chat; the bot sees both pages' players enter and move.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Where they are
//! missing the test says so and passes, except under CI (`CI` set), where it fails. A screenshot
//! of the first page is saved as `play.png` in the test's output folder
//! (`target/tmp/play-page-browser/`); `docs/play.png` is one of those. A second test opens the
//! page over `https://` from a TLS port: its script connects with `wss://`.

#[path = "../../shared/tests/browser/mod.rs"]
mod browser;
mod support;

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fantoccini::Client;
use futures_util::FutureExt;
use net_plugin::ServerPlugin;
use net_plugin::testing::AppThread;
use serde_json::Value;
use support::{CourseClient, Msg, test_config};

use browser::BROWSER_WAIT;

/// What a page shows: its own player id (once entered) and every player's (id, x, z).
#[derive(Debug, Default)]
struct Shown {
    me: Option<i64>,
    players: Vec<(i64, f64, f64)>,
}

impl Shown {
    fn of(value: &Value) -> Self {
        let players = value["players"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| (p[0].as_i64().unwrap_or(-1), p[1].as_f64().unwrap_or(0.0), p[2].as_f64().unwrap_or(0.0)))
            })
            .into_iter()
            .flatten()
            .collect();
        Self { me: value["me"].as_i64(), players }
    }

    fn at(&self, id: i64) -> Option<(f64, f64)> {
        self.players.iter().find(|p| p.0 == id).map(|p| (p.1, p.2))
    }
}

/// Reads the page's state until `done` holds (or fails after [`BROWSER_WAIT`]).
async fn until(page: &Client, what: &str, done: impl Fn(&Shown) -> bool) -> Shown {
    let deadline = Instant::now() + BROWSER_WAIT;
    loop {
        let value = page.execute("return window.playState ? window.playState() : null;", vec![]).await;
        let shown = Shown::of(&value.expect("the script runs"));
        if done(&shown) {
            return shown;
        }
        assert!(Instant::now() < deadline, "the page never showed {what}; last {shown:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Positions travel as `f32`: a page's `x + 2` comes back rounded.
fn near(a: (f64, f64), b: (f64, f64)) -> bool {
    (a.0 - b.0).abs() < 1e-3 && (a.1 - b.1).abs() < 1e-3
}

/// Presses `key` on the page, as a person at the keyboard (the page listens on the document).
async fn press(page: &Client, key: &str) {
    let script = format!("document.dispatchEvent(new KeyboardEvent('keydown', {{ key: '{key}', bubbles: true }}));");
    page.execute(&script, vec![]).await.expect("the key press");
}

/// The server app with the WebSocket transport (and so the page) on a free loopback port, with
/// TLS when `tls` names a certificate and its key: its TCP and WebSocket addresses.
fn start(tls: Option<(PathBuf, PathBuf)>) -> (AppThread, SocketAddr, SocketAddr) {
    let mut config = test_config();
    config.net.websocket.bind = Some("127.0.0.1:0".into());
    if let Some((cert, key)) = tls {
        (config.net.websocket.tls_cert, config.net.websocket.tls_key) = (Some(cert), Some(key));
    }
    let net = ServerPlugin::bind(&config.bind, config.net.clone()).expect("bind loopback");
    let (tcp, ws) = (net.local_addr(), net.websocket_addr().expect("the transport is on"));
    (AppThread::spawn(move || server::app(&config, net, None)), tcp, ws)
}

#[test]
fn two_pages_and_a_bot_see_each_other_move() {
    let Some(programs) = browser::programs("the play page's browser test") else { return };
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("play-page-browser");
    std::fs::create_dir_all(&out).unwrap();
    let (_server, tcp_addr, ws_addr) = start(None);
    let mut bot = CourseClient::connect(tcp_addr);
    bot.enter();
    bot.send_move(10.0, 0.0, 20.0);
    let driver = browser::Driver::start(&programs.chromedriver);

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let size = ["--window-size=660,1000".to_string()];
        let first = driver.browser(&programs.chromium, &size).await.expect("a browser");
        let second = driver.browser(&programs.chromium, &size).await.expect("a second browser");
        // The browsers are closed whatever the checks find; then their failure, if any, is told.
        let checked = AssertUnwindSafe(play(&first, &second, &mut bot, ws_addr, &out)).catch_unwind().await;
        let _ = first.close().await;
        let _ = second.close().await;
        if let Err(failure) = checked {
            std::panic::resume_unwind(failure);
        }
    });
    drop(driver);
    eprintln!("screenshot in {}", out.display());
}

/// Two pages enter; everybody sees everybody; each page moves with a key, the bot with a packet.
async fn play(first: &Client, second: &Client, bot: &mut CourseClient, ws_addr: SocketAddr, out: &Path) {
    let bot_id = i64::from(bot.my_id());
    first.goto(&format!("http://{ws_addr}/")).await.expect("the page loads");
    let a = until(first, "its own player", |s| s.me.is_some()).await.me.unwrap_or_default();
    second.goto(&format!("http://{ws_addr}/")).await.expect("the page loads in a second browser");
    let b = until(second, "its own player", |s| s.me.is_some()).await.me.unwrap_or_default();
    assert_ne!(a, b, "two players");

    // Each page shows the other page's player and the bot, where the bot moved.
    until(first, "the second page's player and the bot", |s| s.at(b).is_some() && s.at(bot_id) == Some((10.0, 20.0)))
        .await;
    until(second, "the first page's player and the bot", |s| s.at(a).is_some() && s.at(bot_id) == Some((10.0, 20.0)))
        .await;
    // The bot saw both enter. (Its reads block this one-thread runtime briefly: the browsers
    // run on their own meanwhile.)
    bot.recv_until(|m| matches!(m, Msg::Enter { id, .. } if i64::from(*id) == a));
    bot.recv_until(|m| matches!(m, Msg::Enter { id, .. } if i64::from(*id) == b));

    // The first page moves right (a key press is 2 units), the second up: the other page and
    // the bot see each move.
    for (page, other, id, key, step) in [(first, second, a, "d", (2.0, 0.0)), (second, first, b, "w", (0.0, 2.0))] {
        let from = until(page, "its own position", |s| s.at(id).is_some()).await.at(id).unwrap_or_default();
        let to = (from.0 + step.0, from.1 + step.1);
        press(page, key).await;
        until(page, "its own move", |s| s.at(id).is_some_and(|at| near(at, to))).await;
        until(other, "the other page's move", |s| s.at(id).is_some_and(|at| near(at, to))).await;
        bot.recv_until(|m| {
            matches!(m, Msg::Move { id: who, x, z, .. }
                if i64::from(*who) == id && near((f64::from(*x), f64::from(*z)), to))
        });
    }

    // The bot moves again: both pages follow.
    bot.send_move(-15.0, 0.0, 5.0);
    until(first, "the bot's second move", |s| s.at(bot_id) == Some((-15.0, 5.0))).await;
    until(second, "the bot's second move", |s| s.at(bot_id) == Some((-15.0, 5.0))).await;

    // And chats: both pages show the line.
    bot.send_chat("hello from a TCP bot");
    for page in [first, second] {
        let deadline = Instant::now() + BROWSER_WAIT;
        loop {
            let log = page.execute("return document.getElementById('log').textContent;", vec![]).await;
            if log.expect("the script runs").as_str().is_some_and(|l| l.contains("hello from a TCP bot")) {
                break;
            }
            assert!(Instant::now() < deadline, "the page never showed the bot's chat line");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let picture = first.screenshot().await.expect("a screenshot");
    assert!(picture.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(out.join("play.png"), &picture).unwrap();
}

#[test]
fn the_page_plays_over_https_and_wss() {
    let Some(programs) = browser::programs("the play page's browser test over TLS") else { return };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("play-page-browser-tls");
    std::fs::create_dir_all(&dir).unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("a certificate");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let (_server, tcp_addr, ws_addr) = start(Some((cert, key)));
    let mut bot = CourseClient::connect(tcp_addr);
    bot.enter();
    bot.send_move(-10.0, 0.0, 10.0);
    let driver = browser::Driver::start(&programs.chromedriver);

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        // The certificate is self-signed: this browser is told to take it.
        let args = ["--ignore-certificate-errors".to_string()];
        let page = driver.browser(&programs.chromium, &args).await.expect("a browser");
        let checked = AssertUnwindSafe(async {
            page.goto(&format!("https://{ws_addr}/")).await.expect("the page loads over https://");
            let bot_id = i64::from(bot.my_id());
            let me = until(&page, "its own player and the bot", |s| s.me.is_some() && s.at(bot_id) == Some((-10.0, 10.0)))
                .await
                .me
                .unwrap_or_default();
            let from = until(&page, "its own position", |s| s.at(me).is_some()).await.at(me).unwrap_or_default();
            press(&page, "d").await;
            let to = (from.0 + 2.0, from.1);
            until(&page, "its own move", |s| s.at(me).is_some_and(|at| near(at, to))).await;
            bot.recv_until(|m| matches!(m, Msg::Move { id, x, z, .. } if i64::from(*id) == me && near((f64::from(*x), f64::from(*z)), to)));
        })
        .catch_unwind()
        .await;
        let _ = page.close().await;
        if let Err(failure) = checked {
            std::panic::resume_unwind(failure);
        }
    });
    drop(driver);
}
