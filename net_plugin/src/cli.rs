//! What the project's binaries do with their command line and their logs: a bad flag is one
//! line on stderr and exit code 2; logs go to stderr through `tracing`, filtered by `RUST_LOG`
//! (default `info`), coloured only on a terminal.

use std::io::IsTerminal;
use std::process::ExitCode;

/// Exit code for a bad flag or setting.
pub const USAGE: u8 = 2;

/// Parses the command line. `--help` and `--version` print and exit 0; anything wrong prints one
/// line and exits with [`USAGE`]. `Err` carries the exit code to return from `main`.
pub fn parse<C: clap::Parser>() -> Result<C, ExitCode> {
    match C::try_parse() {
        Ok(cli) => Ok(cli),
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => {
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
        Err(e) => {
            let rendered = e.render().to_string();
            let line = rendered.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ");
            eprintln!("error: {line} (see --help)");
            Err(ExitCode::from(USAGE))
        }
    }
}

/// Sends `tracing`'s logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
