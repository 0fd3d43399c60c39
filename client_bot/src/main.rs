//! Bot clients for load tests: `cargo run --release -p client_bot -- --help`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use client_bot::BotConfig;
use client_bot::attack::{self, AttackArgs};
use client_bot::bench::{self, BenchArgs};
use client_bot::floor::{self, FloorArgs};
use client_bot::floor_bench;
use client_bot::light_load::{self, LightLoadArgs};
use net_plugin::cli;

/// jemalloc: with 10,000 bots reading two million packets a second (S5), glibc's malloc took a
/// tenth of the bots' core, and the bots share the machine with the server they measure.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Opens N bot connections to a server, behaves like the course's DummyClient, checks the
/// protocol as it goes, and reports. Exit code 1 when a violation, a mismatch, a lost echo, a
/// failed connection or a dropped bot happened. Logging follows RUST_LOG (default: info).
#[derive(Parser, Debug)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Mode>,
    #[command(flatten)]
    bots: BotConfig,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Run a benchmark scenario (S1–S6 of docs/benchmarks.md) against the release server binary.
    Bench(BenchArgs),
    /// Attack a running server (loopback only) and print the figures of issue 8's and issue 16's
    /// targets as JSON; exit code 0 when the target was met, 1 when not.
    Attack(Box<AttackArgs>),
    /// The syscall floor of S5: on 127.0.0.1, answer every 16 bytes read with one write of
    /// --answer-bytes; runs until killed.
    Floor(FloorArgs),
    /// S5's traffic without the bots' checks: N connections moving every 250 ms, reading and
    /// discarding; prints its report as JSON (exit code 1 when the run was not valid).
    LightLoad(LightLoadArgs),
}

fn main() -> ExitCode {
    let cli: Cli = match cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    cli::init_logging();
    match cli.command {
        Some(Mode::Bench(args)) => {
            if let Err(e) = args.validate() {
                eprintln!("error: {e}");
                return ExitCode::from(cli::USAGE);
            }
            if args.floor {
                println!("{}", floor_bench::HEADER);
                return match floor_bench::run(&args) {
                    Ok(results) if results.iter().all(|r| r.valid) => ExitCode::SUCCESS,
                    Ok(_) => ExitCode::FAILURE,
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::FAILURE
                    }
                };
            }
            println!("{}", bench::HEADER);
            match bench::run(&args) {
                Ok(results) if results.iter().all(|r| r.bots.clean()) => ExitCode::SUCCESS,
                Ok(_) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Mode::Attack(args)) => {
            if let Err(e) = args.plan() {
                eprintln!("error: {e}");
                return ExitCode::from(cli::USAGE);
            }
            match attack::run(&args) {
                Ok(report) => {
                    println!("{}", report.to_json());
                    if report.target().met == Some(false) { ExitCode::FAILURE } else { ExitCode::SUCCESS }
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Mode::Floor(args)) => match floor::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Mode::LightLoad(args)) => {
            if let Err(e) = args.validate() {
                eprintln!("error: {e}");
                return ExitCode::from(cli::USAGE);
            }
            if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
                tracing::warn!(error = %e, "cannot raise the open-file limit");
            }
            match light_load::run(&args) {
                Ok(report) => {
                    println!("{}", serde_json::to_string(&report).unwrap_or_default());
                    if report.not_valid_because().is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        None => {
            if let Err(e) = cli.bots.validate() {
                eprintln!("error: {e}");
                return ExitCode::from(cli::USAGE);
            }
            if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
                tracing::warn!(error = %e, "cannot raise the open-file limit");
            }
            match client_bot::run(cli.bots) {
                Ok(report) => {
                    println!("{report}");
                    if report.clean() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
