//! Headless Chromium for the tests that check a page as a person's browser runs it (the admin
//! console in `server/tests/admin_console_browser.rs`, the JavaScript codec in
//! `shared/tests/js_codec_browser.rs`): finding Debian's `chromium` and `chromium-driver`, the
//! rule for when they are missing, chromedriver on a loopback port, and a WebDriver session with
//! the flags this machine needs. One file, included by path by each test crate.
//!
//! The flags: without `--disable-background-networking` and its companions Chromium keeps
//! trying to reach Google's hosts, which a closed network refuses many at a time.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

/// Generous: a browser starting on a loaded two-core machine takes seconds.
pub const BROWSER_WAIT: Duration = Duration::from_secs(60);

/// The first of `names` found on the `PATH`.
pub fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name))).find(|p| p.is_file())
}

/// Chromium and chromedriver.
pub struct Programs {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

/// Chromium and chromedriver, or `None` after saying that `test` is skipped. Under CI (`CI`
/// set) a missing browser fails the test instead: CI must run it (`.ci/run` installs both).
pub fn programs(test: &str) -> Option<Programs> {
    let (Some(chromium), Some(chromedriver)) =
        (find_program(&["chromium", "chromium-browser"]), find_program(&["chromedriver"]))
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the browser tests: .ci/run installs Debian's chromium and chromium-driver"
        );
        eprintln!("SKIPPED {test}: chromium or chromedriver not found (apt-get install chromium chromium-driver)");
        return None;
    };
    Some(Programs { chromium, chromedriver })
}

/// chromedriver on a free loopback port, stopped when dropped.
pub struct Driver {
    child: Child,
    /// Where WebDriver sessions are asked for.
    pub url: String,
}

impl Driver {
    pub fn start(program: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + BROWSER_WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver listens on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, url: format!("http://127.0.0.1:{port}") }
    }

    /// A headless Chromium session: the machine's flags and `extra_args`.
    pub async fn browser(&self, chromium: &Path, extra_args: &[String]) -> Result<Client, String> {
        let mut args: Vec<Value> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ]
        .iter()
        .map(|a| json!(a))
        .collect();
        args.extend(extra_args.iter().map(|a| json!(a)));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        });
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities.as_object().unwrap().clone())
            .connect(&self.url)
            .await
            .map_err(|e| format!("a browser session through chromedriver: {e}"))
    }
}

impl Drop for Driver {
    /// Asks chromedriver to stop (SIGTERM: it ends the browsers it started), then makes sure.
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
