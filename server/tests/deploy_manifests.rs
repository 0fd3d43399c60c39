//! What an operator deploys (`deploy/`) agrees with the server: the Agones manifests are read
//! as YAML and checked against the server's built-in defaults (the port, the health interval,
//! the grace period against the drain, the Counter's name and capacity), and the Dockerfile
//! against what docs/deploy.md promises of it. Neither a cluster nor an image build is needed.

use std::path::PathBuf;
use std::time::Duration;

use serde_yaml::Value;
use server::{AgonesConfig, ServerConfig};

fn deploy_file(name: &str) -> String {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(name: &str) -> Value {
    serde_yaml::from_str(&deploy_file(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The value at a path of keys (or indexes, written as numbers), or a panic naming it.
fn at<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(value, |v, key| {
        let next = match key.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(key),
        };
        next.unwrap_or_else(|| panic!("no {key} in {path}"))
    })
}

fn int(value: &Value, path: &str) -> i64 {
    at(value, path).as_i64().unwrap_or_else(|| panic!("{path} is not a number"))
}

fn text<'a>(value: &'a Value, path: &str) -> &'a str {
    at(value, path).as_str().unwrap_or_else(|| panic!("{path} is not a string"))
}

/// Checks one GameServer spec (gameserver.yaml's, or a fleet's template) against the defaults.
fn check_game_server_spec(spec: &Value, name: &str) {
    let defaults = ServerConfig::default();
    let port: std::net::SocketAddr = defaults.bind.parse().expect("the default bind is an address");

    assert_eq!(int(spec, "ports.0.containerPort"), i64::from(port.port()), "{name}: the game port");
    assert_eq!(text(spec, "ports.0.protocol"), "TCP", "{name}: the course's protocol is TCP");
    // The WebSocket port, which the container's arguments turn on.
    assert_eq!(int(spec, "ports.1.containerPort"), 7780, "{name}: the WebSocket port");

    // Health: a ping every health_interval; Agones checks every periodSeconds, so the period must
    // hold at least two pings (one may be late), and the first check come after the first frame.
    let period = Duration::from_secs(int(spec, "health.periodSeconds") as u64);
    assert!(at(spec, "health").get("disabled").and_then(Value::as_bool) != Some(true), "{name}: health on");
    assert!(
        period >= defaults.agones.health_interval * 2,
        "{name}: health.periodSeconds {period:?} vs a ping every {:?}",
        defaults.agones.health_interval
    );
    assert!(int(spec, "health.failureThreshold") >= 2, "{name}: one late check is not a dead server");

    // The Counter the server keeps, with the connection limit as its capacity.
    let counter = format!("counters.{}", AgonesConfig::PLAYERS_COUNTER);
    assert_eq!(int(spec, &format!("{counter}.capacity")), defaults.net.max_connections as i64, "{name}");
    assert_eq!(int(spec, &format!("{counter}.count")), 0, "{name}");

    // Kubernetes kills the pod after its grace period: a drain, the network's flush-and-close
    // and the wait for Shutdown()'s acknowledgement must fit in it.
    let grace = Duration::from_secs(int(spec, "template.spec.terminationGracePeriodSeconds") as u64);
    let needed = defaults.drain_timeout + defaults.net.shutdown_timeout + AgonesConfig::SHUTDOWN_WAIT;
    assert!(grace > needed, "{name}: terminationGracePeriodSeconds {grace:?} must exceed {needed:?}");

    let container = at(spec, "template.spec.containers.0");
    let args: Vec<&str> = at(container, "args").as_sequence().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(args.contains(&"--agones"), "{name}: the server talks to the sidecar: {args:?}");
    assert!(args.windows(2).any(|a| a == ["--ws-bind", "[::]:7780"]), "{name}: the WebSocket port is on: {args:?}");

    // The admin endpoint: liveness asks its /healthz, on the port --admin names (which no token
    // or Host rule keeps a probe from), and the token comes from a mounted Secret, not the
    // command line, which other users of the node can read.
    let flag = |flag: &str| args.iter().position(|a| *a == flag).and_then(|i| args.get(i + 1)).copied();
    let admin: std::net::SocketAddr = flag("--admin").and_then(|a| a.parse().ok()).expect("--admin ADDR");
    assert!(admin.ip().is_unspecified(), "{name}: the kubelet probes the pod's address: {admin}");
    assert!(flag("--admin-token").is_none(), "{name}: no token on the command line");
    let token_file = flag("--admin-token-file").expect("--admin-token-file");
    let mount = text(container, "volumeMounts.0.mountPath");
    assert!(token_file.starts_with(mount), "{name}: {token_file} is in the mounted secret {mount}");
    assert_eq!(text(spec, "template.spec.volumes.0.secret.secretName"), "game-server-admin", "{name}");
    assert_eq!(text(container, "livenessProbe.httpGet.path"), "/healthz", "{name}");
    let probe_port = text(container, "livenessProbe.httpGet.port");
    assert_eq!(text(container, "ports.0.name"), probe_port, "{name}");
    assert_eq!(int(container, "ports.0.containerPort"), i64::from(admin.port()), "{name}: the probe's port");
    assert!(
        Duration::from_secs(int(container, "livenessProbe.periodSeconds") as u64)
            * int(container, "livenessProbe.failureThreshold") as u32
            > server::admin::HEALTHY_FRAME_AGE * 5,
        "{name}: a restart takes several failed probes, not one slow frame"
    );
}

