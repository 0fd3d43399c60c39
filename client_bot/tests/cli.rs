//! The `client_bot` binary as a load tester runs it: its flags, its exit codes, its scenario
//! runner.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bots() -> Command {
    Command::new(env!("CARGO_BIN_EXE_client_bot"))
}

/// The words of a help text, so that `--server` is not found inside `--server-arg`.
fn words(help: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(help).split_whitespace().map(|w| w.trim_end_matches([',', ':']).to_string()).collect()
}

#[test]
fn help_documents_every_flag() {
    let out = bots().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = words(&out.stdout);
    for flag in [
        "--addr",
        "--bots",
        "--duration",
        "--move-interval",
        "--move-pattern",
        "--chat-interval",
        "--ramp-rate",
        "--seed",
        "--json",
        "--idle",
        "--frame-hz",
        "--echo-timeout",
        "--io-threads",
        "--quiet",
        "--churn-rate",
        "--garbage-rate",
        "--walk",
        "--walk-speed",
        "--world-size",
        "--view-radius",
        "--view-margin",
        "--url",
        "--ca-cert",
        "bench",
    ] {
        assert!(help.iter().any(|w| w == flag), "--help mentions {flag}");
    }
    let out = bots().args(["bench", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = words(&out.stdout);
    for flag in [
        "--scenario",
        "--runs",
        "--server",
        "--json",
        "--bots",
        "--duration",
        "--bot-arg",
        "--server-arg",
        "--no-pin",
        "s1",
        "s2",
        "s3",
        "s4",
        "s5",
        "s6",
        "wave",
    ] {
        assert!(help.iter().any(|w| w == flag), "bench --help mentions {flag}");
    }
}

#[test]
fn a_bad_flag_is_one_line_and_exit_code_2() {
    for args in [
        &["--bots", "many"][..],
        &["--frob"],
        &["--bots", "0"],
        &["--duration", "long"],
        &["--url", "http://127.0.0.1:7777/"],
        &["--url", "ws://example.com:7780/"],
        &["--url", "ws://127.0.0.1:7780/", "--addr", "127.0.0.1:7780"],
        &["--url", "ws://127.0.0.1:7780/", "--transport", "ws"],
        &["--url", "ws://127.0.0.1:7780/", "--ca-cert", "ca.pem"],
        &["bench", "--scenario", "s9"],
        &["bench", "--scenario", "s1", "--bot-arg=--json=elsewhere.json"],
    ] {
        let out = bots().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}

#[test]
fn failed_connections_make_a_non_zero_exit_and_are_reported() {
    // A port nobody listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let json = std::env::temp_dir().join(format!("bots-cli-{}.json", std::process::id()));
    let out = bots()
        .args(["--addr", &addr.to_string(), "--bots", "3", "--duration", "1s", "--quiet", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["connect_failures"], 3);
    assert_eq!(report["connected"], 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("PROBLEMS FOUND"));
    let _ = std::fs::remove_file(json);
}

/// The server binary, next to this package's binary in the target directory. A package cannot
/// ask Cargo for another package's binary, so it is there only when the server package was
/// built too (`cargo test --workspace` or `cargo test -p client_bot -p server` build it for the
/// server's own tests). Missing, the tests that need it fail: skipping would pass silently.
fn server_binary() -> PathBuf {
    let bots = Path::new(env!("CARGO_BIN_EXE_client_bot"));
    let path = bots.with_file_name(format!("server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "no server binary at {}: build it first with `cargo build -p server` (with --release when the tests \
         run in release), or run `cargo test --workspace`",
        path.display()
    );
    path
}

/// Runs `client_bot bench` on `scenario` with `bots` bots for `duration` against the server
/// binary; asserts it exited 0 and returns its stdout and its `--json` output.
fn bench(scenario: &str, bots_n: &str, duration: &str) -> (String, serde_json::Value) {
    let json = std::env::temp_dir().join(format!("bench-{scenario}-{}.json", std::process::id()));
    let out = bots()
        .args(["bench", "--scenario", scenario, "--bots", bots_n, "--duration", duration, "--server"])
        .arg(server_binary())
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let runs = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(json);
    (stdout, runs)
}

#[test]
fn the_scenario_runner_runs_a_small_scenario() {
    let (stdout, runs) = bench("s1", "20", "2s");
    assert!(stdout.lines().any(|l| l.starts_with("S1 1 20 20 ") && l.ends_with("clean")), "{stdout}");
    let run = &runs[0];
    assert!(run["server_cpu_pct"].as_f64().is_some_and(|c| c >= 0.0), "{run}");
    assert!(run["bots_cpu_pct"].as_f64().is_some_and(|c| c > 0.0), "the bots' own CPU: {run}");
    assert!(run["rss_before_kib"].as_u64().is_some_and(|k| k > 0));
    assert!(run["server"]["tick_ms"]["p99"].as_f64().is_some());
    assert_eq!(run["bots"]["entered"], 20);
}

#[test]
fn the_soak_scenario_samples_memory_and_reports_its_slope_and_side_traffic() {
    let (stdout, runs) = bench("s6", "10", "4s");
    let row = stdout.lines().find(|l| l.starts_with("S6 1 10 10 ")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(row.ends_with("clean"), "{row}");
    let run = &runs[0];
    // A 4 s run is sampled every 200 ms; its slope leaves out the first 0.8 s.
    let samples = run["rss_samples"].as_array().unwrap();
    assert!(samples.len() >= 10, "{samples:?}");
    assert!(samples.iter().all(|s| s[1].as_u64().is_some_and(|kib| kib > 0)), "{samples:?}");
    let slope = run["rss_slope_mib_per_h"].as_f64().expect("a slope");
    assert!(row.contains(&format!(" {slope:+.2} ")), "the row shows the slope: {row}");
    assert!(run["rss_after_kib"].as_u64().is_some_and(|k| k > 0));
    // 20 churners and 3 garbage connections a second, for 4 s.
    assert!(run["bots"]["churned"].as_u64().is_some_and(|n| n >= 20), "{}", run["bots"]);
    assert!(run["bots"]["garbage_sent"].as_u64().is_some_and(|n| n >= 3), "{}", run["bots"]);
    assert_eq!(run["bots"]["churn_failures"], 0);
    // The server saw them come and go: the bots, the churners and the garbage.
    let sessions = run["server"]["sessions_total"].as_u64().unwrap();
    assert!(sessions >= 10 + 20 + 3, "{}", run["server"]);
}
