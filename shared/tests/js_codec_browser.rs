//! The JavaScript codec in a real browser: headless Chromium, driven through chromedriver
//! (WebDriver), loads a page from a small loopback web server, imports the generated module and
//! runs `tests/js/checks.js` in it: PROTOCOL.md's golden bytes (written out by hand) both ways,
//! nested lists and every field type, the frame reader on whole and cut messages, and bad input
//! as `DecodeError`s with the Rust decoder's messages. Then the page judges a few thousand frames
//! (valid packets, cut, padded and with bytes changed) and must agree with the Rust decoder on
//! every one.
//!
//! Needs Debian's `chromium` and `chromium-driver`. Where they are missing the test says so and
//! passes, except under CI (`CI` set), where it fails: CI must run it. The page and the modules it
//! loaded stay in `target/tmp/js-codec-browser/`.

#[path = "browser/mod.rs"]
mod browser;
#[path = "../pdl/mod.rs"]
mod pdl;
#[path = "js/site.rs"]
mod site;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use shared::{ClientPacket, Direction, PacketSet, ServerPacket, decode, encode_to_vec};

/// A web server on a loopback port that answers GETs for the site's files, until dropped.
struct Site {
    addr: SocketAddr,
    running: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Site {
    fn start(files: Vec<(&'static str, String)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let running = Arc::new(AtomicBool::new(true));
        let go = running.clone();
        let files = Arc::new(files);
        let thread = std::thread::spawn(move || {
            while go.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let files = files.clone();
                        // One thread per connection: a connection the browser opens ahead and
                        // never uses must not hold up the others.
                        std::thread::spawn(move || answer(stream, &files));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Self { addr, running, thread: Some(thread) }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one request: a file of the site, or 404. (`Connection: close`: one request each.)
fn answer(stream: TcpStream, files: &[(&'static str, String)]) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // The headers: read and dropped.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
        line.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let name = match path.trim_start_matches('/') {
        "" => "index.html",
        other => other,
    };
    let mut stream = reader.into_inner();
    let response = match files.iter().find(|(file, _)| *file == name) {
        Some((file, body)) => {
            let kind = if file.ends_with(".html") { "text/html" } else { "text/javascript" };
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {kind}; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        }
        None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
    };
    let _ = stream.write_all(response.as_bytes());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(" ")
}

/// What the Rust decoder makes of `frame` as a packet of `direction`: `ok NAME` or its error.
fn verdict(frame: &[u8], direction: Direction) -> String {
    let decoded = match direction {
        Direction::ClientToServer => decode::<ClientPacket>(frame).map(|p| p.name()),
        Direction::ServerToClient => decode::<ServerPacket>(frame).map(|p| p.name()),
    };
    match decoded {
        Ok(name) => format!("ok {name}"),
        Err(e) => e.to_string(),
    }
}

/// Frames for both decoders to judge: valid packets of every kind, then each cut short, padded,
/// and with bytes changed to values that matter (0, 0xFF, surrogates, sizes), with the header's
/// size kept right so the fields themselves are judged, and sometimes left wrong.
fn frames_to_judge() -> Vec<Value> {
    use shared::s_player_list::Player;
    let players = |n: i32| -> Vec<Player> {
        (0..n).map(|i| Player { is_self: i == 1, player_id: i, pos_x: i as f32, pos_y: 0.5, pos_z: -1.0 }).collect()
    };
    let valid: Vec<Vec<u8>> = vec![
        encode_to_vec(&shared::C_Move { pos_x: 10.0, pos_y: 0.0, pos_z: -5.0 }).unwrap(),
        encode_to_vec(&shared::C_LeaveGame).unwrap(),
        encode_to_vec(&shared::C_Chat { chat: "Hi 기사 😀".into() }).unwrap(),
        encode_to_vec(&shared::C_Ping { client_time: -7 }).unwrap(),
        encode_to_vec(&shared::S_BroadcastEnterGame { player_id: 3, pos_x: 1.0, pos_y: 2.0, pos_z: 3.0 }).unwrap(),
        encode_to_vec(&shared::S_BroadcastLeaveGame { player_id: 3 }).unwrap(),
        encode_to_vec(&shared::S_PlayerList { players: players(3) }).unwrap(),
        encode_to_vec(&shared::S_PlayerList { players: vec![] }).unwrap(),
        encode_to_vec(&shared::S_BroadcastMove { player_id: 7, pos_x: 10.0, pos_y: 0.0, pos_z: -5.0 }).unwrap(),
        encode_to_vec(&shared::S_Chat { player_id: 2, chat: "é".into() }).unwrap(),
        encode_to_vec(&shared::S_Pong { client_time: i64::MAX }).unwrap(),
    ];
    let mut out = Vec::new();
    let mut add = |frame: &[u8]| {
        for direction in [Direction::ClientToServer, Direction::ServerToClient] {
            out.push(json!([hex(frame), format!("{direction:?}"), verdict(frame, direction)]));
        }
    };
    let resize = |frame: &mut Vec<u8>| {
        let size = (frame.len() as u16).to_le_bytes();
        if frame.len() >= 2 {
            frame[..2].copy_from_slice(&size);
        }
    };
    for frame in &valid {
        add(frame);
        for cut in 0..frame.len() {
            let mut short = frame[..cut].to_vec();
            add(&short);
            resize(&mut short);
            add(&short);
        }
        let mut long = frame.clone();
        long.push(0);
        add(&long);
        resize(&mut long);
        add(&long);
        for at in 2..frame.len() {
            for value in [0x00, 0x01, 0x03, 0x07, 0x80, 0xD8, 0xDC, 0xFF] {
                let mut changed = frame.clone();
                changed[at] = value;
                add(&changed);
            }
        }
    }
    out
}

#[test]
fn the_generated_codec_passes_its_checks_in_chromium() {
    let Some(programs) = browser::programs("the JavaScript codec's browser test") else { return };
    let dir = site::write("js-codec-browser");
    let profile = dir.join(format!("profile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let site = Site::start(site::files());
    let frames = frames_to_judge();
    let driver = browser::Driver::start(&programs.chromedriver);

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let results: Result<Value, String> = runtime.block_on(async {
        let browser = driver.browser(&programs.chromium, &[format!("--user-data-dir={}", profile.display())]).await?;
        // The browser is closed whatever the page says; the checks' results are looked at after.
        let results = async {
            browser.goto(&format!("http://{}/", site.addr)).await.map_err(|e| format!("the page loads: {e}"))?;
            // WebDriver waits for the promise the script returns.
            browser
                .execute("return import('/checks.js').then((checks) => checks.run(arguments[0]));", vec![json!(frames)])
                .await
                .map_err(|e| format!("the checks run in the page: {e}"))
        }
        .await;
        let _ = browser.close().await;
        results
    });
    drop(driver);
    drop(site);
    let _ = std::fs::remove_dir_all(&profile);

    let results = results.unwrap();
    let passed = results["passed"].as_array().expect("a list of the checks passed");
    for name in passed {
        eprintln!("ok: {}", name.as_str().unwrap_or_default());
    }
    let failed = results["failed"].as_array().expect("a list of the checks failed");
    assert!(failed.is_empty(), "in Chromium, failed: {}", serde_json::to_string_pretty(failed).unwrap());
    assert!(passed.len() >= 17, "every check ran: {results}");
    eprintln!("the page is in {}", dir.display());
}