#[test]
fn the_game_server_manifest_agrees_with_the_server_defaults() {
    let game_server = yaml("agones/gameserver.yaml");
    assert_eq!(text(&game_server, "kind"), "GameServer");
    check_game_server_spec(at(&game_server, "spec"), "gameserver.yaml");
}

#[test]
fn the_fleet_runs_the_same_game_server() {
    let fleet = yaml("agones/fleet.yaml");
    assert_eq!(text(&fleet, "kind"), "Fleet");
    let template = at(&fleet, "spec.template.spec");
    check_game_server_spec(template, "fleet.yaml");
    assert_eq!(template, at(&yaml("agones/gameserver.yaml"), "spec"), "fleet.yaml's template is gameserver.yaml's");
}

#[test]
fn the_autoscaler_and_the_allocation_name_the_fleet_and_its_counter() {
    let fleet = yaml("agones/fleet.yaml");
    let fleet_name = text(&fleet, "metadata.name");

    let autoscaler = yaml("agones/fleetautoscaler.yaml");
    assert_eq!(text(&autoscaler, "kind"), "FleetAutoscaler");
    assert_eq!(text(&autoscaler, "spec.fleetName"), fleet_name);
    assert_eq!(text(&autoscaler, "spec.policy.type"), "Buffer");
    let (min, max) =
        (int(&autoscaler, "spec.policy.buffer.minReplicas"), int(&autoscaler, "spec.policy.buffer.maxReplicas"));
    assert!(int(&autoscaler, "spec.policy.buffer.bufferSize") <= min && min <= max);

    let allocation = yaml("agones/allocation.yaml");
    assert_eq!(text(&allocation, "kind"), "GameServerAllocation");
    let selectors = at(&allocation, "spec.selectors").as_sequence().unwrap();
    assert!(!selectors.is_empty());
    for selector in selectors {
        // A key with a dot: not a path.
        let fleet_label = at(selector, "matchLabels").get("agones.dev/fleet").and_then(Value::as_str);
        assert_eq!(fleet_label, Some(fleet_name));
    }
    let counted: Vec<_> = selectors.iter().filter_map(|s| s.get("counters")).collect();
    assert!(
        counted.iter().all(|c| c.get(AgonesConfig::PLAYERS_COUNTER).is_some()) && !counted.is_empty(),
        "the allocation selects on the Counter the server keeps"
    );
}

#[test]
fn the_dockerfile_builds_locked_and_runs_slim_as_a_user_with_the_port_and_sigterm() {
    let dockerfile = deploy_file("Dockerfile");
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    let with = |word: &str| lines.iter().filter(|l| l.starts_with(word)).copied().collect::<Vec<_>>();
    assert_eq!(with("FROM ").len(), 2, "multi-stage: a build stage and a runtime stage");
    assert!(with("FROM ")[1].contains("slim"), "{:?}", with("FROM "));
    assert!(lines.iter().any(|l| l.contains("cargo build --release --locked") && l.contains("--features agones")));
    let port: std::net::SocketAddr = ServerConfig::default().bind.parse().unwrap();
    assert_eq!(with("EXPOSE "), [format!("EXPOSE {}/tcp", port.port()).as_str(), "EXPOSE 7780/tcp"]);
    assert_eq!(with("STOPSIGNAL "), ["STOPSIGNAL SIGTERM"]);
    let user = with("USER ");
    assert_eq!(user.len(), 1);
    assert!(!["USER root", "USER 0"].contains(&user[0]), "not root: {user:?}");
    assert!(dockerfile.find("USER ").unwrap() > dockerfile.rfind("FROM ").unwrap(), "the runtime stage's user");
}
