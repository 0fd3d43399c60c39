//! The `server` binary as an operator runs it: started in an empty directory, its log read line
//! by line, signalled, waited for.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::WAIT;

/// The binary, to run from an empty directory with logs at `info`.
pub fn server_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
    // Run from an empty directory, so no assets/server.toml is picked up by accident.
    command.current_dir(std::env::temp_dir()).env("RUST_LOG", "info");
    command
}

/// A folder of the test's own (`name`, this process) for its files, and a settings file in it
/// holding `settings`: the folder and the file.
pub fn settings_file(name: &str, settings: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("server-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("settings.toml");
    std::fs::write(&file, settings).unwrap();
    (dir, file)
}

/// Runs the binary to completion; returns its exit code and stderr.
pub fn run(args: &[&str]) -> (i32, String) {
    let out = server_command().args(args).output().expect("run the server binary");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A running server and the address it reported.
pub struct Running {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr: mpsc::Receiver<String>,
    /// The lines up to the listening line, read by `spawn`.
    early: Vec<String>,
}

/// Starts the binary with `args` (see [`spawn_command`]).
pub fn spawn(args: &[&str]) -> Running {
    spawn_command(server_command(), args)
}

/// Starts the binary with `args`, on `127.0.0.1:0` unless they have a `--bind`, and reads its
/// log up to the listening line.
pub fn spawn_command(mut command: Command, args: &[&str]) -> Running {
    if !args.contains(&"--bind") {
        command.args(["--bind", "127.0.0.1:0"]);
    }
    let mut child =
        command.args(args).stderr(Stdio::piped()).stdout(Stdio::null()).spawn().expect("start the server binary");
    let (tx, stderr) = mpsc::channel();
    let pipe = child.stderr.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + WAIT;
    let mut early = Vec::new();
    let addr = loop {
        let line = stderr.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("a listening line");
        let addr = line.split("listening on ").nth(1).map(|rest| rest.trim().parse().expect("an address"));
        early.push(line);
        if let Some(addr) = addr {
            break addr;
        }
    };
    Running { child, addr, stderr, early }
}

impl Running {
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(ok.success());
    }

    /// Waits for a log line containing `text`, among the lines not yet returned by
    /// [`log`](Self::log) (where it stays), and returns it; panics after `WAIT`.
    pub fn wait_for_line(&mut self, text: &str) -> String {
        if let Some(line) = self.early.iter().find(|l| l.contains(text)) {
            return line.clone();
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line =
                self.stderr.recv_timeout(left).unwrap_or_else(|_| panic!("no line with {text:?}: {:?}", self.early));
            self.early.push(line.clone());
            if line.contains(text) {
                return line;
            }
        }
    }

    /// The admin endpoint's address (started with `--admin 127.0.0.1:0`), from its log line.
    pub fn admin_addr(&mut self) -> SocketAddr {
        const ON: &str = "admin endpoint on http://";
        let line = self.wait_for_line(ON);
        let rest = line.split(ON).nth(1).expect("the address follows");
        rest.split(' ').next().and_then(|a| a.parse().ok()).unwrap_or_else(|| panic!("an address in {line:?}"))
    }

    /// Waits for the exit; returns the code and how long it took.
    pub fn wait(&mut self) -> (i32, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code().unwrap_or(-1), start.elapsed());
            }
            assert!(start.elapsed() < WAIT, "the server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The lines written so far that no earlier call returned (the first call: from the start).
    /// Once the server exited, up to the end of its log: the lines the reader thread has yet to
    /// pass on are waited for (until the pipe's end), not lost to a race with it.
    pub fn log(&mut self) -> Vec<String> {
        let mut lines = std::mem::take(&mut self.early);
        if self.child.try_wait().ok().flatten().is_some() {
            let deadline = Instant::now() + WAIT;
            loop {
                match self.stderr.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(line) => lines.push(line),
                    Err(mpsc::RecvTimeoutError::Disconnected) => return lines,
                    Err(mpsc::RecvTimeoutError::Timeout) => panic!("the log never ended: {lines:?}"),
                }
            }
        }
        lines.extend(self.stderr.try_iter());
        lines
    }
}

impl Drop for Running {
    /// A test that fails midway leaves no server behind.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
