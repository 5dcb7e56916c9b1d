//! A gRPC client with default options on `dpdbg serve`'s unix socket: Python's
//! grpcio sends the socket path as `:authority`, which hyper's h2 refuses
//! with RST_STREAM PROTOCOL_ERROR; the socket's front (api/src/server/
//! authority.rs) turns it into `localhost`. Without the front this test
//! fails with the client's "Received RST_STREAM with error code 1".

mod common;

use common::{Bpffs, LabGuard, Server, dpdbg};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

fn python() -> PathBuf {
    let p = std::env::var_os("DPDBG_PYTHON").map_or_else(|| PathBuf::from("/opt/dpdbg-venv/bin/python"), PathBuf::from);
    assert!(p.exists(), "{} is missing: run scripts/setup.sh (it makes the grpcio venv)", p.display());
    p
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Python client (tests/python/observer_client.py), `options` first.
fn py(options: &[&str], socket: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(python());
    c.arg(repo().join("tests/python/observer_client.py"))
        .args(options)
        .arg(repo().join("api/proto"))
        .arg(format!("unix:{}", socket.display()))
        .args(args);
    c
}

fn json_lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn a_grpcio_client_with_default_options_gets_flows_on_the_unix_socket() {
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("lab.json");
    let _lab = LabGuard { bpffs: fs.0.clone(), state: state.clone() };
    let up = dpdbg(&fs.0, &state, &["lab", "up", "-o", "json"]);
    assert!(up.status.success(), "lab up: {}", String::from_utf8_lossy(&up.stderr));
    let lab: Value = serde_json::from_slice(&up.stdout).unwrap();
    let eps = lab["endpoints"].as_array().unwrap();
    let (ns0, ip1) = (eps[0]["netns"].as_str().unwrap(), eps[1]["ipv4"].as_str().unwrap());
    let socket = dir.path().join("dpdbg.sock");
    let _server = Server::start(&fs.0, &socket, &[]);

    // A follower with no channel options, through two pings.
    let follower = py(&["--default-options"], &socket, &["follow", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // Two pings (two ICMP ids: two connections, each traced at both hooks).
    for _ in 0..2 {
        let o = Command::new("ip")
            .args(["netns", "exec", ns0, "ping", "-c", "2", "-i", "0.2", "-W", "1", ip1])
            .output()
            .unwrap();
        assert!(o.status.success(), "ping {ip1}");
    }
    let followed = follower.wait_with_output().unwrap();
    assert!(followed.status.success(), "a follow with default options: {}", String::from_utf8_lossy(&followed.stderr));
    let followed = json_lines(&followed.stdout);
    let icmp: Vec<&Value> = followed.iter().filter(|r| r["flow"]["l4"]["ICMPv4"].is_object()).collect();
    assert_eq!(icmp.len(), 4, "each ping's first packet at both hooks: {followed:#?}");

    // The last flows and the status, with default options and with the
    // authority option set: the same answers.
    for args in [&["flows", "4"][..], &["status"][..]] {
        let plain = py(&["--default-options"], &socket, args).output().unwrap();
        assert!(plain.status.success(), "{args:?} with default options: {}", String::from_utf8_lossy(&plain.stderr));
        let set = py(&[], &socket, args).output().unwrap();
        assert!(set.status.success(), "{args:?} with grpc.default_authority: {}", String::from_utf8_lossy(&set.stderr));
        let (plain, set) = (json_lines(&plain.stdout), json_lines(&set.stdout));
        if args[0] == "flows" {
            assert_eq!(plain, set, "the same last flows");
            assert_eq!(plain.last().unwrap()["flow"], icmp.last().unwrap()["flow"], "and the follower's last");
        } else {
            assert_eq!(plain[0]["numFlows"], set[0]["numFlows"], "{plain:?} {set:?}");
        }
    }
}
