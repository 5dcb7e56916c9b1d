//! A gRPC client with default options on `dpdbg serve`'s unix socket: Python's
//! grpcio sends the socket path as `:authority`, which hyper's h2 refuses
//! with RST_STREAM PROTOCOL_ERROR; the socket's front (api/src/server/
//! authority.rs) turns it into `localhost`. Without the front this test
//! fails with the client's "Received RST_STREAM with error code 1".

mod common;

use common::{Bpffs, LabGuard, Server, dpdbg, python_client as py};

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

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
    let mut follower = py(&["--default-options"], &socket, &["follow", "8"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its stubs are made and its stream is starting (it says so on stderr).
    let mut err = std::io::BufReader::new(follower.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("following") {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut err, &mut line).unwrap() > 0, "the follower ended before following");
    }
    let stderr = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut rest);
        rest
    });
    std::thread::sleep(Duration::from_millis(700));
    // Two pings (two ICMP ids: two connections, each traced at both hooks).
    for _ in 0..2 {
        let o = Command::new("ip")
            .args(["netns", "exec", ns0, "ping", "-c", "2", "-i", "0.2", "-W", "1", ip1])
            .output()
            .unwrap();
        assert!(o.status.success(), "ping {ip1}");
    }
    let followed = follower.wait_with_output().unwrap();
    assert!(followed.status.success(), "a follow with default options: {}", stderr.join().unwrap());
    let followed = json_lines(&followed.stdout);
    // The echo requests' trace events (kernel drops and others may come too).
    let requests: Vec<&Value> = followed
        .iter()
        .filter(|r| r["flow"]["l4"]["ICMPv4"]["type"] == 8 && r["flow"]["eventType"]["type"] == 4)
        .collect();
    assert_eq!(requests.len(), 4, "each ping's first packet at both hooks: {followed:#?}");

    // The last flows and the status, with default options and with the
    // authority option set: the same answers.
    // (Asked again when a flow came in between the two asks.)
    let ask = |options: &[&str], args: &[&str]| {
        let o = py(options, &socket, args).output().unwrap();
        assert!(o.status.success(), "{options:?} {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        json_lines(&o.stdout)
    };
    let same = |args: &[&str], key: fn(&[Value]) -> Value| {
        let mut last = (Vec::new(), Vec::new());
        for _ in 0..3 {
            let (plain, set) = (ask(&["--default-options"], args), ask(&[], args));
            if key(&plain) == key(&set) {
                return plain;
            }
            last = (plain, set);
        }
        panic!("{args:?}: default options {:?}, grpc.default_authority {:?}", last.0, last.1)
    };
    let flows = same(&["flows", "20"], |v| Value::from(v.to_vec()));
    let last = &requests.last().unwrap()["flow"];
    assert!(flows.iter().any(|r| &r["flow"] == last), "the follower's last echo request is among the last flows");
    same(&["status"], |v| v[0]["numFlows"].clone());
}
